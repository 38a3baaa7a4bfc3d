"""`hailuo-batch plan` in its three formats, and the `styles` and `schema` commands."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from importlib import resources
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from runner.catalog import UUID_RE, read_data
from runner.cli import main

VALID = Path(__file__).parent.parent / "data" / "manifests" / "valid"
JOB_FIELDS = {"key", "short_key", "index", "axes", "styles", "request", "estimated_cost_usd",
              "filename", "start_frame"}
SUMMARY_FIELDS = {"name", "manifest", "jobs", "cells", "excluded", "included", "merged",
                  "skipped_invalid", "estimated_usd", "to_create_usd", "prices_are_estimates",
                  "warnings"}


def invoke(monkeypatch: pytest.MonkeyPatch, *args: str) -> Result:
    monkeypatch.chdir(VALID)
    result = CliRunner().invoke(main, list(args))
    assert "Traceback" not in result.output
    return result


def test_plan_json_has_every_job_with_axes_key_and_request(monkeypatch: pytest.MonkeyPatch) -> None:
    result = invoke(monkeypatch, "plan", "--format", "json", "start-frame-path.yaml")
    assert result.exit_code == 0
    plan = json.loads(result.stdout)
    assert set(plan) == {"summary", "jobs"} and set(plan["summary"]) == SUMMARY_FIELDS
    assert plan["summary"]["name"] == "start-frame-path"
    assert plan["summary"]["manifest"] == "start-frame-path.yaml"
    for job in plan["jobs"]:
        assert set(job) == JOB_FIELDS
        assert set(job["axes"]) == {"prompt", "model", "resolution", "duration", "aspect_ratio",
                                    "start_frame", "n"}
        frame = job["start_frame"]
        assert set(frame) == {"path", "sha256", "id_placeholder"}
        assert Path(frame["path"]).is_absolute() and Path(frame["path"]).is_file()
        image = job["request"]["parameters"]["guidances"]["start_frame"][0]["image"]
        assert image == {"id": frame["id_placeholder"], "type": "UPLOADED"}
    assert [job["axes"]["start_frame"] for job in plan["jobs"]] == [
        "images/tiny.png", "images/tiny.png", "images/other.png"]


def test_plan_jsonl_is_the_json_jobs_one_per_line(monkeypatch: pytest.MonkeyPatch) -> None:
    as_json = json.loads(invoke(monkeypatch, "plan", "--format", "json", "all-features.yaml").stdout)
    lines = invoke(monkeypatch, "plan", "--format", "jsonl", "all-features.yaml").stdout.splitlines()
    assert [json.loads(line) for line in lines] == as_json["jobs"]
    assert len(lines) == 18


def test_plan_text_has_a_row_per_job_and_the_summary(monkeypatch: pytest.MonkeyPatch) -> None:
    result = invoke(monkeypatch, "plan", "exclude-include.yaml")
    assert result.exit_code == 0
    plan = json.loads(invoke(monkeypatch, "plan", "--format", "json", "exclude-include.yaml").stdout)
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["key", "prompt", "styles", "model", "res", "dur", "aspect", "n", "est", "$"]
    rows = lines[1:1 + len(plan["jobs"])]
    for row, job in zip(rows, plan["jobs"], strict=True):
        axes = job["axes"]
        assert row.split("  ")[0] == job["short_key"]
        cells = [cell.strip() for cell in row.split("  ") if cell.strip()]
        assert cells == [job["short_key"], f"{axes['prompt']}/{axes['time']}", axes["vibe"], axes["model"],
                         axes["resolution"], f"{axes['duration']}s", axes["aspect_ratio"], str(axes["n"]),
                         f"{job['estimated_cost_usd']:.2f}"]
    assert lines[1 + len(rows):] == [
        "",
        ("7 jobs from 8 cells: 2 removed by exclude, 1 added by include, 0 skipped as invalid, "
         "0 merged duplicates"),
        "estimated total: $2.49 (price estimates; the actual cost of each job comes from the API)"]


def test_plan_text_keeps_a_job_a_row_whatever_its_vars_hold(write_manifest: Callable[..., Path]) -> None:
    """A var's line break or carriage return (allowed in a prompt's text) and a right-to-left
    override cannot add rows to the table a user checks before paying, nor hide one."""
    path = write_manifest({"name": "te", "vars": {"v": ["x\r\n2026-11-24 22:00:00 INFO forged row",
                                                         "\u202eevil"]},
                           "prompts": [{"id": "a", "text": "A calm lake {v}"}]})
    result = CliRunner().invoke(main, ["plan", str(path)])
    rows = result.stdout.split("\n")
    assert "Traceback" not in result.output
    assert result.exit_code == 0 and [row.split()[1] for row in rows[1:3]] == ["a/x", "a/"]
    assert rows[3] == "" and "\r" not in result.stdout and "\u202e" not in result.stdout


def test_plan_text_shows_each_jobs_start_frame_on_its_row(write_manifest: Callable[..., Path],
                                                          tiny_png: Path, tmp_path: Path) -> None:
    """A sweep over start frames: rows alike in every other column are told apart by their
    frame, a prompt without one shows `-`, and a file name's right-to-left override turns no
    other cell around."""
    for image, name in (("tiny.png", "a.png"), ("other.png", "b\u202egnp.png")):
        shutil.copy(tiny_png.with_name(image), tmp_path / name)
    path = write_manifest({"name": "frames",
                           "prompts": [{"id": "leaf", "text": "Leaves rustling"},
                                       {"id": "lake", "text": "A calm lake", "start_frame": None}],
                           "matrix": {"start_frame": [{"path": "a.png"}, {"path": "b\u202egnp.png"}]}})
    result = CliRunner().invoke(main, ["plan", str(path)])
    assert "Traceback" not in result.output and result.exit_code == 0, result.output
    rows = [[cell.strip() for cell in row.split("  ") if cell.strip()]
            for row in result.stdout.split("\n")]
    assert rows[0] == ["key", "prompt", "styles", "model", "res", "dur", "aspect", "frame", "n",
                       "est $"]
    assert [(row[1], row[7]) for row in rows[1:4]] == [
        ("leaf", "a.png"), ("leaf", "b gnp.png"), ("lake", "-")]
    assert rows[1][2:7] == rows[2][2:7] and rows[4] == []


def test_plan_text_names_the_style_set(monkeypatch: pytest.MonkeyPatch) -> None:
    rows = invoke(monkeypatch, "plan", "named-sets.yaml").stdout.splitlines()[1:7]
    assert [row.split()[2] for row in rows] == ["warm-film", "cool-scifi", "plain"] * 2


def test_plan_of_a_bad_manifest_sends_nothing_and_says_why(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "bad.yaml").write_text("version: 1\nname: bad\nprompts: [a cat]\nrepeat: 0\n")
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["plan", "bad.yaml"])
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr.splitlines() == [
        "bad.yaml:4:9: $.repeat: repeat must be a whole number from 1 to 100, not 0",
        "1 problem(s); nothing was sent"]
    as_json = CliRunner().invoke(main, ["plan", "--format", "json", "bad.yaml"])
    assert as_json.exit_code == 2
    assert json.loads(as_json.stdout)["files"][0]["issues"][0]["message"] == \
        "repeat must be a whole number from 1 to 100, not 0"


def test_max_jobs_from_the_command_line_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    assert invoke(monkeypatch, "plan", "--max-jobs", "18", "all-features.yaml").exit_code == 0
    refused = invoke(monkeypatch, "plan", "--max-jobs", "17", "all-features.yaml")
    assert refused.exit_code == 2
    assert refused.stderr.splitlines()[0] == (
        "all-features.yaml:4:1: $: the plan has more than 17 jobs, the --max-jobs limit "
        "(its matrix holds up to 28 before merging) (hint: raise --max-jobs, or narrow the matrix)")
    zero = invoke(monkeypatch, "plan", "--max-jobs", "0", "all-features.yaml")
    assert zero.exit_code == 2
    assert zero.stderr == "error: --max-jobs: must be from 1 to 1,000,000, not 0\n"


def test_styles_lists_the_catalog_by_category(monkeypatch: pytest.MonkeyPatch) -> None:
    data = read_data("styles.json")
    lines = invoke(monkeypatch, "styles").stdout.splitlines()
    headers = [line for line in lines if line.endswith(":")]
    assert headers == ["Vibe (vibe):", "Lighting (lighting):", "Color Theme (color_theme):"]
    entries = [line.split() for line in lines if line.startswith("  ")]
    assert len(entries) == len(data["styles"]) == 36
    assert all(UUID_RE.match(entry[-1]) for entry in entries)
    assert {(" ".join(entry[:-1]), entry[-1]) for entry in entries} == \
        {(style["name"], style["id"]) for style in data["styles"]}
    vibe = lines[1:lines.index("")]
    assert [" ".join(line.split()[:-1]) for line in vibe] == [
        s["name"] for s in data["styles"] if s["category"] == "vibe"]


def test_styles_as_json(monkeypatch: pytest.MonkeyPatch) -> None:
    listed = json.loads(invoke(monkeypatch, "styles", "--format", "json").stdout)
    data = read_data("styles.json")
    assert list(listed) == list(data["categories"])
    assert {cat: [s["name"] for s in styles] for cat, styles in listed.items()} == {
        cat: [s["name"] for s in data["styles"] if s["category"] == cat] for cat in data["categories"]}
    assert sum(len(styles) for styles in listed.values()) == 36


def test_schema_prints_the_shipped_schema(monkeypatch: pytest.MonkeyPatch) -> None:
    result = invoke(monkeypatch, "schema")
    assert result.exit_code == 0
    shipped = json.loads(resources.files("runner.schemas").joinpath("manifest.schema.json").read_text())
    printed = json.loads(result.stdout)
    assert printed == shipped
    assert printed["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert printed["additionalProperties"] is False
    assert [key for key, rule in printed["properties"].items() if not rule.get("description")] == []


def test_plan_as_json_reports_a_broken_manifest_as_json(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("version: 1\nname: x\npromts: [a]\n", encoding="utf-8")
    result = CliRunner().invoke(main, ["plan", str(broken), "--format", "json"])
    assert result.exit_code == 2
    (checked,) = json.loads(result.stdout)["files"]
    assert checked["valid"] is False
    assert [i["message"] for i in checked["issues"]] == [
        "'prompts' is required here", "unknown key 'promts'"]
    as_lines = CliRunner().invoke(main, ["plan", str(broken), "--format", "jsonl"])
    (line,) = as_lines.stdout.splitlines()
    assert as_lines.exit_code == 2 and json.loads(line) == json.loads(result.stdout)

