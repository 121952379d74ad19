"""Published definitions of the temporal (warping) error, each computed from the same per-pair sums.

A pair is stylized frames (t, t+K). One frame is warped onto the other's pixel grid with the optical
flow of the input (or the dataset's ground truth) and compared there, over the pixels a mask keeps.
Everything a definition needs from a pair is in :class:`PairTerms` (RGB in [0, 1]):

    SSE = sum over kept pixels x and channels c of (reference_c(x) - warped_c(x))^2
    N   = kept pixels,  P = all pixels of the frame

Each :class:`Definition` turns those into a per-pair value, then aggregates the pairs: a mean, or the
square root of the mean (``root_of_mean``). The table in docs/metrics.md ("For researchers") lists
formula, paper and conversions; this module is its source.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from vidstyle.errors import ConfigError


@dataclass(frozen=True)
class PairTerms:
    """The sums one pair contributes: ``sse`` over kept pixels and R, G, B; ``kept`` and ``pixels`` counts."""

    sse: float
    kept: int
    pixels: int

    @property
    def kept_fraction(self) -> float:
        return self.kept / self.pixels if self.pixels else math.nan


def pair_terms(reference01: np.ndarray, warped01: np.ndarray, keep: np.ndarray) -> PairTerms:
    """Sums of one pair: float RGB (H, W, 3) in [0, 1] on one grid, ``keep`` bool (H, W)."""
    keep = keep.astype(bool, copy=False)
    diff = reference01[keep] - warped01[keep]
    return PairTerms(float(np.sum(np.square(diff, dtype=np.float64))), int(keep.sum()), keep.size)


def _masked_mean(p: PairTerms) -> float:
    return p.sse / (3 * p.kept) if p.kept else math.nan


def _over_all_values(p: PairTerms) -> float:
    return p.sse / (3 * p.pixels)


def _over_all_pixels(p: PairTerms) -> float:
    return p.sse / p.pixels


def _masked_rms(p: PairTerms) -> float:
    return math.sqrt(_masked_mean(p)) if p.kept else math.nan


@dataclass(frozen=True)
class Definition:
    """One published formula. ``per_pair`` maps a pair's sums to its value; pairs are then averaged,
    and the root taken after averaging when ``root_of_mean``. ``direction`` says which frame is warped
    when the flow is estimated: "backward" warps frame t onto t+K with the backward flow (mask on the
    grid of t+K), "forward" warps frame t+K onto t with the forward flow (mask on the grid of t).
    Ground-truth flow (forward only, as MPI Sintel ships it) always gives "forward".
    """

    name: str
    paper: str
    formula: str
    per_pair: Callable[[PairTerms], float]
    root_of_mean: bool
    direction: str

    def aggregate(self, values: Sequence[float]) -> float:
        """The video's value from its per-pair values; pairs whose mask kept nothing (NaN) are skipped."""
        kept = [v for v in values if not math.isnan(v)]
        if not kept:
            return math.nan
        mean = float(np.mean(kept))
        return math.sqrt(mean) if self.root_of_mean else mean


DEFINITIONS: dict[str, Definition] = {d.name: d for d in (
    Definition("vidstyle", "vidstyle (default; Lai et al. 2018 normalized per channel)",
               "mean_pairs[ SSE / (3 N) ]", _masked_mean, root_of_mean=False, direction="backward"),
    Definition("lai2018", "Lai et al., ECCV 2018, 'Learning Blind Video Temporal Consistency'",
               "mean_pairs[ SSE / (3 N) ]", _masked_mean, root_of_mean=False, direction="forward"),
    Definition("huang2017", "Huang et al., CVPR 2017, 'Real-Time Neural Style Transfer for Videos'",
               "sqrt( mean_pairs[ SSE / (3 P) ] )", _over_all_values, root_of_mean=True, direction="forward"),
    Definition("reconet2018", "Gao et al., ACCV 2018, 'ReCoNet'",
               "sqrt( mean_pairs[ SSE / P ] )", _over_all_pixels, root_of_mean=True, direction="backward"),
    Definition("wang2020", "Wang et al., AAAI 2020, 'Consistent Video Style Transfer via Compound "
               "Regularization'", "mean_pairs[ sqrt( SSE / (3 N) ) ]", _masked_rms, root_of_mean=False,
               direction="forward"),
)}
DEFAULT_DEFINITION = "vidstyle"


def get_definitions(names: Sequence[str]) -> list[Definition]:
    """The definitions named, in order and without repeats; ConfigError for an unknown name."""
    unknown = [n for n in names if n not in DEFINITIONS]
    if unknown:
        raise ConfigError(f"unknown definition {unknown[0]!r}; choose from {', '.join(DEFINITIONS)}")
    return [DEFINITIONS[n] for n in dict.fromkeys(names)]
