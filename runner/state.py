"""The journal: one SQLite file per output folder that remembers every job through every crash.

Every transition of a job is one transaction, written before the step it enables is taken: a
job is `submitting` before its create is sent, `submitted` together with the generation id that
came back, `downloaded` only once the file is in place. Restarting from any instant therefore
finds each job in a state that says exactly what is still to do and never pays twice.

    pending ──> submitting ──> submitted ──> complete ──> downloaded
       ^            │  │            │            │
       └── unsent ──┘  └──> failed <┴────────────┘

A downloaded job whose video has gone from the folder goes back to `submitted` when a run is
asked to fetch it again (`run --fetch-missing`): its generation is polled and downloaded once more.
A failed job taken up again waits in `pending` with the reason it failed for (and the generation
that failed, if any), and goes back to `failed` with them when its run ends with no generation
booked to it (`unsent_retries`).

The schema is versioned by `PRAGMA user_version`; `MIGRATIONS[n]` takes a file from version n
to n + 1, so an old file is upgraded in place when a run opens it. The commands that only read a
folder never write its journal: they read an old file through an upgraded temporary copy, and
see a job taken up again that no run sent as the failed job the next run's start makes it.
"""

from __future__ import annotations

import functools
import inspect
import json
import sqlite3
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self, TypeVar

from runner import files
from runner.errors import StateError, UsageError
from runner.plan import FrameChange, Job, Upload
from runner.rows import PASSING_FAILURES, RESTORE_HINT, ROW_COLUMNS, JobRow, Move

JOURNAL_NAME = "journal.sqlite"

IN_FLIGHT = ("submitting", "submitted", "complete")
# The columns of a job that planning sets (its key and request never change).
_PLAN_COLUMNS = "idx, planned, prompt, axes, styles, filename, upload, estimated_cost"
STATES = ("pending", *IN_FLIGHT, "downloaded", "failed")

MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE runs (id INTEGER PRIMARY KEY, name TEXT NOT NULL, manifest TEXT NOT NULL,
        settings TEXT NOT NULL, started_at REAL NOT NULL, ended_at REAL, exit_code INTEGER,
        exit_reason TEXT);
    CREATE TABLE jobs (key TEXT PRIMARY KEY, idx INTEGER NOT NULL, planned INTEGER NOT NULL,
        state TEXT NOT NULL, prompt TEXT NOT NULL, axes TEXT NOT NULL, styles TEXT NOT NULL,
        request TEXT NOT NULL, filename TEXT NOT NULL, upload TEXT,
        estimated_cost REAL NOT NULL, reserved_usd REAL NOT NULL DEFAULT 0, cost_usd REAL,
        cost_credits REAL, generation_id TEXT UNIQUE, run_id INTEGER,
        attempts INTEGER NOT NULL DEFAULT 0, reason TEXT, create_sent_at REAL,
        submitted_at REAL, completed_at REAL, downloaded_at REAL, video_url TEXT, file TEXT,
        sidecar TEXT, render_seconds REAL);
    CREATE INDEX jobs_by_state ON jobs (state, idx);
    CREATE INDEX jobs_by_file ON jobs (file);
    CREATE TABLE transitions (id INTEGER PRIMARY KEY, job_key TEXT NOT NULL, run_id INTEGER,
        at REAL NOT NULL, from_state TEXT NOT NULL, to_state TEXT NOT NULL, detail TEXT);
    CREATE INDEX transitions_by_job ON transitions (job_key);
    CREATE TABLE uploads (sha256 TEXT PRIMARY KEY, extension TEXT NOT NULL,
        image_id TEXT NOT NULL, uploaded_at REAL NOT NULL);
    """,
    # Version 2: poster images beside the videos, and the kind of each failure.
    """
    ALTER TABLE jobs ADD COLUMN poster_url TEXT;
    ALTER TABLE jobs ADD COLUMN poster TEXT;
    ALTER TABLE jobs ADD COLUMN error_kind TEXT;
    """,
    # Version 3: an uploaded start frame's id belongs to the API (its root URL) and the account
    # it was uploaded to. Ids kept by older files name neither: they are kept under an empty
    # API that no run matches, so those frames are uploaded once more where they are used.
    """
    CREATE TABLE uploads_by_api (api TEXT NOT NULL, account TEXT NOT NULL, sha256 TEXT NOT NULL,
        extension TEXT NOT NULL, image_id TEXT NOT NULL, uploaded_at REAL NOT NULL,
        PRIMARY KEY (api, account, sha256));
    INSERT INTO uploads_by_api SELECT '', '', sha256, extension, image_id, uploaded_at FROM uploads;
    DROP TABLE uploads;
    ALTER TABLE uploads_by_api RENAME TO uploads;
    """,
    # Version 4: what a job's earlier generations cost when a retry gave them up (a FAILED
    # render is paid for all the same).
    """
    ALTER TABLE jobs ADD COLUMN spent_before_usd REAL NOT NULL DEFAULT 0;
    """,
    # Version 5: fewer index pages written per transition. Only moves into `submitting` are
    # looked up by job (when its creates were sent), and files are read all at once.
    """
    DROP INDEX transitions_by_job;
    CREATE INDEX transitions_sent ON transitions (job_key, at) WHERE to_state = 'submitting';
    DROP INDEX jobs_by_file;
    """,
    # Version 6: the account each run worked on (its key's user, or the simulated account), so
    # that a folder's generations are never polled or added to on another account.
    """
    ALTER TABLE runs ADD COLUMN account TEXT;
    """,
    # Version 7: the part of `spent_before_usd` booked at estimates (generations whose create
    # answer was lost); older files count what they kept there as reported.
    """
    ALTER TABLE jobs ADD COLUMN spent_before_estimated_usd REAL NOT NULL DEFAULT 0;
    """,
    # Version 8: the price a generation whose create answer named none is booked at (the
    # estimate, or more when the API had named more for a job of its kind); older files book
    # such a generation at its estimate, as they did.
    """
    ALTER TABLE jobs ADD COLUMN booked_usd REAL;
    """,
    # Version 9: the cells each run's plan left out by on_invalid: skip, by the rule each breaks
    # (JSON); older files' runs tell of none.
    """
    ALTER TABLE runs ADD COLUMN skipped TEXT;
    """,
)

_SELECT = f"SELECT {', '.join(ROW_COLUMNS)} FROM jobs"
# The jobs that were sent or cost money (a job taken up again waits pending with what its
# generations cost); the results speak of those and of the planned ones.
_SENT = "state != 'pending' OR spent_before_usd > 0 OR generation_id IS NOT NULL"
_REPORTED = f"planned = 1 OR {_SENT}"
# The jobs a run answers for, in its progress and its exit code: the planned ones, and older
# ones still in flight, which it carries on with.
_ANSWERED = f"planned = 1 OR state IN {IN_FLIGHT}"
_COUNTED = {"reported": _REPORTED, "planned": "planned = 1", "answered": _ANSWERED,
            "carried": f"planned = 0 AND state IN {IN_FLIGHT}"}  # the older ones it carries on with
# A failed job taken up again (`retry_failed`) that no generation has been booked to yet: failed
# once more, with its reason, when its run ends or, the run killed, when the next one starts.
_UNSENT_RETRY = "state = 'pending' AND error_kind IS NOT NULL"
# The jobs as the commands that only read a folder see them: such a job as the failed one the
# next run finds, not a new one to pay for. In the connection's temp schema, where a name is
# looked for before the file's.
_JOBS_AS_FOUND = ("CREATE TEMP VIEW jobs AS SELECT " + ", ".join(
    f"CASE WHEN {_UNSENT_RETRY} THEN 'failed' ELSE state END AS state" if column == "state"
    else column for column in ROW_COLUMNS) + " FROM main.jobs")
# A job in a state the runner does not know, found in the index of states alone.
_UNKNOWN_STATE = (f"SELECT key, state FROM jobs WHERE state = (SELECT state FROM jobs "
                  f"WHERE state NOT IN {STATES} LIMIT 1) LIMIT 1")
# What to do when SQLite says the machine failed a read of the journal, by its (primary) error
# code: the disk or the temp folder it sorts in full (it sorts there the jobs of a folder whose
# sorting does not fit in its memory), an I/O error, no memory left, the file locked past the busy
# timeout, or damaged. Any other sqlite3 error is the runner's bug, and keeps its traceback.
_TEMP_FOLDER = "the temp folder SQLite sorts in (SQLITE_TMPDIR or TMPDIR, else /var/tmp)"
_CHECK_DISKS = f"check the folder's disk and {_TEMP_FOLDER}, then run the command again"
_HELD = "another process holds the journal locked: run the command again once it is done"
_MACHINE_FAILURES = {
    sqlite3.SQLITE_FULL: f"free some space in {_TEMP_FOLDER} and on the folder's disk, or point "
                         "SQLITE_TMPDIR at a folder with room, then run the command again",
    sqlite3.SQLITE_IOERR: _CHECK_DISKS, sqlite3.SQLITE_CANTOPEN: _CHECK_DISKS,
    sqlite3.SQLITE_NOMEM: "free some memory, then run the command again",
    sqlite3.SQLITE_BUSY: _HELD, sqlite3.SQLITE_LOCKED: _HELD,
    sqlite3.SQLITE_CORRUPT: RESTORE_HINT, sqlite3.SQLITE_NOTADB: RESTORE_HINT,
}
_Read = TypeVar("_Read")


@contextmanager
def _read_failures(folder: Path) -> Iterator[None]:
    """A read of the journal of `folder` that the machine failed (`_MACHINE_FAILURES`) as a
    StateError naming the folder and what to do."""
    try:
        yield
    except sqlite3.Error as exc:
        hint = _MACHINE_FAILURES.get(getattr(exc, "sqlite_errorcode", 0) & 0xFF)
        if hint is None:
            raise
        raise StateError(f"{folder}: cannot read the journal: {exc}: {hint}") from exc


def _reads(method: Callable[..., _Read]) -> Callable[..., _Read]:
    """A method of Journal that reads the journal (some, before they write), its reads the
    machine fails turned into StateErrors (`_read_failures`), the one way every read meets them
    (writes meet them in `_transaction`); the rows of one that gives them a row at a time as
    they are read."""
    if inspect.isgeneratorfunction(method):
        @functools.wraps(method)
        def rows(self: Journal, *args: Any, **kwargs: Any) -> Any:
            with _read_failures(self.folder):
                yield from method(self, *args, **kwargs)
        return rows

    @functools.wraps(method)
    def read(self: Journal, *args: Any, **kwargs: Any) -> Any:
        with _read_failures(self.folder):
            return method(self, *args, **kwargs)
    return read


@dataclass(frozen=True, slots=True)
class RunRow:
    id: int
    name: str
    manifest: str
    started_at: float
    ended_at: float | None
    exit_code: int | None
    exit_reason: str | None
    skipped: dict[str, int]  # the cells its plan left out by on_invalid: skip, by rule


class Journal:
    """The state store of one output folder. Open it with `Journal.open(folder)`."""

    def __init__(self, conn: sqlite3.Connection, folder: Path) -> None:
        self.conn = conn
        self.folder = folder

    @classmethod
    def open(cls, folder: Path, *, create: bool = True) -> Journal:
        """The journal of `folder`, created (with the folder) when missing and `create` is set.
        Without `create` it is only read (`_read_only`). A job in a state this runner does not
        know is refused: a run would neither carry it on nor count it as failed."""
        path = folder / JOURNAL_NAME
        linked = next((p.name for p in (path, path.with_name(f"{path.name}-wal")) if p.is_symlink()),
                      None)
        if linked is not None:  # it would be another folder's, or written outside this one
            raise StateError(f"{folder}: {linked} is a symbolic link; the journal must be the "
                             "folder's own file: remove the link")
        if not create and not path.exists():
            raise UsageError(f"{folder}: no journal here ({JOURNAL_NAME} is missing); "
                             "is this a run's output folder?")
        try:
            conn = _writable(path) if create else _read_only(path)
            unknown = conn.execute(_UNKNOWN_STATE).fetchone()
        except (OSError, sqlite3.Error) as exc:
            raise StateError(f"{folder}: cannot use the journal: {exc}") from exc
        if unknown is not None:
            conn.close()
            raise StateError(f"{folder}: job {unknown[0][:10]} is in the state {unknown[1]!r}, "
                             f"which this runner does not know: {RESTORE_HINT}")
        return cls(conn, folder)

    def close(self) -> None:
        self.conn.close()

    def _transaction(self) -> AbstractContextManager[None]:
        return _transaction(self.conn)

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """Every read inside the block sees the journal as it was at the first one, whatever a
        run writes to it meanwhile: one read transaction."""
        self.conn.execute("BEGIN")
        try:
            yield
        finally:
            if self.conn.in_transaction:  # SQLite ends it itself on some errors (a full disk)
                self.conn.execute("ROLLBACK")

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- runs and plans -------------------------------------------------------------------

    def begin_run(self, *, name: str, manifest: str, settings: dict[str, Any], at: float,
                  skipped: Mapping[str, int] | None = None) -> int:
        """Record a run's start, with the cells its plan left out by on_invalid: skip (`skipped`,
        by rule) if any."""
        with self._transaction():
            cursor = self.conn.execute(
                "INSERT INTO runs (name, manifest, settings, started_at, skipped) "
                "VALUES (?, ?, ?, ?, ?)",
                (name, manifest, json.dumps(settings, sort_keys=True), at,
                 json.dumps(skipped) if skipped else None))
        return int(cursor.lastrowid or 0)

    def end_run(self, run_id: int, *, exit_code: int, reason: str, at: float) -> None:
        with self._transaction():
            self.conn.execute("UPDATE runs SET ended_at = ?, exit_code = ?, exit_reason = ? "
                              "WHERE id = ?", (at, exit_code, reason, run_id))

    def record_account(self, run_id: int, account: str) -> None:
        with self._transaction():
            self.conn.execute("UPDATE runs SET account = ? WHERE id = ?", (account, run_id))

    @_reads
    def accounts(self) -> set[str]:
        """The accounts the folder's runs worked on (every run records its own before it sends
        anything; runs of older versions recorded none)."""
        return {row[0] for row in self.conn.execute(
            "SELECT DISTINCT account FROM runs WHERE account IS NOT NULL")}

    @_reads
    def last_begun(self) -> int | None:
        """The latest run that began its work (it records its account just before, and only
        then), whose end the results files tell; None when none did (or only runs of older
        versions, which recorded no account)."""
        return self.conn.execute("SELECT MAX(id) FROM runs WHERE account IS NOT NULL").fetchone()[0]

    @_reads
    def run(self, run_id: int | None = None) -> RunRow | None:
        """The run `run_id`, or the latest one."""
        row = self.conn.execute("SELECT id, name, manifest, started_at, ended_at, exit_code, "
                                "exit_reason, skipped FROM runs WHERE id = COALESCE(?, (SELECT "
                                "MAX(id) FROM runs))", (run_id,)).fetchone()
        return None if row is None else RunRow(*row[:-1], skipped=json.loads(row[-1] or "{}"))

    def sync_plan(self, jobs: Iterable[Job]) -> None:
        """Make the planned jobs the journal's planned set: new ones pending, known ones refreshed."""
        rows = ((job.key, job.index, job.request.get("parameters", {}).get("prompt", ""),
                 json.dumps(job.axes, sort_keys=True), json.dumps(list(job.styles)),
                 json.dumps(job.request, sort_keys=True), job.filename, _upload_json(job.upload),
                 job.estimated_cost) for job in jobs)
        with self._transaction():
            self.conn.execute("UPDATE jobs SET planned = 0")
            self.conn.executemany(
                "INSERT INTO jobs (key, idx, planned, state, prompt, axes, styles, request, "
                "filename, upload, estimated_cost) VALUES (?, ?, 1, 'pending', ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (key) DO UPDATE SET idx = excluded.idx, planned = 1, "
                "prompt = excluded.prompt, axes = excluded.axes, styles = excluded.styles, "
                "filename = excluded.filename, upload = excluded.upload, "
                "estimated_cost = excluded.estimated_cost", rows)

    @_reads
    def keep_plan(self) -> None:
        """Keep the plan as it is (in a table of this connection's alone) for `restore_plan`."""
        self.drop_kept_plan()
        self.conn.execute(f"CREATE TEMP TABLE kept_plan AS SELECT key, {_PLAN_COLUMNS} FROM jobs")

    def restore_plan(self) -> None:
        """Put back the plan `keep_plan` kept: a run that ended before it began leaves no trace
        of its manifest. The jobs the kept plan did not have (pending, never sent) are gone."""
        with self._transaction():
            self.conn.execute("DELETE FROM jobs WHERE state = 'pending' AND key NOT IN "
                              "(SELECT key FROM temp.kept_plan)")
            self.conn.execute(f"UPDATE jobs SET ({_PLAN_COLUMNS}) = (SELECT {_PLAN_COLUMNS} FROM "
                              "temp.kept_plan AS kept WHERE kept.key = jobs.key) "
                              "WHERE key IN (SELECT key FROM temp.kept_plan)")
        self.drop_kept_plan()

    def drop_kept_plan(self) -> None:
        self.conn.execute("DROP TABLE IF EXISTS temp.kept_plan")

    # --- reading --------------------------------------------------------------------------

    def _rows(self, rows: Iterable[tuple[Any, ...]]) -> Iterator[JobRow]:
        """`rows` of `_SELECT` as JobRows; one that cannot be read names the folder too."""
        try:
            yield from map(JobRow.from_sql, rows)
        except StateError as exc:
            raise StateError(f"{self.folder}: {exc}") from exc

    @_reads
    def job(self, key: str) -> JobRow:
        row = self.conn.execute(f"{_SELECT} WHERE key = ?", (key,)).fetchone()
        if row is None:
            raise StateError(f"job {key[:10]} is not in the journal")
        return next(self._rows([row]))

    @_reads
    def pending_after(self, index: int, *, limit: int = 256) -> list[JobRow]:
        """Planned pending jobs after plan position `index`, in plan order, a page at a time."""
        rows = self.conn.execute(f"{_SELECT} WHERE state = 'pending' AND planned = 1 AND idx > ? "
                                 "ORDER BY idx LIMIT ?", (index, limit))
        return list(self._rows(rows))

    @_reads
    def in_states(self, states: Iterable[str]) -> list[JobRow]:
        wanted = tuple(states)
        marks = ", ".join("?" * len(wanted))
        rows = self.conn.execute(f"{_SELECT} WHERE state IN ({marks}) ORDER BY planned DESC, idx",
                                 wanted)
        return list(self._rows(rows))

    @_reads
    def reported(self, state: str | None = None) -> Iterator[JobRow]:
        """The jobs the results speak of (`_REPORTED`), or those of them in `state`, planned
        ones first, in plan order, read a row at a time."""
        yield from self._rows(self.conn.execute(f"{_SELECT} WHERE ({_REPORTED}) AND state = "
                                                "COALESCE(?, state) ORDER BY planned DESC, idx, key",
                                                (state,)))

    @_reads
    def unplanned_counts(self, plan: Collection[str]) -> dict[str, int]:
        """The jobs a plan of the keys `plan` would leave out, by state, as the results count
        them once it runs (`unplanned_counts`): those that were sent or cost money."""
        rows = self.conn.execute(f"SELECT key, state FROM jobs WHERE {_SENT}")
        return dict(sorted(Counter(state for key, state in rows if key not in plan).items()))

    @_reads
    def changed_frames(self, jobs: Sequence[Job]) -> list[FrameChange]:
        """The start frames of the plan `jobs` whose file changed since jobs the folder keeps
        (sent, or that cost money) were made from it, those the plan still has new jobs of, in
        plan order: a job is its frame's content, so an image re-saved makes each one new."""
        frames: dict[str, list[Job]] = {}  # the plan's jobs of each frame's file
        contents: dict[str, str] = {}  # and the file's content now
        for job in jobs:
            if job.upload is not None:
                frames.setdefault(str(job.upload.path), []).append(job)
                contents[str(job.upload.path)] = job.upload.sha256
        if not frames:
            return []
        keys = {job.key for job in jobs}
        made: dict[str, Counter[str]] = {}
        rows = self.conn.execute("SELECT key, state, json_extract(upload, '$.path'), "
                                 "json_extract(upload, '$.sha256') FROM jobs "
                                 f"WHERE upload IS NOT NULL AND ({_SENT})")
        for key, state, path, sha256 in rows:
            if key not in keys and path in contents and sha256 != contents[path]:
                made.setdefault(path, Counter())[state] += 1
        if not made:
            return []
        states = self.states_of(job.key for path in made for job in frames[path])
        changes = []
        for path, of_frame in frames.items():
            new = sum(states.get(job.key, "pending") == "pending" for job in of_frame)
            if path in made and new:
                changes.append(FrameChange(str(of_frame[0].axes["start_frame"]),
                                           dict(sorted(made[path].items())), new, len(of_frame)))
        return changes

    @_reads
    def states_of(self, keys: Iterable[str]) -> dict[str, str]:
        """The state of each of `keys` the journal knows."""
        wanted = set(keys)
        rows = self.conn.execute("SELECT key, state FROM jobs")
        return {key: state for key, state in rows if key in wanted}

    @_reads
    def counts(self, jobs: str = "reported") -> dict[str, int]:
        """How many of the `jobs` ("reported", "planned", "answered" or "carried": see above) are
        in each state."""
        rows = self.conn.execute(f"SELECT state, COUNT(*) FROM jobs WHERE {_COUNTED[jobs]} GROUP BY state")
        return {state: count for state, count in rows}

    @_reads
    def booked(self, run_id: int) -> set[str]:
        """The generations the run `run_id` booked to jobs: those its creates' answers named, and
        those it found on the account for creates whose answer was lost, its own or an earlier
        run's."""
        rows = self.conn.execute("SELECT detail FROM transitions WHERE run_id = ? AND "
                                 "from_state = 'submitting' AND to_state = 'submitted'", (run_id,))
        return {row[0] for row in rows}

    @_reads
    def holder(self, generation_id: str) -> str | None:
        """The key of the job that has `generation_id` now, if one has."""
        row = self.conn.execute("SELECT key FROM jobs WHERE generation_id = ?",
                                (generation_id,)).fetchone()
        return row[0] if row else None

    @_reads
    def claimed(self, generation_ids: Iterable[str]) -> set[str]:
        """Those of `generation_ids` that belong, or once belonged, to a job (a generation a
        retry gave up on must never be taken for another create's)."""
        ids = list(generation_ids)
        if not ids:
            return set()
        marks = ", ".join("?" * len(ids))
        rows = self.conn.execute(f"SELECT generation_id FROM jobs WHERE generation_id IN ({marks}) "
                                 f"UNION SELECT detail FROM transitions WHERE to_state = 'submitted' "
                                 f"AND detail IN ({marks})", ids + ids)
        return {row[0] for row in rows}

    @_reads
    def highest_costs(self) -> dict[tuple[Any, ...], float]:
        """The most a create answer named for a job of each model, mode and duration (the
        request's), as the engine reserves for a job of that kind."""
        rows = self.conn.execute(
            "SELECT json_extract(request, '$.model'), json_extract(request, '$.parameters.mode'), "
            "json_extract(request, '$.parameters.duration'), MAX(cost_usd) FROM jobs "
            "WHERE cost_usd > 0 GROUP BY 1, 2, 3")
        return {(model, mode, duration): cost for model, mode, duration, cost in rows}

    @_reads
    def sendings(self, key: str) -> list[tuple[float, float | None]]:
        """When each create of the job's current attempt (from its latest move out of `pending`)
        was sent, in order: by this machine's clock and, if the run that sent it knew the API's
        clock, by that (the move's detail; None for a run that did not, or of an earlier version)."""
        rows = self.conn.execute("SELECT at, from_state, detail FROM transitions WHERE job_key = ? "
                                 "AND to_state = 'submitting' ORDER BY id", (key,)).fetchall()
        begun = max((n for n, (_, source, _) in enumerate(rows) if source != "submitting"), default=0)
        return [(at, _number(detail)) for at, _, detail in rows[begun:]]

    @_reads
    def missing_videos(self) -> list[JobRow]:
        """The jobs recorded as downloaded whose video is no longer a file in the folder (deleted
        or moved away by hand), planned ones first, in plan order."""
        rows = self.conn.execute("SELECT key, file FROM jobs WHERE state = 'downloaded' AND "
                                 "file IS NOT NULL ORDER BY planned DESC, idx")
        return [self.job(key) for key, file in rows if files.gone(self.folder, file)]

    @_reads
    def file_owners(self) -> dict[str, str]:
        """Each video file recorded (relative to the folder) with the key of its job."""
        return dict(self.conn.execute("SELECT file, key FROM jobs WHERE file IS NOT NULL"))

    @_reads
    def upload_id(self, sha256: str, *, api: str, account: str | None) -> str | None:
        """The id of the file with this content uploaded to `api` for `account` (None: for any
        account, the latest), if it was."""
        row = self.conn.execute("SELECT image_id FROM uploads WHERE api = ? AND sha256 = ? AND "
                                "(account = ? OR ? IS NULL) ORDER BY uploaded_at DESC LIMIT 1",
                                (api, sha256, account, account)).fetchone()
        return row[0] if row else None

    def record_upload(self, upload: Upload, image_id: str, *, api: str, account: str,
                      at: float) -> None:
        with self._transaction():
            self.conn.execute("INSERT OR REPLACE INTO uploads (api, account, sha256, extension, "
                              "image_id, uploaded_at) VALUES (?, ?, ?, ?, ?, ?)",
                              (api, account, upload.sha256, upload.extension, image_id, at))

    # --- transitions ----------------------------------------------------------------------

    def retry_failed(self, *, run_id: int, at: float, kinds: frozenset[str] | None = None) -> int:
        """Failed jobs (of `kinds`, or all) go back to work: polled again when a generation
        exists, else pending, their reason kept until one is booked (`unsent_retries`)."""
        failed = self.to_retry(kinds)
        self.apply([row.retried(run_id=run_id, at=at) for row in failed])
        return len(failed)

    @_reads
    def unsent_retries(self, *, run_id: int, at: float) -> None:
        """Jobs taken up again (`retry_failed`) that no generation has been booked to since, and
        that wait unsent, go back to failed with the reason and kind they kept: a run stopped
        before it sent them (its budget, a signal, an outage), or killed, leaves them as it
        found them, and a later run takes them up only as it takes up any failed job. Called
        at a run's start (for a killed one's) and at its end."""
        rows = self.conn.execute(f"{_SELECT} WHERE {_UNSENT_RETRY}")
        self.apply([row.unsent_retry(run_id=run_id, at=at) for row in self._rows(rows)])

    def to_retry(self, kinds: frozenset[str] | None = None, *,
                 plan: Collection[str] | None = None) -> list[JobRow]:
        """The failed jobs (of `kinds`, or all) that a run takes up again (JobRow.taken_up).
        `plan` holds the keys of a plan not synced yet (what a dry run compares), else the jobs
        the journal holds as planned count."""
        return [row for row in self.in_states(("failed",))
                if row.taken_up(kinds, planned=None if plan is None else row.key in plan)]

    def to_create(self, kinds: frozenset[str] | None = None) -> list[JobRow]:
        """The planned jobs a run would create: pending ones, and the failed ones (of `kinds`, or
        all) it takes up again with no generation left to poll. An unsettled create
        (`submitting`) is not among them: it is looked for first, and most often found paid."""
        return ([row for row in self.in_states(("pending",)) if row.planned]
                + [row for row in self.to_retry(kinds) if not row.polled_again])

    def apply(self, moves: Sequence[Move]) -> list[JobRow]:
        """Several transitions in one transaction; the rows as they are after it.

        Each job's row must still be in the state its move started from, else nothing is
        written: another run changed it. Moves of one kind share one prepared statement
        (`executemany`). A batch holding a `durable` move is flushed to disk before this
        returns, which also flushes every earlier commit (WAL order); the others survive a
        crash of the process at once, and a power cut from the next durable one on."""
        if not moves:
            return []
        durable = any(move.durable for move in moves)
        if durable:
            self.conn.execute("PRAGMA synchronous = FULL")
        try:
            with self._transaction():
                for statement, values in _updates(moves).items():
                    before = self.conn.total_changes
                    self.conn.executemany(statement, values)
                    if self.conn.total_changes - before != len(values):
                        raise StateError("a job changed state under this run: is another run "
                                         "using this folder?")
                self.conn.executemany(
                    "INSERT INTO transitions (job_key, run_id, at, from_state, to_state, detail) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    [(m.row.key, m.run_id, m.at, m.row.state, m.target, m.detail) for m in moves])
        finally:
            if durable:
                self.conn.execute("PRAGMA synchronous = NORMAL")
        return [move.after() for move in moves]


def _updates(moves: Sequence[Move]) -> dict[str, list[tuple[Any, ...]]]:
    """The moves grouped by the UPDATE statement they need, with each one's values."""
    grouped: dict[str, list[tuple[Any, ...]]] = {}
    for move in moves:
        columns = "".join(f", {column} = ?" for column in move.changes)
        statement = f"UPDATE jobs SET state = ?{columns} WHERE key = ? AND state = ?"
        grouped.setdefault(statement, []).append(
            (move.target, *move.changes.values(), move.row.key, move.row.state))
    return grouped


def unfinished(folder: Path) -> tuple[int, int, int] | str:
    """How many jobs another output folder's journal holds in flight (paid, not downloaded),
    unsettled (`submitting`: sent, not known to be paid) and planned but not sent, read without a
    write to it; or why it cannot be read. A job failed for now (PASSING_FAILURES) is unfinished
    too, since a run on that folder takes it up again: in flight when its paid generation is
    polled again, else not sent."""
    try:
        with Journal(_read_only(folder / JOURNAL_NAME), folder) as journal:
            in_flight, unsettled, waiting = journal.conn.execute(
                f"SELECT TOTAL(state IN {IN_FLIGHT} AND state != 'submitting'), "
                "TOTAL(state = 'submitting'), TOTAL(state = 'pending' AND planned = 1) "
                "FROM jobs").fetchone()
            failed = journal.to_retry(PASSING_FAILURES)
    except (OSError, sqlite3.Error, StateError) as exc:
        return str(exc)
    polled = sum(row.polled_again for row in failed)
    return int(in_flight) + polled, int(unsettled), int(waiting) + len(failed) - polled


def held_by(folders: Iterable[Path], generation_ids: Collection[str]) -> set[str]:
    """Those of `generation_ids` that the journals of other output folders (`folders`) hold, or
    once held (`Journal.claimed`), each read without a write to it; a journal that cannot be
    read is passed over."""
    held: set[str] = set()
    for folder in folders:
        try:
            with Journal(_read_only(folder / JOURNAL_NAME), folder) as journal:
                held |= journal.claimed(generation_ids)
        except (OSError, sqlite3.Error, StateError):
            continue
    return held


def holds_journal(path: Path) -> bool:
    """Whether the file at `path` holds a journal: steps in its write-ahead log not yet copied
    in (after a killed run, all of them may be there), or a schema version in SQLite's header
    (bytes 60 to 63). A file copied without its log, or emptied, holds none."""
    log = path.with_name(f"{path.name}-wal")
    if log.is_file() and log.stat().st_size > 0:
        return True
    with path.open("rb") as stream:
        header = stream.read(64)
    return len(header) == 64 and int.from_bytes(header[60:], "big") > 0


def _connect(database: str | Path, *, uri: bool = False) -> sqlite3.Connection:
    conn = sqlite3.connect(database, uri=uri, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA busy_timeout = 5000")
    return conn


def _writable(path: Path) -> sqlite3.Connection:
    """The journal at `path` for a run: created when missing, in WAL mode, of the newest version."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = _connect(path)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    migrate(conn)
    return conn


def _read_only(path: Path) -> sqlite3.Connection:
    """The journal at `path` opened never to be written: read only, or immutable where SQLite
    cannot make the files of its WAL beside it (a read-only folder or mount); a file of an older
    version is read through an upgraded copy (`_upgraded_copy`), so the file stays as it is. Its jobs
    are read as a run would find them (`_JOBS_AS_FOUND`)."""
    if path.stat().st_size == 0:
        raise StateError(f"{path.parent}: {JOURNAL_NAME} is empty: {RESTORE_HINT}")
    address = f"{path.resolve().as_uri()}?mode=ro"
    conn = _connect(address, uri=True)
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
    except sqlite3.OperationalError as exc:
        conn.close()
        if exc.sqlite_errorcode & 0xFF not in (sqlite3.SQLITE_READONLY, sqlite3.SQLITE_CANTOPEN):
            raise
        wal = path.with_name(f"{path.name}-wal")
        if wal.is_file() and wal.stat().st_size:  # an immutable file is read without its WAL
            raise StateError(f"{path.parent}: the journal's last changes are in {wal.name}, which "
                             "cannot be read where nothing can be written: read a writable "
                             "copy of the folder") from exc
        conn = _connect(f"{address}&immutable=1", uri=True)
        version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version < len(MIGRATIONS):
        conn = _upgraded_copy(conn, path.parent)
    else:
        migrate(conn)  # refuses a file of a newer version
    conn.execute(_JOBS_AS_FOUND)
    return conn


def _upgraded_copy(conn: sqlite3.Connection, folder: Path) -> sqlite3.Connection:
    """A copy of the journal `conn` reads (then closed), of the newest version, in a temporary
    file SQLite makes in the system's temp folder (SQLITE_TMPDIR or TMPDIR, else /var/tmp) and
    removes as it makes it: it is gone however the process ends, and only a few MB of its pages
    are held in memory."""
    copy = _connect("")
    try:
        conn.backup(copy)
        migrate(copy)
    except (sqlite3.Error, StateError) as exc:
        copy.close()
        raise StateError(f"{folder}: cannot read the journal, of an older version, through an "
                         f"upgraded copy in the temp folder (TMPDIR): {exc}") from exc
    finally:
        conn.close()
    return copy


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the file to the newest schema, one version per transaction; returns that version."""
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > len(MIGRATIONS):
        raise StateError(f"the journal is version {version}, newer than this runner "
                         f"({len(MIGRATIONS)}): upgrade hailuo-batch")
    for number in range(version, len(MIGRATIONS)):
        with _transaction(conn):
            for statement in MIGRATIONS[number].split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {number + 1}")
    return len(MIGRATIONS)


@contextmanager
def _transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """One explicit transaction (the connection is in autocommit mode), rolled back on any error
    (a COMMIT the disk refused included). A write the file refuses (a full or read-only disk, a
    lock held too long) is a StateError: the folder is unusable, and nothing was half written."""
    try:
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
    except sqlite3.Error as exc:
        raise StateError(f"cannot write the journal: {exc}") from exc


def _upload_json(upload: Upload | None) -> str | None:
    if upload is None:
        return None
    return json.dumps({"path": str(upload.path), "sha256": upload.sha256,
                       "extension": upload.extension})


def _number(detail: str | None) -> float | None:
    """A move's detail read as a number (a time), None when it is none."""
    try:
        return float(detail) if detail else None
    except ValueError:
        return None
