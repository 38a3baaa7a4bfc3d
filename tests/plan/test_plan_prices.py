"""Estimated costs: the shipped table of estimates, overridden by the manifest, then by --prices."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from runner import catalog
from runner.catalog import read_data
from runner.cli import main
from runner.errors import UsageError
from runner.plan import make_plan

WriteManifest = Callable[..., Path]
SWEEP = {"matrix": {"resolution": ["768p", "1080p"], "duration": [6, 10],
                    "exclude": [{"resolution": "1080p", "duration": 10}]}}


def costs(path: Path, **kwargs: object) -> list[float]:
    return [job.estimated_cost for job in make_plan(path, **kwargs).jobs]


def test_the_shipped_table_is_labelled_as_estimates_and_used_by_default(
        write_manifest: WriteManifest) -> None:
    shipped = read_data("prices.json")
    assert shipped["estimate"] is True and shipped["currency"] == "USD"
    assert "ESTIMATES" in shipped["$comment"]
    table = shipped["prices"]["hailuo-2_3"]
    assert costs(write_manifest(SWEEP)) == [table["768p"]["6"], table["768p"]["10"], table["1080p"]["6"]]
    assert catalog.load().price("hailuo-2_3-fast", "768p", 6) == 0.19


def test_the_manifest_overrides_entry_by_entry(write_manifest: WriteManifest) -> None:
    path = write_manifest({**SWEEP, "prices": {"hailuo-2_3": {"768p": {6: 0.5}}}})
    assert costs(path) == [0.5, 0.45, 0.47]
    assert make_plan(path).estimated_usd == 1.42


def test_a_price_table_given_on_the_command_line_wins(write_manifest: WriteManifest) -> None:
    path = write_manifest({**SWEEP, "prices": {"hailuo-2_3": {"768p": {6: 0.5, 10: 0.9}}}})
    assert costs(path, prices={"hailuo-2_3": {"768p": {6: 1.0}}}) == [1.0, 0.9, 0.47]


@pytest.mark.parametrize(("table", "message"), [
    ({"hailuo-2_3": 0.27}, "--prices: $[\"hailuo-2_3\"]: 0.27 is not of type 'object'"),
    ({"hailuo-3": {"768p": {"6": 1}}},
     "--prices: $: 'hailuo-3' is not one of ['hailuo-2_3', 'hailuo-2_3-fast']"),
    ({"hailuo-2_3": {"768p": {8: 1}}},
     "--prices: $[\"hailuo-2_3\"][\"768p\"]: '8' is not one of ['6', '10']"),
    ({"hailuo-2_3": {"768p": {6: -1}}}, ("--prices: $[\"hailuo-2_3\"][\"768p\"][\"6\"]: -1 is less than the "
                                         "minimum of 0")),
    ({"hailuo-2_3": {"768p": {6: float("nan")}}},
     "--prices: $[\"hailuo-2_3\"][\"768p\"][\"6\"]: .nan is not a finite number"),
    ({"hailuo-2_3": {"768p": {10: float("inf")}}},
     "--prices: $[\"hailuo-2_3\"][\"768p\"][\"10\"]: .inf is not a finite number"),
])
def test_a_bad_command_line_table_is_a_usage_error(write_manifest: WriteManifest, table: dict,
                                                   message: str) -> None:
    with pytest.raises(UsageError) as caught:
        make_plan(write_manifest({}), prices=table)
    assert str(caught.value) == message


def test_plan_with_a_prices_file(write_manifest: WriteManifest, tmp_path: Path,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    write_manifest({**SWEEP, "prices": {"hailuo-2_3": {"768p": {6: 0.5}}}})
    (tmp_path / "prices.yaml").write_text("hailuo-2_3:\n  768p: {6: 0.3, 10: 0.6}\n  1080p: {6: 0.9}\n")
    (tmp_path / "prices.json").write_text(json.dumps({"currency": "USD", "prices": {
        "hailuo-2_3": {"1080p": {"6": 2.0}}}}))
    monkeypatch.chdir(tmp_path)
    for prices, expected in (("prices.yaml", [0.3, 0.6, 0.9]), ("prices.json", [0.5, 0.45, 2.0])):
        result = CliRunner().invoke(main, ["plan", "--format", "json", "--prices", prices, "manifest.yaml"])
        assert result.exit_code == 0, result.output
        plan = json.loads(result.stdout)
        assert [job["estimated_cost_usd"] for job in plan["jobs"]] == expected
        assert plan["summary"]["estimated_usd"] == round(sum(expected), 2)
        assert plan["summary"]["prices_are_estimates"] is True


@pytest.mark.parametrize(("content", "error"), [
    (None, "prices.yaml:1:1: $: cannot read the file: No such file or directory"),
    ("", "prices.yaml:1:1: $: the price table is empty"),
    ("just text\n", ('prices.yaml:1:1: $: a price table maps model -> resolution -> duration -> USD, '
                     'not "just text"')),
    ("hailuo-2_3: {768p: {6: free}}\n",
     'prices.yaml:1:24: $["hailuo-2_3"]["768p"]["6"]: "free" is not of type number'),
    ("prices:\n  hailuo-2_3:\n    768p:\n      6: 0.3\n      8: 0.4\n",
     'prices.yaml:5:7: $.prices["hailuo-2_3"]["768p"]["8"]: "8" is not one of: 6, 10'),
    ("prices:\n  hailuo-2_3: {768p: {6: 0.5}}\nhailuo-2_3-fast: {768p: {6: 0.01}}\n",
     "prices.yaml:3:1: $[\"hailuo-2_3-fast\"]: unknown key 'hailuo-2_3-fast' (hint: allowed here: "
     "prices, $comment, estimate, currency, usd_per_credit)"),
    ("curency: USD\nprices: {}\n",
     "prices.yaml:1:1: $.curency: unknown key 'curency' (hint: did you mean 'currency'?)"),
    ("currency: EUR\nprices: {}\n", 'prices.yaml:1:11: $.currency: prices are read in USD only, not "EUR"'),
    ("usd_per_credit: 0.002\nprices: {}\n",
     "prices.yaml:1:17: $.usd_per_credit: 0.002 is not the rate of a credit, which --prices does not "
     "set ($0.0015 a credit, as schemas/prices.json says)"),
    ("estimate: false\nprices: {}\n",
     "prices.yaml:1:11: $.estimate: prices given before a run are estimates whatever a file says: "
     "the cost each create reports is what is recorded"),
], ids=["missing", "empty", "not a table", "not a number", "wrapped, bad duration",
        "wrapped, a model beside", "wrapped, a misspelt key", "wrapped, another currency",
        "wrapped, another credit rate", "wrapped, not estimates"])
def test_a_bad_prices_file_is_a_located_error(write_manifest: WriteManifest, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch, content: str | None,
                                              error: str) -> None:
    write_manifest({})
    if content is not None:
        (tmp_path / "prices.yaml").write_text(content)
    monkeypatch.chdir(tmp_path)
    planned = CliRunner().invoke(main, ["plan", "--prices", "prices.yaml", "manifest.yaml"])
    assert planned.exit_code == 2 and planned.stdout == ""
    assert planned.stderr == f"{error}\n1 problem(s); nothing was sent\n"
    checked = CliRunner().invoke(main, ["validate", "--prices", "prices.yaml", "manifest.yaml"])
    assert checked.exit_code == 2 and checked.stdout == f"{error}\n"
    assert checked.stderr == "1 problem(s) in 1 of 1 file(s)\n"
    for command in ("plan", "validate"):
        as_json = CliRunner().invoke(main, [command, "--format", "json", "--prices", "prices.yaml",
                                            "manifest.yaml"])
        (found,) = json.loads(as_json.stdout)["files"]
        assert as_json.exit_code == 2 and found["file"] == "prices.yaml" and not found["valid"]
        issue = found["issues"][0]
        assert f"{issue['file']}:{issue['line']}:{issue['column']}: {issue['path']}: " \
               f"{issue['message']}" == error.split(" (hint: ")[0]


def test_a_copy_of_the_shipped_table_is_read_as_it_is(write_manifest: WriteManifest, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    shipped = read_data("prices.json")
    shipped["prices"]["hailuo-2_3"]["768p"]["6"] = 0.4
    (tmp_path / "prices.json").write_text(json.dumps(shipped))
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["plan", "--format", "json", "--prices", "prices.json",
                                       str(write_manifest(SWEEP))])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["jobs"][0]["estimated_cost_usd"] == 0.4


def test_an_empty_prices_path_is_a_usage_error(write_manifest: WriteManifest, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    write_manifest({})
    monkeypatch.chdir(tmp_path)
    for command in ("plan", "validate"):
        result = CliRunner().invoke(main, [command, "--prices", "", "manifest.yaml"])
        assert result.exit_code == 2 and "error: --prices is empty (an unset variable?)" in result.stderr


def test_every_problem_of_a_prices_file_is_reported(write_manifest: WriteManifest, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    write_manifest({})
    (tmp_path / "prices.yaml").write_text("hailuo-2_3:\n  768p: {6: -1, 10: .nan}\nhailuo-3: {}\n")
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["plan", "--prices", "prices.yaml", "manifest.yaml"])
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        'prices.yaml:2:13: $["hailuo-2_3"]["768p"]["6"]: -1 is less than the minimum of 0',
        'prices.yaml:2:21: $["hailuo-2_3"]["768p"]["10"]: .nan is not a finite number '
        "(hint: write a number such as 0.5, or leave the key out for its default)",
        'prices.yaml:3:1: $["hailuo-3"]: "hailuo-3" is not one of: hailuo-2_3, hailuo-2_3-fast '
        "(hint: did you mean 'hailuo-2_3'?)",
        "3 problem(s); nothing was sent"]


def test_validate_reports_the_estimate(write_manifest: WriteManifest, monkeypatch: pytest.MonkeyPatch,
                                       tmp_path: Path) -> None:
    write_manifest({**SWEEP, "repeat": 2})
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["validate", "manifest.yaml"])
    assert result.exit_code == 0
    assert result.stdout == "manifest.yaml: ok, 6 jobs, estimated $2.38\n"
