"""What an unattended run adds around the engine: a balance check before the first create, a
runtime limit with a grace period, the run's story in the `hailuo` log, and a notification at the
end.

Nobody watches a nightly run, so each of these is about saying early and plainly what happened:
a balance too small is refused before anything is sent (rather than stopping half-way on a 402),
a run that would overlap the next night stops at its deadline and resumes the night after, and
the log and the webhook carry the same one-line headline a person reads first.
"""

from __future__ import annotations

import asyncio
import datetime
import glob
import itertools
import logging
import os
import re
import shlex
import socket
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Iterable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runner import catalog, notify, state
from runner.api import Account, LeonardoClient
from runner.config import SIMULATED_SUFFIX, output_folder
from runner.control import (
    EXIT_CANNOT_RUN,
    EXIT_RESUMABLE,
    Clock,
    Event,
    EventSink,
    Outcome,
    Stop,
    Tracker,
)
from runner.errors import (ApiError, AuthError, FolderLost, HailuoError, ManifestError, PermanentError,
                           UsageError)
from runner.lock import FolderLock, describe, directory_held, process_alive, who
from runner.logs import ACT, LOGGER
from runner.manifest import load_document
from runner.plan import FrameChange, Plan
from runner.render import (SHOWN, UNSETTLED, by_kind, changed_frames_line, dollars, figure, jobs_left,
                           plural, videos_gone)
from runner.rows import FAILURE_KINDS, JobRow
from runner.state import Journal

# An account without a limit answers a balance of a billion credits (the simulator's "unlimited";
# $1.5 million, more than any real balance), so such a figure means: nothing to check.
UNLIMITED_CREDITS = 1_000_000_000
_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")

log = logging.getLogger(LOGGER)
act = logging.getLogger(ACT)  # warnings a person must act on, on standard error too


@dataclass(frozen=True, slots=True)
class Runtime:
    """The run's time limit: `started` is the clock's `now()` when the run began; seconds."""

    started: float
    max_runtime: float | None
    grace: float

    def left(self, now: float) -> float | None:
        """Seconds from `now` to the deadline; None when the run has no limit."""
        return None if self.max_runtime is None else self.started + self.max_runtime - now

    @property
    def reached(self) -> str:
        return f"the max runtime of {self.max_runtime:g} s is reached"


def check_run_id(run_id: str | None) -> str | None:
    """A `--run-id` that names one folder: letters, digits, dot, dash, underscore."""
    if run_id is not None and not _RUN_ID.match(run_id):
        raise UsageError(f"--run-id {run_id!r}: use up to 100 letters, digits, '.', '-' or '_', "
                         "starting with a letter or digit (e.g. 2026-11-24 or night-7)")
    return run_id


def cost_to_create(to_create: Iterable[JobRow], budget_usd: float | None) -> float:
    """What the jobs `to_create` would cost, at most the budget when one is set."""
    total = sum(row.estimated_cost for row in to_create)
    return total if budget_usd is None else min(total, budget_usd)


@dataclass(frozen=True, slots=True)
class Needed:
    """What the jobs a run would create cost, at most its budget, and the cheapest of them."""

    usd: float
    cheapest_usd: float


def needed(to_create: Sequence[JobRow], budget_usd: float | None) -> Needed:
    """What the balance must pay for the jobs `to_create` (`check_balance`)."""
    return Needed(cost_to_create(to_create, budget_usd),
                  min((row.estimated_cost for row in to_create), default=0.0))


async def read_account(client: LeonardoClient, *, pause: Callable[[int], Awaitable[object]],
                       tries: int = 3) -> Account | Outcome:
    """The account of the run's key (`/v1/me`), read before anything is sent, or the Outcome
    that ends the run there: exit 4 for a rejected key or an API root with no such call (a
    wrong --base-url); exit 3, resumable, when it cannot be read after `tries` (with `pause(n)`
    after the n-th failure): no generation is polled or made without knowing its account."""
    for attempt in range(1, tries + 1):
        try:
            return await client.me()
        except AuthError as exc:
            return Outcome(EXIT_CANNOT_RUN, str(exc))
        except PermanentError as exc:
            if exc.status == 404:
                return Outcome(EXIT_CANNOT_RUN, f"{client.api} is no Leonardo API root: /v1/me "
                               f"answered 404 (the root ends in /api/rest, as "
                               "https://cloud.leonardo.ai/api/rest does)")
            return Outcome(EXIT_CANNOT_RUN, f"{client.api} refused to tell the key's account: "
                           f"/v1/me answered {exc.status}")
        except ApiError as exc:
            if attempt == tries:
                return Outcome(EXIT_RESUMABLE, f"the account of the key could not be read (/v1/me: "
                               f"{str(exc).splitlines()[0][:200]}): nothing was sent; run again")
            await pause(attempt)
    raise AssertionError("tries must be at least 1")


def check_owner(journal: Journal, account: Account, out_dir: Path) -> Outcome | None:
    """Refuse (exit 4) a folder that runs on another account worked in: its generations, polled
    here, would be taken for deleted and given up on (a create whose answer was lost too), and
    new ones would mix two accounts' videos."""
    others = journal.accounts() - {account.user_id}
    if not others:
        return None
    return Outcome(EXIT_CANNOT_RUN, f"{out_dir} was run on another account "
                   f"({', '.join(sorted(others))}) than this run's ({account.user_id}; "
                   "--simulate has an account of its own): run with that account's key and API "
                   "root, or use another --out")


def check_balance(account: Account, needed: Needed) -> Outcome | None:
    """Why no job may be created (exit 3) when the account's credits cannot pay for what is
    `needed`; None to go on. The credits are the paid ones and the API plan's together,
    creates spending both (each told apart when the account has some of each). An unlimited
    balance, or none shown, skips the check: the quota stop still guards the run. A budget
    within the balance is offered when the balance pays for one job at least."""
    needed_usd = needed.usd
    if needed_usd <= 0:
        return None
    pools = [credits for credits in (account.paid_credits, account.subscription_credits)
             if credits is not None]
    credits = sum(pools)
    if not pools or credits >= UNLIMITED_CREDITS:
        log.info("balance check skipped: the account shows %s",
                 "an unlimited balance" if pools else "no balance")
        return None
    usd_per_credit = catalog.load().usd_per_credit
    balance_usd = credits * usd_per_credit
    held = f"{figure(round(credits))} credits"
    if len(pools) == 2 and all(pools):  # both in use: what the balance is made of
        held += (f": {figure(round(account.paid_credits))} paid, "
                 f"{figure(round(account.subscription_credits))} of the API plan")
    if needed_usd <= balance_usd + 1e-9:
        log.info("balance %s (%s) covers the estimated %s", dollars(balance_usd), held,
                 dollars(needed_usd), extra={"balance_usd": round(balance_usd, 4),
                                             "needed_usd": round(needed_usd, 4)})
        return None
    short = needed_usd - balance_usd
    todo = (f"add credit, or set a budget of at most {dollars(balance_usd)} (--budget-usd)"
            if needed.cheapest_usd <= balance_usd + 1e-9 else "it covers no job (the cheapest is "
            f"estimated at {dollars(needed.cheapest_usd)}): add credit")
    reason = (f"the balance is too low: the jobs still to create are estimated at "
              f"{dollars(needed_usd)}, the account has {dollars(balance_usd)} ({held}), "
              f"{dollars(short)} ({figure(round(short / usd_per_credit))} credits) short; "
              f"{todo}, then run again (no job was created)")
    log.error("no job is created: %s", reason, extra={"balance_usd": round(balance_usd, 4),
                                                        "needed_usd": round(needed_usd, 4),
                                                        "short_usd": round(short, 4)})
    return Outcome(EXIT_RESUMABLE, reason)


async def watch_runtime(runtime: Runtime, *, stop: Stop, clock: Clock, tracker: Tracker) -> None:
    """At the deadline stop submitting; after the grace period end the run, resumable.

    Jobs in flight at the deadline have `grace` seconds to finish and download; whatever is still
    unfinished then is in the journal and the next run picks it up."""
    left = runtime.left(clock.now())
    if left is None:
        return
    await clock.sleep(left)
    limit = runtime.reached
    stop.halt(EXIT_RESUMABLE, f"{limit}: {stop.how_to_resume()}")
    in_flight = tracker.snapshot().in_flight
    log.warning("%s: submitting stopped, with %s in flight and %g s of grace to finish", limit,
                plural(in_flight, "job"), runtime.grace,
                extra={"in_flight": in_flight, "grace_seconds": runtime.grace})
    await clock.sleep(runtime.grace)
    left = tracker.snapshot().in_flight
    log.warning("the grace period is over with %s in flight: stopping", plural(left, "job"),
                extra={"in_flight": left})
    stop.abort(EXIT_RESUMABLE, f"{limit} and its grace of {runtime.grace:g} s is over with "
                               f"{plural(left, 'job')} in flight: {stop.how_to_resume()}")


@asynccontextmanager
async def runtime_limit(runtime: Runtime, *, stop: Stop, clock: Clock,
                        tracker: Tracker) -> AsyncIterator[None]:
    """`watch_runtime` beside the block; it ends with the block, and a bug in it is raised."""
    watch = asyncio.create_task(watch_runtime(runtime, stop=stop, clock=clock, tracker=tracker))
    try:
        yield
    finally:
        watch.cancel()
        await asyncio.wait([watch])
    if not watch.cancelled():
        watch.result()


def logged(sink: EventSink) -> EventSink:
    """`sink`, with the failed jobs (`failure_logged`), the creates left unsettled
    (`unsettled_logged`), the API's outages and the run's stop written to the log on the way."""
    failures: Counter[str] = Counter()
    unsettled: set[str] = set()

    def forward(event: Event) -> None:
        if event.kind == "failed":
            failure_logged(event, failures)
        elif event.kind == "unsettled":
            unsettled_logged(event, unsettled)
        elif event.kind == "unreachable":
            log.warning("%s", event.message, extra=dict(event.detail))
        elif event.kind == "reachable":
            log.info("%s", event.message, extra=dict(event.detail))
        elif event.kind == "stop":
            if max(failures.values(), default=0) > SHOWN:
                log.warning("%s in this run: %s; errors.jsonl lists every one",
                            plural(failures.total(), "job") + " failed", ", ".join(by_kind(failures)),
                            extra={"failed_by_kind": dict(failures)})
            if event.message:
                log.warning("run stopped: %s", event.message, extra={"reason": event.message})
        sink(event)
    return forward


def failure_logged(event: Event, failures: Counter[str]) -> None:
    """Log a failed job with its reason while its kind has had at most SHOWN (counted in
    `failures`); with the next of that kind, say that further ones are counted, not listed. A
    big batch's failures share a few reasons: listed whole, hundreds of lines alike would bury
    the rest of a cron mail or of a terminal, and errors.jsonl holds each one already."""
    kind = event.detail["error_kind"]
    failures[kind] += 1
    if failures[kind] <= SHOWN:
        log.warning("job %s failed: %s", (event.key or "")[:10], event.message,
                    extra={"key": event.key, "reason": event.message, "error_kind": kind})
    elif failures[kind] == SHOWN + 1:
        log.warning("further jobs %s are counted, not listed, after the first %d: errors.jsonl "
                    "lists every one", FAILURE_KINDS[kind], SHOWN,
                    extra={"error_kind": kind, "listed": SHOWN})


def unsettled_logged(event: Event, unsettled: set[str]) -> None:
    """Log a job whose create was left unsettled, with the cause, the first time it is (each
    job's key is kept in `unsettled`), while SHOWN or fewer were; with the next, say that further
    ones are not listed. Such a job waits in `submitting` with no failure recorded: the log is
    the only place that tells why a run ended with it unfinished."""
    key = event.key or ""
    if key in unsettled:
        return
    unsettled.add(key)
    if len(unsettled) <= SHOWN:
        log.warning("job %s's create is left unsettled (%s): %s", key[:10], UNSETTLED, event.message,
                    extra={"key": key, "reason": event.message})
    elif len(unsettled) == SHOWN + 1:
        log.warning("further creates left unsettled are not listed, after the first %d", SHOWN,
                    extra={"listed": SHOWN})


def took_over(lock: FolderLock) -> None:
    """Say so when the folder's last run died holding its lock (killed, or the machine rebooted)."""
    if lock.took_over:
        holder = lock.took_over
        pid, host, started = holder.get("pid"), holder.get("host"), holder.get("started")
        fate = "is gone"
        if (host == socket.gethostname() and isinstance(pid, int) and process_alive(pid)
                and isinstance(started, int | float) and started > _booted()):
            fate = ("no longer holds it, though a process of that number runs: if it is that run "
                    "and this folder a copy of its own, both would send the jobs not yet sent")
        log.warning("took over the lock of %s: %s %s; resuming its work",
                    lock.path.parent, who(holder), fate,
                    extra={"previous_pid": pid, "previous_host": host})


def _booted() -> float:
    """When this machine started (a process that began before then is gone, whatever runs
    under its number now)."""
    return time.time() - time.clock_gettime(time.CLOCK_BOOTTIME)



def run_started(planned: Plan, out_dir: Path, counts: dict[str, int],
                everything: dict[str, int], to_create: Sequence[JobRow],
                changed: Sequence[FrameChange]) -> None:
    """Log the plan's jobs by state (`counts`), the jobs the run would create (`to_create`, the
    failed ones it takes up again among them), the unsettled creates it looks for first and the
    start frames whose change makes jobs new (`changed`), its warnings (the budget's against
    the jobs to create) and, when the folder also holds jobs this plan no longer has
    (`everything` counts them too), that they are kept and stay in the results."""
    done, unsettled = counts.get("downloaded", 0), counts.get("submitting", 0)
    looked_for = (f", {plural(unsettled, 'unsettled create')} to look for first (created again "
                  "only when not found)") if unsettled else ""
    frames = changed_frames_line(changed)
    log.info("run started: %s, %s (estimated %s) into %s; %s already downloaded, "
             "%s to create%s%s", planned.name, plural(len(planned.jobs), "job"),
             dollars(planned.estimated_usd), out_dir, figure(done), figure(len(to_create)),
             looked_for, f"; {frames}" if frames else "",
             extra={"run_name": planned.name, "out": str(out_dir), "jobs": len(planned.jobs),
                    "estimated_usd": round(planned.estimated_usd, 4), "counts": counts,
                    "to_create": len(to_create)})
    for warning in planned.warnings_for(cost_to_create(to_create, None)):
        log.warning("%s: %s", planned.name, warning)
    others = sum(everything.values()) - sum(counts.values())
    if others:
        log.warning("%s also holds %s not in this plan (an earlier version of the manifest, or "
                    "another manifest): they are kept, and listed in the results",
                    out_dir, plural(others, "job"), extra={"unplanned_jobs": others})


def failed_taken_up(out_dir: Path, count: int, *, every_kind: bool) -> None:
    """Say how many failed jobs this run takes up again: those failed for now, or (with
    --retry-failed) every one."""
    if count:
        log.info("%s: %s taken up again (%s)", out_dir, plural(count, "failed job"),
                 "--retry-failed" if every_kind else "failed for now", extra={"retried": count})


def videos_missing(out_dir: Path, count: int, *, fetching: bool) -> None:
    """Say so when videos of done jobs have gone from the folder, and whether this run fetches
    them again (`--fetch-missing`)."""
    if count:
        log.warning("%s: %s", out_dir, videos_gone(count, fetching=fetching),
                    extra={"missing_videos": count})


def sibling_folders(template: str, name: str, out_dir: Path) -> list[Path]:
    """The other output folders that starts of the manifest `name` made from an `output.dir`
    with {date}, {time} or {run_id} (`template`), each holding a journal, of `out_dir`'s kind
    (simulated or real), in order of their paths; none when the folder has no such stamp."""
    stamps = _stamps(template)
    if not stamps:
        return []
    # Placeholders are bare names, which glob.escape leaves as they are: escaping the whole
    # template escapes its literal parts, so `[`, `*` and `?` in them match only themselves.
    literal = glob.escape(os.path.expanduser(template))
    pattern = literal.format_map({"name": glob.escape(name), **dict.fromkeys(stamps, "*")})
    if out_dir.name.endswith(SIMULATED_SUFFIX):  # the earlier starts' folders were named alike
        pattern += SIMULATED_SUFFIX
    folders = []
    for journal in sorted(glob.glob(os.path.join(pattern, state.JOURNAL_NAME))):
        folder = Path(journal).parent
        other_kind = folder.name.endswith(SIMULATED_SUFFIX) != out_dir.name.endswith(SIMULATED_SUFFIX)
        if folder.resolve() != out_dir.resolve() and not other_kind:  # another, simulated or real as this
            folders.append(folder)
    return folders


def _stamps(template: str) -> list[str]:
    """The placeholders of `output.dir` that tell one start's folder from another's."""
    return [p for p in ("date", "time", "run_id") if "{" + p + "}" in template]


@dataclass(frozen=True, slots=True)
class Siblings:
    """The output folders other starts of the manifest `name` made from its `output.dir`
    (`template`; `sibling_folders`), besides this run's `out_dir`. Their runs, before this one
    or at the same time, may have made generations of the same prompts on the account: a
    search for a lost create's generation leaves those they hold to them, one search at a time."""

    template: str
    name: str
    out_dir: Path

    def holding(self, generation_ids: Collection[str]) -> set[str]:
        """Those of `generation_ids` that the sibling folders' journals hold, read as they are
        now (a folder made since this run began included)."""
        if not generation_ids:
            return set()
        return state.held_by(sibling_folders(self.template, self.name, self.out_dir), generation_ids)

    def searching(self) -> AbstractAsyncContextManager[None]:
        """Held for a search and the claim it makes, so that the search of another run in a
        sibling folder comes before or after it, never between, and reads what it claimed: the
        folder all of them lie in (`directory_held`)."""
        stamps = _stamps(self.template)
        if not stamps:
            return nullcontext()
        marked = os.path.expanduser(self.template).format_map(
            {"name": self.name, **dict.fromkeys(stamps, "\0")})
        shared = itertools.takewhile(lambda part: "\0" not in part, Path(marked).parts)
        return directory_held(Path(*shared))


def earlier_folders(template: str, name: str, out_dir: Path) -> list[dict[str, Any]]:
    """Warn of the folders that earlier starts made from an `output.dir` with {date}, {time} or
    {run_id} (`sibling_folders`) while they hold unfinished jobs: a start in a new folder never
    resumes them. Those folders are returned with their counts (`out`, `in_flight`, `unsettled`,
    `waiting`), for the run's summary (`unfinished_folders`) and the lines that end it: an
    unattended run reads no log. A folder a live run holds (its lock) is being finished: it is
    only named."""
    unfinished: list[dict[str, Any]] = []
    for folder in sibling_folders(template, name, out_dir):
        holder = FolderLock.holder(folder)
        if holder is not None:
            log.info("%s, an earlier start's folder, is in use by a running process (%s): it is "
                     "not left unfinished", folder, describe(holder),
                     extra={"running_folder": str(folder), "pid": holder.get("pid")})
            continue
        found = state.unfinished(folder)
        if isinstance(found, str):
            act.warning("%s, an earlier start's folder, has a journal that cannot be read (%s): "
                        "look at it before it is cleaned up", folder, found,
                        extra={"unreadable_folder": str(folder), "problem": found})
            continue
        in_flight, unsettled, waiting = found
        if in_flight or unsettled or waiting:
            left = {"out": str(folder), "in_flight": in_flight, "unsettled": unsettled,
                    "waiting": waiting}
            log.warning("%s", left_unfinished(left),
                        extra={"unfinished_folder": str(folder), "in_flight": in_flight,
                               "unsettled": unsettled, "waiting": waiting})
            unfinished.append(left)
    return unfinished


def left_unfinished(folder: dict[str, Any]) -> str:
    """What to say of an earlier start's folder left unfinished (an entry of the summary's
    `unfinished_folders`), and the command that finishes it."""
    out = folder["out"]
    return (f"{out}, an earlier start's folder, still holds "
            f"{jobs_left(folder['in_flight'], folder['waiting'], folder.get('unsettled', 0))}; "
            "this start does not resume "
            f"them: run with {out_flags(out)} to finish them")


def out_flags(out: str) -> str:
    """The flags of a run into the folder `out`: `--out OUT`, after --simulate for a simulated
    run's folder, the path quoted for a shell where it needs to be."""
    return f"{'--simulate --out' if out.endswith(SIMULATED_SUFFIX) else '--out'} {shlex.quote(out)}"


@dataclass(frozen=True, slots=True)
class Rerun:
    """How a run stopped early is resumed. Running the same command again resumes it when the
    next start names the same folder: one given by --out, or by `output.dir` with {name},
    {date} on the same day, or {run_id} given by --run-id. A folder stamped with the start's
    {time} or default {run_id} (or a {date} now past) is never named again: its run is resumed
    by naming it with --out, and running again would pay anew for every job it holds."""

    out_dir: Path
    template: str | None  # the `output.dir` that named the folder; None when --out named it
    name: str
    run_id: str | None
    simulated: bool

    def out_hint(self, wall: float) -> str | None:
        """At the time `wall` (epoch seconds), the `--out` that resumes the run when the next
        start names another folder; None when running again resumes it."""
        if self.template is not None and not self._named_again(self.template, wall):
            return f"run again with {out_flags(str(self.out_dir))} to resume"
        return None

    def _named_again(self, template: str, wall: float) -> bool:
        if "{time}" in template or ("{run_id}" in template and self.run_id is None):
            return False
        now = datetime.datetime.fromtimestamp(wall, datetime.UTC)
        return output_folder(template, name=self.name, now=now, run_id=self.run_id,
                             simulated=self.simulated) == self.out_dir


def refused(manifest: Path, error: HailuoError, notify_url: str | None, *, logged: bool) -> None:
    """A run refused before it began, or before it could write its end: into the log file when
    there is one (`logged`; standard error has it already), and announced as a run's end is.
    A run whose folder was lost under it tells what it paid for (`run_paid`) in both."""
    paid = {"run_paid": error.paid} if isinstance(error, FolderLost) else {}
    if logged:
        log.error("error: %s", error, extra={"exit_code": error.exit_code, **paid})
    if notify_url is None:
        return
    reason = str(error).splitlines()[0]
    if isinstance(error, ManifestError) and len(error.issues) > 1:
        reason += f" (and {plural(len(error.issues) - 1, 'more problem')})"
    _announce(notify_url, {"name": _name_of(manifest), "refused": True,
                           "exit_code": error.exit_code, "exit_reason": reason, **paid})


def _name_of(manifest: Path) -> str:
    """The manifest's `name`, as its finished runs announce it, when the file can be read that
    far; else the file's name without its suffix."""
    try:
        data = load_document(manifest).data
    except ManifestError:
        return manifest.stem
    name = data.get("name") if isinstance(data, dict) else None
    return name if isinstance(name, str) and name else manifest.stem


def run_ended(summary: dict[str, Any], notify_url: str | None) -> None:
    """Log the summary's headline (with the summary, its long lists cut) and send it to the
    webhook; a failed notification is only logged, so the exit code always says how the run
    went, not how the receiver did."""
    text = notify.headline(summary)
    log.info("run ended: %s", text, extra={"summary": notify.short_summary(summary)})
    if notify_url is not None and _announce(notify_url, summary):
        log.info("notification sent")


def _announce(notify_url: str, summary: dict[str, Any]) -> bool:
    """Send the summary to the webhook; whether it was taken (why not is logged)."""
    problem = notify.send(notify_url, summary)
    if problem is not None:
        act.warning("notification failed: %s", problem, extra={"problem": problem})
    return problem is None
