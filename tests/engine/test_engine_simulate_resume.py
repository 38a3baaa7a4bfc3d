"""`run --simulate` interrupted and run again resumes against the same simulated account: the
generations in flight are polled and the uploaded start frame is used, never made again. An
account whose file holds an odd value is refused before anything is sent."""

from __future__ import annotations

import json
import shutil
import signal
from pathlib import Path
from typing import Any

import pytest
from enginekit import (
    FRAME,
    FRAME_PROMPTS,
    copy_frames,
    invoke_simulated,
    journal_rows,
    simulated_process,
    wait_for_transitions,
    write_manifest,
)
from sharedkit import kept_account

from runner.simulator.media import load_clips
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
    account = kept_account(out / "simulator-state.jsonl")
    assert account is not None
    assert all(row["state"] == "downloaded" for row in rows) and len(rows) == 6
    assert sorted(row["generation_id"] for row in rows) == sorted(account.generations)
    assert len(account.uploads) == 1
    key = account_key(account.user_id)
    assert not any(key in text for pair in outputs for text in pair)
    for path in out.rglob("*"):
        assert not path.is_file() or key.encode() not in path.read_bytes(), path


# One field of each kind of line a simulated folder's account holds, made odd: the line's number
# (1 the account, 2 a generation, 3 a start frame, 4 a create and 5 a delete appended after them,
# as by a simulator that was killed), the field and its value, and what the refusal says of it.
ODD_VALUES = [
    (1, "balance", -5, "balance: -5 is not a whole number of credits, 0 or more, or null"),
    (1, "scale", 0, "scale: 0 is not a time scale more than 0"),
    (2, "generation.clip", 99, f"generation.clip: 99 is not a clip number from 0 to {len(load_clips()) - 1}"),
    (2, "generation.request", None, "generation.request: null is not a create's body (model, "
                                    "parameters with prompt, width and height)"),
    (2, "generation.render_seconds", "slow", 'generation.render_seconds: "slow" is not a number of '
                                             "seconds more than 0"),
    (2, "generation.made_at", 1e300, "generation.made_at: 1e+300 is not a time in seconds since 1970, "
                                     "from 0 to 1e11, or null"),
    (2, "generation.status", "DONE", 'generation.status: "DONE" is not PENDING, COMPLETE or FAILED'),
    (3, "upload", 5, "upload: 5 is not an image id"),
    (4, "balance", "lots", 'balance: "lots" is not a whole number of credits, 0 or more, or null'),
    (4, "at", float("nan"), "at: NaN is not a simulated instant in seconds, from 0 to 1e11"),
    (5, "deleted", "nope", 'deleted: "nope" is not a generation of a line before'),
    (5, "surprise", 1, "surprise: not a field of this line"),
]


@pytest.fixture(scope="module")
def simulated_manifest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A manifest of one image-to-video job, in a folder with its start frame and the folder `out`
    a simulated run of it downloaded the job into; a test copies the folder to change it."""
    folder = tmp_path_factory.mktemp("simulated")
    copy_frames(folder)
    manifest = write_manifest(folder, prompts=FRAME_PROMPTS[:1], defaults=FRAME,
                              styles={"vibe": ["none"]}, repeat=1)
    assert invoke_simulated(manifest, folder / "out")[0] == 0
    return manifest


@pytest.mark.parametrize("number, name, value, refusal", ODD_VALUES,
                         ids=[f"line {case[0]} {case[1]}" for case in ODD_VALUES])
def test_a_simulated_folder_whose_account_holds_an_odd_value_is_refused_at_start(
        tmp_path: Path, simulated_manifest: Path, number: int, name: str, value: Any, refusal: str) -> None:
    shutil.copytree(simulated_manifest.parent, tmp_path, dirs_exist_ok=True)
    manifest, out = tmp_path / simulated_manifest.name, tmp_path / "out"
    state = out / "simulator-state.jsonl"
    lines = [json.loads(line) for line in state.read_text("utf-8").splitlines()]
    made = lines[1]["generation"]
    lines += [{"at": 90.0, "wall": lines[0]["wall"], "generation": made, "balance": 100},
              {"at": 95.0, "wall": lines[0]["wall"], "deleted": made["id"]}]
    record, _, field = name.rpartition(".")
    (lines[number - 1][record] if record else lines[number - 1])[field] = value
    state.write_text("".join(json.dumps(line) + "\n" for line in lines), "utf-8")
    odd = state.read_bytes()
    (video,) = out.rglob("*.mp4")
    video.unlink()

    code, _, stderr = invoke_simulated(manifest, out, "--fetch-missing")
    assert code == 2 and "Traceback" not in stderr
    assert (f"error: {state}: line {number}: not a simulator state file ({refusal}); "
            "move it away to start a fresh account\n") in stderr
    assert state.read_bytes() == odd and not video.exists()  # the account and folder as they were
