"""The summary POSTed to a webhook on 127.0.0.1 when a run ends, however it ends; a receiver that
is down is logged and never changes the exit code."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
from nightlykit import (
    closed_port_url,
    key_file,
    receiver,
    run_cli,
    sim_settings,
    json_log,
    started,
    summary,
    trickling,
    write_manifest,
)

from runner.simulator import run_in_thread, statefile


def test_the_receiver_gets_the_summary_and_a_one_line_text(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path)
    with run_in_thread(sim_settings()) as sim, receiver() as hook:
        done = run_cli("run", manifest, "--out", "out", "--base-url", sim.base_url,
                       "--api-key-file", key_file(tmp_path, sim), "--notify-url", hook.url,
                       cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    (body,) = hook.received
    assert body["text"] == body["content"] == ("hailuo-batch nightly: 8/8 downloaded, 0 failed, "
                                               "$2.16 spent, exit 0 (every job downloaded)")
    assert body["summary"]["counts"] == {"downloaded": 8}
    assert body["summary"]["out"] == "out"
    assert "INFO notification sent" in done.stderr
    assert sim.api_key not in str(body)


def test_the_receiver_gets_the_count_of_the_videos_gone_and_only_the_first_ten(tmp_path: Path) -> None:
    """A clean-up of a big folder would otherwise post every path to a chat: megabytes for a
    folder of 100,000 jobs, and write them on one line of a JSON log. summary.json names every
    one."""
    manifest = write_manifest(tmp_path, repeat=3)  # 12 jobs
    with run_in_thread(sim_settings()) as sim, receiver() as hook:
        args = ("run", manifest, "--out", "out", "--base-url", sim.base_url, "--api-key-file",
                key_file(tmp_path, sim), "--notify-url", hook.url)
        assert run_cli(*args, cwd=tmp_path).returncode == 0
        for video in (tmp_path / "out").rglob("*.mp4"):
            video.unlink()
        done = run_cli(*args, "--log-file", "log.jsonl", "--log-format", "json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    written = summary(tmp_path / "out")
    sent = hook.received[1]["summary"]
    ended = [r["summary"] for r in json_log(tmp_path / "log.jsonl") if r["message"].startswith("run ended: ")]
    assert ended == [sent]
    assert len(written["missing_videos"]) == written["missing_videos_count"] == 12
    assert sent["missing_videos"] == written["missing_videos"][:10]
    assert sent["missing_videos_count"] == 12
    assert {**sent, "missing_videos": written["missing_videos"]} == written
    assert hook.received[1]["text"].startswith(  # as the mail says it
        "hailuo-batch nightly: 12/12 downloaded (12 of the videos gone from the folder: see "
        "--fetch-missing), 0 failed, ")
    assert "12/12 downloaded (12 of the videos gone from the folder: see --fetch-missing)" in done.stdout


@pytest.mark.parametrize(("failed", "exit_code"), [(0.0, 0), (1.0, 1)])
def test_a_receiver_that_is_down_is_logged_and_the_exit_code_is_the_runs(
        tmp_path: Path, failed: float, exit_code: int) -> None:
    manifest = write_manifest(tmp_path, repeat=1)
    with run_in_thread(sim_settings(fault_failed=failed)) as sim:
        done = run_cli("run", manifest, "--out", "out", "--base-url", sim.base_url,
                       "--api-key-file", key_file(tmp_path, sim), "--notify-url",
                       closed_port_url(), cwd=tmp_path)
    assert done.returncode == exit_code, done.stderr
    assert "WARNING notification failed: cannot reach the receiver" in done.stderr


def test_the_manifests_notify_url_hears_of_a_stopped_run(tmp_path: Path) -> None:
    with receiver() as hook:
        manifest = write_manifest(tmp_path, run={"budget_usd": 0.6}, notify=hook.url)
        with run_in_thread(sim_settings()) as sim:
            done = run_cli("run", manifest, "--out", "out", "--base-url", sim.base_url,
                           "--api-key-file", key_file(tmp_path, sim), cwd=tmp_path)
    assert done.returncode == 3, done.stderr
    assert ("WARNING nightly: the jobs still to create in the folder are estimated at $2.16, above "
            "budget_usd ($0.60)" in done.stderr)
    (body,) = hook.received
    assert body["summary"]["exit_code"] == 3
    assert body["text"].startswith("hailuo-batch nightly: 2/8 downloaded, 0 failed, $0.54 spent, "
                                   "exit 3 (the budget of $0.6 is reached)")


def test_a_resumed_run_tells_what_it_spent_beside_the_folders_total(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path, run={"budget_usd": 0.6})
    with run_in_thread(sim_settings()) as sim, receiver() as hook:
        args = ("run", manifest, "--out", "out", "--base-url", sim.base_url, "--api-key-file",
                key_file(tmp_path, sim), "--notify-url", hook.url)
        first, second = run_cli(*args, cwd=tmp_path), run_cli(*args, cwd=tmp_path)
    assert first.returncode == second.returncode == 3, second.stderr
    assert first.stdout.splitlines()[0] == ("the budget of $0.6 is reached: 2/8 downloaded, "
                                            "$0.54 spent")
    assert second.stdout.splitlines()[0] == ("the budget of $0.6 is reached: 4/8 downloaded, "
                                             "$1.08 spent ($0.54 by this run)")
    assert [body["text"] for body in hook.received] == [
        "hailuo-batch nightly: 2/8 downloaded, 0 failed, $0.54 spent, exit 3 (the budget of $0.6 "
        "is reached)",
        "hailuo-batch nightly: 4/8 downloaded, 0 failed, $1.08 spent ($0.54 by this run), exit 3 "
        "(the budget of $0.6 is reached)"]
    assert [(body["summary"]["spent_usd"], body["summary"]["run_spent_usd"])
            for body in hook.received] == [(0.54, 0.54), (1.08, 0.54)]
    written = summary(tmp_path / "out")
    assert (written["spent_usd"], written["run_spent_usd"]) == (1.08, 0.54)


def test_an_interrupted_run_still_notifies(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path)
    settings = sim_settings(render_seconds=3600.0, time_scale=1.0, balance_credits=100_000)
    with run_in_thread(settings) as sim, receiver() as hook:
        with started("run", manifest, "--out", "out", "--base-url", sim.base_url,
                     "--api-key-file", key_file(tmp_path, sim), "--notify-url", hook.url,
                     cwd=tmp_path) as child:
            assert child.stderr is not None
            for line in child.stderr:  # the balance is checked with the signal handlers in place
                if " covers the estimated " in line:
                    break
            os.kill(child.pid, signal.SIGTERM)
            assert child.wait(timeout=30) == 130
    (body,) = hook.received
    assert body["summary"]["exit_code"] == 130
    assert body["summary"]["exit_reason"] == "interrupted by SIGTERM"


def test_a_run_refused_in_another_accounts_folder_is_announced_and_leaves_its_results(
        tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path, repeat=1)
    with run_in_thread(sim_settings()) as sim:  # a real run's folder
        assert run_cli("run", manifest, "--out", "out", "--base-url", sim.base_url,
                       "--api-key-file", key_file(tmp_path, sim), cwd=tmp_path).returncode == 0
    kept = [(tmp_path / "out" / name).read_bytes() for name in ("summary.json", "report.html")]
    with receiver() as hook:
        done = run_cli("run", manifest, "--out", "out", "--simulate", "--notify-url", hook.url,
                       "--log-file", "run.log", "--log-format", "json", cwd=tmp_path)
    (body,) = hook.received
    (ended,) = [e for e in json_log(tmp_path / "run.log") if e["message"].startswith("run ended: ")]
    assert done.returncode == 4 and "out was run on another account" in done.stdout
    assert body["summary"]["exit_code"] == ended["summary"]["exit_code"] == 4
    assert body["text"].startswith("hailuo-batch nightly: 4/4 downloaded, 0 failed, $1.08 spent "
                                   "($0.00 by this run), exit 4 (out was run on another account")
    assert ended["message"] == f"run ended: {body['text']}"
    assert [(tmp_path / "out" / name).read_bytes() for name in ("summary.json", "report.html")] == kept


def test_a_run_refused_after_a_killed_run_writes_the_results_that_run_never_wrote(
        tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path, repeat=1)
    with run_in_thread(sim_settings(render_seconds=3600.0)) as sim:
        with started("run", manifest, "--out", "out", "--base-url", sim.base_url,
                     "--api-key-file", key_file(tmp_path, sim), cwd=tmp_path,
                     until="balance check"):  # its account is the folder's
            pass  # killed then, its renders still going: no results written
    assert not (tmp_path / "out" / "summary.json").exists()
    done = run_cli("run", manifest, "--out", "out", "--simulate", cwd=tmp_path)
    assert done.returncode == 4 and "out was run on another account" in done.stdout
    written = summary(tmp_path / "out")  # the killed run's: it never ended
    assert (written["exit_code"], written["ended_at"], written["jobs"]) == (None, None, 4)
    assert (tmp_path / "out" / "report.html").exists()


def test_a_stop_while_the_end_is_announced_leaves_the_outcome_as_recorded(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path, repeat=1)
    with (run_in_thread(sim_settings()) as sim,
          trickling(b"HTTP/1.1 200 OK\r\nX-Slow: ") as hook,
          started("run", manifest, "--out", "out", "--base-url", sim.base_url, "--api-key-file",
                  key_file(tmp_path, sim), "--notify-url", hook.url, cwd=tmp_path) as child):
        assert hook.asked.wait(30)  # the run's end is written and being announced
        child.send_signal(signal.SIGTERM)
        hook.stop.set()
        code = child.wait(30)
    assert code == 0 and summary(tmp_path / "out")["exit_code"] == 0


@pytest.mark.parametrize("problem, flags", [
    ("manifest", []), ("key", ["--api-key-file", "missing-key"]), ("yaml", []),
    ("prices", ["--prices", "prices.yaml"]),
    ("empty out", ["--out", ""]),  # an empty path: a variable left unset in the crontab
    ("empty prices", ["--prices", ""]),
])
def test_a_run_refused_at_the_start_is_logged_and_announced(tmp_path: Path, problem: str,
                                                            flags: list[str]) -> None:
    styles = {"vibe": ["Stock Footage", "Stock Foto" if problem == "manifest" else "none"]}
    manifest = write_manifest(tmp_path, styles=styles).rename(tmp_path / "cron-entry.yaml")
    if problem == "yaml":  # a manifest that does not load is announced by its file's name
        manifest.write_text("name: [nightly\n", encoding="utf-8")
    (tmp_path / "key").write_text("0c3d2b8e-51f4-4a43-9bd6-9a0f0f0e0a11", encoding="utf-8")
    (tmp_path / "key").chmod(0o600)
    (tmp_path / "prices.yaml").write_text("hailuo-2_3: {768p: {6: free}}\n", encoding="utf-8")
    with receiver() as hook:  # a flag given twice takes its last value
        done = run_cli("run", manifest, "--out", "out", "--notify-url", hook.url, "--log-file",
                       "run.log", "--log-format", "json", "--base-url", closed_port_url(),
                       "--api-key-file", "key", *flags, cwd=tmp_path)
    (body,) = hook.received
    (line,) = json_log(tmp_path / "run.log")
    code = 4 if problem == "key" else 2  # no key to run with; else a usage mistake
    assert done.returncode == code and not (tmp_path / "out").exists()
    name = "cron-entry" if problem == "yaml" else "nightly"  # as a finished run announces it
    assert body["text"].startswith(f"hailuo-batch {name}: ended without a summary, exit {code} (")
    assert body["summary"]["exit_code"] == line["exit_code"] == code and line["level"] == "error"


def test_a_run_ended_by_an_error_after_it_began_is_announced_once(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path)
    (tmp_path / "out").mkdir()
    # The simulated account is held by another simulator: the run stops after it began.
    held = statefile.lock(tmp_path / "out" / "simulator-state.jsonl")
    try:
        with receiver() as hook:
            done = run_cli("run", manifest, "--out", "out", "--simulate", "--notify-url", hook.url,
                           cwd=tmp_path)
    finally:
        held.release()
    (body,) = hook.received
    assert done.returncode == 4 and "is in use by another simulator" in done.stderr
    assert body["summary"]["exit_code"] == 4 and "ended without a summary" not in body["text"]


def test_a_run_whose_folder_is_deleted_tells_the_mail_the_log_and_the_receiver_what_it_paid_for(
        tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path, run={"timeout": "1s"})  # renders that never end in time
    out = tmp_path / "out"
    with run_in_thread(sim_settings(render_seconds=3600.0, time_scale=1.0)) as sim, \
            receiver() as hook:
        with started("run", manifest, "--out", "out", "--base-url", sim.base_url, "--api-key-file",
                     key_file(tmp_path, sim), "--notify-url", hook.url, cwd=tmp_path) as child:
            deadline = time.monotonic() + 30
            while sim.books.creates_accepted < 3 and time.monotonic() < deadline:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    child.wait(timeout=0.01)
            shutil.rmtree(out)
            _, stderr = child.communicate(timeout=60)
        billed = sorted(generation.id for generation in sim.books.generations)
    assert child.returncode == 4, stderr
    (body,) = hook.received
    paid = {"generation_ids": billed, "count": len(billed), "usd": round(0.27 * len(billed), 4)}
    assert body["summary"]["run_paid"] == paid and len(billed) >= 3
    told = (f"out was deleted during the run (or moved to another disk, which copies it and "
            f"deletes it), its journal with it; this run paid for {len(billed)} generations "
            f"(${paid['usd']:.2f}): {', '.join(billed)}, which no folder holds now")
    assert body["text"].startswith(f"hailuo-batch nightly: ended without a summary, exit 4 ({told}")
    assert f"error: {told}" in stderr, stderr  # the mail
    assert not out.exists()
