"""Whole runs against the simulator: resuming, edited manifests, money, the key, start frames."""

from __future__ import annotations

import json
import logging
import shutil
from contextlib import ExitStack
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from enginekit import (
    FAST_BACKOFF,
    FAST_TIMEOUTS,
    PROMPTS,
    SIM_DEFAULTS,
    audit,
    copy_frames,
    down_url,
    invoke,
    journal_rows,
    journal_rows_now,
    killed_retry_run,
    refusing_api,
    results_files,
    results_lines,
    run,
    sim_settings,
    step,
    videos,
    write_manifest,
)
from sharedkit import kept_account

from runner.batch import RunConfig, diff, plan_for, run_batch
from runner.control import Event
from runner.errors import AuthError, LockedError, StateError
from runner.lock import FolderLock
from runner.logs import JsonFormatter
from runner.plan import make_plan
from runner.schedule import Backoff
from runner.simulator import run_in_process, run_in_thread
from runner.state import Journal


# A price table below the API's: $0.01 for a job the simulator bills $0.27.
BELOW_API_PRICES = {"hailuo-2_3": {"768p": {"6": 0.01}}}


def test_a_second_run_downloads_nothing_and_creates_nothing(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path)
    with run_in_thread(sim_settings()) as sim:
        first = run(manifest, tmp_path / "out", sim)
        created = sim.books.creates_accepted
        second = run(manifest, tmp_path / "out", sim)
        audit(tmp_path / "out", sim)
        assert sim.books.creates_accepted == created == 8
    assert first.outcome.exit_code == second.outcome.exit_code == 0
    summary = second.summary
    assert summary["counts"] == {"downloaded": 8} and summary["exit_code"] == 0
    assert summary["spent_usd"] == pytest.approx(8 * 0.27)


def test_an_edited_manifest_runs_only_its_new_cells(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with run_in_thread(sim_settings()) as sim:
        run(write_manifest(tmp_path, repeat=1), out, sim)
        before = {row["key"]: row["file"] for row in journal_rows(out)}
        edited = write_manifest(tmp_path, repeat=2)
        planned, _ = plan_for(RunConfig(manifest=edited, out=out))
        state = diff(planned, out)
        assert (len(state.new), len(state.done)) == (4, 4)
        report = run(edited, out, sim)
        audit(out, sim)
        assert sim.books.creates_accepted == 8
    after = {row["key"]: row["file"] for row in journal_rows(out)}
    assert all(after[key] == file for key, file in before.items())
    assert report.outcome.exit_code == 0 and len(after) == 8


def test_a_file_name_held_by_an_earlier_job_gets_the_short_key(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with run_in_thread(sim_settings()) as sim:
        run(write_manifest(tmp_path, repeat=1, styles={"vibe": ["Pro Photo"]}), out, sim)
        run(write_manifest(tmp_path, repeat=1, styles={"vibe": ["Pro Photo"]},
                           defaults={"model": "hailuo-2_3", "resolution": "768p",
                                     "duration": 10, "aspect_ratio": "16:9"}), out, sim)
    files = sorted(row["file"] for row in journal_rows(out))
    keys = {row["file"]: row["key"] for row in journal_rows(out)}
    assert len(files) == len(set(files)) == 4
    renamed = [f for f in files if f.endswith(f"_{keys[f][:10]}.mp4")]
    assert len(renamed) == 2


def test_a_sidecar_never_takes_the_name_of_the_runs_summary(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path, prompts=[{"id": "summary", "text": PROMPTS[0]}], repeat=1,
                              styles={"vibe": ["none"]}, output={"dir": "out", "filename": "{prompt}.mp4"})
    out = tmp_path / "out"
    with run_in_thread(sim_settings()) as sim:
        report = run(manifest, out, sim)
    (row,) = journal_rows(out)
    assert report.outcome.exit_code == 0
    assert row["file"] == f"summary_{row['key'][:10]}.mp4"
    assert row["sidecar"] == f"summary_{row['key'][:10]}.json"
    assert json.loads((out / "summary.json").read_text("utf-8"))["counts"] == {"downloaded": 1}
    assert json.loads((out / row["sidecar"]).read_text("utf-8"))["key"] == row["key"]


@pytest.mark.parametrize("loss", ["deleted", "emptied", "deleted with the results"])
def test_a_folder_that_lost_its_journal_is_refused_and_nothing_is_paid_again(
        tmp_path: Path, loss: str) -> None:
    manifest, out = write_manifest(tmp_path), tmp_path / "out"
    with run_in_thread(sim_settings()) as sim:
        run(manifest, out, sim)
        before = videos(out)
        journal = out / "journal.sqlite"
        journal.write_bytes(b"") if loss == "emptied" else journal.unlink()
        if loss == "deleted with the results":  # as a run killed before it wrote any leaves it
            for name in ("results.jsonl", "errors.jsonl", "results.csv", "summary.json", "report.html"):
                (out / name).unlink()
        planned, _ = plan_for(RunConfig(manifest=manifest, out=out))
        refused = f"{out} holds an earlier run's files but no journal"
        with pytest.raises(StateError, match=refused):
            diff(planned, out)
        with pytest.raises(StateError, match=refused):
            run(manifest, out, sim)
        code, _, stderr = invoke("plan", str(manifest), "--out", str(out))
        assert code == 4 and refused in stderr
        assert sim.books.creates_accepted == 8
    assert len(before) == 8 and videos(out) == before


def test_a_journal_copied_without_its_write_ahead_log_is_refused(tmp_path: Path) -> None:
    manifest, out, copy = write_manifest(tmp_path), tmp_path / "out", tmp_path / "copy"
    jobs = make_plan(manifest).jobs
    with Journal.open(out) as journal:  # open, as a killed run leaves it: its steps in its log
        run_id = journal.begin_run(name="sweep", manifest=str(manifest), settings={}, at=1.0)
        journal.sync_plan(jobs)
        step(journal, jobs[0].key, "submitting", reserved_usd=0.27, run_id=run_id, at=2.0)
        step(journal, jobs[0].key, "submitted", run_id=run_id, at=3.0, generation_id="g1",
             cost_usd=0.27, cost_credits=None)
        with FolderLock.acquire(copy):  # the folder copied without journal.sqlite-wal
            shutil.copy(out / "journal.sqlite", copy)
    with run_in_thread(sim_settings()) as sim:
        with pytest.raises(StateError, match=f"{copy} holds an earlier run's files but no journal"):
            run(manifest, copy, sim)
        assert sim.books.requests == {}
    assert len(videos(out)) == 0 and (out / "journal.sqlite").stat().st_size > 0


def test_a_run_starting_beside_a_run_that_just_took_a_new_folder_is_told_it_is_in_use(
        tmp_path: Path) -> None:
    manifest, out = write_manifest(tmp_path), tmp_path / "out"
    with run_in_thread(sim_settings()) as sim, FolderLock.acquire(out):  # its journal not made yet
        with pytest.raises(LockedError, match=f"output folder {out} is in use by another run"):
            run(manifest, out, sim)
        assert sim.books.requests == {}


def test_a_file_the_journal_does_not_know_is_never_replaced(tmp_path: Path) -> None:
    out = tmp_path / "out"
    (out / "rain").mkdir(parents=True)
    (out / "rain" / "none_1.mp4").write_bytes(b"the user's own clip")
    with run_in_thread(sim_settings()) as sim:
        report = run(write_manifest(tmp_path, prompts=[{"id": "rain", "text": PROMPTS[0]}]), out, sim)
    (row,) = [row for row in journal_rows(out) if json.loads(row["axes"])["vibe"] == "none"
              and json.loads(row["axes"])["n"] == 1]
    assert report.outcome.exit_code == 0
    assert (out / "rain" / "none_1.mp4").read_bytes() == b"the user's own clip"
    assert row["file"] == f"rain/none_1_{row['key'][:10]}.mp4" and (out / row["file"]).stat().st_size > 1000


def test_the_budget_stops_submitting_and_the_next_run_resumes(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path, run={"budget_usd": 1.0})
    out = tmp_path / "out"
    with run_in_thread(sim_settings()) as sim:
        report = run(manifest, out, sim)
        assert report.outcome.exit_code == 3 and "budget" in report.outcome.reason
        assert sim.books.creates_accepted == 3  # 3 x $0.27 fits in $1, a fourth does not
        assert report.summary["counts"] == {"downloaded": 3, "pending": 5}
        again = run(manifest, out, sim, budget_usd=10.0)
        audit(out, sim)
        assert again.outcome.exit_code == 0 and sim.books.creates_accepted == 8


def test_a_cost_named_in_credits_counts_in_dollars_in_the_results_and_the_budget(tmp_path: Path) -> None:
    # The estimate says $0.10 a job; the flat answer names 180 credits, $0.27, for each.
    manifest = write_manifest(tmp_path, prices={"hailuo-2_3": {"768p": {"6": 0.10}}},
                              run={"budget_usd": 0.6, "concurrency": 1})
    out = tmp_path / "out"
    with run_in_thread(sim_settings(create_answer="flat")) as sim:
        report = run(manifest, out, sim)
        billed_usd = sim.books.credits_spent * 0.0015
    summary, records = report.summary, results_lines(out)
    assert report.outcome.exit_code == 3 and "budget" in report.outcome.reason
    assert summary["spent_usd"] == pytest.approx(billed_usd) == pytest.approx(0.54)
    assert {r["cost_usd"] for r in records if r["state"] == "downloaded"} == {0.27}


def test_a_price_table_below_the_api_s_prices_reserves_the_price_the_api_named_once_known(
        tmp_path: Path) -> None:
    # The table says $0.01 a job; the API names $0.27 for each. Only the first create, sent
    # before any price of its kind is known, is reserved at the estimate.
    manifest = write_manifest(tmp_path, prices=BELOW_API_PRICES,
                              run={"budget_usd": 1.0, "concurrency": 1})
    out, reserved = tmp_path / "out", []

    def journal_reservation(event: Event) -> None:
        if event.kind == "submitting":
            reserved.extend(journal_rows_now(out, "SELECT reserved_usd FROM jobs WHERE key = "
                                                  f"'{event.key}'")[0])

    with run_in_thread(sim_settings()) as sim:
        report = run(manifest, out, sim, sink=journal_reservation)
        created = sim.books.creates_accepted
    assert report.outcome.exit_code == 3 and "budget" in report.outcome.reason
    assert created == 3 and report.summary["spent_usd"] == 0.81  # a fourth: $1.08
    assert reserved == [0.01, 0.27, 0.27]


def test_the_prices_an_earlier_run_was_named_are_reserved_from_a_run_s_first_create(
        tmp_path: Path) -> None:
    out = tmp_path / "out"
    with run_in_thread(sim_settings()) as sim:
        assert run(write_manifest(tmp_path, repeat=1), out, sim).outcome.exit_code == 0  # 4 x $0.27
        cheap = write_manifest(tmp_path, prices=BELOW_API_PRICES)
        stopped = run(cheap, out, sim, budget_usd=0.2)  # 4 new jobs, $0.01 each by the table
        created = sim.books.creates_accepted
    assert stopped.outcome.exit_code == 3 and "budget" in stopped.outcome.reason
    assert created == 4 and stopped.summary["run_spent_usd"] == 0


def test_a_lost_creates_generation_is_booked_at_the_price_the_api_named_for_its_kind(
        tmp_path: Path) -> None:
    """The table says $0.01 a job, the API named $0.27 for jobs of the kind in an earlier run;
    each create now goes through but answers 500, its generation found on the account: booked,
    and counted against the budget, at $0.27, so the budget holds and the folder's spending is
    what was billed."""
    out, state = tmp_path / "out", tmp_path / "account.jsonl"
    with run_in_thread(sim_settings(state_path=state)) as sim:
        assert run(write_manifest(tmp_path, repeat=1), out, sim).outcome.exit_code == 0  # 4 x $0.27
    cheap = write_manifest(tmp_path, prices=BELOW_API_PRICES)
    with run_in_thread(sim_settings(state_path=state, fault_create_500=1.0)) as sim:
        stopped = run(cheap, out, sim, budget_usd=1.0, concurrency=1)  # 4 new jobs
        billed = sim.books.creates_accepted
    summary = stopped.summary
    assert stopped.outcome.exit_code == 3 and "budget" in stopped.outcome.reason
    assert billed == 3 and summary["run_spent_usd"] == 0.81
    assert (summary["spent_usd"], summary["spent_estimated_usd"]) == (1.89, 0.81)


def test_failures_of_jobs_gone_from_the_manifest_stay_reported_but_fail_no_later_run(
        tmp_path: Path) -> None:
    out = tmp_path / "out"
    with run_in_thread(sim_settings()) as sim:
        first = run(write_manifest(tmp_path, prompts=[PROMPTS[0], "A street moderate-me at night"],
                                   repeat=1, styles={"vibe": ["none"]}), out, sim)
        second = run(write_manifest(tmp_path, prompts=PROMPTS[:1], repeat=1,
                                    styles={"vibe": ["none"]}), out, sim)
    records = results_lines(out)
    assert first.outcome.exit_code == 1 and second.outcome.exit_code == 0
    assert sorted((r["planned"], r["state"]) for r in records) == [(False, "failed"),
                                                                   (True, "downloaded")]


def test_paid_jobs_that_timed_out_are_fetched_when_they_have_left_the_manifest(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with run_in_thread(sim_settings(render_seconds=400.0, render_jitter_seconds=0.0)) as sim:
        first = run(write_manifest(tmp_path, run={"timeout": "0.3s"}), out, sim)
        sim.advance(500)  # the renders end after the run gave up on them
        second = run(write_manifest(tmp_path, repeat=1), out, sim)  # the second samples dropped
        books = audit(out, sim)
    assert first.outcome.exit_code == 3 and books["books"].creates_accepted == 8
    assert second.outcome.exit_code == 0 and books["states"] == {"downloaded": 8}
    assert sorted(r["planned"] for r in results_lines(out)) == [False] * 4 + [True] * 4


def test_a_job_that_cost_money_stays_in_the_results_when_it_leaves_the_manifest(
        tmp_path: Path) -> None:
    out = tmp_path / "out"
    both = write_manifest(tmp_path, prompts=PROMPTS, repeat=1, styles={"vibe": ["none"]})
    with run_in_thread(sim_settings(fault_failed=1.0)) as sim:
        run(both, out, sim)  # both renders FAILED, and paid for
        run(both, out, sim, retry_failed=True, budget_usd=0.01)  # nothing sent: still failed
        last = run(write_manifest(tmp_path, prompts=PROMPTS[:1], repeat=1,
                                  styles={"vibe": ["none"]}), out, sim)
        billed = sim.books.credits_spent * 0.0015
    records = results_lines(out)
    assert len(records) == 2 and {r["planned"] for r in records} == {True, False}
    assert sum(r["spent_usd"] for r in records) == pytest.approx(last.summary["spent_usd"])
    assert last.summary["spent_usd"] == pytest.approx(billed) == pytest.approx(0.54)


def test_a_generation_given_up_on_stays_counted_as_an_estimate_when_no_answer_named_its_cost(
        tmp_path: Path) -> None:
    out = tmp_path / "out"
    manifest = write_manifest(tmp_path, prompts=PROMPTS[:1], repeat=1, styles={"vibe": ["none"]})
    lost = sim_settings(fault_create_500=1.0, fault_failed=1.0)
    with run_in_thread(lost) as sim:  # its create's answer lost, found on the account, FAILED
        first = run(manifest, out, sim)
    with run_in_thread(sim_settings(user_id=lost.user_id)) as sim:
        again = run(manifest, out, sim, retry_failed=True)  # created anew, its cost named
    assert first.summary["spent_estimated_usd"] == 0.27
    assert again.outcome.exit_code == 0
    summary, (record,) = again.summary, results_lines(out)
    assert (summary["spent_usd"], summary["spent_estimated_usd"]) == (0.54, 0.27)
    assert (record["cost_usd"], record["spent_usd"], record["spent_estimated_usd"]) == (
        0.27, 0.54, 0.27)


def test_an_exhausted_balance_stops_resumably(tmp_path: Path) -> None:
    # Estimates below the real price pass the balance check; the 402 then stops the run.
    manifest = write_manifest(tmp_path, prices={"hailuo-2_3": {"768p": {"6": 0.05}}})
    out = tmp_path / "out"
    with run_in_thread(sim_settings(balance_credits=540)) as sim:  # two creates of 180
        report = run(manifest, out, sim)
        audit_rows = journal_rows(out)
    assert report.outcome.exit_code == 3 and "credit" in report.outcome.reason
    states = sorted(row["state"] for row in audit_rows)
    assert states.count("downloaded") == 3 and states.count("pending") == 5
    assert all(row["reserved_usd"] == 0 for row in audit_rows)


def test_an_out_of_credit_answer_to_a_poll_stops_the_run_resumably(tmp_path: Path) -> None:
    manifest, out = write_manifest(tmp_path), tmp_path / "out"
    with run_in_thread(sim_settings()) as sim:
        assert run(manifest, out, sim).outcome.exit_code == 0
        for video in videos(out):
            video.unlink()
        # polls, no create
        with refusing_api(sim.settings.user_id, 402, "not enough API credits") as (base_url, asked):
            stopped = run_batch(RunConfig(manifest=manifest, out=out, base_url=base_url,
                                          api_key=sim.api_key, timeouts=FAST_TIMEOUTS,
                                          backoff=FAST_BACKOFF, fetch_missing=True))
        states = {row["state"] for row in journal_rows(out)}
        again = run(manifest, out, sim, fetch_missing=True)
        audit(out, sim)
        assert sim.books.creates_accepted == 8
    assert stopped.outcome.exit_code == 3 and "out of credit" in stopped.outcome.reason
    polls = [call for call in asked if call != "GET /api/rest/v1/me"]
    assert polls and all(call.startswith("GET /api/rest/v1/generations/") for call in polls)
    assert states == {"submitted"}
    assert again.outcome.exit_code == 0 and len(videos(out)) == 8


@pytest.mark.parametrize("key", ["0c3d2b8e-51f4-4a43-9bd6-9a0f0f0e0a11", "not-a-uuid"])
def test_a_rejected_key_stops_the_run_with_exit_4_and_the_right_key_resumes(
        tmp_path: Path, key: str) -> None:
    manifest = write_manifest(tmp_path)
    with run_in_thread(sim_settings()) as sim:
        report = run(manifest, tmp_path / "out", sim, api_key=key)
        assert sim.books.creates_accepted == 0
        states = {row["state"] for row in journal_rows(tmp_path / "out")}
        assert run(manifest, tmp_path / "out", sim).outcome.exit_code == 0
        audit(tmp_path / "out", sim)
    assert report.outcome.exit_code == 4 and "rejected" in report.outcome.reason
    assert key not in report.outcome.reason
    assert states <= {"pending", "submitting"}


def test_a_folder_whose_generations_another_account_made_is_refused_before_anything_is_sent(
        tmp_path: Path) -> None:
    manifest, out = write_manifest(tmp_path), tmp_path / "out"
    with run_in_thread(sim_settings(render_seconds=400.0)) as first:
        run(manifest, out, first, max_runtime="0.5s", grace="0.1s")  # some in flight, some to create
    states = {row["state"] for row in journal_rows(out)}
    with run_in_thread(sim_settings()) as other:  # another key's account
        refused = run(manifest, out, other)
        asked = dict(other.books.requests)
    found = sorted(out.iterdir())
    code, shown, _ = invoke("run", str(manifest), "--out", str(out), "--simulate", "--quiet")
    assert {"submitted", "pending"} <= states
    assert refused.outcome.exit_code == 4 and refused.outcome.reason.startswith(
        f"{out} was run on another account")
    assert set(asked) == {"me"}  # nothing polled, nothing created
    assert code == 4 and "was run on another account" in shown
    assert sorted(out.iterdir()) == found  # no simulated account left behind
    assert {row["state"] for row in journal_rows(out)} == states


def test_a_refused_simulated_run_keeps_a_simulated_account_it_found_in_the_folder(
        tmp_path: Path) -> None:
    manifest, out, elsewhere = write_manifest(tmp_path, repeat=1), tmp_path / "out", tmp_path / "elsewhere"
    with run_in_thread(sim_settings()) as sim:
        run(manifest, out, sim)
    simulated = ("run", str(manifest), "--simulate", "--time-scale", "600", "--quiet", "--out")
    assert invoke(*simulated, str(elsewhere))[0] == 0
    shutil.copy(elsewhere / "simulator-state.jsonl", out)  # another folder's account, copied in
    code, shown, _ = invoke(*simulated, str(out))
    kept, copied = (kept_account(folder / "simulator-state.jsonl") for folder in (out, elsewhere))
    assert code == 4 and "was run on another account" in shown
    assert kept is not None and copied is not None
    assert (kept.user_id, kept.generations.keys()) == (copied.user_id, copied.generations.keys())


def test_a_refused_run_takes_up_no_failed_job_and_fetches_nothing(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path, prompts=[PROMPTS[0], "A street moderate-me at night"],
                              repeat=1)
    out = tmp_path / "out"
    with run_in_thread(sim_settings()) as first:
        assert run(manifest, out, first).outcome.exit_code == 1  # 2 downloaded, 2 moderated
    for video in videos(out):
        video.unlink()
    with run_in_thread(sim_settings()) as other:  # another account: refused
        refused = run(manifest, out, other, retry_failed=True, fetch_missing=True)
        asked = dict(other.books.requests)
    assert refused.outcome.exit_code == 4 and set(asked) == {"me"}
    states = sorted(row["state"] for row in journal_rows(out))  # none made pending, none fetched
    assert states == ["downloaded", "downloaded", "failed", "failed"]


def test_an_api_root_without_the_api_is_refused_and_fails_no_job(tmp_path: Path) -> None:
    manifest, out = write_manifest(tmp_path), tmp_path / "out"
    with run_in_thread(sim_settings()) as sim:
        root = sim.base_url.removesuffix("/api/rest")  # a --base-url missing its /api/rest
        wrong = run_batch(RunConfig(manifest=manifest, out=out, base_url=root, api_key=sim.api_key,
                                    timeouts=FAST_TIMEOUTS, backoff=FAST_BACKOFF))
        right = run(manifest, out, sim)
        audit(out, sim)
    assert wrong.outcome.exit_code == 4
    assert wrong.outcome.reason == (f"{root} is no Leonardo API root: /v1/me answered 404 (the root "
                                    "ends in /api/rest, as https://cloud.leonardo.ai/api/rest does)")
    assert wrong.summary["counts"] == {"pending": 8}
    assert right.outcome.exit_code == 0


@pytest.mark.parametrize("ending", ["another account", "no API root", "account unread"])
def test_a_run_that_ends_before_it_begins_leaves_the_folders_results_as_they_were(
        tmp_path: Path, ending: str) -> None:
    """The results and the gallery stay the last real run's; the journal, and so `status`, the
    log and the notification (which are given the run's summary), tell of the run's end."""
    manifest = write_manifest(tmp_path, prompts=[PROMPTS[0], "A street moderate-me at night"],
                              repeat=1)
    out = tmp_path / "out"
    with run_in_thread(sim_settings()) as first:
        assert run(manifest, out, first).outcome.exit_code == 1  # 2 downloaded, 2 moderated
    kept, planned = results_files(out), journal_rows(out)
    # The refused run's manifest has a prompt more. Another simulator is another account; one
    # whose /v1/me names no user cannot be read.
    manifest = write_manifest(tmp_path, prompts=[PROMPTS[0], "A street moderate-me at night",
                                                 PROMPTS[1]], repeat=1)
    unread = {"user_id": ""} if ending == "account unread" else {}
    with run_in_thread(sim_settings(**unread)) as other:
        root = other.base_url.removesuffix("/api/rest") if ending == "no API root" else other.base_url
        ended = run_batch(RunConfig(manifest=manifest, out=out, base_url=root,
                                    api_key=other.api_key, timeouts=FAST_TIMEOUTS,
                                    backoff=FAST_BACKOFF, retry_failed=True))
        asked = set(other.books.requests)
    code, shown, _ = invoke("status", str(out))
    rewritten, _, _ = invoke("report", str(out))  # the gallery, made again, of the same run
    expected = {"another account": (4, f"{out} was run on another account"),
                "no API root": (4, f"{root} is no Leonardo API root"),
                "account unread": (3, "the account of the key could not be read")}[ending]
    assert (ended.outcome.exit_code, ended.outcome.reason[:len(expected[1])]) == expected
    assert asked <= {"me"}  # nothing polled, created or fetched
    assert set(kept) == {"results.jsonl", "errors.jsonl", "results.csv", "summary.json", "report.html"}
    assert rewritten == 0 and results_files(out) == kept
    assert journal_rows(out) == planned  # its jobs are not left in the journal's plan
    assert ended.summary["exit_code"] == expected[0]
    assert code == 0 and f"exit {expected[0]} ({ended.outcome.reason})" in shown


def test_a_missing_key_is_refused_before_anything_is_sent(tmp_path: Path) -> None:
    with pytest.raises(AuthError, match="LEONARDO_API_KEY"):
        run_batch(RunConfig(manifest=write_manifest(tmp_path), out=tmp_path / "out"))
    assert not (tmp_path / "out").exists()


def test_renders_past_the_timeout_fail_with_their_reason(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path, repeat=1, run={"timeout": "0.3s"})
    with run_in_thread(sim_settings(render_seconds=60.0, render_jitter_seconds=0.0)) as sim:
        report = run(manifest, tmp_path / "out", sim)
        audit(tmp_path / "out", sim)
    records = results_lines(tmp_path / "out")
    assert report.outcome.exit_code == 3 and "the next run takes them up again" in report.outcome.reason
    assert all(r["state"] == "failed" and r["reason"].startswith("timed out") for r in records)


def test_a_job_given_up_on_gets_a_whole_timeout_again_from_the_next_run(tmp_path: Path) -> None:
    """The deadline counts from when a run takes the job up, not from its create: a later run
    polls the paid generation and downloads it instead of failing it at once."""
    manifest = write_manifest(tmp_path, repeat=1, run={"timeout": "0.3s"})
    out = tmp_path / "out"
    with run_in_thread(sim_settings(render_seconds=3600.0, render_jitter_seconds=0.0)) as sim:
        first = run(manifest, out, sim)
        sim.advance(3600)
        second = run(manifest, out, sim)
        books = audit(out, sim)
    assert first.outcome.exit_code == 3 and second.outcome.exit_code == 0
    assert books["states"] == {"downloaded": 4} and books["books"].creates_accepted == 4


def test_a_run_broken_off_by_a_bug_records_the_exit_code_the_process_ends_with(tmp_path: Path) -> None:
    def broken(event: Event) -> None:
        if event.kind == "downloaded":
            raise RuntimeError("a bug in the progress display")

    manifest = write_manifest(tmp_path, repeat=1)
    out = tmp_path / "out"
    with run_in_thread(sim_settings()) as sim, pytest.raises(ExceptionGroup) as raised:
        run(manifest, out, sim, sink=broken)
    summary = json.loads((out / "summary.json").read_text("utf-8"))
    assert isinstance(raised.value.exceptions[0], RuntimeError)
    assert summary["exit_code"] == 1 and "broke off" in summary["exit_reason"]


def test_a_start_frame_is_uploaded_once_for_every_job_and_run(tmp_path: Path) -> None:
    copy_frames(tmp_path)
    manifest = write_manifest(
        tmp_path, prompts=["A sunset over the sea, waves rolling in"],
        defaults={"model": "hailuo-2_3-fast", "resolution": "768p", "duration": 6,
                  "aspect_ratio": "16:9", "start_frame": {"path": "images/sunset.png"}},
        styles={"vibe": ["Pro Photo", "Sci-Fi", "none"]})
    out = tmp_path / "out"
    with run_in_thread(sim_settings()) as sim:
        report = run(manifest, out, sim)
        run(write_manifest(
            tmp_path, prompts=["A sunset over the sea, waves rolling in"], repeat=3,
            defaults={"model": "hailuo-2_3-fast", "resolution": "768p", "duration": 6,
                      "aspect_ratio": "16:9", "start_frame": {"path": "images/sunset.png"}},
            styles={"vibe": ["Pro Photo", "Sci-Fi", "none"]}), out, sim)
        books = audit(out, sim)
    assert report.outcome.exit_code == 0
    assert books["books"].requests["init-image"] == {200: 1}
    assert books["states"] == {"downloaded": 9}


def test_an_api_down_at_the_start_sends_nothing_then_moderated_jobs_wait(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path, prompts=[PROMPTS[0], "A street moderate-me at night"],
                              repeat=1, run={"timeout": "1s"})
    out = tmp_path / "out"
    first = run_batch(RunConfig(manifest=manifest, out=out, base_url=down_url(),
                                api_key="00000000-0000-4000-8000-000000000000",
                                timeouts=FAST_TIMEOUTS, backoff=FAST_BACKOFF))
    assert first.outcome.exit_code == 3 and first.outcome.reason.startswith(
        "the account of the key could not be read (/v1/me: cannot connect to the API")
    assert first.summary["counts"] == {"pending": 4}
    with run_in_thread(sim_settings()) as up:
        second = run(manifest, out, up)
        third = run(manifest, out, up)
        audit(out, up)
        assert up.books.creates_accepted == 2
    assert second.outcome.exit_code == third.outcome.exit_code == 1
    states = {(r["axes"]["prompt"], r["state"]) for r in results_lines(out)}
    assert {state for prompt, state in states if "moderate" not in prompt} == {"downloaded"}
    moderated = [r for r in results_lines(out) if r["state"] == "failed"]
    assert len(moderated) == 2 and all("moderat" in r["reason"] for r in moderated)


def test_a_refused_job_retry_failed_never_sent_stays_failed_for_the_next_plain_run(
        tmp_path: Path) -> None:
    """Stopped by its budget, or killed, before it sends them, a --retry-failed run leaves the
    jobs it took up as it found them: failed with their reason, not sent by a run without the
    flag."""
    manifest = write_manifest(tmp_path, prompts=[PROMPTS[0], "A street moderate-me at night"],
                              repeat=1, styles={"vibe": ["none"]})
    out = tmp_path / "out"
    with run_in_thread(sim_settings()) as sim:
        assert run(manifest, out, sim).outcome.exit_code == 1  # refused at create
        (refused,) = [r for r in results_lines(out) if r["state"] == "failed"]
        stopped = run(manifest, out, sim, retry_failed=True, budget_usd=0.01)
        after_stop = [r for r in results_lines(out) if r["key"] == refused["key"]]
        killed_retry_run(out, manifest)
        with Journal.open(out) as journal:
            assert journal.job(refused["key"]).state == "pending"
        plain = run(manifest, out, sim)
        refusals = sim.books.requests["create"].get(400)
    assert stopped.outcome.exit_code == 3 and stopped.summary["failed_for_retry"] == 1
    assert after_stop == [refused]
    assert plain.outcome.exit_code == 1 and refusals == 1  # refused once, never sent again
    assert [r for r in results_lines(out) if r["key"] == refused["key"]] == [refused]


def test_a_failed_render_retry_failed_never_sent_keeps_its_generation_and_cost(
        tmp_path: Path) -> None:
    """Stopped by its budget, or killed, before it sends the job, a --retry-failed run leaves
    the results telling of the FAILED render as they did: its generation (the one to quote to
    the provider) and what it cost."""
    manifest = write_manifest(tmp_path, prompts=PROMPTS[:1], repeat=1, styles={"vibe": ["none"]})
    out = tmp_path / "out"
    with run_in_thread(sim_settings(fault_failed=1.0)) as sim:
        assert run(manifest, out, sim).outcome.exit_code == 1
        before = results_lines(out), results_lines(out, "errors.jsonl")
        stopped = run(manifest, out, sim, retry_failed=True, budget_usd=0.01)
        after_stop = results_lines(out), results_lines(out, "errors.jsonl")
        killed_retry_run(out, manifest)
        assert run(manifest, out, sim).outcome.exit_code == 1
        creates = sim.books.creates_accepted
    (failed,) = before[1]
    assert failed["generation_id"] and failed["cost_usd"] == 0.27 == failed["spent_usd"]
    assert stopped.outcome.exit_code == 3 and creates == 1
    assert after_stop == before
    assert (results_lines(out), results_lines(out, "errors.jsonl")) == before


def test_retry_failed_renders_a_failed_generation_anew_and_counts_what_it_cost(
        tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path, repeat=1)
    out = tmp_path / "out"
    account = tmp_path / "account.jsonl"  # one account, its renders failing, then not
    with run_in_thread(sim_settings(fault_failed=1.0, state_path=account)) as broken:
        first = run(manifest, out, broken)
        failed_ids = {g.id for g in broken.books.generations}
    assert first.outcome.exit_code == 1 and len(failed_ids) == 4
    with run_in_thread(sim_settings(state_path=account)) as healthy:
        assert run(manifest, out, healthy).outcome.exit_code == 1
        assert healthy.books.creates_accepted == 0
        second = run(manifest, out, healthy, retry_failed=True)
        assert healthy.books.creates_accepted == 4
    assert second.outcome.exit_code == 0
    records = results_lines(out)
    assert {r["state"] for r in records} == {"downloaded"}
    assert not failed_ids & {r["generation_id"] for r in records}
    assert second.summary["spent_usd"] == pytest.approx(8 * 0.27)


def test_jobs_a_manifest_no_longer_has_are_kept_and_said_so(
        tmp_path: Path, hailuo_log: pytest.LogCaptureFixture) -> None:
    out = tmp_path / "out"
    with run_in_thread(sim_settings()) as sim:
        run(write_manifest(tmp_path, repeat=1), out, sim)
        hailuo_log.clear()
        second = run(write_manifest(tmp_path, prompts=PROMPTS[:1], repeat=1), out, sim)
        assert sim.books.creates_accepted == 4
    assert second.outcome.exit_code == 0
    started = [r.getMessage() for r in hailuo_log.records if "run started" in r.getMessage()]
    assert started and "2 jobs (estimated $0.54)" in started[0]
    assert "2 already downloaded, 0 to create" in started[0]
    assert any(r.getMessage() == f"{out} also holds 2 jobs not in this plan (an earlier version of "
               "the manifest, or another manifest): they are kept, and listed in the results"
               for r in hailuo_log.records)
    assert len(results_lines(out)) == 4


def outage_records(records: list[logging.LogRecord]) -> list[tuple[str, str, dict[str, Any]]]:
    """The log's records of an API that cannot be connected to, then answers again: level,
    message and the fields of their JSON line."""
    said = ("cannot connect to the API", "the API answers again")
    return [(r.levelname, r.getMessage(), json.loads(JsonFormatter().format(r)))
            for r in records if r.getMessage().startswith(said)]


def outage_warned(record: tuple[str, str, dict[str, Any]], outage: float) -> None:
    """`record` is the warning of an outage, with when it began and when the run stops."""
    level, message, fields = record
    since, stops = (datetime.fromisoformat(fields[name]) for name in ("unreachable_since", "stops_at"))
    assert level == "WARNING" and (stops - since).total_seconds() == pytest.approx(outage, abs=0.002)
    assert message == (f"cannot connect to the API since {since:%H:%M:%S} UTC: the run stops at about "
                       f"{stops:%H:%M:%S} UTC if no connection can be made by then")


def test_an_api_that_goes_down_during_a_run_stops_it_and_the_next_run_finishes(
        tmp_path: Path, hailuo_log: pytest.LogCaptureFixture) -> None:
    manifest, out = write_manifest(tmp_path), tmp_path / "out"
    with run_in_process({**SIM_DEFAULTS, "state_path": tmp_path / "account.jsonl"}) as server:
        def down_at_the_first_submit(event: Event) -> None:
            if event.kind == "submitted" and server.process.poll() is None:
                server.process.kill()  # the server goes away: every connection refused

        # Two tries a create, long spent when the outage is declared: a refused connection sent
        # nothing, so it counts against no job.
        down = run(manifest, out, server, sink=down_at_the_first_submit, engine={"outage": 0.3},
                   backoff=Backoff(base=0.01, cap=0.02, attempts=2))
    assert down.outcome.exit_code == 3
    assert down.outcome.reason.startswith("the API could not be reached for")
    (warned,) = outage_records(hailuo_log.records)  # once, however many calls were refused
    outage_warned(warned, 0.3)
    assert "failed" not in down.summary["counts"]  # nothing given up on: all resumable
    with run_in_thread(sim_settings(state_path=tmp_path / "account.jsonl")) as sim:  # it is back
        again = run(manifest, out, sim)
        billed = sorted(g.id for g in sim.books.generations)  # by both lives of the server
    rows = journal_rows(out)
    assert again.outcome.exit_code == 0 and {row["state"] for row in rows} == {"downloaded"}
    assert sorted(row["generation_id"] for row in rows) == billed and len(billed) == 8


def test_an_api_back_before_the_outage_limit_is_said_so_and_the_run_finishes(
        tmp_path: Path, hailuo_log: pytest.LogCaptureFixture) -> None:
    manifest, out, account = write_manifest(tmp_path), tmp_path / "out", tmp_path / "account.jsonl"
    with ExitStack() as servers:
        server = servers.enter_context(run_in_process({**SIM_DEFAULTS, "state_path": account}))

        def down_then_back(event: Event) -> None:
            if event.kind == "submitted" and server.process.poll() is None:
                server.process.kill()  # every connection refused
                server.process.wait()  # and the account's state file free for the next one
            elif event.kind == "unreachable":  # said: the server comes back where it was
                servers.enter_context(run_in_process({**SIM_DEFAULTS, "state_path": account,
                                                      "port": urlsplit(server.base_url).port}))

        done = run(manifest, out, server, sink=down_then_back, engine={"outage": 60.0})
    assert done.outcome.exit_code == 0
    assert {row["state"] for row in journal_rows(out)} == {"downloaded"}
    warned, back = outage_records(hailuo_log.records)
    outage_warned(warned, 60.0)
    level, message, fields = back
    assert level == "INFO" and 0 < fields["unreachable_seconds"] < 60
    assert message == f"the API answers again after {fields['unreachable_seconds']:.0f} s"
