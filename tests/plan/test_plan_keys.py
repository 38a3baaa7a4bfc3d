"""Job keys: a pinned, versioned hash of the canonical wire request and the sample index."""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Callable
from pathlib import Path

from runner.plan import KEY_VERSION, canonical_json, job_key, make_plan

WriteManifest = Callable[..., Path]
REQUEST = {"model": "hailuo-2_3", "public": False,
           "parameters": {"prompt": "A paper boat in a gutter", "mode": "RESOLUTION_768",
                          "duration": 6, "width": 1376, "height": 768}}
# Pinned: if this changes, every finished job of every user would be redone and paid for again.
PINNED_KEY_1 = "9053a06357bf4a7e1b26c9569b200dca91a028366a84377d606da951aaffd260"


def test_the_key_of_a_known_request_is_pinned() -> None:
    assert KEY_VERSION == "hailuo-job/v1"
    assert job_key(REQUEST, 1) == PINNED_KEY_1
    hashed = ('hailuo-job/v1\n{"model":"hailuo-2_3","parameters":{"duration":6,"height":768,'
              '"mode":"RESOLUTION_768","prompt":"A paper boat in a gutter","width":1376},'
              '"public":false}\n1')
    assert hashlib.sha256(hashed.encode()).hexdigest() == PINNED_KEY_1


def test_canonical_json_sorts_keys_and_is_compact() -> None:
    assert canonical_json({"b": [1, {"d": "é", "c": None}], "a": True}) == \
        '{"a":true,"b":[1,{"c":null,"d":"é"}]}'


def test_the_key_ignores_key_order_but_not_sample_or_content() -> None:
    reordered = {"parameters": dict(reversed(list(REQUEST["parameters"].items()))),
                 "public": False, "model": "hailuo-2_3"}
    assert job_key(reordered, 1) == PINNED_KEY_1
    assert job_key(REQUEST, 2) != PINNED_KEY_1
    changed = {**REQUEST, "public": True}
    assert job_key(changed, 1) != PINNED_KEY_1


def test_a_planned_job_has_the_pinned_key(write_manifest: WriteManifest) -> None:
    jobs = make_plan(write_manifest({"repeat": 2})).jobs
    assert jobs[0].request == REQUEST
    assert [job.key for job in jobs] == [PINNED_KEY_1, job_key(REQUEST, 2)]
    assert [job.sample for job in jobs] == [1, 2]


def test_a_cell_keeps_its_key_when_the_manifest_grows_around_it(write_manifest: WriteManifest) -> None:
    before = make_plan(write_manifest({"description": "first draft"})).jobs
    after = make_plan(write_manifest({
        "description": "second draft", "matrix": {"duration": [10, 6], "model": ["hailuo-2_3"]},
        "prompts": ["A kite over a beach", "A paper boat in a gutter"], "repeat": 2,
        "output": {"filename": "{prompt}_{duration}_{n}.mp4"}}, "after.yaml")).jobs
    assert {job.key for job in before} < {job.key for job in after}
    assert len(after) == 8


def _frame_manifest(folder: Path, frame: Path, image_name: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "img").mkdir(exist_ok=True)
    shutil.copy(frame, folder / "img" / image_name)
    manifest = folder / "frames.yaml"
    manifest.write_text("version: 1\nname: frames\ndefaults:\n  aspect_ratio: auto\n"
                        f"  start_frame: {{path: img/{image_name}}}\nprompts: [The image moves]\n")
    return manifest


def test_a_start_frame_is_keyed_by_its_content_not_its_place(tmp_path: Path, tiny_png: Path) -> None:
    here = make_plan(_frame_manifest(tmp_path / "a", tiny_png, "still.png")).jobs[0]
    moved = make_plan(_frame_manifest(tmp_path / "b" / "deeper", tiny_png, "renamed.png")).jobs[0]
    assert here.upload is not None and moved.upload is not None
    assert here.upload.path != moved.upload.path
    assert moved.key == here.key and moved.request == here.request


def test_a_start_frame_whose_content_changes_gets_a_new_key(tmp_path: Path, tiny_png: Path) -> None:
    manifest = _frame_manifest(tmp_path, tiny_png, "still.png")
    before = make_plan(manifest).jobs[0]
    with (tmp_path / "img" / "still.png").open("ab") as image:
        image.write(b"one more byte")
    after = make_plan(manifest).jobs[0]
    assert after.key != before.key
    assert after.upload is not None and before.upload is not None
    assert after.upload.sha256 != before.upload.sha256


def test_the_same_start_frame_used_twice_is_one_upload(write_manifest: WriteManifest, tmp_path: Path,
                                                        tiny_png: Path) -> None:
    shutil.copy(tiny_png, tmp_path / "a.png")
    path = write_manifest({"defaults": {"start_frame": {"path": "a.png"}, "aspect_ratio": "auto"},
                           "prompts": [{"id": "one", "text": "first", "start_frame": {"path": "./a.png"}},
                                       {"id": "two", "text": "second"}]})
    jobs = make_plan(path).jobs
    assert jobs[0].upload == jobs[1].upload
