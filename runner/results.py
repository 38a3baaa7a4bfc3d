"""The results files, computed from the journal alone so they can be written after any crash.

    results.jsonl   one record per job (the gallery and `hailuo-batch report` read these)
    errors.jsonl    the failed records
    results.csv     the records flattened, axes as columns
    summary.json    counts, money (the folder's, the part of it at estimates, and its last
                    run's), durations and the exit code of the last run, the cells its plan
                    left out by on_invalid: skip, and the earlier folders its start found
                    unfinished
"""

from __future__ import annotations

import shlex
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from runner import files, report
from runner.errors import one_line
from runner.render import (SHOWN, by_kind, dollars, figure, json_document, plan_counts, plural,
                           retry_failed_line, skipped_line, spent_amount, unplanned_line,
                           unplanned_part, videos_gone)
from runner.lock import FolderLock, describe
from runner.state import JobRow, Journal

RESULTS, ERRORS, CSV, SUMMARY = "results.jsonl", "errors.jsonl", "results.csv", "summary.json"


def iso(epoch: float | None) -> str | None:
    """An epoch time as ISO 8601 UTC with milliseconds, as every results file writes times."""
    if epoch is None:
        return None
    moment = datetime.fromtimestamp(epoch, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def record(row: JobRow) -> dict[str, Any]:
    """One job's line of results.jsonl.

    `spent_usd` is what the job counts in money spent, the one rule of every total (the summary,
    `status`, the report's header, rows and columns): the cost its create's answer named, else,
    once it has a generation, the price it was booked at (JobRow.generation_usd), since a job
    recovered from the account after that answer was lost was paid for all the same; plus what
    generations given up on by a retry cost. A cost never named is shown as an estimate ("est.
    $0.27"), and `spent_estimated_usd` is the part of `spent_usd` so booked. `error_kind` is a
    failed job's kind of failure (rows.FAILURE_KINDS), `failed_for_now` whether the next run
    takes it up again by itself (JobRow.failed_for_now). `start_frame_sha256` is the SHA-256 of
    the content of the local start frame the job was made from (None without one), which tells
    a job made from a file since changed (`report.Shape.frame_changed`); it comes last, so the earlier
    fields keep their places.
    """
    return {"key": row.key, "short_key": row.short_key, "index": row.index, "state": row.state,
            "planned": row.planned, "prompt": row.prompt, "axes": row.axes, "styles": list(row.styles),
            "generation_id": row.generation_id, "estimated_cost_usd": row.estimated_cost,
            "cost_usd": row.cost_usd, "spent_usd": row.spent_usd,
            "spent_estimated_usd": row.spent_estimated_usd, "reason": row.reason,
            "error_kind": row.error_kind, "failed_for_now": row.failed_for_now, "file": row.file,
            "poster": row.poster, "sidecar": row.sidecar,
            "submitted_at": iso(row.submitted_at), "completed_at": iso(row.completed_at),
            "downloaded_at": iso(row.downloaded_at), "render_seconds": row.render_seconds,
            "attempts": row.attempts, "start_frame_sha256": row.upload.sha256 if row.upload else None}


def collect(out_dir: Path, *, begun: bool = False) -> report.RunResults:
    """The records and summary of the output folder `out_dir`, read from its journal: the
    summary as of its latest run, or with `begun` as of the latest run that began its work (the
    one the results files tell of: a run refused before it began leaves them be)."""
    with Journal.open(out_dir, create=False) as journal:
        return compute(journal, out_dir, journal.last_begun() if begun else None)


def compute(journal: Journal, out_dir: Path, run_id: int | None = None) -> report.RunResults:
    """The folder's records, all held, and its summary as of the run `run_id` (`summarize`)."""
    records: list[dict[str, Any]] = []
    summary = summarize(journal, out_dir, run_id, keep=records.append)
    return report.RunResults.held(out_dir, summary, tuple(records), frozenset(summary["missing_videos"]))


def summarize(journal: Journal, out_dir: Path, run_id: int | None = None, *,
              unfinished_folders: Sequence[dict[str, Any]] | None = None,
              keep: Callable[[dict[str, Any]], object] = lambda _: None) -> dict[str, Any]:
    """The folder's summary as of the run `run_id` (else the latest), its jobs read a row at a
    time and each one's record given to `keep` (`compute` keeps them all, `write_results` writes
    them as they come, `status` none, so that it sums a folder of a million jobs without holding
    them). A run's own summary also
    lists the earlier starts' folders it found unfinished (`nightly.earlier_folders`), which
    the journal does not know of. `spent_usd` is the folder's over all its runs,
    `run_spent_usd` that run's: the generations it booked to jobs, as its creates' answers
    named them or as it found them on the account after a create's answer was lost (one an
    earlier run sent included), so that the runs' figures add up to the folder's;
    `spent_estimated_usd` is the part of `spent_usd` booked at estimates (such a generation's
    price was named by no answer). `skipped_invalid` counts the cells that run's plan left out
    by on_invalid: skip, `skipped_invalid_by_rule` by the rule each breaks."""
    counts: Counter[str] = Counter()
    unplanned: Counter[str] = Counter()  # the jobs kept that the current plan no longer has
    spent = reserved = by_run = at_estimates = estimated = 0.0
    missing: list[str] = []  # the videos of downloaded jobs gone from the folder
    held = 0  # the failed jobs only --retry-failed takes up again
    run = journal.run(run_id)
    booked = journal.booked(run.id) if run else set()
    for row in journal.reported():  # every job that holds or spent money is among them
        line = record(row)
        keep(line)
        counts[row.state] += 1
        if not row.planned:
            unplanned[row.state] += 1
        spent, reserved = spent + row.spent_usd, reserved + row.reserved_usd
        at_estimates += row.spent_estimated_usd
        estimated += report.estimate((line,))
        if row.generation_id in booked:
            by_run += row.generation_usd
        if report.video_gone(out_dir, line):
            missing.append(line["file"])
        held += row.waits_for_retry_failed
    ended = run.ended_at if run else None
    skipped = run.skipped if run else {}
    summary = {
        "name": run.name if run else out_dir.name, "manifest": run.manifest if run else None,
        "out": str(out_dir), "jobs": counts.total(), "counts": dict(sorted(counts.items())),
        "unplanned_counts": dict(sorted(unplanned.items())),
        "spent_usd": round(spent, 4), "spent_estimated_usd": round(at_estimates, 4),
        "run_spent_usd": round(by_run, 4),
        "reserved_usd": round(reserved, 4),
        "estimated_usd": round(estimated, 4),
        "missing_videos": missing, "missing_videos_count": len(missing),
        "failed_for_retry": held,
        "skipped_invalid": sum(skipped.values()), "skipped_invalid_by_rule": skipped,
        "started_at": iso(run.started_at) if run else None, "ended_at": iso(ended),
        "duration_seconds": round(ended - run.started_at, 3) if run and ended else None,
        "exit_code": run.exit_code if run else None,
        "exit_reason": run.exit_reason if run else None}
    if unfinished_folders is not None:
        summary["unfinished_folders"] = list(unfinished_folders)
    return summary


def write_results(journal: Journal, out_dir: Path, run_id: int, *,
                  unfinished_folders: Sequence[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Write the four results files of the run `run_id` and its page (`report.write_report`),
    each whole or not at all, and return its summary. Each file is written as the jobs are
    read from the journal, a row at a time, a pass a file (all as of one moment of the
    journal: `Journal.snapshot`), so that a folder of 100,000 jobs is written without its
    records held at once: results.jsonl in the pass that sums the summary (`summarize`), which
    also gathers what the csv's columns and the page's totals and axes need (`report.Shape`)."""
    shape = report.Shape()
    with journal.snapshot():
        with files.writing(out_dir / RESULTS) as lines:
            def keep(line: dict[str, Any]) -> None:
                lines.write(files.json_text(line))
                shape.add(line)

            summary = summarize(journal, out_dir, run_id, unfinished_folders=unfinished_folders,
                                keep=keep)
        with files.writing(out_dir / ERRORS) as failures:
            failures.writelines(files.json_text(record(row)) for row in journal.reported("failed"))
        results = report.RunResults(out_dir, summary, _Reread(journal),
                                    frozenset(summary["missing_videos"]), shape)
        with files.writing(out_dir / CSV) as table:
            report.render_csv(results, table)
        files.write_json(out_dir / SUMMARY, summary)
        report.write_report(out_dir, results)
    return summary


@dataclass(frozen=True, slots=True)
class _Reread:
    """The records of the jobs the results speak of, read anew from the journal, a row at a time,
    on each pass over them."""

    journal: Journal

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return map(record, self.journal.reported())


def status(out_dir: Path, *, as_json: bool = False) -> Iterator[str]:
    """`hailuo-batch status` of the output folder `out_dir`, line by line: its summary
    (`summarize`), then its failed jobs, the current plan's first, read a row at a time (every
    one's record `as_json`, else the first few: `status_lines`), both as of one moment of the
    journal, whatever a run writes meanwhile (`Journal.snapshot`)."""
    with Journal.open(out_dir, create=False) as journal, journal.snapshot():
        summary = summarize(journal, out_dir)
        failures = map(record, journal.reported("failed"))
        if as_json:
            yield from json_document(summary, "failures", failures, ascii_only=True)
        else:
            yield from status_lines(summary, failures)


def status_lines(summary: dict[str, Any], failures: Iterable[dict[str, Any]]) -> list[str]:
    """`hailuo-batch status` as text: the last run (still running while a process holds the
    folder's lock), counts by state, the cells on_invalid: skip left out of its plan, money,
    then the videos gone from the folder and the `failures`, each named while they are few
    (`_first_few`)."""
    lines = [f"{summary['name']}: {plural(summary['jobs'], 'job')} in {summary['out']}"]
    if summary["started_at"]:
        holder = FolderLock.holder(Path(summary["out"]))
        if holder is not None:
            ended = f"still running ({describe(holder)})"
        elif summary["ended_at"]:
            ended = (f"ended {summary['ended_at']}, exit {summary['exit_code']} "
                     f"({one_line(str(summary['exit_reason']))})")
        else:
            ended = "did not end cleanly"
        lines.append(f"last run: started {summary['started_at']}, {ended}")
    lines.append("  ".join(f"{state} {figure(count)}" for state, count in plan_counts(summary).items())
                 or "no jobs")
    earlier = unplanned_line(summary)
    if earlier:
        lines.append(earlier)
    skipped = skipped_line(summary)
    if skipped:
        lines.append(skipped)
    lines.append(f"spent {spent_amount(summary)}, reserved {dollars(summary['reserved_usd'])}, "
                 f"estimated {dollars(summary['estimated_usd'])}")
    missing = summary["missing_videos"]
    if missing:
        lines.append(videos_gone(len(missing)))
        lines.extend(_first_few([f"gone {file}" for file in missing[:SHOWN]], len(missing),
                                "videos gone", f"in missing_videos of `{_as_json(summary)}`"))
    held = retry_failed_line(summary)
    if held:
        lines.append(held)
    shown: list[str] = []
    kinds: Counter[str | None] = Counter()
    unplanned = 0
    for failure in failures:
        kinds[failure["error_kind"]] += 1
        unplanned += not report.planned(failure)
        if len(shown) < SHOWN:
            shown.append(_failure_line(failure))
    if kinds.total() > SHOWN:
        dropped = f" ({unplanned_part(unplanned, kinds.total())})" if unplanned else ""
        lines.append(f"{plural(kinds.total(), 'failed job')} by kind{dropped}:")
        lines.extend(f"  {counted}" for counted in by_kind(kinds))
    errors = Path(summary["out"]) / ERRORS
    written = summary.get("ended_at") and errors.is_file()  # at a run's end
    also = f" and {errors} (as the last run left them)" if written else ""
    lines.extend(_first_few(shown, kinds.total(), "failed jobs", f"in `{_as_json(summary)}`{also}"))
    return lines


def _failure_line(failure: dict[str, Any]) -> str:
    gone = "" if report.planned(failure) else " (no longer planned)"
    return (f"failed {failure['short_key']} {failure['axes'].get('prompt')}{gone}: "
            f"{one_line(str(failure['reason']))}")


def _first_few(lines: list[str], count: int, what: str, where: str) -> list[str]:
    """`lines`, the first SHOWN of `count`, then, when there are more, how many more and `where`
    every one of them is: a folder of thousands keeps its summary on one screen."""
    if count <= SHOWN:
        return lines
    return [*lines, f"... and {figure(count - SHOWN)} more {what}: every one {where}"]


def _as_json(summary: dict[str, Any]) -> str:
    """The command that shows the folder's status whole, as JSON."""
    return f"hailuo-batch status {shlex.quote(summary['out'])} --format json"
