"""A job left `submitting` (its create was sent, and the run died before the answer) is looked
for before anything else happens to it: nothing fails it into being created a second time, a
job gone from the manifest is never created anew, and a new create pays into the budget."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest

from enginekit import (
    FAST_BACKOFF,
    FAST_TIMEOUTS,
    FRAME,
    copy_frames,
    journal_rows,
    journal_rows_now,
    refusing_api,
    run,
    sim_settings,
    step,
    write_manifest,
)
from enginekit import FRAME_PROMPTS as PROMPTS

from runner import nightly
from runner.api import open_client
from runner.batch import RunConfig, plan_for, run_batch
from runner.control import Event, Snapshot
from runner.notify import headline
from runner.schedule import Backoff
from runner.simulator import run_in_thread
from runner.state import Journal


def left_submitting(manifest: Path, out: Path, prompt: str, *, ahead: float | None = 0.0,
                    ago: tuple[float, ...] = (0.0,)) -> str:
    """The job of `prompt` written `submitting`, as a run that died after sending its create
    (`ago` seconds ago, each time it was sent) leaves it, the API's clock `ahead` of this
    machine's then (None: that clock unknown to it, or the run of an earlier version, which did
    not note it); its key."""
    planned, _ = plan_for(RunConfig(manifest=manifest, out=out))
    key = next(job.key for job in planned.jobs if job.request["parameters"]["prompt"] == prompt)
    with Journal.open(out) as journal:
        journal.sync_plan(planned.jobs)
        run_id = journal.begin_run(name="died", manifest=str(manifest), settings={}, at=time.time())
        for sent in (time.time() - seconds for seconds in ago):
            step(journal, key, "submitting", reserved_usd=0.27, run_id=run_id, at=sent,
                 api_at=None if ahead is None else sent + ahead)
    return key


def create(sim: Any, body: dict[str, Any]) -> str:
    """The create that went through before the run died: made on the account directly."""
    async def send() -> str:
        async with open_client(base_url=sim.base_url, api_key=sim.api_key) as client:
            return (await client.create(body)).generation_id
    return asyncio.run(send())


def row_of(out: Path, key: str) -> dict[str, Any]:
    return next(row for row in journal_rows(out) if row["key"] == key)


def two_folders(tmp_path: Path) -> tuple[Path, Path]:
    """The same one-prompt manifest in folders a and b: ours, and another folder's on the
    same account."""
    manifests = []
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        manifests.append(write_manifest(tmp_path / name, prompts=PROMPTS[:1], repeat=1,
                                        styles={"vibe": ["none"]}))
    return manifests[0], manifests[1]


def theirs_made(sim: Any, theirs: Path) -> str:
    """The generation the other folder's one job (of `two_folders`) makes on the account."""
    out = theirs.parent / "out"
    assert run(theirs, out, sim).outcome.exit_code == 0
    [made] = [row["generation_id"] for row in journal_rows(out)]
    return made


def resumed_after_a_lost_create(sim: Any, manifest: Path, out: Path) -> tuple[Any, str, str, int]:
    """A run of `manifest` (one job) into `out` after its create went through and its answer
    was lost, the API's clock then as `sim`'s is: the run's report, the job's key, the
    generation the create made, and the creates the account accepted in all."""
    key = left_submitting(manifest, out, PROMPTS[0], ahead=sim.settings.clock_ahead)
    made = create(sim, json.loads(row_of(out, key)["request"]))
    report = run(manifest, out, sim)
    return report, key, made, sim.books.creates_accepted


def test_a_start_frame_step_that_fails_leaves_the_job_unsettled_not_failed(tmp_path: Path) -> None:
    """With the account unreachable the job can neither be found nor given up on: it waits, and
    the next run finds the generation its create made instead of paying for another."""
    copy_frames(tmp_path)
    out, state = tmp_path / "out", tmp_path / "account.jsonl"
    one = write_manifest(tmp_path, prompts=PROMPTS[:1], defaults=FRAME, styles={"vibe": ["none"]},
                         repeat=1)
    with run_in_thread(sim_settings(state_path=state)) as sim:
        assert run(one, out, sim).outcome.exit_code == 0  # the frame is uploaded for the account
        both = write_manifest(tmp_path, prompts=PROMPTS, defaults=FRAME, styles={"vibe": ["none"]},
                              repeat=1)
        key = left_submitting(both, out, PROMPTS[1])
        made = create(sim, json.loads(row_of(out, key)["request"]))
    with run_in_thread(sim_settings(state_path=state, fault_500=1.0)) as down:
        stalled = run(both, out, down)
    unsettled = row_of(out, key)
    with run_in_thread(sim_settings(state_path=state)) as sim:
        resumed = run(both, out, sim)
        billed = sorted(generation.id for generation in sim.books.generations)
    rows = journal_rows(out)
    assert stalled.outcome.exit_code == 3 and unsettled["state"] == "submitting"
    assert resumed.outcome.exit_code == 0 and row_of(out, key)["generation_id"] == made
    assert [row["state"] for row in rows] == ["downloaded"] * 2
    assert sorted(row["generation_id"] for row in rows) == billed and len(billed) == 2


def test_a_job_gone_from_the_manifest_is_looked_for_but_never_created(tmp_path: Path) -> None:
    out = tmp_path / "out"
    key = left_submitting(write_manifest(tmp_path, prompts=PROMPTS, repeat=1,
                                         styles={"vibe": ["none"]}), out, PROMPTS[1])
    kept = write_manifest(tmp_path, prompts=PROMPTS[:1], repeat=1, styles={"vibe": ["none"]})
    with run_in_thread(sim_settings()) as sim:
        report = run(kept, out, sim)
        creates = sim.books.creates_accepted
    gone = row_of(out, key)
    assert report.outcome.exit_code == 0 and creates == 1
    assert gone["state"] == "pending" and gone["planned"] == 0 and gone["reserved_usd"] == 0


def test_a_run_that_leaves_unsettled_a_job_the_manifest_dropped_says_it_apart_from_the_plans_counts(
        tmp_path: Path) -> None:
    """Jobs left `submitting` whose generation cannot be looked for wait for the next run, one the
    manifest no longer has among them: the run's reason says how many of the jobs it did not
    finish the manifest no longer has, as it says of failed ones, beside the plan's counts."""
    out = tmp_path / "out"
    for prompt in PROMPTS[:2]:
        left_submitting(write_manifest(tmp_path, prompts=PROMPTS[:2], repeat=1,
                                       styles={"vibe": ["none"]}), out, prompt)
    kept = write_manifest(tmp_path, prompts=PROMPTS[:1], repeat=1, styles={"vibe": ["none"]})
    with refusing_api("the-account", 500, "internal error") as (root, _):  # no generation listed
        stopped = run_batch(RunConfig(manifest=kept, out=out, base_url=root, api_key="k",
                                      timeouts=FAST_TIMEOUTS, backoff=FAST_BACKOFF,
                                      engine={"tick": 0.05, "settle": 0.1}))
    reason = "2 jobs not finished (1 of them no longer planned): run again to resume"
    assert (stopped.outcome.exit_code, stopped.outcome.reason) == (3, reason)
    assert [row["state"] for row in journal_rows(out)] == ["submitting"] * 2
    assert headline(stopped.summary) == (
        f"hailuo-batch sweep: 0/1 downloaded, 0 failed, $0.00 spent, exit 3 ({reason}); 1 job no "
        "longer planned: 1 submitting")


def test_a_retried_job_left_submitting_is_created_not_taken_for_its_old_finished_render(
        tmp_path: Path) -> None:
    """Its generation seen complete, then lost to the account, the job was taken up again by a
    --retry-failed run killed after sending its create: the next run looks for that create's
    generation and renders it, not the old one's."""
    manifest = write_manifest(tmp_path, prompts=PROMPTS[:1], repeat=1, styles={"vibe": ["none"]})
    out = tmp_path / "out"
    key = left_submitting(manifest, out, PROMPTS[0])
    with Journal.open(out) as journal:
        run_id = journal.begin_run(name="killed", manifest=str(manifest), settings={}, at=1.0)
        step(journal, key, "submitted", run_id=run_id, at=2.0, generation_id="gone", cost_usd=0.27,
             cost_credits=None)
        step(journal, key, "complete", run_id=run_id, at=3.0, video_url="http://127.0.0.1:9/v.mp4",
             poster_url=None, render_seconds=1.0)
        step(journal, key, "failed", run_id=run_id, at=4.0, reason="gone", kind="lost")
        journal.retry_failed(run_id=run_id, at=5.0)
        step(journal, key, "submitting", reserved_usd=0.27, run_id=run_id, at=time.time())
    with run_in_thread(sim_settings()) as sim:
        report = run(manifest, out, sim)
        creates = sim.books.creates_accepted
    done = row_of(out, key)
    assert report.outcome.exit_code == 0 and creates == 1
    assert done["state"] == "downloaded" and done["generation_id"] != "gone"
    assert done["spent_before_usd"] == 0.27


def test_a_job_created_again_after_its_lost_create_pays_into_the_budget(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path, prompts=PROMPTS[:1], repeat=1, styles={"vibe": ["none"]})
    out = tmp_path / "out"
    key = left_submitting(manifest, out, PROMPTS[0])
    with run_in_thread(sim_settings()) as sim:
        report = run(manifest, out, sim, budget_usd=0.1)  # less than one job's estimate
        creates = sim.books.creates_accepted
    assert report.outcome.exit_code == 3 and "budget" in report.outcome.reason
    assert creates == 0 and row_of(out, key)["state"] == "pending"


@pytest.mark.parametrize("scale", [1.0, 40.0])
def test_a_lost_create_takes_its_own_generation_not_an_older_one_another_folder_made(
        tmp_path: Path, scale: float) -> None:
    """Another folder on the account made the same prompt and size just before: the lost
    create's own generation, made after it was sent, is the one taken, and the other folder's
    stays its own; at any time scale, the simulator's `createdAt` being real time, as the
    API's is."""
    settings = sim_settings(time_scale=scale, render_seconds=0.05 * scale, render_jitter_seconds=0.0)
    ours, theirs = two_folders(tmp_path)
    out = tmp_path / "a" / "out"
    with run_in_thread(settings) as sim:
        other = theirs_made(sim, theirs)
        report, key, made, creates = resumed_after_a_lost_create(sim, ours, out)
    assert report.outcome.exit_code == 0 and creates == 2
    assert row_of(out, key)["generation_id"] == made != other


def made_at(sim: Any, generation_id: str) -> float:
    """When the account lists the generation as made (its `createdAt`)."""
    async def look() -> float:
        async with open_client(base_url=sim.base_url, api_key=sim.api_key) as client:
            user_id = (await client.me()).user_id
            listed = await client.generations(user_id, offset=0, limit=50)
        [made] = [g.created_at for g in listed if g.id == generation_id]
        assert made is not None
        return made
    return asyncio.run(look())


def test_a_creates_sending_is_recorded_on_the_apis_clock(tmp_path: Path) -> None:
    """The API's clock ten minutes behind this machine's, a create that answers 500 is looked
    for from its sending as the API's clock read it (from the Date of `/v1/me`, the run's first
    call), never later than the API's own reading: its generation is listed as made after it.
    The job keeps this machine's time of it."""
    manifest = write_manifest(tmp_path, prompts=PROMPTS[:1], repeat=1, styles={"vibe": ["none"]})
    out = tmp_path / "out"
    with run_in_thread(sim_settings(clock_ahead=-600.0, fault_create_500=1.0)) as sim:
        report = run(manifest, out, sim)
        creates = sim.books.creates_accepted
        [row] = journal_rows(out)
        made = made_at(sim, row["generation_id"])
    [(here, told)] = journal_rows_now(out, "SELECT at, detail FROM transitions "
                                           "WHERE to_state = 'submitting'")
    assert report.outcome.exit_code == 0 and row["state"] == "downloaded" and creates == 1
    assert float(told) <= made < float(told) + 3
    assert row["create_sent_at"] == here and abs(float(told) - (here - 600)) < 3


@pytest.mark.parametrize("date_header", [True, False], ids=["an earlier version's", "no Date told"])
def test_a_create_sent_without_the_apis_clock_is_looked_for_minutes_around_this_machines(
        tmp_path: Path, date_header: bool) -> None:
    """Its sending noted on this machine's clock alone (by an earlier version, or a run whose
    answers told no Date), with the API's a minute behind: the search looks minutes before
    it, finds the generation and pays nothing again."""
    manifest = write_manifest(tmp_path, prompts=PROMPTS[:1], repeat=1, styles={"vibe": ["none"]})
    out = tmp_path / "out"
    with run_in_thread(sim_settings(clock_ahead=-60.0, date_header=date_header,
                                    fault_create_500=float(not date_header))) as sim:
        if date_header:
            key = left_submitting(manifest, out, PROMPTS[0], ahead=None)
            create(sim, json.loads(row_of(out, key)["request"]))
        report = run(manifest, out, sim)
        creates = sim.books.creates_accepted
    assert report.outcome.exit_code == 0 and creates == 1
    assert [row["state"] for row in journal_rows(out)] == ["downloaded"]


@pytest.mark.parametrize("ahead", [0.0, None], ids=["on the API's clock", "on this machine's"])
def test_a_create_sent_again_is_looked_for_after_that_sending_not_only_the_first(
        tmp_path: Path, ahead: float | None) -> None:
    """The job's first create was lost an hour ago, and made nothing; sent again, its create is
    carried out but answers 500: it is looked for after each of the job's sendings, the API's
    clock known to the first run or not, and its generation is found, not paid for again."""
    manifest = write_manifest(tmp_path, prompts=PROMPTS[:1], repeat=1, styles={"vibe": ["none"]})
    out = tmp_path / "out"
    key = left_submitting(manifest, out, PROMPTS[0], ahead=ahead, ago=(3600.0,))
    with run_in_thread(sim_settings(fault_create_500=1.0)) as sim:
        report = run(manifest, out, sim)
        creates = sim.books.creates_accepted
    assert report.outcome.exit_code == 0 and creates == 1
    assert row_of(out, key)["state"] == "downloaded"


def test_a_job_sent_again_takes_its_latest_creates_generation_not_one_made_since_in_an_earlier_window(
        tmp_path: Path) -> None:
    """The job's create was sent a minute ago and again now, neither answered; another folder
    made a generation of the same prompt and size in the first sending's window, after that
    sending: the latest create's own generation is taken, the other folder's left to it."""
    state = tmp_path / "account.jsonl"
    ours, theirs = two_folders(tmp_path)
    out = tmp_path / "a" / "out"
    key = left_submitting(ours, out, PROMPTS[0], ago=(60.0, 0.0))
    with run_in_thread(sim_settings(state_path=state, clock_ahead=-59.5)) as sim:
        other = theirs_made(sim, theirs)  # half a second after the first sending, by the API's clock
    with run_in_thread(sim_settings(state_path=state)) as sim:
        made = create(sim, json.loads(row_of(out, key)["request"]))
        report = run(ours, out, sim, engine={"settle": 1.0})  # windows of 4 s after each sending
        creates = sim.books.creates_accepted
    assert report.outcome.exit_code == 0 and creates == 1
    assert row_of(out, key)["generation_id"] == made != other


@pytest.mark.parametrize(("then", "now"), [(-600.0, -600.0), (-600.0, 0.0), (0.0, 3600.0)],
                         ids=["ten minutes behind", "clock set between", "an hour apart since"])
def test_a_lost_create_is_found_however_the_clocks_stood_then_and_now(
        tmp_path: Path, then: float, now: float) -> None:
    """The API's clock `then` seconds ahead of this machine's when the create was sent, `now`
    when the next run looks for it (this machine's clock set in between, by NTP after a reboot,
    say): the generation is found, not paid for again."""
    manifest = write_manifest(tmp_path, prompts=PROMPTS[:1], repeat=1, styles={"vibe": ["none"]})
    out, state = tmp_path / "out", tmp_path / "account.jsonl"
    with run_in_thread(sim_settings(state_path=state, clock_ahead=then)) as sim:
        key = left_submitting(manifest, out, PROMPTS[0], ahead=then)
        made = create(sim, json.loads(row_of(out, key)["request"]))
    with run_in_thread(sim_settings(state_path=state, clock_ahead=now)) as sim:
        report = run(manifest, out, sim)
        created_again = sim.books.creates_accepted
    assert report.outcome.exit_code == 0 and created_again == 0
    assert row_of(out, key)["generation_id"] == made


def test_a_lost_create_tells_its_own_from_another_folders_with_the_apis_clock_ahead(
        tmp_path: Path) -> None:
    """The API's clock ten minutes ahead of this machine's, another folder's generation of the
    same prompt and size, made a minute before the lost create by that clock, reads as made
    after the create was sent by this machine's: the create's own is taken all the same."""
    state = tmp_path / "account.jsonl"
    ours, theirs = two_folders(tmp_path)
    out = tmp_path / "a" / "out"
    with run_in_thread(sim_settings(state_path=state, clock_ahead=540.0)) as sim:
        other = theirs_made(sim, theirs)
    with run_in_thread(sim_settings(state_path=state, clock_ahead=600.0)) as sim:
        report, key, made, creates = resumed_after_a_lost_create(sim, ours, out)
    assert report.outcome.exit_code == 0 and creates == 1
    assert row_of(out, key)["generation_id"] == made != other


@pytest.mark.parametrize("ahead", [-60.0, 60.0], ids=["a minute before", "a minute after"])
def test_a_create_that_made_nothing_is_not_taken_for_another_folders_made_a_minute_apart(
        tmp_path: Path, ahead: float) -> None:
    """The lost create made no generation; another folder made one of the same prompt and size
    (in other styles) a minute before it was sent, by the API's clock, or a minute after, later
    than the create could have been carried out: the job is created, not given the other
    folder's video."""
    state = tmp_path / "account.jsonl"
    ours, theirs = two_folders(tmp_path)
    out = tmp_path / "a" / "out"
    key = left_submitting(ours, out, PROMPTS[0])
    with run_in_thread(sim_settings(state_path=state, clock_ahead=ahead)) as sim:
        other = theirs_made(sim, theirs)
    with run_in_thread(sim_settings(state_path=state)) as sim:
        report = run(ours, out, sim)
        creates = sim.books.creates_accepted
    assert report.outcome.exit_code == 0 and creates == 1
    assert row_of(out, key)["generation_id"] != other


def test_a_lost_create_found_by_a_later_run_counts_in_that_runs_spending(tmp_path: Path) -> None:
    """The run that sent the create died before its answer; the one that found the generation
    booked it, and counts it, in its progress (and so its budget) as in its summary, so that
    the runs' spending adds up to the folder's."""
    manifest = write_manifest(tmp_path, prompts=PROMPTS, repeat=1, styles={"vibe": ["none"]})
    out = tmp_path / "out"
    events: list[Event] = []
    with run_in_thread(sim_settings()) as sim:
        key = left_submitting(manifest, out, PROMPTS[0])
        create(sim, json.loads(row_of(out, key)["request"]))
        report = run(manifest, out, sim, sink=events.append)
        creates = sim.books.creates_accepted
    summary, progress = report.summary, events[-1].snapshot
    assert report.outcome.exit_code == 0 and creates == 2
    assert (summary["spent_usd"], summary["spent_estimated_usd"], summary["run_spent_usd"]) == (
        0.54, 0.27, 0.54)
    assert (progress.spent_usd, progress.spent_estimated_usd) == (0.54, 0.27)
    assert headline(summary).startswith("hailuo-batch sweep: 2/2 downloaded, 0 failed, "
                                        "$0.54 spent ($0.27 of it estimated), exit 0")


def test_a_create_left_unsettled_by_an_outage_is_logged_with_its_cause_and_not_counted_as_paid(
        tmp_path: Path, hailuo_log: pytest.LogCaptureFixture) -> None:
    """In a 5xx storm a create answered 500 and the account's generations, where it would be
    found, could not be listed: the job waits `submitting`, failed in no file. The log says why,
    and a later start in another folder counts it as unsettled, not as paid."""
    manifest = write_manifest(tmp_path, prompts=PROMPTS[:1], styles={"vibe": ["none"]}, repeat=1,
                              run={"concurrency": 1})
    night = tmp_path / "out" / "sweep" / "night-6"
    with run_in_thread(sim_settings(fault_500=0.6, seed=7)) as sim:  # the create's 500, then the listing's
        stalled = run(manifest, night, sim, backoff=Backoff(base=0.01, attempts=1))
    [row] = journal_rows(night)
    warned = [record.getMessage() for record in hailuo_log.records if record.levelname == "WARNING"]
    assert stalled.outcome.exit_code == 3 and row["state"] == "submitting"
    assert warned == [f"job {row['key'][:10]}'s create is left unsettled (sent, not known to be paid: "
                      "looked for before it is sent again): server error (500 Service Error)"]
    hailuo_log.clear()
    [left] = nightly.earlier_folders(str(tmp_path / "out" / "{name}" / "{run_id}"), "sweep",
                                     tmp_path / "out" / "sweep" / "night-7")
    assert left == {"out": str(night), "in_flight": 0, "unsettled": 1, "waiting": 0}
    assert ("still holds 1 create unsettled (sent, not known to be paid: looked for before it is "
            "sent again); this start" in hailuo_log.records[0].getMessage())


def test_creates_left_unsettled_are_logged_once_each_and_the_first_ten_only(
        hailuo_log: pytest.LogCaptureFixture) -> None:
    logged: list[Event] = []
    sink = nightly.logged(logged.append)
    snapshot = Snapshot(total=12, downloaded=0, failed=0, in_flight=12, pending=0, spent_usd=0.0,
                        spent_estimated_usd=0.0, elapsed=0.0, eta=None)
    for key in [f"{n:02d}" * 6 for n in range(12)] * 2:  # each job left unsettled twice
        sink(Event("unsettled", key, "server error (500 Service Error)", snapshot))
    said = [record.getMessage() for record in hailuo_log.records]
    assert len(logged) == 24  # the events go on to the sink
    assert len(said) == 11 and said[0].startswith("job 0000000000's create is left unsettled")
    assert said[-1] == "further creates left unsettled are not listed, after the first 10"
