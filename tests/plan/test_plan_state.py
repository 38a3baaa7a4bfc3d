"""`plan --out`: a plan read against an output folder's journal shows what is new and what is done."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from click.testing import CliRunner

from runner import render
from runner.cli import main
from runner.plan import make_plan

JOBS = Path(__file__).resolve().parents[2] / "jobs"


def swept(folder: Path) -> tuple[Path, Path]:
    """A copy of the A/B sweep example in `folder`, run on the simulator into `folder/out`."""
    manifest, out = folder / "ab.yaml", folder / "out"
    shutil.copy(JOBS / "ab-sweep.yaml", manifest)
    ran = CliRunner().invoke(main, ["run", str(manifest), "--simulate", "--time-scale", "600",
                                    "--out", str(out), "--quiet", "--submit-per-minute", "6000"])
    assert ran.exit_code == 0, ran.output
    return manifest, out


def test_plan_against_a_finished_run_shows_only_the_new_cells_as_new(tmp_path: Path) -> None:
    manifest, out = swept(tmp_path)
    runner = CliRunner()
    text = manifest.read_text().replace(
        "styles:", '  - id: lighthouse\n    text: "A lighthouse in a storm"\n\nstyles:', 1)
    manifest.write_text(text)

    shown = runner.invoke(main, ["plan", str(manifest), "--out", str(out)])
    assert shown.exit_code == 0, shown.output
    rows = [line.split() for line in shown.output.splitlines() if line[:1].isalnum()]
    states = {row[1]: set() for row in rows[1:] if len(row) == 10}
    for row in rows[1:]:
        if len(row) == 10:
            states[row[1]].add(row[-1])
    assert states == {"rain-street": {"done"}, "rooftop-cat": {"done"}, "lighthouse": {"new"}}
    assert f"in {out}: 6 new, 0 in flight, 12 done, 0 failed" in shown.output

    listed = runner.invoke(main, ["plan", str(manifest), "--out", str(out), "--format", "json"])
    by_state: dict[str, int] = {}
    for job in json.loads(listed.output)["jobs"]:
        by_state[job["state"]] = by_state.get(job["state"], 0) + 1
    assert by_state == {"done": 12, "new": 6}


def test_plan_json_is_one_indented_document_given_a_job_at_a_time(tmp_path: Path) -> None:
    """`plan --format json` against a folder: the document `json.dumps(..., indent=2)` makes,
    its non-ASCII text as written, printed a job at a time; an empty plan's jobs are `[]`."""
    manifest, out = swept(tmp_path)
    text = manifest.read_text().replace(
        "styles:", '  - id: phare\n    text: "Un phare dans la tempête"\n\nstyles:', 1)
    manifest.write_text(text)
    listed = CliRunner().invoke(main, ["plan", str(manifest), "--out", str(out), "--format", "json"])
    document = json.loads(listed.output)
    assert listed.output == json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    assert {job["state"] for job in document["jobs"]} == {"done", "new"}
    assert "tempête" in listed.output and document["summary"]["unplanned_counts"] == {}
    planned = make_plan(manifest)
    assert len(list(render.plan_json(planned))) == len(planned.jobs) + 2 == 20
    manifest.write_text(text.replace("styles:", "matrix:\n  exclude:\n    - model: hailuo-2_3\n\nstyles:", 1))
    empty = CliRunner().invoke(main, ["plan", str(manifest), "--out", str(out), "--format", "json"])
    assert json.loads(empty.output)["jobs"] == []
    assert empty.output == json.dumps(json.loads(empty.output), indent=2, ensure_ascii=False) + "\n"


def test_plan_without_state_has_no_state_column(tmp_path: Path) -> None:
    shown = CliRunner().invoke(main, ["plan", str(JOBS / "single.yaml"), "--out", str(tmp_path)])
    assert shown.exit_code == 0
    assert "state" not in shown.output.splitlines()[0]
    assert " new, " not in shown.output


def test_plan_against_a_folder_gives_each_done_job_the_file_its_video_is_in(tmp_path: Path) -> None:
    """A manifest whose file names changed after its run: `filename` is the new name, `file` where
    each done job's video is (what results.jsonl says); a job still to run has no file yet."""
    manifest, out = swept(tmp_path)
    runner = CliRunner()
    kept = {}
    for line in (out / "results.jsonl").read_text().splitlines():
        record = json.loads(line)
        kept[record["key"]] = record["file"]
    text = manifest.read_text().replace('filename: "', 'filename: "v2/', 1)
    text = text.replace("styles:", '  - id: lighthouse\n    text: "A lighthouse in a storm"\n\nstyles:', 1)
    manifest.write_text(text)
    listed = json.loads(runner.invoke(main, ["plan", str(manifest), "--out", str(out),
                                             "--format", "json"]).output)["jobs"]
    lines = runner.invoke(main, ["plan", str(manifest), "--out", str(out), "--format", "jsonl"])
    assert [json.loads(line) for line in lines.output.splitlines()] == listed
    done = {job["key"]: job["file"] for job in listed if job["state"] == "done"}
    assert done == kept and all((out / file).is_file() for file in done.values())
    assert all(job["filename"].startswith("v2/") for job in listed)
    assert [job["file"] for job in listed if job["state"] == "new"] == [None] * 6
