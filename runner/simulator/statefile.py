"""The simulated account kept across processes, in the file `SimSettings.state_path` names.

The file is JSON lines. A snapshot comes first: a header (the account: user id, username and
balance; the clock: the simulated instant, the real time, the time scale and the epoch
`createdAt` counts from), then one line per generation and one per uploaded start frame. The
snapshot is written whole beside the file and renamed over it, never leaving half a file, when
the simulator starts and when it stops. In between, each accepted create, upload and delete is
appended as one line, flushed to the operating system before the call is answered, so a process
killed at any moment (SIGKILL too) keeps every change a client was told about; a power cut may
lose the last ones, since a disk sync per call would slow every create. A last line cut short by
a kill belongs to a call that got no answer and is dropped when the file is read. Appending keeps
a create O(1), where rewriting the whole account at each create would cost O(n) per create.

Time. The simulated clock starts at 0 in each process; the file keeps the latest simulated
instant it knows of with the real time it was written, and a process reading it carries the clock
on from there plus the real time the simulator was stopped, at the time scale of the process that
wrote it. So renders go on while the simulator is stopped, as the live API's go on while a client
is down: an unfinished render keeps the real time it had left when it was saved, and is finished
at load if that time has passed. A generation's `createdAt` is the real time its create was
accepted (`made_at`), kept in the file, so it shows the same after a restart and at any time
scale is what a client that looks for its creates by time compares with the real time it sent
them. The epoch is kept as well, for the times read off the simulated clock (an upload's expiry,
and `createdAt` of the generations a file written before `made_at` was kept holds).

The key is not in the file: it is derived from the user id (`settings.account_key`). One
simulator at a time uses a state file: a lock beside it (`.NAME.lock`) is taken before the file
is read and given back when the simulator stops (or dies).

Every field of every line is checked for its kind and range when the file is read (a clip this
simulator ships, a time a date can show, whole credits), so that a file edited by hand or come
from elsewhere is refused at start, naming its line and field, where the simulator would answer
with errors at each call that meets it. The checks are a test of type and a comparison or two a
field, about a sixth on top of parsing each line's JSON (a file of 100,000 lines, 66 MB, is read
in 1.9 s, 0.25 s of it the checks).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from runner import files
from runner.errors import HailuoError, StateError, UsageError
from runner.lock import FolderLock, file_in_the_way
from runner.simulator.limits import SimClock
from runner.simulator.render import COMPLETE, FAILED, PENDING, Generation

VERSION = 1
_KINDS = frozenset({"generation", "upload", "deleted"})
_FIELDS = tuple(f.name for f in dataclasses.fields(Generation))
_REQUIRED = frozenset(f.name for f in dataclasses.fields(Generation) if f.default is dataclasses.MISSING)
_NUMBERS = (int, float)
# Seconds (since 1970, or simulated) beyond which no time is one this file could hold: the year
# 5138, early enough that the epoch plus a simulated instant is still a date `createdAt` can show.
_LATEST = 1e11

_Check = tuple[Callable[[Any], bool], str]  # a test of a field's value, and what the value must be


def _text(value: Any) -> bool:
    return type(value) is str and value != ""


def _time(value: Any) -> bool:
    """Seconds from 0 to _LATEST (NaN and infinity compare false)."""
    return type(value) in _NUMBERS and 0 <= value <= _LATEST


def _span(value: Any) -> bool:
    return type(value) in _NUMBERS and 0 < value <= _LATEST


def _credits(value: Any) -> bool:
    return type(value) is int and value >= 0


def _flag(value: Any) -> bool:
    return type(value) is bool


def _or_none(test: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda value: value is None or test(value)


def _request(value: Any) -> bool:
    """A create's body, as far as the simulator reads it back: its model and its parameters'
    prompt and size (0 by 0 for a start frame's), public or not."""
    if type(value) is not dict:
        return False
    params = value.get("parameters")
    return (_text(value.get("model")) and type(value.get("public", False)) is bool
            and type(params) is dict and type(params.get("prompt")) is str
            and _credits(params.get("width")) and _credits(params.get("height")))


_TIME = "a time in seconds since 1970, from 0 to 1e11"
_INSTANT = "a simulated instant in seconds, from 0 to 1e11"
_BALANCE: _Check = (_or_none(_credits), "a whole number of credits, 0 or more, or null")
_CLOCK: dict[str, _Check] = {"at": (_time, _INSTANT), "wall": (_time, _TIME)}
_HEADER: dict[str, _Check] = {
    "version": (lambda value: type(value) is int and value == VERSION, str(VERSION)),
    "user_id": (_text, "a user id"), "username": (lambda value: type(value) is str, "a name"),
    "balance": _BALANCE, "epoch": (_time, _TIME), "scale": (_span, "a time scale more than 0"),
    **_CLOCK}
_CLOCK_FIELDS = frozenset(_CLOCK)
_LINES: dict[str, dict[str, _Check]] = {  # each line after the header, by its kind
    "generation": {"generation": (lambda value: type(value) is dict, "an object"),
                   "balance": _BALANCE, **_CLOCK},
    "upload": {"upload": (_text, "an image id"), **_CLOCK},
    "deleted": {"deleted": (_text, "a generation id"), **_CLOCK}}
_GENERATION: dict[str, _Check] = {
    "id": (_text, "a generation id"),
    "request": (_request, "a create's body (model, parameters with prompt, width and height)"),
    "created_at": (_time, _INSTANT), "render_seconds": (_span, "a number of seconds more than 0"),
    "outcome": (lambda value: value in (COMPLETE, FAILED), f"{COMPLETE} or {FAILED}"),
    "cost_credits": (_credits, "a whole number of credits, 0 or more"),
    "image_id": (_text, "an image id"), "moderated": (_flag, "true or false"),
    "status": (lambda value: value in (PENDING, COMPLETE, FAILED), f"{PENDING}, {COMPLETE} or {FAILED}"),
    "started_at": (_or_none(_time), _INSTANT + ", or null"),
    "finished_at": (_or_none(_time), _INSTANT + ", or null"),
    "deleted": (_flag, "true or false"),
    "made_at": (_or_none(_time), _TIME + ", or null")}


@dataclass(slots=True)
class Account:
    """What a state file holds: the account as of simulated instant `at`, real time `wall`."""

    user_id: str
    username: str
    balance: int | None
    epoch: float
    scale: float
    at: float
    wall: float
    generations: dict[str, Generation] = field(default_factory=dict)
    uploads: set[str] = field(default_factory=set)

    def resume_at(self, wall: float) -> float:
        """The simulated instant it is at real time `wall`: time went on while stopped."""
        return self.at + max(0.0, wall - self.wall) * self.scale

    def records(self) -> Iterator[dict[str, Any]]:
        """The snapshot's lines: the header, then each generation (oldest first) and upload."""
        yield {"version": VERSION, "user_id": self.user_id, "username": self.username,
               "balance": self.balance, "epoch": self.epoch, "scale": self.scale,
               "at": self.at, "wall": self.wall}
        for generation in self.generations.values():
            yield {"generation": _fields(generation)}
        for image_id in sorted(self.uploads):
            yield {"upload": image_id}

    def apply(self, record: Any, checks: Mapping[str, _Check]) -> None:
        """One line after the header: a generation (new, or as saved; its fields as `checks`
        says), an upload, a delete of a generation of a line before; an appended one with the
        clock as of then."""
        if type(record) is not dict:
            raise ValueError(f"{_shown(record)} is not an object")
        kinds = _KINDS & record.keys()
        if len(kinds) != 1:
            raise ValueError(f"expected one of {', '.join(sorted(_KINDS))}")
        kind = next(iter(kinds))
        _check(record, _LINES[kind], required=_CLOCK_FIELDS if _CLOCK_FIELDS & record.keys() else frozenset())
        if "at" in record:
            self.at, self.wall = record["at"], record["wall"]
        if "balance" in record:
            self.balance = record["balance"]
        if kind == "generation":
            _check(record[kind], checks, required=_REQUIRED, within="generation.")
            made = Generation(**record[kind])
            self.generations[made.id] = made
        elif kind == "upload":
            self.uploads.add(record[kind])
        elif (deleted := self.generations.get(record[kind])) is not None:
            deleted.deleted = True
        else:
            raise ValueError(f"deleted: {_shown(record[kind])} is not a generation of a line before")


def _fields(generation: Generation) -> dict[str, Any]:
    return {name: getattr(generation, name) for name in _FIELDS}


def _check(record: dict[str, Any], checks: Mapping[str, _Check], *, required: frozenset[str],
           within: str = "") -> None:
    """Each field of `record` passing its check, none unknown, none of `required` missing; the
    messages name a field after `within`, the record it is in."""
    for name, value in record.items():
        check = checks.get(name)
        if check is None:
            raise ValueError(f"{within}{name}: not a field of this line")
        if not check[0](value):
            raise ValueError(f"{within}{name}: {_shown(value)} is not {check[1]}")
    if not record.keys() >= required:
        raise ValueError(f"{within}{min(required - record.keys())}: missing")


def _shown(value: Any) -> str:
    """A field's value as the file writes it, cut to a few words."""
    text = json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."


def read(path: Path, *, clips: int) -> Account | None:
    """The account kept in `path`, its generations each showing one of `clips` clips; None when
    there is no such file yet."""
    try:
        text = path.read_text("utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: cannot read the simulator state: {exc}") from exc
    lines = text.split("\n")[:-1]  # whole lines only: a last one without its newline was cut short
    if not lines:
        raise UsageError(f"{path}: not a simulator state file: it is empty")
    with _line(path, 1):
        header = json.loads(lines[0])
        if header.get("version") != VERSION:
            raise ValueError(f"version {header.get('version')!r}, this simulator reads {VERSION}")
        _check(header, _HEADER, required=frozenset(_HEADER))
        del header["version"]
        account = Account(**header)
    checks = {**_GENERATION, "clip": (lambda value: type(value) is int and 0 <= value < clips,
                                      f"a clip number from 0 to {clips - 1}")}
    for number, line in enumerate(lines[1:], start=2):
        with _line(path, number):
            account.apply(json.loads(line), checks)
    return account


def lock(path: Path) -> FolderLock:
    """The state file kept for this simulator alone: two appending to it would garble it."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _unwritable(path, exc) from exc
    return FolderLock.take(path.with_name(lock_name(path.name)), what=f"simulator state {path}",
                           user="simulator", hint="stop it first, or give this one a state file of its own")


def lock_name(name: str) -> str:
    """The name of the lock beside the state file `name`."""
    return f".{name}.lock"


def _unwritable(path: Path, exc: OSError) -> HailuoError:
    """A state file the disk refuses (full, read-only): the run cannot go on, as with its journal;
    a path through a file is the mistake of the path given, told as such."""
    problem = file_in_the_way(path)
    if problem is not None:
        return UsageError(f"{path}: cannot write the simulator state: {problem}")
    return StateError(f"{path}: cannot write the simulator state: {exc.strerror or exc}")


@contextmanager
def _line(path: Path, number: int) -> Iterator[None]:
    """Whatever is wrong with line `number` of the state file, told as where it is."""
    try:
        yield
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise UsageError(f"{path}: line {number}: not a simulator state file ({exc}); "
                         "move it away to start a fresh account") from exc


class StateFile:
    """The state file of a running simulator: a snapshot, then one line per change."""

    def __init__(self, path: Path, clock: SimClock, held: FolderLock) -> None:
        self.path = path
        self._clock = clock
        self._held = held
        self._log: TextIO | None = None

    @classmethod
    def open(cls, path: Path, clock: SimClock, account: Account, held: FolderLock) -> StateFile:
        """Write `account` in place of the file, then append each change after it; `held` (the
        file's lock) is given back by `close`."""
        kept = cls(path, clock, held)
        kept._write(account)
        try:
            # Open for the simulator's whole life, one flushed line a change; `close` ends it.
            kept._log = open(path, "a", encoding="utf-8", buffering=1)  # noqa: SIM115
        except OSError as exc:
            raise _unwritable(path, exc) from exc
        return kept

    def created(self, generation: Generation, *, balance: int | None) -> None:
        self._append({"generation": _fields(generation), "balance": balance})

    def uploaded(self, image_id: str) -> None:
        self._append({"upload": image_id})

    def deleted(self, generation_id: str) -> None:
        self._append({"deleted": generation_id})

    def close(self, account: Account) -> None:
        """Stop appending, leave the account as one snapshot, and give the file's lock back."""
        if self._log is not None:
            self._log.close()
            self._log = None
        try:
            self._write(account)
        finally:
            self._held.release()

    def _append(self, record: dict[str, Any]) -> None:
        if self._log is None:
            raise RuntimeError(f"{self.path} is closed")
        line = {"at": self._clock.now(), "wall": self._clock.wall(), **record}
        self._log.write(json.dumps(line) + "\n")

    def _write(self, account: Account) -> None:
        text = "".join(json.dumps(record) + "\n" for record in account.records())
        try:
            files.write_text(self.path, text)
        except OSError as exc:
            raise _unwritable(self.path, exc) from exc
