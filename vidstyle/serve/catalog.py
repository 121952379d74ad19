"""The models the page offers: the zoo's list, a thumbnail for each, and their engines, made once.

A request names a model by name only, and only a name :func:`vidstyle.models.zoo.list_models`
lists is used: a path or a name the zoo does not know is refused with the zoo's own suggestion,
so nothing a client sends is ever opened as a file.

Thumbnails, first found: the model's style image (beside the model file, the style a training run
names in its ``config.json``, or the checkout's ``data/styles/``) made small; the shipped
thumbnail of that style image (``static/thumbs/``, made from ``data/styles/`` by
:func:`make_thumbnail`, for installs without ``data/``); else a placeholder drawn from the
model's name.
"""

from __future__ import annotations

import hashlib
import html
import io
import json
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from PIL import Image, ImageOps

from vidstyle.errors import ModelError
from vidstyle.infer.engines import StylizerPool
from vidstyle.infer.inferconfig import EngineConfig
from vidstyle.models.lazymodel import LazyModel
from vidstyle.models.looks import model_records
from vidstyle.models.zoo import (
    WEIGHTS_DIR,
    ModelEntry,
    _unknown_name_message,
    list_models,
    read_card,
)

THUMB_SIZE = 160                 # pixels, longest side
STATIC_DIR = Path(__file__).resolve().parent / "static"
SHIPPED_THUMBS = STATIC_DIR / "thumbs"
CHECKOUT_STYLES = WEIGHTS_DIR.parent.parent / "data" / "styles"


@dataclass(frozen=True)
class Thumbnail:
    data: bytes
    media_type: str


def model_list() -> list[dict]:
    """``GET /api/models``: one record per model the zoo lists (user models first), with the card's
    name, description, source, network, style image, ``thumbnail`` (its URL) and ``error`` (why
    it cannot be used, or None)."""
    models = []
    for record in model_records(list_models()):
        net = record.get("net") or {}
        models.append({"name": record["name"], "description": record.get("description") or "",
                       "source": record["source"], "net": net.get("name"),
                       "style_image": record.get("style_image") or "",
                       "thumbnail": f"/api/models/{quote(record['name'], safe='')}/thumbnail",
                       "error": record["error"]})
    return models


def find_entry(name: str) -> ModelEntry:
    """The listed model called ``name``; ModelError naming it and the nearest names otherwise."""
    entries = list_models()
    for entry in entries:
        if entry.name == name:
            return entry
    raise ModelError(_unknown_name_message(name, entries, runs_dir=None))


def _style_candidates(entry: ModelEntry, style_image: str) -> list[Path]:
    if not style_image:
        return []
    name = Path(style_image).name      # cards name files, never paths; keep it that way here
    found = [entry.weights.parent / name, CHECKOUT_STYLES / name]
    config = entry.weights.parent / "config.json"   # a training run names its style image
    if entry.source == "user" and config.is_file():
        try:
            style = json.loads(config.read_text(encoding="utf-8")).get("style")
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            style = None
        if isinstance(style, str) and style:
            found.insert(1, Path(style).expanduser())
    return found


def make_thumbnail(path: Path, size: int = THUMB_SIZE) -> bytes | None:
    """JPEG bytes of the image at ``path`` shrunk to ``size`` on its longest side; None if it
    cannot be read as an image."""
    try:
        with Image.open(path) as image:
            image = ImageOps.exif_transpose(image).convert("RGB")
            image.thumbnail((size, size), Image.Resampling.LANCZOS)
            out = io.BytesIO()
            image.save(out, format="JPEG", quality=85)
            return out.getvalue()
    except (OSError, ValueError, Image.DecompressionBombError):
        return None


def placeholder(name: str) -> bytes:
    """A small SVG: two colours from the name's hash and its initials, for a model with no picture."""
    digest = hashlib.sha256(name.encode()).digest()
    hue_a, hue_b = digest[0] * 360 // 256, digest[1] * 360 // 256
    initials = html.escape("".join(part[:1] for part in name.replace("-", "_").split("_")[:2]).upper())
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{THUMB_SIZE}" height="{THUMB_SIZE}">'
            f'<defs><linearGradient id="g" x1="0" y1="0" x2="1" y2="1">'
            f'<stop offset="0" stop-color="hsl({hue_a},55%,45%)"/>'
            f'<stop offset="1" stop-color="hsl({hue_b},55%,30%)"/></linearGradient></defs>'
            f'<rect width="100%" height="100%" fill="url(#g)"/>'
            f'<text x="50%" y="54%" font-family="sans-serif" font-size="56" fill="#fff" '
            f'text-anchor="middle" dominant-baseline="middle">{initials}</text></svg>').encode()


class Catalog:
    """Thumbnails (made once per model file) and engines (one StylizerPool per model file,
    shared by the jobs and the previews of that model).

    Only the pools of the ``keep_pools`` models used last are kept: onnxruntime's sessions keep their
    buffers between frames (about 80 MB a session at 640x360, 310 MB at 1280x720), so a server that
    kept every style it was asked for would hold several GB after a tour of the styles. A job still
    running on a pool that was let go keeps it until the job ends; asking for that model again builds
    a new pool (the export is cached on disk)."""

    def __init__(self, engine: EngineConfig | None = None, notify=None, keep_pools: int = 2):
        self.engine = engine or EngineConfig()
        self.notify = notify
        self.keep_pools = max(1, int(keep_pools))
        self._lock = threading.Lock()
        self._thumbs: dict[tuple, Thumbnail] = {}
        self._pools: OrderedDict[tuple, StylizerPool] = OrderedDict()

    @staticmethod
    def _key(entry: ModelEntry) -> tuple:
        try:
            stat = entry.weights.stat()
            return entry.name, str(entry.weights), stat.st_mtime_ns, stat.st_size
        except OSError:
            return entry.name, str(entry.weights)

    def thumbnail(self, name: str) -> Thumbnail:
        entry = find_entry(name)
        key = self._key(entry)
        with self._lock:
            if key in self._thumbs:
                return self._thumbs[key]
        try:
            style_image = read_card(entry).style_image
        except ModelError:
            style_image = ""
        data = None
        for path in _style_candidates(entry, style_image):
            if path.is_file() and (data := make_thumbnail(path)):
                break
        shipped = SHIPPED_THUMBS / f"{Path(style_image).stem}.jpg" if style_image else None
        if data is None and shipped is not None and shipped.is_file():
            data = shipped.read_bytes()
        thumb = Thumbnail(data, "image/jpeg") if data else Thumbnail(placeholder(name), "image/svg+xml")
        with self._lock:
            self._thumbs[key] = thumb
        return thumb

    def pool(self, entry: ModelEntry) -> StylizerPool:
        """The engines of ``entry``'s model, the network loaded on first use (ModelError if the
        file is unusable)."""
        key = self._key(entry)
        with self._lock:
            if key not in self._pools:
                self._pools[key] = SharedPool(LazyModel(entry, read_card(entry)), self.engine,
                                              notify=self.notify)
                while len(self._pools) > self.keep_pools:
                    self._pools.popitem(last=False)
            self._pools.move_to_end(key)
            return self._pools[key]


class SharedPool(StylizerPool):
    """A StylizerPool that a job and a preview may ask at once: it loads the network and builds
    engines on first use, which must happen once."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._lock = threading.Lock()

    def get(self, work_pixels: int, size: tuple[int, int] | None = None):
        with self._lock:
            return super().get(work_pixels, size)
