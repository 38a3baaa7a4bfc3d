"""The create checks every Hailuo 2.3 rule on the wire body and answers the v2 validation list."""

from __future__ import annotations

import copy
import uuid
from typing import Any

import pytest
from simkit import GOLDEN_HOUR, PRO_PHOTO, Caller, run, wire

from runner.simulator import SimSettings


def _frame(image_id: str, kind: str = "UPLOADED") -> dict[str, Any]:
    return {"start_frame": [{"image": {"id": image_id, "type": kind}}]}


def _top(**changes: Any) -> dict[str, Any]:
    body = wire()
    body.update(changes)
    return body


def _fast(**parameters: Any) -> dict[str, Any]:
    body = wire(**{"prompt_enhance": None, **parameters})
    body["model"] = "hailuo-2_3-fast"
    return body


GENERATED = str(uuid.uuid4())

REFUSED: dict[str, tuple[dict[str, Any], str]] = {
    "size not of the mode": (wire(width=1920, height=1080), "size"),
    "unknown mode": (wire(mode="RESOLUTION_4K"), "mode"),
    "768p 8 s": (wire(duration=8), "duration"),
    "1080p 10 s": (wire(mode="RESOLUTION_1080", width=1920, height=1080, duration=10), "duration"),
    "duration as a string": (wire(duration="6"), "duration"),
    "text-to-video 9:16": (wire(width=768, height=1376), "text-to-video-aspect"),
    "0x0 without a start frame": (wire(width=0, height=0), "auto-size"),
    "fast without a start frame": (_fast(), "start-frame-required"),
    "fast with the legacy start_frame": (_fast(start_frame={"id": GENERATED, "type": "GENERATED"}),
                                         "start-frame-required"),
    "prompt_enhance maybe": (wire(prompt_enhance="MAYBE"), "prompt-enhance"),
    "prompt_enhance on fast": (_fast(prompt_enhance="ON", guidances=_frame(GENERATED, "GENERATED")),
                               "prompt-enhance-model"),
    "style id unknown": (wire(style_ids=[str(uuid.uuid4())]), "style-ids"),
    "style given by name": (wire(style_ids=["Golden Hour"]), "style-ids"),
    "quantity 2": (wire(quantity=2), "quantity"),
    "public as a string": (_top(public="false"), "public"),
    "unknown top key": (_top(seed=3), "unknown-key"),
    "unknown parameter": (wire(negative_prompt="blur"), "unknown-key"),
    "unknown model": (_top(model="hailuo-2"), "model"),
    "empty prompt": (wire(prompt=""), "prompt-length"),
    "image type unknown": (wire(width=0, height=0, guidances=_frame(GENERATED, "REMOTE")), "start-frame"),
    "start frame never uploaded": (wire(width=0, height=0, guidances=_frame(str(uuid.uuid4()))),
                                   "start-frame-upload"),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_a_broken_rule_is_refused_with_the_v2_validation_list(case: str) -> None:
    body, rule = REFUSED[case]

    async def scenario(c: Caller) -> None:
        reply = await c.create(body)
        assert reply.status == 400
        [entry] = reply.data
        assert entry["extensions"]["code"] == "VALIDATION_ERROR"
        details = entry["extensions"]["details"]
        assert rule in [error["rule"] for error in details["errors"]]
        assert details["message"] == details["errors"][0]["message"]
        assert c.sim.books.creates_accepted == 0
    run(scenario)


ACCEPTED: dict[str, dict[str, Any]] = {
    "768p 10 s with three styles": wire(duration=10, style_ids=[GOLDEN_HOUR, PRO_PHOTO]),
    "1080p 6 s": wire(mode="RESOLUTION_1080", width=1920, height=1080),
    "no public, no quantity, no prompt_enhance": {
        "model": "hailuo-2_3", "parameters": wire(prompt_enhance=None)["parameters"]},
    "quantity 1": wire(quantity=1),
    "image-to-video 9:16 from a generated image": wire(width=768, height=1376,
                                                       guidances=_frame(GENERATED, "GENERATED")),
    "fast from a generated image, auto size": _fast(width=0, height=0,
                                                    guidances=_frame(GENERATED, "GENERATED")),
}


@pytest.mark.parametrize("case", sorted(ACCEPTED))
def test_a_valid_body_is_accepted(case: str) -> None:
    async def scenario(c: Caller) -> None:
        reply = await c.create(copy.deepcopy(ACCEPTED[case]))
        assert reply.status == 200, reply.raw
        assert c.sim.books.creates_accepted == 1
    run(scenario)


def test_every_violation_is_listed_at_once() -> None:
    async def scenario(c: Caller) -> None:
        reply = await c.create(wire(duration=7, width=1, quantity=5, style_ids=["x"]))
        rules = {error["rule"] for error in reply.data[0]["extensions"]["details"]["errors"]}
        assert rules == {"duration", "size", "quantity", "style-ids"}
    run(scenario)


@pytest.mark.parametrize("raw", [b"{not json", b"[1, 2]", b"null"])
def test_a_body_that_is_not_a_json_object_is_refused(raw: bytes) -> None:
    async def scenario(c: Caller) -> None:
        reply = await c.call("POST", "/v2/generations", data=raw,
                             headers={"content-type": "application/json"})
        assert reply.status == 400
        assert reply.data[0]["extensions"]["code"] == "VALIDATION_ERROR"
    run(scenario)


def test_an_uploaded_start_frame_makes_image_to_video_on_fast() -> None:
    async def scenario(c: Caller) -> None:
        image_id, _ = await c.upload()
        reply = await c.create(_fast(width=0, height=0, guidances=_frame(image_id)))
        assert reply.status == 200
        assert reply.data["generate"]["cost"]["amount"] == "0.19"
    run(scenario, SimSettings())
