"""One frame in the chosen style, small, before the whole job: the page's preview.

    frame = preview_frame(path, "video", seconds=1.5)        # uint8 RGB, longest side <= 480
    png = render_preview(catalog, entry, frame, JobOptions(strength=0.8))

The page usually sends a frame it has drawn itself (a small JPEG of what its player shows); for a
format the browser cannot play it sends the file, and the frame is decoded here.
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from vidstyle.infer.job import fit_size
from vidstyle.infer.photo import read_photo
from vidstyle.io.video import iter_frames, probe
from vidstyle.models.zoo import ModelEntry
from vidstyle.serve.catalog import Catalog
from vidstyle.serve.jobs import JobOptions

PREVIEW_SIZE = 480     # pixels, longest side: about a second on a CPU for the full network


def preview_frame(path: Path, kind: str, seconds: float = 0.0, size: int = PREVIEW_SIZE) -> np.ndarray:
    """uint8 RGB (H, W, 3) of the photo, or of the video's frame at ``seconds`` (its last frame when
    the clip is shorter), shrunk to ``size`` on its longest side."""
    if kind == "photo":
        frame = read_photo(path)
        fit = fit_size(frame.shape[1], frame.shape[0], size)
        return frame if fit is None else cv2.resize(frame, fit, interpolation=cv2.INTER_AREA)
    info = probe(path)
    fit = fit_size(info.width, info.height, size)
    start = min(max(seconds, 0.0), max(info.duration - 1.0 / info.fps, 0.0))
    with contextlib.closing(iter_frames(path, size=fit, start=start, max_frames=1)) as frames:
        frame = next(frames, None)
    if frame is None:
        with contextlib.closing(iter_frames(path, size=fit, max_frames=1)) as frames:
            frame = next(frames)
    return frame


def render_preview(catalog: Catalog, entry: ModelEntry, frame: np.ndarray, options: JobOptions) -> bytes:
    """PNG bytes of ``frame`` stylized by ``entry``'s model with the colour options of ``options``
    (the stabilizer needs a sequence: a single frame is shown without it)."""
    engine = catalog.pool(entry).get(frame.shape[0] * frame.shape[1], (frame.shape[1], frame.shape[0]))
    stylized = engine(frame[None])[0]
    post_process = options.infer_options().post_process     # the job's own colour step
    if post_process is not None:
        stylized = post_process(frame, stylized)
    out = io.BytesIO()
    Image.fromarray(stylized).save(out, format="PNG", compress_level=1)
    return out.getvalue()
