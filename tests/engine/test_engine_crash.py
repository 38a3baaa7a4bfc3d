"""The command line in a subprocess, killed at random moments and resumed; signals; the key.

"Random" is a seeded source choosing how many journal transitions to let happen before the kill,
and the test waits for those transitions by reading the journal (waiting on the process, which
returns early if it ends), never by sleeping a guessed time. A signal at a set point of the run
is sent while the process waits to write into a full pipe, which holds it there.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
from collections import Counter
from contextlib import suppress
from pathlib import Path

import pytest
from enginekit import (
    audit,
    ended,
    invoke,
    invoke_run,
    runs,
    sim_settings,
    transitions,
    wait_for_transitions,
    wait_until,
    write_manifest,
)

from runner.lock import FolderLock
from runner.simulator import ThreadedSimulator, run_in_thread


def start(manifest: Path, out: Path, sim: ThreadedSimulator, *extra: str, key: str | None = None,
          stdout: int = subprocess.PIPE, stderr: int = subprocess.PIPE,
          program: tuple[str, ...] = ("-m", "runner"),
          pass_fds: tuple[int, ...] = ()) -> subprocess.Popen[str]:
    env = {**os.environ, "LEONARDO_API_KEY": key or sim.api_key}
    return subprocess.Popen(
        [sys.executable, *program, "run", str(manifest), "--out", str(out),
         "--base-url", sim.base_url, "--submit-per-minute", "60000", "--request-timeout", "2s",
         *extra],
        env=env, stdout=stdout, stderr=stderr, text=True, pass_fds=pass_fds)


def held_at_exit(hold: int) -> tuple[str, ...]:
    """`python -m runner` that, once the command is over, prints `exiting` and then waits to
    write into the pipe `hold`: held in the moments between the command's end and the process's."""
    return ("-c", "import os\nfrom runner.cli import command\ntry:\n    command()\nfinally:\n"
                  f"    print('exiting', flush=True)\n    os.write({hold}, b'.')\n")


def full_pipe() -> tuple[int, int]:
    """A pipe (reading end, writing end) with no room left: a process writing into it waits at
    its first write until the test reads."""
    reading, writing = os.pipe()
    os.set_blocking(writing, False)
    for size in (4096, 1):
        with suppress(BlockingIOError):
            while True:
                os.write(writing, b"\n" * size)
    os.set_blocking(writing, True)
    return reading, writing


def drained(process: subprocess.Popen[str], reading: int) -> str:
    """What the process wrote into the pipe `reading` reads from, once it has ended."""
    with open(reading, encoding="utf-8") as pipe:
        text = pipe.read()
    process.communicate(timeout=30)
    return text


def test_killed_at_random_moments_every_job_is_created_and_downloaded_once(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path, repeat=4)  # 16 jobs
    out = tmp_path / "out"
    rng = random.Random(20250301)
    kills = 0
    with run_in_thread(sim_settings(fault_create_500=0.1)) as sim:
        while kills < 12:
            process = start(manifest, out, sim, "--quiet")
            if not wait_for_transitions(process, out, transitions(out) + rng.randint(1, 4)):
                process.communicate()
                break
            process.kill()
            process.communicate()
            kills += 1
        final = start(manifest, out, sim, "--quiet")
        _, err = final.communicate(timeout=60)
        assert final.returncode == 0, err
        books = audit(out, sim)
    conn = sqlite3.connect(out / "journal.sqlite")
    downloads = Counter(key for (key,) in conn.execute(
        "SELECT job_key FROM transitions WHERE to_state = 'downloaded'"))
    conn.close()
    assert kills >= 10
    assert books["states"] == {"downloaded": 16}
    assert books["books"].creates_accepted == 16
    assert set(downloads.values()) == {1} and len(downloads) == 16
    assert len(list(out.rglob("*.mp4"))) == 16 and not list(out.rglob("*.part"))


def test_sigterm_stops_at_once_writes_results_and_exits_130(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path, repeat=2, run={"concurrency": 2})
    out = tmp_path / "out"
    with run_in_thread(sim_settings(render_seconds=20.0)) as sim:
        process = start(manifest, out, sim)
        assert wait_for_transitions(process, out, 3)
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=30)
        summary = (out / "summary.json").read_text("utf-8")
        resumed = start(manifest, out, sim, "--quiet")
        resumed.communicate(timeout=60)
        audit(out, sim)
    assert process.returncode == 130, err
    assert '"exit_code": 130' in summary and "SIGTERM" in summary
    assert resumed.returncode == 0


def test_sigterm_after_the_run_is_recorded_as_begun_ends_it_as_ctrl_c_does(tmp_path: Path) -> None:
    """Between the run's start in the journal and its engine (the plan brought in line, the
    account not yet read), SIGTERM ends the run as SIGINT does: its end recorded and announced,
    exit 130, the folder's lock let go."""
    manifest = write_manifest(tmp_path)
    out = tmp_path / "out"
    reading, writing = full_pipe()
    with run_in_thread(sim_settings()) as sim:
        process = start(manifest, out, sim, stderr=writing)  # held at its log's first line
        os.close(writing)
        assert wait_until(process, lambda: bool(runs(out)))
        process.send_signal(signal.SIGTERM)
        logged = drained(process, reading)
    assert process.returncode == 130, logged
    assert "run started: " in logged and "run ended: " in logged
    assert len(runs(out)) == 1 and ended(out) == 130 and FolderLock.holder(out) is None
    code, shown, _ = invoke("status", str(out))
    assert code == 0 and "exit 130 (interrupted by SIGTERM)" in shown


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_once_the_run_has_ended_changes_neither_its_lines_nor_its_exit_code(
        tmp_path: Path, stop: signal.Signals) -> None:
    """Signalled while it prints how the run ended, the command still prints it all and exits
    with the code the journal, summary and notification have."""
    manifest = write_manifest(tmp_path)
    out = tmp_path / "out"
    reading, writing = full_pipe()
    with run_in_thread(sim_settings()) as sim:
        process = start(manifest, out, sim, "--quiet", stdout=writing)  # held at its last lines
        os.close(writing)
        # Its end recorded and the folder let go: the run is over, its lines not yet printed.
        assert wait_until(process, lambda: ended(out) is not None and FolderLock.holder(out) is None)
        process.send_signal(stop)
        shown = drained(process, reading)
    assert ended(out) == 0 and process.returncode == 0, shown
    assert "every job downloaded: 8/8 downloaded" in shown and f"videos and results in {out}" in shown


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_after_the_last_line_leaves_the_exit_code_the_runs(
        tmp_path: Path, stop: signal.Signals) -> None:
    """Signalled once the command has printed all and is over, as the process exits, it still
    exits with the code the journal has."""
    manifest = write_manifest(tmp_path)
    out = tmp_path / "out"
    reading, writing = full_pipe()
    shown = []
    with run_in_thread(sim_settings()) as sim:
        process = start(manifest, out, sim, "--quiet", program=held_at_exit(writing),
                        pass_fds=(writing,))
        os.close(writing)
        assert process.stdout is not None
        for line in process.stdout:  # to the command's end, or the process's if it ends first
            if line == "exiting\n":
                break
            shown.append(line)
        process.send_signal(stop)
        drained(process, reading)
    assert ended(out) == 0 and process.returncode == 0, shown
    assert shown[-1] == f"videos and results in {out} (results.jsonl, report.html)\n"


def test_a_run_in_a_process_that_goes_on_gives_its_signals_back(tmp_path: Path) -> None:
    """Run in-process (a test's CliRunner, a script's), the command leaves the handlers it found:
    Ctrl-C still interrupts the process after it."""
    manifest = write_manifest(tmp_path)
    before = [signal.getsignal(number) for number in (signal.SIGINT, signal.SIGTERM)]
    with run_in_thread(sim_settings()) as sim:
        code, _, err = invoke_run(manifest, tmp_path / "out", sim)
    assert code == 0, err
    assert [signal.getsignal(number) for number in (signal.SIGINT, signal.SIGTERM)] == before


def test_the_key_appears_in_no_output_and_no_file(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path)
    out = tmp_path / "out"
    settings = sim_settings(fault_500=0.03, fault_create_500=0.2, fault_not_json=0.03,
                            fault_failed=0.2)
    with run_in_thread(settings) as sim:
        runs = [start(manifest, out, sim).communicate(timeout=60)]
        wrong = "0c3d2b8e-51f4-4a43-9bd6-9a0f0f0e0a11"
        runs.append(start(manifest, tmp_path / "other", sim, key=wrong).communicate(timeout=60))
        runs.append(start(manifest, tmp_path / "other", sim, key="bad key").communicate(timeout=60))
        secrets = [sim.api_key, wrong, "bad key"]
    captured = "".join(out_text + err_text for out_text, err_text in runs)
    assert "rejected" in captured
    for folder in (out, tmp_path / "other"):
        for path in folder.rglob("*"):
            if path.is_file():
                data = path.read_bytes()
                assert not any(secret.encode() in data for secret in secrets), path
    assert not any(secret in captured for secret in secrets)
