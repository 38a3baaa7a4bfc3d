"""A folder per night: `output.dir` placeholders and `--run-id`; a re-run of the same night resumes
its folder."""

from __future__ import annotations

import datetime
import re
import shlex
import shutil
import signal
from pathlib import Path

import pytest
from nightlykit import (
    ROOT,
    key_file,
    receiver,
    run_cli,
    sim_settings,
    started,
    summary,
    write_manifest,
)

from runner.batch import RunConfig, run_batch
from runner.schedule import Backoff
from runner.simulator import run_in_thread


def left(folder: str, held: str, *, run: str = "--out") -> str:
    """What a start says of an earlier start's `folder` left unfinished, holding `held`."""
    return (f"{folder}, an earlier start's folder, still holds {held}; this start does not "
            f"resume them: run with {run} {shlex.quote(folder)} to finish them")


def earlier(folder: str, held: str, *, run: str = "--out") -> str:
    """The warning a start logs of an earlier start's `folder` left unfinished."""
    return f"WARNING {left(folder, held, run=run)}"


def test_a_rerun_with_the_same_run_id_resumes_the_same_folder(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path, output_dir="out/{name}/{run_id}", run={"budget_usd": 0.6})
    night = tmp_path / "out" / "nightly" / "night-7"
    with run_in_thread(sim_settings()) as sim:
        args = ("run", manifest, "--base-url", sim.base_url, "--api-key-file",
                key_file(tmp_path, sim))
        first = run_cli(*args, "--run-id", "night-7", cwd=tmp_path)
        assert first.returncode == 3 and summary(night)["counts"] == {"downloaded": 2, "pending": 6}
        again = run_cli(*args, "--run-id", "night-7", "--budget-usd", "10", cwd=tmp_path)
        assert sim.books.creates_accepted == 8
        planned = run_cli(*args, "--run-id", "night-7", "--dry-run", cwd=tmp_path)
        other = run_cli(*args, "--dry-run", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert summary(night)["counts"] == {"downloaded": 8}
    assert "in out/nightly/night-7: 0 new, 0 in flight, 8 done, 0 failed" in planned.stdout
    assert "night-7" not in other.stdout and "8 new" in other.stdout  # a timestamped folder


@pytest.mark.parametrize("root", ["out", "out[1]"])  # [1] is no glob pattern here
def test_a_start_in_a_new_folder_warns_of_the_earlier_ones_left_unfinished(
        tmp_path: Path, root: str) -> None:
    manifest = write_manifest(tmp_path, output_dir=f"{root}/{{name}}/{{run_id}}",
                              run={"budget_usd": 0.6})
    with run_in_thread(sim_settings()) as sim:
        args = ("run", manifest, "--base-url", sim.base_url, "--api-key-file",
                key_file(tmp_path, sim))
        stopped = run_cli(*args, "--run-id", "night-6", cwd=tmp_path)
        next_night = run_cli(*args, "--run-id", "night-7", cwd=tmp_path)
        finished = run_cli(*args, "--run-id", "night-6", "--budget-usd", "10", cwd=tmp_path)
        later = run_cli(*args, "--run-id", "night-8", "--budget-usd", "10", cwd=tmp_path)
    assert stopped.returncode == next_night.returncode == 3 and finished.returncode == 0
    assert earlier(f"{root}/nightly/night-6", "6 jobs not yet sent") in next_night.stderr
    assert "night-6, an earlier" not in later.stderr and "night-7, an earlier" in later.stderr


def test_an_earlier_folder_whose_paid_jobs_failed_for_now_is_warned_of(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path, output_dir="out/{name}/{run_id}", repeat=1,
                              run={"timeout": "0.3s"})
    with run_in_thread(sim_settings(render_seconds=3600.0, time_scale=1.0)) as sim:
        args = ("run", manifest, "--base-url", sim.base_url, "--api-key-file",
                key_file(tmp_path, sim))
        timed_out = run_cli(*args, "--run-id", "night-6", cwd=tmp_path)
        next_night = run_cli(*args, "--run-id", "night-7", cwd=tmp_path)
    assert timed_out.returncode == 3
    assert summary(tmp_path / "out" / "nightly" / "night-6")["counts"] == {"failed": 4}
    assert earlier("out/nightly/night-6", "4 jobs in flight (paid, not yet downloaded)") in next_night.stderr


def test_the_end_of_a_start_in_a_new_folder_names_the_earlier_ones_left_unfinished(
        tmp_path: Path) -> None:
    """Cron mails standard output and a webhook gets the summary: both name a folder whose paid
    jobs this start does not resume, as its log does, and the webhook's one-line text counts them."""
    manifest = write_manifest(tmp_path, output_dir="out/{name}/{run_id}", repeat=1,
                              run={"timeout": "0.3s", "budget_usd": 0.6})
    nights = tmp_path / "out" / "nightly"
    with run_in_thread(sim_settings(render_seconds=3600.0, time_scale=1.0)) as sim, \
            receiver() as hook:
        args = ("run", manifest, "--base-url", sim.base_url, "--api-key-file",
                key_file(tmp_path, sim), "--notify-url", hook.url)
        first = run_cli(*args, "--run-id", "night-6", cwd=tmp_path)
        next_night = run_cli(*args, "--run-id", "night-7", cwd=tmp_path)
    assert first.returncode == next_night.returncode == 3
    assert len(first.stdout.splitlines()) == 2 and summary(nights / "night-6")["unfinished_folders"] == []
    assert next_night.stdout.splitlines()[2:] == [left(
        "out/nightly/night-6", "2 jobs in flight (paid, not yet downloaded) and 2 not yet sent")]
    unfinished = [{"out": "out/nightly/night-6", "in_flight": 2, "unsettled": 0, "waiting": 2}]
    assert summary(nights / "night-7")["unfinished_folders"] == unfinished
    assert [body["summary"]["unfinished_folders"] for body in hook.received] == [[], unfinished]
    first_text, next_text = (body["text"] for body in hook.received)
    assert "earlier folder" not in first_text and next_text.endswith(
        "; 1 earlier folder left unfinished, with 2 jobs in flight (paid, not yet downloaded) "
        "and 2 not yet sent")


def test_an_earlier_folder_whose_unsent_jobs_failed_for_now_is_warned_of(tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    shutil.copy(ROOT / "jobs" / "images" / "sunset.png", tmp_path / "images")
    manifest = write_manifest(tmp_path, output_dir="out/{name}/{run_id}", repeat=1,
                              defaults={"model": "hailuo-2_3-fast", "resolution": "768p",
                                        "duration": 6, "start_frame": {"path": "images/sunset.png"}})
    night = tmp_path / "out" / "nightly" / "night-6"
    with run_in_thread(sim_settings(upload_expiry_seconds=0.001)) as sim:  # no upload goes through
        refused = run_batch(RunConfig(manifest=manifest, out=night, base_url=sim.base_url,
                                      api_key=sim.api_key, backoff=Backoff(base=0.01, attempts=2)))
    with run_in_thread(sim_settings()) as sim:
        next_night = run_cli("run", manifest, "--run-id", "night-7", "--base-url", sim.base_url,
                             "--api-key-file", key_file(tmp_path, sim), cwd=tmp_path)
    assert refused.outcome.exit_code == 3 and summary(night)["counts"] == {"failed": 4}
    assert earlier("out/nightly/night-6", "4 jobs not yet sent") in next_night.stderr


def test_a_simulated_start_finds_the_earlier_simulated_folders_wherever_the_stamp_is(
        tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path, output_dir="out/{run_id}/clips", run={"budget_usd": 0.6})
    stopped = run_cli("run", manifest, "--simulate", "--run-id", "s1", cwd=tmp_path)
    next_start = run_cli("run", manifest, "--simulate", "--run-id", "s2", cwd=tmp_path)
    assert stopped.returncode == 3
    assert earlier("out/s1/clips-simulated", "6 jobs not yet sent",
                   run="--simulate --out") in next_start.stderr


def test_an_earlier_folder_whose_journal_cannot_be_read_is_said_so(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path, output_dir="out/{name}/{run_id}", repeat=1)
    for night in ("night-4", "night-5-simulated"):  # a real start's folder, a simulated one's
        (tmp_path / "out" / "nightly" / night).mkdir(parents=True)
        (tmp_path / "out" / "nightly" / night / "journal.sqlite").write_bytes(b"not a journal")
    done = run_cli("run", manifest, "--run-id", "night-6", "--simulate", cwd=tmp_path)
    assert done.returncode == 0
    assert ("WARNING out/nightly/night-5-simulated, an earlier start's folder, has a journal that "
            "cannot be read (file is not a database): look at it before it is cleaned up") in done.stderr
    assert "night-4" not in done.stderr  # a simulated start speaks only of simulated folders


def test_the_date_placeholder_names_the_nights_folder(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path, output_dir="out/{name}/{date}", repeat=1)
    before = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d")
    with run_in_thread(sim_settings()) as sim:
        done = run_cli("run", manifest, "--base-url", sim.base_url, "--api-key-file",
                       key_file(tmp_path, sim), cwd=tmp_path)
    after = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d")
    assert done.returncode == 0, done.stderr
    (folder,) = (tmp_path / "out" / "nightly").iterdir()
    assert folder.name in (before, after) and (folder / "results.jsonl").is_file()


@pytest.mark.parametrize("run_id", ["../elsewhere", "a/b", "", ".hidden"])
def test_a_run_id_that_is_not_one_folder_name_is_a_usage_error(tmp_path: Path, run_id: str) -> None:
    manifest = write_manifest(tmp_path, output_dir="out/{run_id}")
    done = run_cli("run", manifest, "--run-id", run_id, "--dry-run", cwd=tmp_path)
    assert done.returncode == 2
    assert f"error: --run-id {run_id!r}: use up to 100 letters" in done.stderr
    assert "Traceback" not in done.stderr and not (tmp_path / "out").exists()


@pytest.mark.parametrize(("output_dir", "out"), [("out/{name}/{date}", None), ("out/{run_id}", "elsewhere")])
def test_a_run_id_with_no_place_in_the_folder_is_a_usage_error(tmp_path: Path, output_dir: str,
                                                              out: str | None) -> None:
    manifest = write_manifest(tmp_path, output_dir=output_dir)
    done = run_cli("run", manifest, "--run-id", "2026-11-23", "--dry-run",
                   *(["--out", out] if out else []), cwd=tmp_path)
    assert done.returncode == 2 and "error: --run-id fills {run_id} in output.dir" in done.stderr
    assert f"and the folder here is {out or output_dir!r}: give" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_stop_in_a_folder_no_start_names_again_tells_the_out_that_resumes_it(
        tmp_path: Path) -> None:
    """The folder is stamped with the start's default {run_id}: the end's line, the log and the
    notification name its --out, and a run given it resumes the jobs in flight, paying nothing
    again."""
    manifest = write_manifest(tmp_path, output_dir="out/{name}/{run_id}")
    log = tmp_path / "nightly.log"
    with run_in_thread(sim_settings(render_seconds=3600.0, time_scale=1.0)) as sim, \
            receiver() as hook:
        args = ("run", manifest, "--base-url", sim.base_url, "--api-key-file",
                key_file(tmp_path, sim), "--max-runtime", "0.5s", "--grace", "0.3s")
        stopped = run_cli(*args, "--notify-url", hook.url, "--log-file", log, cwd=tmp_path)
        (night,) = (tmp_path / "out" / "nightly").iterdir()
        resumed = run_cli(*args, "--out", f"out/nightly/{night.name}", cwd=tmp_path)
        assert sim.books.creates_accepted == 4  # the second run created none of them again
    resume = f"4 jobs in flight: run again with --out out/nightly/{night.name} to resume"
    assert stopped.returncode == resumed.returncode == 3
    assert resume in stopped.stdout.splitlines()[0]
    assert (f"WARNING run stopped: the max runtime of 0.5 s is reached and its grace of 0.3 s is "
            f"over with {resume}") in log.read_text("utf-8")
    assert resume in hook.received[0]["text"]
    assert "4 jobs in flight: run again to resume" in resumed.stdout.splitlines()[0]


@pytest.mark.parametrize(("output_dir", "flags", "resume"), [
    ("out/{name}/{time}", [], "run again with --out {out} to resume"),
    ("out/{run_id}/clips", ["--simulate", "--time-scale", "1"],
     "run again with --simulate --out {out} to resume"),
    ("out/{name}/{run_id}", ["--run-id", "night-7"], "run again to resume"),
    ("out/{name}/{date}", [], "run again to resume"),
    ("out/{name}", [], "run again to resume")])
def test_run_again_is_told_only_when_the_next_start_names_the_same_folder(
        tmp_path: Path, output_dir: str, flags: list[str], resume: str) -> None:
    manifest = write_manifest(tmp_path, output_dir=output_dir)
    with run_in_thread(sim_settings(render_seconds=3600.0, time_scale=1.0)) as sim:
        api = [] if "--simulate" in flags else ["--base-url", sim.base_url, "--api-key-file",
                                                key_file(tmp_path, sim)]
        stopped = run_cli("run", manifest, *api, *flags, "--max-runtime", "0.5s", "--grace", "0.3s",
                          cwd=tmp_path)
    assert stopped.returncode == 3, stopped.stderr
    (journal,) = tmp_path.glob("out/**/journal.sqlite")
    shown = resume.format(out=journal.parent.relative_to(tmp_path))
    assert f"4 jobs in flight: {shown}: 0/8 downloaded" in stopped.stdout.splitlines()[0]


@pytest.mark.parametrize(("output_dir", "resume"), [
    ("out/{name}/{time}", ": run again with --out {out} to resume"),
    ("out/{name}", "")])
def test_a_budget_credit_or_signal_stop_names_the_out_only_of_a_folder_not_named_again(
        tmp_path: Path, output_dir: str, resume: str) -> None:
    """Stopped by its budget or the account's credit (exit 3) or by SIGTERM (130), a run in a
    folder the next start does not name again tells the --out that resumes it; in one it names
    again, the reason is as bare as ever."""
    manifest = write_manifest(tmp_path, output_dir=output_dir)
    (tmp_path / "low").mkdir()  # priced at $0.05 a job, $0.27 when made: credit for two
    cheap = write_manifest(tmp_path / "low", output_dir=output_dir,
                           prices={"hailuo-2_3": {"768p": {"6": 0.05}}})
    with run_in_thread(sim_settings(balance_credits=400)) as sim:
        quota = run_cli("run", cheap, "--base-url", sim.base_url, "--api-key-file",
                        key_file(tmp_path, sim), cwd=tmp_path / "low")
    with run_in_thread(sim_settings(render_seconds=3600.0, time_scale=1.0,
                                    balance_credits=100_000)) as sim:
        args = ("run", manifest, "--base-url", sim.base_url, "--api-key-file",
                key_file(tmp_path, sim))
        budget = run_cli(*args, "--budget-usd", "0.2", cwd=tmp_path)  # fits no job
        with started(*args, cwd=tmp_path, until=" covers the estimated ") as child:
            child.send_signal(signal.SIGTERM)
            signalled, _ = child.communicate(timeout=30)
    assert (quota.returncode, budget.returncode, child.returncode) == (3, 3, 130), quota.stderr
    out_of_credit = ("the account is out of credit (402 not enough API credits: this generation "
                     "costs 180, 40 left)")
    for shown, reason in ((quota.stdout, out_of_credit),
                          (budget.stdout, "the budget of $0.2 is reached"),
                          (signalled, "interrupted by SIGTERM")):
        (out,) = re.findall(r"^videos and results in (\S+) ", shown, re.MULTILINE)
        assert shown.startswith(f"{reason}{resume.format(out=out)}: "), shown
