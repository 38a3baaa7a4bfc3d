"""`hailuo-batch run` and `status` through click: exit codes, dry runs, what they print."""

from __future__ import annotations

import csv
import fcntl
import io
import json
import os
import pty
import re
import sqlite3
import struct
import subprocess
import sys
import termios
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from bench.runs import Sweep, make_run
from enginekit import (PROMPTS, down_url, invoke, invoke_run, job, killed_retry_run, results_lines, run,
                       sim_settings, step, write_manifest)

from runner import results, state
from runner.batch import RunConfig, plan_for
from runner import nightly
from runner.cli import Progress
from runner.config import RunSettings, parse_duration
from runner.control import Event, Snapshot
from runner.notify import headline
from runner.plan import Job, make_plan
from runner.render import budget, dollars, figure, plural
from runner.results import status_lines
from runner.rows import FAILURE_KINDS
from runner.simulator import run_in_thread
from runner.state import Journal


def test_run_then_status_then_a_dry_run_that_finds_everything_done(tmp_path: Path) -> None:
    manifest, out = write_manifest(tmp_path), tmp_path / "out"
    with run_in_thread(sim_settings()) as sim:
        code, stdout, _ = invoke_run(manifest, out, sim)
        dry = invoke("run", str(manifest), "--out", str(out), "--dry-run")
        created = sim.books.creates_accepted
    assert code == 0 and f"videos and results in {out}" in stdout
    assert created == 8 and "0 new, 0 in flight, 8 done, 0 failed" in dry[1]
    code, text, _ = invoke("status", str(out))
    assert code == 0 and "downloaded 8" in text and "spent $2.16, reserved $0.00" in text
    code, text, _ = invoke("status", str(out), "--format", "json")
    assert json.loads(text)["summary"]["counts"] == {"downloaded": 8}


def test_a_bad_manifest_exits_2_and_sends_nothing(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path, styles={"vibe": ["No Such Style"]})
    with run_in_thread(sim_settings()) as sim:
        code, _, stderr = invoke("run", str(manifest), "--out", str(tmp_path / "out"),
                                 "--base-url", sim.base_url, key=sim.api_key)
        assert sim.books.creates_accepted == 0
    assert code == 2 and "No Such Style" in stderr and "Traceback" not in stderr


def test_a_missing_key_exits_4_with_a_clear_message(tmp_path: Path) -> None:
    code, _, stderr = invoke("run", str(write_manifest(tmp_path)), "--out", str(tmp_path / "o"))
    assert code == 4 and "no API key: set LEONARDO_API_KEY or pass --api-key-file" in stderr


@pytest.mark.parametrize("key", ["", " \n"], ids=["empty", "blank"])
def test_an_empty_key_in_the_environment_is_said_to_be_empty_not_unset(tmp_path: Path, key: str) -> None:
    code, _, stderr = invoke("run", str(write_manifest(tmp_path)), "--out", str(tmp_path / "o"),
                             key=key)
    assert code == 4 and ("LEONARDO_API_KEY is set but empty: put the API key in it, or pass "
                          "--api-key-file") in stderr


def test_the_key_can_come_from_a_file(tmp_path: Path) -> None:
    manifest, out = write_manifest(tmp_path, repeat=1), tmp_path / "out"
    with run_in_thread(sim_settings()) as sim:
        (tmp_path / "key").write_text(sim.api_key + "\n")
        (tmp_path / "key").chmod(0o600)
        code, _, _ = invoke("run", str(manifest), "--out", str(out), "--base-url", sim.base_url,
                            "--api-key-file", str(tmp_path / "key"), "--quiet")
    assert code == 0


def test_status_of_a_folder_without_a_journal_is_a_clear_error(tmp_path: Path) -> None:
    code, _, stderr = invoke("status", str(tmp_path))
    assert code == 2 and "no journal here" in stderr and "Traceback" not in stderr


def failed_by_hand(tmp_path: Path, jobs: int, failures: list[tuple[str, str | None]], *,
                   ended: str = "some jobs failed") -> tuple[Path, list[Job]]:
    """The folder of a one-prompt manifest of `jobs` jobs whose first ones failed, each with a
    (reason, kind) of `failures`, written to its journal as a run that ended saying `ended`
    leaves it: the folder and the planned jobs."""
    manifest = write_manifest(tmp_path, prompts=PROMPTS[:1], repeat=jobs, styles={"vibe": ["none"]})
    out = tmp_path / "out"
    planned, _ = plan_for(RunConfig(manifest=manifest, out=out))
    with Journal.open(out) as journal:
        journal.sync_plan(planned.jobs)
        run_id = journal.begin_run(name="sweep", manifest=str(manifest), settings={}, at=1.0)
        for job, (reason, kind) in zip(planned.jobs, failures):
            step(journal, job.key, "failed", run_id=run_id, at=2.0, reason=reason, kind=kind)
        journal.end_run(run_id, exit_code=1, reason=ended, at=3.0)
    return out, planned.jobs


def test_a_reason_from_the_api_cannot_forge_lines_of_status(tmp_path: Path) -> None:
    """A failure's reason is the API's text: its newlines, carriage returns and escapes are
    shown as spaces, so that `status` keeps one line a failure."""
    forged = "bad\n2026-11-24 22:00:00 INFO run ended: 1/1 downloaded, exit 0\r\x1b[31mRED\x9b"
    out, jobs = failed_by_hand(tmp_path, 1, [(forged, "invalid")], ended=forged)
    code, stdout, _ = invoke("status", str(out))
    lines = stdout.splitlines()
    assert code == 0 and not re.search(r"[\x00-\x1f\x7f-\x9f]", stdout.replace("\n", ""))
    told = [line for line in lines if "run ended" in line]
    assert len(told) == 2 and told[0].startswith("last run: started ")
    assert told[1].startswith(f"failed {jobs[0].key[:10]} ")


def test_status_of_a_manifest_says_it_takes_the_output_folder_and_points_at_plan(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path)
    code, _, stderr = invoke("status", str(manifest))
    assert code == 2 and stderr == (
        f"error: {manifest} is a file: status takes a run's output folder (the one holding its "
        "videos and journal.sqlite); for a manifest, `hailuo-batch plan FILE --out DIR` shows its "
        "jobs against a folder\n")


def test_a_time_scale_without_simulate_is_a_usage_error(tmp_path: Path) -> None:
    code, _, stderr = invoke("run", str(write_manifest(tmp_path)), "--out", str(tmp_path / "out"),
                             "--time-scale", "5", key="00000000-0000-4000-8000-000000000000")
    assert code == 2 and "--time-scale goes with --simulate" in stderr
    assert not (tmp_path / "out").exists()


def test_a_bad_time_scale_is_told_under_its_flag(tmp_path: Path) -> None:
    code, _, stderr = invoke("run", str(write_manifest(tmp_path)), "--out", str(tmp_path / "out"),
                             "--simulate", "--time-scale", "0")
    assert code == 2 and "error: --time-scale: must be a finite number more than 0, not 0.0" in stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("flags", [["--base-url"], ["--api-key-file"], ["--base-url", "--api-key-file"]])
def test_simulate_with_an_api_root_or_a_key_file_is_a_usage_error(
        tmp_path: Path, flags: list[str]) -> None:
    key = tmp_path / "key"
    key.write_text("00000000-0000-4000-8000-000000000000\n")
    key.chmod(0o600)
    values = {"--base-url": "http://127.0.0.1:8765/api/rest", "--api-key-file": str(key)}
    code, _, stderr = invoke("run", str(write_manifest(tmp_path)), "--out", str(tmp_path / "out"),
                             "--simulate", *(part for flag in flags for part in (flag, values[flag])))
    assert code == 2 and "Traceback" not in stderr
    assert (f"{' and '.join(flags)} with --simulate: --simulate serves its own API and needs no "
            "key; drop one or the other") in stderr
    assert not (tmp_path / "out").exists()


def test_simulate_leaves_an_api_root_and_a_key_in_the_environment_unused(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEONARDO_BASE_URL", down_url())  # where nothing answers
    code, _, stderr = invoke("run", str(write_manifest(tmp_path, repeat=1)), "--out",
                             str(tmp_path / "out"), "--simulate", "--time-scale", "600", "--quiet",
                             key="00000000-0000-4000-8000-000000000000")
    assert code == 0, stderr
    assert len(list((tmp_path / "out").rglob("*.mp4"))) == 4


def test_a_grace_without_a_max_runtime_is_a_usage_error(tmp_path: Path) -> None:
    code, _, stderr = invoke("run", str(write_manifest(tmp_path)), "--out", str(tmp_path / "out"),
                             "--simulate", "--grace", "1m")
    assert code == 2 and "--grace goes with a max runtime" in stderr and "Traceback" not in stderr
    assert not (tmp_path / "out").exists()
    code, _, _ = invoke("run", str(write_manifest(tmp_path)), "--out", str(tmp_path / "out"),
                        "--simulate", "--grace", "1m", "--max-runtime", "1h", "--quiet")
    assert code == 0


def test_on_a_terminal_the_bar_shows_the_run_and_log_lines_stay_off_it(tmp_path: Path) -> None:
    manifest, out = write_manifest(tmp_path), tmp_path / "out"
    with run_in_thread(sim_settings()) as sim:
        screen, code = on_terminal([sys.executable, "-m", "runner", "run", str(manifest), "--out",
                                    str(out), "--base-url", sim.base_url], key=sim.api_key)
    assert code == 0, screen
    assert re.search(r"8/8 .*in flight 0, failed 0, \$2\.16 this run", screen), screen
    for said in ("run started", "run ended"):  # each on a line of its own, not after the bar
        assert re.search(rf"(^|[\r\n])\d{{4}}-\d\d-\d\d \d\d:\d\d:\d\d INFO {said}: ", screen), screen


def progress_records(log: Path) -> list[dict[str, Any]]:
    """The progress records of a JSON run log, in order."""
    return [record["progress"] for record in map(json.loads, log.read_text("utf-8").splitlines())
            if "progress" in record]


def test_a_quiet_run_still_writes_its_progress_records_to_the_log_file(tmp_path: Path) -> None:
    manifest, log = write_manifest(tmp_path), tmp_path / "run.jsonl"
    with run_in_thread(sim_settings()) as sim:
        code, _, said = invoke_run(manifest, tmp_path / "out", sim, "--log-file", str(log),
                                   "--log-format", "json")
    assert code == 0 and said == ""
    progress = progress_records(log)
    assert progress and progress[-1]["downloaded"] == progress[-1]["total"] == 8, progress


@pytest.mark.parametrize("quiet", [True, False], ids=["quiet", "not-quiet"])
@pytest.mark.parametrize("terminal", [True, False], ids=["terminal", "not-terminal"])
def test_a_log_file_gets_a_progress_record_at_the_steady_interval_whatever_the_screen_shows(
        hailuo_log: pytest.LogCaptureFixture, quiet: bool, terminal: bool) -> None:
    screen = Screen() if terminal else io.StringIO()
    progress = Progress(quiet=quiet, to_file=True, every=60.0, screen=screen)
    with progress.drawing():
        for kind, elapsed in [("tick", 0.0), ("tick", 59.0), ("tick", 61.0), ("downloaded", 70.0),
                              ("tick", 120.0), ("tick", 125.0), ("stop", 130.0)]:
            progress(Event(kind, None, "", Snapshot(total=8, downloaded=int(elapsed) // 20, failed=0,
                                                    in_flight=1, pending=0, spent_usd=0.0,
                                                    spent_estimated_usd=0.0, elapsed=elapsed, eta=None)))
    assert [record.progress["elapsed"] for record in hailuo_log.records] == [0.0, 61.0, 125.0, 130.0]
    assert ("6/8" in screen.getvalue()) == (terminal and not quiet)  # the bar, drawn only then


def test_on_a_terminal_the_bar_is_drawn_and_the_log_file_gets_the_progress_records(
        tmp_path: Path) -> None:
    manifest, out, log = write_manifest(tmp_path), tmp_path / "out", tmp_path / "run.jsonl"
    with run_in_thread(sim_settings()) as sim:
        screen, code = on_terminal([sys.executable, "-m", "runner", "run", str(manifest), "--out",
                                    str(out), "--base-url", sim.base_url, "--log-file", str(log),
                                    "--log-format", "json"], key=sim.api_key)
    assert code == 0, screen
    assert re.search(r"8/8 .*in flight 0, failed 0, \$2\.16 this run", screen), screen
    assert "progress" not in screen and "run started" not in screen, screen  # the log is the file's
    progress = progress_records(log)
    assert progress and progress[-1]["downloaded"] == progress[-1]["total"] == 8, progress


class Screen(io.StringIO):
    """What a terminal would show, kept as text."""

    def isatty(self) -> bool:
        return True


def test_each_frame_of_the_bar_shows_its_count_with_its_own_figures_and_none_after_the_stop(
        tmp_path: Path) -> None:
    screen = Screen()
    progress = Progress(quiet=False, screen=screen)

    def every_step_drawn(event: Event) -> None:
        progress(event)
        if progress.bar is not None:  # a frame for each count, not one a tenth of a second
            progress.bar.mininterval = 0
    with run_in_thread(sim_settings()) as sim, progress.drawing():
        run(write_manifest(tmp_path), tmp_path / "out", sim, sink=every_step_drawn)
        drawn = screen.getvalue()
    frames = [(int(done), int(flying)) for done, flying in
              re.findall(r"(\d+)/8 [^\r\n]*in flight (\d+),", drawn)]
    assert len(frames) > 8 and frames[-1] == (8, 0)
    assert [frame for frame in frames if sum(frame) > 8] == []  # a job counted both ways
    assert screen.getvalue() == drawn  # closed at the stop, not drawn again after the run's end


def on_terminal(command: list[str], *, key: str) -> tuple[str, int]:
    """What `command` draws on standard error when that is a terminal (a pseudo-terminal here),
    and its exit code."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 160, 0, 0))  # rows, columns
    process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                               stderr=follower, env={**os.environ, "LEONARDO_API_KEY": key})
    os.close(follower)
    drawn = bytearray()
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the terminal is gone: the process has ended
            break
        if not chunk:
            break
        drawn += chunk
    os.close(leader)
    return drawn.decode("utf-8", "replace"), process.wait(timeout=60)


def test_the_defaults_run_help_shows_are_the_ones_a_run_uses() -> None:
    code, text, _ = invoke("run", "--help")
    shown = {flag: value for flag, value in
             re.findall(r"(--[a-z-]+) [A-Z]+\s+(?:(?!\n  --).)*?\[([^\]]+)\]", text, re.DOTALL)}
    defaults = RunSettings()
    assert code == 0 and {
        "--concurrency": int(shown["--concurrency"]),
        "--submit-per-minute": float(shown["--submit-per-minute"]),
        "--poll-interval": parse_duration(shown["--poll-interval"]),
        "--timeout": parse_duration(shown["--timeout"]),
        "--max-jobs": int(shown["--max-jobs"]),
        "--grace": parse_duration(shown["--grace"]),
        "--budget-usd": None if shown["--budget-usd"] == "no cap" else shown["--budget-usd"],
    } == {"--concurrency": defaults.concurrency, "--submit-per-minute": defaults.submit_per_minute,
          "--poll-interval": defaults.poll_interval, "--timeout": defaults.timeout,
          "--max-jobs": defaults.max_jobs, "--grace": defaults.grace,
          "--budget-usd": defaults.budget_usd}


def test_on_a_resume_the_cost_and_the_budget_warning_count_only_the_jobs_left_to_create(
        tmp_path: Path) -> None:
    manifest, out = write_manifest(tmp_path, run={"budget_usd": 1.5}), tmp_path / "out"  # 8 x $0.27
    with run_in_thread(sim_settings()) as sim:
        code, _, _ = invoke_run(manifest, out, sim, "--budget-usd", "1.08")
    assert code == 3  # four jobs done, four left
    _, dry, _ = invoke("run", str(manifest), "--out", str(out), "--dry-run")
    _, planned, _ = invoke("plan", str(manifest), "--out", str(out))
    _, fresh, _ = invoke("run", str(manifest), "--out", str(tmp_path / "new"), "--dry-run")
    assert "estimated $2.16, $1.08 of it to create" in dry and "warning" not in dry
    assert "to create in the output folder: $1.08" in planned and "warning" not in planned
    assert ("warning: the jobs still to create in the folder are estimated at $2.16, above "
            "budget_usd ($1.50)") in fresh


def test_a_dry_run_and_the_run_count_the_failed_jobs_a_run_would_create_again(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path, prompts=["A quiet harbor at dawn, moderate-me"], repeat=1,
                              styles={"vibe": ["none"]})
    out, log = tmp_path / "out", tmp_path / "run.log"
    with run_in_thread(sim_settings()) as sim:
        code, _, _ = invoke_run(manifest, out, sim)
        assert code == 1  # refused by moderation: waits for --retry-failed
        _, waiting, _ = invoke("run", str(manifest), "--out", str(out), "--dry-run")
        _, retried, _ = invoke("run", str(manifest), "--out", str(out), "--dry-run", "--retry-failed")
        for more in ((), ("--retry-failed",)):
            invoke_run(manifest, out, sim, "--log-file", str(log), *more)
        dropped = write_manifest(tmp_path, repeat=1, styles={"vibe": ["none"]})  # without that prompt
        _, elsewhere, _ = invoke("run", str(dropped), "--out", str(out), "--dry-run", "--retry-failed")
    assert "$0.00 of it to create" in waiting and "$0.27 of it to create" in retried
    assert ("2 new, 0 in flight, 0 done, 0 failed; 1 job no longer planned: 1 failed; "
            "nothing was sent") in elsewhere  # kept, never taken up
    started = [line for line in log.read_text(encoding="utf-8").splitlines() if "run started" in line]
    assert [line.endswith("0 already downloaded, 0 to create") for line in started] == [True, False]
    assert started[1].endswith("0 already downloaded, 1 to create")


def test_the_run_and_status_say_which_failed_jobs_wait_for_retry_failed(tmp_path: Path) -> None:
    refused = write_manifest(tmp_path, prompts=[PROMPTS[0], "A street moderate-me at night"],
                             repeat=1, styles={"vibe": ["none"]}, name="refused")
    timed_out = write_manifest(tmp_path, prompts=PROMPTS[:1], repeat=1, styles={"vibe": ["none"]},
                               run={"timeout": "0.3s"}, name="timed-out")
    hint = "1 failed job is tried again only by a run with --retry-failed"
    with run_in_thread(sim_settings()) as sim:
        first, again = (invoke_run(refused, tmp_path / "out", sim) for _ in range(2))
    with run_in_thread(sim_settings(render_seconds=400.0, render_jitter_seconds=0.0)) as slow:
        passing = invoke_run(timed_out, tmp_path / "out-timed-out", slow)
    assert first[0] == again[0] == 1
    assert first[1].splitlines()[1] == again[1].splitlines()[1] == hint
    assert f"{hint}\nfailed " in invoke("status", str(tmp_path / "out"))[1]
    assert json.loads(invoke("status", str(tmp_path / "out"), "--format", "json")[1])[
        "summary"]["failed_for_retry"] == 1
    # a job that timed out is taken up again by the next run on its own: no word of the flag
    assert "failed for now" in passing[1] and "--retry-failed" not in passing[1]
    assert "--retry-failed" not in invoke("status", str(tmp_path / "out-timed-out"))[1]


def test_a_refused_job_a_killed_retry_failed_run_never_sent_is_shown_failed_not_new(
        tmp_path: Path) -> None:
    """The next run puts such a job back to failed and sends nothing: status, plan --out and a
    dry run say so too, as they did before that run took it up."""
    manifest = write_manifest(tmp_path, prompts=[PROMPTS[0], "A street moderate-me at night"],
                              repeat=1, styles={"vibe": ["none"]})
    out = tmp_path / "out"

    def views() -> tuple[list[str], str, str]:
        status = invoke("status", str(out))[1].splitlines()[2:]  # after the last run's line
        return (status, invoke("plan", str(manifest), "--out", str(out))[1],
                invoke("run", str(manifest), "--out", str(out), "--dry-run")[1])

    with run_in_thread(sim_settings()) as sim:
        assert invoke_run(manifest, out, sim)[0] == 1  # refused at create
    before = views()
    killed_retry_run(out, manifest)
    status, planned, dry = views()
    assert (status, planned, dry) == before
    assert status[0] == "downloaded 1  failed 1" and "refused by content moderation" in status[-1]
    assert "to create in the output folder: $0.00" in planned and "$0.00 of it to create" in dry


@pytest.mark.parametrize("left", [{"max_runtime": "0.5s", "grace": "0.1s"}, {"timeout": "0.3s"}],
                         ids=["in flight", "timed out"])
def test_a_dry_run_counts_the_paid_jobs_the_manifest_dropped_that_the_run_fetches(
        tmp_path: Path, left: dict[str, str]) -> None:
    out = tmp_path / "out"
    with run_in_thread(sim_settings(render_seconds=400.0, render_jitter_seconds=0.0)) as sim:
        first = run(write_manifest(tmp_path, repeat=1), out, sim, **left)  # 4 paid, none downloaded
        sim.advance(500)  # the renders end after the run stopped
        manifest = write_manifest(tmp_path, prompts=PROMPTS[:1], repeat=1)  # 2 of them dropped
        _, dry, _ = invoke("run", str(manifest), "--out", str(out), "--dry-run")
        _, planned, _ = invoke("plan", str(manifest), "--out", str(out), "--format", "json")
        code, shown, _ = invoke_run(manifest, out, sim)
        created = sim.books.creates_accepted
    assert first.outcome.exit_code == 3
    state = "failed" if "timeout" in left else "submitted"
    assert (f"; 2 jobs no longer planned: 2 {state} (2 of them still to fetch, nothing "
            "more is paid); nothing was sent" in dry and "$0.00 of it to create" in dry)
    paid = {json.loads(line)["key"] for line in (out / "results.jsonl").read_text().splitlines()}
    dropped = paid - {job["key"] for job in json.loads(planned)["jobs"]}
    fetching = json.loads(planned)["summary"]["unplanned_to_fetch"]
    assert len(dropped) == 2 and sorted(fetching) == sorted(dropped)
    assert code == 0 and created == 4 and shown.splitlines()[:2] == [
        "every job downloaded: 2/2 downloaded, $1.08 spent ($0.00 by this run)",
        "2 jobs no longer planned: 2 downloaded"]


def test_a_dry_run_and_plan_count_the_done_jobs_an_edit_drops_as_the_run_then_does(
        tmp_path: Path) -> None:
    """A prompt dropped from the manifest (by mistake, or a var's value renamed) takes its videos
    out of the plan: the dry run and `plan --out` say so before anything is sent, in the words
    of the run's last lines, and the plan's JSON counts them by state as summary.json does."""
    out = tmp_path / "out"
    with run_in_thread(sim_settings()) as sim:
        assert invoke_run(write_manifest(tmp_path), out, sim)[0] == 0  # 8 downloaded
        manifest = write_manifest(tmp_path, prompts=PROMPTS[:1])  # 4 of them dropped
        _, dry, _ = invoke("run", str(manifest), "--out", str(out), "--dry-run")
        _, planned, _ = invoke("plan", str(manifest), "--out", str(out))
        _, listed, _ = invoke("plan", str(manifest), "--out", str(out), "--format", "json")
        code, ended, _ = invoke_run(manifest, out, sim)
    dropped = "4 jobs no longer planned: 4 downloaded"
    assert f"0 new, 0 in flight, 4 done, 0 failed; {dropped}; nothing was sent" in dry
    assert planned.splitlines()[-1].endswith(f"0 new, 0 in flight, 4 done, 0 failed; {dropped}")
    assert json.loads(listed)["summary"]["unplanned_counts"] == {"downloaded": 4}
    assert code == 0 and ended.splitlines()[1] == dropped
    assert json.loads((out / "summary.json").read_text())["unplanned_counts"] == {"downloaded": 4}


def test_a_dry_run_and_plan_tell_the_paid_jobs_that_timed_out_from_those_failed_for_good(
        tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path, prompts=[PROMPTS[0], "A quiet harbor at dawn, moderate-me"],
                              repeat=1)
    out = tmp_path / "out"
    with run_in_thread(sim_settings(render_seconds=400.0, render_jitter_seconds=0.0)) as sim:
        first = run(manifest, out, sim, timeout="0.3s")  # 2 paid and timed out, 2 refused
        _, dry, _ = invoke("run", str(manifest), "--out", str(out), "--dry-run")
        _, planned, _ = invoke("plan", str(manifest), "--out", str(out))
        _, listed, _ = invoke("plan", str(manifest), "--out", str(out), "--format", "json")
    assert first.outcome.exit_code == 1
    said = "0 new, 0 in flight, 0 done, 4 failed (2 of them paid, to fetch with nothing more to pay)"
    assert f"{said}; nothing was sent" in dry and said in planned
    with Journal.open(out, create=False) as journal:
        timed_out = {row.key for row in journal.in_states(("failed",)) if row.error_kind == "timeout"}
    assert len(timed_out) == 2 and set(json.loads(listed)["summary"]["failed_to_fetch"]) == timed_out


def test_status_plan_and_run_say_when_videos_are_gone_and_fetch_missing_brings_them_back(
        tmp_path: Path) -> None:
    manifest, out = write_manifest(tmp_path, repeat=1), tmp_path / "out"
    with run_in_thread(sim_settings()) as sim:
        assert invoke_run(manifest, out, sim)[0] == 0
        video = sorted(out.rglob("*.mp4"))[0]
        content = video.read_bytes()
        video.unlink()
        _, status, _ = invoke("status", str(out))
        _, dry, _ = invoke("run", str(manifest), "--out", str(out), "--dry-run")
        _, planned, _ = invoke("plan", str(manifest), "--out", str(out))
        _, listed, _ = invoke("plan", str(manifest), "--out", str(out), "--format", "json")
        left = invoke_run(manifest, out, sim)
        fetched = invoke_run(manifest, out, sim, "--fetch-missing")
        assert sim.books.creates_accepted == 4
    assert ("1 downloaded video gone from the folder (deleted or moved by hand): run with "
            "--fetch-missing to download it again from its generation (nothing is paid again)\n"
            f"gone {video.relative_to(out)}\n") in status
    assert "0 new, 0 in flight, 4 done, 0 failed; 1 video gone from the folder" in dry
    assert "4 done, 0 failed; 1 video gone from the folder" in planned
    states = Counter(job["state"] for job in json.loads(listed)["jobs"])
    assert states == {"done": 3, "video gone": 1}
    assert left[0] == 0
    assert "4/4 downloaded (1 of the videos gone from the folder: see --fetch-missing)" in left[1]
    assert "--fetch-missing to download it again from its generation" in left[2]
    assert fetched[0] == 0 and "4/4 downloaded, $1.08 spent" in fetched[1]
    assert video.read_bytes() == content
    assert "gone" not in invoke("status", str(out))[1]


def test_status_of_a_big_folder_counts_failures_by_kind_and_names_the_first_ten_of_each_list(
        tmp_path: Path) -> None:
    """Past ten failed jobs or gone videos, `status` names the first ten of each, counts the
    failures by kind and says where every one is: a folder of thousands keeps its summary on
    one screen, and the JSON form and errors.jsonl still hold them all."""
    manifest = write_manifest(tmp_path, prompts=[PROMPTS[0], "A street moderate-me at night"],
                              repeat=10)  # 40 jobs, 20 of them refused at create
    out = tmp_path / "out"
    with run_in_thread(sim_settings(fault_failed=0.2)) as sim:  # a few renders FAILED too
        assert invoke_run(manifest, out, sim)[0] == 1
    gone = sorted(str(video.relative_to(out)) for video in out.rglob("*.mp4"))
    for video in gone:
        (out / video).unlink()
    kinds = Counter(line["error_kind"] for line in results_lines(out, "errors.jsonl"))
    failed = sum(kinds.values())
    assert len(gone) > 10 and failed > 10 and set(kinds) == {"moderation", "render"}
    _, text, _ = invoke("status", str(out))
    _, listed, _ = invoke("status", str(out), "--format", "json")
    found = json.loads(listed)
    missing = found["summary"]["missing_videos"]  # in the journal's order
    assert sorted(missing) == gone and found["summary"]["missing_videos_count"] == len(gone)
    assert len(found["failures"]) == failed
    lines = text.splitlines()
    whole = f"`hailuo-batch status {out} --format json`"
    shown = lines.index(f"gone {missing[0]}")
    assert lines[shown:shown + 11] == [*(f"gone {video}" for video in missing[:10]),
                                       f"... and {len(gone) - 10} more videos gone: every one in "
                                       f"missing_videos of {whole}"]
    counted = lines.index(f"{failed} failed jobs by kind:")
    assert lines[counted + 1:counted + 3] == [f"  {count} {FAILURE_KINDS[kind]}"
                                              for kind, count in kinds.most_common()]
    assert [line.startswith("failed ") for line in lines[counted + 3:]] == [True] * 10 + [False]
    assert lines[-1] == (f"... and {failed - 10} more failed jobs: every one in {whole} and "
                         f"{out / 'errors.jsonl'} (as the last run left them)")


def test_status_counts_failures_by_kind_whatever_details_their_reasons_hold(tmp_path: Path) -> None:
    """A reason may hold its own details (how far a download got, a generation's id), so a
    folder of thousands of failures can have thousands of them: counted by kind, the count
    stays short, and a job an earlier version failed without a kind is counted too, as is one
    the manifest no longer has, said apart. errors.jsonl, written at a run's end, is not named
    while no run has written it."""
    failures = [("the generation FAILED", "render")] * 2 + [
        (f"download failed: {size} bytes of 100", "download") for size in range(10)] + [
        ("timed out", None)]
    out, jobs = failed_by_hand(tmp_path, 13, failures)
    with Journal.open(out) as journal:
        journal.sync_plan(jobs[1:])
    lines = invoke("status", str(out))[1].splitlines()
    counted = lines.index("13 failed jobs by kind (1 of them no longer planned):")
    assert lines[counted + 1:counted + 4] == ["  10 whose download failed", "  2 whose render failed",
                                              "  1 of no kind recorded"]
    assert lines[counted + 4].startswith(f"failed {jobs[1].key[:10]} ")
    assert lines[-1] == f"... and 3 more failed jobs: every one in `hailuo-batch status {out} --format json`"


# `hailuo-batch ARGS` in a process that may write files of 64 KB at the most: a temp folder full.
FULL_TEMP_FOLDER = ("import resource, sys; resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 16, 1 << 16)); "
                    "from runner.__main__ import command; command()")


def test_a_read_of_the_journal_the_machine_fails_is_the_folders_error_with_exit_4(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`status` and `report` sort a large folder's jobs in SQLite's temp folder: that folder full
    ends them with exit 4, naming the folder and what to do, never a traceback; an SQL error, a
    bug, keeps its traceback."""
    out = tmp_path / "out"
    with Journal.open(out) as journal:  # 3,000 jobs of 1 KB prompts: 6 MB to sort
        journal.sync_plan([job(n, prompt=f"take {n}: " + "a street at night, " * 50) for n in range(3000)])
    for command in (["status"], ["report", "--format", "csv"]):
        told = subprocess.run([sys.executable, "-c", FULL_TEMP_FOLDER, *command, str(out)],
                              capture_output=True, text=True, check=False)
        assert (told.returncode, told.stdout) == (4, "")
        assert told.stderr.startswith(f"error: {out}: cannot read the journal: disk I/O error: check "
                                      "the folder's disk and the temp folder SQLite sorts in (SQLITE_TMPDIR")
        assert len(told.stderr.splitlines()) == 1
    assert invoke("status", str(out))[0] == 0  # with room to sort
    monkeypatch.setattr(state, "_SELECT", "SELECT no_such_column FROM jobs")
    with pytest.raises(sqlite3.OperationalError, match="no such column"):
        invoke("status", str(out))


def test_status_json_is_the_summary_and_every_failure_printed_a_job_at_a_time(tmp_path: Path) -> None:
    """`status --format json` is the document `json.dumps(..., indent=2)` makes of the folder's
    summary and its failed jobs' records, the current plan's first, as the results files hold
    them; it is printed a failed job at a time, the journal read as it goes."""
    out, jobs = failed_by_hand(tmp_path, 6, [("refusé: «modéré»", "moderation")] * 4)
    with Journal.open(out) as journal:
        journal.sync_plan(jobs[1:])  # the first failed job is no longer planned
    code, listed, _ = invoke("status", str(out), "--format", "json")
    found = json.loads(listed)
    assert code == 0 and listed == json.dumps(found, indent=2) + "\n"
    kept = results.collect(out)
    failures = [record for record in kept.records if record["state"] == "failed"]
    assert found == {"summary": kept.summary, "failures": failures}
    assert [failure["key"] for failure in found["failures"]] == [
        job.key for job in [*jobs[1:4], jobs[0]]]
    assert found["summary"]["counts"] == {"failed": 4, "pending": 2}
    assert len(list(results.status(out, as_json=True))) == 2 + 4


def test_a_simulated_run_without_out_keeps_its_clips_apart_from_paid_videos(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    manifest = write_manifest(tmp_path, repeat=1)  # output.dir: out/{name}
    monkeypatch.chdir(tmp_path)
    code, shown, _ = invoke("run", str(manifest), "--simulate", "--time-scale", "600", "--quiet")
    assert code == 0 and "videos and results in out/sweep-simulated" in shown
    assert not (tmp_path / "out" / "sweep").exists()
    assert len(list((tmp_path / "out" / "sweep-simulated").rglob("*.mp4"))) == 4


def test_a_first_run_refused_before_it_began_points_at_no_results(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with run_in_thread(sim_settings()) as sim:
        code, shown, _ = invoke("run", str(write_manifest(tmp_path)), "--out", str(out), "--quiet",
                                "--base-url", sim.base_url.removesuffix("/api/rest"), key=sim.api_key)
    assert code == 4 and "no Leonardo API root" in shown
    assert not (out / "summary.json").exists() and "videos and results in" not in shown


def test_an_unsettled_create_is_looked_for_first_not_counted_as_one_to_create(tmp_path: Path) -> None:
    manifest, out, log = write_manifest(tmp_path, repeat=1), tmp_path / "out", tmp_path / "run.log"
    jobs = make_plan(manifest).jobs
    with Journal.open(out) as journal:  # a run died with one create sent and not answered
        run_id = journal.begin_run(name="sweep", manifest=str(manifest), settings={}, at=1.0)
        journal.sync_plan(jobs)
        step(journal, jobs[0].key, "submitting", reserved_usd=0.27, run_id=run_id, at=2.0)
    _, dry, _ = invoke("run", str(manifest), "--out", str(out), "--dry-run")
    with run_in_thread(sim_settings()) as sim:
        code, _, _ = invoke_run(manifest, out, sim, "--log-file", str(log))
        created = sim.books.creates_accepted
    (started,) = [line for line in log.read_text(encoding="utf-8").splitlines() if "run started" in line]
    assert len(jobs) == 4 and "$0.81 of it to create" in dry and "1 in flight" in dry
    assert started.endswith("0 already downloaded, 3 to create, 1 unsettled create to look for "
                            "first (created again only when not found)")
    assert code == 0 and created == 4  # not found on this account: created once


def test_a_refused_prompt_fixed_under_its_id_is_counted_apart_by_the_run_status_and_summary(
        tmp_path: Path) -> None:
    def manifest(text: str) -> Path:
        return write_manifest(tmp_path, prompts=[{"id": "street", "text": PROMPTS[0]},
                                                 {"id": "night", "text": text}],
                              repeat=1, styles={"vibe": ["none"]})

    out = tmp_path / "out"
    with run_in_thread(sim_settings()) as sim:
        assert invoke_run(manifest("A street moderate-me at night"), out, sim)[0] == 1
        code, ended, _ = invoke_run(manifest("A street at night"), out, sim)
    _, status, _ = invoke("status", str(out))
    summary = json.loads((out / "summary.json").read_text())
    assert code == 0 and ended.splitlines()[:2] == [
        "every job downloaded: 2/2 downloaded, $0.54 spent ($0.27 by this run)",
        "1 job no longer planned: 1 failed"]
    assert status.splitlines()[2:5] == ["downloaded 2", "1 job no longer planned: 1 failed",
                                        "spent $0.54, reserved $0.00, estimated $0.54"]
    (failure,) = [line for line in status.splitlines() if line.startswith("failed ")]
    assert " night (no longer planned): refused by content moderation" in failure
    assert summary["counts"] == {"downloaded": 2, "failed": 1} and summary["jobs"] == 3
    assert summary["unplanned_counts"] == {"failed": 1} and summary["estimated_usd"] == 0.54
    assert headline(summary).startswith(
        "hailuo-batch sweep: 2/2 downloaded, 0 failed, $0.54 spent ($0.27 by this run)")
    assert headline(summary).endswith("; 1 job no longer planned: 1 failed")


def test_a_run_that_fails_a_job_the_manifest_dropped_says_it_apart_from_the_plans_counts(
        tmp_path: Path) -> None:
    """Paid jobs that timed out are fetched by the next run even once the manifest dropped them:
    one whose render then fails is among the run's failures, and its reason says it is no longer
    in the manifest, as `status` does, beside the plan's counts."""
    def manifest(*ids: str) -> Path:
        texts = {"street": PROMPTS[0], "night": "A street moderate-me at night",
                 "dawn": "A street moderate-me at dawn"}
        return write_manifest(tmp_path, prompts=[{"id": id, "text": texts[id]} for id in ids],
                              repeat=1, styles={"vibe": ["none"]}, run={"timeout": "0.3s"})

    out = tmp_path / "out"
    with run_in_thread(sim_settings(render_seconds=400.0, render_jitter_seconds=0.0,
                                    moderation_stage="render")) as sim:
        assert invoke_run(manifest("street", "night", "dawn"), out, sim)[0] == 3  # all timed out
        sim.advance(500)  # their renders end: two FAILED by moderation
        code, ended, _ = invoke_run(manifest("street", "dawn"), out, sim)
    summary = json.loads((out / "summary.json").read_text())
    reason = "2 jobs failed (1 of them no longer planned; see errors.jsonl)"
    assert code == 1 and ended.splitlines()[:2] == [
        f"{reason}: 1/2 downloaded, $0.81 spent ($0.00 by this run)",
        "1 job no longer planned: 1 failed"]
    assert summary["exit_reason"] == reason
    assert headline(summary) == (f"hailuo-batch sweep: 1/2 downloaded, 1 failed, $0.81 spent ($0.00 by "
                                 f"this run), exit 1 ({reason}); 1 job no longer planned: 1 failed")


def test_the_cells_on_invalid_skip_left_out_are_told_by_rule_in_the_summary_status_and_gallery(
        tmp_path: Path) -> None:
    """A sweep over models and aspect ratios whose text-to-video cells break two rules: the
    grid shows 2 of its 8 cells, and the folder says why the 6 others are not there."""
    manifest = write_manifest(tmp_path, repeat=1, styles={"vibe": ["none"]}, on_invalid="skip",
                              matrix={"model": ["hailuo-2_3", "hailuo-2_3-fast"],
                                      "aspect_ratio": ["16:9", "9:16"]})
    out = tmp_path / "out"
    with run_in_thread(sim_settings()) as sim:
        assert invoke_run(manifest, out, sim)[0] == 0
    ratio = "text-to-video is 16:9 only, not 9:16: add a start frame or use 16:9"
    fast = "hailuo-2_3-fast needs a start frame (guidances.start_frame)"
    told = (f"6 cells skipped as invalid (on_invalid: skip), by the rule each breaks: {ratio} (4); "
            f"{fast} (2)")
    summary = json.loads((out / "summary.json").read_text())
    assert summary["jobs"] == 2 and summary["skipped_invalid"] == 6
    assert summary["skipped_invalid_by_rule"] == {ratio: 4, fast: 2}
    _, status, _ = invoke("status", str(out))
    assert status.splitlines()[2:5] == ["downloaded 2", told,
                                        "spent $0.54, reserved $0.00, estimated $0.54"]
    header = re.search(r'<header class="top">.*?</header>', (out / "report.html").read_text(),
                       re.DOTALL)
    assert header is not None and f'<p id="run-skipped" class="muted">{told}</p>' in header[0]
    # A folder written before summaries told of such cells reads as one with none left out.
    for field in ("skipped_invalid", "skipped_invalid_by_rule"):
        del summary[field]
    (out / "summary.json").write_text(json.dumps(summary))
    (out / "journal.sqlite").unlink()
    assert invoke("report", str(out))[0] == 0
    assert 'id="run-skipped"' not in (out / "report.html").read_text()
    assert told not in status_lines(summary, ())


def test_money_booked_at_estimates_after_lost_create_answers_is_said_to_be_estimated(
        tmp_path: Path) -> None:
    out, prices = tmp_path / "out", tmp_path / "prices.yaml"
    prices.write_text('hailuo-2_3: {768p: {"6": 0.01}}\n', encoding="utf-8")  # below the real price
    answered = sim_settings()
    with run_in_thread(answered) as sim:  # 4 jobs whose creates named their cost: $1.08
        assert invoke_run(write_manifest(tmp_path, repeat=1), out, sim)[0] == 0
    lost = sim_settings(fault_create_500=1.0, user_id=answered.user_id)
    with run_in_thread(lost) as sim:  # 4 more, each create billed, its answer lost
        code, ended, _ = invoke_run(write_manifest(tmp_path), out, sim, "--prices", str(prices),
                                    "--request-timeout", "0.5s")
        created = sim.books.creates_accepted
    # Each found on the account, booked at the $0.27 the API named for their kind, above the table's.
    assert code == 0 and created == 4
    assert ended.splitlines()[0] == ("every job downloaded: 8/8 downloaded, $2.16 spent "
                                     "($1.08 of it estimated; $1.08 by this run)")
    written = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert (written["spent_usd"], written["spent_estimated_usd"], written["run_spent_usd"]) == (
        2.16, 1.08, 1.08)
    _, text, _ = invoke("status", str(out))
    assert "spent $2.16 ($1.08 of it estimated), reserved $0.00" in text
    _, shown, _ = invoke("status", str(out), "--format", "json")
    assert json.loads(shown)["summary"]["spent_estimated_usd"] == 1.08
    with (out / "results.csv").open(encoding="utf-8", newline="") as table:
        rows = list(csv.DictReader(table))
    assert Counter((row["cost_usd"], row["spent_usd"], row["spent_estimated_usd"])
                   for row in rows) == {("0.27", "0.27", "0.0"): 4, ("", "0.27", "0.27"): 4}


def test_counts_and_money_people_read_have_their_thousands_separated(tmp_path: Path) -> None:
    """A folder of 20,000 jobs reads `18,619/20,000 downloaded, $5,184.00 spent` in the run's
    last line, the notification, the progress log line and `status`, as `1,381 jobs` does."""
    assert (figure(7), figure(18619), figure(1_000_000)) == ("7", "18,619", "1,000,000")
    assert (dollars(0.27), dollars(5184), dollars(27000.004)) == ("$0.27", "$5,184.00", "$27,000.00")
    assert (plural(1, "job"), plural(1381, "job")) == ("1 job", "1,381 jobs")
    assert (budget(3), budget(0.6), budget(1500), budget(12345.67)) == (
        "$3", "$0.6", "$1,500", "$12,345.67")
    make_run(tmp_path / "big", Sweep(prompts=100, vibes=8, lightings=5))  # 4,000 jobs, a fifth failed
    text = invoke("report", str(tmp_path / "big"), "--format", "text")[1].splitlines()
    assert text[1].startswith("4,000 jobs: 3,200 done, 800 failed, 0 unfinished; spent $896.00 ")
    assert text[1].endswith(" of $1,120.00 estimated")
    summary = {"name": "m20k", "out": str(tmp_path), "jobs": 20000, "started_at": None,
               "counts": {"downloaded": 18619, "failed": 1381}, "unplanned_counts": {},
               "spent_usd": 5184.0, "spent_estimated_usd": 0.0, "run_spent_usd": 5184.0,
               "reserved_usd": 0.0, "estimated_usd": 5400.0, "missing_videos": [],
               "failed_for_retry": 1381, "exit_code": 1,
               "exit_reason": "1,381 jobs failed (see errors.jsonl)"}
    assert headline(summary) == ("hailuo-batch m20k: 18,619/20,000 downloaded, 1,381 failed, "
                                 "$5,184.00 spent, exit 1 (1,381 jobs failed (see errors.jsonl))")
    assert status_lines(summary, ()) == [
        f"m20k: 20,000 jobs in {tmp_path}", "downloaded 18,619  failed 1,381",
        "spent $5,184.00, reserved $0.00, estimated $5,400.00",
        "1,381 failed jobs are tried again only by a run with --retry-failed"]
    progress = Snapshot(total=100000, downloaded=51672, failed=3605, in_flight=59, pending=44664,
                        spent_usd=14929.11, spent_estimated_usd=1250.5, elapsed=147.0, eta=None)
    assert progress.describe() == ("55,277/100,000 finished (3,605 failed), 59 in flight, "
                                   "44,664 waiting, $14,929.11 ($1,250.50 of it estimated) spent "
                                   "by this run")


def test_a_dry_run_plan_validate_and_a_runs_start_of_thousands_of_jobs_separate_their_thousands(
        tmp_path: Path, hailuo_log: pytest.LogCaptureFixture) -> None:
    prompts = [f"A lighthouse in a storm, take {take}" for take in range(20)]
    manifest = write_manifest(tmp_path, prompts=prompts, repeat=100,  # 4,000 jobs at $0.27
                              run={"budget_usd": 1000, "max_jobs": 4000})
    out = tmp_path / "out"
    dry, planned, valid = (invoke("run", str(manifest), "--out", str(out), "--dry-run")[1],
                           invoke("plan", str(manifest), "--out", str(out))[1],
                           invoke("validate", str(manifest))[1])
    over = "are estimated at $1,080.00, above budget_usd ($1,000.00)"
    assert dry.splitlines()[:2] == [
        "sweep: 4,000 jobs, estimated $1,080.00, $1,080.00 of it to create",
        f"in {out}: 4,000 new, 0 in flight, 0 done, 0 failed; nothing was sent (dry run)"]
    assert planned.splitlines()[-3:-1] == [
        "4,000 jobs from 40 cells: 0 removed by exclude, 0 added by include, 0 skipped as invalid, "
        "0 merged duplicates",
        "estimated total: $1,080.00 (price estimates; the actual cost of each job comes from the API)"]
    assert over in dry and over in planned.splitlines()[-1]
    assert valid.splitlines()[0] == f"{manifest}: ok, 4,000 jobs, estimated $1,080.00"
    nightly.run_started(make_plan(manifest), out, {"downloaded": 1500, "pending": 2500},
                        {"downloaded": 1500, "pending": 2500}, [], [])
    assert hailuo_log.records[0].getMessage() == (
        f"run started: sweep, 4,000 jobs (estimated $1,080.00) into {out}; 1,500 already "
        "downloaded, 0 to create")
