"""Faults on demand: each at rate 1 does what it says; at other rates a seed makes them repeatable."""

from __future__ import annotations

import time

import aiohttp
import pytest
from simkit import Caller, run, wire

from runner.simulator import SimSettings
from runner.simulator.backend import Backend


def test_fault_500_strikes_any_call_before_anything_happens() -> None:
    async def scenario(c: Caller) -> None:
        for method, path in (("POST", "/v2/generations"), ("GET", "/v1/me"),
                             ("GET", "/v2/generations/x"), ("POST", c.sim.origin + "/s3/")):
            reply = await c.call(method, path, body=wire() if method == "POST" else None)
            assert reply.status == 500
            assert reply.data == {"error": "Service Error", "path": "$", "code": "unexpected"}
        books = c.sim.books
        assert books.creates_accepted == 0 and books.faults == {"500": 4}
    run(scenario, SimSettings(fault_500=1.0))


def test_a_create_that_succeeds_but_answers_500_is_billed_and_listed() -> None:
    async def scenario(c: Caller) -> None:
        first = await c.create()
        assert first.status == 500 and first.data["error"] == "Service Error"
        again = await c.create()
        assert again.status == 500
        listed = await c.call("GET", f"/v1/generations/user/{c.sim.settings.user_id}")
        assert len(listed.data["generations"]) == 2
        books = c.sim.books
        assert (books.creates_accepted, books.duplicate_creates, books.credits_spent) == (2, 1, 360)
    run(scenario, SimSettings(fault_create_500=1.0))


def test_a_create_that_answers_500_can_be_carried_out_late_all_the_same() -> None:
    async def scenario(c: Caller) -> None:
        reply = await c.create()
        listing = f"/v1/generations/user/{c.sim.settings.user_id}"
        before = (await c.call("GET", listing)).data["generations"]
        c.sim.clock.advance(29)
        still = (await c.call("GET", listing)).data["generations"]
        c.sim.clock.advance(1)
        after = (await c.call("GET", listing)).data["generations"]
        books = c.sim.books
        assert reply.status == 500 and reply.data["error"] == "Service Error"
        assert before == still == [] and len(after) == 1
        assert after[0]["prompt"] == wire()["parameters"]["prompt"]
        assert books.creates_accepted == 1 and books.faults == {"create_late": 1}
    run(scenario, SimSettings(fault_create_late=1.0, late_seconds=30))


def test_fault_reset_drops_the_connection_with_no_answer() -> None:
    async def scenario(c: Caller) -> None:
        with pytest.raises(aiohttp.ClientConnectionError):
            await c.create()
        books = c.sim.books
        assert books.creates_accepted == 0
        assert set(books.requests["create"]) == {0}
    run(scenario, SimSettings(fault_reset=1.0))


def test_fault_slow_delays_the_answer_by_the_scaled_delay() -> None:
    async def scenario(c: Caller) -> None:
        started = time.perf_counter()
        reply = await c.call("GET", "/v1/me")
        assert reply.status == 200
        assert time.perf_counter() - started >= 0.05
        assert c.sim.books.faults == {"slow": 1}
    run(scenario, SimSettings(fault_slow=1.0, slow_seconds=60, time_scale=1200))


def test_a_connection_error_of_the_simulators_own_still_shows_its_traceback(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """The simulator books a call whose client hung up (499) without a traceback; an error of
    its own while the client still listens keeps its traceback. No fault of the simulator
    raises one, so a handler is made to: this guards the quiet 499s from hiding real bugs."""
    def broken(backend: Backend) -> None:
        raise ConnectionResetError("a bug of the simulator's, its client still listening")
    monkeypatch.setattr(Backend, "me", broken)

    async def scenario(c: Caller) -> None:
        assert (await c.call("GET", "/v1/me")).status == 500
    run(scenario)
    told = [record for record in caplog.records if record.name == "aiohttp.server"]
    assert [record.exc_info[0] for record in told if record.exc_info] == [ConnectionResetError]


def test_fault_not_json_garbles_a_good_answer_after_the_work_is_done() -> None:
    async def scenario(c: Caller) -> None:
        reply = await c.create()
        assert reply.status == 200 and reply.headers["Content-Type"].startswith("text/html")
        with pytest.raises(ValueError):
            _ = reply.data
        assert c.sim.books.creates_accepted == 1
        refused = await c.create(wire(duration=7))
        assert refused.status == 400 and refused.data[0]["extensions"]["code"] == "VALIDATION_ERROR"
    run(scenario, SimSettings(fault_not_json=1.0))


def test_fault_failed_ends_generations_failed_without_a_video() -> None:
    async def scenario(c: Caller) -> None:
        generation_id = await c.created_id()
        done = await c.finished(generation_id)
        assert done["status"] == "FAILED" and done["generated_images"] == []
        assert "prompt_moderations" not in done
        model = "hailuo-2_3"
        cdn = f"{c.sim.origin}/cdn/users/{c.sim.settings.user_id}/generations/{generation_id}/{model}-0.mp4"
        assert (await c.call("GET", cdn, key=False)).status == 404
    run(scenario, SimSettings(fault_failed=1.0))


@pytest.mark.parametrize("status", [400, 403])
def test_a_prompt_with_the_marker_word_is_moderated_at_create(status: int) -> None:
    async def scenario(c: Caller) -> None:
        reply = await c.create(wire(prompt="a calm lake, BLOCKED by the filter"))
        assert reply.status == status
        assert reply.data["code"] == "unexpected"
        assert reply.data["error"].startswith("content moderation filter:")
        assert (await c.create(wire(prompt="an unblocked view"))).status == 200
        assert c.sim.books.creates_accepted == 1
    run(scenario, SimSettings(moderation_word="blocked", moderation_status=status))


def test_moderation_at_render_ends_failed_with_prompt_moderations() -> None:
    async def scenario(c: Caller) -> None:
        generation_id = await c.created_id(wire(prompt="please moderate-me now"))
        done = await c.finished(generation_id)
        assert done["status"] == "FAILED" and done["prompt_moderations"]
    run(scenario, SimSettings(moderation_stage="render"))


def test_moderation_can_be_switched_off() -> None:
    async def scenario(c: Caller) -> None:
        assert (await c.create(wire(prompt="moderate-me"))).status == 200
    run(scenario, SimSettings(moderation_word=None))


def test_fault_truncate_cuts_a_download_short_but_not_a_range_request() -> None:
    async def scenario(c: Caller) -> None:
        video = (await c.finished(await c.created_id()))["generated_images"][0]["motionMP4URL"]
        with pytest.raises(aiohttp.ClientPayloadError):
            await c.call("GET", video, key=False)
        ranged = await c.call("GET", video, key=False, headers={"Range": "bytes=100-"})
        assert ranged.status == 206
        total = int(ranged.headers["Content-Range"].rpartition("/")[2])
        assert len(ranged.raw) == total - 100
        assert c.sim.books.faults == {"truncate": 1}
    run(scenario, SimSettings(fault_truncate=1.0))


def _statuses(seed: int) -> list[int]:
    async def scenario(c: Caller) -> list[int]:
        return [(await c.call("GET", "/v1/me")).status for _ in range(40)]
    return run(scenario, SimSettings(fault_500=0.5, seed=seed))


def test_a_seed_makes_the_faults_repeatable() -> None:
    first = _statuses(11)
    assert first == _statuses(11)
    assert first != _statuses(12)
    assert {200, 500} == set(first)
