"""The job queue: uploaded clips and photos stylized one at a time in a worker thread.

    queue = JobQueue(root, catalog, keep_hours=24)
    queue.start()
    job = queue.submit(queue.new_job(), entry, "photo", "beach.jpg", options)   # runs in turn
    queue.get(job.id).to_dict()        # {"state": "running", "progress": 0.4, ...}
    queue.remove(job.id)               # cancels (within a frame) and deletes its folder
    queue.close()                      # on exit: stops the worker, deletes every job folder

Each job has one folder under ``root``, named by the server (a random id): the upload, then the
result, which the library writes atomically (a failed or cancelled job leaves no result). Jobs run
through the same code as ``vidstyle infer`` (:func:`vidstyle.infer.batch.run_item`), so audio,
frame rate and sizes are kept as it keeps them. Finished jobs are removed ``keep_hours`` after
they end.
"""

from __future__ import annotations

import collections
import contextlib
import os
import shutil
import sys
import threading
import time
import traceback
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from vidstyle.errors import VideoError, VidstyleError
from vidstyle.infer.batch import Item, run_item
from vidstyle.infer.color import ColorOptions
from vidstyle.infer.inferconfig import InferOptions
from vidstyle.infer.job import fit_size
from vidstyle.io.encode import write_video
from vidstyle.io.video import iter_frames, probe
from vidstyle.models.zoo import ModelEntry
from vidstyle.serve.catalog import Catalog

ACTIVE = ("queued", "running")
FINISHED = ("done", "failed", "cancelled")
RATE_WINDOW = 20      # frames the frames/s figure is measured over


class JobCancelled(Exception):
    """Raised in the job's progress callback when the job was cancelled: unwinds the library's
    job, which then removes its unfinished output."""


@dataclass
class JobOptions:
    """What the page's controls set: colour (strength, preserve_color), the stabilizer's strength
    and an optional longest side (pixels)."""

    strength: float = 1.0
    preserve_color: bool = False
    stabilize: float = 0.0
    max_size: int | None = None

    def infer_options(self) -> InferOptions:
        color = ColorOptions(preserve_color=self.preserve_color, strength=self.strength)
        return InferOptions(max_size=self.max_size, stabilize=self.stabilize,
                            post_process=color.apply if color.changes_output else None)


@dataclass
class Job:
    """One upload's job: its folder (named by the server), model, options, and the progress and
    outcome the API reports (:meth:`to_dict`)."""

    id: str
    folder: Path
    created: float = field(default_factory=time.time)
    entry: ModelEntry | None = None
    kind: str = ""
    filename: str = ""
    input: Path | None = None
    options: JobOptions = field(default_factory=JobOptions)
    state: str = "queued"
    frames_done: int = 0
    frames_total: int = 0
    started: float | None = None
    finished: float | None = None
    error: str | None = None
    note: str | None = None             # what the job is doing before its first frame
    seconds: float | None = None        # the library's own time for the finished job
    result: Path | None = None
    cancel: threading.Event = field(default_factory=threading.Event)
    copy_lock: threading.Lock = field(default_factory=threading.Lock)
    _times: collections.deque = field(default_factory=lambda: collections.deque(maxlen=RATE_WINDOW))

    def on_frame(self, done: int, total: int) -> None:
        """The library's progress callback, in the job's thread: count, time, and stop if cancelled."""
        if self.cancel.is_set():
            raise JobCancelled
        self.frames_done, self.frames_total = done, total
        self._times.append((time.perf_counter(), done))
        self.note = None

    @property
    def fps(self) -> float | None:
        if len(self._times) < 2:
            return None
        (t0, d0), (t1, d1) = self._times[0], self._times[-1]
        return (d1 - d0) / (t1 - t0) if t1 > t0 else None

    @property
    def progress(self) -> float:
        if self.state == "done":
            return 1.0
        return min(self.frames_done / self.frames_total, 1.0) if self.frames_total else 0.0

    def to_dict(self) -> dict:
        fps = self.fps if self.state == "running" else None
        eta = (self.frames_total - self.frames_done) / fps if fps else None
        if self.state == "done" and self.seconds and self.kind == "video":
            fps = self.frames_done / self.seconds
        return {"id": self.id, "state": self.state, "progress": round(self.progress, 4),
                "frames_done": self.frames_done, "frames_total": self.frames_total,
                "fps": round(fps, 2) if fps else None, "eta_s": round(eta, 1) if eta is not None else None,
                "error": self.error, "note": self.note, "kind": self.kind, "filename": self.filename,
                "model": self.entry.name if self.entry else None,
                "options": {"strength": self.options.strength,
                            "preserve_color": self.options.preserve_color,
                            "stabilize": self.options.stabilize, "max_size": self.options.max_size},
                "created": self.created, "started": self.started, "finished": self.finished,
                "result": f"/api/jobs/{self.id}/result" if self.state == "done" else None,
                "input": f"/api/jobs/{self.id}/input"}

    def download_name(self) -> str:
        stem = Path(self.filename).stem or "upload"
        return f"{stem}.{self.entry.name}{self.result.suffix if self.result else ''}"


class JobQueue:
    """Jobs by id, run one at a time by a worker thread, in the order submitted."""

    def __init__(self, root: str | os.PathLike, catalog: Catalog, keep_hours: float = 24.0):
        self.root, self.catalog, self.keep_hours = Path(root), catalog, keep_hours
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        self._pending: collections.deque[Job] = collections.deque()
        self._wake = threading.Condition(self._lock)
        self._closed = False
        self._current: Job | None = None
        self._worker = threading.Thread(target=self._work, name="vidstyle-serve-jobs", daemon=True)
        catalog.notify = self._notify

    # --- the API's side ----------------------------------------------------------------------------

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self._worker.start()

    def new_job(self) -> Job:
        """A job with a fresh folder to receive its upload; not listed until :meth:`submit`."""
        job_id = uuid.uuid4().hex
        folder = self.root / job_id
        folder.mkdir(parents=True)
        return Job(job_id, folder)

    def discard(self, job: Job) -> None:
        """Drop a job that was never submitted (its upload failed): delete its folder."""
        shutil.rmtree(job.folder, ignore_errors=True)

    def submit(self, job: Job, entry: ModelEntry, kind: str, filename: str, upload: Path,
               options: JobOptions) -> Job:
        """Queue ``job`` on the upload at ``upload`` (in its folder); it runs after those before it."""
        job.entry, job.kind, job.filename, job.input, job.options = entry, kind, filename, upload, options
        job.frames_total = 1 if kind == "photo" else probe(upload).num_frames
        with self._wake:
            if self._closed:
                raise VideoError("the server is shutting down")
            self._jobs[job.id] = job
            self._pending.append(job)
            self._wake.notify()
        return job

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)

    def jobs(self) -> list[Job]:
        """The jobs in the order submitted, less those being removed."""
        with self._lock:
            return [job for job in self._jobs.values() if not job.cancel.is_set()]

    def remove(self, job_id: str) -> Job | None:
        """Cancel ``job_id`` if it is queued or running, and delete it with its files. A running
        job stops at its next frame; it shows as "cancelled" until then. None if unknown."""
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None:
                return None
            job.cancel.set()
            if job is self._current:         # the worker deletes it when the job has stopped
                job.state, job.error = "cancelled", None
                return job
            if job.state == "queued":
                job.state = "cancelled"
                self._pending.remove(job)
            del self._jobs[job_id]
        shutil.rmtree(job.folder, ignore_errors=True)
        return job

    def sweep(self, now: float | None = None) -> list[str]:
        """Remove the jobs that ended more than ``keep_hours`` ago; their ids."""
        now = time.time() if now is None else now
        cutoff = now - self.keep_hours * 3600
        with self._lock:
            old = [job.id for job in self._jobs.values()
                   if job.state in FINISHED and (job.finished or now) <= cutoff]
        for job_id in old:
            self.remove(job_id)
        return old

    def close(self, timeout: float = 10.0) -> None:
        """Stop: cancel every job, wait for the running one to stop, delete the folders."""
        with self._wake:
            self._closed = True
            for job in self._jobs.values():
                job.cancel.set()
            self._pending.clear()
            self._wake.notify_all()
        if self._worker.is_alive():
            self._worker.join(timeout)
        shutil.rmtree(self.root, ignore_errors=True)

    # --- the worker's side -------------------------------------------------------------------------

    def _notify(self, text: str) -> None:
        job = self._current
        if job is not None:
            job.note = text

    def _work(self) -> None:
        while True:
            with self._wake:
                while not self._pending and not self._closed:
                    self._wake.wait()
                if self._closed:
                    return
                job = self._pending.popleft()
                self._current = job
                job.state, job.started = "running", time.time()
                job.note = "starting: loading the model"
            try:
                self._run(job)
            finally:
                with self._lock:
                    self._current = None
                    job.finished = time.time()
                    gone = job.cancel.is_set()
                    if gone:
                        job.state = "cancelled"
                if gone:      # the folder goes first: once the job is unknown, its files are gone
                    shutil.rmtree(job.folder, ignore_errors=True)
                    with self._lock:
                        self._jobs.pop(job.id, None)

    def _run(self, job: Job) -> None:
        output = job.folder / ("result.png" if job.kind == "photo" else "result.mp4")
        item = Item(job.id, job.input, job.kind, output)
        try:
            pool = self.catalog.pool(job.entry)
            result = run_item(item, pool, job.options.infer_options(), progress=False,
                              on_frame=job.on_frame)
        except JobCancelled:
            return
        except VidstyleError as error:
            self._fail(job, str(error))
            return
        except Exception as error:  # noqa: BLE001 (the server goes on; the job says what broke)
            traceback.print_exc(file=sys.stderr)
            self._fail(job, f"internal error: {type(error).__name__}: {error}")
            return
        if result.status != "ok":    # a cut upload: its decodable frames are no finished result
            if result.output:
                Path(result.output).unlink(missing_ok=True)
            self._fail(job, result.error or "the job failed")
            return
        with self._lock:
            job.result = Path(result.output)
            job.frames_done = max(job.frames_done, result.frames)
            job.frames_total = max(job.frames_total, job.frames_done)
            job.seconds, job.note, job.state = result.seconds, None, "done"

    def display_copy(self, job: Job) -> Path:
        """The upload as H.264 (yuv420p, so an even size) at the result's size, for a browser that
        cannot play the upload's own format (AVI, MPEG-4 part 2, ...); made once, on request."""
        path = job.folder / "original.mp4"
        with job.copy_lock:
            if not path.is_file():
                info = probe(job.input)
                width, height = fit_size(info.width, info.height, job.options.max_size) or info.size
                size = (max(2, width - width % 2), max(2, height - height % 2))
                with contextlib.closing(iter_frames(job.input, size=size)) as frames:
                    write_video(path, frames, info.fps, preset="veryfast")
        return path

    def _fail(self, job: Job, message: str) -> None:
        # Messages name the server's files; the user knows the upload by its own name.
        message = message.replace(str(job.input), job.filename).replace(f"{job.folder}{os.sep}", "")
        with self._lock:
            job.state, job.error = "failed", message.splitlines()[0] if message else "failed"


def stale_instances(parent: Path) -> list[Path]:
    """Folders under ``parent`` left by servers that are no longer running (killed before they
    could clean up): each server's folder holds a ``pid`` file."""
    stale = []
    for folder in parent.glob("*/"):
        try:
            pid = int((folder / "pid").read_text())
            os.kill(pid, 0)
        except ProcessLookupError:
            stale.append(folder)
        except (OSError, ValueError):
            continue
    return stale


def instance_folder(parent: Path) -> Path:
    """A fresh folder for this server's jobs under ``parent``, after removing stale ones."""
    parent.mkdir(parents=True, exist_ok=True)
    for folder in stale_instances(parent):
        shutil.rmtree(folder, ignore_errors=True)
    folder = parent / uuid.uuid4().hex[:12]
    folder.mkdir()
    (folder / "pid").write_text(str(os.getpid()))
    return folder
