"""A folder below the output folder's top that refuses the run's files (its permissions) fails its
own jobs for now and the run goes on with the others: a job not yet created is not created (nothing
is paid for a video that could not be kept), a paid one keeps its generation, and the next run
takes both up by itself once the folder is writable. The top refusing them stops the run."""

from __future__ import annotations

import errno
import os
import pwd
import subprocess
import sys
from pathlib import Path

import pytest
from enginekit import audit, journal_rows, run, sim_settings, write_manifest

from runner import files
from runner.simulator import run_in_thread

USER = pwd.getpwuid(os.geteuid()).pw_name
# root writes anywhere: the run is made without the powers that let it, as any other user runs
POWERLESS = (["setpriv", "--inh-caps=-dac_override,-dac_read_search,-fowner",
              "--bounding-set=-dac_override,-dac_read_search,-fowner"] if os.geteuid() == 0 else [])


def folders(out: Path) -> list[Path]:
    """The prompts' folders of a run of `write_manifest`, in plan order."""
    return sorted({(out / row["file"]).parent for row in journal_rows(out)})


def test_a_read_only_prompt_folder_fails_its_new_jobs_unsent_and_the_others_run(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with run_in_thread(sim_settings()) as sim:
        run(write_manifest(tmp_path, repeat=1), out, sim)
        refusing, taking = folders(out)
        refusing.chmod(0o555)
        try:
            done = subprocess.run([*POWERLESS, sys.executable, "-m", "runner", "run",
                                   str(write_manifest(tmp_path, repeat=3)), "--out", str(out),
                                   "--base-url", sim.base_url, "--quiet"],
                                  env={**os.environ, "LEONARDO_API_KEY": sim.api_key},
                                  capture_output=True, text=True, check=False)
            created = sim.books.creates_accepted
            after = {row["key"]: row for row in journal_rows(out)}
        finally:
            refusing.chmod(0o755)
        again = run(write_manifest(tmp_path, repeat=3), out, sim)
        books = audit(out, sim)
    hint = f"{refusing} refuses new files (Permission denied): let user {USER} write to it"
    assert done.returncode == 3, done.stderr
    assert done.stdout.startswith("4 jobs failed for now (see errors.jsonl): the next run takes them "
                                  f"up again by itself; {hint}: 8/12 downloaded")
    assert created == 4 + 4  # the first run's, and the new jobs of the folder that takes files
    failed = [row for row in after.values() if row["state"] == "failed"]
    assert len(failed) == 4 and all(row["error_kind"] == "folder" and not row["generation_id"]
                                    and row["reason"] == f"not sent: {hint}; the next run sends the job"
                                    for row in failed)
    assert {(out / row["file"]).parent for row in after.values() if row["state"] == "downloaded"
            and row["run_id"] == 2} == {taking}
    assert again.outcome.exit_code == 0 and books["states"] == {"downloaded": 12}
    assert books["books"].creates_accepted == 12


def test_a_folder_that_refuses_a_paid_video_fails_its_job_and_the_next_run_fetches_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The prompt's folder takes files when its job is created and refuses them when the video
    comes (made read-only during the render): the refusal is raised where the video is written,
    as a process whose folder changes under it mid-render cannot be timed here."""
    manifest, out = write_manifest(tmp_path, repeat=1), tmp_path / "out"
    with run_in_thread(sim_settings()) as sim:
        run(manifest, out, sim)
        refusing = folders(out)[0]
        opening = files.Part.open

        def refused(part: files.Part) -> files.Part:
            if Path(part.path).parent == refusing:
                raise OSError(errno.EACCES, os.strerror(errno.EACCES), part.path)
            return opening(part)
        with monkeypatch.context() as denied:
            denied.setattr(files.Part, "open", refused)
            first = run(write_manifest(tmp_path, repeat=2), out, sim)
        rows = journal_rows(out)
        again = run(write_manifest(tmp_path, repeat=2), out, sim)
        books = audit(out, sim)
    hint = f"{refusing} refuses new files (Permission denied): let user {USER} write to it"
    failed = [row for row in rows if row["state"] == "failed"]
    assert first.outcome.exit_code == 3 and hint in first.outcome.reason
    assert len(failed) == 2 and all(row["error_kind"] == "folder" and row["generation_id"]
                                    and row["reason"] == f"download failed: {hint}; the next run "
                                                         "fetches the video, not paid for again"
                                    for row in failed)
    assert sum(row["state"] == "downloaded" for row in rows) == 6  # the run went on with the others
    assert again.outcome.exit_code == 0 and books["states"] == {"downloaded": 8}
    assert books["books"].creates_accepted == 8


@pytest.mark.parametrize("read_only", ["its parent", "itself"])
def test_an_output_folder_that_cannot_be_written_names_what_refused(tmp_path: Path,
                                                                    read_only: str) -> None:
    parent = tmp_path / "videos"
    out = parent / "out"
    refused = out if read_only == "its parent" else out / ".hailuo.lock"
    out.mkdir(parents=True)
    if read_only == "its parent":
        out.rmdir()
    (parent if read_only == "its parent" else out).chmod(0o555)
    try:
        done = subprocess.run([*POWERLESS, sys.executable, "-m", "runner", "run",
                               str(write_manifest(tmp_path)), "--out", str(out), "--base-url",
                               "http://127.0.0.1:9/api/rest"],
                              env={**os.environ, "LEONARDO_API_KEY": "0c3d2b8e-51f4-4a43-9bd6"},
                              capture_output=True, text=True, check=False)
    finally:
        (parent if read_only == "its parent" else out).chmod(0o755)
    verb = "make" if read_only == "its parent" else "write"
    assert done.returncode == 4, done.stderr
    assert done.stderr == (f"error: output folder {out} is unusable: cannot {verb} {refused}: "
                           "Permission denied\n")
