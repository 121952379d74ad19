"""Uploads: a multipart form streamed to disk under a limit, then told apart by decoding it.

    form = await receive_form(request, folder / "upload", max_bytes=2 << 30)   # UploadTooLarge: 413
    kind = detect_kind(form.path)                                               # "video" or "photo"

The file part goes straight from the socket to the file the server named, chunk by chunk, so no
upload is ever held in memory, and the limit is checked as the bytes arrive: a client that sends
more (or says so in Content-Length) is stopped at once. The client's file name is kept as text for
display and the download's name only; it never reaches the file system.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import Request

from vidstyle.errors import VideoError
from vidstyle.infer.photo import PHOTO_EXTENSIONS, is_heif, read_photo
from vidstyle.io.animation import ANIMATED_SUFFIXES, is_animation
from vidstyle.io.video import VIDEO_EXTENSIONS, iter_frames, probe

FIELD_LIMIT = 64 * 1024          # bytes of one text field (a model name, a number)
FORM_OVERHEAD = 1 << 20          # bytes of a form beyond its file: boundaries, headers, fields
FILE_FIELD = "file"


class UploadError(Exception):
    """The request is not a form this server takes (400); the message is one line for the user."""


class UploadTooLarge(UploadError):
    """The upload is larger than the server's limit (413)."""


@dataclass
class ReceivedForm:
    """A parsed form: text ``fields``, and the ``file`` part saved at ``path`` (``size`` bytes,
    ``filename`` as the client named it, or None when the form had no file)."""

    path: Path
    fields: dict[str, str] = field(default_factory=dict)
    filename: str | None = None
    size: int = 0


class _FormSink:
    """Callbacks of python-multipart's streaming parser: fields to memory, the file to disk."""

    def __init__(self, form: ReceivedForm, max_bytes: int):
        self.form, self.max_bytes = form, max_bytes
        self._header_field = b""
        self._header_value = b""
        self._headers: dict[bytes, bytes] = {}
        self._name: str | None = None
        self._value = bytearray()
        self._file = None
        self._file_seen = False

    def callbacks(self) -> dict:
        return {"on_part_begin": self._part_begin, "on_header_field": self._header_field_data,
                "on_header_value": self._header_value_data, "on_header_end": self._header_end,
                "on_headers_finished": self._headers_finished, "on_part_data": self._part_data,
                "on_part_end": self._part_end}

    def _part_begin(self) -> None:
        self._headers, self._name, self._value = {}, None, bytearray()

    def _header_field_data(self, data: bytes, start: int, end: int) -> None:
        self._header_field += data[start:end]

    def _header_value_data(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _header_end(self) -> None:
        self._headers[self._header_field.lower()] = self._header_value
        self._header_field, self._header_value = b"", b""

    def _headers_finished(self) -> None:
        _, params = parse_options_header(self._headers.get(b"content-disposition", b""))
        self._name = params.get(b"name", b"").decode("utf-8", "replace")
        if b"filename" in params:
            if self._name != FILE_FIELD or self._file_seen:
                raise UploadError(f"one file is expected, in the form field '{FILE_FIELD}'")
            self._file_seen = True
            self.form.filename = params[b"filename"].decode("utf-8", "replace")
            self._file = open(self.form.path, "wb")  # noqa: SIM115 (closed in _part_end or close())

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._file is not None:
            self.form.size += end - start
            if self.form.size > self.max_bytes:
                raise UploadTooLarge(upload_limit_message(self.max_bytes))
            self._file.write(data[start:end])
        else:
            self._value += data[start:end]
            if len(self._value) > FIELD_LIMIT:
                raise UploadError(f"form field '{self._name}' is too long")

    def _part_end(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        elif self._name:
            self.form.fields[self._name] = self._value.decode("utf-8", "replace")

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


def upload_limit_message(max_bytes: int) -> str:
    return f"the upload is larger than this server's limit of {format_bytes(max_bytes)} (--max-upload)"


def format_bytes(count: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if count < 1000 or unit == "GB":
            return f"{count:.0f} {unit}" if unit == "bytes" else f"{count:.1f} {unit}"
        count /= 1000
    raise AssertionError  # unreachable


async def receive_form(request: Request, path: Path, max_bytes: int) -> ReceivedForm:
    """Parse a ``multipart/form-data`` request, writing its file part to ``path``.

    UploadTooLarge as soon as the file passes ``max_bytes`` (or the declared length passes it
    plus the form's overhead); UploadError for anything but a multipart form. A client that goes
    away mid-upload raises starlette's ClientDisconnect. The caller removes ``path`` on failure.
    """
    content_type, params = parse_options_header(request.headers.get("content-type", ""))
    if content_type != b"multipart/form-data" or b"boundary" not in params:
        raise UploadError("send the upload as multipart/form-data (a form with a 'file' field)")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes + FORM_OVERHEAD:
        raise UploadTooLarge(upload_limit_message(max_bytes))
    form = ReceivedForm(path)
    sink = _FormSink(form, max_bytes)
    parser = MultipartParser(params[b"boundary"], sink.callbacks())
    received = 0
    try:
        async for chunk in request.stream():
            received += len(chunk)
            if received > max_bytes + FORM_OVERHEAD:    # the file's limit, or a flood of fields
                raise UploadTooLarge(upload_limit_message(max_bytes))
            parser.write(chunk)
        parser.finalize()
    except UploadError:
        raise
    except ValueError as error:   # python-multipart's FormParserError: not a well-formed form
        raise UploadError(f"the form could not be read: {error}") from None
    finally:
        sink.close()
    return form


def detect_kind(path: Path) -> str:
    """"photo" or "video", decided by decoding the file (its first frame), never by its name; an
    animated GIF, WebP, PNG or AVIF is a video.

    VideoError (one line) for a file that is neither.
    """
    if is_heif(path):
        read_photo(path)        # a phone's photo, or one line saying what reads it
        return "photo"
    try:
        if not is_animation(path):
            read_photo(path)    # Pillow, by content: a video is refused from its first bytes
            return "photo"
    except (VideoError, Image.DecompressionBombError):
        pass
    try:
        info = probe(path)
        with contextlib.closing(iter_frames(path, max_frames=1)) as frames:
            next(frames)
    except (VideoError, StopIteration) as error:
        audio_only = isinstance(error, VideoError) and "no video stream" in str(error)
        detail = " (it holds no video stream: sound only?)" if audio_only else ""
        raise VideoError(f"the file is neither a video nor a photo that can be decoded{detail}") from None
    if info.num_frames < 1:
        raise VideoError("the video holds no frames")
    return "video"


_SAFE_NAME = re.compile(r"[^A-Za-z0-9_.-]+")


def display_name(filename: str | None) -> str:
    """The client's file name as a safe plain name (letters, digits, '_', '-', '.'), for display
    and the download's name; "upload" when nothing is left."""
    name = Path((filename or "").replace("\\", "/")).name
    name = _SAFE_NAME.sub("_", name).strip("._")[:120]
    return name or "upload"


def input_suffix(filename: str | None, kind: str) -> str:
    """A suffix for the stored upload: the client's when it is a known one of its kind (readers
    and browsers like one), else a neutral default."""
    suffix = Path(display_name(filename)).suffix.lower()
    known = PHOTO_EXTENSIONS if kind == "photo" else VIDEO_EXTENSIONS | ANIMATED_SUFFIXES
    return suffix if suffix in known else (".png" if kind == "photo" else ".mp4")
