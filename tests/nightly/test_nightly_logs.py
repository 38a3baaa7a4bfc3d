"""The run's log: one JSON object a line in a `--log-file`, and, with no terminal and no log file,
timestamped plain lines that read well in a cron mail. Neither ever holds the API key."""

from __future__ import annotations

import re
from pathlib import Path

from nightlykit import closed_port_url, json_log, key_file, run_cli, sim_settings, write_manifest

from runner.simulator import run_in_thread

CRON_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d (INFO|WARNING|ERROR) \S")


def test_json_logs_tell_the_run_from_start_to_end(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path)
    log_file = tmp_path / "logs" / "nightly.jsonl"
    # The harbor prompt's four jobs are refused by moderation: four failures with their reason.
    with run_in_thread(sim_settings(moderation_word="harbor", moderation_stage="render")) as sim:
        done = run_cli("run", manifest, "--out", "out", "--base-url", sim.base_url,
                       "--api-key-file", key_file(tmp_path, sim), "--log-file", log_file,
                       "--log-format", "json", cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    assert done.stderr == ""  # everything went to the log file
    assert done.stdout.splitlines()[0] == "4 jobs failed (see errors.jsonl): 4/8 downloaded, $2.16 spent"
    entries = json_log(log_file)
    assert all(e["time"].endswith("Z") and e["level"] in ("info", "warning") for e in entries)
    first, last = entries[0], entries[-1]
    assert first["message"].startswith("run started: nightly, 8 jobs (estimated $2.16)")
    assert (first["jobs"], first["estimated_usd"], first["out"]) == (8, 2.16, "out")
    failed = [e for e in entries if e["message"].startswith("job ")]
    assert len(failed) == 4 and all(e["level"] == "warning" for e in failed)
    assert all("content moderation" in e["reason"] and len(e["key"]) == 64
               and e["error_kind"] == "moderation" for e in failed)
    assert any(e["message"].startswith("progress: ") and e["progress"]["total"] == 8
               for e in entries)
    assert last["message"] == ("run ended: hailuo-batch nightly: 4/8 downloaded, 4 failed, "
                               "$2.16 spent, exit 1 (4 jobs failed (see errors.jsonl))")
    assert last["summary"]["counts"] == {"downloaded": 4, "failed": 4}
    assert sim.api_key not in log_file.read_text()


def test_without_a_terminal_or_a_log_file_the_output_reads_as_a_cron_mail(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path)
    with run_in_thread(sim_settings()) as sim:
        done = run_cli("run", manifest, "--out", "out", "--base-url", sim.base_url,
                       "--api-key-file", key_file(tmp_path, sim), cwd=tmp_path)
    assert done.returncode == 0
    lines = done.stderr.splitlines()
    assert all(CRON_LINE.match(line) for line in lines), done.stderr
    assert "\r" not in done.stderr and "\x1b" not in done.stderr  # no bar, no colours
    assert " INFO run started: nightly, 8 jobs" in lines[0]
    assert any(" INFO progress: " in line and " spent by this run" in line for line in lines)
    assert lines[-1].endswith(" INFO run ended: hailuo-batch nightly: 8/8 downloaded, 0 failed, "
                              "$2.16 spent, exit 0 (every job downloaded)")
    assert done.stdout.splitlines() == ["every job downloaded: 8/8 downloaded, $2.16 spent",
                                        "videos and results in out (results.jsonl, report.html)"]
    assert sim.api_key not in done.stdout + done.stderr


def test_a_cron_mail_lists_ten_failed_jobs_of_each_kind_and_counts_the_rest(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path, repeat=6)
    # The harbor prompt's 12 jobs are refused at their create, the coffee prompt's 12 renders fail.
    with run_in_thread(sim_settings(moderation_word="harbor", fault_failed=1.0)) as sim:
        done = run_cli("run", manifest, "--out", "out", "--base-url", sim.base_url,
                       "--api-key-file", key_file(tmp_path, sim), cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    assert len((tmp_path / "out" / "errors.jsonl").read_text().splitlines()) == 24
    warnings = [line.split(" WARNING ", 1)[1] for line in done.stderr.splitlines()
                if " WARNING " in line]
    listed = [line for line in warnings if line.startswith("job ")]
    assert sum("failed: refused by content moderation" in line for line in listed) == 10
    assert sum(line.endswith(" failed: the generation FAILED") for line in listed) == 10
    rest = [line for line in warnings if not line.startswith("job ")]
    assert sorted(rest[:2]) == [
        "further jobs refused by content moderation are counted, not listed, after the first 10: "
        "errors.jsonl lists every one",
        "further jobs whose render failed are counted, not listed, after the first 10: "
        "errors.jsonl lists every one"]
    assert rest[2].startswith("24 jobs failed in this run: 12 ")
    assert sorted(rest[2].removeprefix("24 jobs failed in this run: ")
                  .removesuffix("; errors.jsonl lists every one").split(", ")) == [
        "12 refused by content moderation", "12 whose render failed"]
    assert len(rest) == 3, done.stderr


def test_progress_says_how_much_of_the_money_this_run_spent_is_estimated(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path, repeat=1)
    with run_in_thread(sim_settings(fault_create_500=1.0)) as sim:  # each create billed, its answer lost
        done = run_cli("run", manifest, "--out", "out", "--base-url", sim.base_url,
                       "--api-key-file", key_file(tmp_path, sim), "--request-timeout", "0.5s",
                       cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    progress = [line for line in done.stderr.splitlines() if " INFO progress: " in line]
    assert progress[-1].endswith(  # each found on the account, booked at its estimate
        " INFO progress: 4/4 finished (0 failed), 0 in flight, 0 waiting, "
        "$1.08 ($1.08 of it estimated) spent by this run, about 0s left")


def test_quiet_keeps_warnings_only(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path, repeat=1)
    with run_in_thread(sim_settings(fault_failed=1.0)) as sim:
        done = run_cli("run", manifest, "--out", "out", "--base-url", sim.base_url,
                       "--api-key-file", key_file(tmp_path, sim), "--quiet", cwd=tmp_path)
    assert done.returncode == 1
    lines = done.stderr.splitlines()
    assert len(lines) == 4 and all(" WARNING job " in line for line in lines), done.stderr


def test_a_run_that_cannot_start_leaves_its_error_in_the_log_file(tmp_path: Path) -> None:
    log_file = tmp_path / "nightly.jsonl"
    done = run_cli("run", "missing.yaml", "--log-file", log_file, "--log-format", "json",
                   cwd=tmp_path)
    assert done.returncode == 2
    (entry,) = json_log(log_file)
    assert entry["level"] == "error" and entry["exit_code"] == 2
    assert "missing.yaml" in entry["message"]


def test_a_log_file_in_text_is_plain_lines(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path, repeat=1)
    log_file = tmp_path / "nightly.log"
    with run_in_thread(sim_settings()) as sim:
        done = run_cli("run", manifest, "--out", "out", "--base-url", sim.base_url,
                       "--api-key-file", key_file(tmp_path, sim), "--log-file", log_file,
                       cwd=tmp_path)
    assert done.returncode == 0 and done.stderr == ""
    lines = log_file.read_text().splitlines()
    assert all(CRON_LINE.match(line) for line in lines) and "run ended: " in lines[-1]


def test_a_log_file_that_cannot_be_written_is_said_once_and_the_run_goes_on(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path, repeat=1)
    with run_in_thread(sim_settings()) as sim:
        done = run_cli("run", manifest, "--out", "out", "--base-url", sim.base_url,
                       "--api-key-file", key_file(tmp_path, sim), "--log-file", "/dev/full",
                       cwd=tmp_path)
    assert done.returncode == 0
    assert done.stderr == ("warning: --log-file /dev/full: cannot write it (No space left on "
                           "device); the run goes on, its log incomplete\n")
    assert done.stdout.startswith("every job downloaded: 4/4 downloaded")


def test_beside_a_log_file_the_warnings_to_act_on_reach_standard_error_too(tmp_path: Path) -> None:
    """A cron mail is standard error: a webhook that is down, or a key file others may read, said
    only in a log file nobody reads would go unnoticed night after night."""
    manifest = write_manifest(tmp_path, repeat=1)
    log_file = tmp_path / "nightly.jsonl"
    with run_in_thread(sim_settings()) as sim:
        shared_key = key_file(tmp_path, sim)
        shared_key.chmod(0o644)
        done = run_cli("run", manifest, "--out", "out", "--base-url", sim.base_url,
                       "--api-key-file", shared_key, "--log-file", log_file, "--log-format", "json",
                       "--notify-url", closed_port_url(), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    told = done.stderr.splitlines()
    assert told[0] == (f"warning: --api-key-file {shared_key}: users other than its owner may read "
                       "it: `chmod 600` it")
    assert told[1].startswith("warning: notification failed: cannot reach the receiver: ")
    assert len(told) == 2  # nothing else of the log: the mail stays short
    logged = [entry["message"] for entry in json_log(log_file) if entry["level"] == "warning"]
    assert logged == [line.removeprefix("warning: ") for line in told]
