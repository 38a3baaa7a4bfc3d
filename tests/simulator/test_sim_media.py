"""The CDN (real clips, posters, Range) and the presigned start-frame form."""

from __future__ import annotations

import uuid

import pytest
from simkit import GOLDEN_HOUR, PRO_PHOTO, Caller, run, wire

from runner.simulator import SimSettings
from runner.simulator.media import load_clips


def _from_frame(image_id: str) -> dict:
    frame = {"image": {"id": image_id, "type": "UPLOADED"}}
    return wire(width=0, height=0, guidances={"start_frame": [frame]})


def test_the_shipped_clips_are_small_faststart_mp4s_with_jpeg_posters() -> None:
    clips = load_clips()
    assert len(clips) >= 3
    assert len({clip.video for clip in clips}) == len(clips)
    for clip in clips:
        data, poster = clip.video, clip.poster
        assert data[4:8] == b"ftyp" and len(data) < 100_000
        assert 0 < data.find(b"moov") < data.find(b"mdat"), "moov must lead, for playback while loading"
        assert poster[:2] == b"\xff\xd8" and poster[-2:] == b"\xff\xd9"


def test_the_cdn_serves_the_video_and_poster_without_a_key_and_with_ranges() -> None:
    async def scenario(c: Caller) -> None:
        image = (await c.finished(await c.created_id()))["generated_images"][0]
        video = await c.call("GET", image["motionMP4URL"], key=False)
        assert video.status == 200 and video.headers["Content-Type"] == "video/mp4"
        assert video.raw[4:8] == b"ftyp"
        poster = await c.call("GET", image["url"], key=False)
        assert poster.headers["Content-Type"] == "image/jpeg" and poster.raw[:2] == b"\xff\xd8"
        part = await c.call("GET", image["motionMP4URL"], key=False, headers={"Range": "bytes=0-99"})
        assert part.status == 206 and part.raw == video.raw[:100]
        assert part.headers["Content-Range"] == f"bytes 0-99/{len(video.raw)}"
        tail = await c.call("GET", image["motionMP4URL"], key=False, headers={"Range": "bytes=-100"})
        assert tail.status == 206 and tail.raw == video.raw[-100:]
        for beyond in (f"bytes={len(video.raw)}-", "bytes=abc"):
            refused = await c.call("GET", image["motionMP4URL"], key=False, headers={"Range": beyond})
            assert refused.status == 416
            assert refused.headers["Content-Range"] == f"bytes */{len(video.raw)}"
        assert set(c.sim.books.requests["cdn"]) == {200, 206, 416}
    run(scenario)


def test_the_cdn_knows_only_finished_generations_of_the_account() -> None:
    async def scenario(c: Caller) -> None:
        generation_id = await c.created_id()
        stem = f"{c.sim.origin}/cdn/users/{c.sim.settings.user_id}/generations"
        assert (await c.call("GET", f"{stem}/{generation_id}/hailuo-2_3-0.mp4", key=False)).status == 404
        await c.finished(generation_id)
        missing = (f"{stem}/{uuid.uuid4()}/hailuo-2_3-0.mp4", f"{stem}/{generation_id}/other-0.mp4",
                   f"{c.sim.origin}/cdn/users/{uuid.uuid4()}/generations/{generation_id}/hailuo-2_3-0.mp4")
        for url in missing:
            reply = await c.call("GET", url, key=False)
            assert reply.status == 404 and b"NoSuchKey" in reply.raw
        assert (await c.call("GET", f"{stem}/{generation_id}/hailuo-2_3-0.mp4", key=False)).status == 200
    run(scenario)


def test_the_clip_follows_prompt_and_styles_so_a_sweep_shows_variety() -> None:
    async def scenario(c: Caller) -> None:
        bodies = [wire(prompt=f"shot {n}", style_ids=styles)
                  for n in range(4) for styles in ([], [GOLDEN_HOUR], [PRO_PHOTO, GOLDEN_HOUR])]
        for body in bodies + bodies[:2]:
            await c.created_id(body)
        held = c.sim.books.generations
        assert len({g.clip for g in held}) >= 3
        assert held[-2].clip == held[0].clip and held[-1].clip == held[1].clip
    run(scenario, SimSettings(creates_per_minute=None, slots=20))


def test_an_uploaded_form_answers_204_and_the_frame_becomes_usable() -> None:
    async def scenario(c: Caller) -> None:
        image_id, reply = await c.upload("webp")
        assert reply.status == 204 and reply.raw == b""
        assert (await c.create(_from_frame(image_id))).status == 200
    run(scenario)


@pytest.mark.parametrize(("case", "status", "code"), [
    ("authorization header", 403, b"AccessDenied"),
    ("expired form", 403, b"Policy expired"),
    ("tampered field", 403, b"Policy Condition failed"),
    ("empty file", 400, b"InvalidArgument"),
])
def test_the_form_refuses_what_s3_refuses(case: str, status: int, code: bytes) -> None:
    async def scenario(c: Caller) -> None:
        options: dict = {
            "authorization header": {"headers": {"authorization": f"Bearer {c.sim.api_key}"}},
            "expired form": {"before_post": lambda: c.sim.clock.advance(121)},
            "tampered field": {"fields": {"Content-Type": "image/gif"}},
            "empty file": {"content": b""},
        }[case]
        image_id, reply = await c.upload(**options)
        assert reply.status == status and code in reply.raw
        assert reply.headers["Content-Type"].startswith("application/xml")
        refused = await c.create(_from_frame(image_id))
        assert refused.status == 400
        assert refused.data[0]["extensions"]["details"]["errors"][0]["rule"] == "start-frame-upload"
    run(scenario)


def test_the_form_wants_multipart() -> None:
    async def scenario(c: Caller) -> None:
        reply = await c.call("POST", c.sim.origin + "/s3/", key=False, body={"file": "x"})
        assert reply.status == 400 and b"multipart" in reply.raw
    run(scenario)


def test_a_garbled_multipart_form_is_refused() -> None:
    async def scenario(c: Caller) -> None:
        reply = await c.call("POST", c.sim.origin + "/s3/", key=False, data=b"no parts here",
                             headers={"content-type": "multipart/form-data; boundary=xyz"})
        assert reply.status == 400 and b"MalformedPOSTRequest" in reply.raw
    run(scenario)
