"""The folder lock, held by real processes: a second holder is refused, a killed one's is taken over."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

import pytest
from click.testing import CliRunner
from nightlykit import run_cli, write_manifest

from runner.cli import main
from runner.errors import LockedError, StateError
from runner.lock import LOCK_NAME, FolderLock
from runner.state import Journal

HOLDER = """
import sys
from pathlib import Path
from runner.lock import FolderLock
lock = FolderLock.acquire(Path(sys.argv[1]))
print("held", flush=True)
sys.stdin.read()
"""


@contextmanager
def hold(folder: Path) -> Iterator[subprocess.Popen[str]]:
    """A process that takes the lock and keeps it until it is killed."""
    with subprocess.Popen([sys.executable, "-c", HOLDER, str(folder)], stdin=subprocess.PIPE,
                          stdout=subprocess.PIPE, text=True) as child:
        assert child.stdout is not None and child.stdout.readline() == "held\n"
        try:
            yield child
        finally:
            child.kill()


def test_a_second_holder_is_refused_with_the_holders_pid(tmp_path: Path) -> None:
    with hold(tmp_path) as child:
        with pytest.raises(LockedError, match=f"process {child.pid} on "):
            FolderLock.acquire(tmp_path)


def test_a_killed_holders_lock_is_taken_over(tmp_path: Path) -> None:
    with hold(tmp_path) as child:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    with FolderLock.acquire(tmp_path) as lock:
        assert lock.took_over is not None and lock.took_over["pid"] == child.pid
        assert f'"pid": {os.getpid()}' in (tmp_path / LOCK_NAME).read_text()


def test_a_released_lock_is_free_and_leaves_no_holder(tmp_path: Path) -> None:
    FolderLock.acquire(tmp_path).release()
    with FolderLock.acquire(tmp_path) as lock:
        assert lock.took_over is None


def test_an_unusable_folder_is_a_state_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(Exception) as caught:
        FolderLock.acquire(blocker / "out")
    assert caught.value.exit_code == 4
    assert "unusable" in str(caught.value)


@pytest.mark.parametrize("make", [lambda path: os.symlink("precious.txt", path), os.mkfifo],
                         ids=["symbolic link", "pipe"])
def test_a_lock_file_that_is_a_link_or_no_plain_file_is_refused_and_left_alone(
        tmp_path: Path, make: Callable[[Path], None]) -> None:
    precious, out = tmp_path / "out" / "precious.txt", tmp_path / "out"
    out.mkdir()
    precious.write_text("the user's notes", encoding="utf-8")
    make(out / LOCK_NAME)
    with pytest.raises(StateError, match=f"output folder {out} is unusable: {LOCK_NAME} is "):
        FolderLock.acquire(out)
    assert FolderLock.holder(out) is None  # what `status` asks: no run could hold it
    assert precious.read_text(encoding="utf-8") == "the user's notes"


@pytest.mark.parametrize("content", ["12345", '"held"', "true", "[1, 2]", "[" * 4000])
def test_a_lock_file_naming_no_holder_is_taken_over_as_a_free_one(tmp_path: Path, content: str) -> None:
    (tmp_path / LOCK_NAME).write_text(content, encoding="utf-8")
    with FolderLock.acquire(tmp_path) as lock:
        assert lock.took_over is None
        assert f'"pid": {os.getpid()}' in (tmp_path / LOCK_NAME).read_text()


def test_a_lock_file_hard_linked_by_a_backup_is_taken(tmp_path: Path) -> None:
    FolderLock.acquire(tmp_path / "out").release()
    os.link(tmp_path / "out" / LOCK_NAME, tmp_path / "backup.lock")  # as `cp -al` leaves it
    with FolderLock.acquire(tmp_path / "out") as lock:
        assert lock.took_over is None


def test_status_says_a_run_is_still_going_while_its_process_holds_the_folder(tmp_path: Path) -> None:
    with Journal.open(tmp_path) as journal:
        journal.begin_run(name="n", manifest="m.yaml", settings={}, at=1.0)
    assert FolderLock.holder(tmp_path) is None and not (tmp_path / LOCK_NAME).exists()

    def last_run() -> str:
        result = CliRunner().invoke(main, ["status", str(tmp_path)], catch_exceptions=False)
        assert result.exit_code == 0
        return next(line for line in result.stdout.splitlines() if line.startswith("last run:"))

    with hold(tmp_path) as child:
        holder = FolderLock.holder(tmp_path)
        assert holder is not None and holder["pid"] == child.pid
        assert f"still running (process {child.pid} on " in last_run()
        held = (tmp_path / LOCK_NAME).read_text()
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    assert (tmp_path / LOCK_NAME).read_text() == held
    assert FolderLock.holder(tmp_path) is None
    assert last_run().endswith("did not end cleanly")


ODD_HOLDERS = {
    "a pid forging a log line, a start time of text": (
        json.dumps({"pid": "1\n2026-11-24 22:00:00 INFO run ended: exit 0", "host": "h",
                    "started": "abc"}),
        "a process of unknown number on h, started at an unknown time"),
    "a host that is a list, a start time past any date": (
        json.dumps({"pid": 7, "host": ["h"], "started": 1e300}),
        "process 7 on an unknown host, started at an unknown time"),
    "a host with an escape, a start time not a number": (
        json.dumps({"pid": 7, "host": "h\x1b[31m\u202e", "started": float("nan")}),
        "process 7 on an unknown host, started at an unknown time"),
    "arrays nested too deep to read": ("[" * 4000, "a process that has not written its name yet"),
}


@pytest.mark.parametrize(("content", "said"), ODD_HOLDERS.values(), ids=ODD_HOLDERS)
def test_a_holder_named_oddly_is_refused_with_what_its_lock_file_does_not_tell_said_unknown(
        tmp_path: Path, content: str, said: str) -> None:
    manifest, out = write_manifest(tmp_path, repeat=1), tmp_path / "out"
    with Journal.open(out) as journal:
        journal.begin_run(name="nightly", manifest=str(manifest), settings={}, at=1.0)
    with hold(out):
        (out / LOCK_NAME).write_text(content, encoding="utf-8")  # another tool's, or a hand edit
        refused = run_cli("run", manifest, "--simulate", "--out", out, cwd=tmp_path)
        status = CliRunner().invoke(main, ["status", str(out)], catch_exceptions=False)
    assert refused.returncode == 4
    assert refused.stderr == (f"error: output folder {out} is in use by another run: {said}; "
                              "wait for it to end, or use another --out\n")
    assert status.exit_code == 0
    assert f"still running ({said})\n" in status.stdout
