"""One run per output folder, with real `hailuo-batch run` processes: a second run on a busy folder
exits 4 at once naming the holder, and a SIGKILLed run's lock is taken over by the next run."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import time
from pathlib import Path

import pytest
from nightlykit import json_log, key_file, run_cli, sim_settings, started, summary, write_manifest

from runner import nightly
from runner.lock import LOCK_NAME, FolderLock
from runner.simulator import run_in_thread


def test_a_second_run_on_the_same_folder_exits_4_at_once_naming_the_holder(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path)
    # Renders of an hour at real time: the first run stays busy with its jobs in flight.
    with run_in_thread(sim_settings(render_seconds=3600.0, time_scale=1.0)) as sim:
        args = ("run", manifest, "--out", "out", "--base-url", sim.base_url,
                "--api-key-file", key_file(tmp_path, sim))
        with started(*args, cwd=tmp_path) as first:
            began = time.monotonic()
            second = run_cli(*args, cwd=tmp_path, timeout=20)
            waited = time.monotonic() - began
            assert first.poll() is None
        assert second.returncode == 4, second.stderr
        assert f"in use by another run: process {first.pid} on " in second.stderr
        assert "Traceback" not in second.stderr
        assert waited < 10
        assert not (tmp_path / "out" / "summary.json").exists()  # the second run wrote nothing


def test_a_sigkilled_runs_lock_is_taken_over_and_its_work_resumed(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path)
    log_file = tmp_path / "logs" / "nightly.jsonl"
    # Every call of this simulator hangs, so the first run dies holding the lock before a create.
    with run_in_thread(sim_settings(fault_slow=1.0, slow_seconds=3600.0, time_scale=1.0)) as stuck:
        with started("run", manifest, "--out", "out", "--base-url", stuck.base_url,
                     "--api-key-file", key_file(tmp_path, stuck), cwd=tmp_path) as first:
            os.kill(first.pid, signal.SIGKILL)
            assert first.wait() == -signal.SIGKILL
    assert (tmp_path / "out" / ".hailuo.lock").read_text()  # the dead run's name is still there
    with run_in_thread(sim_settings()) as sim:
        second = run_cli("run", manifest, "--out", "out", "--base-url", sim.base_url,
                         "--api-key-file", key_file(tmp_path, sim), "--log-file", log_file,
                         "--log-format", "json", cwd=tmp_path)
        assert sim.books.creates_accepted == 8
    assert second.returncode == 0, second.stderr
    (takeover,) = [e for e in json_log(log_file) if e["message"].startswith("took over the lock")]
    assert takeover["level"] == "warning" and takeover["previous_pid"] == first.pid
    assert f"process {first.pid} on " in takeover["message"] and " is gone; " in takeover["message"]
    assert summary(tmp_path / "out")["counts"] == {"downloaded": 8}


def test_a_copy_of_a_busy_folder_says_its_holder_still_runs(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path, repeat=1)
    with run_in_thread(sim_settings(fault_slow=1.0, slow_seconds=3600.0, time_scale=1.0)) as stuck:
        with started("run", manifest, "--out", "out", "--base-url", stuck.base_url,
                     "--api-key-file", key_file(tmp_path, stuck), cwd=tmp_path) as first:
            shutil.copytree(tmp_path / "out", tmp_path / "copy")
            copied = run_cli("run", manifest, "--out", "copy", "--simulate", cwd=tmp_path)
    assert copied.returncode == 0, copied.stderr
    assert (f"took over the lock of copy: process {first.pid} on {socket.gethostname()} no longer "
            "holds it, though a process of that number runs") in copied.stderr


def said_on_taking_over(folder: Path, holder: dict[str, object],
                        hailuo_log: pytest.LogCaptureFixture) -> str:
    """What the log says when a run takes over the lock `holder` left in `folder`: one line."""
    (folder / LOCK_NAME).write_text(json.dumps(holder), encoding="utf-8")
    with FolderLock.acquire(folder) as lock:
        nightly.took_over(lock)
    (said,) = [record.getMessage() for record in hailuo_log.records]
    return said


def test_a_holder_from_before_the_machine_started_is_gone_whatever_runs_under_its_number(
        tmp_path: Path, hailuo_log: pytest.LogCaptureFixture) -> None:
    holder = {"pid": os.getpid(), "host": socket.gethostname(), "started": 1.0}  # in 1970
    assert said_on_taking_over(tmp_path, holder, hailuo_log).endswith(
        f"process {os.getpid()} on {socket.gethostname()} is gone; resuming its work")


@pytest.mark.parametrize("pid", [0, -1, 2**40])
def test_a_lock_naming_no_process_number_is_taken_for_a_gone_holder(
        tmp_path: Path, hailuo_log: pytest.LogCaptureFixture, pid: int) -> None:
    holder = {"pid": pid, "host": socket.gethostname(), "started": time.time()}  # a hand edit
    assert said_on_taking_over(tmp_path, holder, hailuo_log).endswith(
        f"process {pid} on {socket.gethostname()} is gone; resuming its work")


def test_a_holder_named_oddly_is_said_to_be_unknown_on_taking_over(
        tmp_path: Path, hailuo_log: pytest.LogCaptureFixture) -> None:
    holder = {"pid": "1\n2026-11-24 22:00:00 INFO run ended: exit 0", "host": ["h"],
              "started": "abc"}  # another tool's lock file, or a hand edit
    assert said_on_taking_over(tmp_path, holder, hailuo_log).endswith(
        ": a process of unknown number on an unknown host is gone; resuming its work")
