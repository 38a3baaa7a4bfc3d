"""The simulator's clock and its per-minute limits, both in simulated seconds.

Nothing in the simulator sleeps to make time pass: renders, limits and upload expiry are all read
from this clock when a request asks, so a test can scale time up or jump it forward.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime

MINUTE = 60.0


class SimClock:
    """Simulated seconds since the simulator started: real time times `scale`, plus any jumps."""

    def __init__(self, scale: float, *, real: Callable[[], float] = time.monotonic) -> None:
        self.scale = scale
        self._real = real
        self._origin = real()
        self._offset = 0.0
        self._started = time.time()
        self.epoch = self._started

    def now(self) -> float:
        return (self._real() - self._origin) * self.scale + self._offset

    def wall(self) -> float:
        """Real time as seconds since 1970, read through `real` so that a test can drive it."""
        return self._started + self._real() - self._origin

    def resume(self, at: float, *, epoch: float) -> None:
        """Carry on a saved clock: now is simulated instant `at`, shown from `epoch` on."""
        self._offset = at - (self._real() - self._origin) * self.scale
        self.epoch = epoch

    def advance(self, seconds: float) -> None:
        """Jump forward, as if `seconds` of simulated time had passed at once."""
        if seconds < 0:
            raise ValueError(f"the clock only goes forward, not by {seconds}")
        self._offset += seconds

    def real_seconds(self, simulated: float) -> float:
        return simulated / self.scale

    def iso(self, simulated: float) -> str:
        """A simulated instant as the API writes its times (`expiration`)."""
        return iso_time(self.epoch + simulated)


def iso_time(epoch: float) -> str:
    """A time (seconds since 1970) as the API writes `createdAt`: UTC, milliseconds, a Z."""
    moment = datetime.fromtimestamp(epoch, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class RateWindow:
    """Events in the last simulated minute: a sliding window, so no burst slips past a boundary.

    `limit` None counts without refusing (used for the books' peak creates per minute).
    """

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self._times: deque[float] = deque()
        self.peak = 0

    def _expire(self, now: float) -> None:
        times = self._times
        while times and times[0] <= now - MINUTE:
            times.popleft()

    def wait(self, now: float) -> float:
        """0 when one more event fits now, else the simulated seconds until one does."""
        if self.limit is None:
            return 0.0
        self._expire(now)
        if len(self._times) < self.limit:
            return 0.0
        return self._times[-self.limit] + MINUTE - now

    def add(self, now: float) -> int:
        """Count one event; the number in the window, this one included."""
        self._expire(now)
        self._times.append(now)
        self.peak = max(self.peak, len(self._times))
        return len(self._times)
