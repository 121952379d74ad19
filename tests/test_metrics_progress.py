"""The metrics progress bar estimates by work: fidelity frames (VGG) cost many plain frames."""

import pytest

from vidstyle.evaluate import progress


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


@pytest.mark.parametrize("stop_after", [11, 21, 31])
def test_the_remaining_time_follows_the_work_left_not_the_frames_left(monkeypatch, stop_after):
    clock = Clock()
    monkeypatch.setattr(progress.time, "perf_counter", clock)
    total, every, plain_s, heavy_s = 100, 10, 0.1, 1.0
    work = progress.WorkProgress(total, every, enabled=False)
    for t in range(stop_after):
        clock.now += heavy_s if t % every == 0 else plain_s
        work.frame_done(t)
    rate = work.bar.n / clock.now                       # work units a second, as tqdm computes
    eta = (work.bar.total - work.bar.n) / rate
    left = range(stop_after, total)
    truth = sum(heavy_s if t % every == 0 else plain_s for t in left)
    assert eta == pytest.approx(truth, rel=0.05)
    by_frames = len(left) * clock.now / stop_after
    assert abs(by_frames - truth) > 0.1 * truth              # what a frame count would have said


def test_without_fidelity_every_frame_weighs_one(monkeypatch):
    work = progress.WorkProgress(40, None, enabled=False)
    for t in range(10):
        work.frame_done(t)
    assert work.bar.n == 10 and work.bar.total == 40
