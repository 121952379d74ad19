"""vidstyle.io.video on synthetic clips made here: counts, order, resizing, random access, exact
lossless and odd-size round trips, kept rate and audio, atomic writing, and every bad input."""

import sys
from fractions import Fraction

import av
import cv2
import numpy as np
import pytest

from tests.clips import (
    distinct_frames,
    make_frame_folder,
    truncate,
    write_garbage,
    write_test_clip,
    write_vfr_clip,
)
from vidstyle.errors import ConfigError, VideoError
from vidstyle.io.encode import VideoWriter, write_video
from vidstyle.io.framefolder import FOLDER_FPS
from vidstyle.io.random_access import read_frames
from vidstyle.io.video import is_clip, iter_frames, iter_timed_frames, probe, variable_rate

W, H = 64, 48


@pytest.fixture(scope="module")
def frames():
    return distinct_frames(24, W, H)


@pytest.fixture(scope="module")
def exact_clip(tmp_path_factory, frames):
    """24 frames at 24 fps whose decoded pixels equal ``frames`` exactly."""
    return write_test_clip(tmp_path_factory.mktemp("exact") / "exact.mp4", frames, lossless=True)


def closest_original(decoded: np.ndarray, originals: np.ndarray) -> int:
    return int(np.argmin(np.abs(originals.astype(int) - decoded.astype(int)).mean(axis=(1, 2, 3))))


def audio_seconds(path) -> float:
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        if stream.duration:
            return float(stream.duration * stream.time_base)
        return container.duration / 1e6


# --- probe and streaming -----------------------------------------------------------------------

@pytest.mark.parametrize("suffix", [".mp4", ".mkv", ".avi"])
def test_probe_counts_frames_and_reads_rate_and_size_of_a_written_clip(tmp_path, frames, suffix):
    path = write_test_clip(tmp_path / f"clip{suffix}", frames[:17], fps=Fraction(25))
    info = probe(path)
    assert (info.num_frames, info.fps, info.size) == (17, 25.0, (W, H))
    assert info.duration == pytest.approx(17 / 25, abs=0.01)
    assert not info.is_frame_folder and not info.has_audio and info.rotation == 0


def test_iter_frames_yields_every_frame_in_order_within_codec_tolerance(tmp_path, frames):
    decoded = list(iter_frames(write_test_clip(tmp_path / "lossy.mp4", frames)))
    assert len(decoded) == len(frames)
    assert all(f.dtype == np.uint8 and f.shape == (H, W, 3) for f in decoded)
    assert [closest_original(f, frames) for f in decoded] == list(range(len(frames)))
    assert np.mean([np.abs(f.astype(int) - o).mean() for f, o in zip(decoded, frames)]) < 4


@pytest.mark.parametrize("size, interpolation",
                         [((32, 20), cv2.INTER_AREA), ((100, 70), cv2.INTER_LINEAR)])
def test_resize_uses_area_when_shrinking_and_bilinear_when_enlarging(exact_clip, frames, size,
                                                                     interpolation):
    decoded = list(iter_frames(exact_clip, size=size, max_frames=3))
    assert [f.shape for f in decoded] == [(size[1], size[0], 3)] * 3
    for got, original in zip(decoded, frames):
        assert np.array_equal(got, cv2.resize(original, size, interpolation=interpolation))


def test_start_duration_and_max_frames_select_whole_frame_ranges(exact_clip, frames):
    window = list(iter_frames(exact_clip, start=0.25, duration=0.5))  # frames 6..17 at 24 fps
    assert np.array_equal(np.stack(window), frames[6:18])
    three = list(iter_frames(exact_clip, start=0.5, max_frames=3))
    assert np.array_equal(np.stack(three), frames[12:15])
    assert len(list(iter_frames(exact_clip, max_frames=5))) == 5


def test_start_past_the_end_and_bad_sizes_are_refused(exact_clip):
    with pytest.raises(VideoError, match="past the end"):
        iter_frames(exact_clip, start=5.0)
    with pytest.raises(ConfigError):
        iter_frames(exact_clip, size=(0, 10))
    with pytest.raises(ConfigError):
        read_frames(exact_clip, [0], size="big")


def test_rotated_clip_is_read_upright_with_display_size(tmp_path, frames):
    path = write_test_clip(tmp_path / "phone.mp4", frames[:4], lossless=True, rotation=90)
    info = probe(path)
    assert (info.rotation, info.size) == (90, (H, W))
    upright = np.rot90(frames[:4], 1, axes=(1, 2))  # counterclockwise, as ffmpeg displays it
    assert np.array_equal(np.stack(list(iter_frames(path))), upright)
    assert np.array_equal(read_frames(path, [3, 1]), upright[[3, 1]])


UNEVEN = [0.0, 0.05, 0.1, 0.6, 0.65, 1.3, 1.35]  # seconds


def test_timed_frames_carry_the_times_stored_in_the_file(tmp_path, frames):
    even = [t for t, _ in iter_timed_frames(write_test_clip(tmp_path / "even.mp4", frames[:6], fps=12))]
    uneven = [t for t, _ in iter_timed_frames(write_vfr_clip(tmp_path / "vfr.mkv", UNEVEN))]
    folder = [t for t, _ in iter_timed_frames(make_frame_folder(tmp_path / "shot", frames[:3]))]
    assert np.allclose(even, np.arange(6) / 12, atol=1e-6)
    assert np.allclose(uneven, UNEVEN, atol=1e-3)
    assert folder == [0.0, 1 / FOLDER_FPS, 2 / FOLDER_FPS]


def test_variable_rate_tells_uneven_frame_times_from_even_ones(tmp_path, frames):
    assert variable_rate(write_vfr_clip(tmp_path / "vfr.mp4", UNEVEN))
    assert not variable_rate(write_test_clip(tmp_path / "cfr.mkv", frames[:6], fps=12))
    assert not variable_rate(write_test_clip(tmp_path / "cfr.avi", frames[:6], fps=30000 / 1001))
    assert not variable_rate(make_frame_folder(tmp_path / "shot", frames[:3]))


# --- frame folders -----------------------------------------------------------------------------

def test_frame_folder_is_probed_and_read_in_numeric_not_text_order(tmp_path, frames):
    folder = make_frame_folder(tmp_path / "shot", frames[:12], pattern="frame_{}.png", start=1)
    (folder / "notes.txt").write_text("not a frame")
    make_frame_folder(folder, frames[:1], pattern="thumb_{}.png")  # a shorter sequence: ignored
    info = probe(folder)
    assert (info.num_frames, info.fps, info.size) == (12, FOLDER_FPS, (W, H))
    assert info.is_frame_folder
    assert np.array_equal(np.stack(list(iter_frames(folder))), frames[:12])  # frame_10 after frame_9
    assert np.array_equal(read_frames(folder, [9, 0]), frames[[9, 0]])


def test_is_clip_knows_video_names_and_folders_of_two_or_more_numbered_images(tmp_path, frames):
    assert is_clip(tmp_path / "a.MP4") and is_clip(tmp_path / "b.webm") and is_clip("c.mpeg")
    assert not is_clip(tmp_path / "a.txt") and not is_clip(tmp_path / "._a.mp4")
    assert is_clip(make_frame_folder(tmp_path / "two", frames[:2]))
    assert not is_clip(make_frame_folder(tmp_path / "one", frames[:1]))
    assert not is_clip(tmp_path)  # holds folders, no images


# --- random access -----------------------------------------------------------------------------

def test_read_frames_matches_iter_frames_in_any_order_with_repeats(tmp_path, frames):
    pytest.importorskip("decord")
    path = write_test_clip(tmp_path / "lossy.mp4", frames)
    streamed = np.stack(list(iter_frames(path, size=(40, 30))))
    picked = read_frames(path, [7, 8, 0, 23, 7], size=(40, 30))
    assert picked.shape == (5, 30, 40, 3)
    assert np.abs(picked.astype(int) - streamed[[7, 8, 0, 23, 7]]).max() <= 2


def test_read_frames_refuses_indices_outside_the_clip(exact_clip):
    with pytest.raises(VideoError, match="outside"):
        read_frames(exact_clip, [0, 24])


def test_read_frames_without_decord_names_the_extra_for_files_only(tmp_path, exact_clip, frames,
                                                                  monkeypatch):
    monkeypatch.setitem(sys.modules, "decord", None)  # what an install without the extra meets
    with pytest.raises(ConfigError, match=r"vidstyle\[decord\]") as error:
        read_frames(exact_clip, [2, 0])
    assert "\n" not in str(error.value)
    folder = make_frame_folder(tmp_path / "shot", frames[:3])
    assert np.array_equal(read_frames(folder, [2, 0]), frames[[2, 0]])
    rotated = write_test_clip(tmp_path / "phone.mp4", frames[:3], lossless=True, rotation=90)
    assert np.array_equal(read_frames(rotated, [2]), np.rot90(frames[[2]], 1, axes=(1, 2)))


# --- writing -----------------------------------------------------------------------------------

@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
def test_lossless_round_trip_is_exact(tmp_path, frames, suffix):
    path = tmp_path / f"out{suffix}"
    noisy = np.random.default_rng(1).integers(0, 256, frames.shape, dtype=np.uint8)
    assert write_video(path, noisy, 24, lossless=True) == len(noisy)
    assert np.array_equal(np.stack(list(iter_frames(path))), noisy)


def test_odd_size_round_trip_keeps_the_size(tmp_path):
    odd = distinct_frames(6, 333, 241)
    path = tmp_path / "odd.mp4"
    write_video(path, odd, 24)
    assert probe(path).size == (333, 241)
    decoded = np.stack(list(iter_frames(path)))
    assert decoded.shape == odd.shape
    assert np.abs(decoded.astype(int) - odd).mean() < 4


def test_frame_rate_is_kept_exactly(tmp_path, frames):
    path = tmp_path / "ntsc.mp4"
    write_video(path, frames[:6], 30000 / 1001)
    with av.open(str(path)) as container:
        assert container.streams.video[0].average_rate == Fraction(30000, 1001)
    assert probe(path).fps == pytest.approx(30000 / 1001, abs=1e-9)


def test_audio_is_copied_packet_for_packet_with_the_same_duration(tmp_path, frames):
    source = write_test_clip(tmp_path / "with_sound.mp4", frames, audio=True)
    path = tmp_path / "out.mp4"
    write_video(path, frames, 24, audio_from=source)
    assert probe(path).has_audio
    assert audio_seconds(path) == pytest.approx(audio_seconds(source), abs=0.03)
    with av.open(str(source)) as a, av.open(str(path)) as b:
        sent = [bytes(p) for p in a.demux(audio=0) if p.size]
        kept = [bytes(p) for p in b.demux(audio=0) if p.size]
    assert kept == sent  # not re-encoded


def test_audio_the_container_cannot_hold_is_reencoded(tmp_path, frames):
    source = write_test_clip(tmp_path / "opus.webm", frames[:12], audio=True)
    path = tmp_path / "out.mov"  # .mov refuses Opus
    write_video(path, frames[:12], 24, audio_from=source)
    with av.open(str(path)) as container:
        assert container.streams.audio[0].codec_context.name == "aac"
    assert audio_seconds(path) == pytest.approx(0.5, abs=0.06)


def test_audio_start_keeps_the_audio_under_the_written_video(tmp_path, frames):
    source = write_test_clip(tmp_path / "with_sound.mp4", frames, audio=True)
    path = tmp_path / "middle.mp4"
    write_video(path, frames[6:12], 24, audio_from=source, audio_start=0.25)
    assert audio_seconds(path) == pytest.approx(0.25, abs=0.03)
    with av.open(str(path)) as container:
        first = next(p for p in container.demux(audio=0) if p.size)
        assert float(first.pts * first.time_base) == pytest.approx(0.0, abs=0.03)  # moved to the start


def test_an_error_inside_the_writer_leaves_no_file(tmp_path, frames):
    path = tmp_path / "out.mp4"
    with pytest.raises(RuntimeError, match="stylizer failed"):
        with VideoWriter(path, 24) as writer:
            for t, frame in enumerate(frames):
                writer.write(frame)
                if t == 10:
                    raise RuntimeError("stylizer failed")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("bad_frames", [[], [np.zeros((H, W, 3), np.float32)],
                                        [np.zeros((H, W, 3), np.uint8),
                                         np.zeros((H, W + 2, 3), np.uint8)]],
                         ids=["no frames", "float frame", "size changes"])
def test_bad_frames_raise_video_error_and_leave_no_file(tmp_path, bad_frames):
    with pytest.raises(VideoError):
        write_video(tmp_path / "out.mp4", bad_frames, 24)
    assert list(tmp_path.iterdir()) == []


def test_a_format_that_cannot_hold_the_codec_is_a_video_error(tmp_path, frames):
    with pytest.raises(VideoError, match="webm"):
        write_video(tmp_path / "out.webm", frames[:2], 24, codec="mpeg4")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
def test_writer_with_a_time_base_stamps_each_frame_at_its_time(tmp_path, frames, suffix):
    path = tmp_path / f"vfr{suffix}"
    with VideoWriter(path, 5, time_base=Fraction(1, 90000)) as writer:
        for t, seconds in enumerate(UNEVEN):
            writer.write(frames[t], seconds)
    assert np.allclose([t for t, _ in iter_timed_frames(path)], UNEVEN, atol=1e-3)


def test_avi_cannot_vary_its_rate_so_the_writer_spaces_frames_evenly(tmp_path, frames):
    path = tmp_path / "vfr.avi"
    with VideoWriter(path, 10, time_base=Fraction(1, 90000)) as writer:
        for t, seconds in enumerate(UNEVEN):
            writer.write(frames[t], seconds)
    times = np.array([t for t, _ in iter_timed_frames(path)])
    assert np.allclose(times - times[0], np.arange(len(UNEVEN)) / 10)


def test_keep_as_finishes_the_file_under_the_other_name_only(tmp_path, frames):
    with VideoWriter(tmp_path / "out.mp4", 24) as writer:
        writer.write(frames[0])
        writer.keep_as(tmp_path / "out.partial.mp4")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.partial.mp4"]


# --- bad input ---------------------------------------------------------------------------------

def _audio_only(path):
    write_test_clip(path.with_suffix(".m4a"), distinct_frames(12), audio=True)
    with av.open(str(path.with_suffix(".m4a"))) as source, av.open(str(path), "w") as out:
        stream = out.add_stream_from_template(source.streams.audio[0])
        for packet in source.demux(audio=0):
            if packet.size:
                packet.stream = stream
                out.mux(packet)
    return path


def _folder_with_broken_frame(path):
    make_frame_folder(path, distinct_frames(3))
    write_garbage(path / "00001.png")
    return path


BAD_INPUTS = {
    "missing file": lambda tmp: tmp / "missing.mp4",
    "text named .mp4": lambda tmp: write_garbage(tmp / "notes.mp4"),
    "zero-length file": lambda tmp: (tmp / "empty.mp4").write_bytes(b"") or tmp / "empty.mp4",
    "no video stream": lambda tmp: _audio_only(tmp / "sound.mp4"),
    "folder without frames": lambda tmp: (tmp / "empty").mkdir() or tmp / "empty",
    "folder with broken frame": lambda tmp: _folder_with_broken_frame(tmp / "broken"),
}
READERS = {
    "probe": probe,
    "iter_frames": lambda path: list(iter_frames(path)),
    "read_frames": lambda path: read_frames(path, [0, 1]),
}


@pytest.mark.parametrize("bad, reader", [(bad, reader) for bad in BAD_INPUTS for reader in READERS
                                         # probe reads only the first frame, which is whole
                                         if (bad, reader) != ("folder with broken frame", "probe")])
def test_bad_input_raises_one_line_video_error_naming_the_path(tmp_path, bad, reader):
    path = BAD_INPUTS[bad](tmp_path)
    with pytest.raises(VideoError) as error:
        READERS[reader](path)
    message = str(error.value)
    assert path.name in message and "\n" not in message


def test_audio_from_a_missing_file_is_a_video_error_and_leaves_no_file(tmp_path, frames):
    with pytest.raises(VideoError, match="missing.mp4"):
        write_video(tmp_path / "out.mp4", frames[:2], 24, audio_from=tmp_path / "missing.mp4")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
def test_truncated_file_yields_the_frames_before_the_cut_then_raises(tmp_path, suffix):
    noise = np.random.default_rng(2).integers(0, 256, (30, H, W, 3), dtype=np.uint8)
    path = truncate(write_test_clip(tmp_path / f"cut{suffix}", noise), 0.5)
    decoded = []
    with pytest.raises(VideoError, match=r"truncated: decoded (\d+) frames") as error:
        for frame in iter_frames(path):
            decoded.append(frame)
    assert 5 < len(decoded) < 30
    assert f"decoded {len(decoded)} frames" in str(error.value)
    assert [closest_original(f, noise) for f in decoded] == list(range(len(decoded)))
