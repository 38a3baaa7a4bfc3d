"""Manifests written on the fly for the plan's tests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

IMAGES = Path(__file__).parent.parent / "data" / "manifests" / "valid" / "images"


@pytest.fixture
def tiny_png() -> Path:
    """A real 2x2 PNG, small enough to read in every test."""
    return IMAGES / "tiny.png"


@pytest.fixture
def write_manifest(tmp_path: Path) -> Callable[..., Path]:
    """Writes a manifest (a dict, dumped as YAML, or YAML text) into tmp_path; the dict gets
    `version`, `name` and one prompt unless it says otherwise."""

    def write(data: dict[str, Any] | str, name: str = "manifest.yaml") -> Path:
        path = tmp_path / name
        if isinstance(data, str):
            path.write_text(data, "utf-8")
        else:
            full = {"version": 1, "name": "test", "prompts": ["A paper boat in a gutter"], **data}
            path.write_text(yaml.safe_dump(full, sort_keys=False, allow_unicode=True), "utf-8")
        return path

    return write
