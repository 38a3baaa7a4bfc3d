"""The schema works with a tool no one here wrote, and every example in jobs/ is what it says."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from runner import catalog
from runner.cli import main
from runner.plan import UPLOAD_PREFIX, make_plan

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = ROOT / "schemas" / "manifest.schema.json"
EXAMPLES = sorted((ROOT / "jobs").glob("*.yaml"))
CASES = ROOT / "tests" / "data" / "manifests"
CHECK_JSONSCHEMA = Path(sys.executable).parent / "check-jsonschema"
SCHEMA_LINE = "# yaml-language-server: $schema=../schemas/manifest.schema.json"
# Cases whose problem is one of structure, which any JSON Schema validator must see.
STRUCTURAL = ["unknown-top-key", "unknown-defaults-key", "version", "name-slug", "enum-model",
              "wrong-type-repeat", "empty-prompts", "sets-and-categories", "start-frame-bad-id",
              "prices-bad-model", "vars-bad-name", "include-without-prompt", "run-bad-duration"]


def check_jsonschema(*files: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(CHECK_JSONSCHEMA), "--schemafile", str(SCHEMA), *map(str, files)],
                          capture_output=True, text=True, timeout=60, check=False)


def test_the_examples_are_all_there() -> None:
    assert {p.stem for p in EXAMPLES} >= {"single", "nightly", "ab-sweep", "lighting-sweep",
                                          "image-to-video"}


def test_check_jsonschema_accepts_every_example_and_valid_case() -> None:
    result = check_jsonschema(*EXAMPLES, *sorted((CASES / "valid").glob("*.yaml")))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ok -- validation done" in result.stdout


def test_check_jsonschema_rejects_structural_mistakes() -> None:
    files = [CASES / "invalid" / f"{name}.yaml" for name in STRUCTURAL]
    result = check_jsonschema(*files)
    assert result.returncode == 1
    reported = set(re.findall(r"^\s+(\S+\.yaml)::", result.stdout, re.MULTILINE))
    assert {Path(name).name for name in reported} == {f.name for f in files}


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_example_opens_with_its_purpose_and_names_the_schema(example: Path) -> None:
    lines = example.read_text("utf-8").splitlines()
    assert lines[0].startswith("# ") and len(lines[0]) > 20
    assert SCHEMA_LINE in lines
    assert (example.parent / "../schemas/manifest.schema.json").resolve() == SCHEMA


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_example_validates_and_plans(example: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    result = CliRunner().invoke(main, ["validate", f"jobs/{example.name}"])
    assert result.exit_code == 0, result.output
    assert re.fullmatch(rf"jobs/{re.escape(example.name)}: ok, \d+ jobs?, estimated \$\d+\.\d\d\n",
                        result.stdout)
    plan = make_plan(example)
    assert plan.jobs and plan.settings.max_jobs >= len(plan.jobs)
    rules = catalog.load()
    for job in plan.jobs:
        body = job.wire({job.upload.sha256: "11111111-2222-4333-8444-555555555555"}) if job.upload \
            else job.request
        assert UPLOAD_PREFIX not in str(body)
        assert rules.check_request(body) == []


def test_the_image_to_video_example_ships_its_start_frame() -> None:
    plan = make_plan(ROOT / "jobs" / "image-to-video.yaml")
    uploads = {job.upload for job in plan.jobs}
    assert len(uploads) == 1
    upload = uploads.pop()
    assert upload is not None and upload.path.is_file() and upload.path.is_relative_to(ROOT / "jobs")
    assert upload.path.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
