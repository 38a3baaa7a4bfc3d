"""Fixtures of the report tests: synthetic output folders and one headless Chromium per module."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from reportkit import HOSTILE_PROMPT, Driver

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
