"""Properties of the expansion, over manifests made by hypothesis and written as YAML files.

The counts are checked against a small model of manifest.md's expansion written here from the
contract (cells, exclude, include, merge of identical requests, model rules, repeat), not
against the planner's own counters.
"""

from __future__ import annotations

import itertools
import json
import random
import re
import shutil
import string
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runner import catalog
from runner.errors import ManifestError
from runner.plan import UPLOAD_PREFIX, Plan, make_plan

IMAGES = Path(__file__).parent.parent / "data" / "manifests" / "valid" / "images"
DEFAULTS = {"model": "hailuo-2_3", "resolution": "768p", "duration": 6, "aspect_ratio": "16:9"}
AXIS_VALUES = {"model": ["hailuo-2_3", "hailuo-2_3-fast"], "resolution": ["768p", "1080p"],
               "duration": [6, 10], "aspect_ratio": ["16:9", "9:16", "1:1", "auto"]}
CATEGORIES = ("vibe", "lighting", "color_theme")
FRAMES = [None, {"id": "5b1c6f0e-8a2d-4c3b-9e7f-1a2b3c4d5e6f", "type": "UPLOADED"},
          {"id": "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d", "type": "GENERATED"}, {"path": "tiny.png"}]
WORDS = ["dusk", "dawn", "noon", "rain", "snow", "fog"]
CHECK_ID = "11111111-2222-4333-8444-555555555555"
PROPERTY_SETTINGS = settings(max_examples=40, deadline=None, database=None,
                             suppress_health_check=[HealthCheck.too_slow])


def style_names(category: str) -> list[str]:
    return [s.name for s in catalog.load().styles if s.category == category][:4] + ["none"]


@st.composite
def manifests(draw: st.DrawFn) -> dict[str, Any]:
    """A small manifest using a random selection of the language's features."""
    var_names = draw(st.lists(st.sampled_from(["time", "weather", "mood"]), unique=True, max_size=2))
    variables = {name: draw(st.lists(st.sampled_from(WORDS), min_size=1, max_size=3, unique=True))
                 for name in var_names}
    prompts = []
    for i in range(draw(st.integers(1, 3))):
        used = draw(st.lists(st.sampled_from(var_names), unique=True)) if var_names else []
        base = draw(st.sampled_from(["A boat", "A street", "A boat"]))
        prompts.append({"id": f"p{i}", "text": " ".join([base, *(f"at {{{v}}}" for v in used)])})
    manifest: dict[str, Any] = {"version": 1, "name": "prop", "prompts": prompts}
    if variables:
        manifest["vars"] = variables
    if draw(st.booleans()):
        manifest["styles"] = {"sets": {f"set{i}": draw(st.lists(st.sampled_from(style_names(c)),
                                                                max_size=2, unique=True))
                                       for i, c in enumerate(draw(st.lists(st.sampled_from(CATEGORIES),
                                                                           min_size=1, max_size=2)))}}
    else:
        manifest["styles"] = {c: draw(st.lists(st.sampled_from(style_names(c)), min_size=1, max_size=2,
                                               unique=True))
                              for c in draw(st.lists(st.sampled_from(CATEGORIES), unique=True, max_size=2))}
    if not manifest["styles"]:
        del manifest["styles"]
    frame = draw(st.sampled_from(FRAMES))
    manifest["defaults"] = {"start_frame": frame} if frame else {}
    if draw(st.booleans()):
        manifest["defaults"]["prompt_enhance"] = draw(st.sampled_from(["ON", "OFF"]))
    matrix = {axis: draw(st.lists(st.sampled_from(AXIS_VALUES[axis]), min_size=1, max_size=2, unique=True))
              for axis in draw(st.lists(st.sampled_from(list(AXIS_VALUES)), unique=True, max_size=2))}
    axes = _axis_values(manifest, matrix)
    matrix["exclude"] = [_selector(draw, axes, min_keys=1) for _ in range(draw(st.integers(0, 2)))]
    matrix["include"] = [_include(draw, manifest, axes) for _ in range(draw(st.integers(0, 2)))]
    manifest["matrix"] = {k: v for k, v in matrix.items() if v}
    manifest["repeat"] = draw(st.integers(1, 3))
    manifest["on_invalid"] = "skip"
    manifest["run"] = {"max_jobs": 100_000}
    return manifest


def _axis_values(manifest: dict[str, Any], matrix: dict[str, Any]) -> dict[str, list[Any]]:
    axes: dict[str, list[Any]] = {"prompt": [p["id"] for p in manifest["prompts"]]}
    axes.update(manifest.get("vars", {}))
    styles = manifest.get("styles", {})
    if "sets" in styles:
        axes["style_set"] = list(styles["sets"])
    else:
        axes.update({c: styles[c] for c in CATEGORIES if c in styles})
    axes.update({axis: matrix.get(axis, [DEFAULTS[axis]]) for axis in AXIS_VALUES})
    return axes


def _selector(draw: st.DrawFn, axes: dict[str, list[Any]], *, min_keys: int) -> dict[str, Any]:
    keys = draw(st.lists(st.sampled_from(sorted(axes)), min_size=min_keys, max_size=2, unique=True))
    return {key: draw(st.sampled_from(axes[key])) for key in keys}


def _include(draw: st.DrawFn, manifest: dict[str, Any], axes: dict[str, list[Any]]) -> dict[str, Any]:
    prompt = draw(st.sampled_from(manifest["prompts"]))
    entry = {key: value for key, value in _selector(draw, axes, min_keys=0).items()
             if key != "prompt" and key not in manifest.get("vars", {})}
    entry["prompt"] = prompt["id"]
    for name in re.findall(r"\{(\w+)\}", prompt["text"]):
        entry[name] = draw(st.sampled_from(WORDS))
    return entry


# The model of the expansion: manifest.md's rules, step by step.

def model_counts(manifest: dict[str, Any]) -> dict[str, int]:
    cells, product, excluded = [], 0, 0
    matrix = manifest.get("matrix", {})
    for cell in _cells(manifest):
        product += 1
        if any(all(str(cell.get(k)) == str(v) for k, v in entry.items())
               for entry in matrix.get("exclude", [])):
            excluded += 1
        else:
            cells.append(cell)
    cells += [_included(manifest, entry) for entry in matrix.get("include", [])]
    unique = {json.dumps(_request_of(manifest, cell), sort_keys=True) for cell in cells}
    valid = [u for u in unique if _valid(json.loads(u))]
    return {"cells": product, "excluded": excluded, "included": len(matrix.get("include", [])),
            "merged": len(cells) - len(unique), "skipped_invalid": len(unique) - len(valid),
            "jobs": len(valid) * manifest["repeat"]}


def _style_axes(manifest: dict[str, Any]) -> dict[str, list[str]]:
    styles = manifest.get("styles", {})
    return {"style_set": list(styles["sets"])} if "sets" in styles else \
        {c: styles[c] for c in CATEGORIES if c in styles}


def _cells(manifest: dict[str, Any]):
    styles = _style_axes(manifest)
    matrix = manifest.get("matrix", {})
    fixed = {axis: matrix.get(axis, [DEFAULTS[axis]]) for axis in AXIS_VALUES}
    for prompt in manifest["prompts"]:
        names = list(dict.fromkeys(re.findall(r"\{(\w+)\}", prompt["text"])))
        axes = {**{n: manifest["vars"][n] for n in names}, **styles, **fixed}
        for combo in itertools.product(*axes.values()):
            yield {"prompt": prompt["id"], **dict(zip(axes, combo))}


def _included(manifest: dict[str, Any], entry: dict[str, Any]) -> dict[str, Any]:
    cell = {axis: entry.get(axis, DEFAULTS[axis]) for axis in AXIS_VALUES}
    cell.update({axis: entry.get(axis, "none") for axis in _style_axes(manifest)})
    cell.update({c: entry[c] for c in CATEGORIES if c in entry})
    return {**entry, **cell}


def _request_of(manifest: dict[str, Any], cell: dict[str, Any]) -> dict[str, Any]:
    prompt = next(p for p in manifest["prompts"] if p["id"] == cell["prompt"])
    text = re.sub(r"\{(\w+)\}", lambda m: str(cell[m.group(1)]), prompt["text"])
    sets = manifest.get("styles", {}).get("sets", {})
    styles = [n for n in sets.get(cell.get("style_set"), []) if n != "none"] + \
        [cell[c] for c in CATEGORIES if c in cell and cell[c] != "none"]
    return {"text": text, "styles": styles, "frame": manifest["defaults"].get("start_frame"),
            "enhance": manifest["defaults"].get("prompt_enhance"),
            **{axis: cell[axis] for axis in AXIS_VALUES}}


def _valid(request: dict[str, Any]) -> bool:
    framed = request["frame"] is not None
    return not ((request["resolution"] == "1080p" and request["duration"] == 10)
                or (not framed and request["aspect_ratio"] != "16:9")
                or (request["model"] == "hailuo-2_3-fast" and not framed)
                or (request["model"] == "hailuo-2_3-fast" and request["enhance"] is not None))


# Writing and planning.

@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    made = tmp_path_factory.mktemp("properties")
    shutil.copy(IMAGES / "tiny.png", made / "tiny.png")
    return made


def plan_of(folder: Path, manifest: dict[str, Any], name: str = "m.yaml") -> Plan:
    path = folder / name
    path.write_text(yaml.safe_dump(manifest, sort_keys=False), "utf-8")
    return make_plan(path)


def shuffled(value: Any, rng: random.Random) -> Any:
    """The same data with every mapping's keys in another order."""
    if isinstance(value, dict):
        items = list(value.items())
        rng.shuffle(items)
        return {k: shuffled(v, rng) for k, v in items}
    if isinstance(value, list):
        return [shuffled(v, rng) for v in value]
    return value


@PROPERTY_SETTINGS
@given(manifest=manifests())
def test_job_count_follows_the_expansion(folder: Path, manifest: dict[str, Any]) -> None:
    plan = plan_of(folder, manifest)
    expected = model_counts(manifest)
    assert {"cells": plan.cells, "excluded": plan.excluded, "included": plan.included,
            "merged": plan.merged, "skipped_invalid": plan.skipped_invalid,
            "jobs": len(plan.jobs)} == expected
    assert len(plan.jobs) == (plan.cells - plan.excluded + plan.included - plan.merged
                              - plan.skipped_invalid) * manifest["repeat"]


@PROPERTY_SETTINGS
@given(manifest=manifests(), seed=st.integers(0, 2**32 - 1))
def test_keys_do_not_depend_on_the_order_of_yaml_keys(folder: Path, manifest: dict[str, Any],
                                                      seed: int) -> None:
    """The order of named style sets is the order of their axis, so jobs may come in another
    order; their keys may not change."""
    before = sorted(job.key for job in plan_of(folder, manifest).jobs)
    after = sorted(job.key for job in plan_of(folder, shuffled(manifest, random.Random(seed)), "r.yaml").jobs)
    assert after == before


@PROPERTY_SETTINGS
@given(manifest=manifests(), data=st.data())
def test_adding_an_axis_value_keeps_every_key(folder: Path, manifest: dict[str, Any],
                                              data: st.DataObject) -> None:
    before = {job.key for job in plan_of(folder, manifest).jobs}
    grown = json.loads(json.dumps(manifest))
    place = data.draw(st.sampled_from(["prompt", "var", "style", "matrix"]))
    if place == "prompt" or (place == "var" and not grown.get("vars")):
        grown["prompts"].append({"id": "added", "text": "An added prompt"})
    elif place == "var":
        name = data.draw(st.sampled_from(sorted(grown["vars"])))
        grown["vars"][name].append("".join(data.draw(st.lists(st.sampled_from(string.ascii_lowercase),
                                                              min_size=8, max_size=8))))
    elif place == "style" and grown.get("styles") and "sets" not in grown["styles"]:
        category = data.draw(st.sampled_from(sorted(grown["styles"])))
        grown["styles"][category].append(next(n for n in reversed(style_names(category)[:-1])
                                              if n not in grown["styles"][category]))
    else:
        axis = data.draw(st.sampled_from(list(AXIS_VALUES)))
        values = grown["matrix"].setdefault(axis, [DEFAULTS[axis]])
        extra = [v for v in AXIS_VALUES[axis] if v not in values]
        if extra:
            values.append(extra[0])
    after = {job.key for job in plan_of(folder, grown, "grown.yaml").jobs}
    assert before <= after


@PROPERTY_SETTINGS
@given(manifest=manifests())
def test_every_planned_job_keeps_the_model_rules(folder: Path, manifest: dict[str, Any]) -> None:
    rules = catalog.load()
    for job in plan_of(folder, manifest).jobs:
        body = json.loads(re.sub(re.escape(UPLOAD_PREFIX) + "[0-9a-f]{64}", CHECK_ID,
                                 json.dumps(job.request)))
        assert rules.check_request(body) == []
        if job.upload is not None:
            assert rules.check_request(job.wire({job.upload.sha256: CHECK_ID})) == []


@PROPERTY_SETTINGS
@given(manifest=manifests())
def test_the_same_manifest_plans_the_same_jobs_in_the_same_order(folder: Path,
                                                                 manifest: dict[str, Any]) -> None:
    first = plan_of(folder, manifest, "first.yaml")
    second = plan_of(folder, manifest, "second.yaml")
    assert [(j.key, j.index, j.filename, j.request, j.axes) for j in first.jobs] == \
        [(j.key, j.index, j.filename, j.request, j.axes) for j in second.jobs]


@PROPERTY_SETTINGS
@given(manifest=manifests())
def test_max_jobs_refuses_exactly_the_plans_above_it(folder: Path, manifest: dict[str, Any]) -> None:
    counts = model_counts(manifest)
    jobs = counts["jobs"]
    if jobs == 0:
        return
    assert len(plan_of(folder, {**manifest, "run": {"max_jobs": jobs}}).jobs) == jobs
    if jobs > 1:
        with pytest.raises(ManifestError) as refused:
            plan_of(folder, {**manifest, "run": {"max_jobs": jobs - 1}})
        most = (counts["cells"] + counts["included"]) * manifest["repeat"]
        assert [issue.message for issue in refused.value.issues] == [
            f"the plan has more than {jobs - 1:,} jobs, the max_jobs limit "
            f"(its matrix holds up to {most:,} before merging)"]
