"""A video that cannot be written fails its job, never the run: the generation is kept, and a
later run downloads it once the folder takes writes again. A folder that refuses every write
(full, read-only) also stops submitting, since no further video could be kept."""

from __future__ import annotations

import errno
import json
import logging
import os
import shutil
import sqlite3
import subprocess
import sys
import threading
import urllib.request
from functools import partial
from pathlib import Path

import pytest
from enginekit import (
    PROMPTS,
    audit,
    invoke,
    invoke_run,
    journal_rows,
    results_lines,
    run,
    sim_settings,
    simulated_process,
    videos,
    wait_for_transitions,
    write_manifest,
)

from runner import files
from runner.batch import RUN_FILES, RunConfig, plan_for
from runner.control import Event, SystemClock
from runner.errors import FolderLost, StateError
from runner.plan import make_plan
from runner.results import collect
from runner.simulator import run_in_thread
from runner.state import Journal


def first_job(manifest: Path, out: Path) -> tuple[str, str]:
    """The key and file name of the plan's first job."""
    planned, _ = plan_for(RunConfig(manifest=manifest, out=out))
    return planned.jobs[0].key, planned.jobs[0].filename


def staged(path: Path, key: str) -> Path:
    """The partial name a job's file at `path` is written under (`files.Part`): hidden, marked
    with the job's short key."""
    return path.with_name(f".{path.name}.{key[:10]}.part")


@pytest.mark.parametrize("in_the_way", ["a file", "a link"])
def test_a_file_or_link_in_the_way_of_a_folder_gives_its_jobs_their_short_key_and_stays(
        tmp_path: Path, in_the_way: str) -> None:
    """Where a prompt's folder goes: the user's notes, or a symbolic link to a folder elsewhere,
    through which nothing is written. Its jobs take their short key."""
    manifest = write_manifest(tmp_path)  # two prompts, each a folder of four videos
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    _, filename = first_job(manifest, out)
    prompt = filename.split("/")[0]
    out.mkdir()
    elsewhere.mkdir()
    if in_the_way == "a file":
        (out / prompt).write_text("notes the user keeps here", encoding="utf-8")
    else:
        (out / prompt).symlink_to(elsewhere)
    with run_in_thread(sim_settings()) as sim:
        blocked = run(manifest, out, sim)
        books = audit(out, sim)
    assert blocked.outcome.exit_code == 0 and books["states"] == {"downloaded": 8}
    assert books["books"].creates_accepted == 8
    moved = [row for row in books["rows"] if row["file"].startswith(f"{prompt}_")]
    assert len(moved) == 4 and all(row["file"].startswith(f"{prompt}_{row['key'][:10]}/")
                                   for row in moved)
    assert list(elsewhere.iterdir()) == []
    if in_the_way == "a file":
        assert (out / prompt).read_text(encoding="utf-8") == "notes the user keeps here"
    else:
        assert (out / prompt).is_symlink()


def test_a_folder_replaced_by_a_link_during_the_run_is_never_written_through(tmp_path: Path) -> None:
    """The folder's directories are made once a run, but each file's way is looked at each time:
    `place` refuses a path through a link put in a prompt's folder's place after the folder was
    made, and a link below which a folder would be made."""
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    out.mkdir()
    elsewhere.mkdir()
    folder = files.Folder(out)
    assert folder.place("a/1.mp4") == str(out / "a" / "1.mp4") and (out / "a").is_dir()
    (out / "a").rename(out / "a.moved")
    (out / "a").symlink_to(elsewhere)
    (out / "b").symlink_to(elsewhere)
    for relative in ("a/2.mp4", "b/c/3.mp4"):
        with pytest.raises(OSError, match="a folder on its way is a symbolic link"):
            folder.place(relative)
    assert list(elsewhere.iterdir()) == []


def test_a_file_of_yours_at_a_videos_poster_or_sidecar_name_is_never_replaced(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path, prompts=PROMPTS[:1], repeat=1, styles={"vibe": ["none"]})
    out = tmp_path / "out"
    key, filename = first_job(manifest, out)
    mine = {out / filename.replace(".mp4", ".jpg"): b"a holiday photo",
            out / filename.replace(".mp4", ".json"): b'{"mine": 1}'}
    for path, content in mine.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    with run_in_thread(sim_settings()) as sim:
        report = run(manifest, out, sim)
    [row] = journal_rows(out)
    assert report.outcome.exit_code == 0 and row["file"] == filename.replace(".mp4", f"_{key[:10]}.mp4")
    assert all(path.read_bytes() == content for path, content in mine.items())


def test_a_link_at_a_files_staged_name_is_never_written_through(tmp_path: Path) -> None:
    """The partial names a video and its sidecar are written under are predictable (the plan
    prints the short key): a link someone put there is replaced, its target left alone."""
    manifest = write_manifest(tmp_path, prompts=PROMPTS[:1], repeat=1, styles={"vibe": ["none"]})
    out, victim = tmp_path / "out", tmp_path / "victim.txt"
    key, filename = first_job(manifest, out)
    victim.write_text("someone's data", encoding="utf-8")
    for suffix in (".mp4", ".json"):
        dest = out / filename.replace(".mp4", suffix)
        dest.parent.mkdir(parents=True, exist_ok=True)
        staged(dest, key).symlink_to(victim)
    with run_in_thread(sim_settings()) as sim:
        report = run(manifest, out, sim)
    video = out / filename
    assert report.outcome.exit_code == 0 and victim.read_text(encoding="utf-8") == "someone's data"
    assert not video.is_symlink() and video.read_bytes()[4:8] == b"ftyp"
    assert not video.with_suffix(".json").is_symlink()


def test_a_template_that_puts_a_folder_where_an_older_video_is_gives_the_new_job_its_key(
        tmp_path: Path) -> None:
    """output.filename edited so that the folder's own video (`p.mp4`, known to the journal)
    is on the way of a new job's file (`p.mp4/b.mp4`): the new job's video is written below
    the name with its short key, and the older video stays as it was."""
    prompts = [{"id": "p", "text": "A lake at dawn, mist on the water"}]
    first = write_manifest(tmp_path, prompts=prompts, repeat=1, styles={"sets": {"a": ["Warm"]}},
                           output={"filename": "{prompt}.mp4"})
    out = tmp_path / "out"
    with run_in_thread(sim_settings()) as sim:
        run(first, out, sim)
        video = (out / "p.mp4").read_bytes()
        edited = write_manifest(tmp_path, prompts=prompts, repeat=1,
                                styles={"sets": {"a": ["Warm"], "b": ["Cool"]}},
                                output={"filename": "{prompt}.mp4/{style_set}.mp4"})
        again = run(edited, out, sim)
        books = audit(out, sim)
    assert again.outcome.exit_code == 0 and books["states"] == {"downloaded": 2}
    assert books["books"].creates_accepted == 2
    (new,) = [row for row in books["rows"] if row["file"] != "p.mp4"]
    assert new["file"] == f"p.mp4_{new['key'][:10]}/b.mp4"
    assert (out / "p.mp4").read_bytes() == video


def fill_up(monkeypatch: pytest.MonkeyPatch, part: Path) -> None:
    """The disk full for the partial file `part`: every write to it fails with ENOSPC. The file
    system's refusal is raised where the runner writes the file, as no full file system can be
    made here without privileges (a link to /dev/full at the partial name is, rightly, never
    written through)."""
    write = files.Part.write

    def refused(self: files.Part, chunk: bytes) -> None:
        if self.path == str(part):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), self.path)
        write(self, chunk)
    monkeypatch.setattr(files.Part, "write", refused)


def test_a_full_disk_fails_the_download_and_stops_submitting(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    manifest = write_manifest(tmp_path, run={"concurrency": 1})
    out = tmp_path / "out"
    key, filename = first_job(manifest, out)
    video = out / filename
    part = staged(video, key)
    with run_in_thread(sim_settings()) as sim:
        with monkeypatch.context() as disk:
            fill_up(disk, part)
            full = run(manifest, out, sim)
        created = sim.books.creates_accepted
        rows = {row["key"]: row for row in journal_rows(out)}
        left = part.exists()  # the failed transfer's partial file is cleared away
        again = run(manifest, out, sim)
        books = audit(out, sim)
    assert full.outcome.exit_code == 4 and "output folder is unusable" in full.outcome.reason
    assert "No space left on device" in rows[key]["reason"] and rows[key]["error_kind"] == "download"
    assert not left and created <= 2  # the job in flight when the disk filled up, and nothing after it
    assert again.outcome.exit_code == 0 and books["states"] == {"downloaded": 8}
    assert books["books"].creates_accepted == 8


def test_a_folder_moved_during_the_run_is_never_made_anew_and_resumes_where_it_went(
        tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path, run={"concurrency": 2})
    out, moved = tmp_path / "out", tmp_path / "archived 2026"

    def move_at_the_first_submit(event: Event) -> None:
        if event.kind == "submitted" and out.exists():
            out.rename(moved)  # an archiving script, say, while the run goes on

    with run_in_thread(sim_settings()) as sim:
        with pytest.raises(StateError, match=f"{out} was moved to {moved} during the run, its "
                           f"journal with it: run again with --out '{moved}' to resume; this run "
                           r"paid for \d generations? \(\$"):
            run(manifest, out, sim, sink=move_at_the_first_submit)
        assert not out.exists()  # no videos, results or folders written where it was
        with Journal.open(moved, create=False) as journal:
            last = journal.run()
        resumed = run(manifest, moved, sim)
        books = audit(moved, sim)
    assert last is not None and last.exit_code == 4
    assert f"was moved to {moved} during the run" in (last.exit_reason or "")
    assert resumed.outcome.exit_code == 0 and books["states"] == {"downloaded": 8}
    assert books["books"].creates_accepted == 8


def test_a_folder_deleted_during_the_run_ends_it_with_what_the_run_paid_for(tmp_path: Path) -> None:
    """The folder's journal was the only record of the generations the run paid for: the error
    names them, their count and price, and says that the next run there pays for every job."""
    manifest = write_manifest(tmp_path, run={"concurrency": 2})
    out = tmp_path / "out"

    def delete_at_the_third_submit(event: Event) -> None:
        if event.kind == "submitted" and event.snapshot.in_flight >= 3 and out.exists():
            shutil.rmtree(out)  # a clean-up script, say, while the run goes on

    with run_in_thread(sim_settings()) as sim:
        with pytest.raises(FolderLost) as lost:
            run(manifest, out, sim, sink=delete_at_the_third_submit)
        billed = sorted(generation.id for generation in sim.books.generations)
    spent = round(0.27 * len(billed), 4)  # each job's price, as the create's answer names it
    assert not out.exists()
    assert lost.value.paid == {"generation_ids": billed, "count": len(billed), "usd": spent}
    assert len(billed) >= 3
    assert str(lost.value) == (
        f"{out} was deleted during the run (or moved to another disk, which copies it and deletes "
        f"it), its journal with it; this run paid for {len(billed)} generations (${spent:.2f}): "
        f"{', '.join(billed)}, which no folder holds now (their videos stay on the account: look "
        "them up by id); a run into the folder starts anew and pays for every job again")


def test_results_that_cannot_be_written_end_the_run_with_exit_4_in_its_record_too(
        tmp_path: Path) -> None:
    manifest, out = write_manifest(tmp_path), tmp_path / "out"
    (out / "errors.jsonl").mkdir(parents=True)  # in the way of a results file
    with run_in_thread(sim_settings()) as sim:
        with pytest.raises(StateError, match=f"{out}: cannot write the run's results"):
            run(manifest, out, sim)
    with Journal.open(out, create=False) as journal:
        last = journal.run()
    assert last is not None and last.exit_code == 4
    assert f"cannot write the run's results ({out / 'errors.jsonl'}): Is a directory" in (
        last.exit_reason or "")
    assert {row["state"] for row in journal_rows(out)} == {"downloaded"}
    assert not list(out.glob(".*.part"))  # the staged results are not left behind


def test_two_writers_of_one_file_at_once_both_put_it_in_place_whole(tmp_path: Path) -> None:
    """`hailuo-batch report OUT` while a run on OUT ends: both write report.html, and neither
    may fail or leave a file that mixes the two."""
    dest = tmp_path / "report.html"
    texts = {"a": "a" * 8_000_000, "b": "b" * 8_000_000}
    start = threading.Barrier(len(texts))
    failures: list[OSError] = []

    def write(text: str) -> None:
        for _ in range(20):
            start.wait()  # both writers of each round at once
            try:
                files.write_text(dest, text)
            except OSError as exc:
                failures.append(exc)

    writers = [threading.Thread(target=write, args=(text,)) for text in texts.values()]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join()
    assert failures == []
    assert dest.read_text(encoding="utf-8") in texts.values()
    assert os.listdir(tmp_path) == ["report.html"]  # no staged file left behind


WRITER = """
import sys
from pathlib import Path
from runner import files
with files.writing(Path(sys.argv[1])) as stream:
    stream.writelines(f"job {n}\\n" for n in range(100_000))
    stream.flush()
    print("half written", flush=True)
    sys.stdin.read()  # until it is killed
"""


def test_a_file_written_as_it_is_made_is_in_place_only_once_whole(tmp_path: Path) -> None:
    """results.jsonl, results.csv and report.html are written as a run's end reads its jobs
    (`files.writing`): a writer killed half way, or broken off by an error, leaves the file the
    last run wrote, never half of a new one."""
    dest = tmp_path / "results.jsonl"
    dest.write_text("the last run's\n", encoding="utf-8")
    with subprocess.Popen([sys.executable, "-c", WRITER, str(dest)], stdin=subprocess.PIPE,
                          stdout=subprocess.PIPE, text=True) as writer:
        assert writer.stdout is not None and writer.stdout.readline() == "half written\n"
        writer.kill()
    (staged,) = [path for path in tmp_path.iterdir() if path != dest]
    assert staged.name.startswith(f".results.jsonl.{writer.pid}-") and staged.stat().st_size > 0
    assert dest.read_text(encoding="utf-8") == "the last run's\n"
    staged.unlink()
    with pytest.raises(sqlite3.OperationalError):
        with files.writing(dest) as stream:
            stream.write("job 0\n")
            raise sqlite3.OperationalError("database or disk is full")  # the journal's read failed
    assert os.listdir(tmp_path) == ["results.jsonl"]
    assert dest.read_text(encoding="utf-8") == "the last run's\n"


def test_a_writer_removes_what_dead_writers_of_its_file_left_staged_and_nothing_else(
        tmp_path: Path) -> None:
    ended = subprocess.Popen([sys.executable, "-c", ""])
    ended.wait()  # its number now names no process: a writer killed while writing
    dead, alive = ended.pid, os.getpid()
    orphans = [f".report.html.{dead}-0123abcd.part", f".report.html.{dead}-ffffffff.part"]
    kept = [f".report.html.{alive}-0123abcd.part",  # a writer at work
            f".results.csv.{dead}-0123abcd.part", f"report.html.{dead}-0123abcd.part",
            f".report.html.{dead}-0123ABCD.part", f".report.html.{dead}-0123abc.part",
            f".report.html.{dead}.part", f".report.html.0{dead}-0123abcd.part",
            f".report.html.{dead}-0123abcd.part.bak", f"x.report.html.{dead}-0123abcd.part",
            ".report.html.0123456789.part"]  # a download's, named by its job
    for name in orphans + kept:
        (tmp_path / name).write_text("half a page", encoding="utf-8")
        stale = os.stat(tmp_path / name).st_mtime - files.ORPHAN_SECONDS - 1
        os.utime(tmp_path / name, (stale, stale))
    recent = f".report.html.{dead}-00000000.part"  # perhaps another machine's writer, at work
    (tmp_path / recent).write_text("half a page", encoding="utf-8")
    kept.append(recent)
    files.write_text(tmp_path / "report.html", "the page")
    assert sorted(os.listdir(tmp_path)) == sorted(["report.html", *kept])


def test_a_video_in_place_is_replaced_only_by_the_job_its_sidecar_names(tmp_path: Path) -> None:
    """The journal may not know a video its job placed just before a crash; the sidecar, written
    before the video, tells that job's own file from anyone else's."""
    (tmp_path / "rain").mkdir()
    (tmp_path / "rain" / "none_1.mp4").write_bytes(b"a video")
    (tmp_path / "rain" / "none_1.json").write_text('{"key": "aaaaaaaaaaaa"}', encoding="utf-8")
    folder = files.Folder(tmp_path)
    assert folder.targets("rain/none_1.mp4", "aaaaaaaaaaaa", lambda _: None).video == "rain/none_1.mp4"
    assert folder.targets("rain/none_1.mp4", "bbbbbbbbbbbb", lambda _: None).video == \
        "rain/none_1_bbbbbbbbbb.mp4"
    (tmp_path / "rain" / "none_1.json").unlink()
    assert folder.targets("rain/none_1.mp4", "aaaaaaaaaaaa", lambda _: None).video == \
        "rain/none_1_aaaaaaaaaa.mp4"


def test_a_folder_on_the_way_that_is_another_jobs_video_takes_the_jobs_key(tmp_path: Path) -> None:
    """A video the journal knows keeps its name while it is gone from the folder (to be
    fetched again): no other job's folder takes it."""
    folder = files.Folder(tmp_path)
    owners = {"p.mp4": "a" * 12}
    assert folder.targets("p.mp4/b.mp4", "b" * 12, owners.get).video == "p.mp4_bbbbbbbbbb/b.mp4"
    assert folder.targets("q.mp4/b.mp4", "b" * 12, owners.get).video == "q.mp4/b.mp4"


def test_a_job_never_takes_the_name_of_one_of_the_runs_own_files(tmp_path: Path) -> None:
    """Prompt ids that are the run's own file names, as the folders of their videos: each such
    folder takes its job's short key, and the run's files stay files, run after run."""
    names = ["summary.json", "report.html", "journal.sqlite"]
    manifest = write_manifest(tmp_path, repeat=1, styles={}, prompts=[
        {"id": name, "text": f"A lake at dawn, seen from {name}"} for name in names])
    out = tmp_path / "out"
    with run_in_thread(sim_settings()) as sim:
        first = run(manifest, out, sim)
        again = run(manifest, out, sim)
        books = audit(out, sim)
    assert first.outcome.exit_code == again.outcome.exit_code == 0
    assert books["states"] == {"downloaded": 3} and books["books"].creates_accepted == 3
    assert {row["file"] for row in books["rows"]} == {
        f"{json.loads(row['axes'])['prompt']}_{row['key'][:10]}/none_1.mp4"
        for row in books["rows"]}
    kept = {path.name for path in out.iterdir() if path.is_file()}
    assert set(names) <= kept <= RUN_FILES


def test_the_runs_own_names_are_kept_at_the_top_of_the_folder_in_any_case(tmp_path: Path) -> None:
    """A folder that ignores case (macOS) would take `Report.HTML` for `report.html`."""
    targets = partial(files.Folder(tmp_path, reserved=RUN_FILES).targets, key="a" * 12,
                      owner=lambda _: None)
    assert targets("Report.HTML/1.mp4").video == "Report.HTML_aaaaaaaaaa/1.mp4"
    assert targets("SUMMARY.mp4").sidecar == "SUMMARY_aaaaaaaaaa.json"
    assert targets("rain/summary.mp4").sidecar == "rain/summary.json"  # below the top: no clash


def test_a_simulated_run_whose_folder_is_moved_leaves_nothing_where_it_was(tmp_path: Path) -> None:
    manifest, out = write_manifest(tmp_path), tmp_path / "out"
    running = simulated_process(manifest, "out", cwd=tmp_path)
    assert wait_for_transitions(running, out, 2), running.communicate()
    out.rename(tmp_path / "archived")
    _, stderr = running.communicate(timeout=60)
    assert running.returncode == 4, stderr
    assert "download failed: out was moved or deleted during the run" in stderr  # as written
    assert not out.exists()  # not even the simulated account's state file


def test_videos_gone_from_the_folder_are_fetched_again_when_asked_and_never_paid_for_again(
        tmp_path: Path, hailuo_log: pytest.LogCaptureFixture) -> None:
    manifest, out = write_manifest(tmp_path), tmp_path / "out"
    with run_in_thread(sim_settings()) as sim:
        run(manifest, out, sim)
        before = {row["key"]: row for row in journal_rows(out)}
        clips = videos(out)
        gone = sorted(clips)[:5]  # a whole prompt's folder, and one more video
        shutil.rmtree(gone[0].parent)
        gone[4].unlink()
        hailuo_log.clear()
        left = run(manifest, out, sim)
        warned = [r.getMessage() for r in hailuo_log.records if r.levelno == logging.WARNING]
        fetched = run(manifest, out, sim, fetch_missing=True)
        audit(out, sim)
        assert sim.books.creates_accepted == 8
    assert left.outcome.exit_code == 0
    assert left.summary["missing_videos"] == [str(p.relative_to(out)) for p in gone]
    assert set(warned) == {f"{out}: 5 downloaded videos gone from the folder (deleted or moved by "
                           "hand): run with --fetch-missing to download them again from their "
                           "generations (nothing is paid again)"}
    assert fetched.outcome.exit_code == 0 and fetched.summary["missing_videos"] == []
    assert videos(out) == clips
    assert fetched.summary["spent_usd"] == pytest.approx(8 * 0.27)
    after = {row["key"]: row for row in journal_rows(out)}
    kept = ("generation_id", "file", "completed_at", "render_seconds", "cost_usd")
    assert all([after[key][c] for c in kept] == [row[c] for c in kept] for key, row in before.items())


def test_a_video_whose_generation_was_deleted_fails_with_the_reason(tmp_path: Path) -> None:
    manifest, out = write_manifest(tmp_path, repeat=1), tmp_path / "out"
    with run_in_thread(sim_settings()) as sim:
        run(manifest, out, sim)
        (row, *_) = journal_rows(out)
        (out / row["file"]).unlink()
        request = urllib.request.Request(f"{sim.base_url}/v1/generations/{row['generation_id']}",
                                         method="DELETE",
                                         headers={"authorization": f"Bearer {sim.api_key}"})
        urllib.request.urlopen(request, timeout=10).close()
        fetched = run(manifest, out, sim, fetch_missing=True)
        assert sim.books.creates_accepted == 4
    (failure,) = results_lines(out, "errors.jsonl")
    assert fetched.outcome.exit_code == 1 and failure["key"] == row["key"]
    assert failure["reason"] == f"generation {row['generation_id']} was not found (deleted?)"


def test_a_fetch_the_disk_refuses_ends_with_4_even_with_no_job_left(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    manifest, out = write_manifest(tmp_path, repeat=1), tmp_path / "out"
    key, filename = first_job(manifest, out)
    video = out / filename
    with run_in_thread(sim_settings()) as sim:
        run(manifest, out, sim)
        video.unlink()
        fill_up(monkeypatch, staged(video, key))
        fetched = run(manifest, out, sim, fetch_missing=True)
    assert fetched.outcome.exit_code == 4 and "output folder is unusable" in fetched.outcome.reason
    assert fetched.summary["counts"] == {"downloaded": 3, "failed": 1}


def test_a_fetch_puts_videos_back_where_they_were_for_jobs_the_manifest_has_or_no_longer_has(
        tmp_path: Path) -> None:
    out = tmp_path / "out"
    with run_in_thread(sim_settings()) as sim:
        run(write_manifest(tmp_path), out, sim)
        rows = sorted(journal_rows(out), key=lambda row: row["idx"])
        contents = {row["file"]: (out / row["file"]).read_bytes() for row in rows}
        renamed = write_manifest(tmp_path, repeat=1, output={"dir": "out/{name}",
                                                             "filename": "{vibe}/{prompt}_{n}.mp4"})
        planned = {job.key for job in plan_for(RunConfig(manifest=renamed, out=out))[0].jobs}
        kept = next(row["file"] for row in rows if row["key"] in planned)
        dropped = next(row["file"] for row in rows if row["key"] not in planned)
        (out / kept).unlink()
        (out / kept).mkdir()  # not a video any more
        (out / dropped).unlink()
        assert collect(out).summary["missing_videos"] == [kept, dropped]
        (out / kept).rmdir()
        fetched = run(renamed, out, sim, fetch_missing=True)
        assert sim.books.creates_accepted == 8
    assert fetched.outcome.exit_code == 0 and fetched.summary["missing_videos"] == []
    assert {row["file"]: (out / row["file"]).read_bytes() for row in journal_rows(out)} == contents


class Sleeps(SystemClock):
    """The system clock, noting every wait the engine asks of it."""

    def __init__(self) -> None:
        self.asked: list[float] = []

    async def sleep(self, seconds: float) -> None:
        self.asked.append(seconds)
        await super().sleep(seconds)


def test_videos_fetched_again_are_polled_at_once(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with run_in_thread(sim_settings()) as sim:
        run(write_manifest(tmp_path), out, sim)
        for video in sorted(out.rglob("*.mp4"))[:4]:
            video.unlink()
        manifest = write_manifest(tmp_path, run={"concurrency": 1, "poll_interval": "10s"})
        clock = Sleeps()
        fetched = run(manifest, out, sim, clock=clock, fetch_missing=True)
        assert sim.books.creates_accepted == 8
    assert fetched.outcome.exit_code == 0 and fetched.summary["missing_videos"] == []
    assert max(clock.asked, default=0.0) == 0.0  # a render known to be over is never waited for


# A name under the 3,900 bytes a manifest may give (47 folders of 80 bytes: 3,812 bytes), whose
# sidecar is staged as `.x.json.<short key>.part`: 3,830 bytes below the output folder.
DEEP = {"vars": {"v": "b" * 80}, "output": {"filename": "/".join(["{v}"] * 47) + "/x.mp4"}}
DEEP_STAGED = 3830


def folder_of_length(parent: Path, length: int) -> Path:
    """A folder below `parent` (not made) whose absolute path is `length` bytes long."""
    folder = Path(os.path.abspath(parent))
    while length - len(str(folder)) > 201:
        folder /= "d" * 150
    return folder / ("d" * (length - len(str(folder)) - 1))


def test_names_too_long_for_the_output_folder_are_refused_before_anything_is_paid(
        tmp_path: Path) -> None:
    """Names the manifest may give, below an output folder whose path leaves too little room:
    refused by the run, its dry run and `plan --out` alike, before anything is sent or made."""
    manifest = write_manifest(tmp_path, prompts=PROMPTS[:1], repeat=1, styles={}, **DEEP)
    fits = folder_of_length(tmp_path, 4095 - 1 - DEEP_STAGED)  # the longest path Linux takes
    out = folder_of_length(tmp_path, len(str(fits)) + 1)
    key, _ = first_job(manifest, tmp_path / "out")
    with run_in_thread(sim_settings()) as sim:
        refused = [invoke_run(manifest, out, sim),
                   invoke("run", str(manifest), "--out", str(out), "--dry-run"),
                   invoke("plan", str(manifest), "--out", str(out))]
        created = sim.books.creates_accepted
        kept = run(manifest, fits, sim)
    shown = f"{str(out)[:40]}...{str(out)[-40:]}"
    assert [(code, stdout) for code, stdout, _ in refused] == [(2, "")] * 3
    assert {stderr for _, _, stderr in refused} == {
        f"error: the files of 1 job would have paths too long for the output folder {shown}: "
        f"job {key[:10]}'s video {'b' * 40}...{'b' * 34}/x.mp4 is staged there as "
        f".x.json.{key[:10]}.part, a path of 4,096 bytes, 1 more than the 4,095 a path may "
        "have: use a shorter --out or output.filename\n"}
    assert created == 0 and not out.exists()
    assert kept.outcome.exit_code == 0 and len(videos(fits)) == 1


def test_a_name_the_folder_refuses_as_too_long_fails_for_good_and_is_fetched_once_shorter(
        tmp_path: Path) -> None:
    """A name that fits as planned, lengthened by the short key a file in the way of its folder
    adds: its download fails for good with what to do, and a run with --retry-failed fetches
    the video, paid for once, when the name fits again."""
    manifest = write_manifest(tmp_path, prompts=PROMPTS[:1], repeat=1, styles={}, **DEEP)
    out = folder_of_length(tmp_path, 4095 - 1 - DEEP_STAGED)
    out.mkdir(parents=True)
    (out / ("b" * 80)).write_text("in the way", encoding="utf-8")
    with run_in_thread(sim_settings()) as sim:
        failed = run(manifest, out, sim)
        [row] = journal_rows(out)
        again = run(manifest, out, sim)
        (out / ("b" * 80)).unlink()
        retried = run(manifest, out, sim, retry_failed=True)
        books = audit(out, sim)
    assert failed.outcome.exit_code == again.outcome.exit_code == 1
    assert row["error_kind"] == "name" and row["reason"].endswith(
        ": File name too long (use a shorter --out or output.filename, then run with "
        "--retry-failed: the video is fetched, not paid for again)")
    assert failed.summary["failed_for_retry"] == 1
    assert retried.outcome.exit_code == 0 and books["states"] == {"downloaded": 1}
    assert books["books"].creates_accepted == 1


def test_names_too_long_for_the_folders_file_system_are_refused_before_anything_is_paid(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A file system that takes names of up to 143 bytes (eCryptfs, an encrypted home folder):
    two samples of one name, told apart by their short keys, are staged as names of 153 bytes."""
    taken = os.pathconf
    monkeypatch.setattr(os, "pathconf", lambda path, name: 143 if name == "PC_NAME_MAX"
                        else taken(path, name))
    manifest = write_manifest(tmp_path, prompts=PROMPTS[:1], styles={},
                              output={"filename": "c" * 120 + ".mp4"})
    key, out = make_plan(manifest).jobs[0].key, tmp_path / "out"  # plan_for would refuse it
    with run_in_thread(sim_settings()) as sim:
        code, _, stderr = invoke_run(manifest, out, sim)
        created = sim.books.creates_accepted
    assert code == 2 and created == 0 and not out.exists()
    assert stderr == (
        f"error: the files of 2 jobs would have names too long for the output folder {out}: job "
        f"{key[:10]}'s video {'c' * 40}...{'c' * 25}_{key[:10]}.mp4 is staged with a part of 153 "
        f"bytes (.{'c' * 39}...{'c' * 8}_{key[:10]}.json.{key[:10]}.part), 10 more than the 143 a "
        "name may have there: use a shorter output.filename\n")


def test_windows_device_names_get_a_mark_in_new_folders_and_stay_in_older_ones(
        tmp_path: Path) -> None:
    """`CON`, `nul.txt`, `COM¹`..., in any case and with any extension, cannot be made on Windows,
    nor taken from a zip of the folder there: their stem gets a `_`. A folder an earlier version
    filled keeps the names its journal recorded, a video fetched again included."""
    devices = ["CON", "nul.txt", "Aux", "com1", "LPT9", "COM¹", "prn", "lpt0"]
    manifest = write_manifest(tmp_path, prompts=[{"id": "p", "text": "A lake at dawn, {v}"}],
                              repeat=1, styles={}, vars={"v": [*devices, "console", "com10"]},
                              output={"filename": "{v}/{v}.mp4"})
    out = tmp_path / "out"
    marked = {"CON_", "nul_.txt", "Aux_", "com1_", "LPT9_", "COM¹_", "prn_", "lpt0_"}
    with run_in_thread(sim_settings()) as sim:
        ran = run(manifest, out, sim)
        rows = journal_rows(out)
        assert ran.outcome.exit_code == 0 and {row["file"] for row in rows} == {
            *(f"{name}/{name}.mp4" for name in marked), "console/console.mp4", "com10/com10.mp4"}
        con = next(row for row in rows if row["file"] == "CON_/CON_.mp4")
        (out / "CON_").rename(out / "CON")  # as an earlier version named it
        for suffix in ("mp4", "jpg", "json"):
            (out / "CON" / f"CON_.{suffix}").rename(out / "CON" / f"CON.{suffix}")
        conn = sqlite3.connect(out / "journal.sqlite")
        with conn:
            conn.execute("UPDATE jobs SET file = 'CON/CON.mp4', poster = 'CON/CON.jpg', "
                         "sidecar = 'CON/CON.json' WHERE key = ?", (con["key"],))
        conn.close()
        video = (out / "CON" / "CON.mp4").read_bytes()
        (out / "CON" / "CON.mp4").unlink()
        fetched = run(manifest, out, sim, fetch_missing=True)
        books = audit(out, sim)
    assert fetched.outcome.exit_code == 0 and books["books"].creates_accepted == 10
    assert (out / "CON" / "CON.mp4").read_bytes() == video and not (out / "CON_").exists()
    assert "CON/CON.mp4" in {row["file"] for row in books["rows"]}
