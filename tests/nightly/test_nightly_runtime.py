"""`--max-runtime`: at the deadline submitting stops, jobs in flight get the grace period to finish
and download, then the run ends with exit 3 and the next run resumes.

The runner's clock runs at the simulator's time scale (100 simulated seconds a real second), so
the timeline below is in simulated seconds and the test never sleeps: two slots, renders of 60 s,
so jobs 1-2 render from 0 to 60, jobs 3-4 from about 60 to 120, and the deadline falls at 90.
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from pathlib import Path
from typing import Any

from nightlykit import ScaledClock, key_file, run_cli, sim_settings, summary, trickling, write_manifest

from runner.api import Timeouts
from runner.batch import RunConfig, RunReport, run_batch
from runner.control import Outcome
from runner.schedule import Backoff
from runner.simulator import ThreadedSimulator, run_in_thread

SCALE = 100.0
RUN = {"concurrency": 2, "poll_interval": "2s", "timeout": "600s", "max_runtime": "90s"}


def scaled_run(manifest: Path, out: Path | None, sim: ThreadedSimulator, *,
               clock: ScaledClock | None = None, **overrides: Any) -> RunReport:
    config = RunConfig(manifest=manifest, out=out, overrides=overrides, base_url=sim.base_url,
                       api_key=sim.api_key, timeouts=Timeouts(connect=2.0, call=2.0, download=5.0),
                       backoff=Backoff(base=0.5, cap=2.0, attempts=10),
                       engine={"tick": 0.05, "settle": 1.0})
    return run_batch(config, clock=clock or ScaledClock(SCALE))


def column(out: Path, name: str) -> list[Any]:
    """One column of the journal's jobs table."""
    conn = sqlite3.connect(out / "journal.sqlite")
    try:
        return [value for (value,) in conn.execute(f"SELECT {name} FROM jobs")]
    finally:
        conn.close()


def states(out: Path) -> Counter[str]:
    return Counter(column(out, "state"))


def slow_renders() -> Any:
    return run_in_thread(sim_settings(render_seconds=60.0, time_scale=SCALE))


def test_jobs_in_flight_at_the_deadline_finish_within_the_grace_then_exit_3(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path, run={**RUN, "grace": "120s"})
    with slow_renders() as sim:
        report = scaled_run(manifest, tmp_path / "out", sim)
        assert sim.books.creates_accepted == 4  # nothing was submitted after the deadline
    assert report.outcome.exit_code == 3
    assert report.outcome.reason.startswith("the max runtime of 90 s is reached")
    assert states(tmp_path / "out") == {"downloaded": 4, "pending": 4}
    assert summary(tmp_path / "out")["exit_code"] == 3


def test_jobs_still_in_flight_when_the_grace_is_over_are_resumed_by_the_next_run(
        tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path, run={**RUN, "grace": "10s"})
    out = tmp_path / "out"
    with slow_renders() as sim:
        stopped = scaled_run(manifest, out, sim)
        assert states(out) == {"downloaded": 2, "submitted": 2, "pending": 4}
        resumed = scaled_run(manifest, out, sim, max_runtime="1h")
        billed = sorted(g.id for g in sim.books.generations)
    assert len(billed) == 8 and sorted(column(out, "generation_id")) == billed  # each job created once
    assert stopped.outcome.exit_code == 3
    assert "grace of 10 s is over with 2 jobs in flight: run again to resume" in stopped.outcome.reason
    assert resumed.outcome.exit_code == 0 and states(out) == {"downloaded": 8}


def test_the_command_line_options_stop_a_run_with_exit_3(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path)
    with run_in_thread(sim_settings(render_seconds=3600.0, time_scale=1.0)) as sim:
        done = run_cli("run", manifest, "--out", "out", "--base-url", sim.base_url,
                       "--api-key-file", key_file(tmp_path, sim), "--max-runtime", "0.5s",
                       "--grace", "0.3s", cwd=tmp_path)
        assert sim.books.creates_accepted == 4
    assert done.returncode == 3, done.stderr
    reason = summary(tmp_path / "out")["exit_reason"]
    assert reason.startswith("the max runtime of 0.5 s is reached and its grace of 0.3 s is over")
    assert "submitting stopped, with 4 jobs in flight and 0.3 s of grace to finish" in done.stderr
    assert states(tmp_path / "out") == {"submitted": 4, "pending": 4}


# One create every 600 s: at the deadline the jobs after the first are still waiting their turn.
SLOW_SUBMITS = {"concurrency": 4, "submit_per_minute": 0.1, "poll_interval": "1s"}


def test_a_deadline_with_nothing_in_flight_ends_the_run_at_once_not_after_the_grace(
        tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path, run={**SLOW_SUBMITS, "max_runtime": "60s", "grace": "300s"})
    with run_in_thread(sim_settings(time_scale=SCALE)) as sim:  # renders of 5 s
        report = scaled_run(manifest, tmp_path / "out", sim)
        assert sim.books.creates_accepted == 1
    assert report.outcome.reason == "the max runtime of 60 s is reached: run again to resume"
    assert states(tmp_path / "out") == {"downloaded": 1, "pending": 7}


class NextDay(ScaledClock):
    """The clock of a run that began the day before: past midnight, a start names the folder
    of another {date}."""

    def wall(self) -> float:
        return super().wall() + 86400.0


def test_a_stop_past_midnight_names_the_out_of_the_days_folder(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path, output_dir=f"{tmp_path}/out/{{date}}",
                              run={**SLOW_SUBMITS, "max_runtime": "60s", "grace": "300s"})
    with run_in_thread(sim_settings(time_scale=SCALE)) as sim:
        report = scaled_run(manifest, None, sim, clock=NextDay(SCALE))
    assert report.outcome.reason == ("the max runtime of 60 s is reached: run again with --out "
                                     f"{report.out_dir} to resume")
    assert states(report.out_dir) == {"downloaded": 1, "pending": 7}


class SteppedAhead(ScaledClock):
    """The clock of a machine set an hour ahead 45 s into the run, as an NTP step at boot does:
    its time of day jumps, the time that measures intervals goes on as it went."""

    def wall(self) -> float:
        return super().wall() + (3600.0 if self.now() > 45 else 0.0)


def test_a_step_of_the_machine_clock_fails_no_job_before_its_timeout(tmp_path: Path) -> None:
    """Renders of 120 s, four creates a minute for eight jobs: at the step jobs render and others
    wait for their create's next turn; each keeps its whole --timeout, and all download."""
    manifest = write_manifest(tmp_path, run={"concurrency": 8, "poll_interval": "2s",
                                             "timeout": "600s"})
    with run_in_thread(sim_settings(render_seconds=120.0, time_scale=SCALE,
                                    creates_per_minute=4)) as sim:
        report = scaled_run(manifest, tmp_path / "out", sim, clock=SteppedAhead(SCALE))
    assert report.outcome == Outcome(0, "every job downloaded")
    assert states(tmp_path / "out") == {"downloaded": 8}


def test_a_budget_stop_ends_the_run_without_waiting_for_the_submit_rate(tmp_path: Path) -> None:
    # The budget fits no job; the max runtime stands for the submit rate's next turn, at 600 s.
    manifest = write_manifest(tmp_path, run={**SLOW_SUBMITS, "budget_usd": 0.2,
                                             "max_runtime": "60s", "grace": "10s"})
    with run_in_thread(sim_settings(time_scale=SCALE)) as sim:
        report = scaled_run(manifest, tmp_path / "out", sim)
        assert sim.books.creates_accepted == 0
    assert report.outcome.reason == "the budget of $0.2 is reached"
    assert states(tmp_path / "out") == {"pending": 8}


def test_the_deadline_stops_a_run_still_reading_its_account(tmp_path: Path) -> None:
    """An API that answers a byte at a time: at the max runtime the run ends, resumable, having
    sent nothing, rather than after its tries at reading the account have each timed out."""
    manifest = write_manifest(tmp_path, run={**RUN, "max_runtime": "60s"})
    with trickling(b"HTTP/1.1 200 OK\r\nX-Slow: ") as api:
        config = RunConfig(manifest=manifest, out=tmp_path / "out", api_key="0c3d2b8e-51f4-4a43",
                           base_url=api.url.removesuffix("/hooks/hailuo"),
                           timeouts=Timeouts(connect=2.0, call=3.0), backoff=Backoff(base=0.5, cap=2.0))
        report = run_batch(config, clock=ScaledClock(SCALE))
        assert api.asked.is_set()
    assert report.outcome == Outcome(3, "the max runtime of 60 s is reached while the account was "
                                        "being read: nothing was sent; run again")
    assert states(tmp_path / "out") == {}  # a run that did not begin leaves no plan behind
