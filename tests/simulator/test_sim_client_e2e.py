"""A plain client written from `leonardo-api.md` alone works against the simulator end to end:
check the key, create, poll, download; upload a start frame and make an image-to-video job on
hailuo-2_3-fast; find both in the account's list; delete them.

The client's waits between polls advance the simulated clock instead of sleeping.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiohttp

from runner.simulator import SimSettings, Simulator

PNG = bytes.fromhex("89504e470d0a1a0a0000000d49484452") + b"\x00" * 200


class DocClient:
    """What the contract page describes, step by step, and nothing else."""

    def __init__(self, session: aiohttp.ClientSession, base: str, key: str, simulator: Simulator) -> None:
        self.session = session
        self.base = base
        self.headers = {"authorization": f"Bearer {key}", "accept": "application/json",
                        "content-type": "application/json"}
        self.simulator = simulator
        self.polls = 0

    async def json(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body)
        async with self.session.request(method, self.base + path, data=data,
                                        headers=self.headers) as response:
            assert response.status == 200, await response.text()
            return await response.json()

    async def wait(self, seconds: float) -> None:
        self.simulator.clock.advance(seconds)

    async def generate(self, body: dict[str, Any]) -> dict[str, Any]:
        answer = await self.json("POST", "/v2/generations", body)
        generation_id = answer["generate"]["generationId"]
        assert float(answer["generate"]["cost"]["amount"]) > 0
        await self.wait(60)
        while True:
            self.polls += 1
            generation = (await self.json("GET", f"/v1/generations/{generation_id}"))["generations_by_pk"]
            if generation["status"] != "PENDING":
                return generation
            assert generation["generated_images"] == []
            await self.wait(8)

    async def download(self, url: str, target: Path) -> int:
        async with self.session.get(url) as response:
            assert response.status == 200
            target.write_bytes(await response.read())
        return target.stat().st_size

    async def upload_start_frame(self, content: bytes) -> str:
        issued = (await self.json("POST", "/v1/init-image", {"extension": "png"}))["uploadInitImage"]
        form = aiohttp.FormData()
        for name, value in json.loads(issued["fields"]).items():
            form.add_field(name, value)
        form.add_field("file", content, filename="frame.png", content_type="image/png")
        async with self.session.post(issued["url"], data=form) as response:
            assert response.status == 204
        return issued["id"]


async def _journey(tmp_path: Path) -> None:
    async with Simulator(SimSettings(seed=5)) as sim, aiohttp.ClientSession() as session:
        client = DocClient(session, sim.base_url, sim.api_key, sim)
        me = (await client.json("GET", "/v1/me"))["user_details"][0]
        user_id = me["user"]["id"]
        assert me["apiConcurrencySlots"] == 10

        text = await client.generate({
            "model": "hailuo-2_3", "public": False,
            "parameters": {"prompt": "A cinematic shot of rain falling on a quiet city street at night",
                           "mode": "RESOLUTION_768", "duration": 6, "width": 1376, "height": 768,
                           "style_ids": ["3f705252-1197-4f59-b6ed-21625dce6a65"],
                           "prompt_enhance": "OFF"}})
        assert text["status"] == "COMPLETE"
        video = text["generated_images"][0]["motionMP4URL"]
        assert await client.download(video, tmp_path / "text.mp4") > 1000
        assert (tmp_path / "text.mp4").read_bytes()[4:8] == b"ftyp"

        frame_id = await client.upload_start_frame(PNG)
        fast = await client.generate({
            "model": "hailuo-2_3-fast", "public": False,
            "parameters": {"prompt": "The still picture slowly comes alive", "mode": "RESOLUTION_768",
                           "duration": 6, "width": 0, "height": 0,
                           "guidances": {"start_frame": [{"image": {"id": frame_id, "type": "UPLOADED"}}]}}})
        assert fast["status"] == "COMPLETE"
        video = fast["generated_images"][0]["motionMP4URL"]
        assert await client.download(video, tmp_path / "fast.mp4") > 1000
        assert await client.download(fast["generated_images"][0]["url"], tmp_path / "fast.jpg") > 100

        page = f"/v1/generations/user/{user_id}?offset=0&limit=50"
        listed = (await client.json("GET", page))["generations"]
        assert [g["id"] for g in listed] == [fast["id"], text["id"]]
        for generation in listed:
            deleted = await client.json("DELETE", f"/v1/generations/{generation['id']}")
            assert deleted == {"delete_generations_by_pk": {"id": generation["id"]}}
        assert (await client.json("GET", f"/v1/generations/user/{user_id}"))["generations"] == []

        books = sim.books
        assert (books.creates_accepted, books.duplicate_creates, books.credits_spent) == (2, 0, 307)
        assert 2 < client.polls < 20


def test_a_client_following_the_contract_works_end_to_end(tmp_path: Path) -> None:
    asyncio.run(_journey(tmp_path))
