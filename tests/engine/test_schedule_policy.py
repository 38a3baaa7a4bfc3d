"""Timing policy as numbers: backoff, Retry-After, the create rate meter, the poll schedule."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from email.utils import format_datetime

import pytest

from runner.schedule import (
    Backoff,
    PollPolicy,
    PollSchedule,
    RateMeter,
    http_time,
    parse_retry_after,
)
from runner.api import ServerClock
from runner.simulator.limits import RateWindow


def test_backoff_doubles_up_to_its_cap_with_half_of_it_random() -> None:
    backoff = Backoff(base=1.0, cap=8.0)
    assert [backoff.delay(n, lambda: 0.0) for n in range(1, 6)] == [0.5, 1.0, 2.0, 4.0, 4.0]
    assert [backoff.delay(n, lambda: 1.0) for n in range(1, 6)] == [1.0, 2.0, 4.0, 8.0, 8.0]
    rand = random.Random(1).random
    assert all(4.0 <= backoff.delay(9, rand) <= 8.0 for _ in range(100))


def test_retry_after_is_a_floor_under_the_backoff() -> None:
    backoff = Backoff(base=1.0, cap=8.0)
    assert backoff.retry_delay(1, lambda: 0.0, retry_after=3.0) == 3.0
    assert backoff.retry_delay(4, lambda: 0.0, retry_after=3.0) == 4.0
    assert backoff.retry_delay(1, lambda: 0.0, retry_after=None) == 0.5


@pytest.mark.parametrize("value, seconds", [("3", 3.0), ("0.25", 0.25), (" 7 ", 7.0),
                                            ("-4", 0.0), ("soon", None), ("", None),
                                            (None, None), ("nan", None)])
def test_retry_after_seconds(value: str | None, seconds: float | None) -> None:
    assert parse_retry_after(value, now_epoch=1_000_000.0) == seconds


def test_retry_after_http_date() -> None:
    now = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)
    later = format_datetime(datetime(2025, 3, 1, 12, 0, 30, tzinfo=UTC), usegmt=True)
    assert parse_retry_after(later, now_epoch=now.timestamp()) == 30.0


@pytest.mark.parametrize(("value", "seconds"), [
    ("Sat, 01 Mar 2025 12:00:30 GMT", datetime(2025, 3, 1, 12, 0, 30, tzinfo=UTC).timestamp()),
    ("Sat, 01 Mar 2025 12:00:30 -0000", None), ("yesterday", None), ("", None), (None, None)])
def test_an_http_date_is_a_time_and_one_without_its_zone_or_none_is_no_time(
        value: str | None, seconds: float | None) -> None:
    assert http_time(value) == seconds


def test_the_apis_clock_is_read_from_its_answers_dates_at_the_least_offset_they_allow() -> None:
    clock = ServerClock()
    assert clock.ahead == 0.0  # nothing known: the clocks are taken to agree
    clock.note(1000.0, asked=1000.2, answered=1000.4)  # stamped in the second from 1000
    assert (clock.low, clock.high, clock.ahead) == pytest.approx((-0.4, 0.8, -0.4))
    clock.note(None, asked=1000.5, answered=1000.6)  # an answer without a Date says nothing
    clock.note(1600.0, asked=1001.0, answered=1001.3)  # ten minutes ahead: the bounds jump
    assert (clock.low, clock.high, clock.ahead) == pytest.approx((598.7, 600.0, 598.7))
    clock.note(1602.0, asked=1002.5, answered=1002.6)
    assert (clock.low, clock.high, clock.ahead) == pytest.approx((599.4, 600.0, 599.4))
    clock.note(1630.0, asked=1000.0, answered=1035.0)  # an answer 35 s late narrows nothing
    assert (clock.low, clock.high) == pytest.approx((599.4, 600.0))
    clock.note(400.0, asked=1003.0, answered=1003.1)  # set ten minutes behind since
    assert clock.ahead == pytest.approx(-603.1)


def test_the_meter_spaces_creates_evenly_at_its_rate() -> None:
    meter = RateMeter(120)
    times = [meter.reserve(0.0) for _ in range(5)]
    assert times == pytest.approx([0.0, 0.5, 1.0, 1.5, 2.0])
    assert meter.reserve(10.0) == 10.0


def test_a_429_without_retry_after_cuts_the_rate_once_per_round_and_pauses() -> None:
    meter = RateMeter(60)
    meter.reserve(0.0)
    meter.limited(now=1.0, sent_at=0.0, retry_after=None, pause=2.0)
    meter.limited(now=1.1, sent_at=0.5, retry_after=None, pause=2.0)  # sent before the cut
    assert meter.rate == pytest.approx(0.75)
    assert meter.reserve(1.2) == pytest.approx(3.1)
    for _ in range(100):
        meter.succeeded(2.0)
    assert meter.rate == pytest.approx(1.0)


def test_a_429_with_retry_after_holds_every_create_until_then_at_the_same_rate() -> None:
    meter = RateMeter(60)
    meter.reserve(0.0)
    meter.limited(now=1.0, sent_at=0.0, retry_after=4.0, pause=0.1)
    assert meter.rate == pytest.approx(1.0)
    assert meter.reserve(1.2) == pytest.approx(5.0)


def _drive(limit: int, asked: float, retry_after: bool, seconds: float = 600.0) -> tuple[int, int]:
    """The meter against a sliding-window limit, as numbers: (accepted, refused)."""
    window, meter = RateWindow(limit), RateMeter(asked)
    accepted = refused = 0
    now = 0.0
    while now < seconds:
        now = meter.reserve(now)
        wait = window.wait(now)
        if wait > 0:
            refused += 1
            meter.limited(now=now, sent_at=now, retry_after=wait if retry_after else None,
                          pause=0.5)
        else:
            window.add(now)
            accepted += 1
            meter.succeeded(2.0)
    return accepted, refused


def test_below_the_limit_the_meter_never_meets_a_429_and_keeps_its_rate() -> None:
    accepted, refused = _drive(limit=100, asked=90, retry_after=False)
    assert refused == 0 and accepted >= 0.99 * 90 * 10


@pytest.mark.parametrize("retry_after", [True, False])
def test_above_the_limit_the_meter_keeps_at_least_80_percent_of_it(retry_after: bool) -> None:
    accepted, refused = _drive(limit=100, asked=150, retry_after=retry_after)
    assert accepted >= 0.8 * 100 * 10
    assert refused < accepted


def test_cold_polls_come_at_a_quarter_a_half_then_every_interval() -> None:
    schedule = PollSchedule(PollPolicy(interval=4.0))
    gaps = [schedule.next_poll("m", polls, 0.0) for polls in range(5)]
    assert gaps == [1.0, 1.0, 2.0, 4.0, 4.0]


def test_learned_polls_start_at_the_render_time_and_back_off() -> None:
    schedule = PollSchedule(PollPolicy(interval=4.0))
    for _ in range(10):
        schedule.learn("m", pending_at=9.0, complete_at=11.0)
    assert schedule.expected("m") == 10.0
    assert schedule.next_poll("m", 0, 0.2) == pytest.approx(9.8)
    assert [schedule.next_poll("m", n, 10.0) for n in (1, 2, 3, 4, 5)] == \
        pytest.approx([0.5, 1.0, 2.0, 4.0, 4.0])
    assert schedule.expected("other") == 10.0  # a new kind borrows from all kinds


def test_a_first_poll_that_was_late_teaches_an_earlier_one() -> None:
    schedule = PollSchedule(PollPolicy(interval=4.0))
    schedule.learn("m", pending_at=None, complete_at=10.0)
    first = schedule.expected("m")
    schedule.learn("m", pending_at=None, complete_at=first)
    assert schedule.expected("m") < first


def test_deterministic_renders_are_seen_within_a_few_percent_with_few_polls() -> None:
    """A 0.5 s render polled by the schedule: the latency and the polls it settles at."""
    schedule, render = PollSchedule(PollPolicy(interval=0.5)), 0.5
    polls_total, late_total = 0, 0.0
    for _job in range(200):
        elapsed, polls, pending_at = 0.0, 0, None
        while True:
            elapsed += schedule.next_poll("m", polls, elapsed)
            polls += 1
            if elapsed >= render:
                break
            pending_at = elapsed
        schedule.learn("m", pending_at=pending_at, complete_at=elapsed)
        polls_total, late_total = polls_total + polls, late_total + elapsed - render
    assert polls_total / 200 <= 2.5
    assert late_total / 200 <= 0.05 * render
