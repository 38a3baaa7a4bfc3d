"""The wire request of each planned job, exactly as leonardo-api.md says it is sent."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from runner import catalog
from runner.cli import main
from runner.errors import ManifestError
from runner.plan import UPLOAD_PREFIX, canonical_json, make_plan

CLAY = "964d8a8f-865b-48c5-b79e-e75ae8727648"
FOGGY = "1d6e92d2-6e83-4ea2-bd4c-34ddfedfa163"
IMAGE_ID = "5b1c6f0e-8a2d-4c3b-9e7f-1a2b3c4d5e6f"
PROMPT = "A paper boat in a gutter"
WriteManifest = Callable[..., Path]


def only_request(path: Path) -> dict:
    plan = make_plan(path)
    assert len(plan.jobs) == 1
    return plan.jobs[0].request


def test_text_to_video_with_nothing_set(write_manifest: WriteManifest) -> None:
    assert only_request(write_manifest({})) == {
        "model": "hailuo-2_3", "public": False,
        "parameters": {"prompt": PROMPT, "mode": "RESOLUTION_768", "duration": 6,
                       "width": 1376, "height": 768}}


def test_styles_enhance_public_and_1080p(write_manifest: WriteManifest) -> None:
    path = write_manifest({"defaults": {"resolution": "1080p", "public": True, "prompt_enhance": "OFF"},
                           "styles": {"lighting": ["foggy"], "vibe": ["CLAY"]}})
    assert only_request(path) == {
        "model": "hailuo-2_3", "public": True,
        "parameters": {"prompt": PROMPT, "mode": "RESOLUTION_1080", "duration": 6,
                       "width": 1920, "height": 1080, "style_ids": [CLAY, FOGGY],
                       "prompt_enhance": "OFF"}}


def test_styles_given_by_uuid(write_manifest: WriteManifest) -> None:
    path = write_manifest({"styles": {"vibe": [CLAY.upper()]}})
    assert only_request(path)["parameters"]["style_ids"] == [CLAY]


def test_a_style_set_sends_its_styles_in_order_and_none_sends_none(write_manifest: WriteManifest) -> None:
    path = write_manifest({"styles": {"sets": {"a": ["Foggy", "Clay"], "b": ["none"]}}})
    jobs = make_plan(path).jobs
    assert [job.request["parameters"].get("style_ids") for job in jobs] == [[FOGGY, CLAY], None]
    assert [job.axes["style_set"] for job in jobs] == ["a", "b"]


@pytest.mark.parametrize(("resolution", "aspect", "mode", "size"), [
    ("768p", "16:9", "RESOLUTION_768", (1376, 768)),
    ("768p", "9:16", "RESOLUTION_768", (768, 1376)),
    ("768p", "1:1", "RESOLUTION_768", (768, 768)),
    ("768p", "auto", "RESOLUTION_768", (0, 0)),
    ("1080p", "16:9", "RESOLUTION_1080", (1920, 1080)),
    ("1080p", "9:16", "RESOLUTION_1080", (1080, 1920)),
    ("1080p", "1:1", "RESOLUTION_1080", (1080, 1080)),
    ("1080p", "auto", "RESOLUTION_1080", (0, 0)),
])
def test_image_to_video_sizes_and_the_current_start_frame_form(
        write_manifest: WriteManifest, resolution: str, aspect: str, mode: str,
        size: tuple[int, int]) -> None:
    path = write_manifest({"defaults": {"model": "hailuo-2_3-fast", "resolution": resolution,
                                        "aspect_ratio": aspect,
                                        "start_frame": {"id": IMAGE_ID, "type": "GENERATED"}}})
    assert only_request(path) == {
        "model": "hailuo-2_3-fast", "public": False,
        "parameters": {"prompt": PROMPT, "mode": mode, "duration": 6, "width": size[0],
                       "height": size[1],
                       "guidances": {"start_frame": [{"image": {"id": IMAGE_ID, "type": "GENERATED"}}]}}}


def test_the_legacy_start_frame_form_by_setting(write_manifest: WriteManifest) -> None:
    path = write_manifest({"defaults": {"start_frame": {"id": IMAGE_ID, "type": "UPLOADED"}},
                           "run": {"start_frame_field": "legacy"}})
    assert only_request(path)["parameters"] == {
        "prompt": PROMPT, "mode": "RESOLUTION_768", "duration": 6, "width": 1376, "height": 768,
        "start_frame": {"id": IMAGE_ID, "type": "UPLOADED"}}


def test_prompt_enhance_only_when_set(write_manifest: WriteManifest) -> None:
    unset = only_request(write_manifest({}))
    on = only_request(write_manifest({"defaults": {"prompt_enhance": True}}, "on.yaml"))
    assert "prompt_enhance" not in unset["parameters"]
    assert on["parameters"]["prompt_enhance"] == "ON"


def test_a_start_frame_by_path_carries_its_content_hash_until_uploaded(
        write_manifest: WriteManifest, tmp_path: Path, tiny_png: Path) -> None:
    shutil.copy(tiny_png, tmp_path / "frame.png")
    path = write_manifest({"defaults": {"start_frame": {"path": "frame.png"}, "aspect_ratio": "auto"}})
    job = make_plan(path).jobs[0]
    digest = hashlib.sha256(tiny_png.read_bytes()).hexdigest()
    assert job.upload is not None and job.upload.sha256 == digest
    assert job.upload.path == (tmp_path / "frame.png").resolve() and job.upload.extension == "png"
    image = {"id": UPLOAD_PREFIX + digest, "type": "UPLOADED"}
    assert job.request["parameters"]["guidances"] == {"start_frame": [{"image": image}]}
    sent = job.wire({digest: IMAGE_ID})
    assert sent["parameters"]["guidances"] == {"start_frame": [{"image": {"id": IMAGE_ID,
                                                                          "type": "UPLOADED"}}]}
    assert catalog.load().check_request(sent, uploaded=frozenset({IMAGE_ID})) == []
    assert job.request["parameters"]["guidances"]["start_frame"][0]["image"]["id"] == image["id"]


def test_a_prompt_whose_start_frame_is_null_is_text_to_video_whatever_the_defaults_say(
        write_manifest: WriteManifest, tmp_path: Path, tiny_png: Path) -> None:
    shutil.copy(tiny_png, tmp_path / "frame.png")
    plan = make_plan(write_manifest({"defaults": {"start_frame": {"path": "frame.png"}},
                                     "prompts": [{"text": "A cat", "start_frame": None}, "A fox"]}))
    cat, fox = plan.jobs
    assert cat.upload is None and "guidances" not in cat.request["parameters"]
    assert fox.upload is not None and "guidances" in fox.request["parameters"]


def test_a_job_without_upload_is_sent_as_planned(write_manifest: WriteManifest) -> None:
    job = make_plan(write_manifest({})).jobs[0]
    assert job.upload is None and job.wire({}) == job.request


def test_templated_prompts_and_numbers_in_text(write_manifest: WriteManifest) -> None:
    path = write_manifest({"vars": {"speed": [1.5, 2], "city": "Porto"},
                           "prompts": ["{city} at {speed}x speed, {{literal}}"]})
    prompts = [job.request["parameters"]["prompt"] for job in make_plan(path).jobs]
    assert prompts == ["Porto at 1.5x speed, {literal}", "Porto at 2x speed, {literal}"]


def test_a_var_yaml_1_1_would_turn_into_another_value_is_sent_as_written(
        write_manifest: WriteManifest) -> None:
    written = ["0600", "0x1F", "1_000", "1_000.5", "+5", "on", "No", "2024-05-01 10:00:00",
               "12345678901234567890", "-3", "12.5", "12999.990000000001", "1.0000000000000001"]
    path = write_manifest(f"""version: 1
name: clock
vars:
  hour: [{', '.join(written)}]
prompts: ["A clock showing {{hour}}"]
""")
    prompts = [job.request["parameters"]["prompt"] for job in make_plan(path).jobs]
    assert prompts == [f"A clock showing {text}" for text in written]


def test_a_decimal_var_is_said_in_full_so_close_values_stay_apart(
        write_manifest: WriteManifest) -> None:
    path = write_manifest({"vars": {"price": [12999.99, 12999.95, 3.14159265, 1234567.0]},
                           "prompts": ["A price tag showing {price} dollars"],
                           "matrix": {"exclude": [{"price": 12999.95}]},
                           "output": {"filename": "{price}.mp4"}})
    jobs = make_plan(path).jobs
    assert [job.request["parameters"]["prompt"] for job in jobs] == [
        "A price tag showing 12999.99 dollars", "A price tag showing 3.14159265 dollars",
        "A price tag showing 1234567 dollars"]
    assert [job.filename for job in jobs] == ["12999.99.mp4", "3.14159265.mp4", "1234567.mp4"]


@pytest.mark.parametrize(("written", "meant"), [
    ({"defaults": {"duration": 6.0}}, {"defaults": {"duration": 6}}),
    ({"matrix": {"duration": [6.0, 10.0]}}, {"matrix": {"duration": [6, 10]}}),
    ({"matrix": {"exclude": [{"duration": 6.0}],
                 "include": [{"prompt": "a-paper-boat-in-a-gutter", "duration": 10.0}]}},
     {"defaults": {"duration": 10}}),
    ({"repeat": 2.0}, {"repeat": 2}),
])
def test_a_whole_number_written_with_a_decimal_point_is_that_number(
        write_manifest: WriteManifest, written: dict, meant: dict) -> None:
    def jobs(path: Path) -> list[tuple]:
        return [(job.key, canonical_json(job.request), job.estimated_cost, job.filename)
                for job in make_plan(path).jobs]

    assert jobs(write_manifest(written, "decimal.yaml")) == jobs(write_manifest(meant, "whole.yaml"))


def test_cells_left_out_are_told_by_the_rule_they_break_and_an_empty_plan_says_so(
        write_manifest: WriteManifest) -> None:
    skipped = make_plan(write_manifest({"on_invalid": "skip",
                                        "matrix": {"aspect_ratio": ["16:9", "9:16", "1:1"]}}))
    empty = make_plan(write_manifest({"matrix": {"exclude": [{"resolution": "768p"}]}}))
    assert len(skipped.jobs) == 1 and skipped.warnings == (
        "on_invalid: skip left out cells, by the rule each breaks: text-to-video is 16:9 only, "
        "not 9:16: add a start frame or use 16:9 (1); text-to-video is 16:9 only, not 1:1: add a "
        "start frame or use 16:9 (1)",)
    assert empty.jobs == () and empty.warnings == (
        "the plan has no jobs (cells: 1, excluded: 1, skipped as invalid: 0)",)


SETS = """version: 1
name: twins
prompts: [A boat]
styles:
  sets:
    A: [Pro Photo, Warm]
    B: [Warm, Pro Photo]
    C: [pro photo, Warm]
"""
MERGED_HINT = " (hint: remove one, or make them differ)"


def test_a_style_set_whose_cells_are_merged_into_another_sets_is_told_where_both_are(
        write_manifest: WriteManifest) -> None:
    path = write_manifest(SETS)
    plan = make_plan(path)
    assert [job.axes["style_set"] for job in plan.jobs] == ["A", "B"] and plan.merged == 1
    assert plan.warnings_for() == (f"{path}:8:5: $.styles.sets.C: the same styles as styles.sets.A "
                                  f"(line 6): its cells are A's{MERGED_HINT}",)
    apart = make_plan(write_manifest(SETS + "matrix: {exclude: [{style_set: A}]}\n", "apart.yaml"))
    assert [job.axes["style_set"] for job in apart.jobs] == ["B", "C"] and apart.warnings == ()


def test_validate_names_the_file_of_a_warning_once_at_its_place_and_plan_and_run_as_before(
        write_manifest: WriteManifest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_manifest(SETS + "run: {budget_usd: 0.1}\n")
    monkeypatch.chdir(tmp_path)
    merged = "$.styles.sets.C: the same styles as styles.sets.A (line 6): its cells are A's" + MERGED_HINT
    budget = ("the jobs are estimated at $0.54, above budget_usd ($0.10): a run stops submitting "
              "at the budget (exit 3), and the next run goes on")
    checked = CliRunner().invoke(main, ["validate", "manifest.yaml"])
    assert checked.exit_code == 0 and checked.output.splitlines()[1:] == [
        f"manifest.yaml:8:5: warning: {merged}", f"manifest.yaml: warning: {budget}"]
    as_json = json.loads(CliRunner().invoke(main, ["validate", "--format", "json", "manifest.yaml"]).output)
    assert as_json["files"][0]["warnings"] == [f"manifest.yaml:8:5: {merged}", budget]
    planned = CliRunner().invoke(main, ["plan", "manifest.yaml"])
    assert planned.output.splitlines()[-2:] == [f"warning: manifest.yaml:8:5: {merged}",
                                                 f"warning: {budget}"]
    dry = CliRunner().invoke(main, ["run", "--dry-run", "--simulate", "manifest.yaml"])
    assert dry.output.splitlines()[-2] == f"warning: manifest.yaml:8:5: {merged}"


def test_an_axis_value_merged_into_another_is_told_where_both_are(write_manifest: WriteManifest) -> None:
    path = write_manifest("""version: 1
name: twins
prompts: [A boat]
styles:
  vibe: [Pro Photo, pro photo]
  lighting: [none, None, Foggy]
matrix:
  include:
    - {prompt: a-boat, vibe: Pro Photo}
""")
    plan = make_plan(path)
    assert [(job.axes["vibe"], job.axes["lighting"]) for job in plan.jobs] == [
        ("Pro Photo", "none"), ("Pro Photo", "Foggy")] and plan.merged == 5
    assert plan.warnings_for() == (  # the include, a cell written whole, is not a value written twice
        f"{path}:5:21: $.styles.vibe[1]: the same vibe as styles.vibe[0] (line 5): its cells "
        f"are those of 'Pro Photo'{MERGED_HINT}",
        f"{path}:6:20: $.styles.lighting[1]: the same lighting as styles.lighting[0] (line 6): "
        f"its cells are those of 'none'{MERGED_HINT}")
    ids = write_manifest({"prompts": [{"id": "a", "text": PROMPT}, {"id": "b", "text": PROMPT}]}, "ids.yaml")
    assert make_plan(ids).warnings_for() == (f"{ids}:7:9: $.prompts[1].text: the same text as "
                                             f"prompts[0].text (line 5): its cells are those of "
                                             f"prompt 'a'{MERGED_HINT}",)


def test_a_budget_below_the_estimate_is_told_before_anything_is_spent(write_manifest: WriteManifest) -> None:
    plan = make_plan(write_manifest({"repeat": 4, "run": {"budget_usd": 1.0}}))
    assert plan.estimated_usd == 1.08 and plan.warnings_for() == (
        "the jobs are estimated at $1.08, above budget_usd ($1.00): a run stops submitting at "
        "the budget (exit 3), and the next run goes on",)
    assert plan.warnings_for(to_create_usd=0.54) == ()  # the rest done in the output folder
    assert make_plan(write_manifest({"repeat": 4, "run": {"budget_usd": 1.08}})).warnings_for() == ()


def test_a_webp_start_frame_is_a_riff_file_of_the_webp_form_and_no_other(
        write_manifest: WriteManifest, tmp_path: Path) -> None:
    (tmp_path / "frame.webp").write_bytes(b"RIFF\x24\x00\x00\x00WEBPVP8 " + bytes(24))
    (tmp_path / "sound.webp").write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(24))
    defaults = {"model": "hailuo-2_3-fast", "aspect_ratio": "auto"}
    plan = make_plan(write_manifest({"defaults": {**defaults, "start_frame": {"path": "frame.webp"}}}))
    assert plan.jobs[0].upload is not None and plan.jobs[0].upload.extension == "webp"
    with pytest.raises(ManifestError, match="start frame sound.webp is not a webp image"):
        make_plan(write_manifest({"defaults": {**defaults, "start_frame": {"path": "sound.webp"}}}))


def test_a_mapping_merged_in_one_place_reads_alike_through_an_alias(write_manifest: WriteManifest) -> None:
    path = write_manifest("""version: 1
name: merge
prompts: [a cat]
defaults: {<<: &six {<<: {duration: 10}, duration: 6}}
matrix:
  duration: [6, 10]
  exclude: [*six]
""")
    assert [job.axes["duration"] for job in make_plan(path).jobs] == [10]
