"""Plans and validation results as text, JSON and JSON lines: computed first, rendered here."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any, Iterable, Iterator, Sequence

from runner.catalog import Catalog
from runner.errors import Issue, count_problems, one_line
from runner.plan import FrameChange, Job, Plan, canonical_json, skipped_rules
from runner.rows import FAILURE_KINDS


SHOWN = 10
"""How many of a long list (failed jobs, videos gone from the folder) a summary shows: the first
ten, the rest counted and left to the file or the JSON that holds them all."""


def figure(count: int) -> str:
    """A count as every message, log line and summary shows it, its thousands separated:
    `18,619`. Files read by programs (JSON, CSV) keep plain numbers."""
    return f"{count:,}"


def dollars(amount: float) -> str:
    """Money as every message, log line and summary shows it, to the cent and its thousands
    separated: `$27,000.00`."""
    return f"${amount:,.2f}"


def by_kind(failures: Counter[str | None]) -> list[str]:
    """Failed jobs counted by their kind of failure, the commonest first, in the words the log
    and `status` use: `12 refused by content moderation`."""
    return [f"{figure(count)} {FAILURE_KINDS.get(kind or '', 'of no kind recorded')}"
            for kind, count in failures.most_common()]


def budget(amount: float) -> str:
    """A budget as the user gives it, to the cent at most and its thousands separated: `$3`,
    `$0.6`, `$12,345.67`."""
    return dollars(amount).rstrip("0").rstrip(".")


def plural(count: int, noun: str) -> str:
    """`1 job`, `2 jobs`: a count with its noun, for messages people read."""
    return f"{figure(count)} {noun}{'' if count == 1 else 's'}"


def videos_gone(count: int, *, fetching: bool = False) -> str:
    """What to say of `count` downloaded videos gone from the output folder: that this run
    fetches them again (`fetching`), or how to."""
    them = "it again from its generation" if count == 1 else "them again from their generations"
    videos = plural(count, "downloaded video")
    if fetching:
        return f"{videos} gone from the folder: downloading {them} (nothing is paid again)"
    return (f"{videos} gone from the folder (deleted or moved by hand): run with --fetch-missing "
            f"to download {them} (nothing is paid again)")


def plan_counts(summary: dict[str, Any]) -> dict[str, int]:
    """A summary's jobs of the current plan by state: its `counts` without its
    `unplanned_counts`, the jobs kept from earlier versions of the manifest."""
    unplanned = summary.get("unplanned_counts") or {}
    counts = {state: count - unplanned.get(state, 0)
              for state, count in (summary.get("counts") or {}).items()}
    return {state: count for state, count in counts.items() if count}


def downloaded_part(summary: dict[str, Any]) -> str:
    """The plan's jobs downloaded of all of them, and how many of the videos have gone from the
    folder since, as a run's end says it: `12/12 downloaded (1 of the videos gone from the
    folder: see --fetch-missing)`."""
    counts = plan_counts(summary)
    gone = summary.get("missing_videos_count", 0)
    return (f"{figure(counts.get('downloaded', 0))}/{figure(sum(counts.values()))} downloaded"
            + (f" ({figure(gone)} of the videos gone from the folder: see --fetch-missing)"
               if gone else ""))


def retry_failed_line(summary: dict[str, Any]) -> str | None:
    """What a summary says of its failed jobs that no run takes up again by itself, if any:
    `2 failed jobs are tried again only by a run with --retry-failed`."""
    held = summary.get("failed_for_retry") or 0
    if not held:
        return None
    verb = "is" if held == 1 else "are"
    return f"{plural(held, 'failed job')} {verb} tried again only by a run with --retry-failed"


def unplanned_part(count: int, total: int) -> str:
    """How `status` and a run's reason say that `count` of `total` jobs (failed, or not finished)
    are no longer planned (the manifest edited, or a start frame's file changed since): `2 of them
    no longer planned`, of a lone one `no longer planned`."""
    return ("no longer planned" if count == total == 1
            else f"{figure(count)} of them no longer planned")


def unplanned_line(summary: dict[str, Any]) -> str | None:
    """What a summary says of the jobs kept that the plan no longer has, if any:
    `12 jobs no longer planned: 3 downloaded, 9 failed`."""
    unplanned = summary.get("unplanned_counts") or {}
    if not unplanned:
        return None
    states = ", ".join(f"{figure(count)} {state}" for state, count in unplanned.items())
    return f"{plural(sum(unplanned.values()), 'job')} no longer planned: {states}"


def skipped_line(summary: dict[str, Any]) -> str | None:
    """What a summary says of the cells its run's plan left out by on_invalid: skip, if any
    (a summary written before it told of them tells of none), as `status` and the gallery's
    header show it: `6 cells skipped as invalid (on_invalid: skip), by the rule each breaks:
    text-to-video is 16:9 only, ... (4); hailuo-2_3-fast needs a start frame ... (2)`."""
    skipped = summary.get("skipped_invalid_by_rule") or {}
    if not skipped:
        return None
    return (f"{plural(sum(skipped.values()), 'cell')} skipped as invalid (on_invalid: skip), by "
            f"the rule each breaks: {skipped_rules(skipped)}")


def changed_frames_line(changes: Sequence[FrameChange]) -> str | None:
    """The plan's start frames whose file changed since the folder's jobs were made from them,
    each with the jobs of it that makes new, if any: `start frame b/frame.png changed since 8
    jobs were made from it (8 downloaded): its 8 jobs are new`; the first SHOWN frames named,
    the others counted."""
    if not changes:
        return None
    lines = []
    for change in changes[:SHOWN]:
        made = sum(change.made.values())
        states = ", ".join(f"{figure(count)} {state}" for state, count in change.made.items())
        new = (f"its {plural(change.jobs, 'job')}" if change.new == change.jobs
               else f"{figure(change.new)} of its {plural(change.jobs, 'job')}")
        lines.append(f"start frame {one_line(change.name)} changed since {plural(made, 'job')} "
                     f"{'was' if made == 1 else 'were'} made from it ({states}): {new} "
                     f"{'is' if change.new == 1 else 'are'} new")
    others = changes[SHOWN:]
    if others:
        lines.append(f"{plural(len(others), 'other start frame')} changed too, "
                     f"{plural(sum(change.new for change in others), 'job')} of them new")
    return "; ".join(lines)


UNSETTLED = "sent, not known to be paid: looked for before it is sent again"
"""What a create left unsettled (its job `submitting`) is: its answer never came, or it failed
and finding out whether it made a generation failed too."""


def jobs_left(in_flight: int, waiting: int, unsettled: int = 0) -> str:
    """What a folder left unfinished holds: `3 jobs in flight (paid, not yet downloaded), 2
    creates unsettled (sent, not known to be paid: ...) and 1 not yet sent`, a part with no job
    left out (`2 jobs not yet sent`)."""
    parts = [f"{plural(in_flight, 'job')} in flight (paid, not yet downloaded)"] if in_flight else []
    if unsettled:
        parts.append(f"{plural(unsettled, 'create')} unsettled ({UNSETTLED})")
    if waiting:
        parts.append(f"{figure(waiting) if parts else plural(waiting, 'job')} not yet sent")
    return ", ".join(parts[:-1]) + " and " + parts[-1] if len(parts) > 1 else "".join(parts)


def unfinished_line(summary: dict[str, Any]) -> str | None:
    """What a summary says of the earlier starts' folders left unfinished (`unfinished_folders`),
    if any: `2 earlier folders left unfinished, with 3 jobs in flight (paid, not yet downloaded)
    and 1 not yet sent`."""
    folders = summary.get("unfinished_folders") or []
    if not folders:
        return None
    held = jobs_left(*(sum(folder.get(count, 0) for folder in folders)
                       for count in ("in_flight", "waiting", "unsettled")))
    return f"{plural(len(folders), 'earlier folder')} left unfinished, with {held}"


ESTIMATED_PART = "{amount} of it estimated"
"""The words of `estimated_part`, which the gallery's script also says its sums with."""


def estimated_part(summary: dict[str, Any]) -> str | None:
    """How much of a summary's money spent was booked at estimates, if any: `$0.12 of it
    estimated`, the generations whose create answer, with their price, was lost. The budget
    counts them so too."""
    estimated = summary.get("spent_estimated_usd") or 0
    return ESTIMATED_PART.format(amount=dollars(estimated)) if round(estimated, 2) else None


def spent_amount(figures: dict[str, Any]) -> str:
    """Money spent as the results state it: `$1.12`, with `($0.04 of it estimated)` when part
    of it is."""
    of_it = estimated_part(figures)
    return dollars(figures.get("spent_usd") or 0) + (f" ({of_it})" if of_it else "")


def run_spent(summary: dict[str, Any]) -> str:
    """The money of a run's end: the folder's total over all its runs, how much of it is
    estimates, and what this run spent when that differs (a resumed night, a budget stop the
    night before), so that a budget never looks overrun by what earlier runs paid."""
    total = dollars(summary.get("spent_usd", 0))
    by_run = dollars(summary.get("run_spent_usd", summary.get("spent_usd", 0)))
    notes = [note for note in (estimated_part(summary),
                               None if by_run == total else f"{by_run} by this run") if note]
    return f"{total} spent ({'; '.join(notes)})" if notes else f"{total} spent"


def job_record(job: Job, states: dict[str, str] | None = None,
               files: dict[str, str] | None = None) -> dict[str, Any]:
    """Everything about one planned job, its wire request exactly as it will be sent included;
    with `states`, its state in the output folder too, and `file`, where its video was put
    there (from `files`; None until it is downloaded), which `filename`, the manifest's name for
    it, is not when the name was taken (the short key added) or the manifest's names changed."""
    state = {} if states is None else {"state": states.get(job.key, "new"),
                                       "file": (files or {}).get(job.key)}
    return {**state, "key": job.key, "short_key": job.short_key, "index": job.index, "axes": job.axes,
            "styles": list(job.styles), "request": job.request,
            "estimated_cost_usd": job.estimated_cost, "filename": job.filename,
            "start_frame": None if job.upload is None else
            {"path": str(job.upload.path), "sha256": job.upload.sha256,
             "id_placeholder": job.upload.placeholder}}


def plan_summary(plan: Plan, to_create: float | None = None) -> dict[str, Any]:
    """The plan's counts and warnings; with `to_create` (an output folder's state known), the
    estimate of the jobs a run there would create."""
    return {"name": plan.name, "manifest": str(plan.source), "jobs": len(plan.jobs),
            "cells": plan.cells, "excluded": plan.excluded, "included": plan.included,
            "merged": plan.merged, "skipped_invalid": plan.skipped_invalid,
            "estimated_usd": plan.estimated_usd, "prices_are_estimates": True,
            "to_create_usd": to_create, "warnings": list(plan.warnings_for(to_create))}


def plan_json(plan: Plan, states: dict[str, str] | None = None, to_create: float | None = None,
              unplanned: Sequence[str] | None = None, files: dict[str, str] | None = None,
              to_fetch: Sequence[str] | None = None,
              unplanned_counts: dict[str, int] | None = None) -> Iterator[str]:
    """The plan as JSON, line by line (`json_document`); with an output folder's state known,
    `unplanned_counts` counts by state the jobs the manifest no longer has that the folder's
    results keep, `unplanned` keys those of them a run there still fetches, `to_fetch` the
    failed ones it has."""
    summary = plan_summary(plan, to_create)
    if states is not None:
        summary["unplanned_counts"] = dict(unplanned_counts or {})
        summary["unplanned_to_fetch"] = list(unplanned or ())
        summary["failed_to_fetch"] = list(to_fetch or ())
    return json_document(summary, "jobs", (job_record(job, states, files) for job in plan.jobs))


def json_document(summary: dict[str, Any], name: str, items: Iterable[Any], *,
                  ascii_only: bool = False) -> Iterator[str]:
    """`{"summary": summary, name: [*items]}` as `json.dumps(..., indent=2)` writes it, given
    line by line and an item at a time, so that a plan or a folder of a million jobs is printed
    without its whole text (some gigabytes) held at once; `ascii_only` escapes what is not
    ASCII, as `json.dumps` does by default."""
    head = f'{{\n  "summary": {_indented(summary, 1, ascii_only)},\n  "{name}": ['
    lines = (f"    {_indented(item, 2, ascii_only)}" for item in items)
    last = next(lines, None)
    if last is None:
        yield f"{head}]\n}}"
        return
    yield head
    for line in lines:
        yield f"{last},"
        last = line
    yield last
    yield "  ]\n}"


def _indented(value: Any, depth: int, ascii_only: bool) -> str:
    """`value` as `json.dumps(..., indent=2)` writes it `depth` levels down a document: a JSON
    string never holds a raw line break, so each of its line breaks starts an indented line."""
    return json.dumps(value, indent=2, ensure_ascii=ascii_only).replace("\n", "\n" + "  " * depth)


def plan_jsonl(plan: Plan, states: dict[str, str] | None = None,
               files: dict[str, str] | None = None) -> Iterator[str]:
    for job in plan.jobs:
        yield canonical_json(job_record(job, states, files))


def _styles_cell(job: Job) -> str:
    if "style_set" in job.axes:
        return str(job.axes["style_set"])
    return "+".join(job.styles) or "-"


def plan_text(plan: Plan, states: dict[str, str] | None = None,
              to_create: float | None = None) -> Iterator[str]:
    """One row per job, then the summary; a plan with start frames has a column of each job's,
    and `states` adds each job's state in an output folder."""
    frames = any("start_frame" in job.axes for job in plan.jobs)
    header = ["key", "prompt", "styles", "model", "res", "dur", "aspect",
              *(["frame"] if frames else []), "n", "est $"]
    rows = [[j.short_key, _prompt_cell(j), _styles_cell(j), j.axes["model"], j.axes["resolution"],
             f"{j.axes['duration']}s", j.axes["aspect_ratio"], *([_frame_cell(j)] if frames else []),
             str(j.sample), f"{j.estimated_cost:.2f}"] for j in plan.jobs]
    if states is not None:
        header.append("state")
        for row, job in zip(rows, plan.jobs):
            row.append(states.get(job.key, "new"))
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(header)]
    for row in [header, *rows]:
        yield "  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip()
    yield ""
    yield from summary_lines(plan, to_create)


def _frame_cell(job: Job) -> str:
    """The job's start frame as the manifest names it (its path or id), `-` for none."""
    return one_line(str(job.axes.get("start_frame", "-")))


def _prompt_cell(job: Job) -> str:
    var_values = [str(v) for k, v in job.axes.items()
                  if k not in _FIXED_AXES and v is not None]
    return one_line("/".join([str(job.axes["prompt"]), *var_values]))


_FIXED_AXES = frozenset({"prompt", "vibe", "lighting", "color_theme", "style_set", "model",
                         "resolution", "duration", "aspect_ratio", "start_frame", "n"})


def summary_lines(plan: Plan, to_create: float | None = None) -> Iterator[str]:
    yield (f"{plural(len(plan.jobs), 'job')} from {plural(plan.cells, 'cell')}: "
           f"{figure(plan.excluded)} removed by exclude, {figure(plan.included)} added by include, "
           f"{figure(plan.skipped_invalid)} skipped as invalid, {figure(plan.merged)} merged duplicates")
    yield (f"estimated total: {dollars(plan.estimated_usd)} (price estimates; the actual cost of "
           "each job comes from the API)")
    if to_create is not None:
        yield f"to create in the output folder: {dollars(to_create)}"
    for warning in plan.warnings_for(to_create):
        yield f"warning: {warning}"


def issues_json(results: list[tuple[str, Plan | None, list[Issue]]], *, one_line: bool = False) -> str:
    """Each file's problems, or its plan's size, estimate and warnings: what `validate` prints
    as text; indented, or on `one_line` for output read line by line (JSON Lines)."""
    files = [{"file": file, "valid": not issues, "jobs": len(plan.jobs) if plan else None,
              "estimated_usd": plan.estimated_usd if plan else None,
              "issues": [issue.as_dict() for issue in issues],
              "warnings": list(plan.warnings_for()) if plan else []} for file, plan, issues in results]
    return json.dumps({"files": files, "problems": sum(count_problems(i) for _, _, i in results)},
                      indent=None if one_line else 2, ensure_ascii=False)


def file_warning(file: str, warning: Issue | str) -> str:
    """A plan's warning as `validate` tells it among the files' problems: at its place
    (`x.yaml:8:5: warning: ...`) when it has one, else of the whole file (`x.yaml: warning: ...`)."""
    return warning.render("warning") if isinstance(warning, Issue) else f"{file}: warning: {warning}"


def styles_text(catalog: Catalog) -> Iterator[str]:
    for category, styles in catalog.by_category().items():
        yield f"{catalog.categories[category]} ({category}):"
        width = max(len(s.name) for s in styles)
        for style in styles:
            yield f"  {style.name.ljust(width)}  {style.id}"
        yield ""
