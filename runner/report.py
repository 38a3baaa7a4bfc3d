"""The results report: an A/B gallery page (`report.html`) and text, JSON and CSV tables.

Compute, then render: `load` reads what a run left in its output folder (so a report works after a
crash, or while another run is still writing), and each renderer draws the same `RunResults`.
The page is one self-contained file: its CSS, script and data are inlined, and the videos are
referenced by relative paths, so the folder can be zipped and opened anywhere from file://.
"""

from __future__ import annotations

import csv
import dataclasses
import html
import json
import math
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import partial
from importlib import resources
from pathlib import Path, PurePosixPath
from typing import Any, TextIO

from runner import files
from runner import results as results_files
from runner.errors import StateError, UsageError, one_line
from runner.render import (ESTIMATED_PART, dollars, figure, plural, skipped_line, spent_amount,
                           videos_gone)
from runner.state import JOURNAL_NAME

REPORT_FILE = "report.html"
DONE = "downloaded"
FAILED = "failed"
FAILED_FOR_NOW = "failed for now"
FORMATS = ("html", "text", "json", "csv")

# The order axes are offered in; a run's template vars come right after the prompt.
AXIS_ORDER = ("prompt", "vibe", "lighting", "color_theme", "style_set", "model", "resolution",
              "duration", "aspect_ratio", "start_frame", "n")
AXIS_LABELS = {"color_theme": "color theme", "style_set": "style set",
               "aspect_ratio": "aspect ratio", "start_frame": "start frame", "n": "sample"}
# What the page needs of each record; the rest stays in results.jsonl.
PAGE_FIELDS = ("key", "short_key", "index", "state", "prompt", "axes", "styles",
               "estimated_cost_usd", "cost_usd", "spent_usd", "spent_estimated_usd", "reason",
               "file", "poster", "render_seconds", "attempts", "completed_at")
CSV_AXIS_COLUMNS = {"prompt": "prompt_id", "n": "sample"}
CSV_HEAD = ("index", "key", "short_key", "state", "planned", "prompt")
CSV_TAIL = ("styles", "cost_usd", "spent_usd", "spent_estimated_usd", "estimated_cost_usd",
            "render_seconds", "attempts", "file", "poster", "reason", "generation_id",
            "submitted_at", "completed_at", "downloaded_at", "video_gone", "error_kind",
            "failed_for_now")
# The column of a var named like one of the others (a folder of an earlier version, whose manifests
# could name one so): `vars.` and its name, which no column and no var (letters, digits, _) has.
CSV_VAR_PREFIX = "vars."
_CSV_TAKEN = frozenset({*CSV_HEAD, *CSV_TAIL, *CSV_AXIS_COLUMNS.values()})
# A spreadsheet takes a cell that starts so for a formula: such text gets a leading quote.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")

# The kinds of the values a report reads, each with what it is called in a refusal.
_TEXT = ("a text", lambda value: isinstance(value, str))
_WHOLE = ("a whole number", lambda value: type(value) is int)
_NUMBER = ("a number below 10^15",  # any sum of them stays a number JSON has, never Infinity
           lambda value: type(value) in (int, float) and abs(value) < 1e15)
_YES_NO = ("true or false", lambda value: type(value) is bool)
_TEXTS = ("a list of texts",
          lambda value: type(value) is list and all(isinstance(item, str) for item in value))
_COUNTS = ("an object of whole numbers",
           lambda value: type(value) is dict and all(type(item) is int for item in value.values()))
# What the reports read of a record of results.jsonl and of summary.json, when the folder has no
# journal, and the kind each must be of: null, or missing from results written before the
# field was there, stands for none.
RECORD_FIELDS: dict[str, tuple[str, Callable[[Any], bool]]] = {
    "key": _TEXT, "short_key": _TEXT, "index": _WHOLE, "state": _TEXT, "planned": _YES_NO,
    "prompt": _TEXT, "styles": _TEXTS, "generation_id": _TEXT, "estimated_cost_usd": _NUMBER,
    "cost_usd": _NUMBER, "spent_usd": _NUMBER, "spent_estimated_usd": _NUMBER, "reason": _TEXT,
    "failed_for_now": _YES_NO,
    "file": _TEXT, "poster": _TEXT, "submitted_at": _TEXT, "completed_at": _TEXT,
    "downloaded_at": _TEXT, "render_seconds": _NUMBER, "attempts": _WHOLE, "start_frame_sha256": _TEXT}
SUMMARY_FIELDS: dict[str, tuple[str, Callable[[Any], bool]]] = {
    "name": _TEXT, "manifest": _TEXT, "started_at": _TEXT, "ended_at": _TEXT,
    "duration_seconds": _NUMBER, "exit_code": _WHOLE, "exit_reason": _TEXT, "spent_usd": _NUMBER,
    "spent_estimated_usd": _NUMBER, "estimated_usd": _NUMBER, "skipped_invalid_by_rule": _COUNTS}


@dataclass(frozen=True, slots=True)
class Totals:
    """The figures a report leads with: the jobs of the current plan by state (`failed`, every
    failed job, as summary.json and `status` count them, and `failed_for_now`, the part of them
    the next run takes up by itself; the rest wait for --retry-failed), the jobs kept in the
    folder that the current plan no longer has (`unplanned`: the manifest edited, or a start
    frame's file changed since), and the folder's money: what it spent, the part of that booked
    at estimates (creates whose answer was lost) and what the jobs are estimated to cost."""

    jobs: int
    done: int
    failed: int
    failed_for_now: int
    unfinished: int
    unplanned: int
    spent_usd: float
    spent_estimated_usd: float
    estimated_usd: float

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(slots=True)
class Axes:
    """The axes of some records, gathered a record at a time (`add`): each in the order it was
    first found, with how many of the records have it and up to two of the values (as JSON) it
    takes, all it takes to tell whether it takes more than one."""

    records: int = 0
    found: dict[str, int] = dataclasses.field(default_factory=dict)
    values: dict[str, set[str]] = dataclasses.field(default_factory=dict)

    def add(self, axes: dict[str, Any]) -> None:
        self.records += 1
        for axis, value in axes.items():
            self.found[axis] = self.found.get(axis, 0) + 1
            taken = self.values.setdefault(axis, set())
            if len(taken) < 2:
                taken.add(json.dumps(value))

    @property
    def ordered(self) -> list[str]:
        """Every axis found: known axes in their order, vars after prompt."""
        known = [axis for axis in AXIS_ORDER if axis in self.found]
        extra = [axis for axis in self.found if axis not in AXIS_ORDER]
        return known[:1] + extra + known[1:] if "prompt" in known else extra + known

    @property
    def varying(self) -> list[str]:
        """The axes that take more than one value (null in a record without it): the ones worth
        a column."""
        return [axis for axis in self.ordered
                if len(self.values[axis] | ({"null"} if self.found[axis] < self.records else set())) > 1]


@dataclass(slots=True)
class Shape:
    """What the reports read of a folder's records as a whole, gathered as they are read, once
    (`add`), so that records read from the journal a row at a time need never be held: the axes
    of them all and of the current plan's, the current plan's jobs by state (as shown), and the
    start frames' contents (`frame_changed`). The totals' sums, where there is no summary, are
    taken from records held (`RunResults.held`)."""

    every: Axes = dataclasses.field(default_factory=Axes)
    current: Axes = dataclasses.field(default_factory=Axes)
    states: Counter[str] = dataclasses.field(default_factory=Counter)  # the current plan's, shown
    frames: dict[str, str] = dataclasses.field(default_factory=dict)  # a start frame's content now
    earlier_frames: list[tuple[str, str, str]] = dataclasses.field(default_factory=list)

    @classmethod
    def of(cls, records: Iterable[dict[str, Any]]) -> Shape:
        shape = cls()
        for record in records:
            shape.add(record)
        return shape

    def add(self, record: dict[str, Any]) -> None:
        axes = record.get("axes") or {}
        self.every.add(axes)
        content = record.get("start_frame_sha256")
        if planned(record):
            self.current.add(axes)
            self.states[shown_state(record)] += 1
            if content:
                self.frames[json.dumps(axes.get("start_frame"))] = content
        elif content:
            self.earlier_frames.append((record["key"], json.dumps(axes.get("start_frame")), content))

    @property
    def frame_changed(self) -> dict[str, tuple[str, str]]:
        """The jobs made from an earlier content of their start frame's file, by key, each with the
        SHA-256 of that content and of the one the current plan's jobs of that frame are made from
        (an image re-saved since, as `Journal.changed_frames` tells before a run). Kept in the
        folder, no longer planned, they show the same frame's name as the new ones, and the
        contents tell apart those of a file changed more than once."""
        return {key: (content, self.frames[frame]) for key, frame, content in self.earlier_frames
                if self.frames.get(frame, content) != content}


@dataclass(frozen=True, slots=True)
class RunResults:
    """One output folder's records (in plan order), its summary (empty if the run left none),
    the files of its downloaded jobs found gone from it (`video_gone`), looked for once, when
    the results were read, for the results files, the page and the tables to share, and the
    records' `shape`. The records are gone through once a pass: held (`held`), or read anew
    from the journal each time, a row at a time (`results.write_results`)."""

    out_dir: Path
    summary: dict[str, Any]
    records: Iterable[dict[str, Any]]
    missing: frozenset[str]
    shape: Shape

    @classmethod
    def held(cls, out_dir: Path, summary: dict[str, Any], records: tuple[dict[str, Any], ...],
             missing: frozenset[str]) -> RunResults:
        """Results whose records are all held, their shape taken from them."""
        return cls(out_dir, summary, records, missing, Shape.of(records))

    @property
    def name(self) -> str:
        return str(self.summary.get("name") or self.out_dir.resolve().name)

    def gone(self, record: dict[str, Any]) -> bool:
        """Whether the job's video was found gone from the folder (deleted or moved by hand)."""
        return record.get("state") == DONE and record.get("file") in self.missing

    @property
    def axes(self) -> list[str]:
        """Every axis key present in the records: known axes in their order, vars after prompt."""
        return self.shape.every.ordered

    @property
    def varying_axes(self) -> list[str]:
        """The axes that take more than one value in this run: the ones worth a column."""
        return self.shape.every.varying

    @property
    def totals(self) -> Totals:
        shape = self.shape
        spent = self.summary.get("spent_usd")
        at_estimates = self.summary.get("spent_estimated_usd")
        estimated = self.summary.get("estimated_usd")
        jobs = shape.current.records
        done, for_good, for_now = (shape.states[state] for state in (DONE, FAILED, FAILED_FOR_NOW))
        failed = for_good + for_now
        return Totals(
            jobs=jobs, done=done, failed=failed, failed_for_now=for_now, unfinished=jobs - done - failed,
            unplanned=shape.every.records - jobs,
            spent_usd=round(float(spent if spent is not None else _total(self.records, "spent_usd")), 2),
            spent_estimated_usd=round(float(at_estimates if at_estimates is not None
                                            else _total(self.records, "spent_estimated_usd")), 2),
            estimated_usd=round(float(estimated if estimated is not None
                                      else estimate(self.records)), 2))


def _total(records: Iterable[dict[str, Any]], field: str) -> float:
    return sum(float(record.get(field) or 0) for record in records)


def planned(record: dict[str, Any]) -> bool:
    """Whether the job is in the current plan, not one kept from an earlier version of the
    manifest (results written before the field was there hold only planned jobs)."""
    return record.get("planned", True) is not False


def estimate(records: Iterable[dict[str, Any]]) -> float:
    """What the jobs are estimated to cost: those of the current plan, and those the manifest no
    longer has unless they ended unpaid (refused at create, say), which will never cost a cent."""
    return _total((record for record in records
                   if planned(record) or record.get("state") != FAILED or record.get("spent_usd")),
                  "estimated_cost_usd")


def load(out_dir: Path) -> RunResults:
    """The results of the run in `out_dir`, in plan order.

    Read from the folder's journal, the source of truth, so a report works after a crash; a
    folder that was copied without its journal is read from its results files.
    A folder with neither is the user's mistake (UsageError, exit 2); results that cannot be
    read (not JSON, or a field the reports read not of its kind) are a damaged folder
    (StateError, exit 4), named with the line and the field.
    """
    if (out_dir / JOURNAL_NAME).is_file():
        return results_files.collect(out_dir, begun=True)
    path = out_dir / results_files.RESULTS
    if not path.is_file():
        raise UsageError(f"{out_dir}: no {JOURNAL_NAME} or {results_files.RESULTS} here; "
                         "is this a run's output folder?")
    records = [_read_record(path, number, line)
               for number, line in enumerate(_read_text(path).split("\n"), 1) if line.strip()]
    summary: dict[str, Any] = {}
    summary_path = out_dir / results_files.SUMMARY
    if summary_path.is_file():
        summary = _read_json(summary_path, _read_text(summary_path))
        if not isinstance(summary, dict):
            raise StateError(f"{summary_path}: not a run's summary (no JSON object)")
        _check_fields(str(summary_path), summary, SUMMARY_FIELDS)
    missing = frozenset(record["file"] for record in records if video_gone(out_dir, record))
    return RunResults.held(out_dir, summary, tuple(records), missing)


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise StateError(f"{path}: not UTF-8 text (at byte {exc.start + 1})") from exc
    except OSError as exc:
        raise StateError(f"{path}: cannot be read: {exc.strerror}") from exc


def _read_record(path: Path, number: int, line: str) -> dict[str, Any]:
    record = _read_json(path, line, number)
    if not isinstance(record, dict) or not isinstance(record.get("axes"), dict):
        raise StateError(f"{path}:{number}: not a job record (no axes)")
    _check_fields(f"{path}:{number}", record, RECORD_FIELDS)
    return record


def _read_json(path: Path, text: str, line: int | None = None) -> Any:
    """`text`, the file `path` or its line `line`, read as JSON as strictly as the page's script
    reads it: NaN, Infinity and numbers past a float's range (1e400) are not JSON."""
    place = str(path) if line is None else f"{path}:{line}"
    try:
        return json.loads(text, parse_constant=_no_number, parse_float=_finite)
    except json.JSONDecodeError as exc:
        at = exc.colno if line is not None else f"{exc.lineno}:{exc.colno}"
        raise StateError(f"{place}:{at}: not JSON: {exc.msg}") from exc
    except _OutOfRange as exc:
        raise StateError(f"{place}: not JSON: {exc}") from exc
    except ValueError as exc:  # what Python refuses to read as a whole number
        raise StateError(f"{place}: not JSON: a number of more than 4,300 digits") from exc
    except RecursionError as exc:  # arrays nested a thousand deep
        raise StateError(f"{place}: not JSON: nested too deep") from exc


class _OutOfRange(ValueError):
    """A number JSON has no room for, in a results file."""


def _no_number(text: str) -> float:
    raise _OutOfRange(f"{text} is not a number JSON has")


def _finite(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise _OutOfRange(f"{text} is past the range of a number")
    return number


def _check_fields(place: str, value: dict[str, Any],
                  kinds: dict[str, tuple[str, Callable[[Any], bool]]]) -> None:
    """Refuse `value`, read at `place`, when a field a report reads is not of its kind:
    `results.jsonl:3: spent_usd is "abc", not a number below 10^15`."""
    for field, (kind, fits) in kinds.items():
        found = value.get(field)
        if found is not None and not fits(found):
            raise StateError(f"{place}: {field} is {json.dumps(found):.40}, not {kind}")


def write_report(out_dir: Path, results: RunResults | None = None) -> Path:
    """Write `out_dir/report.html` from `results` (by default, the folder's) and return its path.

    Written whole or not at all, so a reader never sees half a page.
    """
    results = results if results is not None else load(out_dir)
    target = out_dir / REPORT_FILE
    try:
        with files.writing(target) as stream:
            render_html(results, stream)
    except OSError as exc:
        raise StateError(f"{target}: cannot write the report: {exc.strerror}") from exc
    return target


def render(results: RunResults, fmt: str, stream: TextIO) -> None:
    """Draw `results` on `stream` as text, json or csv."""
    renderers: dict[str, Callable[[RunResults, TextIO], None]] = {
        "text": render_text, "json": render_json, "csv": render_csv}
    if fmt not in renderers:
        raise UsageError(f"unknown report format {fmt!r} (use one of {', '.join(renderers)})")
    renderers[fmt](results, stream)


def render_html(results: RunResults, stream: TextIO) -> None:
    """The gallery page on `stream`: the template with its CSS, script and the run's data inlined
    (`script_json_parts`, its jobs written as they are made), and in its header the cells
    on_invalid: skip left out of the plan, which the grid has no place for."""
    assets = resources.files("runner") / "assets"
    skipped = skipped_line(results.summary)
    parts = {
        "TITLE": html.escape(f"{results.name} · Hailuo Batch report"),
        "SKIPPED": f'<p id="run-skipped" class="muted">{html.escape(skipped)}</p>' if skipped else "",
        "CSS": (assets / "report.css").read_text(encoding="utf-8"),
        "JS": (assets / "report.js").read_text(encoding="utf-8"),
    }
    template = (assets / "report.html").read_text(encoding="utf-8")
    # The template's text and its placeholders' names, by turns.
    for number, piece in enumerate(re.split(r"\{\{(TITLE|SKIPPED|CSS|JS|DATA)\}\}", template)):
        if number % 2 == 0:
            stream.write(piece)
        elif piece == "DATA":
            stream.writelines(script_json_parts(page_data(results)))
        else:
            stream.write(parts[piece])


def script_json(value: Any) -> str:
    """JSON safe inside a <script> element: `<`, `>` and `&` escaped, so no text can close it."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def script_json_parts(document: dict[str, Any]) -> Iterator[str]:
    """`script_json(document)` a part at a time: a value of it that is an iterator (the page's
    jobs) is written as a list, an item at a time, never held whole."""
    yield "{"
    for number, (name, value) in enumerate(document.items()):
        yield f"{',' if number else ''}{script_json(name)}:"
        if isinstance(value, Iterator):
            yield "["
            for count, item in enumerate(value):
                yield f"{',' if count else ''}{script_json(item)}"
            yield "]"
        else:
            yield script_json(value)
    yield "}"


def page_data(results: RunResults) -> dict[str, Any]:
    """What the page shows: the run, its totals, the axes it offers, one entry per job (an
    iterator of them, made as the page is written: `page_job`), the jobs made from a start frame
    whose file changed since (`frame_changed`, by key, with the SHA-256 of the content each was
    made from and of the content now: few, where a field of every job would weigh on a page of
    100,000), and the words (`estimated_part`) its money spent is told with,
    of its part at estimates."""
    summary = results.summary
    run = {field: summary.get(field) for field in
           ("manifest", "started_at", "ended_at", "duration_seconds", "exit_code", "exit_reason")}
    run.update(name=results.name, out=str(results.out_dir.resolve()))
    # the grid compares the current plan's jobs alone; those it no longer has (the manifest
    # edited, or a start frame's file changed since) are shown apart, so their axes name them but
    # offer no row or column
    current = results.shape.current
    axes = [{"key": axis, "label": axis_label(axis)} for axis in current.ordered]
    labels = {axis: axis_label(axis) for axis in results.axes}
    return {"run": run, "totals": results.totals.as_dict(), "axes": axes, "labels": labels,
            "varying": current.varying, "jobs": map(partial(page_job, results), results.records),
            "frame_changed": results.shape.frame_changed, "estimated_part": ESTIMATED_PART}


def page_job(results: RunResults, record: dict[str, Any]) -> dict[str, Any]:
    """A job's entry in the page's data, of its record in `results`."""
    job = {field: record.get(field) for field in PAGE_FIELDS}
    job["planned"] = planned(record)
    job["file"] = relative_path(record.get("file"))
    job["poster"] = relative_path(record.get("poster"))
    job["missing"] = results.gone(record)
    job["shown_cost_usd"], job["cost_is_estimate"] = shown_cost(record)
    job["shown_state"] = shown_state(record)  # its card's badge
    job["reason"] = shown_reason(record)  # what its card says in place of its video
    return job


def axis_label(axis: str) -> str:
    return AXIS_LABELS.get(axis, axis)


def relative_path(value: Any) -> str | None:
    """A path inside the output folder, or None: the page never points outside its folder."""
    if not isinstance(value, str) or not value:
        return None
    path = PurePosixPath(value.replace("\\", "/"))
    if path.is_absolute() or ".." in path.parts:
        return None
    return path.as_posix()


def render_json(results: RunResults, stream: TextIO) -> None:
    """The run, its totals, its axes and every record, as one JSON document."""
    document = {"run": {"name": results.name, **results.summary}, "totals": results.totals.as_dict(),
                "axes": results.axes, "jobs": list(results.records)}
    json.dump(document, stream, indent=2, ensure_ascii=False)
    stream.write("\n")


def video_gone(out_dir: Path, record: dict[str, Any]) -> bool:
    """Whether a downloaded job's video is gone from the folder `out_dir` (deleted or moved by
    hand), looked for on disk; a failed job, which may keep the file an earlier download left,
    tells why it failed. The reports ask their results (`RunResults.gone`), which looked once."""
    file = relative_path(record.get("file"))
    return record.get("state") == DONE and file is not None and files.gone(out_dir, file)


def render_csv(results: RunResults, stream: TextIO) -> None:
    """One row per job; each axis is a column (`csv_column`), styles joined with `; `, then
    `video_gone`, true for a downloaded video gone from the folder, and a failed job's
    `error_kind` and `failed_for_now` (columns added later come last, so the earlier ones keep
    their places). Text that a spreadsheet would run as a formula (a prompt starting with `=`)
    is quoted."""
    axes = results.axes
    writer = csv.writer(stream, lineterminator="\n")
    writer.writerow([*CSV_HEAD, *map(csv_column, axes), *CSV_TAIL])
    for record in results.records:
        values = {field: record.get(field) for field in CSV_TAIL}
        values["styles"] = "; ".join(record.get("styles") or [])
        values["video_gone"] = results.gone(record)
        writer.writerow([*(_cell(record.get(field)) for field in CSV_HEAD),
                         *(_cell(record["axes"].get(axis)) for axis in axes),
                         *(_cell(values[field]) for field in CSV_TAIL)])


def csv_column(axis: str) -> str:
    """The csv column of an axis: its name (`prompt` as `prompt_id`, `n` as `sample`), or, for
    a var named like another column, CSV_VAR_PREFIX and its name, so each column has one name."""
    if axis in CSV_AXIS_COLUMNS:
        return CSV_AXIS_COLUMNS[axis]
    return CSV_VAR_PREFIX + axis if axis in _CSV_TAKEN else axis


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def render_text(results: RunResults, stream: TextIO) -> None:
    """A summary line, the totals (of the failed jobs, those failed for now, if any; the
    downloaded videos gone from the folder), then one line per job with the axes that vary in
    this run."""
    totals = results.totals
    summary = results.summary
    header = f"{results.name}  {results.out_dir}"
    if summary.get("exit_code") is not None:
        reason = summary.get("exit_reason")
        header += f"  (exit {summary['exit_code']}{': ' + reason if reason else ''})"
    stream.write(_text(header) + "\n")
    for_now = f" ({figure(totals.failed_for_now)} of them for now)" if totals.failed_for_now else ""
    earlier = f"; {plural(totals.unplanned, 'job')} no longer planned" if totals.unplanned else ""
    stream.write(f"{plural(totals.jobs, 'job')}: {figure(totals.done)} done, {figure(totals.failed)} "
                 f"failed{for_now}, {figure(totals.unfinished)} unfinished{earlier}; spent "
                 f"{spent_amount(totals.as_dict())} of {dollars(totals.estimated_usd)} estimated\n")
    gone = list(map(results.gone, results.records))
    if any(gone):
        stream.write(videos_gone(sum(gone)) + "\n")
    stream.write("\n")
    axes = results.varying_axes
    rows = [["#", "key", "state", "cost", "render", *map(axis_label, axes), "file / reason"]]
    for record, missing in zip(results.records, gone):
        rows.append([str(record.get("index", "")), str(record.get("short_key") or ""),
                     ("video gone" if missing else shown_state(record))
                     + ("" if planned(record) else " (no longer planned)"),
                     _cost(record),
                     _seconds(record.get("render_seconds")),
                     *(_text(record["axes"].get(axis)) for axis in axes),
                     _text(record.get("file") if record.get("state") == DONE
                           else shown_reason(record))])
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]) - 1)]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths)]
        stream.write("  ".join([*cells, row[-1]]).rstrip() + "\n")


def shown_cost(record: dict[str, Any]) -> tuple[float | None, bool]:
    """The cost a job is shown with, and whether it is an estimate ("est."): what it spent
    (generations given up on included), its estimate standing in while the API has not named
    its price (see results.record). A job with no generation (not sent yet, put back unsent,
    refused at create) was billed nothing for it: it shows what it spent, `$0.00` most often,
    never its estimate, which `shown_reason` tells as what it would cost."""
    spent = record.get("spent_usd")
    if not record.get("generation_id"):
        return float(spent or 0), bool(record.get("spent_estimated_usd"))
    return spent or record.get("estimated_cost_usd"), not record.get("cost_usd")


def shown_state(record: dict[str, Any]) -> str:
    """A job's state as its card's badge and its line of the text report say it: a failed job
    the next run takes up again by itself is `failed for now`, apart from one failed for good."""
    return FAILED_FOR_NOW if record.get("failed_for_now") else str(record.get("state") or "")


def shown_reason(record: dict[str, Any]) -> str | None:
    """What a job's card and its line of the text report say in place of its video: why it
    failed (and, failed for now, what the next run does with it), that it was not sent yet
    (and what it would cost), or that it is not finished yet; None for a downloaded job."""
    state = record.get("state")
    if state == DONE:
        return None
    if state == "pending":
        estimate = record.get("estimated_cost_usd")
        cost = "" if estimate is None else f" (estimated {dollars(float(estimate))} to make)"
        return f"not sent yet{cost}"
    reason = record.get("reason") or "not finished yet"
    if not record.get("failed_for_now"):
        return reason
    # one with a generation timed out or broke off in download: its generation is polled again
    if record.get("generation_id"):
        return f"{reason}; {FAILED_FOR_NOW}: paid, the next run downloads it (nothing is paid again)"
    return f"{reason}; {FAILED_FOR_NOW}: the next run sends it again"


def _cost(record: dict[str, Any]) -> str:
    amount, at_estimate = shown_cost(record)
    if amount is None:
        return "-"
    return f"{'est. ' if at_estimate else ''}${float(amount):.2f}"


def _seconds(value: Any) -> str:
    return "-" if value is None else f"{float(value):.0f}s"


def _text(value: Any) -> str:
    """A value as one line of text, "-" for none."""
    return one_line("-" if value is None else str(value))
