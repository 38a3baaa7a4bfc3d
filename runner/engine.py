"""The pool: every job submitted, polled and downloaded, with the account's slots kept full.

A slot is taken before a job's task is created and given back as soon as its render is over,
so at most `concurrency` generations are ever in flight; polls and downloads have budgets of
their own, so a slow download never holds a slot. Tasks live in one `asyncio.TaskGroup`: a
rejected key or an abort (a signal) leaves the group and cancels everything, with every job's
last transition already in the journal. `halt` (budget, quota) only stops submitting.
"""

from __future__ import annotations

import asyncio
import errno
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any

from runner import files
from runner.api import Generation
from runner.batching import Batcher
from runner.config import RunSettings
from runner.control import (
    EXIT_CANNOT_RUN,
    EXIT_FAILED,
    EXIT_OK,
    EXIT_RESUMABLE,
    Outcome,
)
from runner.errors import AuthError, PermanentError, QuotaError, StateError, TransientError
from runner.render import plural, unplanned_part
from runner.results import iso
from runner.schedule import PollPolicy, PollSchedule
from runner.state import IN_FLIGHT, JobRow
from runner.submit import Context, Submitter


@dataclass(frozen=True, slots=True)
class EngineSettings:
    """How the pool is driven: the run settings plus the budgets nobody needs to tune."""

    run: RunSettings = field(default_factory=RunSettings)
    poll_requests: int = 64
    downloads: int = 32
    settle: float = 30.0
    reconcile_skew: float = 2.0  # how long before a lost create's sending its own may be listed
    reconcile_unread_skew: float = 300.0  # the same, the sending on this machine's clock alone
    tick: float = 1.0
    outage: float = 300.0  # how long the API may refuse every connection before the run stops


# Errors that refuse every write to the output folder, not just one file's: a full disk or a
# read-only one, and permissions, unless only a folder below its top refuses (`denied_below`).
_FOLDER_REFUSED = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM})


# What to do for a video whose name the folder cannot take: its generation, paid for, is kept.
_NAME_HINT = (f"{files.SHORTER_NAMES}, then run with --retry-failed: the video is fetched, "
              "not paid for again")


class _Aborted(Exception):
    """Raised inside the task group to leave it when the run is aborted."""


class Engine:
    """Runs every unfinished job of a journal to the end; `run()` says how it ended."""

    def __init__(self, ctx: Context, settings: EngineSettings, folder: files.Folder) -> None:
        self.ctx = ctx
        self.settings = settings
        self.folder = folder
        self._placing = Batcher(files.place_all, in_thread=True)
        self._owners = ctx.store.file_owners()
        self.submitter = Submitter(ctx, submit_per_minute=settings.run.submit_per_minute,
                                   settle=settings.settle, reconcile_skew=settings.reconcile_skew,
                                   reconcile_unread_skew=settings.reconcile_unread_skew)
        self.schedule = PollSchedule(PollPolicy(interval=settings.run.poll_interval))
        self._slots = asyncio.Semaphore(settings.run.concurrency)
        self._polls = asyncio.Semaphore(settings.poll_requests)
        self._downloads = asyncio.Semaphore(settings.downloads)
        self._active = 0
        self._idle = asyncio.Event()
        self._unreachable_since: float | None = None
        self._calls_seen = (0, 0)  # the client's answers and refusals at the last tick
        self._denied: dict[str, str] = {}  # folders below the top that refused jobs' files, and why

    async def run(self) -> Outcome:
        stop = self.ctx.stop
        try:
            async with asyncio.TaskGroup() as group:
                watcher = group.create_task(self._watch())
                await self._feed(group)
                if self._active:
                    await self._idle.wait()
                watcher.cancel()
        except* _Aborted:
            pass
        except* (AuthError, StateError) as group:  # a rejected key; a journal that takes no writes
            stop.abort(EXIT_CANNOT_RUN, str(group.exceptions[0]))
        except* QuotaError as group:  # out of credit, said by a call other than a create
            stop.abort(EXIT_RESUMABLE, stop.resumable(str(group.exceptions[0])))
        self.ctx.tracker.emit("stop", None, (stop.aborted or stop.halted or Outcome(0, "")).reason)
        return self.outcome()

    def outcome(self) -> Outcome:
        """The exit code and reason from the stop conditions and the jobs' final states."""
        stop, tracker = self.ctx.stop, self.ctx.tracker
        if stop.aborted is not None:
            return stop.aborted
        unfinished = tracker.unfinished
        # A stop for the budget or the quota says why jobs are left; an unusable folder is said
        # even when nothing is left (the downloads it refused failed their jobs).
        if stop.halted is not None and (unfinished or stop.halted.exit_code == EXIT_CANNOT_RUN):
            return stop.halted
        # The jobs the manifest no longer has (those still in flight when the run began) are
        # said apart, as `status` says them: the run's last lines count the plan's jobs.
        if unfinished:
            carried = sum(self.ctx.store.counts("carried").values())
            apart = f" ({unplanned_part(carried, unfinished)})" if carried else ""
            return Outcome(EXIT_RESUMABLE, f"{plural(unfinished, 'job')} not finished{apart}: "
                                           f"{stop.how_to_resume()}")
        failed, dropped = tracker.counts["failed"], self.submitter.failed_unplanned
        listed = f"{unplanned_part(dropped, failed)}; see errors.jsonl" if dropped else "see errors.jsonl"
        denied = "".join(f"; {_let_write(*refused)}" for refused in sorted(self._denied.items()))
        if failed and failed == self.submitter.failed_for_now:
            return Outcome(EXIT_RESUMABLE, f"{plural(failed, 'job')} failed for now ({listed}): the next "
                                           f"run takes them up again by itself{denied}")
        if failed:
            return Outcome(EXIT_FAILED, f"{plural(failed, 'job')} failed ({listed}){denied}")
        return Outcome(EXIT_OK, "every job downloaded")

    async def _watch(self) -> None:
        """Heartbeat for progress, and the way out of the group when the run is aborted."""
        abort = asyncio.ensure_future(self.ctx.stop.wait_abort())
        try:
            while not abort.done():
                await asyncio.wait([abort], timeout=self.settings.tick)
                self.ctx.tracker.emit("tick")
                self._watch_outage()
        finally:
            abort.cancel()
        raise _Aborted()

    def _watch_outage(self) -> None:
        """Stop the run, resumable, once the API has refused every connection for `outage`
        seconds (no call answered since the first refusal, and calls still refused): the next
        run waits for an API that is down, rather than each job in turn. Jobs in flight keep
        their state in the journal and are taken up by that run.

        The first refusal is told at once, with when the run stops if it goes on, and so is
        the first answer after it: a log that shows only unchanged progress for minutes then
        tells an outage from slow renders."""
        ctx = self.ctx
        calls = (ctx.client.answers, ctx.client.refusals)
        answered, refused = (seen > before for seen, before in zip(calls, self._calls_seen))
        self._calls_seen = calls
        now = ctx.clock.now()
        if answered and self._unreachable_since is not None:
            lasted = round(now - self._unreachable_since, 1)
            self._unreachable_since = None
            ctx.tracker.emit("reachable", None, f"the API answers again after {lasted:.0f} s",
                             {"unreachable_seconds": lasted})
        if answered or not refused:
            return
        if self._unreachable_since is None:
            self._unreachable_since = now
            since = ctx.clock.wall()
            stops = since + self.settings.outage
            ctx.tracker.emit("unreachable", None, f"cannot connect to the API since {_utc(since)}: "
                             f"the run stops at about {_utc(stops)} if no connection can be made by then",
                             {"unreachable_since": iso(since), "stops_at": iso(stops)})
        elif now - self._unreachable_since >= self.settings.outage:
            ctx.stop.abort(EXIT_RESUMABLE, f"the API could not be reached for "
                           f"{now - self._unreachable_since:.0f} s: {ctx.stop.how_to_resume()}")

    async def _feed(self, group: asyncio.TaskGroup) -> None:
        """Resume what was in flight, then submit the pending jobs in plan order. A job whose
        render is over (seen complete by an earlier run) holds no slot: it renders no more (a
        job `submitting` holds only a generation given up on, whose render says nothing)."""
        store = self.ctx.store
        rendering = []
        for row in store.in_states(IN_FLIGHT):
            if row.state == "complete" or (row.state == "submitted" and row.completed_at is not None):
                self._spawn(group, self._collect(row))
            else:
                rendering.append(row)
        for row in rendering:
            await self._take_slot(group, row)
        index = -1
        while self.ctx.stop.submitting:
            page = store.pending_after(index)
            if not page:
                return
            for row in page:
                index = row.index
                if not await self._take_slot(group, row):
                    return

    async def _take_slot(self, group: asyncio.TaskGroup, row: JobRow) -> bool:
        await self._slots.acquire()
        if row.state == "pending" and not self.ctx.stop.submitting:
            self._slots.release()
            return False
        self._spawn(group, self._job(row))
        return True

    def _spawn(self, group: asyncio.TaskGroup, work: Awaitable[None]) -> None:
        self._active += 1
        self._idle.clear()
        task = group.create_task(work)  # type: ignore[arg-type]
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._active -= 1
        if not self._active:
            self._idle.set()

    async def _job(self, row: JobRow) -> None:
        """One generation, holding its slot from create to the end of the render."""
        current: JobRow | None = row
        try:
            if row.state == "pending" and not await self._placeable(row):
                return
            if row.state != "submitted":
                current = await self.submitter.submit(row)
            if current is not None:
                current = await self._follow(current)
        finally:
            self._slots.release()
        if current is not None:
            await self._download(current)

    async def _collect(self, row: JobRow) -> None:
        """The video of a job whose render is over, downloaded; polled for at once first when
        the job went back to `submitted` (a failed download, a video gone from the folder)."""
        current: JobRow | None = row
        if row.state == "submitted":
            current = await self._follow(row, at_once=True)
        if current is not None:
            await self._download(current)

    async def _follow(self, row: JobRow, *, at_once: bool = False) -> JobRow | None:
        """Poll until the render ends or the deadline passes; the row once the video is ready.
        The first poll goes `at_once` for a render known to be over, else by the schedule.

        The deadline counts from when this run takes the job up, so a job resumed or retried
        long after its create still gets its whole timeout, and the render is always looked at
        once more when the deadline comes before the job is given up on."""
        ctx, schedule = self.ctx, self.schedule
        generation_id = row.generation_id or ""
        kind = row.kind
        fresh = row.run_id == ctx.run_id
        started = ctx.clock.now()
        deadline = started + ctx.timeout
        polls, failures, pending_at, retry_after = 0, 0, None, None
        while True:
            delay = 0.0 if at_once and not polls else schedule.next_poll(
                kind, polls if fresh else max(polls, 1), ctx.clock.now() - started)
            if failures:
                delay = max(delay, ctx.backoff.retry_delay(failures, ctx.rand, retry_after))
            await ctx.clock.sleep(min(delay, max(0.0, deadline - ctx.clock.now())))
            try:
                async with self._polls:
                    generation = await ctx.client.generation(generation_id)
            except TransientError as exc:
                failures += 1
                retry_after = exc.retry_after
                ctx.tracker.emit("retry", row.key, str(exc))
            except PermanentError as exc:
                await self.submitter.fail(row, str(exc), "lost")
                return None
            else:
                polls, failures = polls + 1, 0
                elapsed = ctx.clock.now() - started
                if generation.done:
                    if fresh:
                        schedule.learn(kind, pending_at=pending_at, complete_at=elapsed)
                    return await self._ended(row, generation, elapsed if fresh else None)
                pending_at = elapsed
            if ctx.clock.now() >= deadline:
                await self.submitter.fail(row, f"timed out after {ctx.timeout:g} s "
                                          f"(generation {generation_id})", "timeout")
                return None

    async def _ended(self, row: JobRow, generation: Generation,
                     render_seconds: float | None) -> JobRow | None:
        ctx = self.ctx
        if generation.status == "FAILED" or not generation.video_url:
            moderated = generation.moderation is not None
            reason = (f"refused by content moderation: {generation.moderation}" if moderated
                      else "the generation FAILED" if generation.status == "FAILED"
                      else "the generation is COMPLETE but has no video")
            await self.submitter.fail(row, reason, "moderation" if moderated else "render")
            return None
        row = await ctx.record(row.complete(run_id=ctx.run_id, at=ctx.clock.wall(),
                                            video_url=generation.video_url,
                                            poster_url=generation.poster_url,
                                            render_seconds=render_seconds))
        ctx.tracker.moved(row.key, "submitted", "complete")
        return row

    async def _download(self, row: JobRow) -> None:
        """Fetch the video (and its poster) whole, put them in place with the sidecar (in a
        worker thread: flushing to disk can be slow), then record the job as done.

        A file that cannot be written fails the job, which a later run downloads again (its
        generation is kept), or, when its name is too long for the folder, a run with
        --retry-failed once the name is shorter; when the folder itself refuses writes (full,
        read-only, not ours), nothing more is submitted either, since no further video could
        be kept. A folder below its top that refuses them fails its own jobs alone."""
        ctx = self.ctx
        async with self._downloads:
            where = self._targets(row)
            self._owners[where.video] = row.key
            kind = "download"
            try:
                problem, poster, at = await self._stage(row, where)
            except* OSError as group:  # raised here, or by the poster's task alongside
                error = group.exceptions[0]
                self.folder.distrust(error)
                problem, denied = self._refused(row, error, where.video)
                if denied:
                    problem, kind = f"{problem}; the next run fetches the video, not paid for again", "folder"
                elif error.errno == errno.ENAMETOOLONG and not self.folder.moved():  # never written
                    problem, kind = f"{problem} ({_NAME_HINT})", "name"
            if problem is not None:
                await self.submitter.fail(row, f"download failed: {problem}", kind)
                return
            await ctx.record(row.downloaded(run_id=ctx.run_id, at=at, file=where.video,
                                            poster=poster, sidecar=where.sidecar))
            ctx.tracker.moved(row.key, "complete", "downloaded", where.video)

    def _targets(self, row: JobRow) -> files.Targets:
        """Where the job's video, poster and sidecar go in the folder."""
        return self.folder.targets(row.file or row.filename, row.key, self._owners.get)

    async def _placeable(self, row: JobRow) -> bool:
        """Whether the job is to be created, as far as the folder its video goes to can tell
        before it is paid for: a folder below the top that refuses files fails the job unsent
        (for now: the next run sends it); the whole output folder refusing them stops
        submitting, and the job stays pending."""
        where = self._targets(row)
        error = self.folder.refusal(where.video, row.short_key)
        if error is None:
            return True
        problem, denied = self._refused(row, error, where.video)
        if denied:
            await self.submitter.fail(row, f"not sent: {problem}; the next run sends the job", "folder")
            return False
        return self.ctx.stop.submitting

    def _refused(self, row: JobRow, error: OSError, video: str) -> tuple[str, bool]:
        """What `error`, met writing the job's `video`, says, and whether only a folder below
        the top of the output folder refused it, for its permissions (then the problem names
        the folder and what to do: its jobs fail, the run goes on); when the whole output
        folder refuses writes (full, read-only, its top not writable, moved or deleted),
        submitting stops."""
        moved = self.folder.moved()
        denied = None if moved else self.folder.denied_below(error, row.short_key)
        if denied is not None:
            self._denied[denied] = error.strerror or str(error)
            return _let_write(denied, self._denied[denied]), True
        problem = f"cannot write {error.filename or video}: {error.strerror or error}"
        if moved:
            problem = f"{self.folder.given} was moved or deleted during the run"
        if error.errno in _FOLDER_REFUSED or moved:
            self.ctx.stop.halt(EXIT_CANNOT_RUN, f"the output folder is unusable: {problem}")
        return problem, False

    async def _stage(self, row: JobRow, where: files.Targets) -> tuple[str | None, str | None, float]:
        """The job's files fetched, checked and put in place: the problem that stopped the
        transfer (or None), the poster's path when it came, and when they were placed."""
        ctx = self.ctx
        with self.folder.staging(row.short_key) as staging:
            video = staging.part(where.video)
            fetching, image = None, None
            async with asyncio.TaskGroup() as group:  # the poster comes alongside the video
                if row.poster_url:
                    image = staging.part(where.poster)
                    fetching = group.create_task(self._fetch(row, row.poster_url, image,
                                                             files.check_jpeg))
                problem = await self._fetch(row, row.video_url or "", video, files.check_mp4)
            at = ctx.clock.wall()
            if problem is not None:
                return problem, None, at
            parts, poster = [video], None
            if fetching is not None and fetching.result() is None:  # the poster came too
                parts, poster = [video, image], where.poster
            text = files.json_text(sidecar(row, self.submitter.sent(row), where, poster, at))
            failed = await self._placing.submit(files.Placing(staging, parts, where.sidecar, text))
            if failed is not None:
                raise failed
        return None, poster, at

    async def _fetch(self, row: JobRow, url: str, part: files.Part, check: files.Check) -> str | None:
        """Download `url` into `part` and check it, retrying broken transfers; None or the last
        problem. A transfer that broke off goes on from where it stopped (a Range request); a
        file that arrived whole but fails its check is fetched anew."""
        ctx = self.ctx
        if not url:
            return "no URL"
        problem = ""
        part.open()
        for attempt in range(1, ctx.backoff.attempts + 1):
            if attempt > 1:  # a broken transfer waits before it is taken up again, the last one not
                await ctx.clock.sleep(ctx.backoff.delay(attempt - 1, ctx.rand))
            fetched = False
            try:
                await ctx.client.download(url, part, offset=part.size)
                fetched = True
                part.verify(check)
                return None
            except TransientError as exc:
                problem = str(exc)
                ctx.tracker.emit("retry", row.key, problem)
                if fetched:  # it came whole yet is broken: fetched anew, not resumed
                    part.restart()
            except PermanentError as exc:
                return str(exc)
        return problem


def _let_write(folder: str, why: str) -> str:
    """What to do about `folder`, which refused the run's files for its permissions (`why`)."""
    return f"{folder} refuses new files ({why}): let user {files.user()} write to it"


def _utc(epoch: float) -> str:
    """`epoch` as a time of day, UTC, as the log's lines give their times."""
    return time.strftime("%H:%M:%S UTC", time.gmtime(epoch))


def sidecar(row: JobRow, sent: dict[str, Any], where: files.Targets, poster: str | None,
            at: float) -> dict[str, Any]:
    """What sits beside each video: enough to know how it was made without the journal."""
    return {"key": row.key, "short_key": row.short_key, "generation_id": row.generation_id,
            "request": sent, "axes": row.axes, "styles": list(row.styles),
            "prompt": row.prompt, "estimated_cost_usd": row.estimated_cost,
            "cost_usd": row.cost_usd, "cost_credits": row.cost_credits,
            "create_sent_at": iso(row.create_sent_at), "submitted_at": iso(row.submitted_at),
            "completed_at": iso(row.completed_at), "downloaded_at": iso(at),
            "render_seconds": row.render_seconds, "attempts": row.attempts,
            "file": where.video, "poster": poster}
