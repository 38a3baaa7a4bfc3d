"""The folder lock, held by real processes: a second holder is refused, a killed one's is taken over."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest

from runner.errors import LockedError
from runner.lock import LOCK_NAME, FolderLock

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
