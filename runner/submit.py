"""Getting a job a generation id exactly once: start frame upload, pacing, create, reconcile.

The rule that keeps money safe: a create is sent only while the job is journalled `submitting`,
and only one create per *signature* (prompt, width, height: what the account's generations list
shows) is unsettled at any moment, under a lock. So when a create's outcome is unknown (a crash,
a 5xx, a reset or a timeout after sending) at most one generation of that signature can exist
unclaimed, and finding it in the list is unambiguous.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

from runner import catalog
from runner.api import Created, Generation, LeonardoClient
from runner.control import EXIT_RESUMABLE, Clock, Stop, Tracker
from runner.errors import (
    AuthError,
    ModerationError,
    PermanentError,
    QuotaError,
    RateLimited,
    TransientError,
    UnknownOutcome,
    Unreachable,
)
from runner.nightly import Siblings
from runner.render import budget
from runner.rows import PASSING_FAILURES
from runner.schedule import Backoff, RateMeter
from runner.state import JobRow, Journal, Move

T = TypeVar("T")
LISTED_TO = 0.001  # the account lists when a generation was made to the millisecond
Random = Callable[[], float]


@dataclass(frozen=True, slots=True)
class Context:
    """What every stage of the engine shares for one run."""

    store: Journal
    record: Callable[[Move], Awaitable[JobRow]]
    client: LeonardoClient
    clock: Clock
    tracker: Tracker
    stop: Stop
    run_id: int
    rand: Random
    backoff: Backoff
    timeout: float
    siblings: Siblings  # the other folders of the run's `output.dir`, which a lost create's search reads


class Unsettled(Exception):
    """The outcome of a create could not be found out now: the job stays `submitting`."""


class Submitter:
    """Turns pending (or unsettled) jobs into submitted ones, or records why they failed."""

    def __init__(self, ctx: Context, *, submit_per_minute: float, settle: float,
                 reconcile_skew: float, reconcile_unread_skew: float, reconcile_pages: int = 40,
                 page_size: int = 50) -> None:
        self.ctx = ctx
        self.settle = settle
        self.meter = RateMeter(submit_per_minute)
        self.skew = reconcile_skew
        self.unread_skew = reconcile_unread_skew
        self.pages = reconcile_pages
        self.page_size = page_size
        self._signatures: defaultdict[tuple[Any, ...], asyncio.Lock] = defaultdict(asyncio.Lock)
        self._holders: Counter[tuple[Any, ...]] = Counter()
        self._reserved: dict[str, float] = {}  # what this run reserved for each job it sends
        self._prices = ctx.store.highest_costs()  # the most the API has named for each kind of job
        self._uploads: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._image_ids: dict[str, str] = {}
        self._uploads_given_up: dict[str, str] = {}  # start frames this run could not upload, and why
        self.failed_for_now = 0  # jobs this run failed for a reason the next run retries
        self.failed_unplanned = 0  # jobs this run failed that the manifest no longer has
        self._user_id: str | None = None

    async def submit(self, row: JobRow) -> JobRow | None:
        """The job's row once submitted, or None when it failed or was put back (stopped,
        unsettled, no longer planned).

        A job left `submitting` by an earlier attempt may already have a generation: it is
        looked for before anything else can happen to the job, so no failure (say, of its
        start frame's upload) sends it round to be created a second time, and a job no longer
        in the plan is only ever looked for, never created."""
        body = None
        if row.state != "submitting":
            body = await self._prepare(row)
            if body is None:
                return None
        async with self._signature_lock(_signature(row.request)):
            try:
                if body is None:
                    sendings = self.ctx.store.sendings(row.key)
                    found = await self._resolve(row, since=sendings[-1][0] if sendings else None)
                    if found is not None:
                        return found
                    if not row.planned:
                        await self._put_back(row, "no generation was made, and the job is no "
                                                  "longer planned")
                        return None
                    body = await self._prepare(row)
                    if body is None:
                        return None
                return await self._create(row, body)
            except Unsettled as exc:
                self.ctx.tracker.emit("unsettled", row.key, str(exc))
                return None

    async def _prepare(self, row: JobRow) -> dict[str, Any] | None:
        """The create body, or None once the job is failed for a start frame that cannot be
        uploaded."""
        try:
            return await self._wire(row)
        except (PermanentError, TransientError) as exc:
            await self.fail(row, f"start frame upload failed: {exc}", "upload")
            return None

    @asynccontextmanager
    async def _signature_lock(self, signature: tuple[Any, ...]) -> AsyncIterator[None]:
        """One lock per signature, dropped when no job holds or awaits it, so memory stays flat."""
        self._holders[signature] += 1
        try:
            async with self._signatures[signature]:
                yield
        finally:
            self._holders[signature] -= 1
            if not self._holders[signature]:
                del self._holders[signature], self._signatures[signature]

    async def _create(self, row: JobRow, body: dict[str, Any]) -> JobRow | None:
        ctx = self.ctx
        failures, refused, deadline, last = 0, 0, None, ""
        while True:
            sent_at = await self._pace()
            if not ctx.stop.submitting or not self._reserve(row):
                await self._put_back(row, "submitting stopped")
                return None
            if deadline is not None and ctx.clock.now() > deadline:
                await self.fail(row, f"no create went through in {ctx.timeout:g} s", "timeout")
                return None
            source = row.state
            row = await ctx.record(row.submitting(run_id=ctx.run_id, at=ctx.clock.wall(),
                                                  reserved_usd=self._reserved[row.key],
                                                  api_at=self._api_time()))
            ctx.tracker.moved(row.key, source, "submitting")
            deadline = deadline or ctx.clock.now() + ctx.timeout
            try:
                created = await ctx.client.create(body)
                holder = ctx.store.holder(created.generation_id)
                if holder is not None:  # a garbled answer: its create may still have made one
                    raise UnknownOutcome(f"the create answered generation {created.generation_id}, "
                                         f"which job {holder[:10]} already has")
            except RateLimited as exc:
                self.meter.limited(now=ctx.clock.now(), sent_at=sent_at, retry_after=exc.retry_after,
                                   pause=ctx.backoff.delay(1, ctx.rand))
                ctx.tracker.emit("rate-limited", row.key, str(exc))
                continue
            except UnknownOutcome as exc:
                ctx.tracker.emit("retry", row.key, str(exc))
                found = await self._resolve(row, since=ctx.clock.wall())
                if found is not None:
                    return found
                failures, last = failures + 1, str(exc)
            except Unreachable as exc:  # nothing was sent: the job is not to blame, nor given up
                ctx.tracker.emit("retry", row.key, str(exc))
                row, refused = await self._put_back(row, str(exc)), refused + 1
            except TransientError as exc:
                ctx.tracker.emit("retry", row.key, str(exc))
                failures, last = failures + 1, str(exc)
            except ModerationError as exc:
                await self.fail(row, str(exc), "moderation")
                return None
            except PermanentError as exc:
                await self.fail(row, str(exc), "invalid")
                return None
            except QuotaError as exc:
                await self._put_back(row, str(exc))
                ctx.stop.halt(EXIT_RESUMABLE, ctx.stop.resumable(str(exc)))
                return None
            except AuthError:
                await self._put_back(row, "the API key was rejected")
                raise
            else:
                self.meter.succeeded(ctx.clock.now())
                return await self._record(row, created)
            if failures >= ctx.backoff.attempts:
                await self.fail(row, f"gave up after {failures} failed creates (the last: {last})",
                                 "transient")
                return None
            await ctx.stop.wait_to_submit(ctx.clock, ctx.backoff.delay(failures + refused, ctx.rand))

    async def _pace(self) -> float:
        """Wait for the rate meter's turn, or until submitting stops; returns the moment the
        create may be sent."""
        now = self.ctx.clock.now()
        at = self.meter.reserve(now)
        if at > now:
            await self.ctx.stop.wait_to_submit(self.ctx.clock, at - now)
        return at

    def _reserve(self, row: JobRow) -> bool:
        """Reserve the job's price once per run, if it fits in the budget: its estimate, or the
        most the API has named for a job of its model, resolution and duration (in this folder,
        by this run or an earlier one) when that is more, so that a price table below the
        API's prices cannot take the run past its budget once a price is known. A job resumed
        from `submitting` whose generation was not found is a new create and pays like one."""
        tracker = self.ctx.tracker
        if row.key in self._reserved:
            return True
        price = self._price(row)
        if not tracker.fits(price):
            self.ctx.stop.halt(EXIT_RESUMABLE, self.ctx.stop.resumable(
                f"the budget of {budget(tracker.budget_usd)} is reached"))
            return False
        tracker.reserve(price)
        self._reserved[row.key] = price
        return True

    def _price(self, row: JobRow) -> float:
        """What a create of the job is taken to cost until its answer names a price: its
        estimate, or the most the API has named for a job of its kind when that is more."""
        return max(row.estimated_cost, self._prices.get(row.kind, 0.0))

    def _settle(self, row: JobRow, spent: float, *, at_estimate: bool = False) -> None:
        """The job's reservation, if this run made one, ends with `spent`. A generation this run
        books to a job it reserved nothing for (an earlier run's create, found on the account)
        is spent by this run all the same: in its budget and progress, as in its summary."""
        self.ctx.tracker.settle(self._reserved.pop(row.key, 0.0), spent, at_estimate=at_estimate)

    async def _record(self, row: JobRow, created: Created) -> JobRow:
        """The job submitted with its generation and its cost: in USD as the answer named it, or
        its credits at the account's rate (the published answer names only credits); named
        neither (a lost create's generation found on the account), booked at `_price`."""
        ctx = self.ctx
        cost_usd = created.cost_usd
        if cost_usd is None and created.cost_credits is not None:
            cost_usd = round(created.cost_credits * catalog.load().usd_per_credit, 6)
        if cost_usd:
            self._prices[row.kind] = max(cost_usd, self._prices.get(row.kind, 0.0))
        row = await ctx.record(row.submitted(run_id=ctx.run_id, at=ctx.clock.wall(),
                                             generation_id=created.generation_id,
                                             cost_usd=cost_usd, cost_credits=created.cost_credits,
                                             booked_usd=None if cost_usd else self._price(row)))
        self._settle(row, row.generation_usd, at_estimate=not cost_usd)
        ctx.tracker.moved(row.key, "submitting", "submitted", created.generation_id)
        return row

    async def _put_back(self, row: JobRow, reason: str) -> JobRow:
        """The job was not created (or nothing was sent): pending again, reservation freed;
        its row as it is then."""
        if row.state != "submitting":
            return row
        ctx = self.ctx
        pending = await ctx.record(row.unsent(run_id=ctx.run_id, at=ctx.clock.wall(), reason=reason))
        self._settle(row, 0.0)
        if row.planned:
            ctx.tracker.moved(row.key, "submitting", "pending", reason)
        else:
            ctx.tracker.left_plan(row.key, "submitting", reason)
        return pending

    async def fail(self, row: JobRow, reason: str, kind: str) -> None:
        """The job failed for `reason` (of `kind`): recorded, its reservation freed."""
        ctx = self.ctx
        await ctx.record(row.failed(run_id=ctx.run_id, at=ctx.clock.wall(), reason=reason,
                                    kind=kind))
        self._settle(row, 0.0)
        self.failed_for_now += kind in PASSING_FAILURES
        self.failed_unplanned += not row.planned
        ctx.tracker.moved(row.key, row.state, "failed", reason, {"error_kind": kind})

    async def _resolve(self, row: JobRow, *, since: float | None) -> JobRow | None:
        """Look for the generation an unsettled create may have made; claim it when found.

        A server may still be making it after it answered 5xx, or after the wait for its answer
        ran out: looked for too soon, it would be missed and paid for a second time. So the
        search waits until `settle` seconds after `since`, the last thing known of the create
        (the 5xx or the timeout; for a create whose run died, when it was sent). The search and
        the claim of what it found are one step among the runs of the sibling folders
        (`Siblings.searching`), so that two of them never take one generation."""
        ctx = self.ctx
        if since is not None and since + self.settle > ctx.clock.wall():
            await ctx.clock.sleep(since + self.settle - ctx.clock.wall())
        async with ctx.siblings.searching():
            try:
                found = await self._find(row)
            except PermanentError as exc:
                raise Unsettled(str(exc)) from exc
            if found is None:
                return None
            return await self._record(row, Created(found, None, None))

    async def _find(self, row: JobRow) -> str | None:
        """The generation an unsettled create most likely made, if the account lists one:
        among those of its prompt and size that neither this folder's journal nor a sibling
        folder's (`Siblings.holding`) has claimed, made within the window of one of its
        sendings (a job sent again after answers that told nothing was sent more than once,
        and any of those creates may be the one carried out), the one `_nearness` ranks first:
        made from a sending on (in the latest sending's window first), else made before one. A
        window runs from `skew` before the sending (a couple of seconds, for the clocks of the
        API's own servers) to when the create could have been carried out (its answer came, or
        was given up on, within `settle` of the sending, and a server may still carry it out
        within `settle` of that). So a generation of the same prompt and size that another
        folder made before this create was sent is never taken when the create's own is
        listed, nor, when the create made none, one made outside its windows. The sendings are
        read on the API's clock, as the listed times are, when the runs that sent them knew
        that clock (`_api_time`); else (no answer's Date could be read, or an earlier version
        sent one) on this machine's, with `unread_skew` (minutes) for how far apart the two may
        be. The list, newest first, is read until it reaches the first window's start."""
        prompt, width, height = _signature(row.request)
        sendings = self.ctx.store.sendings(row.key) or [(self.ctx.clock.wall(), None)]
        on_api = all(api is not None for _, api in sendings)
        sent = [api if on_api else at for at, api in sendings]
        apart = self.skew if on_api else self.unread_skew
        windows = [(at - apart, at, at + 2 * self.settle + apart) for at in sent]
        since = min(start for start, _, _ in windows)
        user_id = await self._account()
        matches: list[Generation] = []
        for page in range(self.pages):
            listed = await self.retrying(partial(self.ctx.client.generations, user_id,
                                                 offset=page * self.page_size,
                                                 limit=self.page_size))
            matches += [g for g in listed if g.prompt == prompt
                        and (not width or g.width in (None, width))
                        and (not height or g.height in (None, height))
                        and (g.created_at is None or any(start <= g.created_at <= end
                                                         for start, _, end in windows))]
            if len(listed) < self.page_size or all(
                    g.created_at is not None and g.created_at < since for g in listed):
                break
        ids = {g.id for g in matches}
        # the sibling folders' journals are read in a thread: many of them, or older ones read
        # through an upgraded copy, take a second, and the run's polls and downloads go on
        claimed = self.ctx.store.claimed(ids) | await asyncio.to_thread(self.ctx.siblings.holding, ids)
        free = [g for g in matches if g.id not in claimed]
        return min(free, key=partial(_nearness, windows)).id if free else None

    def _api_time(self) -> float | None:
        """Now by the API's clock, if its answers have told it (`ServerClock`, which reads this
        machine's time of day as it times them); else None."""
        server = self.ctx.client.server_clock
        return time.time() + server.ahead if server.known else None

    async def _account(self) -> str:
        if self._user_id is None:
            self._user_id = (await self.retrying(self.ctx.client.me)).user_id
        return self._user_id

    async def retrying(self, call: Callable[[], Awaitable[T]]) -> T:
        """A read-only call, retried on transient errors; Unsettled when it never succeeds."""
        ctx = self.ctx
        for attempt in range(1, ctx.backoff.attempts + 1):
            try:
                return await call()
            except TransientError as exc:
                if attempt == ctx.backoff.attempts:
                    raise Unsettled(str(exc)) from exc
                await ctx.clock.sleep(ctx.backoff.retry_delay(attempt, ctx.rand, exc.retry_after))
        raise AssertionError("unreachable")

    async def _wire(self, row: JobRow) -> dict[str, Any]:
        """The create body: a start frame given by path is uploaded once per file content and
        per API and account (an id means nothing to another account or API), and only as the
        plan saw it: a file changed since is refused rather than sent under the old content's
        name."""
        upload = row.upload
        if upload is None:
            return row.request
        ctx = self.ctx
        async with self._uploads[upload.sha256]:
            if upload.sha256 in self._uploads_given_up:
                raise TransientError(self._uploads_given_up[upload.sha256])
            try:
                owner = {"api": ctx.client.api, "account": await self._account()}
                image_id = ctx.store.upload_id(upload.sha256, **owner)
                if image_id is None:
                    content = upload.path.read_bytes()
                    if hashlib.sha256(content).hexdigest() != upload.sha256:
                        raise PermanentError(f"{upload.path} changed after the plan was made: run "
                                             "again to plan its new content")
                    image_id = await self.retrying(lambda: ctx.client.upload(
                        content, upload.path.name, upload.extension))
                    ctx.store.record_upload(upload, image_id, at=ctx.clock.wall(), **owner)
            except Unsettled as exc:  # the jobs after it that share the frame fail at once
                self._uploads_given_up[upload.sha256] = f"{exc} (given up on earlier in this run)"
                raise TransientError(str(exc)) from exc
            except OSError as exc:
                raise PermanentError(f"cannot read {upload.path}: {exc.strerror}") from exc
            self._image_ids[upload.sha256] = image_id
        return self.sent(row)

    def sent(self, row: JobRow) -> dict[str, Any]:
        """The body the job's create sent: its request, with its start frame's id when it has
        one: this run's upload of the file, else the one the journal keeps for this API (and
        account, once this run knows it), else ""."""
        upload = row.upload
        if upload is None:
            return row.request
        image_id = self._image_ids.get(upload.sha256) or self.ctx.store.upload_id(
            upload.sha256, api=self.ctx.client.api, account=self._user_id) or ""
        return row.as_job().wire({upload.sha256: image_id})


def _nearness(windows: list[tuple[float, float, float]], generation: Generation) -> tuple[int, int, float]:
    """How likely `generation` is the one a create made, the likeliest least, by the windows
    (start, sending, end) of the create's sendings, in order: made from a sending on, within its
    window, before one made before a sending (by a server whose clock is behind ours, or by
    another folder or tool); among those, in the latest sending's window first (the earlier
    ones were looked in when their create's answer told nothing, and found empty: what was
    made there since is likelier another's than a create carried out that late), the earliest
    made from the sending, the latest before it; then those whose time is not listed."""
    made = generation.created_at
    if made is None:
        return 2, 0, 0.0
    latest = max(n for n, (start, _, end) in enumerate(windows) if start <= made <= end)
    sent = windows[latest][1]
    return (0, -latest, made) if made > sent - LISTED_TO else (1, -latest, -made)


def _signature(request: dict[str, Any]) -> tuple[Any, ...]:
    params = request.get("parameters", {})
    return params.get("prompt"), params.get("width"), params.get("height")
