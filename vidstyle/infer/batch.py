"""Many inputs in one ``infer`` run: videos, photos and folders of them, one output each.

    items, ignored = find_inputs(["a.mp4", "photos/", "videos/"], model_name="starry_night")
    items = plan_outputs(items, "starry_night", out="styled/")        # or out=None: beside each input
    pool = StylizerPool(open_model("starry_night"), engine)           # vidstyle.models.lazymodel
    for result in run_items(items, pool, options, progress=True): ...

What an argument becomes:

- a file: one input, a photo if its suffix is a still image's (.jpg, .png, .webp, .avif, ...),
  else a video (an animated GIF, WebP, PNG or AVIF too);
- a folder of numbered frames: one video, as ``vidstyle flows precompute`` decides (its longest
  numbered image sequence is at least half its images and it holds no video), provided the frames
  share one size and the first carries no camera EXIF tags: numbered photos from a camera
  (IMG_0001.JPG, ...) are photos;
- any other folder: searched recursively for videos, photos and frame folders; other files are
  reported as ignored, and so are files named like an output of this model (``x.MODEL.png``) so that
  a rerun does not stylize its own results.

Each input has a stable id, its path relative to the argument it was found under; ``--shard I/N``
takes the inputs whose id hashes to I (precompute's rule), so N machines given the same arguments
share the work with no coordination. With an output folder, outputs keep that relative path.
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from PIL import Image

from vidstyle import __version__
from vidstyle.batchwork import BatchSummary, in_shard, walk
from vidstyle.errors import ConfigError, VidstyleError
from vidstyle.infer.engines import StylizerPool
from vidstyle.infer.inferconfig import InferOptions
from vidstyle.infer.job import MAX_OUTPUT_NAME, default_output, job_size, stylize_video
from vidstyle.infer.photo import PHOTO_EXTENSIONS, default_photo_output, is_photo, stylize_photo
from vidstyle.io.encode import partial_path
from vidstyle.io.framefolder import IMAGE_EXTENSIONS, numbered_images
from vidstyle.io.video import VIDEO_EXTENSIONS, is_clip, probe

# EXIF tags a camera writes (Make, Model, DateTimeOriginal is in a sub-IFD so DateTime stands in):
# frames written out of a video by ffmpeg, OpenCV or Pillow carry none of them.
_CAMERA_TAGS = (0x010F, 0x0110, 0x0132)


@dataclass(frozen=True)
class Item:
    """One input: ``id`` (stable, for shards), its ``path``, ``kind`` "video" or "photo", and where
    its output goes (None until :func:`plan_outputs`)."""

    id: str
    path: Path
    kind: str
    output: Path | None = None


@dataclass
class ItemResult:
    """The outcome of one input: status "ok" or "failed" (``error`` says why; a truncated video is
    "failed" with its decodable frames written)."""

    input: str
    kind: str
    status: str
    output: str | None = None
    frames: int = 0
    width: int = 0
    height: int = 0
    seconds: float = 0.0
    device: str | None = None
    compiled: bool = False
    error: str | None = None
    backend: str | None = None
    model: str | None = None        # the model file that ran (a style's fast network, maybe)
    network: str | None = None      # its network: huang, johnson, lite or lite2


# --- finding inputs --------------------------------------------------------------------------------

def is_frame_folder(folder: Path) -> bool:
    """A folder of numbered frames of one video (see the module docstring for the rule)."""
    if not is_clip(folder):
        return False
    files = numbered_images(folder)
    try:
        sizes = set()
        with warnings.catch_warnings():     # a huge frame: the video reader says so, with its name
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            for file in files:
                with Image.open(file) as image:     # reads the header only
                    sizes.add(image.size)
            with Image.open(files[0]) as first:
                exif = first.getexif()
    except (OSError, Image.DecompressionBombError):
        return True     # unreadable frames are reported by the video reader, with their name
    return len(sizes) == 1 and not any(tag in exif for tag in _CAMERA_TAGS)


def _kind(path: Path) -> str:
    return "photo" if is_photo(path) else "video"


def _is_output_of(path: Path, model_name: str | None) -> bool:
    stem = path.name if path.is_dir() else path.stem
    return bool(model_name) and stem.endswith(f".{model_name}")


def find_inputs(arguments: Sequence[str | os.PathLike], model_name: str | None = None
                ) -> tuple[list[Item], list[Path]]:
    """Inputs under ``arguments`` in order (folders sorted by name) and the files ignored."""
    items: list[Item] = []
    ignored: list[Path] = []

    def descend(folder: Path) -> bool:
        return not _is_output_of(folder, model_name) and not is_frame_folder(folder)

    for argument in map(Path, arguments):
        if argument.is_dir() and not is_frame_folder(argument):
            for entry in walk(argument, descend):
                relative = entry.relative_to(argument).as_posix()
                if _is_output_of(entry, model_name):
                    ignored.append(entry)
                elif entry.is_dir():
                    items.append(Item(relative, entry, "video"))
                elif entry.suffix.lower() in VIDEO_EXTENSIONS | PHOTO_EXTENSIONS:
                    items.append(Item(relative, entry, _kind(entry)))
                else:
                    ignored.append(entry)
        else:
            # Named directly: attempted whatever it is, so a missing or odd file gets its own error.
            items.append(Item(argument.name, argument, _kind(argument)))
    return items, ignored


def take_shard(items: list[Item], shard: tuple[int, int]) -> list[Item]:
    """The items of shard ``(index, count)``: crc32 of the id, as ``vidstyle flows precompute``."""
    return [item for item in items if in_shard(item.id, shard)]


def plan_outputs(items: list[Item], model_name: str, out: str | os.PathLike | None,
                 batch: bool, run_inputs: Sequence[Item] = ()) -> list[Item]:
    """Give each item its output path.

    ``out`` None: the default name beside each input. ``batch`` (several inputs, or a folder
    argument) or an existing folder as ``out``: a folder, created if needed, holding the default
    names under each input's relative path (folders are created). Otherwise ``out`` is the one
    output file. Two inputs with one output, or an output that is an input of ``items`` or of
    ``run_inputs`` (the run's other inputs, as in other shards), are refused before any work.
    """
    def default(item: Item) -> Path:
        return (default_photo_output if item.kind == "photo" else default_output)(item.path, model_name)

    to_folder = out is not None and (batch or Path(out).is_dir() or str(out).endswith(("/", os.sep)))
    if out is None:
        planned = [replace(item, output=default(item)) for item in items]
    elif to_folder:
        folder = Path(out)
        if folder.exists() and not folder.is_dir():
            raise ConfigError(f"-o {out}: several inputs need an output folder, and this is a file")
        planned = [replace(item, output=folder / Path(item.id).parent / default(item).name)
                   for item in items]
    else:
        planned = [replace(item, output=Path(out)) for item in items]
    _check_planned(planned, [*planned, *run_inputs], explicit=out is not None and not to_folder)
    if out is not None and to_folder:
        for parent in sorted({item.output.parent for item in planned}):
            try:
                parent.mkdir(parents=True, exist_ok=True)
            except OSError as error:
                raise ConfigError(f"cannot create the output folder {parent}: "
                                  f"{error.strerror or error}") from None
    return planned


def _check_planned(planned: list[Item], run_inputs: list[Item], explicit: bool) -> None:
    """Before any work: no output (or a video's ``.partial`` name) is an input of the run, under
    any name (links included), or another's output; an ``explicit`` name (``-o``) leaves room for
    the temporary's longer name."""
    inputs = {_file_key(item.path): item for item in run_inputs}
    seen: dict[tuple, Item] = {}
    for item in planned:
        if explicit and len(os.fsencode(item.output.name)) > MAX_OUTPUT_NAME:
            raise ConfigError(f"output name {item.output.name[:40]}... is too long: at most "
                              f"{MAX_OUTPUT_NAME} bytes (255 with the temporary's)")
        video = item.output.suffix.lower() not in IMAGE_EXTENSIONS
        for target in (item.output, partial_path(item.output)) if video else (item.output,):
            if (source := inputs.get(_file_key(target))) is not None:
                raise ConfigError(f"output {target} would overwrite the input {source.path}; "
                                  "rename it or choose another output with -o")
        key = _file_key(item.output)
        if key in seen:
            raise ConfigError(f"{seen[key].path} and {item.path} would both be written to "
                              f"{item.output}; rename one or use separate runs")
        seen[key] = item


def _file_key(path: Path) -> tuple:
    """The same for two names of one file (links too): its device and inode, or where it does not
    exist (yet) its absolute path."""
    try:
        stat = path.stat()
    except (OSError, ValueError):
        return ("path", path.resolve())
    return ("inode", stat.st_dev, stat.st_ino)


# --- running ---------------------------------------------------------------------------------------

def run_item(item: Item, pool: StylizerPool, options: InferOptions, progress: bool,
             on_frame: Callable[[int, int], None] | None = None) -> ItemResult:
    """Stylize one input; a VidstyleError propagates (the caller decides: exit 2 or skip).
    ``on_frame``: a video's progress callback (:func:`vidstyle.infer.job.stylize_video`)."""
    if item.kind == "photo":
        stylizer = pool.get(0)
        photo = stylize_photo(item.path, item.output, stylizer, options)
        return ItemResult(input=str(item.path), kind="photo", status="ok", output=str(photo.output),
                          frames=1, width=photo.width, height=photo.height, seconds=photo.seconds,
                          device=photo.device, backend=stylizer.plan.backend, model=pool.model.name,
                          network=pool.model.network)
    if item.output.suffix.lower() in IMAGE_EXTENSIONS:
        raise ConfigError(f"{item.path} is a video: its output needs a video extension (.mp4, .webm, "
                          f".mov or .mkv), not {item.output.name}")
    job = job_size(probe(item.path), options)
    made_by = {"model": pool.model.look, "model_file": pool.model.name,
               "network": str(pool.model.network), "vidstyle": __version__}
    video = stylize_video(item.path, item.output, pool.get(job.work_pixels, (job.width, job.height)),
                          options=replace(options, made_by=made_by), progress=progress,
                          on_frame=on_frame)
    return ItemResult(input=str(item.path), kind="video", status="failed" if video.truncated else "ok",
                      output=str(video.output), frames=video.frames, width=video.width,
                      height=video.height, seconds=video.seconds, device=video.device,
                      compiled=video.compiled, error=video.truncated, backend=video.backend,
                      model=pool.model.name, network=pool.model.network)


def run_items(items: list[Item], pool: StylizerPool, options: InferOptions, progress: bool
              ) -> Iterator[ItemResult]:
    """Stylize each item in turn; a bad one is yielded as "failed" and the rest go on."""
    for item in items:
        started = time.perf_counter()
        try:
            yield run_item(item, pool, options, progress)
        except VidstyleError as error:
            yield ItemResult(input=str(item.path), kind=item.kind, status="failed",
                             seconds=time.perf_counter() - started, error=str(error))


def format_result(result: ItemResult, model_name: str) -> str:
    """One line a user reads: where the output went, its size, the model and the network that ran it,
    speed, device and backend; or why it failed."""
    if result.status == "failed" and not result.output:
        return f"failed {result.input}: {result.error}"
    how = ", ".join(filter(None, (result.device, result.backend, "compiled" if result.compiled else "")))
    timed_video = result.seconds > 0 and result.kind == "video"
    rate = f"{result.frames / result.seconds:.1f} frames/s, " if timed_video else ""
    network = f"{result.network} network" if result.network else ""
    if result.model and result.model != model_name:
        network = f"{network} {result.model}".strip()
    ran = f"model {model_name}" + (f" ({network})" if network else "")
    line = (f"{result.output}: {result.frames} frame{'s' if result.frames != 1 else ''}, "
            f"{result.width}x{result.height}, {ran}, {result.seconds:.1f} s ({rate}{how})")
    return line if result.status == "ok" else f"{line}; failed: {result.error}"


def format_summary(summary: BatchSummary) -> str:
    frames = sum(r.frames for r in summary.results if r.status == "ok")
    return (f"{summary.count('ok')} done, {summary.count('failed')} failed, {len(summary.ignored)} "
            f"other files ignored; {frames} frames in {summary.seconds:.1f} s")
