"""Temporal error under published definitions, at several frame gaps, on estimated or ground-truth flow.

What ``vidstyle metrics INPUT STYLIZED... --definition NAME... --gap K... [--gt-flow DIR]`` measures.
One streaming pass keeps the last max(K) + 1 frames of every video. For each pair (t, t+K):

- with ground truth (:mod:`vidstyle.evaluate.gtflow`), stylized frame t+K is warped back onto the grid of
  frame t with the forward flow (chained over K steps) and compared over the pixels that are not
  occluded, not invalid and whose target lies inside the frame;
- without it, the flow between input frames t and t+K is computed directly (no chaining, so no
  accumulated drift) and each definition warps in its own direction, with the consistency mask of
  :func:`vidstyle.flow.optical.consistency_mask` on the grid of the frame compared.

The ``vidstyle`` definition at gap 1 on estimated flow is exactly the E_warp of
:mod:`vidstyle.evaluate.metrics`.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
from tqdm import tqdm

from vidstyle.errors import ConfigError, FlowFileError, VideoError
from vidstyle.evaluate.definitions import (
    DEFAULT_DEFINITION,
    Definition,
    PairTerms,
    get_definitions,
    pair_terms,
)
from vidstyle.evaluate.gtflow import GroundTruthFlow, frame_numbers
from vidstyle.evaluate.metrics import aligned_frames, common_frame_count, to_unit
from vidstyle.flow.optical import check_method, compute_pair, consistency_mask, warp
from vidstyle.io.video import iter_frames


@dataclass(frozen=True)
class ConsistencyConfig:
    """Which definitions (names of :data:`vidstyle.evaluate.definitions.DEFINITIONS`) at which gaps
    (frames)."""

    definitions: tuple[str, ...] = (DEFAULT_DEFINITION,)
    gaps: tuple[int, ...] = (1,)
    flow_method: str = "farneback"     # estimated flow only
    flow_params: dict = field(default_factory=dict)


@dataclass
class Score:
    """One video under one definition at one gap. ``curve``: (t, per-pair value), t the later frame."""

    definition: str
    gap: int
    value: float = math.nan
    pairs: int = 0                     # pairs with a defined value
    kept_fraction: float = math.nan    # mean share of pixels kept over those pairs
    curve: list[tuple[int, float]] = field(default_factory=list)
    _kept: list[float] = field(default_factory=list, repr=False)


@dataclass
class VideoConsistency:
    name: str
    is_input: bool
    scores: dict[tuple[str, int], Score]
    resized_from: tuple[int, int] | None = None


@dataclass
class ConsistencyReport:
    """Everything the command prints and writes in this mode; ``videos[0]`` is the input."""

    input: str
    width: int
    height: int
    num_frames: int
    # {"source": "ground truth", "flow", "occlusions", "invalid"}
    # or {"source": "estimated", "method", "params"}
    flow: dict
    definitions: list[str]
    gaps: list[int]
    videos: list[VideoConsistency]
    unscored: dict[int, int]    # pairs per gap skipped for want of ground-truth flow


def check_consistency_config(config: ConsistencyConfig) -> list[Definition]:
    """The definitions to compute; ConfigError for an unknown name, a gap < 1 or an unknown flow method."""
    if not config.gaps or min(config.gaps) < 1:
        raise ConfigError(f"a gap is a number of frames, at least 1; got {list(config.gaps)}")
    check_method(config.flow_method)
    return get_definitions(config.definitions or (DEFAULT_DEFINITION,))


def _estimated_flows(first: np.ndarray, last: np.ndarray, config: ConsistencyConfig,
                     directions: set[str]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """(flow, keep) per direction for input frames ``first`` (t) and ``last`` (t+K), uint8 RGB."""
    flow_fw, flow_bw, mask_bw = compute_pair(first, last, config.flow_method, **config.flow_params)
    flows = {}
    if "backward" in directions:
        flows["backward"] = (flow_bw, mask_bw.astype(bool))
    if "forward" in directions:
        # Same checks with the roles swapped: reliability of warping frame t+K onto the grid of t.
        flows["forward"] = (flow_fw, consistency_mask(flow_bw, flow_fw).astype(bool))
    return flows


def _terms(direction: str, flow: np.ndarray, keep: np.ndarray, first01: np.ndarray,
           last01: np.ndarray) -> PairTerms:
    if direction == "forward":
        return pair_terms(first01, warp(last01, flow), keep)
    return pair_terms(last01, warp(first01, flow), keep)


class _Scorer:
    """Per-pair bookkeeping: which flows a pair needs and where each value goes."""

    def __init__(self, definitions: list[Definition], names: list[str], config: ConsistencyConfig,
                 truth: GroundTruthFlow | None, numbers: Sequence[int] | None):
        self.config, self.truth, self.numbers = config, truth, numbers
        self.direction = {d.name: ("forward" if truth else d.direction) for d in definitions}
        self.definitions = definitions
        self.by_name = {d.name: d for d in definitions}
        self.videos = [VideoConsistency(n, i == 0, {(d.name, k): Score(d.name, k) for d in definitions
                                                    for k in config.gaps}) for i, n in enumerate(names)]
        self.unscored = {k: 0 for k in config.gaps}

    def _flows(self, t: int, gap: int, first_input: np.ndarray, last_input: np.ndarray):
        if self.truth is None:
            return _estimated_flows(first_input, last_input, self.config, set(self.direction.values()))
        number = self.numbers[t - gap] if self.numbers else t - gap + 1
        if self.numbers and self.numbers[t] - number != gap:
            return None                 # frames missing from the sequence: no flow chains across
        pair = self.truth.pair(number, gap, *first_input.shape[:2])
        return None if pair is None else {"forward": pair}

    def add(self, t: int, gap: int, first: tuple, last: tuple) -> None:
        """Score pair (t - gap, t); ``first``, ``last``: (input uint8, [float RGB of each video])."""
        flows = self._flows(t, gap, first[0], last[0])
        if flows is None:
            self.unscored[gap] += 1
            return
        for video, first01, last01 in zip(self.videos, first[1], last[1]):
            terms = {direction: _terms(direction, *flows[direction], first01, last01) for direction in flows}
            for d in self.definitions:
                pair = terms[self.direction[d.name]]
                score = video.scores[(d.name, gap)]
                score.curve.append((t, d.per_pair(pair)))
                score._kept.append(pair.kept_fraction)

    def finish(self) -> list[VideoConsistency]:
        for video in self.videos:
            for (name, _), score in video.scores.items():
                values = [v for _, v in score.curve]
                score.value = self.by_name[name].aggregate(values)
                score.pairs = sum(not math.isnan(v) for v in values)
                score.kept_fraction = float(np.mean(score._kept)) if score._kept else math.nan
        return self.videos


def evaluate_consistency(
    input_frames: Iterable[np.ndarray],
    stylized: Sequence[tuple[str, Iterable[np.ndarray]]],
    *,
    input_name: str = "input",
    config: ConsistencyConfig = ConsistencyConfig(),
    truth: GroundTruthFlow | None = None,
    numbers: Sequence[int] | None = None,
    total: int | None = None,
    progress: bool = False,
) -> ConsistencyReport:
    """Score stylized videos (and the input) under ``config``'s definitions and gaps in one pass.

    Frames: uint8 RGB (H, W, 3), as for :func:`vidstyle.evaluate.metrics.evaluate`. ``truth``: ground-truth
    flow, with ``numbers`` the dataset number of each frame (default 1, 2, 3, ...).
    FlowFileError when ground truth is given but matches no pair.
    """
    definitions = check_consistency_config(config)
    names = [input_name, *(name for name, _ in stylized)]
    scorer = _Scorer(definitions, names, config, truth, numbers)
    history: deque = deque(maxlen=max(config.gaps) + 1)
    resized: dict[int, tuple[int, int]] = {}
    num_frames = 0
    streams = [iter(input_frames), *(iter(frames) for _, frames in stylized)]
    with tqdm(total=total, disable=not progress, unit="frame", desc="consistency", leave=False) as bar:
        for t, frames in enumerate(aligned_frames(streams, names, resized)):
            history.append((frames[0], [to_unit(f) for f in frames]))
            for gap in config.gaps:
                if t >= gap:
                    scorer.add(t, gap, history[-1 - gap], history[-1])
            num_frames = t + 1
            bar.update(1)
    if num_frames == 0:
        raise VideoError(f"{input_name}: no frames to compare")
    videos = scorer.finish()
    if truth is not None and not any(s.curve for s in videos[0].scores.values()):
        raise FlowFileError(f"no .flo file in {truth.flow_dir} matches a pair of frames of {input_name} "
                            f"(flows numbered {min(truth.flows)}..{max(truth.flows)})")
    for i, size in resized.items():
        videos[i].resized_from = size
    height, width = history[-1][0].shape[:2]
    return ConsistencyReport(input_name, width, height, num_frames, _flow_info(config, truth),
                             [d.name for d in definitions], list(config.gaps), videos, scorer.unscored)


def _flow_info(config: ConsistencyConfig, truth: GroundTruthFlow | None) -> dict:
    if truth is None:
        return {"source": "estimated", "method": config.flow_method, "params": dict(config.flow_params)}
    return {"source": "ground truth", "flow": truth.flow_dir, "occlusions": truth.occlusion_dir,
            "invalid": truth.invalid_dir}


def evaluate_consistency_paths(
    input_path: str,
    stylized_paths: Sequence[str],
    *,
    config: ConsistencyConfig = ConsistencyConfig(),
    gt_flow: str | None = None,
    gt_occlusions: str | None = None,
    gt_invalid: str | None = None,
    max_frames: int | None = None,
    progress: bool = False,
) -> ConsistencyReport:
    """:func:`evaluate_consistency` on video files or frame folders; every check runs before decoding."""
    check_consistency_config(config)
    if (gt_occlusions or gt_invalid) and not gt_flow:
        raise ConfigError("--gt-occlusions and --gt-invalid go with --gt-flow DIR")
    count = common_frame_count(input_path, stylized_paths, max_frames)
    if max(config.gaps) >= count:
        raise ConfigError(f"gap {max(config.gaps)} needs more than the {count} frames compared")
    truth = GroundTruthFlow(gt_flow, gt_occlusions, gt_invalid) if gt_flow else None
    return evaluate_consistency(
        iter_frames(input_path, max_frames=max_frames),
        [(p, iter_frames(p, max_frames=max_frames)) for p in stylized_paths],
        input_name=input_path, config=config, truth=truth,
        numbers=frame_numbers(input_path, count) if truth else None, total=count, progress=progress)
