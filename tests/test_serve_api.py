"""`vidstyle serve`'s JSON API without a browser: every status code, the job states, the result's
frames, cancelling, the queue, limits and the token (FastAPI's TestClient, and a real uvicorn on a
loopback port for what needs a socket: a client leaving mid-upload, two uploads at once)."""

from __future__ import annotations

import contextlib
import io
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

import httpx  # noqa: E402
import uvicorn  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402
from PIL import Image  # noqa: E402

from tests.clips import distinct_frames, truncate, write_garbage, write_test_clip  # noqa: E402
from vidstyle.cli.serve import bind, is_loopback, page_url, parse_size  # noqa: E402
from vidstyle.errors import ConfigError  # noqa: E402
from vidstyle.infer.inferconfig import EngineConfig  # noqa: E402
from vidstyle.io.video import iter_frames, probe  # noqa: E402
from vidstyle.serve.app import ServeSettings, create_app  # noqa: E402
from vidstyle.serve.jobs import Job, instance_folder  # noqa: E402

ENGINE = EngineConfig(device="cpu", threads=1, backend="torch")   # no ONNX export to wait for
FRAMES, WIDTH, HEIGHT = 12, 64, 48


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """The untrained test model, found by name through $VIDSTYLE_MODELS."""
    from tests.testmodel import save_untrained

    folder = tmp_path_factory.mktemp("models")
    save_untrained(folder)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("VIDSTYLE_MODELS", str(folder))
        yield "testnet"


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    folder = tmp_path_factory.mktemp("media")
    clip = write_test_clip(folder / "clip.mp4", distinct_frames(FRAMES, WIDTH, HEIGHT), fps=24, audio=True)
    photo = folder / "photo.png"
    Image.fromarray(distinct_frames(1, 40, 30)[0]).save(photo)
    return {"clip": clip, "photo": photo, "garbage": write_garbage(folder / "notes.mp4")}


def settings(root: Path, **kw) -> ServeSettings:
    return ServeSettings(root=root, engine=ENGINE, **kw)


@pytest.fixture(scope="module")
def client(model, tmp_path_factory):
    root = tmp_path_factory.mktemp("serve")
    with TestClient(create_app(settings(root))) as c:
        c.root = root
        yield c


def post_job(client, path: Path, model: str = "testnet", name: str | None = None, **fields):
    return client.post("/api/jobs", data={"model": model, **{k: str(v) for k, v in fields.items()}},
                       files={"file": (name or path.name, path.read_bytes())})


def wait(client, job_id: str, states=("done", "failed", "cancelled"), timeout: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/api/jobs/{job_id}").json()
        if job.get("state") in states:
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} not {states} after {timeout} s: {job}")


def job_folders(root: Path) -> list[Path]:
    return [p for p in root.glob("*/*") if p.is_dir()]


@pytest.fixture
def slow_frames(monkeypatch):
    """Each frame takes 50 ms more, so a job is still running when a test acts on it; yields an
    Event set at the first frame."""
    started = threading.Event()
    original = Job.on_frame

    def slow(self, done, total):
        started.set()
        time.sleep(0.05)
        original(self, done, total)

    monkeypatch.setattr(Job, "on_frame", slow)
    return started


# --- models ---------------------------------------------------------------------------------------

def test_models_lists_the_user_model_and_the_shipped_ones_with_thumbnails(client):
    models = {m["name"]: m for m in client.get("/api/models").json()["models"]}
    assert models["testnet"]["description"] == "untrained, for tests"
    assert models["testnet"]["source"] == "user" and "starry_night" in models
    placeholder = client.get(models["testnet"]["thumbnail"])     # its style image does not exist
    assert placeholder.status_code == 200 and placeholder.headers["content-type"] == "image/svg+xml"
    shipped = client.get(models["starry_night"]["thumbnail"])
    assert shipped.headers["content-type"] == "image/jpeg"
    assert max(Image.open(io.BytesIO(shipped.content)).size) == 160
    assert client.get("/api/models/nosuch/thumbnail").status_code == 404


# --- jobs -----------------------------------------------------------------------------------------

def test_video_job_runs_to_done_and_its_result_keeps_frames_size_and_audio(client, media, tmp_path):
    response = post_job(client, media["clip"], name="holiday clip.mp4", strength=0.7, stabilize=0.5)
    assert response.status_code == 202
    job = response.json()
    assert job["state"] in ("queued", "running") and job["frames_total"] == FRAMES
    assert job["options"] == {"strength": 0.7, "preserve_color": False, "stabilize": 0.5, "max_size": None}
    done = wait(client, job["id"])
    assert done["state"] == "done", done
    assert done["progress"] == 1 and done["frames_done"] == FRAMES and done["error"] is None
    assert done["fps"] > 0

    result = client.get(done["result"])
    assert result.status_code == 200
    assert result.headers["content-disposition"].endswith('filename="holiday_clip.testnet.mp4"')
    out = tmp_path / "result.mp4"
    out.write_bytes(result.content)
    info = probe(out)
    assert (info.num_frames, info.width, info.height, info.has_audio) == (FRAMES, WIDTH, HEIGHT, True)
    assert len(list(iter_frames(out))) == FRAMES
    assert client.get(done["input"]).content == media["clip"].read_bytes()
    assert any(j["id"] == job["id"] for j in client.get("/api/jobs").json()["jobs"])


def test_photo_job_gives_a_png_of_the_same_size(client, media):
    job = wait(client, post_job(client, media["photo"], preserve_color="true").json()["id"])
    assert job["state"] == "done" and job["kind"] == "photo" and job["options"]["preserve_color"]
    image = Image.open(io.BytesIO(client.get(job["result"]).content))
    assert image.format == "PNG" and image.size == (40, 30)


def test_max_size_shrinks_the_result(client, media, tmp_path):
    job = wait(client, post_job(client, media["clip"], max_size=32, stabilize=0).json()["id"])
    out = tmp_path / "small.mp4"
    out.write_bytes(client.get(job["result"]).content)
    assert probe(out).size == (32, 24) and probe(out).num_frames == FRAMES


def test_unknown_model_is_400_naming_it_and_the_nearest(client, media):
    response = post_job(client, media["clip"], model="testnt")
    assert response.status_code == 400
    message = response.json()["error"]
    assert "'testnt'" in message and "did you mean 'testnet'" in message and "\n" not in message


def test_a_model_path_is_refused_like_any_unknown_name(client, media, model):
    response = post_job(client, media["clip"], model="/etc/passwd")
    assert response.status_code == 400 and "unknown model '/etc/passwd'" in response.json()["error"]


@pytest.mark.parametrize("name", ["notes.mp4", "notes.jpg", "notes"])
def test_a_file_that_decodes_as_neither_is_415_whatever_its_name(client, media, name):
    before = set(job_folders(client.root))
    response = post_job(client, media["garbage"], name=name)
    assert response.status_code == 415
    assert "neither a video nor a photo" in response.json()["error"]
    assert set(job_folders(client.root)) == before       # its upload is not kept


def test_a_video_named_like_a_photo_is_still_a_video(client, media):
    job = wait(client, post_job(client, media["clip"], name="clip.png").json()["id"])
    assert job["kind"] == "video" and job["state"] == "done" and job["frames_done"] == FRAMES


def test_an_animated_gif_is_a_video_job_with_every_frame(client, tmp_path):
    frames = [Image.fromarray(frame) for frame in distinct_frames(6, width=48, height=32)]
    gif = tmp_path / "dance.gif"
    frames[0].save(gif, save_all=True, append_images=frames[1:], duration=80, loop=0)
    job = wait(client, post_job(client, gif).json()["id"])
    assert job["kind"] == "video" and job["state"] == "done" and job["frames_done"] == 6, job
    out = tmp_path / "result.mp4"
    out.write_bytes(client.get(job["result"]).content)
    assert (probe(out).num_frames, probe(out).size) == (6, (48, 32))


def test_a_phones_heic_photo_is_a_photo_job(client, tmp_path):
    pillow_heif = pytest.importorskip("pillow_heif")
    pillow_heif.from_pillow(Image.new("RGB", (40, 24), (200, 120, 40))).save(tmp_path / "IMG.HEIC")
    job = wait(client, post_job(client, tmp_path / "IMG.HEIC").json()["id"])
    assert job["kind"] == "photo" and job["state"] == "done", job
    assert Image.open(io.BytesIO(client.get(job["result"]).content)).size == (40, 24)


@pytest.mark.parametrize("fields, word", [({"strength": 2}, "strength"), ({"stabilize": 1}, "stabilize"),
                                         ({"strength": "lots"}, "strength"), ({"max_size": 3}, "max_size"),
                                         ({"preserve_color": "maybe"}, "preserve_color")])
def test_bad_option_values_are_400(client, media, fields, word):
    response = post_job(client, media["photo"], **fields)
    assert response.status_code == 400 and word in response.json()["error"]


def test_a_form_without_a_file_or_model_is_400(client, media):
    assert client.post("/api/jobs", data={"model": "testnet"}).status_code == 400
    response = client.post("/api/jobs", files={"file": ("a.png", media["photo"].read_bytes())})
    assert response.status_code == 400 and "model" in response.json()["error"]
    assert client.post("/api/jobs", json={"model": "testnet"}).status_code == 400


def test_unknown_job_is_404(client):
    for method, path in [("get", "/api/jobs/0123"), ("get", "/api/jobs/0123/result"),
                         ("get", "/api/jobs/0123/input"), ("delete", "/api/jobs/0123")]:
        response = getattr(client, method)(path)
        assert response.status_code == 404 and "no job" in response.json()["error"]


def test_input_can_be_had_as_h264_for_browsers_that_cannot_play_its_format(client, tmp_path):
    avi = write_test_clip(tmp_path / "odd.avi", distinct_frames(FRAMES, 63, 47))
    job = wait(client, post_job(client, avi).json()["id"])
    assert client.get(job["input"]).content == avi.read_bytes()
    copy = client.get(f"{job['input']}?playable=1")
    assert copy.status_code == 200 and copy.headers["content-type"] == "video/mp4"
    saved = tmp_path / "copy.mp4"
    saved.write_bytes(copy.content)
    info = probe(saved)
    assert (info.num_frames, info.width, info.height) == (FRAMES, 62, 46)    # even: yuv420p


def test_a_cut_upload_fails_and_leaves_no_result(client, media, tmp_path):
    cut = truncate(write_test_clip(tmp_path / "cut.mp4", distinct_frames(48, WIDTH, HEIGHT)), 0.5)
    job = wait(client, post_job(client, cut).json()["id"])
    assert job["state"] == "failed" and job["error"] and "\n" not in job["error"]
    assert str(client.root) not in job["error"]            # no server path in the message
    assert client.get(f"/api/jobs/{job['id']}/result").status_code == 409
    folder = next(p for p in job_folders(client.root) if p.name == job["id"])
    assert [p.name for p in folder.iterdir() if p.name.startswith(("result", ".result"))] == []


def test_delete_cancels_a_running_job_within_a_frame_and_removes_it(client, media, tmp_path, slow_frames):
    clip = write_test_clip(tmp_path / "long.mp4", distinct_frames(60, WIDTH, HEIGHT))
    job_id = post_job(client, clip).json()["id"]
    assert slow_frames.wait(30)
    assert client.get(f"/api/jobs/{job_id}").json()["state"] == "running"
    started = time.monotonic()
    response = client.delete(f"/api/jobs/{job_id}")
    assert response.status_code == 200 and response.json()["state"] == "cancelled"
    while client.get(f"/api/jobs/{job_id}").status_code != 404:
        assert time.monotonic() - started < 2.0, "the job did not stop within 2 s"
        time.sleep(0.02)
    assert list(client.root.glob(f"*/{job_id}")) == []


def test_jobs_queue_and_run_one_at_a_time_in_order(client, media, slow_frames):
    ids = [post_job(client, media["clip"]).json()["id"] for _ in range(3)]
    states = [client.get(f"/api/jobs/{i}").json()["state"] for i in ids]
    assert states.count("running") <= 1 and states[-1] == "queued"
    assert client.get(f"/api/jobs/{ids[-1]}/result").status_code == 409
    queued = client.delete(f"/api/jobs/{ids[1]}")                # a queued job is just dropped
    assert queued.json()["state"] == "cancelled"
    finished = [wait(client, i) for i in (ids[0], ids[2])]
    assert [j["state"] for j in finished] == ["done", "done"]
    assert finished[0]["finished"] <= finished[1]["started"]
    assert client.get(f"/api/jobs/{ids[1]}").status_code == 404
    assert client.delete(f"/api/jobs/{ids[0]}").json() == {"id": ids[0], "state": "done", "removed": True}
    assert client.get(f"/api/jobs/{ids[0]}").status_code == 404


def test_finished_jobs_are_swept_after_keep_hours_and_all_on_exit(model, media, tmp_path):
    with TestClient(create_app(settings(tmp_path, keep_hours=1.0))) as c:
        job = wait(c, post_job(c, media["photo"]).json()["id"])
        queue = c.app.state.queue
        assert queue.sweep(now=time.time() + 1800) == []
        assert queue.sweep(now=time.time() + 3601) == [job["id"]]
        assert c.get(f"/api/jobs/{job['id']}").status_code == 404 and job_folders(tmp_path) == []
        wait(c, post_job(c, media["photo"]).json()["id"])
    assert list(tmp_path.iterdir()) == []                  # exit removes this server's folder


def test_a_killed_servers_folder_is_removed_by_the_next_server(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True).stdout.strip()
    for name, pid in (("killed", dead), ("running", str(os.getpid()))):
        (tmp_path / name).mkdir()
        (tmp_path / name / "pid").write_text(pid)
        (tmp_path / name / "job").mkdir()
    mine = instance_folder(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["running", mine.name])
    assert (mine / "pid").read_text() == str(os.getpid())


def test_the_client_file_name_never_reaches_the_file_system(client, media):
    job = wait(client, post_job(client, media["photo"], name="../../escape.png").json()["id"])
    assert job["filename"] == "escape.png"
    folder = next(p for p in job_folders(client.root) if p.name == job["id"])
    assert sorted(p.name for p in folder.iterdir()) == ["input.png", "result.png"]
    assert not (client.root.parent / "escape.png").exists()


# --- preview --------------------------------------------------------------------------------------

def test_preview_is_one_png_frame_at_most_480_pixels(client, media, tmp_path):
    big = tmp_path / "big.png"
    Image.fromarray(np.tile(distinct_frames(1, 64, 48)[0], (12, 12, 1))).save(big)    # 768x576
    response = client.post("/api/preview", data={"model": "testnet", "strength": "0.5"},
                           files={"file": ("big.png", big.read_bytes())})
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(response.content)).size == (480, 360)
    from_video = client.post("/api/preview", data={"model": "testnet", "time": "0.2"},
                             files={"file": ("clip.mp4", media["clip"].read_bytes())})
    assert Image.open(io.BytesIO(from_video.content)).size == (WIDTH, HEIGHT)
    bad = client.post("/api/preview", data={"model": "testnet"},
                      files={"file": ("x.jpg", media["garbage"].read_bytes())})
    assert bad.status_code == 415
    assert client.post("/api/preview", data={"model": "nope"},
                       files={"file": ("big.png", big.read_bytes())}).status_code == 400


# --- limits and access ----------------------------------------------------------------------------

def test_upload_over_the_limit_is_413_whether_declared_or_streamed(model, media, tmp_path):
    with TestClient(create_app(settings(tmp_path, max_upload=4000))) as c:
        big = media["clip"].read_bytes() + bytes(5000)
        declared = c.post("/api/jobs", data={"model": "testnet"}, files={"file": ("a.mp4", big)})
        assert declared.status_code == 413 and "limit" in declared.json()["error"]

        boundary = "b0undary"
        body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\ntestnet\r\n"
                f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.mp4\"\r\n"
                f"Content-Type: video/mp4\r\n\r\n").encode() + big + f"\r\n--{boundary}--\r\n".encode()
        chunks = (body[i:i + 1000] for i in range(0, len(body), 1000))     # no Content-Length
        streamed = c.post("/api/jobs", content=chunks,
                          headers={"content-type": f"multipart/form-data; boundary={boundary}"})
        assert streamed.status_code == 413
        small = c.post("/api/jobs", data={"model": "testnet"},
                       files={"file": ("p.png", media["photo"].read_bytes())})
        assert small.status_code == 202
        wait(c, small.json()["id"])
        assert len(job_folders(tmp_path)) == 1


def test_a_full_disk_is_507_and_leaves_no_folder(client, media, monkeypatch):
    import errno

    from vidstyle.serve import uploads

    class FullDisk(io.BytesIO):
        def write(self, data):
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(uploads, "open", lambda path, mode: FullDisk(), raising=False)
    before = set(job_folders(client.root))
    response = post_job(client, media["photo"])
    assert response.status_code == 507 and "No space left" in response.json()["error"]
    assert set(job_folders(client.root)) == before


def test_token_is_required_by_every_api_call_but_not_the_page(model, tmp_path):
    with TestClient(create_app(settings(tmp_path, token="s3cret"))) as c:
        assert c.get("/").status_code == 200 and c.get("/static/app.js").status_code == 200
        assert c.get("/api/models").status_code == 401
        assert c.get("/api/jobs", headers={"X-Vidstyle-Token": "wrong"}).status_code == 401
        assert c.get("/api/jobs", headers={"X-Vidstyle-Token": "s3cret"}).status_code == 200
        assert c.get("/api/jobs", headers={"Authorization": "Bearer s3cret"}).status_code == 200
        assert c.get("/api/models?token=s3cret").status_code == 200


def test_other_web_sites_and_host_names_are_refused(model, tmp_path):
    with TestClient(create_app(settings(tmp_path, allowed_hosts=("testserver",)))) as c:
        assert c.get("/api/jobs").status_code == 200
        assert c.post("/api/jobs", headers={"Origin": "http://evil.example"}).status_code == 403
        assert c.get("/api/jobs", headers={"Host": "evil.example"}).status_code == 400
        assert c.get("/api/jobs", headers={"Host": "testserver:8000"}).status_code == 200
    with TestClient(create_app(settings(tmp_path, allowed_hosts=("::1", "localhost")))) as c:
        assert c.get("/api/jobs", headers={"Host": "[::1]:7860"}).status_code == 200
        assert c.get("/api/jobs", headers={"Host": "[::1]"}).status_code == 200
        assert c.get("/api/jobs", headers={"Host": "localhost"}).status_code == 200


def test_the_page_is_served_with_a_policy_that_keeps_it_local(client):
    page = client.get("/")
    assert page.status_code == 200 and "<script src=\"/static/app.js\">" in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    for asset in ("/static/app.js", "/static/style.css", page.text):
        text = client.get(asset).text if asset.startswith("/") else asset
        assert "http://" not in text and "https://" not in text and "//cdn" not in text


# --- a real server: sockets -----------------------------------------------------------------------

@contextlib.contextmanager
def serving(app):
    """``app`` on uvicorn in a thread on a free loopback port: yields its base URL."""
    sock = bind("127.0.0.1", 0)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(15)
        sock.close()


def test_a_client_leaving_mid_upload_leaves_nothing_and_two_uploads_at_once_finish(model, media, tmp_path):
    with serving(create_app(settings(tmp_path))) as url:
        host, port = url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port))) as raw:
            head = (f"POST /api/jobs HTTP/1.1\r\nHost: {host}\r\nContent-Length: 10000000\r\n"
                    f"Content-Type: multipart/form-data; boundary=xx\r\n\r\n"
                    f"--xx\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.mp4\"\r\n\r\n")
            raw.sendall(head.encode() + media["clip"].read_bytes()[:3000])
            time.sleep(0.3)
        deadline = time.monotonic() + 5
        while job_folders(tmp_path):
            assert time.monotonic() < deadline, "the half upload's folder was not removed"
            time.sleep(0.05)

        results = {}

        def upload(key, path):
            with httpx.Client(base_url=url, timeout=30) as http:
                results[key] = http.post("/api/jobs", data={"model": "testnet"},
                                         files={"file": (path.name, path.read_bytes())})

        threads = [threading.Thread(target=upload, args=(k, media[k])) for k in ("clip", "photo")]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert {k: r.status_code for k, r in results.items()} == {"clip": 202, "photo": 202}
        with httpx.Client(base_url=url, timeout=30) as http:
            jobs = [wait(http, r.json()["id"]) for r in results.values()]
        assert [j["state"] for j in jobs] == ["done", "done"]


# --- the command line's helpers -------------------------------------------------------------------

def test_command_line_sizes_hosts_and_urls():
    assert parse_size("2G") == 2_000_000_000 and parse_size("500M") == 500_000_000
    assert parse_size("1.5gb") == 1_500_000_000 and parse_size("4096") == 4096
    for bad in ("lots", "-1G", "0"):
        with pytest.raises(ConfigError, match="--max-upload"):
            parse_size(bad)
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5")
    assert page_url("0.0.0.0", 7860, "abc") == "http://127.0.0.1:7860/?token=abc"
    assert page_url("::1", 80, None) == "http://[::1]:80/"


def test_a_port_in_use_is_one_line():
    first = bind("127.0.0.1", 0)
    try:
        with pytest.raises(ConfigError, match="choose another with --port"):
            bind("127.0.0.1", first.getsockname()[1])
    finally:
        first.close()
