"""Contract tests of every API endpoint over real sockets: shapes as `leonardo-api.md` gives them."""

from __future__ import annotations

import re
import time
import uuid
from datetime import datetime

import pytest
from simkit import GOLDEN_HOUR, TEXT_TO_VIDEO, Caller, run, wire

from runner.simulator import SimSettings

ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def test_create_answers_the_nested_shape_with_the_price_as_cost() -> None:
    async def scenario(c: Caller) -> None:
        reply = await c.create(wire(mode="RESOLUTION_1080", width=1920, height=1080))
        assert reply.status == 200
        assert reply.headers["Content-Type"].startswith("application/json")
        generate = reply.data["generate"]
        assert uuid.UUID(generate["generationId"])
        assert generate["cost"] == {"amount": "0.47", "unit": "DOLLARS"}
    run(scenario)


@pytest.mark.parametrize(("shape", "cost", "expected_keys"), [
    ("flat", True, {"generationId", "apiCreditCost"}),
    ("flat", False, {"generationId"}),
    ("nested", False, {"generate"}),
])
def test_create_answer_shape_is_a_setting(shape: str, cost: bool, expected_keys: set[str]) -> None:
    async def scenario(c: Caller) -> None:
        reply = await c.create()
        assert set(reply.data) == expected_keys
        if shape == "flat" and cost:
            assert reply.data["apiCreditCost"] == 180
        if shape == "nested":
            assert set(reply.data["generate"]) == {"generationId"}
    run(scenario, SimSettings(create_answer=shape, answer_cost=cost))


def test_created_at_is_the_real_time_the_create_was_accepted_at_any_time_scale() -> None:
    """`createdAt` is read off the real clock, as the API's: a client looking for a create whose
    answer it lost compares it with the real time it sent it, however fast renders go here."""
    async def scenario(c: Caller) -> None:
        sent = time.time()
        generation_id = await c.created_id()
        answered = time.time()
        c.sim.clock.advance(600)
        shown = (await c.poll(generation_id)).data["generations_by_pk"]["createdAt"]
        made = datetime.fromisoformat(shown.replace("Z", "+00:00")).timestamp()
        assert sent - 0.001 <= made <= answered
    run(scenario, SimSettings(time_scale=40))


def test_poll_is_pending_without_images_then_complete_with_poster_and_video() -> None:
    async def scenario(c: Caller) -> None:
        generation_id = await c.created_id(wire(style_ids=[GOLDEN_HOUR]))
        pending = (await c.poll(generation_id)).data["generations_by_pk"]
        assert pending["status"] == "PENDING"
        assert pending["generated_images"] == []
        assert (pending["id"], pending["imageWidth"], pending["imageHeight"]) == (generation_id, 1376, 768)
        assert pending["prompt"] == TEXT_TO_VIDEO["parameters"]["prompt"]
        assert ISO.match(pending["createdAt"])
        c.sim.clock.advance(89)
        assert (await c.poll(generation_id)).data["generations_by_pk"]["status"] == "PENDING"
        c.sim.clock.advance(2)
        done = (await c.poll(generation_id)).data["generations_by_pk"]
        assert done["status"] == "COMPLETE"
        image = done["generated_images"][0]
        assert uuid.UUID(image["id"]) and image["nsfw"] is False
        assert image["url"].startswith(c.sim.origin + "/cdn/") and image["url"].endswith("-0.jpg")
        assert image["motionMP4URL"].startswith(c.sim.origin + "/cdn/")
        assert image["motionMP4URL"].endswith("-0.mp4")
    run(scenario, SimSettings(render_seconds=90, render_jitter_seconds=0))


def test_v2_get_is_not_an_endpoint() -> None:
    async def scenario(c: Caller) -> None:
        generation_id = await c.created_id()
        reply = await c.call("GET", f"/v2/generations/{generation_id}")
        assert reply.status == 404
        assert reply.data["error"] == "Endpoint not found"
        for method, path in (("GET", "/v1/nothing-here"), ("PUT", "/v1/me"), ("GET", "/v3/generations")):
            assert (await c.call(method, path)).status == 404
    run(scenario)


@pytest.mark.parametrize(("setting", "status", "expected"), [
    ("null", 200, {"generations_by_pk": None}),
    ("404", 404, None),
])
def test_unknown_generation_answer_is_a_setting(setting: str, status: int, expected: object) -> None:
    async def scenario(c: Caller) -> None:
        reply = await c.poll(str(uuid.uuid4()))
        assert reply.status == status
        if expected is not None:
            assert reply.data == expected
        else:
            assert reply.data["code"] == "not-found"
    run(scenario, SimSettings(unknown_generation=setting))


def test_list_is_newest_first_with_offset_and_limit() -> None:
    async def scenario(c: Caller) -> None:
        ids = []
        for n in range(5):
            ids.append(await c.created_id(wire(prompt=f"take {n}")))
            c.sim.clock.advance(1)
        user = c.sim.settings.user_id
        page = (await c.call("GET", f"/v1/generations/user/{user}?offset=1&limit=3")).data
        assert [g["id"] for g in page["generations"]] == ids[::-1][1:4]
        assert {"id", "status", "prompt", "createdAt", "imageWidth", "imageHeight",
                "generated_images"} <= set(page["generations"][0])
        default = (await c.call("GET", f"/v1/generations/user/{user}")).data["generations"]
        assert len(default) == 5
        other = await c.call("GET", f"/v1/generations/user/{uuid.uuid4()}")
        assert other.data == {"generations": []}
        for query in ("offset=-1", "limit=0", "limit=many"):
            bad = await c.call("GET", f"/v1/generations/user/{user}?{query}")
            assert bad.status == 400 and bad.data["code"] == "validation-failed"
    run(scenario)


def test_delete_removes_the_generation_from_poll_list_and_cdn() -> None:
    async def scenario(c: Caller) -> None:
        generation_id = await c.created_id()
        video = (await c.finished(generation_id))["generated_images"][0]["motionMP4URL"]
        reply = await c.call("DELETE", f"/v1/generations/{generation_id}")
        assert reply.data == {"delete_generations_by_pk": {"id": generation_id}}
        assert (await c.poll(generation_id)).data == {"generations_by_pk": None}
        listed = await c.call("GET", f"/v1/generations/user/{c.sim.settings.user_id}")
        assert listed.data == {"generations": []}
        assert (await c.call("GET", video, key=False)).status == 404
        again = await c.call("DELETE", f"/v1/generations/{generation_id}")
        assert again.data == {"delete_generations_by_pk": None}
        assert c.sim.books.generations[0].deleted
    run(scenario)


def test_me_reports_the_account() -> None:
    async def scenario(c: Caller) -> None:
        details = (await c.call("GET", "/v1/me")).data["user_details"][0]
        assert details["user"] == {"id": c.sim.settings.user_id, "username": "simulator"}
        assert details["apiConcurrencySlots"] == 4
        assert details["apiPaidTokens"] == 27830
        assert details["apiSubscriptionTokens"] == 2000 and details["tokenRenewalDate"] is None
    run(scenario, SimSettings(slots=4, balance_credits=27830, subscription_credits=2000))


def test_init_image_hands_out_a_presigned_form() -> None:
    async def scenario(c: Caller) -> None:
        reply = await c.call("POST", "/v1/init-image", body={"extension": "jpg"})
        issued = reply.data["uploadInitImage"]
        assert uuid.UUID(issued["id"])
        assert issued["url"].startswith(c.sim.origin)
        assert isinstance(issued["fields"], str) and issued["id"] in issued["key"]
        for body in ({"extension": "gif"}, {}, ["png"]):
            refused = await c.call("POST", "/v1/init-image", body=body)
            assert refused.status == 400 and refused.data["path"] == "$.extension"
        garbled = await c.call("POST", "/v1/init-image", data=b"{not json",
                               headers={"content-type": "application/json"})
        assert garbled.status == 400 and garbled.data["code"] == "validation-failed"
    run(scenario)
