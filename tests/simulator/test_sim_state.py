"""The simulated account kept in a state file: a restarted simulator, even a killed one, still
knows its key, generations, start frames and balance, and its renders go on while it is stopped."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import pytest
from click.testing import CliRunner
from sharedkit import kept_account
from simkit import TEXT_TO_VIDEO, Caller, wire

from runner.cli import main
from runner.errors import LockedError, UsageError
from runner.simulator import SimSettings, Simulator
from runner.simulator.limits import SimClock
from runner.simulator.settings import account_key


@asynccontextmanager
async def serving(path: Path, *, clock: SimClock | None = None, **changes: object) -> AsyncIterator[Caller]:
    """A simulator keeping its account in `path`, and a session to it."""
    settings = SimSettings(**{"seed": 1, "state_path": path, **changes})  # type: ignore[arg-type]
    async with Simulator(settings, clock=clock) as sim, aiohttp.ClientSession() as session:
        yield Caller(sim, session)


def test_a_restarted_account_keeps_its_key_generations_and_start_frames(tmp_path: Path) -> None:
    path = tmp_path / "state.jsonl"

    async def scenario() -> None:
        async with serving(path) as first:
            key, user_id = first.sim.api_key, first.sim.settings.user_id
            kept = await first.created_id()
            created_at = (await first.poll(kept)).data["generations_by_pk"]["createdAt"]
            gone = await first.created_id(wire(prompt="A lighthouse in a storm"))
            assert (await first.call("DELETE", f"/v1/generations/{gone}")).status == 200
            frame, uploaded = await first.upload()
            assert uploaded.status == 204
        assert key not in path.read_text("utf-8")
        async with serving(path, seed=2) as second:
            assert (second.sim.api_key, second.sim.settings.user_id) == (key, user_id)
            polled = (await second.call("GET", f"/v1/generations/{kept}", key=False,
                                        headers={"authorization": f"Bearer {key}"})).data
            assert polled["generations_by_pk"]["status"] == "PENDING"
            assert polled["generations_by_pk"]["createdAt"] == created_at
            done = await second.finished(kept)
            video = await second.call("GET", done["generated_images"][0]["motionMP4URL"], key=False)
            assert done["status"] == "COMPLETE" and video.status == 200 and video.raw[4:8] == b"ftyp"
            assert (await second.poll(gone)).data == {"generations_by_pk": None}
            for image_id, status in ((frame, 200), (str(uuid.uuid4()), 400)):
                start = {"start_frame": [{"image": {"id": image_id, "type": "UPLOADED"}}]}
                assert (await second.create(wire(width=0, height=0, guidances=start))).status == status
            listed = (await second.call("GET", f"/v1/generations/user/{user_id}")).data["generations"]
            assert len(listed) == 2 and listed[1]["id"] == kept

    asyncio.run(scenario())


def test_renders_go_on_while_the_simulator_is_stopped(tmp_path: Path) -> None:
    """Saved at simulated 30 s, loaded 70 real seconds later: a render due at 90 s is done, one
    due at 110 s has its last 10 s to go."""
    path, first_real, second_real = tmp_path / "state.jsonl", [0.0], [0.0]
    render = {"render_seconds": 90.0, "render_jitter_seconds": 0.0}

    async def scenario() -> None:
        async with serving(path, clock=SimClock(1.0, real=lambda: first_real[0]), **render) as first:
            due_at_90 = await first.created_id()
            first_real[0] = 20.0
            due_at_110 = await first.created_id(wire(prompt="A lighthouse in a storm"))
            first_real[0] = 30.0
        second_clock = SimClock(1.0, real=lambda: second_real[0])
        second_real[0] = 100.0
        async with serving(path, clock=second_clock, **render) as second:
            assert 100.0 <= second_clock.now() < 100.5
            assert (await second.poll(due_at_90)).data["generations_by_pk"]["status"] == "COMPLETE"
            second_real[0] += 9.0
            assert (await second.poll(due_at_110)).data["generations_by_pk"]["status"] == "PENDING"
            second_real[0] += 1.5
            assert (await second.poll(due_at_110)).data["generations_by_pk"]["status"] == "COMPLETE"

    asyncio.run(scenario())


def test_the_balance_and_the_bodies_already_paid_for_carry_over(tmp_path: Path) -> None:
    path = tmp_path / "state.jsonl"

    async def scenario() -> None:
        async with serving(path, balance_credits=1000) as first:
            await first.created_id()
        async with serving(path) as second:
            me = (await second.call("GET", "/v1/me")).data["user_details"][0]
            assert me["apiPaidTokens"] == 820
            await second.created_id(TEXT_TO_VIDEO)
            books = second.sim.books
            assert (books.creates_accepted, books.duplicate_creates, len(books.generations)) == (1, 1, 2)

    asyncio.run(scenario())


def test_a_killed_simulator_keeps_every_create_it_answered(tmp_path: Path) -> None:
    path = tmp_path / "state.jsonl"
    process = subprocess.Popen(
        [sys.executable, "-m", "runner", "simulate", "--state", str(path), "--seed", "3"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        announced: dict[str, str] = {}
        while "API key" not in announced:
            line = process.stdout.readline() if process.stdout else ""
            assert line, process.stderr.read() if process.stderr else "no output"
            name, _, value = line.strip().partition(": ")
            announced[name] = value.strip()

        async def create() -> str:
            headers = {"authorization": f"Bearer {announced['API key']}"}
            async with aiohttp.ClientSession(headers=headers) as session, session.post(
                    announced["base URL"] + "/v2/generations", json=TEXT_TO_VIDEO) as response:
                assert response.status == 200
                return (await response.json())["generate"]["generationId"]

        created = [asyncio.run(create()) for _ in range(3)]
        second = subprocess.run([sys.executable, "-m", "runner", "simulate", "--state", str(path)],
                                capture_output=True, text=True, timeout=60)
        assert second.returncode == 4 and "Traceback" not in second.stderr
        assert f"in use by another simulator: process {process.pid} on " in second.stderr
    finally:
        process.kill()
        process.communicate()
    account = kept_account(path)
    assert account is not None and list(account.generations) == created
    assert account_key(account.user_id) == announced["API key"]

    async def after_the_kill() -> list[str]:  # the kernel gave the lock back with the process
        async with serving(path) as next_one:
            listed = await next_one.call("GET", f"/v1/generations/user/{account.user_id}")
            return [generation["id"] for generation in listed.data["generations"]]

    assert asyncio.run(after_the_kill()) == created[::-1]


def test_one_simulator_at_a_time_keeps_a_state_file(tmp_path: Path) -> None:
    path = tmp_path / "state.jsonl"

    async def scenario() -> None:
        async with serving(path) as first:
            with pytest.raises(LockedError, match=f"in use by another simulator: process {os.getpid()}"):
                async with Simulator(SimSettings(state_path=path)):
                    pass
            kept = await first.created_id()
        async with serving(path) as second:
            assert (await second.poll(kept)).status == 200

    asyncio.run(scenario())


def test_a_line_cut_short_is_dropped_and_a_damaged_file_is_a_located_error(tmp_path: Path) -> None:
    path = tmp_path / "state.jsonl"

    async def scenario() -> None:
        async with serving(path) as first:
            await first.created_id()

    asyncio.run(scenario())
    whole = path.read_text("utf-8")
    path.write_text(whole + '{"at": 5, "wall": 1, "upload": "cut sho', "utf-8")
    account = kept_account(path)
    assert account is not None and len(account.generations) == 1 and not account.uploads
    path.write_text(whole + '{"surprise": 1}\n' + whole.splitlines()[1] + "\n", "utf-8")
    with pytest.raises(UsageError, match=r"state.jsonl: line 3: not a simulator state file"):
        kept_account(path)
    path.write_text(whole.replace('"version": 1', '"version": 9'), "utf-8")
    result = CliRunner().invoke(main, ["simulate", "--state", str(path)])
    assert result.exit_code == 2 and "line 1" in result.stderr and "version 9" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_state_file_with_an_odd_value_is_refused_at_start_naming_its_line_and_field(
        tmp_path: Path) -> None:
    """Read as it is, a generation without its request would answer each poll and download of it
    with a server error; `run --simulate` reads its folder's account with the same checks."""
    path = tmp_path / "state.jsonl"

    async def scenario() -> None:
        async with serving(path) as first:
            await first.created_id()

    asyncio.run(scenario())
    header, generation = path.read_text("utf-8").splitlines()
    odd = json.loads(generation)
    odd["generation"]["request"] = None
    path.write_text(f"{header}\n{json.dumps(odd)}\n", "utf-8")
    result = subprocess.run([sys.executable, "-m", "runner", "simulate", "--state", str(path)],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert result.stderr == (f"error: {path}: line 2: not a simulator state file (generation.request: "
                             "null is not a create's body (model, parameters with prompt, width and "
                             "height)); move it away to start a fresh account\n")


def test_a_state_file_through_a_file_is_a_usage_error_naming_the_file(tmp_path: Path) -> None:
    (tmp_path / "notes").write_text("the user's notes", encoding="utf-8")
    result = CliRunner().invoke(main, ["simulate", "--state", str(tmp_path / "notes" / "a" / "s.jsonl")])
    assert result.exit_code == 2 and "Traceback" not in result.stderr
    assert result.stderr == (f"error: {tmp_path}/notes/a/s.jsonl: cannot write the simulator state: "
                             f"{tmp_path}/notes is a file, not a folder\n")


def test_the_key_follows_the_user_id_unless_one_is_given() -> None:
    settings = SimSettings(user_id="8d1f6c2e-3b7a-4e59-a0c4-5f2d9e8b1a37")
    assert settings.api_key == account_key(settings.user_id) and uuid.UUID(settings.api_key)
    moved = settings.with_account(str(uuid.uuid4()), "kept")
    assert moved.api_key == account_key(moved.user_id) != settings.api_key
    given = SimSettings(api_key="0c3d2b8e-51f4-4a43-9bd6-9a0f0f0e0a11")
    assert given.with_account(str(uuid.uuid4()), "kept").api_key == given.api_key
    assert settings.api_key not in repr(settings)
