"""What the engine is given to touch the world and to be told to stop, and what it tells back.

The clock, the stop conditions and the event sink are injected, so a test drives time, a signal
handler or a future `--max-runtime` stops a run the same way, and the CLI draws progress
from the same events a test counts.
"""

from __future__ import annotations

import asyncio
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import FrameType, TracebackType
from typing import Any, Protocol

from runner.render import figure, spent_amount
from runner.state import IN_FLIGHT

EXIT_OK, EXIT_FAILED, EXIT_RESUMABLE, EXIT_CANNOT_RUN, EXIT_INTERRUPTED = 0, 1, 3, 4, 130


class Clock(Protocol):
    """`now` for intervals (monotonic), `wall` for what the journal records (epoch seconds)."""

    def now(self) -> float: ...

    def wall(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def now(self) -> float:
        return time.monotonic()

    def wall(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


@dataclass(frozen=True, slots=True)
class Outcome:
    """How a run ended: the exit code of `architecture.md` and a sentence saying why."""

    exit_code: int
    reason: str


class Stop:
    """The run's stop conditions. `halt` stops submitting and lets work in flight finish (budget,
    quota, a runtime limit); `abort` ends everything at once (a signal, a rejected key). The
    first reason given is the one reported. `out_hint()` is the `--out` that resumes the run when
    the next start names another folder, None when running again resumes it: asked when a reason
    is made, since a folder named by the date is named anew the next day."""

    def __init__(self, *, out_hint: Callable[[], str | None]) -> None:
        self._out_hint = out_hint
        self.halted: Outcome | None = None
        self.aborted: Outcome | None = None
        self._abort = asyncio.Event()
        self._no_submits = asyncio.Event()

    def how_to_resume(self) -> str:
        """How the run is resumed: `run again to resume`, or the `--out` that resumes it."""
        return self._out_hint() or "run again to resume"

    def resumable(self, reason: str) -> str:
        """`reason` for a stop running again resumes, with the `--out` that resumes it in a
        folder the next start does not name again."""
        hint = self._out_hint()
        return f"{reason}: {hint}" if hint else reason

    @property
    def submitting(self) -> bool:
        return self.halted is None and self.aborted is None

    def halt(self, exit_code: int, reason: str) -> None:
        if self.halted is None:
            self.halted = Outcome(exit_code, reason)
        self._no_submits.set()

    def abort(self, exit_code: int, reason: str) -> None:
        if self.aborted is None:
            self.aborted = Outcome(exit_code, reason)
        self._abort.set()
        self._no_submits.set()

    async def wait_abort(self) -> None:
        await self._abort.wait()

    async def wait_to_submit(self, clock: Clock, seconds: float) -> None:
        """Sleep `seconds` by `clock` before a create, or only until submitting stops: a create
        waiting its turn then gives up at once, so the run never waits for one it won't send."""
        sleeping = asyncio.ensure_future(clock.sleep(seconds))
        stopped = asyncio.ensure_future(self._no_submits.wait())
        try:
            await asyncio.wait([sleeping, stopped], return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopped.cancel()
            sleeping.cancel()
        if sleeping.done():
            sleeping.result()


class Interrupts:
    """SIGINT and SIGTERM, the one as the other (Ctrl-C sends SIGINT; `systemctl stop` and a
    shutdown send SIGTERM), by one handler for as long as this block lasts: neither has its
    default action meanwhile, which for SIGTERM kills a run with its start recorded and its end
    never written. Until a run's `Stop` is given (`abort_with`), a signal interrupts at once
    (KeyboardInterrupt: nothing is recorded yet); from then on it aborts the run (exit 130),
    however far the run has got, and once the run's end is recorded it changes nothing: the
    process ends with the code the run recorded. Leaving the block gives the previous handlers
    back, but in the process of the command itself (`ends_process`), leaving it by the command's
    exit (SystemExit) ignores both signals instead, until the process is gone: the default action
    would otherwise still end it, 143 or 130, in the moments it takes to exit. Only the main
    thread can set handlers; in another, signals are left as they are."""

    STOPS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, *, ends_process: bool = False) -> None:
        self._ends_process = ends_process
        self._stop: Stop | None = None
        self._previous: list[Any] = []

    def __enter__(self) -> Interrupts:
        if threading.current_thread() is threading.main_thread():
            self._previous = [signal.signal(number, self._handle) for number in self.STOPS]
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        exiting = self._ends_process and kind is not None and issubclass(kind, SystemExit)
        for number, handler in zip(self.STOPS, self._previous, strict=False):
            signal.signal(number, signal.SIG_IGN if exiting else handler)

    def abort_with(self, stop: Stop) -> None:
        """From now on a signal aborts `stop` rather than interrupting."""
        self._stop = stop

    def _handle(self, number: int, frame: FrameType | None) -> None:
        if self._stop is None:
            raise KeyboardInterrupt
        reason = self._stop.resumable(f"interrupted by {signal.Signals(number).name}")
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # outside the engine's loop: the run finds the stop when it gets there
            self._stop.abort(EXIT_INTERRUPTED, reason)
        else:  # the loop may be waiting in its selector: wake it
            loop.call_soon_threadsafe(self._stop.abort, EXIT_INTERRUPTED, reason)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The run at one moment, as progress shows it; `spent_estimated_usd` is the part of
    `spent_usd` booked at estimates (creates whose answer, with their price, was lost)."""

    total: int
    downloaded: int
    failed: int
    in_flight: int
    pending: int
    spent_usd: float
    spent_estimated_usd: float
    elapsed: float
    eta: float | None

    @property
    def finished(self) -> int:
        return self.downloaded + self.failed

    @property
    def spent(self) -> str:
        """The money this run spent, with its part at estimates: `$1.08 ($0.27 of it estimated)`."""
        return spent_amount({"spent_usd": self.spent_usd,
                             "spent_estimated_usd": self.spent_estimated_usd})

    def describe(self) -> str:
        """One line for a log: counts, money, and the time left at the pace so far."""
        eta = "" if self.eta is None else f", about {_duration(self.eta)} left"
        return (f"{figure(self.finished)}/{figure(self.total)} finished ({figure(self.failed)} failed), "
                f"{figure(self.in_flight)} in flight, {figure(self.pending)} waiting, "
                f"{self.spent} spent by this run{eta}")


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


@dataclass(frozen=True, slots=True)
class Event:
    """Something that happened: `kind` is a transition's target state, "retry", "rate-limited",
    "unsettled" (a create whose outcome could not be found out: the job stays `submitting`),
    "unreachable" (no connection to the API can be made), "reachable" (the API answers again),
    "stop" or "tick" (a heartbeat at a steady interval). `detail` holds its figures by name,
    as a JSON log carries them (a "failed" event's kind of failure, `error_kind`, among them)."""

    kind: str
    key: str | None
    message: str
    snapshot: Snapshot
    detail: Mapping[str, Any] = field(default_factory=dict)


EventSink = Callable[[Event], None]


def ignore_events(event: Event) -> None:
    """The sink of a quiet run."""


class Tracker:
    """Counts by state and the run's money, kept in step with the journal's transitions."""

    def __init__(self, counts: dict[str, int], *, sink: EventSink, clock: Clock,
                 budget_usd: float | None) -> None:
        self.counts: Counter[str] = Counter(counts)
        self.sink = sink
        self.clock = clock
        self.budget_usd = budget_usd
        self.started = clock.now()
        self.finished_here = 0
        self.spent_usd = 0.0
        self.spent_estimated_usd = 0.0
        self.reserved_usd = 0.0

    def fits(self, price: float) -> bool:
        """Whether reserving `price` more keeps spent + reserved within the budget."""
        if self.budget_usd is None:
            return True
        return self.spent_usd + self.reserved_usd + price <= self.budget_usd + 1e-9

    def reserve(self, price: float) -> None:
        self.reserved_usd += price

    def settle(self, reserved: float, spent: float, *, at_estimate: bool = False) -> None:
        """A reservation of `reserved` ends (0: the run reserved nothing, as for an earlier
        run's create found on the account): `spent` is what the create cost (0 when nothing
        was created), the price the job was booked at (`booked_usd`) when its answer, with the
        price, was lost (`at_estimate`)."""
        self.reserved_usd = max(0.0, self.reserved_usd - reserved)
        self.spent_usd += spent
        if at_estimate:
            self.spent_estimated_usd += spent

    def moved(self, key: str, source: str, target: str, message: str = "",
              detail: Mapping[str, Any] | None = None) -> None:
        if source != target:
            self.counts[source] -= 1
            self.counts[target] += 1
            self.finished_here += target in ("downloaded", "failed")
        self.emit(target, key, message, detail)

    def left_plan(self, key: str, source: str, message: str) -> None:
        """A job no longer in the plan went back to pending: the results leave such jobs out,
        and so do the counts."""
        self.counts[source] -= 1
        self.emit("pending", key, message)

    @property
    def unfinished(self) -> int:
        """Jobs pending or in flight."""
        return self.counts["pending"] + sum(self.counts[s] for s in IN_FLIGHT)

    def emit(self, kind: str, key: str | None = None, message: str = "",
             detail: Mapping[str, Any] | None = None) -> None:
        self.sink(Event(kind, key, message, self.snapshot(), detail or {}))

    def snapshot(self) -> Snapshot:
        counts = self.counts
        elapsed = self.clock.now() - self.started
        eta = self.unfinished * elapsed / self.finished_here if self.finished_here else None
        return Snapshot(total=sum(counts.values()), downloaded=counts["downloaded"],
                        failed=counts["failed"], in_flight=sum(counts[s] for s in IN_FLIGHT),
                        pending=counts["pending"], spent_usd=round(self.spent_usd, 4),
                        spent_estimated_usd=round(self.spent_estimated_usd, 4),
                        elapsed=elapsed, eta=eta)
