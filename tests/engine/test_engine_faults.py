"""One end-to-end run per fault the API can throw, over real sockets to the simulator.

Every run must end with each job downloaded or failed with its reason, and the simulator's
books must show no job created twice (`enginekit.audit`).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
from enginekit import PROMPTS, audit, journal_rows, results_lines, run, sim_settings, write_manifest

from runner.api import Timeouts
from runner.simulator import answers, run_in_thread


@pytest.mark.parametrize("fault", ["500", "reset", "not_json", "create_500"])
def test_transient_faults_end_with_every_job_downloaded_once(tmp_path: Path, fault: str) -> None:
    manifest = write_manifest(tmp_path)
    with run_in_thread(sim_settings(**{f"fault_{fault}": 0.3})) as sim:
        report = run(manifest, tmp_path / "out", sim)
        books = audit(tmp_path / "out", sim)
    assert report.outcome.exit_code == 0, report.outcome
    assert books["states"] == {"downloaded": 8}
    assert sum(books["books"].faults.values()) > 0


def test_creates_carried_out_after_their_500_are_found_and_never_paid_twice(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path)
    settings = sim_settings(fault_create_late=0.3, late_seconds=2.0)  # 0.05 s, within the settle
    with run_in_thread(settings) as sim:
        report = run(manifest, tmp_path / "out", sim)
        books = audit(tmp_path / "out", sim)
    assert report.outcome.exit_code == 0, report.outcome
    assert books["states"] == {"downloaded": 8} and books["books"].faults["create_late"] > 0


def test_slow_answers_past_the_timeout_are_retried_and_reconciled(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path)
    settings = sim_settings(fault_slow=0.25, slow_seconds=16.0)  # 0.4 real seconds
    with run_in_thread(settings) as sim:
        report = run(manifest, tmp_path / "out", sim,
                     timeouts=Timeouts(connect=1.0, call=0.25, download=0.25),
                     engine={"settle": 0.5})
        books = audit(tmp_path / "out", sim)
    assert report.outcome.exit_code == 0, report.outcome
    assert books["books"].faults.get("slow", 0) > 0
    assert books["states"] == {"downloaded": 8}


@pytest.mark.parametrize("retry_after", [True, False])
def test_429_storm_slows_down_and_finishes(tmp_path: Path, retry_after: bool) -> None:
    manifest = write_manifest(tmp_path, repeat=3)
    settings = sim_settings(creates_per_minute=8, requests_per_minute=None,
                            retry_after=retry_after)  # 8 creates in 1.5 real seconds
    with run_in_thread(settings) as sim:
        report = run(manifest, tmp_path / "out", sim, submit_per_minute=60000)
        books = audit(tmp_path / "out", sim)
    assert report.outcome.exit_code == 0, report.outcome
    assert books["books"].requests["create"].get(429, 0) > 0
    assert books["states"] == {"downloaded": 12}


def test_failed_generations_are_recorded_with_their_reason(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path, repeat=3)
    with run_in_thread(sim_settings(fault_failed=0.4)) as sim:
        report = run(manifest, tmp_path / "out", sim)
        books = audit(tmp_path / "out", sim)
    failed = [r for r in results_lines(tmp_path / "out") if r["state"] == "failed"]
    assert failed and report.outcome.exit_code == 1
    assert all(r["reason"] == "the generation FAILED" and r["generation_id"] for r in failed)
    assert len(results_lines(tmp_path / "out", "errors.jsonl")) == len(failed)
    assert books["states"]["failed"] == len(failed)


@pytest.mark.parametrize("stage, status", [("create", 400), ("create", 403), ("render", 400)])
def test_moderation_fails_the_job_and_is_never_retried(tmp_path: Path, stage: str,
                                                        status: int) -> None:
    manifest = write_manifest(tmp_path, prompts=[PROMPT_OK, "A street moderate-me at night"])
    settings = sim_settings(moderation_stage=stage, moderation_status=status)
    with run_in_thread(settings) as sim:
        report = run(manifest, tmp_path / "out", sim)
        books = audit(tmp_path / "out", sim)
    failed = [r for r in results_lines(tmp_path / "out") if r["state"] == "failed"]
    assert report.outcome.exit_code == 1
    assert len(failed) == 4 and all("moderation" in r["reason"] for r in failed)
    assert all(r["attempts"] == 1 for r in failed)
    assert books["books"].requests["create"].get(status, 0) == (4 if stage == "create" else 0)


PROMPT_OK = "A ginger cat asleep on a sunlit rooftop"


def test_downloads_cut_short_go_on_from_where_they_stopped(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path)
    with run_in_thread(sim_settings(fault_truncate=1.0)) as sim:  # every whole-file GET of a video
        report = run(manifest, tmp_path / "out", sim)
        books = audit(tmp_path / "out", sim)
    assert report.outcome.exit_code == 0 and books["states"] == {"downloaded": 8}
    assert books["books"].faults["truncate"] == 8  # each video cut once, then resumed
    assert books["books"].requests["cdn"] == {200: 16, 206: 8}  # a cut video and a poster each
    assert not list((tmp_path / "out").rglob("*.part"))


def test_every_fault_at_once(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path, repeat=3)
    settings = sim_settings(fault_500=0.1, fault_reset=0.1, fault_not_json=0.1,
                            fault_create_500=0.1, fault_truncate=0.1, fault_failed=0.1, seed=3)
    with run_in_thread(settings) as sim:
        report = run(manifest, tmp_path / "out", sim)
        books = audit(tmp_path / "out", sim)
    assert report.outcome.exit_code in (0, 1)
    assert sum(books["states"].values()) == 12


def test_a_page_served_in_place_of_a_video_is_fetched_again_from_its_start(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path)
    with run_in_thread(sim_settings(fault_not_video=0.5, seed=2)) as sim:
        report = run(manifest, tmp_path / "out", sim)
        books = audit(tmp_path / "out", sim)
    assert report.outcome.exit_code == 0 and books["states"] == {"downloaded": 8}
    assert books["books"].faults["not_video"] > 0 and 206 not in books["books"].requests["cdn"]


def test_a_create_answered_with_another_jobs_generation_is_looked_for_not_booked_twice(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A garbled answer names the generation an earlier create made: the journal cannot give it
    to a second job, and the run goes on, looking for what the create made (an earlier version
    stopped there with exit 4, "cannot write the journal")."""
    first: list[str] = []
    answer = answers.created

    def garbled(generation: Any, *args: Any) -> dict[str, Any]:
        if not first:
            first.append(generation.id)
        return answer(dataclasses.replace(generation, id=first[0]), *args)
    monkeypatch.setattr(answers, "created", garbled)
    manifest = write_manifest(tmp_path, prompts=PROMPTS, repeat=1, styles={"vibe": ["none"]},
                              run={"concurrency": 1})
    with run_in_thread(sim_settings()) as sim:
        report = run(manifest, tmp_path / "out", sim)
        made = sim.books.creates_accepted
    rows = sorted(journal_rows(tmp_path / "out"), key=lambda row: row["idx"])
    assert report.outcome.exit_code == 0 and made == 2
    assert [row["state"] for row in rows] == ["downloaded", "downloaded"]
    assert rows[0]["generation_id"] == first[0] != rows[1]["generation_id"]
