"""`hailuo-batch run` as one library call: the factory that builds a run's collaborators.

Plan the manifest, take the output folder's lock, bring the journal in line with the plan, drive
the engine against the API (or an in-process simulator), and write the results whatever
happened once the run began: finished, stopped, interrupted by a signal, or broken by a bug. A
run that ends before (refused, its account unread) records its end in the journal and announces
it, but leaves the folder's results files as the run before it wrote them (or writes them for
that run, if it was killed before it could).
"""

from __future__ import annotations

import asyncio
import datetime
import os
import random
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager, suppress
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from runner import files, nightly, report
from runner.api import DEFAULT_BASE_URL, LeonardoClient, Timeouts, open_client
from runner.config import output_folder
from runner.control import (
    EXIT_FAILED,
    EXIT_RESUMABLE,
    Clock,
    EventSink,
    Interrupts,
    Outcome,
    Stop,
    SystemClock,
    Tracker,
    ignore_events,
)
from runner.batching import Batcher
from runner.engine import Engine, EngineSettings
from runner.errors import AuthError, FolderLost, HailuoError, StateError, UsageError
from runner.lock import LOCK_NAME, FolderLock, unusable
from runner.plan import FrameChange, Plan, estimated_usd, make_plan
from runner.render import dollars, plural
from runner.rows import PASSING_FAILURES
from runner.results import CSV, ERRORS, RESULTS, SUMMARY, summarize, write_results
from runner.schedule import Backoff
from runner.simulator import SimSettings, Simulator
from runner.simulator.statefile import lock_name
from runner.state import IN_FLIGHT, JOURNAL_NAME, Journal, holds_journal
from runner.submit import Context


# What the in-process simulator's uploads are kept under: its URL changes each run, its
# account (kept in the output folder) tells one simulated account from another.
SIMULATED_API = "simulator"
SIMULATOR_STATE = "simulator-state.jsonl"  # that account, in the output folder
# The files a run keeps at the top of its output folder: no job's video, poster or sidecar, nor
# a folder on the way to one, may take their names (files.Folder gives such a job its short key).
RUN_FILES = frozenset({
    RESULTS, ERRORS, CSV, SUMMARY, report.REPORT_FILE, LOCK_NAME, SIMULATOR_STATE,
    lock_name(SIMULATOR_STATE), JOURNAL_NAME,
    *(JOURNAL_NAME + suffix for suffix in ("-wal", "-shm", "-journal"))})  # SQLite's own files


@dataclass(frozen=True, slots=True)
class RunConfig:
    """Everything one run needs, built once by the command line (or a test)."""

    manifest: Path
    out: Path | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    prices: dict[str, Any] | None = None
    base_url: str = DEFAULT_BASE_URL
    api_key: str | None = field(default=None, repr=False)
    simulate: SimSettings | None = None
    retry_failed: bool = False
    fetch_missing: bool = False
    timeouts: Timeouts = field(default_factory=Timeouts)
    backoff: Backoff = field(default_factory=Backoff)
    engine: dict[str, Any] = field(default_factory=dict)
    run_id: str | None = None
    notify_url: str | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class PlanDiff:
    """The plan's jobs against an output folder's journal, by what is left to do for them."""

    out_dir: Path
    new: tuple[str, ...]
    in_flight: tuple[str, ...]
    done: tuple[str, ...]
    failed: tuple[str, ...]
    to_create_usd: float = 0.0  # the estimate of the jobs a run would create (new, or again)
    missing: tuple[str, ...] = ()  # the jobs (planned or not) whose video has gone from the folder
    # The jobs the manifest no longer has that a run still fetches, paying nothing more: those
    # in flight, and those failed whose paid generation is polled again.
    unplanned: tuple[str, ...] = ()
    # The jobs the manifest no longer has that the results keep (done, failed or in flight), by state.
    unplanned_counts: dict[str, int] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)  # the planned jobs' videos, where they were put
    # The planned failed jobs a run fetches, paying nothing more: paid, their generation polled again.
    to_fetch: tuple[str, ...] = ()
    # The start frames whose file changed since the folder's jobs were made from them.
    changed_frames: tuple[FrameChange, ...] = ()

    def states(self) -> dict[str, str]:
        """Each planned job's key with its group: new, in flight, done (or, its video gone from
        the folder, video gone) or failed."""
        groups = {"new": self.new, "in flight": self.in_flight, "done": self.done,
                  "failed": self.failed}
        gone = set(self.missing)
        return {key: "video gone" if key in gone else group
                for group, keys in groups.items() for key in keys}


@dataclass(frozen=True, slots=True)
class RunReport:
    out_dir: Path
    outcome: Outcome
    summary: dict[str, Any]  # the run's, as summary.json has it (or, a run that never began, would)


def plan_for(config: RunConfig) -> tuple[Plan, Path]:
    """The plan and the output folder it runs into (`--out`, else the manifest's `output.dir`)."""
    planned = make_plan(config.manifest, overrides=config.overrides, prices=config.prices)
    if config.run_id is not None and (config.out is not None or "{run_id}" not in planned.output_dir):
        raise UsageError(f"--run-id fills {{run_id}} in output.dir, and the folder here is "
                         f"{str(config.out or planned.output_dir)!r}: give the manifest an output.dir "
                         "with {run_id}, or leave --run-id out")
    out_dir = config.out or output_folder(planned.output_dir, name=planned.name,
                                          now=datetime.datetime.now(datetime.UTC),
                                          run_id=config.run_id, simulated=config.simulate is not None)
    _check_lengths(planned, out_dir)
    return planned, out_dir


def _check_lengths(planned: Plan, out_dir: Path) -> None:
    """Refuse (UsageError: nothing is sent) a plan whose files the output folder cannot hold: a
    path longer than its file system takes, or a part of one longer than a name may be there,
    each file counted as the staged name it is first written under. Otherwise each such job is
    paid for and its download fails, run after run."""
    root = os.path.abspath(out_dir)
    path_max, name_max = files.name_limits(root)
    most, base = path_max - 1, len(os.fsencode(root)) + 1  # a path's NUL apart; the folder, its slash
    too_long, too_wide = [], []  # (bytes over, the path or part, the job) by the limit it passes
    for job in planned.jobs:
        longest = os.fsencode(files.longest_name(job.filename, job.short_key))
        if base + len(longest) > most:
            too_long.append((base + len(longest) - most, longest, job))
        widest = max(longest.split(b"/"), key=len) if len(longest) > name_max else longest
        if len(widest) > name_max:
            too_wide.append((len(widest) - name_max, widest, job))
    for found, what, staged in (
            (too_long, "paths", lambda over, name: (
                f"there as {os.path.basename(os.fsdecode(name))}, a path of {base + len(name):,} "
                f"bytes, {over:,} more than the {most:,} a path may have: {files.SHORTER_NAMES}")),
            (too_wide, "names", lambda over, name: (
                f"with a part of {len(name):,} bytes ({_elided(os.fsdecode(name))}), {over:,} more "
                f"than the {name_max:,} a name may have there: use a shorter output.filename"))):
        if found:
            over, name, job = max(found, key=lambda each: each[0])
            raise UsageError(
                f"the files of {plural(len(found), 'job')} would have {what} too long for the "
                f"output folder {_elided(root)}: job {job.short_key}'s video "
                f"{_elided(job.filename)} is staged {staged(over, name)}")


def _elided(path: str) -> str:
    """A path of any length as a message shows it: its first and last 40 characters."""
    return path if len(path) <= 100 else f"{path[:40]}...{path[-40:]}"


def diff(planned: Plan, out_dir: Path, *, retry_failed: bool = False) -> PlanDiff:
    """What a run of `planned` into `out_dir` would do (with `--retry-failed` or not); reads the
    journal, never creates one."""
    states: dict[str, str] = {}
    again: set[str] = set()  # failed jobs the run would create anew
    missing: tuple[str, ...] = ()
    unplanned: tuple[str, ...] = ()
    unplanned_counts: dict[str, int] = {}
    to_fetch: tuple[str, ...] = ()
    files: dict[str, str] = {}
    changed: tuple[FrameChange, ...] = ()
    refused = unusable(out_dir)
    if refused is not None:
        raise refused
    journal_kept(out_dir)
    if (out_dir / JOURNAL_NAME).exists():
        keys = {job.key for job in planned.jobs}
        with Journal.open(out_dir, create=False) as journal:
            states = journal.states_of(keys)
            retried = journal.to_retry(_taken_up(retry_failed), plan=keys)
            again = {row.key for row in retried if not row.polled_again}
            unplanned = tuple(row.key for row in (*journal.in_states(IN_FLIGHT), *retried)
                              if row.key not in keys)
            unplanned_counts = journal.unplanned_counts(keys)
            to_fetch = tuple(row.key for row in retried if row.polled_again and row.key in keys)
            missing = tuple(row.key for row in journal.missing_videos())
            files = {key: file for file, key in journal.file_owners().items() if key in keys}
            changed = tuple(journal.changed_frames(planned.jobs))
    by: dict[str, list[str]] = {"new": [], "in_flight": [], "done": [], "failed": []}
    for job in planned.jobs:
        state = states.get(job.key, "pending")
        group = ("new" if state == "pending" else "done" if state == "downloaded"
                 else "failed" if state == "failed" else "in_flight")
        by[group].append(job.key)
    to_create = estimated_usd(job for job in planned.jobs if job.key in again
                              or states.get(job.key, "pending") == "pending")
    return PlanDiff(out_dir, *(tuple(by[g]) for g in ("new", "in_flight", "done", "failed")),
                    to_create_usd=to_create, missing=missing, unplanned=unplanned,
                    unplanned_counts=unplanned_counts, files=files, to_fetch=to_fetch,
                    changed_frames=changed)


def run_batch(config: RunConfig, *, sink: EventSink = ignore_events, clock: Clock | None = None,
              rand: random.Random | None = None, interrupts: Interrupts | None = None) -> RunReport:
    """Run the manifest to the end (or to a stop) and write its results; see the module doc.
    SIGINT and SIGTERM act on the run through `interrupts` (a block of the caller's, kept until
    the process ends with the run's code), else through a block of its own."""
    if interrupts is None:
        with Interrupts() as interrupts:
            return run_batch(config, sink=sink, clock=clock, rand=rand, interrupts=interrupts)
    planned, out_dir = plan_for(config)
    if config.simulate is None and not config.api_key:
        raise AuthError("no API key: set LEONARDO_API_KEY or pass --api-key-file")
    clock = clock or SystemClock()
    runtime = nightly.Runtime(clock.now(), planned.settings.max_runtime, planned.settings.grace)
    notify_url = config.notify_url or planned.notify_url
    with _held(out_dir) as (lock, journal):
        nightly.took_over(lock)
        folder = files.Folder(out_dir, reserved=RUN_FILES)
        before = journal.run()
        stale = before is not None and before.ended_at is None  # killed before it wrote results
        rerun = nightly.Rerun(out_dir, None if config.out else planned.output_dir, planned.name,
                              config.run_id, simulated=config.simulate is not None)
        stop = Stop(out_hint=lambda: rerun.out_hint(clock.wall()))
        interrupts.abort_with(stop)  # a run recorded as begun is one a signal stops, never kills
        run_id = journal.begin_run(name=planned.name, manifest=str(config.manifest),
                                   settings=asdict(planned.settings), at=clock.wall(),
                                   skipped=planned.skipped)
        # Failed jobs are taken up again, and gone videos fetched, once the account is known to
        # be the folder's.
        begin = _Begin(config, journal, run_id, clock)
        broken: BaseException | None = None
        unfinished: list[dict[str, Any]] = []  # earlier starts' folders left unfinished
        try:
            journal.keep_plan()  # put back if the run ends before it begins
            journal.sync_plan(planned.jobs)
            journal.unsent_retries(run_id=run_id, at=clock.wall())  # a killed run's
            engine = {"settle": config.timeouts.call, **config.engine}
            settings = EngineSettings(run=planned.settings, **engine)
            # The jobs to create, the failed ones `begin` takes up again among them, read once.
            to_create = journal.to_create(_taken_up(config.retry_failed))
            nightly.run_started(planned, out_dir, journal.counts("planned"), journal.counts(),
                                to_create, journal.changed_frames(planned.jobs))
            needed = nightly.needed(to_create, settings.run.budget_usd)
            if config.out is None:
                unfinished = nightly.earlier_folders(planned.output_dir, planned.name, out_dir)
            siblings = nightly.Siblings(planned.output_dir, planned.name, out_dir)
            del planned, to_create
            outcome = asyncio.run(_drive(config, journal, run_id, folder, settings, runtime,
                                         nightly.logged(sink), clock, rand or random.Random(), begin,
                                         needed, stop, siblings))
        except BaseException as exc:
            outcome, broken = _broke_off(exc), exc
            raise
        finally:  # a signal from here on finds the outcome decided
            journal.end_run(run_id, exit_code=outcome.exit_code, reason=outcome.reason,
                            at=clock.wall())
            try:
                # A run that never began (refused, its account unread, interrupted while
                # reading it) tells of its plan, then leaves the journal's plan and the
                # folder's results as the run before left them (writing that run's results
                # when it died before it could).
                if begin.called:
                    journal.unsent_retries(run_id=run_id, at=clock.wall())
                    summary = _write_end(journal, run_id, out_dir, folder, lock, unfinished)
                else:
                    summary = summarize(journal, out_dir, run_id, unfinished_folders=unfinished)
                    journal.restore_plan()
                    if stale:
                        _write_end(journal, journal.last_begun() or run_id, out_dir, folder, lock)
            except StateError as exc:  # the run's row says so too, as `status` shows it
                journal.end_run(run_id, exit_code=exc.exit_code, reason=str(exc), at=clock.wall())
                raise
            nightly.run_ended(summary, notify_url)
            if isinstance(broken, HailuoError):
                broken.announced = True
    return RunReport(out_dir, outcome, summary)


def _write_end(journal: Journal, run_id: int, out_dir: Path, folder: files.Folder, lock: FolderLock,
               unfinished: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The summary of the run `run_id`, its results and report written into its folder
    (`out_dir`), which must still be the one the run began in (`lock` is held in it): never into
    a folder made anew where it was (`_lost`). `unfinished` lists the earlier starts' folders the
    run's start found unfinished: only the run itself knows them, and its summary names them."""
    if folder.moved():
        raise _lost(journal, out_dir, lock)
    try:
        return write_results(journal, out_dir, run_id, unfinished_folders=unfinished)
    except OSError as exc:
        raise StateError(f"{out_dir}: cannot write the run's results "
                         f"({exc.filename or 'its files'}): {exc.strerror or exc}") from exc


def _lost(journal: Journal, out_dir: Path, lock: FolderLock) -> FolderLost:
    """The error that ends a run whose folder was moved or deleted under it: where the folder
    went, as far as it can be known, and what this run (the journal's latest) paid for, read
    from the journal it still holds open. A deleted folder takes with it the only record of
    those generations, and the next run into `out_dir` pays for every job again."""
    run = journal.run()
    booked = journal.booked(run.id) if run else set()
    held = [row for row in journal.reported() if row.generation_id in booked]
    ids = sorted(row.generation_id for row in held if row.generation_id)
    usd = round(sum(row.generation_usd for row in held), 4)
    paid = (f"this run paid for {plural(len(ids), 'generation')} ({dollars(usd)}): {', '.join(ids)}"
            if ids else "this run paid for no generation")
    fate = lock.fate()
    if fate == "deleted":
        told = (f"{out_dir} was deleted during the run (or moved to another disk, which copies it "
                f"and deletes it), its journal with it; {paid}, which no folder holds now (their "
                "videos stay on the account: look them up by id); a run into the folder starts "
                "anew and pays for every job again")
    else:
        resume = (nightly.out_flags(fate.removeprefix("moved to ")) if fate != "moved"
                  else "--out where the folder is now")
        told = (f"{out_dir} was {fate} during the run, its journal with it: run again with {resume} "
                f"to resume; {paid}, which that journal holds")
    return FolderLost(told, paid={"generation_ids": ids, "count": len(ids), "usd": usd})


@contextmanager
def _held(out_dir: Path) -> Iterator[tuple[FolderLock, Journal]]:
    """The output folder's lock, then its journal, unless the folder has lost its journal. The
    lock file tells of an earlier run only before the lock is taken (taking it makes the file),
    and only when no live run holds it: the one that does is named by the lock instead."""
    try:
        journal_kept(out_dir)
    except StateError:
        if FolderLock.holder(out_dir) is None:
            raise
    with FolderLock.acquire(out_dir) as lock:
        journal_kept(out_dir, locked=True)
        with Journal.open(out_dir) as journal:
            yield lock, journal


def journal_kept(out_dir: Path, *, locked: bool = False) -> None:
    """Refuse a folder that an earlier run worked in but that has no journal (deleted, emptied):
    a new journal would take its paid jobs for new ones and pay for every one again. Every run
    leaves its lock file, and a finished one its results, so a run killed before it wrote any
    results is known too, unless this run holds the lock (`locked`: the file is its own)."""
    journal = out_dir / JOURNAL_NAME
    if journal.is_file() and holds_journal(journal):
        return
    if any((out_dir / name).exists() for name in (RESULTS, SUMMARY, *([] if locked else [LOCK_NAME]))):
        raise StateError(f"{out_dir} holds an earlier run's files but no journal ({JOURNAL_NAME} "
                         "is missing or empty), so its jobs would be paid for again: restore the "
                         "journal, or use another --out (or delete the folder to start over)")


def _broke_off(exc: BaseException) -> Outcome:
    """How a run that an exception ended is recorded: with the exit code the process ends with."""
    if isinstance(exc, HailuoError):
        return Outcome(exc.exit_code, str(exc))
    return Outcome(EXIT_FAILED, f"the run broke off on an error ({type(exc).__name__}): see its traceback")


def _taken_up(retry_failed: bool) -> frozenset[str] | None:
    """The kinds of failed jobs a run takes up again: all of them with --retry-failed, else
    those that failed for now."""
    return None if retry_failed else PASSING_FAILURES


@dataclass(slots=True)
class _Begin:
    """What a run changes in the journal before its engine starts: failed jobs taken up again,
    gone videos to fetch (with --fetch-missing), each said in the log. Until it is `called`, the
    run has polled, created, taken up and fetched nothing, so it writes no results of its own."""

    config: RunConfig
    journal: Journal
    run_id: int
    clock: Clock
    called: bool = False

    def __call__(self) -> None:
        self.called = True
        config, journal, run_id, clock = self.config, self.journal, self.run_id, self.clock
        journal.drop_kept_plan()
        retried = journal.retry_failed(run_id=run_id, at=clock.wall(),
                                       kinds=_taken_up(config.retry_failed))
        nightly.failed_taken_up(journal.folder, retried, every_kind=config.retry_failed)
        missing = journal.missing_videos()
        if config.fetch_missing:
            journal.apply([row.fetched_again(run_id=run_id, at=clock.wall()) for row in missing])
        nightly.videos_missing(journal.folder, len(missing), fetching=config.fetch_missing)


async def _drive(config: RunConfig, journal: Journal, run_id: int, folder: files.Folder,
                 settings: EngineSettings, runtime: nightly.Runtime, sink: EventSink, clock: Clock,
                 rand: random.Random, begin: Callable[[], None], needed: nightly.Needed,
                 stop: Stop, siblings: nightly.Siblings) -> Outcome:
    """The run against the API: its account read and checked first (and its balance against
    what the jobs to create cost within the budget, `needed`), then `begin` (the run's own
    changes to the journal), then the engine; `stop` is aborted by a signal, maybe before, and
    tells how to resume the run in its reasons. `siblings` are the other folders of the
    manifest's `output.dir`, whose generations a lost create's search leaves out."""
    async with _api(config, settings, journal) as client:
        reading = asyncio.ensure_future(nightly.read_account(
            client, pause=lambda n: clock.sleep(config.backoff.delay(n, rand.random))))
        waits = [reading, asyncio.ensure_future(stop.wait_abort())]
        left = runtime.left(clock.now())
        if left is not None:
            waits.append(asyncio.ensure_future(clock.sleep(left)))
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        for waiting in waits[1:]:
            waiting.cancel()
        if stop.aborted is not None:  # a signal stops the reading at once
            reading.cancel()
            return stop.aborted
        if not reading.done():  # and so does the max runtime
            reading.cancel()
            return Outcome(EXIT_RESUMABLE, f"{runtime.reached} while the account was being "
                                           "read: nothing was sent; run again")
        account = reading.result()
        if isinstance(account, Outcome):
            return account
        refused = nightly.check_owner(journal, account, folder.given)
        if refused is not None:
            return refused
        journal.record_account(run_id, account.user_id)
        begin()
        # Credit short of the jobs to create stops creates, not the fetching of videos
        # already paid for.
        short = nightly.check_balance(account, needed)
        if short is not None:
            stop.halt(short.exit_code, short.reason)
        tracker = Tracker(journal.counts("answered"), sink=sink, clock=clock,
                          budget_usd=settings.run.budget_usd)
        ctx = Context(store=journal, record=Batcher(journal.apply).submit, client=client,
                      clock=clock, tracker=tracker, stop=stop, run_id=run_id, rand=rand.random,
                      backoff=config.backoff, timeout=settings.run.timeout, siblings=siblings)
        async with nightly.runtime_limit(runtime, stop=stop, clock=clock, tracker=tracker):
            return await Engine(ctx, settings, folder).run()


@asynccontextmanager
async def _api(config: RunConfig, settings: EngineSettings,
               journal: Journal) -> AsyncIterator[LeonardoClient]:
    """The client of the real API, or of a simulator served in this process for the run; the
    simulated account is kept in the output folder (the journal's), so that a resumed run finds
    the generations and start frames of the runs before it. A run that never recorded that
    account (refused for a folder another account worked in, or stopped before) sent nothing
    on it: the state file and its lock are removed again if this run made them, leaving the
    folder as the run found it."""
    connections = max(100, settings.run.concurrency * 2)
    if config.simulate is None:
        assert config.api_key is not None
        async with open_client(base_url=config.base_url, api_key=config.api_key,
                               timeouts=config.timeouts, connections=connections) as client:
            yield client
        return
    simulate = config.simulate
    if simulate.state_path is None:
        simulate = replace(simulate, state_path=journal.folder / SIMULATOR_STATE)
    state = simulate.state_path
    made = [path for path in (state, state.with_name(lock_name(state.name)))
            if not os.path.lexists(path)]
    simulator = Simulator(simulate)
    try:
        async with simulator, open_client(
                base_url=simulator.base_url, api_key=simulator.api_key, timeouts=config.timeouts,
                connections=connections, api=SIMULATED_API) as client:
            yield client
    finally:
        if simulator.settings.user_id not in journal.accounts():
            for path in made:
                with suppress(FileNotFoundError, NotADirectoryError):  # never made
                    path.unlink()
