"""A start frame's id belongs to the API and account it was uploaded to: a run against another
one uploads the frame again instead of naming an id that API never saw."""

from __future__ import annotations

import json
from pathlib import Path

from enginekit import (
    FAST_BACKOFF,
    FRAME,
    copy_frames,
    invoke,
    invoke_simulated,
    journal_rows,
    run,
    sim_settings,
    write_manifest,
)
from enginekit import FRAME_PROMPTS as PROMPTS
from sharedkit import kept_account

from runner.control import Event
from runner.simulator import run_in_thread


def frame_manifest(folder: Path, prompts: int) -> Path:
    """One start-frame job per prompt; the second version adds a job for the same file."""
    return write_manifest(folder, prompts=PROMPTS[:prompts], defaults=FRAME,
                          styles={"vibe": ["none"]}, repeat=1)


def simulated_run(manifest: Path, out: Path, *more: str) -> int:
    """`run --simulate` through click, with `more` flags: its exit code."""
    return invoke_simulated(manifest, out, *more)[0]


def test_a_second_simulated_run_uses_the_frame_the_account_has(tmp_path: Path) -> None:
    copy_frames(tmp_path)
    out, state = tmp_path / "out", tmp_path / "out" / "simulator-state.jsonl"
    assert simulated_run(frame_manifest(tmp_path, 1), out) == 0
    first = kept_account(state)
    assert simulated_run(frame_manifest(tmp_path, 2), out) == 0
    second = kept_account(state)
    assert first is not None and second is not None and len(first.uploads) == 1
    assert second.user_id == first.user_id and second.uploads == first.uploads
    rows = journal_rows(out)
    assert [row["state"] for row in rows] == ["downloaded", "downloaded"]
    assert rows[1]["generation_id"] in second.generations


def test_a_run_against_another_api_root_uploads_the_start_frame_again(tmp_path: Path) -> None:
    copy_frames(tmp_path)
    out, account = tmp_path / "out", tmp_path / "account.jsonl"
    with run_in_thread(sim_settings(state_path=account)) as first:
        report = run(frame_manifest(tmp_path, 1), out, first)
        first_uploads = first.books.requests["init-image"]
    with run_in_thread(sim_settings(state_path=account)) as second:  # the account at another URL
        again = run(frame_manifest(tmp_path, 2), out, second)
        second_uploads = second.books.requests["init-image"]
        created = [g.id for g in second.books.generations if g.id not in
                   {row["generation_id"] for row in journal_rows(out)[:1]}]
    rows = journal_rows(out)
    assert report.outcome.exit_code == 0 and first_uploads == {200: 1}
    assert again.outcome.exit_code == 0, again.outcome
    assert second_uploads == {200: 1} and len(created) == 1
    assert [row["state"] for row in rows] == ["downloaded", "downloaded"]
    assert rows[1]["generation_id"] == created[0]


def test_plan_the_dry_run_and_the_run_say_which_changed_start_frame_makes_its_jobs_new(
        tmp_path: Path) -> None:
    """An image re-saved is a new content, so its jobs are new ones, paid again: `plan --out`
    and the dry run name the frame before anything is paid, and the run's start line says it."""
    copy_frames(tmp_path)
    images = tmp_path / "images"
    (images / "dusk.png").write_bytes((images / "sunset.png").read_bytes()[:-16] + bytes(16))
    manifest = write_manifest(tmp_path, prompts=PROMPTS, styles={"vibe": ["none"]}, repeat=1,
                              defaults=FRAME,
                              matrix={"start_frame": [{"path": "images/sunset.png"},
                                                      {"path": "images/dusk.png"}]})
    out, log = tmp_path / "out", tmp_path / "run.log"
    assert simulated_run(manifest, out, "--log-file", str(log)) == 0  # 4 jobs, 2 of each frame
    with (images / "dusk.png").open("ab") as frame:  # re-saved by an image editor, say
        frame.write(b"\0")
    planned = invoke("plan", str(manifest), "--out", str(out))[1].splitlines()[-1]
    dry = invoke("run", str(manifest), "--simulate", "--out", str(out), "--dry-run")[1]
    assert simulated_run(manifest, out, "--log-file", str(log), "--budget-usd", "0.3") == 3
    halfway = invoke("plan", str(manifest), "--out", str(out))[1].splitlines()[-1]  # 1 job made
    assert simulated_run(manifest, out) == 0
    after = invoke("plan", str(manifest), "--out", str(out))[1].splitlines()[-1]
    changed = ("start frame images/dusk.png changed since 2 jobs were made from it "
               "(2 downloaded): its 2 jobs are new")
    assert planned.endswith(f"2 new, 0 in flight, 2 done, 0 failed; 2 jobs no longer planned: "
                            f"2 downloaded; {changed}")
    assert f"; {changed}; nothing was sent (dry run)" in dry
    started = [line for line in log.read_text("utf-8").splitlines() if "run started" in line]
    assert started[0].endswith("0 already downloaded, 4 to create")
    assert started[1].endswith(f"2 already downloaded, 2 to create; {changed}")
    assert halfway.endswith("(2 downloaded): 1 of its 2 jobs is new")
    assert after.endswith("4 done, 0 failed; 2 jobs no longer planned: 2 downloaded")


def test_a_start_frame_changed_after_the_plan_is_never_sent_under_the_old_contents_name(
        tmp_path: Path) -> None:
    copy_frames(tmp_path)
    frame = tmp_path / "images" / "sunset.png"
    manifest = write_manifest(tmp_path, styles={"vibe": ["none"]}, repeat=1, run={"concurrency": 1},
                              prompts=["A calm sea at dusk",
                                       {"text": PROMPTS[0], "start_frame": {"path": "images/sunset.png"}}])

    def edit_the_frame(event: Event) -> None:  # once the text-to-video job before it is sent
        if event.kind == "submitting":
            frame.write_bytes(frame.read_bytes()[:-16] + bytes(16))

    with run_in_thread(sim_settings()) as sim:
        report = run(manifest, tmp_path / "out", sim, sink=edit_the_frame)
        uploads, creates = sim.books.requests.get("init-image", {}), sim.books.creates_accepted
    failed = [row for row in journal_rows(tmp_path / "out") if row["state"] == "failed"]
    assert report.outcome.exit_code == 3 and uploads == {} and creates == 1
    assert [row["error_kind"] for row in failed] == ["upload"]
    assert "images/sunset.png changed after the plan was made" in failed[0]["reason"]


def test_a_sidecar_names_the_start_frame_sent_by_an_earlier_run(tmp_path: Path) -> None:
    copy_frames(tmp_path)
    manifest = write_manifest(tmp_path, prompts=PROMPTS[:1], defaults=FRAME, styles={"vibe": ["none"]},
                              repeat=1, run={"timeout": "0.3s"})
    out = tmp_path / "out"
    with run_in_thread(sim_settings(render_seconds=3600.0, render_jitter_seconds=0.0)) as sim:
        first = run(manifest, out, sim)  # created, then given up on: its render is too long
        sim.advance(3600)
        second = run(manifest, out, sim)  # polls it again and downloads it
        (generation,) = sim.books.generations
    (row,) = journal_rows(out)
    sidecar = json.loads((out / row["sidecar"]).read_text("utf-8"))
    sent = sidecar["request"]["parameters"]["guidances"]["start_frame"][0]["image"]["id"]
    assert first.outcome.exit_code == 3 and second.outcome.exit_code == 0
    assert sent == generation.request["parameters"]["guidances"]["start_frame"][0]["image"]["id"]
    assert sent != ""


def test_a_start_frame_that_cannot_be_uploaded_is_tried_once_a_run_not_once_a_job(tmp_path: Path) -> None:
    copy_frames(tmp_path)
    manifest = write_manifest(tmp_path, prompts=PROMPTS[:1], defaults=FRAME)  # 4 jobs, one frame
    with run_in_thread(sim_settings(upload_expiry_seconds=0.001)) as sim:  # every form has expired
        report = run(manifest, tmp_path / "out", sim)
        posted = sum(sim.books.requests["upload"].values())
    rows = journal_rows(tmp_path / "out")
    assert report.outcome.exit_code == 3 and posted == FAST_BACKOFF.attempts
    assert [row["error_kind"] for row in rows] == ["upload"] * 4
    assert sum("given up on earlier in this run" in row["reason"] for row in rows) == 3
