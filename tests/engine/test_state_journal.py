"""The journal: transitions, money, plan sync, the upgrade of a file of an older version, the
commands that only read it, and a jobs table a hand edit damaged."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from enginekit import invoke, invoke_run, job, sim_settings, step, write_manifest

from runner.errors import StateError
from runner.plan import Upload
from runner.results import compute, write_results
from runner.simulator import run_in_thread
from runner.state import JOURNAL_NAME, MIGRATIONS, Journal


def test_a_job_walks_from_pending_to_downloaded_with_one_log_line_per_step(tmp_path: Path) -> None:
    with Journal.open(tmp_path) as journal:
        run = journal.begin_run(name="n", manifest="m.yaml", settings={}, at=1.0)
        journal.sync_plan([job(1)])
        key = job(1).key
        row = step(journal, key, "submitting", reserved_usd=0.27, run_id=run, at=2.0)
        assert (row.state, row.reserved_usd, row.attempts, row.create_sent_at) == \
            ("submitting", 0.27, 1, 2.0)
        assert compute(journal, tmp_path).summary["reserved_usd"] == 0.27
        step(journal, key, "submitted", run_id=run, at=3.0, generation_id="g1", cost_usd=0.3,
             cost_credits=None)
        step(journal, key, "complete", run_id=run, at=4.0, video_url="http://v", poster_url=None,
             render_seconds=1.0)
        row = step(journal, key, "downloaded", run_id=run, at=5.0, file="p/1.mp4", poster=None,
                   sidecar="p/1.json")
        assert (row.spent_usd, row.reserved_usd, row.run_id) == (0.3, 0.0, run)
        steps = journal.conn.execute("SELECT from_state, to_state FROM transitions").fetchall()
    assert steps == [("pending", "submitting"), ("submitting", "submitted"),
                     ("submitted", "complete"), ("complete", "downloaded")]


def test_a_transition_from_the_wrong_state_is_refused(tmp_path: Path) -> None:
    with Journal.open(tmp_path) as journal:
        run = journal.begin_run(name="n", manifest="m.yaml", settings={}, at=1.0)
        journal.sync_plan([job(1)])
        with pytest.raises(StateError, match="cannot go to submitted"):
            step(journal, job(1).key, "submitted", run_id=run, at=2.0, generation_id="g",
                 cost_usd=None, cost_credits=None)
        assert journal.job(job(1).key).state == "pending"


def test_retried_creates_keep_the_first_send_time_count_attempts_and_each_sending(
        tmp_path: Path) -> None:
    """Every sending of the job's current attempt is kept, on the API's clock when it was
    known; a create known not to have gone through ends the attempt."""
    with Journal.open(tmp_path) as journal:
        run = journal.begin_run(name="n", manifest="m.yaml", settings={}, at=1.0)
        journal.sync_plan([job(1)])
        step(journal, job(1).key, "submitting", reserved_usd=0.27, run_id=run, at=2.0, api_at=62.0)
        row = step(journal, job(1).key, "submitting", reserved_usd=0.27, run_id=run, at=5.0)
        assert (row.create_sent_at, row.attempts) == (2.0, 2)
        assert journal.sendings(job(1).key) == [(2.0, 62.0), (5.0, None)]
        step(journal, job(1).key, "unsent", run_id=run, at=6.0, reason="429")
        assert journal.job(job(1).key).reserved_usd == 0
        step(journal, job(1).key, "submitting", reserved_usd=0.27, run_id=run, at=7.0)
        assert journal.sendings(job(1).key) == [(7.0, None)]


def test_a_reader_s_snapshot_sees_the_journal_as_it_was_whatever_a_run_writes_meanwhile(
        tmp_path: Path) -> None:
    with Journal.open(tmp_path) as writer:
        run = writer.begin_run(name="n", manifest="m.yaml", settings={}, at=1.0)
        writer.sync_plan([job(1), job(2)])
        with Journal.open(tmp_path, create=False) as reader:
            with reader.snapshot():
                before = reader.counts()
                step(writer, job(1).key, "failed", run_id=run, at=2.0, reason="x", kind="render")
                during = reader.counts(), [row.key for row in reader.reported("failed")]
            after = reader.counts()
    assert before == during[0] == {"pending": 2} and during[1] == []
    assert after == {"pending": 1, "failed": 1}


def test_sync_keeps_state_and_reports_only_what_matters(tmp_path: Path) -> None:
    with Journal.open(tmp_path) as journal:
        run = journal.begin_run(name="n", manifest="m.yaml", settings={}, at=1.0)
        journal.sync_plan([job(1), job(2), job(3)])
        step(journal, job(1).key, "submitting", reserved_usd=0.27, run_id=run, at=2.0)
        journal.sync_plan([job(2, prompt="moved"), job(4)])
        assert journal.job(job(1).key).state == "submitting"
        reported = [row.key for row in journal.reported()]
        assert reported == [job(2).key, job(4).key, job(1).key]  # 3 was never sent: gone
        assert journal.counts() == {"pending": 2, "submitting": 1}


def test_an_old_journal_is_upgraded_in_place_with_its_jobs(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / JOURNAL_NAME)
    conn.executescript(MIGRATIONS[0] + "; PRAGMA user_version = 1;")
    conn.execute("INSERT INTO jobs (key, idx, planned, state, prompt, axes, styles, request, "
                 "filename, estimated_cost, generation_id) VALUES ('k', 0, 1, 'submitted', 'p', "
                 "'{}', '[]', '{}', 'a.mp4', 0.27, 'g1')")
    conn.execute("INSERT INTO uploads VALUES ('f00d', 'png', 'image-1', 1.0)")
    conn.execute("INSERT INTO runs (name, manifest, settings, started_at) VALUES ('n', 'm.yaml', "
                 "'{}', 1.0)")
    conn.executemany("INSERT INTO transitions (job_key, run_id, at, from_state, to_state) "
                     "VALUES ('k', 1, ?, ?, ?)", [(1.5, "pending", "submitting"),
                                                  (2.5, "submitting", "submitted")])
    conn.commit()
    conn.close()
    with Journal.open(tmp_path) as journal:
        version = journal.conn.execute("PRAGMA user_version").fetchone()[0]
        row = journal.job("k")
        kept = journal.conn.execute("SELECT api, account, sha256, image_id FROM uploads").fetchall()
        found = journal.upload_id("f00d", api="https://cloud.leonardo.ai/api/rest", account="u1")
        sent = journal.sendings("k")
        run = journal.run()
        plan = journal.conn.execute("EXPLAIN QUERY PLAN SELECT at FROM transitions WHERE "
                                    "job_key = 'k' AND to_state = 'submitting'").fetchall()
    assert version == len(MIGRATIONS) == 9
    assert run is not None and run.skipped == {}  # its plan's skipped cells never recorded: none
    assert sent == [(1.5, None)] and "transitions_sent" in str(plan)
    assert (row.state, row.generation_id, row.poster, row.error_kind) == ("submitted", "g1", None, None)
    # The old id names no API: kept, but never given to a run, which uploads the frame again.
    assert kept == [("", "", "f00d", "image-1")] and found is None


def test_an_upload_id_is_kept_for_the_api_and_account_it_was_uploaded_to(tmp_path: Path) -> None:
    upload = Upload(tmp_path / "frame.png", "f00d", "png")
    with Journal.open(tmp_path) as journal:
        journal.record_upload(upload, "image-a", api="http://127.0.0.1:1/api", account="u1", at=1.0)
        journal.record_upload(upload, "image-b", api="http://127.0.0.1:2/api", account="u1", at=2.0)
        assert journal.upload_id("f00d", api="http://127.0.0.1:1/api", account="u1") == "image-a"
        assert journal.upload_id("f00d", api="http://127.0.0.1:2/api", account="u1") == "image-b"
        assert journal.upload_id("f00d", api="http://127.0.0.1:1/api", account="u2") is None


def test_a_journal_from_a_newer_runner_is_refused(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / JOURNAL_NAME)
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    with pytest.raises(StateError, match="upgrade hailuo-batch"):
        Journal.open(tmp_path)


def test_retry_failed_polls_again_what_was_created_and_resubmits_the_rest(tmp_path: Path) -> None:
    with Journal.open(tmp_path) as journal:
        run = journal.begin_run(name="n", manifest="m.yaml", settings={}, at=1.0)
        journal.sync_plan([job(1), job(2)])
        step(journal, job(1).key, "failed", run_id=run, at=2.0, reason="refused", kind="invalid")
        step(journal, job(2).key, "submitting", reserved_usd=0.27, run_id=run, at=2.0)
        step(journal, job(2).key, "submitted", run_id=run, at=3.0, generation_id="g", cost_usd=None,
             cost_credits=None)
        step(journal, job(2).key, "failed", run_id=run, at=4.0, reason="timed out", kind="timeout")
        assert journal.retry_failed(run_id=run, at=5.0) == 2
        assert (journal.job(job(1).key).state, journal.job(job(2).key).state) == \
            ("pending", "submitted")


def test_a_failed_render_retried_is_created_anew_and_its_cost_kept(tmp_path: Path) -> None:
    """The FAILED generation stays the job's until a new one is booked, or the job fails anew:
    then it is given up, its cost kept."""
    with Journal.open(tmp_path) as journal:
        run = journal.begin_run(name="n", manifest="m.yaml", settings={}, at=1.0)
        journal.sync_plan([job(1), job(2)])
        for number in (1, 2):
            step(journal, job(number).key, "submitting", reserved_usd=0.27, run_id=run, at=2.0)
            step(journal, job(number).key, "submitted", run_id=run, at=3.0,
                 generation_id=f"dead{number}", cost_usd=0.3, cost_credits=None)
            step(journal, job(number).key, "failed", run_id=run, at=4.0,
                 reason="the generation FAILED", kind="render")
        assert journal.retry_failed(run_id=run, at=5.0) == 2
        row = journal.job(job(1).key)
        assert (row.state, row.generation_id, row.spent_usd) == ("pending", "dead1", 0.3)
        assert journal.claimed(["dead1", "other"]) == {"dead1"}
        step(journal, job(1).key, "submitting", reserved_usd=0.27, run_id=run, at=6.0)
        step(journal, job(1).key, "submitted", run_id=run, at=7.0, generation_id="new", cost_usd=0.25,
             cost_credits=None)
        step(journal, job(2).key, "submitting", reserved_usd=0.27, run_id=run, at=6.0)
        failed = step(journal, job(2).key, "failed", run_id=run, at=7.0,
                      reason="no create went through in 30 s", kind="timeout")
        assert journal.job(job(1).key).spent_usd == pytest.approx(0.55)
        assert (failed.generation_id, failed.spent_usd, failed.polled_again) == (None, 0.3, False)
        assert journal.claimed(["dead1", "dead2"]) == {"dead1", "dead2"}
        assert compute(journal, tmp_path).summary["spent_usd"] == pytest.approx(0.85)


def test_a_write_the_file_refuses_is_a_state_error_and_leaves_nothing_half_written(
        tmp_path: Path) -> None:
    with Journal.open(tmp_path) as journal:
        journal.sync_plan([job(1)])
    conn = sqlite3.connect(f"file:{tmp_path / JOURNAL_NAME}?mode=ro", uri=True, isolation_level=None)
    refused = Journal(conn, tmp_path)
    with pytest.raises(StateError, match="cannot write the journal: attempt to write a readonly"):
        step(refused, job(1).key, "submitting", reserved_usd=0.27, run_id=1, at=1.0)
    assert not conn.in_transaction and refused.job(job(1).key).state == "pending"
    conn.close()


def planned(folder: Path) -> Path:
    """A journal of two planned jobs in `folder`, in WAL mode as a run leaves it; its path."""
    with Journal.open(folder) as journal:
        journal.sync_plan([job(1), job(2)])
    return folder / JOURNAL_NAME


def edit(path: Path, statement: str, *values: Any) -> None:
    conn = sqlite3.connect(path)
    with conn:
        conn.execute(statement, values)
    conn.close()


def test_a_reader_opens_the_journal_read_only_and_leaves_the_file_as_it_was(tmp_path: Path) -> None:
    path = planned(tmp_path)
    before = path.read_bytes()
    with Journal.open(tmp_path, create=False) as journal:
        assert journal.counts() == {"pending": 2}
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            journal.conn.execute("UPDATE main.jobs SET planned = 0")  # `jobs` is a view there
    assert path.read_bytes() == before


def older(folder: Path, *, jobs: int = 0) -> Path:
    """A journal of version 4 in `folder`, in WAL mode as a run leaves it, with `jobs` planned
    pending jobs of about 2 kB each; its path."""
    path = folder / JOURNAL_NAME
    folder.mkdir(exist_ok=True)
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.executescript(";".join(MIGRATIONS[:4]) + "; PRAGMA user_version = 4;")
    with conn:
        conn.execute("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?) "
                     "INSERT INTO jobs (key, idx, planned, state, prompt, axes, styles, request, "
                     "filename, estimated_cost) SELECT printf('%064x', i), i, 1, 'pending', "
                     "hex(randomblob(1000)), '{}', '[]', '{}', i || '.mp4', 0.27 FROM n", (jobs,))
    conn.close()
    return path


def test_a_reader_reads_an_old_journal_through_an_upgraded_copy_and_never_upgrades_the_file(
        tmp_path: Path) -> None:
    path = older(tmp_path)
    conn = sqlite3.connect(path)
    conn.execute("INSERT INTO jobs (key, idx, planned, state, prompt, axes, styles, request, "
                 "filename, estimated_cost, generation_id, cost_usd) VALUES ('k', 0, 1, "
                 "'downloaded', 'p', '{}', '[]', '{}', 'a.mp4', 0.27, 'g1', 0.3)")
    conn.commit()
    conn.close()
    before = path.read_bytes()
    with Journal.open(tmp_path, create=False) as journal:
        version = journal.conn.execute("PRAGMA user_version").fetchone()[0]
        row = journal.job("k")
    assert version == len(MIGRATIONS) and (row.state, row.spent_usd) == ("downloaded", 0.3)
    assert path.read_bytes() == before
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 4
    conn.close()


# Opens the journal of the folder argv[1] to read and counts its jobs; prints the counts, the
# files it holds open in the temp folder (TMPDIR), and its peak memory in kB.
READER = """
import json, os, resource, sys
from pathlib import Path
from runner.state import Journal
with Journal.open(Path(sys.argv[1]), create=False) as journal:
    counts = journal.counts()
    held = [f"/proc/self/fd/{fd}" for fd in os.listdir("/proc/self/fd")]
    held = [os.readlink(link) for link in held if os.path.exists(link)]
print(json.dumps({"counts": counts, "temp": [f for f in held if f.startswith(os.environ["TMPDIR"])],
                  "peak_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


def read_in_process(folder: Path, temp: Path) -> dict[str, Any]:
    """What READER says of `folder`, run with `temp` as its temp folder."""
    done = subprocess.run([sys.executable, "-c", READER, str(folder)], capture_output=True,
                          text=True, check=True, env={**os.environ, "TMPDIR": str(temp)})
    return json.loads(done.stdout)


def test_a_reader_upgrades_its_copy_of_an_old_journal_in_a_temp_file_removed_at_once_not_in_memory(
        tmp_path: Path) -> None:
    """The copy is as large as the journal (40 MB here): kept in memory, reading an old folder
    would take that much more than reading the same folder upgraded. Its file is gone from the
    temp folder as soon as it is made, however the command ends."""
    old, upgraded, temp = tmp_path / "old", tmp_path / "upgraded", tmp_path / "temp"
    path = older(old, jobs=10_000)
    shutil.copytree(old, upgraded)
    Journal.open(upgraded).close()  # upgraded in place, as a run does
    temp.mkdir()
    digest = hashlib.sha256(path.read_bytes()).digest()
    read_old, read_upgraded = (read_in_process(folder, temp) for folder in (old, upgraded))
    assert read_old["counts"] == read_upgraded["counts"] == {"pending": 10_000}
    assert read_old["temp"] and all(file.endswith(" (deleted)") for file in read_old["temp"])
    assert read_upgraded["temp"] == [] and list(temp.iterdir()) == []
    assert read_old["peak_kb"] - read_upgraded["peak_kb"] < path.stat().st_size // 1024 // 8
    assert hashlib.sha256(path.read_bytes()).digest() == digest


def test_a_copy_of_an_old_journal_the_temp_folder_has_no_room_for_exits_4_naming_it(
        tmp_path: Path) -> None:
    older(tmp_path, jobs=2_000)  # 5 MB
    done = subprocess.run(["prlimit", "--fsize=1000000", sys.executable, "-m", "runner", "status",
                           str(tmp_path)], capture_output=True, text=True, check=False)
    assert done.returncode == 4, done.stderr
    assert (f"{tmp_path}: cannot read the journal, of an older version, through an upgraded copy "
            "in the temp folder (TMPDIR): ") in done.stderr and "Traceback" not in done.stderr


def test_a_reader_reads_a_folder_where_sqlite_cannot_make_the_wal(tmp_path: Path) -> None:
    """As in a read-only folder or mount (a chmod does not stop root): the journal is read as
    immutable."""
    planned(tmp_path)
    (tmp_path / f"{JOURNAL_NAME}-wal").mkdir()
    with Journal.open(tmp_path, create=False) as journal:
        assert journal.counts() == {"pending": 2}


def test_a_reader_refuses_a_journal_whose_last_changes_it_cannot_read(tmp_path: Path) -> None:
    """A copy taken while a run wrote (after a crash, say) keeps its last changes in the WAL,
    which a journal read as immutable would pass over: the reader says so instead of showing
    the older state."""
    running, copy = tmp_path / "running", tmp_path / "copy"
    with Journal.open(running) as journal:
        journal.sync_plan([job(1), job(2)])
        copy.mkdir()
        for name in (JOURNAL_NAME, f"{JOURNAL_NAME}-wal"):
            (copy / name).write_bytes((running / name).read_bytes())
    shm = copy / f"{JOURNAL_NAME}-shm"
    shm.symlink_to(shm.name)  # cannot be made, as where nothing can be written
    with pytest.raises(StateError, match=f"^{copy}: the journal's last changes are in "
                                         f"{JOURNAL_NAME}-wal, which cannot be read"):
        Journal.open(copy, create=False)


def test_a_reader_refuses_an_emptied_journal_and_leaves_the_report_alone(tmp_path: Path) -> None:
    planned(tmp_path).write_bytes(b"")
    (tmp_path / "report.html").write_text("the last good gallery", encoding="utf-8")
    for command in ("status", "report"):
        code, _, stderr = invoke(command, str(tmp_path))
        assert code == 4 and f"{tmp_path}: {JOURNAL_NAME} is empty: restore the journal" in stderr
    assert (tmp_path / "report.html").read_text(encoding="utf-8") == "the last good gallery"


@pytest.mark.parametrize(("column", "value"), [
    ("axes", "not json"), ("axes", "null"), ("styles", "5"), ("request", "{"),
    ("upload", '{"x": 1}'), ("cost_usd", "abc"), ("submitted_at", "noon")])
def test_a_row_a_hand_edit_damaged_is_a_state_error_naming_the_folder_the_job_and_the_column(
        tmp_path: Path, column: str, value: str) -> None:
    edit(planned(tmp_path), f"UPDATE jobs SET {column} = ? WHERE key = ?", value, job(2).key)
    with Journal.open(tmp_path, create=False) as journal, pytest.raises(StateError) as caught:
        list(journal.reported())
    message = str(caught.value)
    assert message.startswith(f"{tmp_path}: job {job(2).key[:10]}: its {column} in the journal")
    assert message.endswith("restore the journal from a copy, or use another output folder")


def test_status_of_a_damaged_row_exits_4_with_no_traceback(tmp_path: Path) -> None:
    edit(planned(tmp_path), "UPDATE jobs SET request = '{' WHERE key = ?", job(1).key)
    code, _, stderr = invoke("status", str(tmp_path))
    assert code == 4 and f"job {job(1).key[:10]}: its request in the journal" in stderr


@pytest.mark.parametrize("create", [True, False])
def test_a_job_in_a_state_the_runner_does_not_know_is_refused_when_the_journal_opens(
        tmp_path: Path, create: bool) -> None:
    edit(planned(tmp_path), "UPDATE jobs SET state = 'DOWNLOADED' WHERE key = ?", job(2).key)
    with pytest.raises(StateError, match=f"^{tmp_path}: job {job(2).key[:10]} is in the state "
                                         "'DOWNLOADED', which this runner does not know"):
        Journal.open(tmp_path, create=create)


def test_a_run_refuses_a_folder_with_a_job_in_an_unknown_state_and_never_ends_with_0(
        tmp_path: Path) -> None:
    manifest, out = write_manifest(tmp_path, repeat=1), tmp_path / "out"
    with run_in_thread(sim_settings()) as sim:
        assert invoke_run(manifest, out, sim)[0] == 0
        edit(out / JOURNAL_NAME, "UPDATE jobs SET state = 'bogus' WHERE idx = 0")
        code, _, stderr = invoke_run(manifest, out, sim)
    assert code == 4 and "is in the state 'bogus', which this runner does not know" in stderr


def test_a_runs_summary_describes_that_run_even_when_a_later_one_began(tmp_path: Path) -> None:
    with Journal.open(tmp_path) as journal:
        first = journal.begin_run(name="n", manifest="m.yaml", settings={}, at=1.0)
        journal.begin_run(name="n", manifest="m.yaml", settings={}, at=2.0)  # its lock lost
        journal.end_run(first, exit_code=0, reason="every job downloaded", at=3.0)
        summary = write_results(journal, tmp_path, first)
        latest = journal.run()
    assert (summary["started_at"], summary["exit_code"]) == ("1970-01-01T00:00:01.000Z", 0)
    assert latest is not None and latest.id == first + 1


@pytest.mark.parametrize("name", [JOURNAL_NAME, f"{JOURNAL_NAME}-wal"])
def test_a_journal_that_is_a_symbolic_link_is_refused_and_nothing_written_through_it(
        tmp_path: Path, name: str) -> None:
    """As a link where the lock file goes is: it would be another folder's journal, or be
    written outside the folder."""
    folder, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    folder.mkdir()
    elsewhere.mkdir()
    (folder / name).symlink_to(elsewhere / name)
    for create in (True, False):
        with pytest.raises(StateError, match=f"{name} is a symbolic link; the journal must be"):
            Journal.open(folder, create=create)
    assert list(elsewhere.iterdir()) == []
