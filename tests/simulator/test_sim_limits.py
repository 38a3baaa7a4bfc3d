"""The key, the per-minute limits, the slots and their queue, the balance, and the time scale."""

from __future__ import annotations

import uuid

import pytest
from simkit import Caller, run, wire

from runner.simulator import SimSettings
from runner.simulator.backend import retry_after
from runner.simulator.limits import RateWindow, SimClock


@pytest.mark.parametrize(("authorization", "status", "error"), [
    (None, 401, "Authentication hook unauthorized this request"),
    (f"Bearer {uuid.uuid4()}", 401, "Authentication hook unauthorized this request"),
    ("Basic dXNlcjpwYXNz", 401, "Authentication hook unauthorized this request"),
    ("Bearer not-a-uuid", 500, "Invalid response from authorization hook"),
])
def test_a_wrong_or_missing_key_is_refused_as_the_live_api_does(
        authorization: str | None, status: int, error: str) -> None:
    async def scenario(c: Caller) -> None:
        headers = {} if authorization is None else {"authorization": authorization}
        for method, path, body in (("GET", "/v1/me", None), ("POST", "/v2/generations", wire()),
                                   ("GET", f"/v1/generations/{uuid.uuid4()}", None),
                                   ("POST", "/v1/init-image", {"extension": "png"})):
            reply = await c.call(method, path, key=False, body=body, headers=headers)
            assert (reply.status, reply.data["error"]) == (status, error)
        assert c.sim.books.creates_accepted == 0
        assert c.sim.api_key not in repr(c.sim.settings)
    run(scenario)


def test_requests_per_minute_answers_429_with_retry_after_until_the_window_slides() -> None:
    async def scenario(c: Caller) -> None:
        for _ in range(5):
            assert (await c.call("GET", "/v1/me")).status == 200
        c.sim.clock.advance(30)
        refused = await c.call("GET", "/v1/me")
        assert refused.status == 429 and refused.data["code"] == "rate-limited"
        assert refused.headers["Retry-After"] == "30"
        assert (await c.create()).status == 429
        c.sim.clock.advance(30)
        assert (await c.call("GET", "/v1/me")).status == 200
    run(scenario, SimSettings(requests_per_minute=5))


def test_creates_per_minute_is_its_own_limit_and_retry_after_can_be_off() -> None:
    async def scenario(c: Caller) -> None:
        for n in range(3):
            assert (await c.create(wire(prompt=f"take {n}"))).status == 200
        refused = await c.create()
        assert refused.status == 429 and "Retry-After" not in refused.headers
        assert (await c.call("GET", "/v1/me")).status == 200
        c.sim.clock.advance(60)
        assert (await c.create()).status == 200
        assert c.sim.books.peak_creates_per_minute == 3
    run(scenario, SimSettings(creates_per_minute=3, retry_after=False))


def test_slots_render_together_and_the_queue_takes_the_rest_until_full() -> None:
    async def scenario(c: Caller) -> None:
        ids = [await c.created_id(wire(prompt=f"take {n}")) for n in range(6)]
        refused = await c.create()
        assert refused.status == 429 and "queue is full" in refused.data["error"]
        assert refused.headers["Retry-After"] == "100"
        c.sim.clock.advance(100)
        statuses = [(await c.poll(i)).data["generations_by_pk"]["status"] for i in ids]
        assert statuses == ["COMPLETE"] * 2 + ["PENDING"] * 4
        assert (await c.create()).status == 200
        c.sim.clock.advance(200)
        statuses = [(await c.poll(i)).data["generations_by_pk"]["status"] for i in ids]
        assert statuses == ["COMPLETE"] * 6
        books = c.sim.books
        assert (books.peak_concurrent_renders, books.peak_queue) == (2, 4)
        finished = sorted(g.finished_at for g in books.generations if g.id in ids)
        assert finished == pytest.approx([100, 100, 200, 200, 300, 300], abs=1)
    run(scenario, SimSettings(slots=2, queue_per_slot=2, render_seconds=100,
                              render_jitter_seconds=0, creates_per_minute=None))


def test_a_queue_depth_of_zero_refuses_beyond_the_slots() -> None:
    async def scenario(c: Caller) -> None:
        assert (await c.create()).status == 200
        assert (await c.create()).status == 429
    run(scenario, SimSettings(slots=1, queue_per_slot=0))


def test_jitter_spreads_render_times_within_its_bounds() -> None:
    async def scenario(c: Caller) -> None:
        for n in range(20):
            await c.created_id(wire(prompt=f"take {n}"))
        times = [g.finished_at - g.started_at for g in c.sim.books.generations]
        assert all(60 <= t <= 120 for t in times) and len(set(times)) == 20
    run(scenario, SimSettings(render_seconds=90, render_jitter_seconds=30, slots=20))


@pytest.mark.parametrize("status", [402, 429])
def test_the_balance_is_spent_by_creates_and_refuses_when_short(status: int) -> None:
    async def scenario(c: Caller) -> None:
        assert (await c.create()).status == 200
        me = (await c.call("GET", "/v1/me")).data["user_details"][0]
        assert me["apiPaidTokens"] == 20
        refused = await c.create(wire(prompt="another"))
        assert refused.status == status and refused.data["code"] == "insufficient-credits"
        assert c.sim.books.credits_spent == 180
    run(scenario, SimSettings(balance_credits=200, out_of_credit_status=status))


def test_time_scale_makes_a_render_and_the_limits_pass_in_scaled_real_time() -> None:
    now = [0.0]
    clock = SimClock(60, real=lambda: now[0])

    async def scenario(c: Caller) -> None:
        generation_id = await c.created_id()
        assert (await c.create(wire(prompt="two"))).status == 200
        refused = await c.create(wire(prompt="three"))
        assert refused.headers["Retry-After"] == "1"
        now[0] += 0.5
        assert (await c.poll(generation_id)).data["generations_by_pk"]["status"] == "PENDING"
        retry = float((await c.create(wire(prompt="three"))).headers["Retry-After"])
        assert retry == pytest.approx(0.5)
        now[0] += 1.0
        assert (await c.poll(generation_id)).data["generations_by_pk"]["status"] == "COMPLETE"
        assert (await c.create(wire(prompt="three"))).status == 200
    run(scenario, SimSettings(time_scale=60, render_seconds=90, render_jitter_seconds=0,
                              creates_per_minute=2), clock=clock)


def test_retry_after_is_whole_seconds_unscaled_and_decimal_when_scaled() -> None:
    assert retry_after(29.2, whole=True) == "30"
    assert retry_after(0.01, whole=True) == "1"
    assert retry_after(0.25, whole=False) == "0.25"
    assert retry_after(0.0, whole=False) == "0.001"


def test_the_rate_window_slides_instead_of_resetting_each_minute() -> None:
    window = RateWindow(2)
    window.add(59.0)
    window.add(61.0)
    assert window.wait(100.0) == pytest.approx(19.0)
    assert window.wait(119.0) == 0.0
    assert RateWindow(None).wait(0.0) == 0.0


def test_the_clock_only_goes_forward() -> None:
    clock = SimClock(1)
    with pytest.raises(ValueError):
        clock.advance(-1)
