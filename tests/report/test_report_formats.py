"""The report's files and tables: report.html as a file, text, JSON and CSV, and its errors."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import re
import sqlite3
import tracemalloc
from pathlib import Path

import pytest
from click.testing import CliRunner
from reportkit import HOSTILE_PROMPT, read_records, write_records

from runner import files, report, results
from runner.cli import main
from runner.errors import StateError, UsageError
from runner.matrix import BUILTIN_NAMES, RESULT_COLUMNS
from runner.plan import Job
from runner.state import JOURNAL_NAME, MIGRATIONS, Journal


def page_data(page: str) -> dict:
    found = re.search(r'<script type="application/json" id="report-data">(.*?)</script>', page, re.DOTALL)
    assert found is not None
    return json.loads(found.group(1))


def test_the_page_is_one_self_contained_file_with_relative_videos(sweep_run) -> None:
    out, records = sweep_run
    path = report.write_report(out)
    page = path.read_text(encoding="utf-8")
    assert path == out / "report.html"
    assert [p.name for p in out.iterdir() if p.name.endswith(".part")] == []
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)
    assert "<link" not in page and "{{" not in page
    data = page_data(page)
    assert [job["key"] for job in data["jobs"]] == [r["key"] for r in records]
    assert {job["file"] for job in data["jobs"]} - {None} <= {"media/clip-0.mp4", "media/clip-1.mp4",
                                                            "media/clip-2.mp4", "media/clip-3.mp4"}
    assert [axis["key"] for axis in data["axes"]] == [
        "prompt", "vibe", "lighting", "color_theme", "model", "resolution", "duration",
        "aspect_ratio", "n"]
    assert data["varying"] == ["prompt", "vibe", "lighting"]
    assert data["run"]["name"] == "rainy-city-lighting"


def test_text_from_the_run_cannot_close_the_data_block(sweep_run) -> None:
    out, _ = sweep_run
    page = report.write_report(out).read_text(encoding="utf-8")
    assert "<script>window.pwned" not in page
    assert page.count("</script>") == 2
    assert HOSTILE_PROMPT in [job["prompt"] for job in page_data(page)["jobs"]]


def test_vars_come_after_the_prompt_and_paths_never_leave_the_folder(tmp_path: Path) -> None:
    records = [{"key": f"{n:064x}", "index": n, "state": "downloaded", "file": file, "poster": None,
                "axes": {"prompt": "p", "time": t, "vibe": "none", "n": 1}}
               for n, (t, file) in enumerate([("dusk", "../../etc/passwd"), ("dawn", "/abs.mp4"),
                                              (None, "ok/a b#1.mp4")])]
    write_records(tmp_path, records)
    data = report.page_data(report.load(tmp_path))
    assert [axis["key"] for axis in data["axes"]] == ["prompt", "time", "vibe", "n"]
    assert [axis["label"] for axis in data["axes"]][-1] == "sample"
    jobs = list(data["jobs"])
    assert [job["file"] for job in jobs] == [None, None, "ok/a b#1.mp4"]
    assert [job["missing"] for job in jobs] == [False, False, True]
    assert data["run"]["name"] == tmp_path.name
    assert data["totals"]["spent_usd"] == 0.0


def test_csv_quotes_text_a_spreadsheet_would_run_and_says_what_each_job_spent(tmp_path: Path) -> None:
    records = [{"key": f"{n:064x}", "index": n, "state": "downloaded", "planned": n == 0,
                "prompt": prompt, "axes": {"prompt": "p", "mood": mood, "n": 1}, "spent_usd": 0.27}
               for n, (prompt, mood) in enumerate([('=HYPERLINK("http://x","y")', "+calm"),
                                                   ("a cat, -2 dogs", "@home")])]
    write_records(tmp_path, records)
    stream = io.StringIO()
    report.render(report.load(tmp_path), "csv", stream)
    rows = list(csv.DictReader(io.StringIO(stream.getvalue())))
    assert [row["prompt"] for row in rows] == ["'=HYPERLINK(\"http://x\",\"y\")", "a cat, -2 dogs"]
    assert [row["mood"] for row in rows] == ["'+calm", "'@home"]
    assert [(row["planned"], row["spent_usd"]) for row in rows] == [("True", "0.27"), ("False", "0.27")]


def test_a_prompt_holding_a_line_separator_keeps_one_job_a_line(tmp_path: Path) -> None:
    """U+2028 and its kin are line breaks to Python's `splitlines` and other readers: written
    escaped, and read (as an earlier version wrote them, raw) by newlines alone."""
    records = [{"key": f"{n:064x}", "index": n, "state": "failed", "file": None, "poster": None,
                "axes": {"prompt": "p", "n": n}, "prompt": f"a lake\u2028at dusk\x85{n}\u2029"}
               for n in range(3)]
    written = "".join(map(files.json_text, records))
    assert len(written.splitlines()) == 3 and [json.loads(line) for line in written.splitlines()] == records
    raw = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    (tmp_path / "results.jsonl").write_text(raw, encoding="utf-8")
    assert [r["prompt"] for r in report.load(tmp_path).records] == [r["prompt"] for r in records]


def test_the_csv_columns_are_names_no_var_may_take() -> None:
    assert set(report.CSV_HEAD + report.CSV_TAIL) <= {*BUILTIN_NAMES, *RESULT_COLUMNS}
    assert set(report.CSV_AXIS_COLUMNS.values()) <= set(RESULT_COLUMNS)


def test_a_var_an_earlier_version_let_take_a_columns_name_gets_a_column_of_its_own(tmp_path: Path) -> None:
    """A folder of a version whose manifests could name a var like a results column (its journal
    of schema version 1, before failures had kinds): the var's column is `vars.NAME`, in
    `report --format csv` and in the results.csv a run writes there."""
    conn = sqlite3.connect(tmp_path / JOURNAL_NAME)
    conn.executescript(MIGRATIONS[0] + "; PRAGMA user_version = 1;")
    axes = {"prompt": "p", "video_gone": "kept", "error_kind": "hand", "failed_for_now": "no",
            "state": "wet", "sample": "b", "n": 1}
    conn.executemany("INSERT INTO jobs (key, idx, planned, state, prompt, axes, styles, request, "
                     "filename, estimated_cost, generation_id, cost_usd, file, reason) VALUES "
                     "(?, ?, 1, ?, 'p', ?, '[]', '{}', ?, 0.27, ?, 0.27, ?, ?)",
                     [("a" * 64, 0, "downloaded", json.dumps(axes), "a.mp4", "g1", "a.mp4", None),
                      ("b" * 64, 1, "failed", json.dumps({**axes, "n": 2}), "b.mp4", "g2", None,
                       "the generation FAILED")])
    conn.execute("INSERT INTO runs (name, manifest, settings, started_at, ended_at, exit_code, "
                 "exit_reason) VALUES ('old', 'm.yaml', '{}', 1.0, 2.0, 1, '1 job failed')")
    conn.commit()
    conn.close()
    shown = CliRunner().invoke(main, ["report", str(tmp_path), "--format", "csv"], catch_exceptions=False)
    with Journal.open(tmp_path) as journal:  # a run there upgrades the file and writes its results
        results.write_results(journal, tmp_path, 1)
    written = (tmp_path / "results.csv").read_text(encoding="utf-8")
    assert shown.stdout == written
    rows = list(csv.reader(io.StringIO(written)))
    assert len(rows[0]) == len(set(rows[0]))
    assert rows[0][6:13] == ["prompt_id", "vars.video_gone", "vars.error_kind", "vars.failed_for_now",
                             "vars.state", "vars.sample", "sample"]
    table = [dict(zip(rows[0], row)) for row in rows[1:]]
    assert [(row["vars.video_gone"], row["video_gone"]) for row in table] == [("kept", "True"),
                                                                              ("kept", "False")]
    assert [(row["vars.state"], row["state"], row["sample"]) for row in table] == [
        ("wet", "downloaded", "1"), ("wet", "failed", "2")]
    assert [(row["vars.error_kind"], row["error_kind"]) for row in table] == [("hand", ""), ("hand", "")]


def test_json_holds_the_run_totals_and_every_record(sweep_run) -> None:
    out, records = sweep_run
    stream = io.StringIO()
    report.render(report.load(out), "json", stream)
    document = json.loads(stream.getvalue())
    assert document["jobs"] == records
    assert document["totals"] == {"jobs": 12, "done": 9, "failed": 2, "failed_for_now": 0, "unfinished": 1,
                                  "unplanned": 0, "spent_usd": 2.52, "spent_estimated_usd": 0.0,
                                  "estimated_usd": 3.36}
    assert document["run"]["exit_code"] == 1


def test_csv_has_one_row_per_job_and_a_column_per_axis(sweep_run) -> None:
    out, records = sweep_run
    stream = io.StringIO()
    report.render(report.load(out), "csv", stream)
    rows = list(csv.DictReader(io.StringIO(stream.getvalue())))
    assert len(rows) == len(records)
    first = rows[0]
    assert (first["prompt_id"], first["vibe"], first["lighting"], first["sample"]) == (
        "rain-street", "Pro Photo", "Golden Hour", "1")
    assert first["styles"] == "Pro Photo; Golden Hour"
    assert rows[4]["state"] == "failed" and rows[4]["reason"] == records[4]["reason"]
    assert rows[4]["cost_usd"] == "" and rows[6]["state"] == "submitted"
    assert next(row["prompt"] for row in rows if row["prompt_id"] == "fox") == HOSTILE_PROMPT


def test_text_shows_totals_and_one_line_per_job(sweep_run) -> None:
    out, records = sweep_run
    stream = io.StringIO()
    report.render(report.load(out), "text", stream)
    lines = stream.getvalue().splitlines()
    assert lines[0].endswith("(exit 1: some jobs failed)")
    assert lines[1] == ("12 jobs: 9 done, 2 failed, 1 unfinished; "
                        "spent $2.52 of $3.36 estimated")
    table = lines[3:]
    assert table[0].split() == ["#", "key", "state", "cost", "render", "prompt", "vibe",
                                "lighting", "file", "/", "reason"]
    assert len(table) == 1 + len(records)
    assert table[5].endswith(records[4]["reason"]) and records[4]["short_key"] in table[5]
    assert table[1].endswith("media/clip-0.mp4") and "$0.28" in table[1]


def test_text_and_csv_mark_the_downloaded_videos_gone_from_the_folder(sweep_run) -> None:
    out, records = sweep_run
    (out / "media" / "clip-1.mp4").unlink()  # by hand, after the run
    gone = {r["short_key"] for r in records if r["state"] == "downloaded" and r["file"] == "media/clip-1.mp4"}
    assert len(gone) == 2
    stream = io.StringIO()
    report.render(report.load(out), "text", stream)
    lines = stream.getvalue().splitlines()
    assert lines[2] == ("2 downloaded videos gone from the folder (deleted or moved by hand): run "
                        "with --fetch-missing to download them again from their generations "
                        "(nothing is paid again)")
    head, *table = lines[4:]
    states = {line.split()[1]: line[head.index("state"):head.index("cost")].strip() for line in table}
    assert {key for key, state in states.items() if state == "video gone"} == gone
    assert all(line.endswith("media/clip-1.mp4") for line in table if line.split()[1] in gone)
    stream = io.StringIO()
    report.render(report.load(out), "csv", stream)
    rows = list(csv.reader(io.StringIO(stream.getvalue())))
    assert rows[0][-4:] == ["downloaded_at", "video_gone", "error_kind", "failed_for_now"]
    assert {row[2] for row in rows[1:] if row[-3] == "True"} == gone
    assert {row[-3] for row in rows[1:] if row[2] not in gone} == {"False"}


def test_a_folder_without_results_is_a_usage_error_and_a_damaged_one_a_state_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no journal.sqlite or results.jsonl here"):
        report.load(tmp_path)
    (tmp_path / "results.jsonl").write_text('{"key": "a", "axes": {}}\n{not json\n')
    with pytest.raises(StateError, match=r"results.jsonl:2:2: not JSON"):
        report.load(tmp_path)
    with pytest.raises(UsageError, match="unknown report format 'xml'"):
        report.render(report.RunResults.held(tmp_path, {}, (), frozenset()), "xml", io.StringIO())


# A field of the third record of results.jsonl, or of summary.json, set to a raw JSON value: what
# `report` says of the folder, in every format.
WRONG_VALUES = {
    "money as text": ("results.jsonl", "spent_usd", '"abc"',
                      'results.jsonl:3: spent_usd is "abc", not a number below 10^15'),
    "money as a list": ("results.jsonl", "spent_usd", "[1]",
                        "results.jsonl:3: spent_usd is [1], not a number below 10^15"),
    "money past any sum": ("results.jsonl", "cost_usd", "1e300",
                           "results.jsonl:3: cost_usd is 1e+300, not a number below 10^15"),
    "a render time as text": ("results.jsonl", "render_seconds", '"slow"',
                              'results.jsonl:3: render_seconds is "slow", not a number below 10^15'),
    "styles not all texts": ("results.jsonl", "styles", "[1, null]",
                             "results.jsonl:3: styles is [1, null], not a list of texts"),
    "styles no list": ("results.jsonl", "styles", '"notalist"',
                       'results.jsonl:3: styles is "notalist", not a list of texts'),
    "an index not whole": ("results.jsonl", "index", "1.5",
                           "results.jsonl:3: index is 1.5, not a whole number"),
    "planned as text": ("results.jsonl", "planned", '"no"',
                        'results.jsonl:3: planned is "no", not true or false'),
    "a file as a number": ("results.jsonl", "file", "7", "results.jsonl:3: file is 7, not a text"),
    "an axis NaN": ("results.jsonl", "axes", '{"prompt": "fox", "v": NaN}',
                    "results.jsonl:3: not JSON: NaN is not a number JSON has"),
    "an axis past a float": ("results.jsonl", "axes", '{"prompt": "fox", "v": 1e400}',
                             "results.jsonl:3: not JSON: 1e400 is past the range of a number"),
    "the exit reason a number": ("summary.json", "exit_reason", "5",
                                 "summary.json: exit_reason is 5, not a text"),
    "the start a number": ("summary.json", "started_at", "5",
                           "summary.json: started_at is 5, not a text"),
    "the estimate as text": ("summary.json", "estimated_usd", '"x"',
                             'summary.json: estimated_usd is "x", not a number below 10^15'),
}


@pytest.mark.parametrize(("name", "field", "raw", "said"), WRONG_VALUES.values(), ids=WRONG_VALUES)
def test_a_value_of_the_wrong_kind_in_the_results_files_is_a_damaged_folder_named_by_line_and_field(
        sweep_run, name: str, field: str, raw: str, said: str) -> None:
    """A folder copied without its journal is read from its results files: a hand edit, a foreign
    tool or damage there is refused (exit 4), never a traceback or a gallery showing nothing."""
    out, records = sweep_run

    def damaged(document: dict) -> str:
        return json.dumps({**document, field: "\0"}).replace('"\\u0000"', raw)

    if name == "results.jsonl":
        lines = [damaged(record) if number == 3 else json.dumps(record)
                 for number, record in enumerate(records, 1)]
        (out / name).write_text("\n".join(lines) + "\n", encoding="utf-8")
    else:
        (out / name).write_text(damaged(json.loads((out / name).read_text())), encoding="utf-8")
    for fmt in report.FORMATS:
        shown = CliRunner().invoke(main, ["report", str(out), "--format", fmt])
        assert (shown.exit_code, shown.stdout, shown.stderr) == (4, "", f"error: {out}/{said}\n"), fmt


WHOLE_FILES = {
    "a summary no object": ("summary.json", b"[1]", "summary.json: not a run's summary (no JSON object)"),
    "a summary nested too deep": ("summary.json", b"[" * 5000, "summary.json: not JSON: nested too deep"),
    "results not UTF-8": ("results.jsonl", b'{"axes": {}}\n\xff\n',
                          "results.jsonl: not UTF-8 text (at byte 14)"),
}


@pytest.mark.parametrize(("name", "content", "said"), WHOLE_FILES.values(), ids=WHOLE_FILES)
def test_a_results_file_that_is_no_results_is_a_damaged_folder(
        sweep_run, name: str, content: bytes, said: str) -> None:
    out, _ = sweep_run
    (out / name).write_bytes(content)
    shown = CliRunner().invoke(main, ["report", str(out), "--format", "text"])
    assert (shown.exit_code, shown.stderr) == (4, f"error: {out}/{said}\n")


def test_the_report_command_writes_the_page_or_prints_a_table(sweep_run, tmp_path: Path) -> None:
    out, records = sweep_run
    runner = CliRunner()
    written = runner.invoke(main, ["report", str(out)])
    assert written.exit_code == 0, written.output
    assert written.output.strip() == str(out / "report.html")
    assert (out / "report.html").is_file()
    as_csv = runner.invoke(main, ["report", str(out), "--format", "csv"])
    assert as_csv.exit_code == 0
    assert len(as_csv.output.strip().splitlines()) == 1 + len(records)
    missing = runner.invoke(main, ["report", str(tmp_path / "nowhere"), "--format", "text"])
    assert missing.exit_code == 2
    assert "no journal.sqlite or results.jsonl here" in missing.output
    assert "Traceback" not in missing.output


def journal_jobs(count: int) -> list[Job]:
    """`count` jobs of prompts p0, p1, ... at $0.27 each, for a journal written step by step."""
    return [Job(key=f"{n:064x}", index=n, axes={"prompt": f"p{n}", "n": 1}, styles=(),
                request={"model": "hailuo-2_3"}, estimated_cost=0.27, filename=f"p/{n}.mp4")
            for n in range(count)]


def test_a_runs_end_looks_for_each_video_once_and_its_files_and_page_agree_on_those_gone(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """results.jsonl's summary, results.csv and report.html all tell of the videos gone from the
    folder: one look on disk per downloaded job serves the three (a stat each, 100,000 of them
    in a folder of 100,000 jobs, not three times as many)."""
    jobs = journal_jobs(5)
    with Journal.open(tmp_path) as journal:
        run = journal.begin_run(name="n", manifest="m.yaml", settings={}, at=1.0)
        journal.sync_plan(jobs)
        for job in jobs:
            row = journal.apply([journal.job(job.key).submitting(reserved_usd=0.27, run_id=run, at=2.0)])[0]
            if job.index == 4:
                journal.apply([row.failed(run_id=run, at=3.0, reason="refused", kind="moderation")])
                continue
            row = journal.apply([row.submitted(run_id=run, at=3.0, generation_id=f"g{job.index}",
                                               cost_usd=0.27, cost_credits=None)])[0]
            row = journal.apply([row.complete(run_id=run, at=4.0, video_url="http://v",
                                              poster_url=None, render_seconds=1.0)])[0]
            journal.apply([row.downloaded(run_id=run, at=5.0, file=job.filename, poster=None,
                                          sidecar=None)])
            (tmp_path / "p").mkdir(exist_ok=True)
            if job.index != 1:  # its video deleted by hand
                (tmp_path / job.filename).touch()
        journal.end_run(run, exit_code=1, reason="some jobs failed", at=6.0)
        looked: list[str] = []
        look = files.gone
        monkeypatch.setattr(files, "gone",
                            lambda root, relative: looked.append(relative) or look(root, relative))
        results.write_results(journal, tmp_path, run)
    assert sorted(looked) == ["p/0.mp4", "p/1.mp4", "p/2.mp4", "p/3.mp4"]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["missing_videos"] == ["p/1.mp4"]
    with (tmp_path / "results.csv").open(encoding="utf-8", newline="") as table:
        assert [row["video_gone"] for row in csv.DictReader(table)] == ["False", "True", "False", "False",
                                                                         "False"]
    page = page_data((tmp_path / "report.html").read_text(encoding="utf-8"))
    assert [job["missing"] for job in page["jobs"]] == [False, True, False, False, False]


def test_a_runs_end_writes_its_files_a_job_at_a_time_as_the_reports_make_them(tmp_path: Path) -> None:
    """A run's end writes results.jsonl, errors.jsonl, results.csv and report.html as it reads
    the jobs from the journal, never holding their records at once (with the files' texts, they
    came to 650 MB at the end of a run of 100,000 jobs): at its peak it holds a fraction of
    results.jsonl's size, where it held five times as much, and each file is byte for byte what
    the reports make of the records all held (`report.load`)."""
    jobs = [dataclasses.replace(job, axes={**job.axes, "mood": ("calm", "<wild>")[job.index % 2]})
            for job in journal_jobs(3000)]
    with Journal.open(tmp_path) as journal:
        run = journal.begin_run(name="n", manifest="m.yaml", settings={}, at=1.0)
        journal.sync_plan(jobs)
        journal.conn.execute("UPDATE jobs SET state = 'failed', generation_id = 'g' || idx, "
                             "cost_usd = 0.27, error_kind = 'moderation', reason = 'refused: ' "
                             "|| prompt WHERE idx % 3 = 0")
        journal.sync_plan(jobs[1:])  # the first job is no longer planned
        journal.end_run(run, exit_code=1, reason="some jobs failed", at=2.0)
        tracemalloc.start()
        try:
            summary = results.write_results(journal, tmp_path, run)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert peak < (tmp_path / "results.jsonl").stat().st_size / 4
    written = {name: (tmp_path / name).read_text(encoding="utf-8")
               for name in ("results.jsonl", "errors.jsonl", "results.csv", "report.html")}
    held = report.load(tmp_path)
    assert held.summary == summary and len(held.records) == 3000
    assert written["results.jsonl"] == "".join(map(files.json_text, held.records))
    assert written["errors.jsonl"] == "".join(files.json_text(record) for record in held.records
                                              if record["state"] == "failed")
    for render, name in ((report.render_csv, "results.csv"), (report.render_html, "report.html")):
        stream = io.StringIO()
        render(held, stream)
        assert stream.getvalue() == written[name]
    data = page_data(written["report.html"])
    assert (data["varying"], data["totals"]["unplanned"], len(data["jobs"])) == (["prompt", "mood"], 1, 3000)


def test_a_job_whose_cost_was_never_named_counts_its_estimate_in_every_total(tmp_path: Path) -> None:
    """A create whose answer was lost, its job recovered from the account: no cost recorded."""
    jobs = journal_jobs(3)
    with Journal.open(tmp_path) as journal:
        run = journal.begin_run(name="n", manifest="m.yaml", settings={}, at=1.0)
        journal.sync_plan(jobs)
        for job, cost in zip(jobs[:2], (0.3, None)):
            row = journal.apply([journal.job(job.key).submitting(reserved_usd=0.27, run_id=run, at=2.0)])[0]
            row = journal.apply([row.submitted(run_id=run, at=3.0, generation_id=f"g{job.index}",
                                               cost_usd=cost, cost_credits=None)])[0]
            row = journal.apply([row.complete(run_id=run, at=4.0, video_url="http://v",
                                              poster_url=None, render_seconds=1.0)])[0]
            journal.apply([row.downloaded(run_id=run, at=5.0, file=job.filename, poster=None,
                                          sidecar=f"p/{job.index}.json")])
            (tmp_path / "p").mkdir(exist_ok=True)
            (tmp_path / job.filename).touch()  # the video it downloaded
        journal.end_run(run, exit_code=0, reason="done", at=6.0)
        summary = results.write_results(journal, tmp_path, run)
    assert (summary["spent_usd"], summary["spent_estimated_usd"]) == (0.57, 0.27)
    status = CliRunner().invoke(main, ["status", str(tmp_path)], catch_exceptions=False)
    assert "spent $0.57 ($0.27 of it estimated), " in status.stdout
    loaded = report.load(tmp_path)
    data = report.page_data(loaded)
    assert (data["totals"]["spent_usd"], data["totals"]["spent_estimated_usd"]) == (0.57, 0.27)
    assert [(job["spent_usd"], job["spent_estimated_usd"]) for job in data["jobs"]] == [
        (0.3, 0), (0.27, 0.27), (0, 0)]
    copied = dataclasses.replace(loaded, summary={}).totals  # no summary.json
    assert (copied.spent_usd, copied.spent_estimated_usd) == (0.57, 0.27)
    text = CliRunner().invoke(main, ["report", str(tmp_path), "--format", "text"], catch_exceptions=False)
    lines = text.stdout.splitlines()
    assert lines[1].endswith("; spent $0.57 ($0.27 of it estimated) of $0.81 estimated")
    assert [line.split()[3:5] for line in lines[4:]] == [["$0.30", "1s"], ["est.", "$0.27"],
                                                         ["$0.00", "-"]]
    assert lines[-1].endswith(" not sent yet (estimated $0.27 to make)")


# Each job's failure, its kind, and whether its create went through (a generation, paid).
FAILURES = [("timed out after 1 s (generation g0)", "timeout", True),
            ("gave up after 3 failed creates (the last: 503)", "transient", False),
            ("refused by content moderation: a person", "moderation", False),
            ("the generation FAILED", "render", True),
            ("gave up after 3 failed creates (the last: 503)", "transient", False),
            ("timed out after 1 s (generation g5)", "timeout", True)]


def test_a_job_failed_for_now_is_told_from_one_failed_for_good(tmp_path: Path) -> None:
    """The next run takes up by itself the jobs that timed out (paid: it downloads them, those
    the manifest dropped too) and those no create went through for; a refused or FAILED one
    waits for --retry-failed, and one the manifest dropped that never made a generation is
    taken up by no run."""
    jobs = journal_jobs(len(FAILURES))
    with Journal.open(tmp_path) as journal:
        run = journal.begin_run(name="n", manifest="m.yaml", settings={}, at=1.0)
        journal.sync_plan(jobs)
        for job, (reason, kind, paid) in zip(jobs, FAILURES):
            row = journal.apply([journal.job(job.key).submitting(run_id=run, at=2.0, reserved_usd=0.27)])[0]
            if paid:
                row = journal.apply([row.submitted(run_id=run, at=3.0, generation_id=f"g{job.index}",
                                                   cost_usd=0.27, cost_credits=None)])[0]
            journal.apply([row.failed(run_id=run, at=4.0, reason=reason, kind=kind)])
        journal.sync_plan(jobs[:4])  # the manifest edited: jobs 4 and 5 dropped
        journal.end_run(run, exit_code=1, reason="some jobs failed", at=5.0)
        results.write_results(journal, tmp_path, run)
    found = read_records(tmp_path)
    assert [r["failed_for_now"] for r in found] == [True, True, False, False, False, True]
    with (tmp_path / "results.csv").open(encoding="utf-8", newline="") as table:
        columns = [(row["error_kind"], row["failed_for_now"]) for row in csv.DictReader(table)]
    assert columns == [(kind, str(r["failed_for_now"])) for (_, kind, _), r in zip(FAILURES, found)]
    text = CliRunner().invoke(main, ["report", str(tmp_path), "--format", "text"], catch_exceptions=False)
    # the totals of the current plan's jobs: every failed one, as summary.json and status count
    # them, and of them those the next run takes up by itself
    assert text.stdout.splitlines()[1].startswith(
        "4 jobs: 0 done, 4 failed (2 of them for now), 0 unfinished; 2 jobs no longer planned;")
    totals = report.load(tmp_path).totals
    assert (totals.failed, totals.failed_for_now, totals.unfinished) == (4, 2, 0)
    document = CliRunner().invoke(main, ["report", str(tmp_path), "--format", "json"], catch_exceptions=False)
    summary = json.loads((tmp_path / "summary.json").read_text(encoding="utf-8"))
    planned_failed = summary["counts"]["failed"] - summary["unplanned_counts"]["failed"]
    assert json.loads(document.stdout)["totals"]["failed"] == planned_failed == 4
    head, *lines = text.stdout.splitlines()[3:]
    states = [line[head.index("state"):head.index("cost")].strip() for line in lines]
    assert states == ["failed for now", "failed for now", "failed", "failed",
                      "failed (no longer planned)", "failed for now (no longer planned)"]
    fetched = "; failed for now: paid, the next run downloads it (nothing is paid again)"
    sent = "; failed for now: the next run sends it again"
    for line, (reason, _, _), then in zip(lines, FAILURES, [fetched, sent, "", "", "", fetched]):
        assert line.endswith(f"  {reason}{then}"), line
    assert [job["shown_state"] for job in report.page_data(report.load(tmp_path))["jobs"]] == [
        "failed for now", "failed for now", "failed", "failed", "failed", "failed for now"]


def test_a_job_shows_what_it_spent_with_the_generations_a_retry_gave_up(tmp_path: Path) -> None:
    retried = {"key": "a" * 64, "short_key": "a" * 10, "index": 0, "state": "downloaded",
               "axes": {"prompt": "rain", "n": 1}, "styles": [], "estimated_cost_usd": 0.45,
               "cost_usd": 0.45, "spent_usd": 0.9, "render_seconds": 60.0, "file": "rain.mp4"}
    waiting = {**retried, "key": "b" * 64, "short_key": "b" * 10, "index": 1, "state": "pending",
               "cost_usd": None, "spent_usd": 0.0, "render_seconds": None, "file": None}
    stream = io.StringIO()
    shown = report.RunResults.held(tmp_path, {"spent_usd": 0.9}, (retried, waiting), frozenset())
    report.render(shown, "text", stream)
    first, second = stream.getvalue().splitlines()[-2:]
    assert "$0.90" in first and "$0.45" not in first
    assert "est." not in second and "  $0.00  " in second
    assert second.endswith("not sent yet (estimated $0.45 to make)")


def test_a_job_refused_at_create_shows_nothing_spent_never_its_estimate(simulated_run) -> None:
    out, records, summary = simulated_run
    refused = {r["short_key"] for r in records if r["state"] == "failed" and not r["generation_id"]}
    assert len(refused) == 6 and summary["spent_usd"] == pytest.approx(12 * 0.27)
    shown = CliRunner().invoke(main, ["report", str(out), "--format", "text"], catch_exceptions=False)
    costs = {line.split()[1]: line.split()[3] for line in shown.stdout.splitlines()[4:]}
    assert {costs[key] for key in refused} == {"$0.00"}
    assert {cost for key, cost in costs.items() if key not in refused} == {"$0.27"}
    jobs = report.page_data(report.load(out))["jobs"]
    assert {(job["shown_cost_usd"], job["cost_is_estimate"]) for job in jobs
            if job["short_key"] in refused} == {(0.0, False)}


def test_one_job_is_told_as_one_job(tmp_path: Path) -> None:
    job = {"key": "a" * 64, "short_key": "a" * 10, "index": 0, "state": "pending",
           "axes": {"prompt": "rain", "n": 1}, "styles": [], "estimated_cost_usd": 0.27}
    summary = {"name": "single", "jobs": 1, "out": str(tmp_path), "counts": {"pending": 1},
               "started_at": None, "ended_at": None, "exit_code": None, "exit_reason": None,
               "spent_usd": 0.0, "reserved_usd": 0.0, "estimated_usd": 0.27, "missing_videos": []}
    single = report.RunResults.held(tmp_path, summary, (job,), frozenset())
    stream = io.StringIO()
    report.render(single, "text", stream)
    assert stream.getvalue().splitlines()[1].startswith("1 job: 0 done")
    assert results.status_lines(summary, ())[0] == f"single: 1 job in {tmp_path}"
