"""What `run` is given besides the manifest (the key, the API root, the output folder, a price
table) is checked before anything is made or sent: a clear error, the right exit code, no
traceback, and never the key itself in the message."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from enginekit import invoke, sim_settings, write_manifest

from runner.batch import RunConfig, run_batch
from runner.config import api_key_problem
from runner.errors import UsageError
from runner.results import collect
from runner.simulator import SimSettings, run_in_thread

UNUSED_ROOT = "http://127.0.0.1:9/api/rest"  # nothing may be sent: any call would fail here


@pytest.mark.parametrize(("content", "message"), [
    (b"", "the file is empty; put the API key in it"),
    (b"\n  \n", "the file is empty; put the API key in it"),
    (b"0c3d2b8e-51f4\xff\n", "not an API key: the file is not text"),
    (b"0c3d2b8e-51f4\nsecret-second-line\n", "not an API key: it holds a line break"),
    (b"\xef\xbb\xbfsecret-second-line\r\n", "not an API key: it starts with a byte order mark "
     "(U+FEFF, which some editors put before UTF-8 text): remove it (save the file as UTF-8 "
     "without BOM)"),
], ids=["empty", "blank", "not text", "two lines", "byte order mark"])
def test_a_key_file_without_a_usable_key_exits_4_and_makes_nothing(
        tmp_path: Path, content: bytes, message: str) -> None:
    key_file, out = tmp_path / "key", tmp_path / "out"
    key_file.write_bytes(content)
    code, _, stderr = invoke("run", str(write_manifest(tmp_path)), "--out", str(out),
                          "--base-url", UNUSED_ROOT, "--api-key-file", str(key_file))
    assert code == 4 and f"--api-key-file {key_file}: {message}" in stderr
    assert "secret-second-line" not in stderr and not out.exists()


@pytest.mark.parametrize(("name", "message"), [("missing", "No such file or directory"),
                                             (".", "Is a directory")])
def test_a_key_file_that_cannot_be_read_exits_4_as_no_key_does(tmp_path: Path, name: str,
                                                               message: str) -> None:
    out = tmp_path / "out"
    code, _, stderr = invoke("run", str(write_manifest(tmp_path)), "--out", str(out),
                             "--base-url", UNUSED_ROOT, "--api-key-file", str(tmp_path / name))
    assert code == 4 and f"--api-key-file {tmp_path / name}: cannot read it: {message}" in stderr
    assert not out.exists()


def test_a_key_file_its_user_may_not_read_exits_4(tmp_path: Path) -> None:
    key_file, out = tmp_path / "key", tmp_path / "out"
    key_file.write_text("0c3d2b8e-51f4-4a43-9bd6-9a0f0f0e0a11", encoding="utf-8")
    key_file.chmod(0)
    # root reads any file: the run is made without the powers that let it
    powerless = (["setpriv", "--inh-caps=-dac_override,-dac_read_search",
                  "--bounding-set=-dac_override,-dac_read_search"] if os.geteuid() == 0 else [])
    done = subprocess.run([*powerless, sys.executable, "-m", "runner", "run",
                           str(write_manifest(tmp_path)), "--out", str(out), "--base-url",
                           UNUSED_ROOT, "--api-key-file", str(key_file)],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 4, done.stderr
    assert f"--api-key-file {key_file}: cannot read it: Permission denied" in done.stderr
    assert not out.exists()


def test_a_key_file_others_may_read_is_warned_of_and_used(tmp_path: Path) -> None:
    key_file, manifest = tmp_path / "key", write_manifest(tmp_path, repeat=1)
    with run_in_thread(sim_settings()) as sim:
        key_file.write_text(sim.api_key, encoding="utf-8")
        said = {}
        for mode in (0o644, 0o600):
            key_file.chmod(mode)
            said[mode] = invoke("run", str(manifest), "--out", str(tmp_path / "out"), "--base-url",
                                sim.base_url, "--api-key-file", str(key_file))
    warning = f"--api-key-file {key_file}: users other than its owner may read it: `chmod 600` it"
    assert said[0o644][0] == 0 and warning in said[0o644][2]
    assert said[0o600][0] == 0 and warning not in said[0o600][2]
    assert sim.api_key not in said[0o644][2]


def test_a_key_with_a_line_break_in_the_environment_exits_4(tmp_path: Path) -> None:
    code, _, stderr = invoke("run", str(write_manifest(tmp_path)), "--out", str(tmp_path / "out"),
                          "--base-url", UNUSED_ROOT, key="0c3d2b8e\nsecret-second-line")
    assert code == 4 and "LEONARDO_API_KEY: not an API key" in stderr
    assert "secret-second-line" not in stderr and not (tmp_path / "out").exists()


@pytest.mark.parametrize(("written", "said"), [
    ("LEONARDO_API_KEY=sample0key0text", "it reads as a NAME=value line, as in a .env file"),
    ("export LEONARDO_API_KEY='sample0key0text'", "it reads as a NAME=value line"),
    ("Bearer sample0key0text", "it starts with 'Bearer ': keep only the key"),
    ('"sample0key0text"', "it is in quote marks: keep only the key, without them"),
    ("\u201csample0key0text\u201d", "it is in quote marks"),
    ("sample0key 0text", "it holds a space: a key is one word"),
], ids=["dotenv line", "export line", "bearer", "quotes", "smart quotes", "space"])
@pytest.mark.parametrize("given", ["file", "environment"])
def test_a_key_pasted_with_its_surroundings_exits_4_naming_them_not_the_key(
        tmp_path: Path, written: str, said: str, given: str) -> None:
    key_file, out = tmp_path / "key", tmp_path / "out"
    key_file.write_text(written + "\n", encoding="utf-8")
    source, more, key = ((f"--api-key-file {key_file}", ["--api-key-file", str(key_file)], None)
                         if given == "file" else ("LEONARDO_API_KEY", [], written))
    code, stdout, stderr = invoke("run", str(write_manifest(tmp_path)), "--out", str(out),
                                  "--base-url", UNUSED_ROOT, *more, key=key)
    assert code == 4 and f"error: {source}: not an API key: {said}" in stderr
    assert "sample0" not in stdout + stderr and "0text" not in stdout + stderr
    assert not out.exists()


def test_a_key_of_ordinary_characters_is_taken_as_written() -> None:
    for key in ("0c3d2b8e-51f4-4a43-9bd6-9a0f0f0e0a11", "c2FtcGxlIGtleQ==", "sk_live.AbC-123"):
        assert api_key_problem(key) is None


@pytest.mark.parametrize(("url", "said"), [
    *((url, "give an http:// or https:// URL") for url in (
        "notaurl", "ftp://x", "http://", "http://127.0.0.1:99999/api", "https://[::1")),
    ("http://user:s3cret@127.0.0.1:9/api/rest",
     "'http://***@127.0.0.1:9/api/rest': leave out its user and password"),
    ("http://user:s3c/ret@127.0.0.1:9/api/rest",  # a password urlsplit cannot read
     "'http://***@127.0.0.1:9/api/rest': give an http:// or https:// URL"),
    ("http:/user:s3cret@127.0.0.1:9/api/rest", "'***@127.0.0.1:9/api/rest': give an http://"),
    ("user:s3cret@127.0.0.1:9/api?next=http://x", "'***@127.0.0.1:9/api?next=http://x': give an"),
])
@pytest.mark.parametrize("dry", [False, True], ids=["run", "dry run"])
def test_an_api_root_that_is_no_http_url_exits_2(tmp_path: Path, url: str, said: str,
                                                 dry: bool) -> None:
    code, _, stderr = invoke("run", str(write_manifest(tmp_path)), "--out", str(tmp_path / "out"),
                          "--base-url", url, *(["--dry-run"] if dry else []),
                          key="0c3d2b8e-51f4-4a43-9bd6-9a0f0f0e0a11")
    assert code == 2 and said in stderr and "s3c" not in stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("how", ["--simulate", "--dry-run"])
@pytest.mark.parametrize(("out", "said"), [("notes", "it is a file, not a folder"),
                                           ("notes/videos", "notes is a file, not a folder")])
def test_an_output_folder_that_is_a_file_or_below_one_exits_4(
        tmp_path: Path, how: str, out: str, said: str, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "notes").write_text("the user's notes", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    code, stdout, stderr = invoke("run", str(write_manifest(tmp_path)), "--out", out, how)
    assert code == 4 and f"error: output folder {out} is unusable: {said}\n" in stderr
    assert stdout == ""
    assert (tmp_path / "notes").read_text(encoding="utf-8") == "the user's notes"


@pytest.mark.parametrize(("content", "message"), [
    (b"{bad\n", "prices.json:2:1: $: YAML syntax: while parsing a flow mapping (begun at line 1, "
               "column 1) did not find expected ',' or '}'"),
    (b"\xc0\xff{}", "prices.json:1:1: $: the file is not UTF-8 text"),
], ids=["broken", "not text"])
def test_a_price_table_that_cannot_be_read_is_a_located_error(
        tmp_path: Path, content: bytes, message: str) -> None:
    (tmp_path / "prices.json").write_bytes(content)
    code, _, stderr = invoke("plan", str(write_manifest(tmp_path)), "--prices",
                          str(tmp_path / "prices.json"))
    assert code == 2 and message in stderr


def test_a_simulated_account_kept_through_a_file_exits_2_and_names_the_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out, state = tmp_path / "out", Path("notes", "simulator-state.jsonl")
    monkeypatch.chdir(tmp_path)
    state.parent.write_text("a file where the state's folder would be", encoding="utf-8")
    config = RunConfig(manifest=write_manifest(tmp_path), out=out,
                       simulate=SimSettings(state_path=state))
    with pytest.raises(UsageError) as refused:
        run_batch(config)
    assert refused.value.exit_code == 2  # the paths named as they were given
    assert str(refused.value) == ("notes/simulator-state.jsonl: cannot write the simulator state: "
                                  "notes is a file, not a folder")
    summary = collect(out).summary  # the journal's, as `status` shows it: the run never began,
    assert summary["exit_code"] == 2 and summary["counts"] == {}  # and left no plan behind


@pytest.mark.parametrize("command, more", [("run", ["--simulate"]), ("plan", [])])
def test_an_empty_out_is_a_usage_error_not_the_current_folder(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: str, more: list[str]) -> None:
    manifest = write_manifest(tmp_path)
    monkeypatch.chdir(tmp_path)
    code, _, stderr = invoke(command, str(manifest), "--out", "", *more)
    assert code == 2 and "error: --out is empty (an unset variable?)" in stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == [manifest.name]
