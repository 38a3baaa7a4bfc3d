"""`run --simulate` interrupted and run again resumes against the same simulated account: the
generations in flight are polled and the uploaded start frame is used, never made again."""

from __future__ import annotations

import signal
from pathlib import Path

from enginekit import (
    FRAME,
    copy_frames,
    journal_rows,
    simulated_process,
    wait_for_transitions,
    write_manifest,
)

from runner.simulator import statefile
from runner.simulator.settings import account_key


def test_an_interrupted_simulated_run_resumes_against_the_same_account(tmp_path: Path) -> None:
    copy_frames(tmp_path)
    manifest = write_manifest(tmp_path, prompts=["A sunset over the sea, waves rolling in"],
                              defaults=FRAME, styles={"vibe": ["Pro Photo", "Sci-Fi", "none"]},
                              run={"concurrency": 3})  # 6 jobs, 3 in flight at once
    out = tmp_path / "out"
    first = simulated_process(manifest, out)
    # Six transitions: the first three jobs submitting, then submitted; the others wait for a slot.
    assert wait_for_transitions(first, out, 6), first.communicate()
    first.send_signal(signal.SIGINT)
    outputs = [first.communicate(timeout=30)]
    at_interrupt = {row["state"] for row in journal_rows(out)}
    resumed = simulated_process(manifest, out)
    outputs.append(resumed.communicate(timeout=60))

    assert first.returncode == 130 and resumed.returncode == 0, outputs
    assert {"submitted", "pending"} <= at_interrupt  # some in flight, some still to create
    rows = journal_rows(out)
    account = statefile.read(out / "simulator-state.jsonl")
    assert account is not None
    assert all(row["state"] == "downloaded" for row in rows) and len(rows) == 6
    assert sorted(row["generation_id"] for row in rows) == sorted(account.generations)
    assert len(account.uploads) == 1
    key = account_key(account.user_id)
    assert not any(key in text for pair in outputs for text in pair)
    for path in out.rglob("*"):
        assert not path.is_file() or key.encode() not in path.read_bytes(), path
