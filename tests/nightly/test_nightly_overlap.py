"""Folders of one `output.dir` run at the same time on one account: a lost create's search never
takes a generation another folder's journal holds, and a start names a folder a live run holds
as in use, not as left unfinished."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from nightlykit import key_file, run_cli, sim_settings, started, summary, write_manifest
from sharedkit import journal_rows_now

from runner.api import Timeouts
from runner.batch import RunConfig, run_batch
from runner.simulator import run_in_thread


def held(folder: Path) -> list[str]:
    """The generations the folder's journal books to its jobs."""
    return [gid for (gid,) in journal_rows_now(folder, "SELECT generation_id FROM jobs "
                                                       "WHERE generation_id IS NOT NULL")]


def test_two_folders_run_at_once_each_hold_their_own_paid_generations(tmp_path: Path) -> None:
    """Every create answers 500 and is carried out 2 s later all the same, and each search waits
    3 s (--request-timeout): the two runs send their first create of a prompt well within 2 s of
    each other, so each one's search lists both generations of the prompt made after its
    sending, and the one made first ranks first for both. Only what the other folder's journal
    holds tells them apart: the books must show every paid generation in exactly one folder."""
    manifest = write_manifest(tmp_path, repeat=1, output_dir=str(tmp_path / "out/{name}/{run_id}"))
    nights = tmp_path / "out" / "nightly"
    settings = sim_settings(time_scale=1.0, render_seconds=0.2, fault_create_late=1.0,
                            late_seconds=2.0)
    with run_in_thread(settings) as sim:
        args = ("run", manifest, "--base-url", sim.base_url, "--api-key-file",
                key_file(tmp_path, sim), "--request-timeout", "3s")
        with started(*args, "--run-id", "a", cwd=tmp_path) as child:
            other = run_batch(RunConfig(manifest=manifest, run_id="b", base_url=sim.base_url,
                                        api_key=sim.api_key, timeouts=Timeouts(call=3.0)))
            _, first_log = child.communicate(timeout=60)
        billed = [generation.id for generation in sim.books.generations]
    assert child.returncode == 0 and other.outcome.exit_code == 0, first_log
    assert summary(nights / "a")["counts"] == summary(nights / "b")["counts"] == {"downloaded": 4}
    assert len(billed) == 8  # each folder's 4 creates, each carried out once
    holders = Counter(held(nights / "a") + held(nights / "b"))
    assert {generation: holders[generation] for generation in billed} == dict.fromkeys(billed, 1)


def test_a_start_names_an_earlier_folder_a_live_run_holds_as_in_use(tmp_path: Path) -> None:
    """The earlier start's folder is being finished by a run (its lock held, its jobs in flight):
    the new start says so with that run's process, and neither advises --out for it nor counts
    it as left unfinished."""
    manifest = write_manifest(tmp_path, repeat=1, output_dir="out/{name}/{run_id}")
    with run_in_thread(sim_settings(render_seconds=3600.0, time_scale=1.0,
                                    balance_credits=100_000)) as sim:
        args = ("run", manifest, "--base-url", sim.base_url, "--api-key-file",
                key_file(tmp_path, sim))
        with started(*args, "--run-id", "night-6", "--max-runtime", "30s", cwd=tmp_path,
                     until=" covers the estimated ") as child:
            next_night = run_cli(*args, "--run-id", "night-7", "--max-runtime", "0.5s", "--grace",
                                 "0.2s", cwd=tmp_path)
    assert next_night.returncode == 3, next_night.stderr
    assert (f"INFO out/nightly/night-6, an earlier start's folder, is in use by a running process "
            f"(process {child.pid} on ") in next_night.stderr
    assert "an earlier start's folder, still holds" not in next_night.stderr + next_night.stdout
    assert summary(tmp_path / "out" / "nightly" / "night-7")["unfinished_folders"] == []
