"""The books: a JSON-lines request log without the key, and a summary that can be audited."""

from __future__ import annotations

import json
from pathlib import Path

import aiohttp
import pytest
from simkit import Caller, run, wire

from runner.errors import UsageError
from runner.simulator import SimSettings, Simulator


def test_the_request_log_has_a_line_per_call_appended_and_never_the_key(tmp_path: Path) -> None:
    log = tmp_path / "requests.jsonl"

    async def scenario(c: Caller) -> str:
        generation_id = await c.created_id()
        await c.poll(generation_id)
        await c.call("GET", "/v1/me", key=False)
        return generation_id

    async def reset(c: Caller) -> None:
        with pytest.raises(aiohttp.ClientConnectionError):
            await c.call("GET", "/v1/me")

    first, second = SimSettings(log_path=log), SimSettings(log_path=log, fault_reset=1.0)
    generation_id = run(scenario, first)
    run(reset, second)
    text = log.read_text("utf-8")
    lines = [json.loads(line) for line in text.splitlines()]
    assert [(e["endpoint"], e["status"]) for e in lines[:3]] == [("create", 200), ("poll", 200), ("me", 401)]
    assert lines[-1]["status"] == 0 and lines[-1]["faults"] == ["reset"]
    assert lines[0]["generation"] == lines[1]["generation"] == generation_id
    assert lines[1]["path"] == f"/api/rest/v1/generations/{generation_id}"
    assert all({"at", "method", "ms", "faults"} <= set(e) for e in lines)
    assert first.api_key not in text and second.api_key not in text and "Bearer" not in text


def test_an_unwritable_log_path_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="cannot write the request log"):
        run(lambda c: c.call("GET", "/v1/me"), SimSettings(log_path=tmp_path / "missing" / "log.jsonl"))


def test_a_log_path_through_a_file_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "notes").write_text("the user's notes", encoding="utf-8")
    with pytest.raises(UsageError) as refused:
        run(lambda c: c.call("GET", "/v1/me"), SimSettings(log_path=tmp_path / "notes" / "log.jsonl"))
    assert str(refused.value) == (f"{tmp_path}/notes/log.jsonl: cannot write the request log: "
                                  f"{tmp_path}/notes is a file, not a folder")


def test_duplicates_are_identical_bodies_whatever_their_key_order() -> None:
    async def scenario(c: Caller) -> None:
        body = wire()
        reordered = {"parameters": dict(reversed(list(body["parameters"].items()))),
                     "public": False, "model": "hailuo-2_3"}
        for sent in (body, reordered, wire(prompt="another"), body):
            assert (await c.create(sent)).status == 200
        books = c.sim.books
        assert (books.creates_accepted, books.duplicate_creates) == (4, 2)
    run(scenario)


def test_peak_creates_per_minute_is_the_busiest_sliding_minute() -> None:
    async def scenario(c: Caller) -> None:
        for n in range(7):
            await c.created_id(wire(prompt=f"take {n}"))
            c.sim.clock.advance(20)
        assert c.sim.books.peak_creates_per_minute == 3
    run(scenario, SimSettings(slots=10))


def test_the_summary_counts_requests_by_endpoint_and_status_and_is_json_ready() -> None:
    async def scenario(c: Caller) -> None:
        generation_id = await c.created_id()
        await c.create(wire(duration=7))
        await c.poll(generation_id)
        await c.call("GET", "/v1/me", key=False)
        await c.finished(generation_id)
        summary = c.sim.books
        assert summary.requests == {"create": {200: 1, 400: 1}, "poll": {200: 2}, "me": {401: 1}}
        [held] = summary.generations
        assert (held.id, held.status, held.model, held.cost_credits) == (generation_id, "COMPLETE",
                                                                         "hailuo-2_3", 180)
        plain = json.loads(json.dumps(summary.as_dict()))
        assert plain["requests"]["create"] == {"200": 1, "400": 1}
        assert plain["generations"] == {"COMPLETE": 1}
        assert plain["credits_spent"] == 180
    run(scenario)


def test_the_books_need_a_running_simulator() -> None:
    with pytest.raises(RuntimeError):
        _ = Simulator().books
