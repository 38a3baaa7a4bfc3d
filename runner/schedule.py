"""Timing policy as pure numbers: retry backoff, Retry-After, the create rate meter, the poll schedule.

Nothing here sleeps or reads a clock: every function takes the time it needs, so the engine owns
the clock and the tests assert delays without waiting. The shapes follow tenacity's `wait.py`
(capped exponential backoff with jitter) and TCP's AIMD for the rate meter.
"""

from __future__ import annotations

import bisect
import email.utils
import math
from collections import deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field

Random = Callable[[], float]


@dataclass(frozen=True, slots=True)
class Backoff:
    """Capped exponential backoff with "equal jitter": half the ceiling fixed, half random.

    Jitter spreads retries of many jobs that failed together; keeping half fixed guarantees the
    delay still grows (AWS Architecture Blog, "Exponential Backoff And Jitter", 2015).
    """

    base: float = 1.0
    cap: float = 30.0
    factor: float = 2.0
    attempts: int = 8

    def __post_init__(self) -> None:
        if self.base <= 0 or self.cap < self.base or self.factor < 1 or self.attempts < 1:
            raise ValueError(f"bad backoff {self!r}")

    def delay(self, attempt: int, rand: Random) -> float:
        """Seconds to wait before retry number `attempt` (1 for the first retry)."""
        ceiling = min(self.cap, self.base * self.factor ** max(0, attempt - 1))
        return ceiling / 2 + ceiling / 2 * rand()

    def retry_delay(self, attempt: int, rand: Random, retry_after: float | None = None) -> float:
        """The backoff delay, but never shorter than the server's Retry-After when it gave one."""
        delay = self.delay(attempt, rand)
        return max(delay, retry_after) if retry_after is not None else delay


def http_time(value: str | None) -> float | None:
    """An HTTP date (`Tue, 24 Nov 2026 21:50:04 GMT`) as seconds since 1970; None if it is not one."""
    try:
        when = email.utils.parsedate_to_datetime(value.strip()) if value else None
    except (TypeError, ValueError):
        return None
    return when.timestamp() if when is not None and when.tzinfo is not None else None


def parse_retry_after(value: str | None, *, now_epoch: float) -> float | None:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP date (RFC 9110 10.2.3)."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        when = http_time(text)
        if when is None:
            return None
        seconds = when - now_epoch
    if math.isnan(seconds) or math.isinf(seconds):
        return None
    return max(0.0, seconds)


class RateMeter:
    """Spaces create requests evenly at a rate that a 429 lowers and successes raise back.

    Even spacing with no burst keeps any sliding minute at most one request over the configured
    rate. A 429 with Retry-After holds every create until then; one without cuts the rate
    (multiplicative decrease, at most once per round of requests: only a 429 for a request sent
    after the last cut counts, and never below the rate the server was lately seen to accept)
    and pauses; each success adds back a step towards the configured rate.
    """

    def __init__(self, per_minute: float, *, cut: float = 0.75, floor: float = 0.05,
                 recovery_steps: int = 50) -> None:
        if per_minute <= 0:
            raise ValueError("per_minute must be more than 0")
        self.limit = per_minute / 60.0
        self.rate = self.limit
        self.cut = cut
        self.floor = floor * self.limit
        self.step = self.limit / recovery_steps
        self.next_at = -math.inf
        self.last_cut = -math.inf
        self._accepted: deque[float] = deque(maxlen=32)

    def reserve(self, now: float) -> float:
        """The time at which the caller may send its create; books that moment for it."""
        at = max(now, self.next_at)
        self.next_at = at + 1.0 / self.rate
        return at

    def limited(self, *, now: float, sent_at: float, retry_after: float | None,
                pause: float) -> None:
        """A create sent at `sent_at` got 429: hold every create until the server's Retry-After;
        without one, also slow down, since then the rate is all there is to go by."""
        if retry_after is not None:
            self.next_at = max(self.next_at, now + retry_after)
            return
        if sent_at >= self.last_cut:
            target = self.rate * self.cut
            seen = self.accepted_rate()
            if seen is not None:
                target = max(target, min(self.rate, seen))
            self.rate = max(self.floor, target)
            self.last_cut = now
        self.next_at = max(self.next_at, now + pause)

    def succeeded(self, now: float) -> None:
        """A create went through: climb back towards the configured rate."""
        self._accepted.append(now)
        self.rate = min(self.limit, self.rate + self.step)

    def accepted_rate(self) -> float | None:
        """Creates a second the server took lately: under a sliding-window limit, sending at
        least this fast loses nothing, so a cut never goes below it."""
        times = self._accepted
        if len(times) < 8 or times[-1] <= times[0]:
            return None
        return (len(times) - 1) / (times[-1] - times[0])


@dataclass(frozen=True, slots=True)
class PollPolicy:
    """Knobs of the poll schedule: the base interval is both the cold start's scale and the cap."""

    interval: float = 5.0
    cold_fraction: float = 0.25
    gap_fraction: float = 0.05
    min_gap: float = 0.01
    quantile: float = 0.25
    memory: int = 64

    def __post_init__(self) -> None:
        if self.interval <= 0 or self.min_gap <= 0 or not 0 < self.quantile < 1:
            raise ValueError(f"bad poll policy {self!r}")


@dataclass(slots=True)
class _Estimates:
    values: deque[float]
    ordered: list[float] = field(default_factory=list)

    def add(self, value: float) -> None:
        if len(self.values) == self.values.maxlen:
            old = self.values.popleft()
            del self.ordered[bisect.bisect_left(self.ordered, old)]
        self.values.append(value)
        bisect.insort(self.ordered, value)

    def quantile(self, q: float) -> float:
        return self.ordered[min(len(self.ordered) - 1, int(q * len(self.ordered)))]


class PollSchedule:
    """When to poll a generation, learned from the render times of finished jobs.

    Before anything has finished, polls come at a quarter of the base interval, then a half,
    then one interval, then every interval. Once jobs of a kind have finished, the first poll
    comes at a low quantile of their render times and later gaps start at a twentieth of that
    and double up to the base interval, so a finished video is seen within a few hundredths of
    its render time with one or two polls. Each finished job gives one estimate of its render
    time: halfway between its last PENDING poll and the COMPLETE one, or, when the first poll
    already saw it complete, a little under that poll, so an estimate that was too late shrinks
    on its own.
    """

    def __init__(self, policy: PollPolicy) -> None:
        self.policy = policy
        self._by_kind: dict[Hashable, _Estimates] = {}
        self._all = _Estimates(deque(maxlen=policy.memory))

    def expected(self, kind: Hashable) -> float | None:
        """The render time the first poll aims at, or None before anything finished."""
        known = self._by_kind.get(kind) or (self._all if self._all.ordered else None)
        return known.quantile(self.policy.quantile) if known else None

    def next_poll(self, kind: Hashable, polls: int, elapsed: float) -> float:
        """Seconds from now to the next poll, after `polls` polls and `elapsed` since submit."""
        policy = self.policy
        expected = self.expected(kind)
        if expected is None:
            gap = policy.interval * policy.cold_fraction * 2 ** max(0, polls - 1)
            return max(policy.min_gap, min(policy.interval, gap))
        if polls == 0 and elapsed < expected:
            return expected - elapsed
        first_gap = max(policy.min_gap, expected * policy.gap_fraction)
        return min(policy.interval, first_gap * 2 ** max(0, polls - 1))

    def learn(self, kind: Hashable, *, pending_at: float | None, complete_at: float) -> None:
        """Record a finished job seen complete `complete_at` seconds after submit."""
        if pending_at is not None:
            estimate = (pending_at + complete_at) / 2
        else:
            expected = self.expected(kind) or complete_at
            estimate = max(0.0, complete_at - max(self.policy.min_gap, expected * self.policy.gap_fraction))
        estimates = self._by_kind.setdefault(kind, _Estimates(deque(maxlen=self.policy.memory)))
        estimates.add(estimate)
        self._all.add(estimate)
