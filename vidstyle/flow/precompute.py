"""The flow precompute batch job: clips in, one verified ``vidstyle-flow/1`` file per clip out.

Clips are found under the sources given, named by a stable id, split into shards by a hash of that id
(so N machines given the same sources and ``--shard i/N`` share the work with no coordination), and
run in a process pool. A clip whose finished file exists, validates and was made with the same
settings is skipped, so rerunning a killed or partly failed job finishes the rest. Each clip's outcome
is appended to ``<out>/manifest.jsonl``.

Jobs may share an output folder: a clip is written only by the job holding its lock
(``<id>.h5.lock``, an flock the kernel drops when the holder dies), under a temporary name of its
own. Ctrl-C stops the workers within one pair: finished clips keep their files and manifest lines,
unfinished ones leave nothing behind.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import multiprocessing as mp
import os
import re
import signal
import tempfile
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from tqdm import tqdm

from vidstyle import __version__
from vidstyle.batchwork import BatchSummary, in_shard, walk
from vidstyle.errors import ConfigError, FlowFileError, VidstyleError
from vidstyle.flow.flowstore import validate
from vidstyle.flow.flowwriter import FlowFileWriter
from vidstyle.flow.optical import check_method, compute_pair
from vidstyle.fsutil import hold_lock
from vidstyle.io.h5safety import leftover_temporaries

MANIFEST = "manifest.jsonl"
# After Ctrl-C, how long the parent waits for running clips to notice and clean up (each checks
# between pairs; a pair takes well under a second at training sizes).
STOP_GRACE_S = 5.0


@dataclass(frozen=True)
class Clip:
    """A clip to process: ``id`` names its output file ``<id>.h5``; ``path`` is a video or frame folder."""

    id: str
    path: Path


@dataclass(frozen=True)
class FlowJob:
    """Settings of one precompute run; a finished file is reused only if made with equal settings."""

    method: str = "farneback"
    params: dict = field(default_factory=dict)
    size: tuple[int, int] | None = None       # (width, height) frames are resized to; None keeps them
    max_frames: int | None = None            # of the clip's frames, before frame_step
    frame_step: int = 1                      # keep frames 0, K, 2K, ...: pairs (t, t+K) of the clip

    def signature(self) -> str:
        settings = {"method": self.method, "params": self.params,
                    "size": list(self.size) if self.size else None, "max_frames": self.max_frames}
        if self.frame_step != 1:             # files made before the setting existed stay valid
            settings["frame_step"] = self.frame_step
        return json.dumps(settings, sort_keys=True)

    def check(self) -> None:
        """ConfigError for settings that cannot work, before any clip is opened."""
        check_method(self.method)
        if self.max_frames is not None and self.max_frames < 2:
            raise ConfigError("--max-frames must be at least 2")
        if self.frame_step < 1:
            raise ConfigError(f"--frame-step must be at least 1, got {self.frame_step}")


@dataclass
class ClipResult:
    """One manifest line. ``status`` is ok, skipped (finished file reused), busy (another job was
    writing the clip), failed, or interrupted (stopped by Ctrl-C; never written to the manifest)."""

    id: str
    source: str
    status: str
    frames: int = 0
    pairs: int = 0
    seconds: float = 0.0
    error: str | None = None
    output: str | None = None


def parse_size(text: str | None) -> tuple[int, int] | None:
    """``"640x360"`` -> (640, 360)."""
    if text is None:
        return None
    match = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if not match or min(int(match[1]), int(match[2])) < 8:
        raise ConfigError(f"size must be WIDTHxHEIGHT with both at least 8, e.g. 640x360, not {text!r}")
    return int(match[1]), int(match[2])


def _clip_id(relative: Path) -> str:
    """A file-name-safe id from a clip's path relative to the source it was found under."""
    parts = [*relative.parent.parts, relative.stem if relative.suffix else relative.name]
    return re.sub(r"[^A-Za-z0-9._-]+", "_", "__".join(p for p in parts if p not in ("", "."))) or "clip"


def find_clips(sources: Sequence[str | os.PathLike]) -> tuple[list[Clip], list[Path]]:
    """Clips under ``sources``, sorted by id, and the other files met (reported, not processed).

    A source is a video file, a folder of numbered frames (one clip), or a folder searched recursively
    for both. Ids come from paths relative to the source, so they are the same on every machine that
    mounts the data elsewhere. Two clips with one id are an error, never a silent overwrite.
    """
    from vidstyle.io.video import is_clip

    clips: dict[str, Clip] = {}
    others: list[Path] = []

    def add(path: Path, relative: Path) -> None:
        clip = Clip(_clip_id(relative), path)
        if clip.id in clips:
            raise ConfigError(f"two clips would be written as {clip.id}.h5: "
                              f"{clips[clip.id].path} and {path}; rename one")
        clips[clip.id] = clip

    for source in map(Path, sources):
        if not source.exists():
            raise ConfigError(f"{source}: no such file or folder")
        if source.is_dir() and not is_clip(source):
            for entry in walk(source, descend=lambda folder: not is_clip(folder)):
                if is_clip(entry):
                    add(entry, entry.relative_to(source))
                else:
                    others.append(entry)
        else:
            # A file named directly is attempted whatever its extension: the user asked for it.
            add(source, Path(source.name))
    return sorted(clips.values(), key=lambda c: c.id), others


def output_path(out_dir: Path, clip: Clip) -> Path:
    return out_dir / f"{clip.id}.h5"


def is_finished(path: Path, job: FlowJob) -> bool:
    """True if ``path`` is a whole, valid file made with ``job``'s settings."""
    if not path.is_file():
        return False
    try:
        attrs = validate(path)
    except FlowFileError:
        return False
    return attrs.get("job") == job.signature()


def claim(path: Path) -> contextlib.AbstractContextManager[bool]:
    """Hold the lock of output ``path`` (``<path>.lock``) for the ``with`` block; yields False, at
    once, if another process holds it (:func:`vidstyle.fsutil.hold_lock`)."""
    return hold_lock(path.with_name(path.name + ".lock"))


class _Stopped(Exception):
    """The batch was interrupted while this clip was being written."""


def process_clip(clip: Clip, out_dir: Path, job: FlowJob, progress=None, stop=None) -> ClipResult:
    """Compute and store frames, flows and masks of one clip, unless it is finished or another job is
    writing it. Never raises for a bad clip: the failure is returned in the result so the batch goes
    on. ``stop`` (an Event), once set, ends the clip between pairs as ``interrupted``."""
    start = time.perf_counter()
    result = ClipResult(id=clip.id, source=str(clip.path), status="failed")
    destination = output_path(out_dir, clip)
    try:
        with claim(destination) as mine:
            if not mine:
                result.status, result.error = "busy", "another job was writing this clip"
            elif is_finished(destination, job):
                result.status, result.output = "skipped", str(destination)
            else:
                for leftover in leftover_temporaries(destination):  # of a killed job; we hold the lock
                    leftover.unlink(missing_ok=True)
                _write_clip(clip, destination, job, result, progress, stop)
                result.status, result.output = "ok", str(destination)
    except _Stopped:
        result.status = "interrupted"
    except VidstyleError as exc:
        result.error = str(exc)
    except Exception as exc:  # a decoder or library failure in one clip must not stop the batch
        result.error = f"{clip.path}: {type(exc).__name__}: {exc}"
    result.seconds = round(time.perf_counter() - start, 3)
    return result


def _write_clip(clip: Clip, destination: Path, job: FlowJob, result: ClipResult, progress, stop) -> None:
    """The work of ``process_clip``: decode, compute each pair, write, verify. Counts into ``result``."""
    from vidstyle.io.video import iter_frames, probe

    if stop is not None and stop.is_set():
        raise _Stopped()
    info = probe(clip.path)
    source_count = min(info.num_frames, job.max_frames or info.num_frames)
    frame_count = (source_count - 1) // job.frame_step + 1 if source_count > 0 else 0
    if frame_count < 2:
        step = f" {job.frame_step} apart" if job.frame_step > 1 else ""
        raise VidstyleError(f"{clip.path}: {source_count} frame(s); a clip needs at least 2{step}")
    width, height = job.size or (info.width, info.height)
    stat = clip.path.stat()
    attrs = {
        "source": str(clip.path), "source_size": stat.st_size if clip.path.is_file() else 0,
        "source_mtime": stat.st_mtime, "fps": float(info.fps) / job.frame_step,
        "frame_step": job.frame_step, "source_frames": info.num_frames,
        "source_width": info.width, "source_height": info.height,
        "flow_method": job.method, "flow_params": job.params, "job": job.signature(),
        "clip_id": clip.id, "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "vidstyle_version": __version__,
    }
    with FlowFileWriter(destination, num_frames=frame_count, height=height, width=width,
                        attrs=attrs) as writer:
        previous = None
        for index, frame in enumerate(iter_frames(clip.path, size=job.size, max_frames=source_count)):
            if stop is not None and stop.is_set():
                raise _Stopped()
            if index % job.frame_step:
                continue
            t = index // job.frame_step
            writer.write_frame(t, frame)
            if previous is not None:
                writer.write_pair(t - 1, *compute_pair(previous, frame, job.method, **job.params))
                result.pairs += 1
                if progress is not None:
                    progress.put(1)
            previous = frame
            result.frames = t + 1
    validate(destination, check_values=False)


_worker_progress = None  # in pool workers: the queue that counts finished pairs for the parent
_worker_stop = None      # in pool workers: the Event the parent sets on Ctrl-C


def _die_with_parent(parent: int) -> None:
    """Have the kernel kill this process when ``parent`` dies (Linux's PR_SET_PDEATHSIG), and exit now
    if it already has: a parent killed while this worker was still starting would otherwise leave it
    waiting for work forever."""
    try:
        ctypes.CDLL("libc.so.6").prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:
        os._exit(1)


def _init_worker(threads: int, progress, stop, parent: int) -> None:
    """Pool worker set-up: die with the parent (a killed job leaves no orphan writing files), leave
    Ctrl-C to the parent (which sets ``stop``), and pin OpenCV's threads so N workers share N cores."""
    global _worker_progress, _worker_stop
    _worker_progress, _worker_stop = progress, stop
    _die_with_parent(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    import cv2

    cv2.setNumThreads(threads)


def _process_clip_in_worker(clip: Clip, out_dir: Path, job: FlowJob) -> ClipResult:
    return process_clip(clip, out_dir, job, _worker_progress, _worker_stop)


def append_manifest(out_dir: Path, result: ClipResult) -> None:
    """One JSON line per clip, written with a single append so concurrent jobs do not interleave."""
    line = json.dumps({**asdict(result), "time": datetime.now(timezone.utc).isoformat(timespec="seconds")})
    try:
        fd = os.open(out_dir / MANIFEST, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, (line + "\n").encode())
        finally:
            os.close(fd)
    except OSError as exc:
        raise ConfigError(f"{out_dir / MANIFEST}: cannot add to the log ({exc.strerror})") from None


def check_writable(out_dir: Path) -> None:
    """Create out_dir if needed and prove that a file can be made in it.

    The probe has a name of its own, so jobs sharing one folder never remove each other's probe.
    """
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-test.", dir=out_dir)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise ConfigError(f"{out_dir}: cannot write flow files there ({exc.strerror})") from None


def run_batch(sources: Sequence[str | os.PathLike], out_dir: str | os.PathLike, job: FlowJob, *,
              workers: int = 1, shard: tuple[int, int] = (0, 1), show_progress: bool = True) -> BatchSummary:
    """Process every clip of this shard that is not finished yet; see the module docstring."""
    job.check()
    start = time.perf_counter()
    out_dir = Path(out_dir)
    check_writable(out_dir)
    clips, others = find_clips(sources)
    clips = [c for c in clips if in_shard(c.id, shard)]
    if not clips and not others:
        raise ConfigError(f"no clips found in {', '.join(map(str, sources))}")

    results: list[ClipResult] = []
    todo: list[Clip] = []
    for clip in clips:
        if is_finished(output_path(out_dir, clip), job):
            result = ClipResult(id=clip.id, source=str(clip.path), status="skipped",
                                output=str(output_path(out_dir, clip)))
            results.append(result)
            append_manifest(out_dir, result)
        else:
            todo.append(clip)

    bar = tqdm(total=len(clips), initial=len(results), unit="clip", disable=not show_progress,
               desc=f"flows {shard[0]}/{shard[1]}" if shard[1] > 1 else "flows")
    pairs_done, pair_start = 0, time.perf_counter()

    def finished(result: ClipResult) -> None:
        if result.status == "interrupted":
            return
        results.append(result)
        append_manifest(out_dir, result)
        bar.update(1)
        if result.status == "failed":
            bar.write(f"failed: {result.error}")

    def tick(n: int) -> None:
        nonlocal pairs_done
        pairs_done += n
        rate = pairs_done / max(time.perf_counter() - pair_start, 1e-9)
        bar.set_postfix_str(f"{pairs_done} pairs, {rate:.1f} pairs/s")

    workers = max(1, min(workers, len(todo)))
    try:
        if workers == 1:
            progress = _Counter(tick)
            for clip in todo:
                finished(process_clip(clip, out_dir, job, progress))
        else:
            _run_pool(todo, out_dir, job, workers, finished, tick)
    finally:
        bar.close()
    for path in others:
        append_manifest(out_dir, ClipResult(id=path.stem, source=str(path), status="ignored",
                                            error="not a video file or frame folder"))
    return BatchSummary(results, others, time.perf_counter() - start)


def _run_pool(todo: list[Clip], out_dir: Path, job: FlowJob, workers: int, finished, tick) -> None:
    """Process ``todo`` in ``workers`` processes, passing each result to ``finished`` as it comes.

    On Ctrl-C: clips not started are cancelled, running ones are told to stop (they remove their
    temporaries), clips that finish meanwhile are still reported, then KeyboardInterrupt goes on.
    """
    threads = max(1, (os.cpu_count() or 1) // workers)
    ctx = mp.get_context("spawn")
    progress, stop = ctx.SimpleQueue(), ctx.Event()
    with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker,
                             initargs=(threads, progress, stop, os.getpid())) as pool:
        pending = {pool.submit(_process_clip_in_worker, clip, out_dir, job): clip for clip in todo}
        try:
            while pending:
                done, _ = wait(pending, timeout=0.25, return_when=FIRST_COMPLETED)
                tick(_drain(progress))
                for future in done:
                    with _ctrl_c_deferred():   # a clip is recorded whole, or left for the handler below
                        finished(_outcome(future, pending.pop(future)))
        except KeyboardInterrupt:
            stop.set()
            for future in pending:
                future.cancel()
            done, _ = wait(pending, timeout=STOP_GRACE_S)
            for future in done:
                if not future.cancelled():
                    finished(_outcome(future, pending[future]))
            raise
        tick(_drain(progress))


@contextlib.contextmanager
def _ctrl_c_deferred():
    """Hold a Ctrl-C that comes during the block until the block is done, then deliver it to the
    handler there was. (Outside the main thread, where handlers cannot be set, nothing is held.)"""
    caught = []
    try:
        previous = signal.signal(signal.SIGINT, lambda *_: caught.append(True))
    except ValueError:
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if caught:
        signal.raise_signal(signal.SIGINT)


def _outcome(future, clip: Clip) -> ClipResult:
    """A worker's result. A worker that died (a crash in a library, the out-of-memory killer) fails
    its clip with one line instead of ending the batch with a traceback."""
    try:
        return future.result()
    except Exception as exc:
        return ClipResult(id=clip.id, source=str(clip.path), status="failed",
                          error=f"{clip.path}: the worker process died ({type(exc).__name__})")


class _Counter:
    """The single-process stand-in for the workers' progress queue."""

    def __init__(self, callback):
        self.put = callback


def _drain(q) -> int:
    n = 0
    while not q.empty():
        n += q.get()
    return n


def pairs_written(summary: BatchSummary) -> int:
    """Flow pairs this run wrote (clips reused from an earlier run not counted)."""
    return sum(r.pairs for r in summary.results if r.status == "ok")


def format_summary(summary: BatchSummary) -> Iterable[str]:
    busy = f"{summary.count('busy')} being written by another job, " if summary.count("busy") else ""
    yield (f"{summary.count('ok')} done, {summary.count('skipped')} already done, {busy}"
           f"{summary.count('failed')} failed, {len(summary.ignored)} other files ignored; "
           f"{pairs_written(summary)} pairs in {summary.seconds:.1f} s")
    for result in summary.results:
        if result.status == "failed":
            yield f"  failed {result.id}: {result.error}"
