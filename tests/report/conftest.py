"""Fixtures of the report tests: synthetic output folders and one headless Chromium per module."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from reportkit import HOSTILE_PROMPT, Driver, read_records, simulate

from bench.chromium import Chromium
from bench.runs import PROMPTS, Sweep, make_run

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"


@pytest.fixture
def sweep_run(tmp_path: Path) -> tuple[Path, list[dict[str, Any]]]:
    """2 prompts x 3 vibes x 2 lightings: 12 jobs, two failed, one unfinished, one prompt hostile."""
    out = tmp_path / "out"
    out.mkdir()
    texts = {"rain-street": PROMPTS["rain-street"], "fox": HOSTILE_PROMPT}
    records = make_run(out, Sweep(unfinished_every=7), prompt_texts=texts)
    return out, records


# Three prompts (one hostile, one the simulator's moderation refuses) x three vibes x two lightings.
SWEEP_MANIFEST = {
    "version": 1, "name": "report-sweep",
    "defaults": {"model": "hailuo-2_3", "resolution": "768p", "duration": 6, "aspect_ratio": "16:9"},
    "prompts": [{"id": "rain-street", "text": PROMPTS["rain-street"]},
                {"id": "fox", "text": HOSTILE_PROMPT},
                {"id": "blocked", "text": "A lighthouse in a storm, moderate-me"}],
    "styles": {"vibe": ["Pro Photo", "Sci-Fi", "Clay"], "lighting": ["Golden Hour", "none"]},
}


@pytest.fixture(scope="module")
def simulated_run(
        tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict[str, Any]], dict[str, Any]]:
    """A real run of the sweep against the simulator: `hailuo-batch run --simulate`, as users do."""
    folder = tmp_path_factory.mktemp("simulated")
    manifest = folder / "sweep.yaml"
    manifest.write_text(yaml.safe_dump(SWEEP_MANIFEST, sort_keys=False), encoding="utf-8")
    out = folder / "out"
    done = simulate(manifest, out)
    assert done.returncode == 1, done.stderr[-2000:]
    records = read_records(out)
    summary = json.loads((out / "summary.json").read_text())
    return out, records, summary


@pytest.fixture(scope="module")
def driver() -> Iterator[Driver]:
    """One Chromium for the module's tests; a missing browser fails them (run `make browser`)."""
    loop = asyncio.new_event_loop()
    browser = Chromium()
    try:
        loop.run_until_complete(browser.__aenter__())
        yield Driver(loop, browser)
        loop.run_until_complete(browser.__aexit__(None, None, None))
    finally:
        loop.close()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """Where browser tests leave screenshots for people to look at (git-ignored)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS
