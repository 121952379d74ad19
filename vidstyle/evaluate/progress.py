"""Progress of a metrics pass, by work: a frame scored for fidelity (VGG-19) costs many plain frames."""

from __future__ import annotations

import time

from tqdm import tqdm


class WorkProgress:
    """A progress bar over the work of a metrics pass, not its frames, so the ETA holds steady.

    Every ``every``-th frame also runs VGG-19 for fidelity and costs many plain frames. The bar counts
    a plain frame as 1 and a fidelity frame as ``weight``, the ratio of their measured mean times
    (10 until both have been timed), and re-totals as the ratio is learnt. ``total``: frames, if known.
    """

    def __init__(self, total: int | None, every: int | None, enabled: bool = True):
        self.total, self.every, self.weight = total, every, 10.0
        self.seconds = {False: [0.0, 0], True: [0.0, 0]}   # fidelity frame? -> [seconds, count]
        self.done = 0.0
        self._last = time.perf_counter()
        self.bar = tqdm(total=self._work(), disable=not enabled, desc="metrics", leave=False,
                        bar_format="{desc}: {percentage:3.0f}%|{bar}| {postfix} [{elapsed}<{remaining}]")

    def _is_fidelity(self, t: int) -> bool:
        return self.every is not None and t % self.every == 0

    def _work(self) -> float | None:
        if self.total is None:
            return None
        heavy = 0 if self.every is None else -(-self.total // self.every)
        return (self.total - heavy) + heavy * self.weight

    def frame_done(self, t: int) -> None:
        """Frame ``t`` (0-based) is scored."""
        now = time.perf_counter()
        heavy = self._is_fidelity(t)
        entry = self.seconds[heavy]
        entry[0] += now - self._last
        entry[1] += 1
        self._last = now
        if all(count for _, count in self.seconds.values()):
            plain = self.seconds[False][0] / self.seconds[False][1]
            self.weight = max(1.0, self.seconds[True][0] / self.seconds[True][1] / max(plain, 1e-9))
        self.done += self.weight if heavy else 1.0
        work = self._work()
        if work is not None:
            self.bar.total = max(work, self.done)
        self.bar.n = self.done
        self.bar.set_postfix_str(f"frame {t + 1}" + (f"/{self.total}" if self.total else ""),
                                 refresh=False)
        self.bar.refresh()

    def close(self) -> None:
        self.bar.close()
