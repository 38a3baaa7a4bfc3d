"""Run settings given on the command line: a value that cannot drive a run is a usage error."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from runner.config import MAX_CONCURRENCY, MAX_JOBS
from runner.errors import ManifestError, UsageError
from runner.manifest import schema
from runner.plan import make_plan

WriteManifest = Callable[..., Path]


@pytest.mark.parametrize(("overrides", "message"), [
    ({"budget_usd": float("nan")}, "--budget-usd: must be a finite number, 0 or more, not nan"),
    ({"budget_usd": float("inf")}, "--budget-usd: must be a finite number, 0 or more, not inf"),
    ({"budget_usd": -1.0}, "--budget-usd: must be a finite number, 0 or more, not -1.0"),
    ({"submit_per_minute": float("nan")},
     "--submit-per-minute: must be a finite number more than 0, not nan"),
    ({"submit_per_minute": float("inf")},
     "--submit-per-minute: must be a finite number more than 0, not inf"),
    ({"max_jobs": MAX_JOBS + 1}, "--max-jobs: must be from 1 to 1,000,000, not 1000001"),
    ({"concurrency": MAX_CONCURRENCY + 1}, "--concurrency: must be from 1 to 1,000, not 1001"),
    ({"concurrency": 0}, "--concurrency: must be from 1 to 1,000, not 0"),
    ({"max_runtime": "-5s"},
     "--max-runtime: '-5s' is not a duration (use e.g. 5s, 15m, 2h)"),
    ({"max_runtime": "2h", "grace": "0s"}, "--grace: must be more than zero, not '0s'"),
])
def test_a_flag_that_cannot_drive_a_run_is_refused_under_its_name(
        write_manifest: WriteManifest, overrides: dict, message: str) -> None:
    with pytest.raises(UsageError) as caught:
        make_plan(write_manifest({}), overrides=overrides)
    assert str(caught.value) == message


def test_the_schema_bounds_max_jobs_and_concurrency_as_the_settings_do() -> None:
    run = schema()["properties"]["run"]["properties"]
    assert run["max_jobs"]["maximum"] == MAX_JOBS == 1_000_000
    assert run["concurrency"]["maximum"] == MAX_CONCURRENCY == 1000


@pytest.mark.parametrize(("run", "overrides", "limit", "hint"), [
    ({"max_jobs": MAX_JOBS}, {}, "max_jobs",
     "1,000,000 is the most max_jobs allows: split the manifest into several, or narrow the matrix"),
    ({}, {"max_jobs": MAX_JOBS}, "--max-jobs",
     "1,000,000 is the most --max-jobs allows: split the manifest into several, or narrow the matrix"),
    ({"max_jobs": MAX_JOBS - 1}, {}, "max_jobs", "raise run.max_jobs (or --max-jobs), or narrow the matrix")],
    ids=["the-most-in-the-manifest", "the-most-by-the-flag", "below-the-most"])
def test_a_plan_over_the_most_max_jobs_allows_is_not_told_to_raise_it(
        write_manifest: WriteManifest, run: dict, overrides: dict, limit: str, hint: str) -> None:
    manifest = write_manifest({"prompts": ["A street at {place}"],
                               "vars": {"place": [f"p{i}" for i in range(MAX_JOBS // 100 + 1)]},
                               "repeat": 100, "run": run, "output": {"filename": "{place}_{n}.mp4"}})
    with pytest.raises(ManifestError) as caught:
        make_plan(manifest, overrides=overrides)
    (issue,) = caught.value.issues
    assert (issue.message, issue.hint) == (
        f"the plan has more than {run.get('max_jobs', MAX_JOBS):,} jobs, the {limit} limit (its matrix "
        "holds up to 1,000,100 before merging)", hint)
