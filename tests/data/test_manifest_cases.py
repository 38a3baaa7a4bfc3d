"""The manifest cases in tests/data/manifests, run through `hailuo-batch validate` and `plan`.

Each invalid case opens with one `# expect: <line>` comment per problem, in the order printed,
with the file named as the command sees it when run from the case's folder (`{here}` stands
for that folder's absolute path). Each valid case opens with `# expect-counts: jobs=N ...`,
the plan's summary figures. Hostile inputs too large or too strange to commit are made here.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from runner import catalog
from runner.cli import main
from runner.manifest import MAX_BYTES, MAX_DEPTH, MAX_VALUES
from runner.plan import MAX_CELLS, UPLOAD_PREFIX, job_key

CASES = Path(__file__).parent / "manifests"
INVALID = sorted((CASES / "invalid").glob("*.yaml"))
VALID = sorted((CASES / "valid").glob("*.yaml"))
EXPECT = b"# expect: "
CHECK_ID = "11111111-2222-4333-8444-555555555555"


def expected_lines(case: Path) -> list[str]:
    here = str(case.parent.resolve())
    lines = []
    for raw in case.read_bytes().splitlines():
        if not raw.startswith(EXPECT):
            break
        lines.append(raw[len(EXPECT):].decode("utf-8").replace("{here}", here))
    return lines


def expected_counts(case: Path) -> dict[str, int]:
    first = case.read_text("utf-8").splitlines()[0]
    assert first.startswith("# expect-counts: "), f"{case.name} has no expect-counts line"
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", first)}


def run(monkeypatch: pytest.MonkeyPatch, folder: Path, *args: str) -> Result:
    """The command as a user in `folder` would run it; no exception may escape it but exit."""
    monkeypatch.chdir(folder)
    result = CliRunner().invoke(main, list(args))
    assert "Traceback" not in result.output
    if result.exception is not None:
        assert isinstance(result.exception, SystemExit), result.exc_info
    return result


def test_there_are_enough_invalid_cases_each_with_expectations() -> None:
    assert len(INVALID) >= 45
    assert all(expected_lines(case) for case in INVALID), "a case without # expect: lines"


@pytest.mark.parametrize("case", INVALID, ids=lambda p: p.stem)
def test_invalid_case_prints_exactly_its_problems(case: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    result = run(monkeypatch, case.parent, "validate", case.name)
    assert result.exit_code == 2
    assert result.stdout.splitlines() == expected_lines(case)
    count = len(expected_lines(case))
    assert result.stderr.splitlines()[-1] == f"{count} problem(s) in 1 of 1 file(s)"


def test_every_invalid_file_reported_in_one_go(monkeypatch: pytest.MonkeyPatch) -> None:
    valid_one = Path("..", "valid", "single-string.yaml")
    names = [case.name for case in INVALID]
    result = run(monkeypatch, CASES / "invalid", "validate", *names[:10], str(valid_one), *names[10:])
    assert result.exit_code == 2
    expected = [line for case in INVALID[:10] for line in expected_lines(case)]
    expected.append(f"{valid_one}: ok, 1 job, estimated $0.27")
    expected += [line for case in INVALID[10:] for line in expected_lines(case)]
    assert result.stdout.splitlines() == expected
    problems = sum(len(expected_lines(case)) for case in INVALID)
    assert result.stderr.splitlines()[-1] == \
        f"{problems} problem(s) in {len(INVALID)} of {len(INVALID) + 1} file(s)"


def test_validate_json_lists_every_issue_with_its_place(monkeypatch: pytest.MonkeyPatch) -> None:
    cases = [CASES / "invalid" / "many-problems.yaml", CASES / "invalid" / "tabs.yaml"]
    result = run(monkeypatch, CASES / "invalid", "validate", "--format", "json",
                 *[case.name for case in cases])
    assert result.exit_code == 2
    report = json.loads(result.stdout)
    assert report["problems"] == 5
    for entry, case in zip(report["files"], cases, strict=True):
        assert entry["file"] == case.name and entry["valid"] is False and entry["jobs"] is None
        rendered = []
        for issue in entry["issues"]:
            text = f"{issue['file']}:{issue['line']}:{issue['column']}: {issue['path']}: {issue['message']}"
            rendered.append(f"{text} (hint: {issue['hint']})" if issue["hint"] else text)
        assert rendered == expected_lines(case)


def test_validate_json_of_a_valid_file(monkeypatch: pytest.MonkeyPatch) -> None:
    case = CASES / "valid" / "repeat.yaml"
    result = run(monkeypatch, case.parent, "validate", "--format", "json", case.name)
    assert result.exit_code == 0
    assert json.loads(result.stdout) == {"files": [{"file": case.name, "valid": True, "jobs": 6,
                                                    "estimated_usd": 2.16, "issues": [],
                                                    "warnings": []}],
                                         "problems": 0}


def test_validate_json_has_the_warnings_the_text_prints(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    over = tmp_path / "over-budget.yaml"  # above its budget, and an exclude that matches nothing
    over.write_text("version: 1\nname: over\nprompts: [a cat]\nrepeat: 4\nrun: {budget_usd: 1}\n"
                    "matrix: {exclude: [{duration: 10}]}\n", "utf-8")
    names = [case.name for case in VALID] + [str(over)]
    text = run(monkeypatch, CASES / "valid", "validate", *names)
    as_json = run(monkeypatch, CASES / "valid", "validate", "--format", "json", *names)
    # the text names the file once: at the place a warning has (x.yaml:8:5: warning: ...)
    printed = [line.replace(": warning: ", ": ", 1) for line in text.stdout.splitlines()
               if ": warning: " in line]
    listed = [warning if warning.startswith(f"{entry['file']}:") else f"{entry['file']}: {warning}"
              for entry in json.loads(as_json.stdout)["files"] for warning in entry["warnings"]]
    assert len(listed) >= 5 and listed == printed


# Hostile input: made here, refused fast, with a clear message and no traceback.

def _alias_bomb(path: Path) -> None:
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)]
    path.write_text("\n".join(lines) + "\n")


def _key_alias_bomb(path: Path) -> None:
    """The same bomb with its anchors in a mapping key, which no value count sees."""
    levels = ['&a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    levels += [f"&a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)]
    path.write_text(f"version: 1\nname: boom\nprompts: [a cat]\nvars:\n  ? [{', '.join(levels)}]\n  : 1\n")


def _deep_flow(path: Path) -> None:
    path.write_text("version: 1\nname: deep\nprompts: " + "[" * 10_000 + "]" * 10_000 + "\n")


def _deep_block(path: Path) -> None:
    path.write_text("version: 1\nname: deep\nprompts:\n" + "- " * 10_000 + "x\n")


def _deep_mapping(path: Path) -> None:
    path.write_text("version: 1\nname: deep\nprompts: " + "{a: " * 10_000 + "1" + "}" * 10_000 + "\n")


def _fifty_megabytes(path: Path) -> None:
    with path.open("wb") as file:
        file.write(b"version: 1\nname: big\nprompts:\n")
        file.truncate(50 * 1024 * 1024)


def _just_over_the_limit(path: Path) -> None:
    head = b"version: 1\nname: big\nprompts:\n"
    line = b"  - a cat sitting on a mat in the sun\n"
    body = line * (MAX_BYTES // len(line) + 1)
    path.write_bytes((head + body)[:MAX_BYTES] + b"\n")


def _product_explosion(path: Path) -> None:
    numbers = ", ".join(str(i) for i in range(500))
    path.write_text(f"version: 1\nname: boom\nvars:\n  a: [{numbers}]\n  b: [{numbers}]\n"
                    "prompts: ['{a} {b}']\nstyles:\n  vibe: [Clay, Sketch, Logo, Papercraft]\n")


def _rule_broken_by_every_cell(path: Path) -> None:
    numbers = ", ".join(str(i) for i in range(1000))
    path.write_text(f"version: 1\nname: boom\nvars:\n  a: [{numbers}]\nprompts: ['{{a}}']\n"
                    "defaults: {resolution: 1080p, duration: 10}\n")


def _mostly_excluded(path: Path) -> None:
    numbers = ", ".join(str(i) for i in range(130))
    path.write_text(f"version: 1\nname: boom\nvars:\n  a: [{numbers}]\n  b: [{numbers}]\n"
                    f"  c: [{numbers}]\nprompts: ['{{a}} {{b}} {{c}}']\n"
                    "matrix:\n  exclude: [{a: 1}]\n")


def _binary_junk(path: Path) -> None:
    path.write_bytes(bytes(range(256)) * 64)


def _junk_without_nul(path: Path) -> None:
    path.write_bytes(b"version: 1\n" + bytes(range(1, 256)) * 64)


HOSTILE = {
    "alias-bomb": (_alias_bomb, (f"7:5: $.a6[0]: the document expands to more than {MAX_VALUES:,} values "
                                 "(aliases that repeat aliases?)")),
    "key-alias-bomb": (_key_alias_bomb, "5:5: $.vars: a key must be a name, not a list or a mapping"),
    "deep-flow": (_deep_flow, f"3:{9 + MAX_DEPTH}: $: nesting deeper than {MAX_DEPTH} levels"),
    "deep-block": (_deep_block, f"4:{2 * MAX_DEPTH - 1}: $: nesting deeper than {MAX_DEPTH} levels"),
    "deep-mapping": (_deep_mapping, (f"3:{10 + 4 * (MAX_DEPTH - 1)}: $: nesting deeper than "
                                     f"{MAX_DEPTH} levels")),
    "fifty-megabytes": (_fifty_megabytes, ("1:1: $: the file is 52,428,800 bytes, more than the 5 MiB "
                                           "a manifest may be")),
    "just-over-the-limit": (_just_over_the_limit, (f"1:1: $: the file is {MAX_BYTES + 1:,} bytes, more "
                                                   "than the 5 MiB a manifest may be")),
    "product-explosion": (_product_explosion, ("1:1: $: the plan has more than 1,000 jobs, the max_jobs "
                                               "limit (its matrix holds up to 1,000,000 before merging) "
                                               "(hint: raise run.max_jobs (or --max-jobs), "
                                               "or narrow the matrix)")),
    "mostly-excluded": (_mostly_excluded, ("1:1: $: the matrix holds 2,197,000 cells, more than the "
                                           f"{MAX_CELLS:,} a plan may go through (exclude and "
                                           "on_invalid: skip drop cells one by one) (hint: narrow "
                                           "the axes rather than excluding most of their cells)")),
    "binary-junk": (_binary_junk, "1:1: $: this is a binary file, not YAML text"),
    "junk-without-nul": (_junk_without_nul, "3:1: $: the file is not UTF-8 text"),
}


def test_a_rule_broken_by_many_cells_names_twenty_and_counts_the_rest(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _rule_broken_by_every_cell(tmp_path / "boom.yaml")
    result = run(monkeypatch, tmp_path, "validate", "boom.yaml")
    hint = " (hint: fix the axis, exclude the cell, or set on_invalid: skip)"
    named = [f"boom.yaml:6:41: $.defaults.duration: cell prompt=prompt a={a} model=hailuo-2_3 "
             f"resolution=1080p duration=10 aspect_ratio=16:9: 1080p allows 6 s only, not 10{hint}"
             for a in range(20)]
    assert result.exit_code == 2
    assert result.stdout.splitlines() == [
        *named, f"boom.yaml:6:41: $.defaults.duration: 980 more cells: 1080p allows 6 s only, not 10{hint}"]
    assert result.stderr.splitlines() == ["1,000 problem(s) in 1 of 1 file(s)"]  # each cell counted
    document = json.loads(run(monkeypatch, tmp_path, "validate", "--format", "json", "boom.yaml").stdout)
    assert document["problems"] == 1000 and document["files"][0]["issues"][-1]["problems"] == 980
    assert "1,000 problem(s); nothing was sent" in run(monkeypatch, tmp_path, "plan", "boom.yaml").stderr


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_file_is_refused_within_a_second(name: str, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    make, expected = HOSTILE[name]
    make(tmp_path / f"{name}.yaml")
    started = time.perf_counter()
    result = run(monkeypatch, tmp_path, "validate", f"{name}.yaml")
    assert time.perf_counter() - started < 1.0
    assert result.exit_code == 2
    assert result.stdout.splitlines() == [f"{name}.yaml:{expected}"]


def test_a_missing_file_and_a_folder_are_located_problems(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "folder.yaml").mkdir()
    result = run(monkeypatch, tmp_path, "validate", "nowhere.yaml", "folder.yaml")
    assert result.exit_code == 2
    assert result.stdout.splitlines() == [
        "nowhere.yaml:1:1: $: cannot read the file: No such file or directory",
        "folder.yaml:1:1: $: not a file"]


# Valid cases: each validates and plans, with the counts it declares.

def wire_mismatches(job: dict[str, Any]) -> list[str]:
    """How a planned job's wire request differs from what its axes say it must be."""
    cat, axes, request = catalog.load(), job["axes"], job["request"]
    params = request["parameters"]
    problems = []
    if set(request) != {"model", "public", "parameters"} or request["model"] != axes["model"]:
        problems.append("top level")
    if params["mode"] != cat.mode(axes["resolution"]) or params["duration"] != axes["duration"]:
        problems.append("mode or duration")
    if (params["width"], params["height"]) != cat.size(axes["resolution"], axes["aspect_ratio"]):
        problems.append("size")
    if params.get("style_ids", []) != [cat.style(name).id for name in job["styles"]]:
        problems.append("style_ids")
    if "style_ids" in params and not params["style_ids"]:
        problems.append("empty style_ids")
    framed = "guidances" in params or "start_frame" in params
    if framed != ("start_frame" in axes):
        problems.append("start frame")
    return problems


def checkable(request: dict[str, Any]) -> dict[str, Any]:
    """The request with a not-yet-uploaded start frame's placeholder id replaced by a UUID."""
    text = json.dumps(request)
    return json.loads(re.sub(re.escape(UPLOAD_PREFIX) + "[0-9a-f]{64}", CHECK_ID, text))


def test_there_are_valid_cases() -> None:
    assert 10 <= len(VALID) <= 20


@pytest.mark.parametrize("case", VALID, ids=lambda p: p.stem)
def test_valid_case_validates_and_plans(case: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    counts = expected_counts(case)
    checked = run(monkeypatch, case.parent, "validate", case.name)
    assert checked.exit_code == 0, checked.output
    jobs = "1 job" if counts["jobs"] == 1 else f"{counts['jobs']} jobs"
    assert checked.stdout.startswith(f"{case.name}: ok, {jobs}, estimated $")

    planned = run(monkeypatch, case.parent, "plan", "--format", "json", case.name)
    assert planned.exit_code == 0, planned.output
    plan = json.loads(planned.stdout)
    summary = plan["summary"]
    assert {k: summary[k] for k in counts if k != "jobs"} == {k: v for k, v in counts.items() if k != "jobs"}
    assert summary["jobs"] == len(plan["jobs"]) == counts["jobs"]
    assert summary["jobs"] == (summary["cells"] - summary["excluded"] + summary["included"]
                               - summary["merged"] - summary["skipped_invalid"]) * max(
        job["axes"]["n"] for job in plan["jobs"])
    jobs = plan["jobs"]
    assert [job["index"] for job in jobs] == list(range(len(jobs)))
    assert len({job["key"] for job in jobs}) == len(jobs)
    assert len({job["filename"].lower() for job in jobs}) == len(jobs)
    cat = catalog.load()
    for job in jobs:
        assert job["key"] == job_key(job["request"], job["axes"]["n"])
        assert job["short_key"] == job["key"][:10]
        assert wire_mismatches(job) == []
        assert cat.check_request(checkable(job["request"])) == []
        price = cat.price(job["axes"]["model"], job["axes"]["resolution"], job["axes"]["duration"])
        if "prices" not in case.read_text("utf-8"):
            assert job["estimated_cost_usd"] == price
