"""The web app: the page (``static/``) and the JSON API it uses, on FastAPI.

    app = create_app(ServeSettings(max_upload=2_000_000_000, keep_hours=24, token=None))
    uvicorn.run(app, host="127.0.0.1", port=7860)     # what `vidstyle serve` does

API (every error is ``{"error": "one line"}`` with its status)::

    GET    /api/info                  version, limits and defaults the page shows
    GET    /api/models                {"models": [{"name", "description", "thumbnail", ...}]}
    GET    /api/models/{name}/thumbnail
    POST   /api/preview               multipart file (photo, video or a frame) + model, strength,
                                      preserve_color, [time] -> image/png of one frame, <= 480 px
    POST   /api/jobs                  multipart file + model, [strength, preserve_color, stabilize,
                                      max_size] -> 202 {"id", ...}; 400 bad model or value,
                                      415 not a video or photo, 413 too large
    GET    /api/jobs                  {"jobs": [...]}, oldest first
    GET    /api/jobs/{id}             {"state", "progress", "frames_done", "frames_total", "fps",
                                      "eta_s", "error", ...}
    GET    /api/jobs/{id}/result      the stylized file (409 until done)
    GET    /api/jobs/{id}/input       the upload, for the page's side-by-side player
                                      (``?playable=1``: as H.264 MP4, for formats a browser lacks)
    DELETE /api/jobs/{id}             cancel if queued or running, and remove with its files

With a token set, every ``/api/`` request carries it: header ``Authorization: Bearer TOKEN`` or
``X-Vidstyle-Token: TOKEN``, or query ``?token=TOKEN`` (for media the page embeds).
"""

from __future__ import annotations

import contextlib
import math
import mimetypes
import secrets
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.staticfiles import StaticFiles

from vidstyle import __version__
from vidstyle.errors import ConfigError, ModelError, VidstyleError
from vidstyle.infer.color import ColorOptions
from vidstyle.infer.inferconfig import EngineConfig
from vidstyle.infer.stabilize import StabilizerConfig
from vidstyle.models.backends import cache_dir
from vidstyle.serve import DEFAULT_KEEP_HOURS, DEFAULT_MAX_UPLOAD
from vidstyle.serve.catalog import STATIC_DIR, Catalog, find_entry, model_list
from vidstyle.serve.jobs import ACTIVE, JobOptions, JobQueue, instance_folder
from vidstyle.serve.preview import preview_frame, render_preview
from vidstyle.serve.uploads import (
    UploadError,
    UploadTooLarge,
    detect_kind,
    display_name,
    input_suffix,
    receive_form,
)

TOKEN_HEADER = "x-vidstyle-token"
# The page and its media come from this server only (README: works offline, no CDN).
CONTENT_SECURITY_POLICY = ("default-src 'self'; img-src 'self' blob: data:; media-src 'self' blob:; "
                           "style-src 'self'; script-src 'self'; connect-src 'self'; "
                           "frame-ancestors 'none'")


@dataclass
class ServeSettings:
    """root: folder for the job folders (default: the cache's ``serve/``); max_upload: bytes;
    keep_hours: how long finished jobs stay; token: required on every API call when set;
    engine: how jobs run the network; default_stabilize: the stabilizer strength a job gets when
    it names none; allowed_hosts: Host headers accepted (None: any; loopback servers set the
    loopback names, so a web page elsewhere cannot reach this one by DNS rebinding);
    sweep_seconds: how often old jobs are looked for."""

    root: Path | None = None
    max_upload: int = DEFAULT_MAX_UPLOAD
    keep_hours: float = DEFAULT_KEEP_HOURS
    token: str | None = None
    engine: EngineConfig = field(default_factory=EngineConfig)
    default_stabilize: float = 0.0
    allowed_hosts: Sequence[str] | None = None
    sweep_seconds: float = 60.0


def error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _number(fields: dict[str, str], name: str, default: float) -> float:
    """The form field ``name`` as a finite number (``default`` when absent); ConfigError otherwise."""
    text = fields.get(name, "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        raise ConfigError(f"'{name}' must be a number, got '{text[:40]}'") from None
    if not math.isfinite(value):
        raise ConfigError(f"'{name}' must be a finite number")
    return value


def _parse_options(fields: dict[str, str], default_stabilize: float) -> JobOptions:
    """JobOptions from form fields; ConfigError (one line) for a value out of range or not a number."""
    def number(name: str, default: float) -> float:
        return _number(fields, name, default)

    flag = fields.get("preserve_color", "").strip().lower()
    if flag not in ("", "0", "1", "true", "false", "on", "off", "yes", "no"):
        raise ConfigError(f"'preserve_color' must be true or false, got '{flag[:40]}'")
    max_size = number("max_size", 0)
    if max_size and (max_size != int(max_size) or max_size < 8):
        raise ConfigError(f"'max_size' must be a whole number of pixels, at least 8, got {max_size:g}")
    options = JobOptions(strength=number("strength", 1.0), preserve_color=flag in ("1", "true", "on", "yes"),
                         stabilize=number("stabilize", default_stabilize), max_size=int(max_size) or None)
    ColorOptions(preserve_color=options.preserve_color, strength=options.strength)
    StabilizerConfig(strength=options.stabilize).check()
    return options


def _check_token(request: Request, token: str) -> bool:
    given = request.headers.get(TOKEN_HEADER) or request.query_params.get("token") or ""
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        given = given or auth[7:].strip()
    return secrets.compare_digest(given.encode(), token.encode())


def _host_name(header: str) -> str:
    """The name in a Host header, without its port: "[::1]:7860" -> "::1", "localhost" -> itself."""
    if header.startswith("["):
        return header[1:].split("]", 1)[0]
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


def _same_origin(request: Request) -> bool:
    """False for a request another web page's script sent (its Origin is not this server)."""
    origin = request.headers.get("origin")
    if not origin or origin == "null" and request.method == "GET":
        return True
    return urlsplit(origin).netloc == request.headers.get("host", "")


def create_app(settings: ServeSettings | None = None) -> FastAPI:
    """The app; its lifespan starts the job queue in a fresh folder and, on exit, deletes it."""
    settings = settings or ServeSettings()
    catalog = Catalog(settings.engine)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        stop = threading.Event()
        root = Path(settings.root) if settings.root is not None else cache_dir() / "serve"
        queue = JobQueue(instance_folder(root), catalog, settings.keep_hours)
        queue.start()
        app.state.queue = queue
        janitor = threading.Thread(target=_sweep_until, args=(queue, stop, settings.sweep_seconds),
                                   name="vidstyle-serve-sweep", daemon=True)
        janitor.start()
        try:
            yield
        finally:
            stop.set()
            await run_in_threadpool(queue.close)

    app = FastAPI(title="vidstyle", version=__version__, lifespan=lifespan, docs_url=None,
                  redoc_url=None, openapi_url=None)
    app.state.settings = settings
    app.state.catalog = catalog

    @app.middleware("http")
    async def guard(request: Request, call_next):
        host = _host_name(request.headers.get("host", ""))
        if settings.allowed_hosts is not None and host not in settings.allowed_hosts:
            return error(400, f"this server answers to {', '.join(settings.allowed_hosts)}, not {host}")
        if request.url.path.startswith("/api/"):
            if not _same_origin(request):
                return error(403, "requests from other web sites are refused")
            if settings.token and not _check_token(request, settings.token):
                return error(401, "this server needs its token: open the URL it printed "
                                  "(…/?token=...), or send the header X-Vidstyle-Token")
        response = await call_next(request)
        response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        return response

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        return error(exc.status_code, str(exc.detail))

    @app.get("/", include_in_schema=False)
    async def page():
        return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/api/info")
    async def info():
        return {"version": __version__, "max_upload": settings.max_upload,
                "keep_hours": settings.keep_hours, "default_stabilize": settings.default_stabilize}

    @app.get("/api/models")
    async def models():
        return {"models": await run_in_threadpool(model_list)}

    @app.get("/api/models/{name}/thumbnail")
    async def thumbnail(name: str):
        try:
            thumb = await run_in_threadpool(catalog.thumbnail, name)
        except ModelError as exc:
            return error(404, str(exc))
        return Response(thumb.data, media_type=thumb.media_type,
                        headers={"Cache-Control": "max-age=3600"})

    async def receive(request: Request, path: Path):
        """(form, model entry, JobOptions, None) for an upload whose fields check out, or (None, None,
        None, error response); the file is at ``path`` when there is one."""
        form, failure = await _receive_form(path, request)
        if failure is not None:
            return None, None, None, failure
        try:
            entry, options = check_request(form.fields)
        except VidstyleError as exc:
            return None, None, None, error(400, str(exc))
        return form, entry, options, None

    async def _receive_form(path: Path, request: Request):
        try:
            form = await receive_form(request, path, settings.max_upload)
        except UploadTooLarge as exc:
            return None, error(413, str(exc))
        except UploadError as exc:
            return None, error(400, str(exc))
        except OSError as exc:      # the server's disk is full or its cache folder unwritable
            return None, error(507, f"the server cannot store the upload ({exc.strerror or exc})")
        if form.filename is None:
            return None, error(400, "the form has no file (field 'file')")
        if form.size == 0:
            return None, error(415, "the file is empty (0 bytes), not a video or photo")
        return form, None

    def check_request(fields: dict[str, str]):
        """(model entry, JobOptions), raising ModelError / ConfigError."""
        name = fields.get("model", "").strip()
        if not name:
            raise ModelError("choose a model (form field 'model'; GET /api/models lists them)")
        entry = find_entry(name)
        return entry, _parse_options(fields, settings.default_stabilize)

    @app.post("/api/jobs", status_code=202)
    async def create_job(request: Request):
        queue: JobQueue = request.app.state.queue
        job = queue.new_job()
        try:
            form, entry, options, failure = await receive(request, job.folder / "upload")
            if failure is not None:
                return failure
            try:
                kind = await run_in_threadpool(detect_kind, form.path)
            except VidstyleError as exc:
                return error(415, str(exc))
            upload = form.path.rename(job.folder / f"input{input_suffix(form.filename, kind)}")
            # In a thread: submit probes the clip for its frame count, which may read the file.
            await run_in_threadpool(queue.submit, job, entry, kind, display_name(form.filename), upload,
                                    options)
        except ClientDisconnect:
            return Response(status_code=400)
        finally:
            if queue.get(job.id) is None:
                queue.discard(job)
        return JSONResponse(job.to_dict(), status_code=202)

    @app.post("/api/preview")
    async def preview(request: Request):
        queue: JobQueue = request.app.state.queue
        job = queue.new_job()     # never submitted: a scratch folder for the upload, deleted below
        try:
            form, entry, options, failure = await receive(request, job.folder / "upload")
            if failure is not None:
                return failure
            try:
                seconds = _number(form.fields, "time", 0.0)
            except VidstyleError as exc:
                return error(400, str(exc))
            try:
                kind = await run_in_threadpool(detect_kind, form.path)
                frame = await run_in_threadpool(preview_frame, form.path, kind, seconds)
            except VidstyleError as exc:
                return error(415, str(exc))
            try:
                png = await run_in_threadpool(render_preview, catalog, entry, frame, options)
            except VidstyleError as exc:
                return error(400, str(exc))
            return Response(png, media_type="image/png", headers={"Cache-Control": "no-store"})
        except ClientDisconnect:
            return Response(status_code=400)
        finally:
            queue.discard(job)

    def find_job(request: Request, job_id: str):
        job = request.app.state.queue.get(job_id)
        return job, (None if job is not None else error(404, f"no job {job_id[:40]}"))

    @app.get("/api/jobs")
    async def list_jobs(request: Request):
        return {"jobs": [job.to_dict() for job in request.app.state.queue.jobs()]}

    @app.get("/api/jobs/{job_id}")
    async def get_job(request: Request, job_id: str):
        job, missing = find_job(request, job_id)
        return missing or job.to_dict()

    @app.get("/api/jobs/{job_id}/result")
    async def get_result(request: Request, job_id: str):
        job, missing = find_job(request, job_id)
        if missing:
            return missing
        if job.state != "done" or job.result is None or not job.result.is_file():
            return error(409, f"job {job_id} has no result: it is {job.state}")
        return FileResponse(job.result, filename=job.download_name(),
                            media_type=mimetypes.guess_type(job.result.name)[0])

    @app.get("/api/jobs/{job_id}/input")
    async def get_input(request: Request, job_id: str, playable: bool = False):
        """The upload; with ``?playable=1``, a video as H.264 MP4 for a browser that cannot
        play its own format (made on the first such request)."""
        job, missing = find_job(request, job_id)
        if missing:
            return missing
        if job.input is None or not job.input.is_file():
            return error(410, f"the upload of job {job_id} is gone")
        path = job.input
        if playable and job.kind == "video":
            try:
                path = await run_in_threadpool(request.app.state.queue.display_copy, job)
            except VidstyleError as exc:
                return error(415, str(exc).replace(str(job.input), job.filename))
        return FileResponse(path, media_type=mimetypes.guess_type(path.name)[0])

    @app.delete("/api/jobs/{job_id}")
    async def delete_job(request: Request, job_id: str):
        queue: JobQueue = request.app.state.queue
        job = queue.get(job_id)
        was_active = job is not None and job.state in ACTIVE
        job = queue.remove(job_id)
        if job is None:
            return error(404, f"no job {job_id[:40]}")
        return {"id": job.id, "state": "cancelled" if was_active else job.state, "removed": True}

    return app


def _sweep_until(queue: JobQueue, stop: threading.Event, every: float) -> None:
    while not stop.wait(every):
        queue.sweep()

