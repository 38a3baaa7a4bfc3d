"""The manifest README.md shows is a valid one, and plans to the job count the README states."""

from __future__ import annotations

import re
from pathlib import Path

from runner.plan import make_plan

ROOT = Path(__file__).resolve().parents[1]


def test_the_readme_manifest_plans_as_the_readme_says(tmp_path: Path) -> None:
    text = (ROOT / "README.md").read_text("utf-8")
    section = text.split("## A manifest", 1)[1]
    block = re.search(r"```yaml\n(.*?)```", section, re.S).group(1)
    manifest = tmp_path / "readme.yaml"
    manifest.write_text(block, encoding="utf-8")
    planned = make_plan(manifest)
    stated = re.search(r"= (\d+) cells, (\d+) jobs", section)
    assert stated is not None
    assert (planned.cells, len(planned.jobs)) == (int(stated.group(1)), int(stated.group(2)))
    assert planned.estimated_usd <= planned.settings.budget_usd
