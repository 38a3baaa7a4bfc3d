"""Output file names: inside the output folder whatever a manifest says, and never shared."""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from runner.cli import main
from runner.errors import ManifestError
from runner.plan import make_plan, safe_filename

WriteManifest = Callable[..., Path]
HOSTILE_VALUES = ["../../etc/passwd", "/etc/shadow", "..\\..\\windows\\system32", "a\tb|c*d?",
                  "..", ".", "", " ", "~/.ssh/id_rsa", "C:\\temp\\x", "\u202eevil", "con\nnul"]


def safe_part(part: str) -> bool:
    """Letters, marks and digits of any script, and `._+=-`: nothing a shell or a path reads."""
    return bool(part) and all(char in "._+=-" or unicodedata.category(char)[0] in "LMN"
                              for char in part)


def assert_inside(filename: str, out: Path) -> None:
    assert not filename.startswith(("/", "\\", "~")) and "\\" not in filename
    parts = filename.split("/")
    assert all(safe_part(part) and part not in (".", "..") for part in parts), filename
    assert (out / filename).resolve().is_relative_to(out.resolve())
    assert filename.lower().endswith(".mp4")


@pytest.mark.parametrize("template", [
    "{place}/{n}.mp4", "../../{place}.mp4", "/etc/{place}", "..\\{place}\\..\\{n}.mp4",
    "{place}", "./{place}/./{prompt}.MP4"])
def test_no_name_can_leave_the_output_folder(write_manifest: WriteManifest, tmp_path: Path,
                                             template: str) -> None:
    path = write_manifest({"vars": {"place": HOSTILE_VALUES},
                           "prompts": [{"id": "p", "text": "A view of {place}"}],
                           "output": {"filename": template}})
    jobs = make_plan(path).jobs
    assert len(jobs) == len(HOSTILE_VALUES)
    for job in jobs:
        assert_inside(job.filename, tmp_path / "out")
    assert len({job.filename.lower() for job in jobs}) == len(jobs)


@pytest.mark.parametrize(("rendered", "expected"), [
    ("../../etc/passwd", "etc/passwd.mp4"),
    ("/abs/name.mp4", "abs/name.mp4"),
    ("a\\b\\c.mp4", "a/b/c.mp4"),
    ("./.././", "video.mp4"),
    ("weird name*?.mp4", "weird-name-.mp4"),
    ("x__y.MP4", "x_y.MP4"),
    ("猫/猫.mp4", "猫/猫.mp4"),
    ("+1+2/=SUM(A1).mp4", "1+2/SUM-A1-.mp4"),
    ("cafe\u0301/Ünïcode.mp4", "caf\u00e9/Ünïcode.mp4"),
    ("\u202eevil/-.mp4", "evil/video.mp4"),
    ("é" * 100 + ".mp4", "é" * 60 + ".mp4"),
    ("CON/nul.txt.mp4", "CON_/nul_.txt.mp4"),
    ("Com¹/lpt0", "Com¹_/lpt0_.mp4"),
])
def test_safe_filename(rendered: str, expected: str) -> None:
    assert safe_filename(rendered) == expected


def test_names_that_collide_get_the_short_key(write_manifest: WriteManifest) -> None:
    path = write_manifest({"styles": {"vibe": ["Clay", "Sketch"]},
                           "prompts": [{"id": "boat", "text": "A boat"}],
                           "matrix": {"duration": [6, 10]},
                           "output": {"filename": "{prompt}_{duration}.mp4"}})
    jobs = make_plan(path).jobs
    assert [job.filename for job in jobs] == [
        f"boat_{duration}_{job.short_key}.mp4" for job, duration in zip(jobs, [6, 10, 6, 10])]


STREET = "A cinematic shot of rain falling on a quiet city street at "


def test_prompts_whose_slugs_meet_are_told_apart_by_a_hash_of_their_text(
        write_manifest: WriteManifest) -> None:
    prompts = [STREET + "dusk", STREET + "night", "猫が屋根の上で寝ている", "犬が海辺を走る",
               "A paper boat", {"id": "a-kite", "text": "A kite!"}, "a kite"]
    ids = ["a-cinematic-shot-of-rain-falling-on-a-qu-44ec23a3",
           "a-cinematic-shot-of-rain-falling-on-a-qu-b1345296", "prompt-3baf4b7e",
           "prompt-32f20f30", "a-paper-boat", "a-kite", "a-kite-facf5131"]
    plan = make_plan(write_manifest({"prompts": prompts, "output": {"filename": "{prompt}.mp4"}}))
    assert [job.axes["prompt"] for job in plan.jobs] == ids
    assert [job.filename for job in plan.jobs] == [f"{pid}.mp4" for pid in ids]
    backwards = make_plan(write_manifest({"prompts": prompts[::-1]}, "backwards.yaml"))
    assert {job.key: job.axes["prompt"] for job in backwards.jobs} == \
        {job.key: job.axes["prompt"] for job in plan.jobs}


def test_a_rule_names_a_prompt_by_the_id_the_plan_shows(write_manifest: WriteManifest) -> None:
    path = write_manifest({"prompts": [STREET + "dusk", STREET + "night",
                                       {"id": "a-kite", "text": "A kite!"}, "a kite"],
                           "matrix": {"resolution": ["768p", "1080p"], "exclude": [
                               {"prompt": "a-kite", "resolution": "1080p"},
                               {"prompt": "a-cinematic-shot-of-rain-falling-on-a-qu-b1345296",
                                "resolution": "1080p"}]}})
    kept = [(job.axes["prompt"], job.axes["resolution"]) for job in make_plan(path).jobs]
    assert kept == [("a-cinematic-shot-of-rain-falling-on-a-qu-44ec23a3", "768p"),
                    ("a-cinematic-shot-of-rain-falling-on-a-qu-44ec23a3", "1080p"),
                    ("a-cinematic-shot-of-rain-falling-on-a-qu-b1345296", "768p"),
                    ("a-kite", "768p"), ("a-kite-facf5131", "768p"),
                    ("a-kite-facf5131", "1080p")]


def test_names_that_differ_only_in_case_or_junk_collide_too(write_manifest: WriteManifest) -> None:
    path = write_manifest({"vars": {"who": ["Cat", "cat", "a/b", "a b", "dog"]},
                           "prompts": [{"id": "p", "text": "A {who}"}],
                           "output": {"filename": "{who}.mp4"}})
    names = [job.filename for job in make_plan(path).jobs]
    keys = [job.short_key for job in make_plan(path).jobs]
    assert names == [f"Cat_{keys[0]}.mp4", f"cat_{keys[1]}.mp4", f"a-b_{keys[2]}.mp4",
                     f"a-b_{keys[3]}.mp4", "dog.mp4"]


def test_names_keep_the_letters_of_every_script(write_manifest: WriteManifest) -> None:
    path = write_manifest({"vars": {"who": ["猫", "犬", "café", "cat", "Ünïcode", "unicode"]},
                           "prompts": [{"id": "p", "text": "A {who}"}],
                           "output": {"filename": "{who}/{who}.mp4"}})
    assert [job.filename for job in make_plan(path).jobs] == [
        "猫/猫.mp4", "犬/犬.mp4", "café/café.mp4", "cat/cat.mp4", "Ünïcode/Ünïcode.mp4",
        "unicode/unicode.mp4"]


def test_the_default_name_tells_the_cell(write_manifest: WriteManifest) -> None:
    path = write_manifest({"vars": {"time": ["dusk"]},
                           "styles": {"vibe": ["Pro Photo"], "lighting": ["Foggy"]},
                           "prompts": [{"id": "street", "text": "A street at {time}"}], "repeat": 2})
    assert [job.filename for job in make_plan(path).jobs] == [
        f"street/dusk_Pro-Photo+Foggy_hailuo-2_3_768p_6s_16-9_{n}.mp4" for n in (1, 2)]


def test_a_var_a_prompt_does_not_use_names_its_files_none(write_manifest: WriteManifest) -> None:
    path = write_manifest({"vars": {"time": ["dusk"]}, "styles": {"vibe": ["Clay"]},
                           "prompts": [{"id": "street", "text": "A street at {time}"},
                                       {"id": "cat", "text": "A cat asleep"}],
                           "output": {"filename": "{prompt}/{time}_{vibe}_{n}.mp4"}})
    planned = make_plan(path)
    assert [job.filename for job in planned.jobs] == ["street/dusk_Clay_1.mp4", "cat/none_Clay_1.mp4"]
    assert planned.warnings == ("output.filename names the var {time}, which these prompts do not: "
                                "cat; their files have 'none' there (a var multiplies only the "
                                "prompts that name it)",)


def test_a_var_of_one_value_names_the_files_of_every_prompt(write_manifest: WriteManifest) -> None:
    path = write_manifest({"vars": {"project": "acme", "time": ["dusk", "dawn"]},
                           "prompts": [{"id": "cat", "text": "A cat asleep"},
                                       {"id": "street", "text": "A street at {time} ({project})"}],
                           "output": {"filename": "{project}/{prompt}_{time}_{n}.mp4"}})
    assert [job.filename for job in make_plan(path).jobs] == [
        "acme/cat_none_1.mp4", "acme/street_dusk_1.mp4", "acme/street_dawn_1.mp4"]


def test_every_placeholder_of_a_file_name(write_manifest: WriteManifest) -> None:
    path = write_manifest({
        "name": "every-placeholder", "vars": {"mood": ["calm"]},
        "defaults": {"start_frame": {"id": "5b1c6f0e-8a2d-4c3b-9e7f-1a2b3c4d5e6f", "type": "UPLOADED"}},
        "prompts": [{"id": "sea", "text": "The sea, {mood}"}], "styles": {"vibe": ["Clay"]},
        "output": {"filename": "{name}/{prompt}/{vars}/{styles}/{vibe}-{lighting}-{color_theme}-"
                               "{style_set}/{model}_{resolution}_{duration}_{aspect_ratio}_{n}_{key}_"
                               "{start_frame}"}})
    job = make_plan(path).jobs[0]
    assert job.filename == ("every-placeholder/sea/calm/Clay/Clay-none-none-none/hailuo-2_3_768p_6_16-9_1_"
                            f"{job.short_key}_5b1c6f0e-8a2d-4c3b-9e7f-1a2b3c4d5e6f.mp4")


def test_colliding_names_are_warned_of(tmp_path: Path) -> None:
    manifest = tmp_path / "clash.yaml"
    manifest.write_text('version: 1\nname: x\nprompts: [a, b]\nrepeat: 2\n'
                        'output: {filename: "{prompt}.mp4"}\n', encoding="utf-8")
    planned = make_plan(manifest)
    assert planned.warnings == ("output.filename gives 4 jobs a name another job has: their short "
                                "key was added (put {n} or the axes that differ in the template)",)
    manifest.write_text(manifest.read_text().replace("{prompt}.mp4", "{prompt}_{n}.mp4"))
    assert make_plan(manifest).warnings == ()


CUT = ("their place values are cut to 80 characters in names and differ only after it: make them "
       "differ sooner")
KEPT_APART = ("their place values differ only where names do not keep them: a part of a path is cut "
              "to 120 bytes, a character other than letters, digits and ._+=- becomes a dash, and "
              "case is not told apart")
PUT_N = "put {n} or the axes that differ in the template"


@pytest.mark.parametrize(("places", "template", "repeat", "hints"), [
    (["a" * 90 + "1" + "b" * 169, "a" * 90 + "2" + "b" * 169], "{place}.mp4", 1, [CUT]),
    (["a" * 90 + "1", "a" * 90 + "2"], "{vars}.mp4", 2, [CUT, PUT_N]),
    (["a" * 70 + "1" + "b" * 9, "a" * 70 + "2" + "b" * 9], "{mood}_{place}.mp4", 1, [KEPT_APART]),
    (["Dusk", "dusk"], "{place}/{mood}.mp4", 1, [KEPT_APART]),
    (["dusk", "dawn"], "{mood}.mp4", 1, [PUT_N])],
    ids=["cut-at-80", "cut-and-n", "cut-at-120-bytes", "case", "not-named"])
def test_names_that_collide_though_the_template_names_the_axis_say_why(
        write_manifest: WriteManifest, places: list[str], template: str, repeat: int,
        hints: list[str]) -> None:
    planned = make_plan(write_manifest({
        "prompts": ["A street at {place}, {mood}"], "vars": {"place": places, "mood": "m" * 50},
        "repeat": repeat, "output": {"filename": template}}))
    assert planned.warnings == (f"output.filename gives {2 * repeat} jobs a name another job has: "
                                f"their short key was added ({'; '.join(hints)})",)
    assert len({job.filename.lower() for job in planned.jobs}) == 2 * repeat


@pytest.mark.parametrize(("template", "warned"), [
    ("{prompt}.mov", (5, 22, ".mov", "a.mov.mp4")), ("{prompt}.m4v", (5, 22, ".m4v", "a.m4v.mp4")),
    ("{prompt}_v2.webm", (5, 25, ".webm", "a_v2.webm.mp4")),
    ("{prompt}.mp4.bak", (5, 26, ".bak", "a.mp4.bak.mp4")), ("{prompt}/{n}.MP4", None),
    ("{prompt}_{n}", None), ("{prompt}.{n}", None), ("v1.2/{prompt}", None),
    ("{prompt}_v2.5", None), ("{prompt} 1.5x speed", None), ("{prompt}_take.a", None)])
def test_a_file_name_ending_in_another_extension_is_warned_of_at_its_place(
        write_manifest: WriteManifest, template: str, warned: tuple[int, int, str, str] | None) -> None:
    manifest = write_manifest(f'version: 1\nname: x\nprompts: ["a"]\noutput:\n  filename: "{template}"\n')
    warnings = make_plan(manifest).warnings_for()
    if warned is None:
        assert warnings == ()
    else:
        line, column, suffix, example = warned
        assert warnings == (f"{manifest}:{line}:{column}: $.output.filename: the videos are MP4 "
                            f"files, not {suffix}: .mp4 is added to every name, as in {example} "
                            "(hint: end output.filename with .mp4)",)


CONTROL = "a path holds no control characters (a NUL, a tab, a line break), not "


@pytest.mark.parametrize(("output", "problem"), [
    ({"dir": "out/\0"}, f'$.output.dir: {CONTROL}"out/\\u0000"'),
    ({"dir": "out\n"}, f'$.output.dir: {CONTROL}"out\\n"'),
    ({"dir": "  "}, '$.output.dir: output.dir must name a folder, not "  "'),
    ({"filename": "{n}\0.mp4"}, f'$.output.filename: {CONTROL}"{{n}}\\u0000.mp4"'),
    ({"filename": "\x1b[31m{n}.mp4"}, f'$.output.filename: {CONTROL}"\\u001b[31m{{n}}.mp4"'),
], ids=["nul-dir", "line-break-dir", "blank-dir", "nul-filename", "escape-filename"])
@pytest.mark.parametrize("command", [["validate"], ["run", "--simulate"]])
def test_an_output_path_with_a_control_character_or_a_blank_folder_is_refused_at_its_place(
        write_manifest: WriteManifest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        output: dict[str, str], problem: str, command: list[str]) -> None:
    write_manifest({"output": output})
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, [*command, "manifest.yaml"])
    assert result.exit_code == 2, result.exc_info
    assert [line.split(": ", 1)[1] for line in result.output.splitlines()
            if line.startswith("manifest.yaml:")] == [problem]
    assert sorted(path.name for path in tmp_path.iterdir()) == ["manifest.yaml"]


def test_a_name_too_long_for_any_file_system_is_refused_before_anything_is_paid(
        write_manifest: WriteManifest) -> None:
    fits = write_manifest({"vars": {"v": ["a" * 100]}, "prompts": [{"id": "p", "text": "x {v}"}],
                           "output": {"filename": "/".join(["{v}"] * 14) + ".mp4"}})
    assert len(make_plan(fits).jobs[0].filename) == 1137  # as an earlier version took it
    path = write_manifest({"vars": {"v": ["a" * 100, "b"]}, "prompts": [{"id": "p", "text": "x {v}"}],
                           "output": {"filename": "/".join(["{v}"] * 49) + ".mp4"}})
    with pytest.raises(ManifestError) as caught:
        make_plan(path)
    (issue,) = caught.value.issues
    assert issue.path == "$.output.filename" and issue.message == (
        "the names of 1 job(s) are too long for the output folder: up to 3,972 bytes, more than 3,900")
