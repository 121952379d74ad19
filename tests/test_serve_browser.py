"""`vidstyle serve`'s page in a real browser: the distribution's headless Chromium, driven by
Playwright for Python (no browser download). Skipped where either is missing; .ci/run installs
Chromium. The server runs in this process (uvicorn in a thread), with a token, as a user starts it."""

from __future__ import annotations

import base64
import shutil
import time
from pathlib import Path

import pytest
from PIL import Image

pytest.importorskip("fastapi")
sync_api = pytest.importorskip("playwright.sync_api")

from tests.clips import distinct_frames, write_garbage, write_test_clip  # noqa: E402
from tests.test_serve_api import ENGINE, serving  # noqa: E402
from vidstyle.io.video import iter_frames, probe  # noqa: E402
from vidstyle.serve.app import ServeSettings, create_app  # noqa: E402
from vidstyle.serve.jobs import Job  # noqa: E402

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = [
    pytest.mark.skipif(not Path(CHROMIUM).is_file(), reason="no Chromium (apt-get install chromium)"),
    pytest.mark.slow,
]
TOKEN = "page-test-token"
FRAMES, WIDTH, HEIGHT = 12, 64, 48


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """The page on a free loopback port, with the untrained test model, each frame slowed by 120 ms
    so that the page, polling every 0.7 s, sees a running job."""
    from tests.testmodel import save_untrained

    models = tmp_path_factory.mktemp("models")
    save_untrained(models)
    original = Job.on_frame

    def slow(self, done, total):
        time.sleep(0.12)
        original(self, done, total)

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("VIDSTYLE_MODELS", str(models))
        patch.setattr(Job, "on_frame", slow)
        settings = ServeSettings(root=tmp_path_factory.mktemp("serve"), engine=ENGINE, token=TOKEN)
        with serving(create_app(settings)) as url:
            yield url


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, server):
    context = browser.new_context(accept_downloads=True, viewport={"width": 1280, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"{server}/?token={TOKEN}")
    page.wait_for_selector('.style[data-model="testnet"]')
    yield page
    context.close()
    assert errors == [], errors


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    folder = tmp_path_factory.mktemp("clips")
    return write_test_clip(folder / "walk.mp4", distinct_frames(FRAMES, WIDTH, HEIGHT), fps=24)


def test_upload_preview_progress_result_download_and_reload(page, clip, tmp_path):
    page.set_input_files("#file", str(clip))
    page.click('.style[data-model="testnet"]')
    page.wait_for_selector("#preview-img:not([hidden])", timeout=30_000)
    assert page.eval_on_selector("#preview-img", "img => img.naturalWidth") == WIDTH

    page.click("#start")
    page.wait_for_function(                      # progress in frames: shown while it runs only
        "() => /^\\d+ \\/ 12 frames/.test(document.querySelector('.job-stats')?.textContent)",
        timeout=30_000)
    page.wait_for_selector('.job[data-state="done"] .compare video', timeout=60_000)
    assert "Done: 12 frames" in page.inner_text(".job-stats")
    # Both players show the same clip side by side; the original follows the result's player.
    page.wait_for_function("() => [...document.querySelectorAll('.compare video')]"
                           ".every(v => v.readyState >= 2)")
    page.eval_on_selector(".slot-result video", "v => { v.currentTime = 0.25; }")
    page.wait_for_function("() => Math.abs(document.querySelector('.slot-input video').currentTime"
                           " - 0.25) < 0.05")

    with page.expect_download() as download_info:
        page.click(".download")
    download = download_info.value
    assert download.suggested_filename == "walk.testnet.mp4"
    saved = tmp_path / download.suggested_filename
    download.save_as(saved)
    info = probe(saved)
    assert (info.num_frames, info.width, info.height) == (FRAMES, WIDTH, HEIGHT)
    assert len(list(iter_frames(saved))) == FRAMES

    page.reload()                                # the job list comes back from the server
    page.wait_for_selector('.job[data-state="done"]')
    page.click(".job-remove")
    page.wait_for_selector(".job", state="detached")


def test_an_original_the_browser_cannot_play_is_shown_from_the_servers_copy(page, tmp_path):
    avi = write_test_clip(tmp_path / "camera.avi", distinct_frames(FRAMES, WIDTH, HEIGHT))
    page.set_input_files("#file", str(avi))
    page.click('.style[data-model="testnet"]')
    page.wait_for_selector("#preview-img:not([hidden])", timeout=30_000)   # decoded by the server
    page.click("#start")
    original = page.wait_for_selector('.job[data-state="done"] .slot-input video', timeout=60_000)
    page.wait_for_function("v => v.readyState >= 2", arg=original, timeout=30_000)
    assert "playable=1" in original.get_attribute("src")
    page.click(".job-remove")
    page.wait_for_selector(".job", state="detached")


def test_a_photo_dropped_on_the_page_is_previewed(page, tmp_path):
    photo = tmp_path / "beach.png"
    Image.fromarray(distinct_frames(1, 40, 30)[0]).save(photo)
    page.evaluate("""([name, data]) => {
        const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
        const transfer = new DataTransfer();
        transfer.items.add(new File([bytes], name, { type: "image/png" }));
        document.getElementById("drop").dispatchEvent(new DragEvent("drop", { dataTransfer: transfer }));
    }""", [photo.name, base64.b64encode(photo.read_bytes()).decode()])
    assert "beach.png" in page.inner_text("#picked-name")
    page.click('.style[data-model="testnet"]')
    page.wait_for_selector("#preview-img:not([hidden])", timeout=30_000)
    assert page.eval_on_selector("#preview-img", "img => [img.naturalWidth, img.naturalHeight]") == [40, 30]
    assert page.is_disabled("#stabilize")           # a photo has no frames to steady


def test_a_bad_upload_shows_its_error_on_the_page(page, tmp_path):
    fake = write_garbage(tmp_path / "holiday.mp4")
    page.set_input_files("#file", str(fake))
    page.click('.style[data-model="testnet"]')
    page.click("#start")
    error = page.wait_for_selector("#error:not([hidden])")
    assert "neither a video nor a photo" in error.inner_text()
    assert page.query_selector(".job") is None


def test_cancel_stops_a_running_job(page, tmp_path):
    long_clip = write_test_clip(tmp_path / "long.mp4", distinct_frames(100, WIDTH, HEIGHT))
    page.set_input_files("#file", str(long_clip))
    page.click('.style[data-model="testnet"]')
    page.click("#start")
    page.wait_for_selector('.job[data-state="running"]', timeout=30_000)
    started = time.monotonic()
    page.click(".job-remove")
    page.wait_for_selector(".job", state="detached", timeout=10_000)
    assert time.monotonic() - started < 5


def test_without_the_token_the_page_says_so(browser, server):
    context = browser.new_context()
    page = context.new_page()
    page.goto(server)
    page.wait_for_selector("#error:not([hidden])")
    assert "token" in page.inner_text("#error")
    context.close()

