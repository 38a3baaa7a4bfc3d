"""A job's row of the journal, and its transitions as values: each `Move` says which columns
it sets, worked out from the row as it is, so the journal writes it and the engine keeps the
row that results without reading it back."""

from __future__ import annotations

import json
import operator
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from runner.errors import StateError
from runner.plan import Job, Upload

ROW_COLUMNS = ("key", "idx", "planned", "state", "prompt", "axes", "styles", "request",
               "filename", "upload", "estimated_cost", "reserved_usd", "cost_usd",
               "cost_credits", "generation_id", "run_id", "attempts", "reason",
               "create_sent_at", "submitted_at", "completed_at", "downloaded_at", "video_url",
               "file", "sidecar", "render_seconds", "poster_url", "poster", "error_kind",
               "spent_before_usd", "spent_before_estimated_usd", "booked_usd")
# Failures whose generation may still deliver: a poll that ran out of time, a download that broke
# off, a video whose name or folder the output folder could not take. A job retried after one of
# them polls its generation again (a job failed unsent has none: it is created); after any other
# failure (a FAILED render, a deleted generation, moderation) it is created anew.
POLL_AGAIN = frozenset({"timeout", "download", "name", "folder"})
# Failures that say nothing final about a job (the API or the network was down, a transfer broke
# off, a folder below the output folder's top refused its files): the next run takes such jobs up
# again by itself. The others (moderation, invalid, a FAILED render, a deleted generation, a name
# too long for the folder) wait for --retry-failed.
PASSING_FAILURES = frozenset({"transient", "timeout", "download", "upload", "folder"})
# Each kind of failure the journal records (`error_kind`), as the run's log counts jobs of it
# ("12 refused by content moderation"); PASSING_FAILURES and POLL_AGAIN are among them.
FAILURE_KINDS = {
    "moderation": "refused by content moderation",
    "invalid": "refused as invalid",
    "render": "whose render failed",
    "lost": "whose generation could not be polled",
    "timeout": "that timed out",
    "transient": "given up on after failed creates",
    "upload": "whose start frame failed to upload",
    "download": "whose download failed",
    "name": "whose file name is too long for the folder",
    "folder": "whose folder refused their files",
}
# What to do with a journal a hand edit damaged.
RESTORE_HINT = "restore the journal from a copy, or use another output folder"


@dataclass(frozen=True, slots=True)
class JobRow:
    """A job as the journal knows it: the planned job plus everything learned since."""

    key: str
    index: int
    planned: bool
    state: str
    prompt: str
    axes: dict[str, Any]
    styles: tuple[str, ...]
    request: dict[str, Any]
    filename: str
    upload: Upload | None
    estimated_cost: float
    reserved_usd: float
    cost_usd: float | None
    cost_credits: float | None
    generation_id: str | None
    run_id: int | None
    attempts: int
    reason: str | None
    create_sent_at: float | None
    submitted_at: float | None
    completed_at: float | None
    downloaded_at: float | None
    video_url: str | None
    file: str | None
    sidecar: str | None
    render_seconds: float | None
    poster_url: str | None
    poster: str | None
    error_kind: str | None
    spent_before_usd: float
    spent_before_estimated_usd: float
    booked_usd: float | None  # the price its generation is booked at when no answer named one

    @property
    def short_key(self) -> str:
        return self.key[:10]

    @property
    def spent_usd(self) -> float:
        """Money this job cost: its generations given up on before, plus the current one's."""
        return self.spent_before_usd + self.generation_usd

    @property
    def generation_usd(self) -> float:
        """What its current generation cost (nothing without one): the price its create answer
        named, else the price it was booked at (`booked_usd`: the estimate, or more when the API
        had named more for a job of its kind), else (booked by an earlier version) the estimate."""
        if self.generation_id is None:
            return 0.0
        return self.cost_usd if self.cost_usd else self.booked_usd or self.estimated_cost

    @property
    def spent_estimated_usd(self) -> float:
        """The part of `spent_usd` booked at estimates (`booked_usd`): generations whose price no
        create answer named (found on the account after the answer was lost), this one's and
        those given up on."""
        return self.spent_before_estimated_usd + (0.0 if self.cost_usd else self.generation_usd)

    @property
    def polled_again(self) -> bool:
        """Whether a retry of this failed job polls its generation again (it may still deliver)
        rather than creates it anew."""
        return bool(self.generation_id) and self.error_kind in POLL_AGAIN

    def taken_up(self, kinds: frozenset[str] | None = None, *, planned: bool | None = None) -> bool:
        """Whether a run that takes up failed jobs of `kinds` (or all) takes up this one again:
        a failed job of the plan (the journal's, or as `planned` says of a plan not synced
        yet), or one the manifest no longer has whose paid generation may still deliver
        (polled again, never created anew)."""
        return (self.state == "failed" and ((self.planned if planned is None else planned)
                                            or self.polled_again)
                and (kinds is None or self.error_kind in kinds))

    @property
    def failed_for_now(self) -> bool:
        """Whether this failed job is one the next run takes up again by itself (PASSING_FAILURES)."""
        return self.taken_up(PASSING_FAILURES)

    @property
    def kind(self) -> tuple[Any, ...]:
        """What the job's render time and price depend on: its model, resolution (mode) and
        duration, as its request has them (and `Journal.highest_costs` reads them)."""
        params = self.request.get("parameters", {})
        return self.request.get("model"), params.get("mode"), params.get("duration")

    @property
    def waits_for_retry_failed(self) -> bool:
        """Whether this is a failed job of the plan that only a run with --retry-failed takes up
        again (refused for its content, a FAILED render: see PASSING_FAILURES)."""
        return self.state == "failed" and self.planned and self.error_kind not in PASSING_FAILURES

    def as_job(self) -> Job:
        """The planned job this row records (its wire body, file name and axes)."""
        return Job(key=self.key, index=self.index, axes=self.axes, styles=self.styles,
                   request=self.request, estimated_cost=self.estimated_cost,
                   filename=self.filename, upload=self.upload)

    # Each transition as a Move: the columns it sets, computed from the row as it is now.

    def submitting(self, *, run_id: int, at: float, reserved_usd: float,
                   api_at: float | None = None) -> Move:
        """Note what the run reserved for the create (`reserved_usd`: the estimate, or more when
        the API has named a higher price) and when it is sent (the first send is kept), and,
        in the move's detail, when by the API's clock (`api_at`, the time its generation will be
        listed with) if it is known; durable, since the create goes out as soon as it is written."""
        first = self.create_sent_at if self.state == "submitting" else None
        return self._move(("pending", "submitting"), "submitting", run_id, at,
                          {"reserved_usd": reserved_usd, "run_id": run_id,
                           "create_sent_at": at if first is None else first,
                           "attempts": self.attempts + 1},
                          detail=None if api_at is None else repr(api_at), durable=True)

    def unsent(self, *, run_id: int, at: float, reason: str) -> Move:
        """The create is known not to have made a generation: back to pending, reservation freed."""
        return self._move(("submitting",), "pending", run_id, at,
                          {"reserved_usd": 0.0, "create_sent_at": None}, detail=reason)

    def submitted(self, *, run_id: int, at: float, generation_id: str, cost_usd: float | None,
                  cost_credits: float | None, booked_usd: float | None = None) -> Move:
        """A generation is booked to the job, at `cost_usd` when its answer named it, else at
        `booked_usd`: a failure it was taken up again after (`retried`) is behind it, and so is
        that failure's generation (`_given_up`)."""
        return self._move(("submitting",), "submitted", run_id, at,
                          {**self._given_up(), "reserved_usd": 0.0, "reason": None,
                           "error_kind": None, "generation_id": generation_id,
                           "cost_usd": cost_usd, "cost_credits": cost_credits,
                           "booked_usd": booked_usd, "submitted_at": at}, detail=generation_id)

    def complete(self, *, run_id: int, at: float, video_url: str, poster_url: str | None,
                 render_seconds: float | None) -> Move:
        """The render is over; a generation seen complete before (its download failed, or its
        video went missing) keeps when that was and, unless timed anew, its render time."""
        return self._move(("submitted",), "complete", run_id, at,
                          {"video_url": video_url, "poster_url": poster_url,
                           "completed_at": at if self.completed_at is None else self.completed_at,
                           "render_seconds": self.render_seconds if render_seconds is None
                           else render_seconds})

    def downloaded(self, *, run_id: int, at: float, file: str, poster: str | None,
                   sidecar: str) -> Move:
        return self._move(("complete",), "downloaded", run_id, at,
                          {"file": file, "poster": poster, "sidecar": sidecar,
                           "downloaded_at": at}, detail=file)

    def fetched_again(self, *, run_id: int, at: float) -> Move:
        """Its video is gone from the folder: its generation, paid for already, is polled for
        the video's address and downloaded once more, back to the file it was in."""
        return self._move(("downloaded",), "submitted", run_id, at, {"downloaded_at": None},
                          detail="the video was missing from the folder")

    def failed(self, *, run_id: int, at: float, reason: str, kind: str) -> Move:
        """The job failed for `reason`; one taken up again fails for its own reason, the
        generation of the failure before given up (`_given_up`)."""
        return self._move(("pending", "submitting", "submitted", "complete"), "failed", run_id,
                          at, {**self._given_up(), "reserved_usd": 0.0, "reason": reason,
                               "error_kind": kind}, detail=reason)

    def retried(self, *, run_id: int, at: float) -> Move:
        """Back to work: its generation polled again when it may still deliver (POLL_AGAIN),
        else pending. A pending one keeps the reason and kind it failed with, and a dead
        generation, until a generation is booked to it (`submitted`) or it fails anew, so that
        it goes back to failed as it was if no run sends it (`unsent_retry`)."""
        if self.polled_again:
            return self._move(("failed",), "submitted", run_id, at,
                              {"reason": None, "error_kind": None}, detail="retry")
        return self._move(("failed",), "pending", run_id, at, {}, detail="retry")

    def unsent_retry(self, *, run_id: int, at: float) -> Move:
        """Taken up again (`retried`) but never sent: failed once more, with the reason, kind and
        generation it kept."""
        return self._move(("pending",), "failed", run_id, at, {}, detail=f"not sent: {self.reason}")

    def _given_up(self) -> dict[str, Any]:
        """The columns that give up the dead generation a job taken up again kept (`retried`; no
        other job waiting or being sent has one): its cost kept in `spent_before_usd` (the price
        it was booked at, when no answer named its price, in `spent_before_estimated_usd` too)."""
        if self.state not in ("pending", "submitting") or not self.generation_id:
            return {}
        return {"spent_before_usd": self.spent_usd,
                "spent_before_estimated_usd": self.spent_estimated_usd, "generation_id": None,
                "cost_usd": None, "cost_credits": None, "booked_usd": None, "submitted_at": None,
                "completed_at": None, "video_url": None, "poster_url": None,
                "render_seconds": None}

    def _move(self, sources: tuple[str, ...], target: str, run_id: int, at: float,
              changes: dict[str, Any], *, detail: str | None = None,
              durable: bool = False) -> Move:
        if self.state not in sources:
            raise StateError(f"job {self.short_key} cannot go to {target} from {self.state}")
        return Move(self, target, changes, run_id, at, detail, durable)

    @classmethod
    def from_sql(cls, row: tuple[Any, ...]) -> JobRow:
        """The job of a row of ROW_COLUMNS (JobRow's fields in their order, `idx` being `index`).
        A row whose JSON or numbers cannot be read (a hand edit) is a StateError naming the job
        and a column it cannot read."""
        try:
            _numbers_read(_numbers(row))
            key, index, planned, state, prompt, axes, styles, request, filename, upload, *rest = row
            return cls(key, index, bool(planned), state, prompt, _mapping(axes), _names(styles),
                       _mapping(request), filename, _upload(upload), *rest)
        except _UNREADABLE as exc:
            column = next(column for column, read in _READERS.items()
                          if not _reads(read, row[ROW_COLUMNS.index(column)]))
            value = repr(row[ROW_COLUMNS.index(column)])
            raise StateError(f"job {row[0][:10]}: its {column} in the journal ({value:.40}) "
                             f"cannot be read: {RESTORE_HINT}") from exc


@dataclass(frozen=True, slots=True)
class Move:
    """One transition of one job: the row it starts from, the target state, the columns it sets
    (named as JobRow's fields) and its line in the transitions log."""

    row: JobRow
    target: str
    changes: dict[str, Any]
    run_id: int
    at: float
    detail: str | None = None
    durable: bool = False

    def after(self) -> JobRow:
        """The row once moved (built from a tuple of its values: `dataclasses.replace` costs
        several times more, and the engine makes one for every transition)."""
        values = list(_values(self.row))
        values[_POSITION["state"]] = self.target
        for name, value in self.changes.items():
            values[_POSITION[name]] = value
        return JobRow(*values)


def _numbers_read(values: tuple[Any, ...]) -> None:
    if not _NUMBER_TYPES.issuperset(map(type, values)):
        raise TypeError("text where a number belongs")


def _number(value: Any) -> None:
    _numbers_read((value,))


def _mapping(text: str) -> dict[str, Any]:
    value = json.loads(text)
    if type(value) is not dict:
        raise TypeError("not a JSON object")
    return value


def _names(text: str) -> tuple[str, ...]:
    value = json.loads(text)
    if type(value) is not list:
        raise TypeError("not a JSON array")
    return tuple(value)


def _upload(text: str | None) -> Upload | None:
    if not text:
        return None
    value = json.loads(text)
    return Upload(Path(value["path"]), value["sha256"], value["extension"])


def _reads(read: Callable[[Any], object], value: Any) -> bool:
    try:
        read(value)
    except _UNREADABLE:
        return False
    return True


# What reading a column raises when a hand edit damaged it; the columns that hold numbers (or
# NULL); how each column JobRow.from_sql reads is read alone, to name the one it could not read.
_UNREADABLE = (ValueError, TypeError, KeyError)
_NUMBER_COLUMNS = ("idx", "planned", "estimated_cost", "reserved_usd", "cost_usd", "cost_credits",
                   "run_id", "attempts", "create_sent_at", "submitted_at", "completed_at",
                   "downloaded_at", "render_seconds", "spent_before_usd",
                   "spent_before_estimated_usd", "booked_usd")
_NUMBER_TYPES = frozenset({int, float, type(None)})
_numbers = operator.itemgetter(*(ROW_COLUMNS.index(column) for column in _NUMBER_COLUMNS))
_READERS: dict[str, Callable[[Any], object]] = {
    **dict.fromkeys(_NUMBER_COLUMNS, _number),
    "axes": _mapping, "styles": _names, "request": _mapping, "upload": _upload}

_FIELDS = tuple(f.name for f in fields(JobRow))
_values = operator.attrgetter(*_FIELDS)
_POSITION = {name: number for number, name in enumerate(_FIELDS)}
