"""A thin test client for the simulator: real sockets on 127.0.0.1, one event loop per test.

Tests are synchronous functions that hand an async scenario to `run`; the scenario gets a `Caller`
holding the running simulator and a plain aiohttp session (no key sent unless asked for).
"""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import aiohttp

from runner.simulator import SimSettings, Simulator
from runner.simulator.limits import SimClock

T = TypeVar("T")

TEXT_TO_VIDEO: dict[str, Any] = {
    "model": "hailuo-2_3", "public": False,
    "parameters": {"prompt": "A cinematic shot of rain falling on a quiet city street at night",
                   "mode": "RESOLUTION_768", "duration": 6, "width": 1376, "height": 768,
                   "prompt_enhance": "OFF"}}
GOLDEN_HOUR = "3f705252-1197-4f59-b6ed-21625dce6a65"
PRO_PHOTO = "28a53b2e-eb80-41d7-8360-208068fecf49"
PNG = bytes.fromhex("89504e470d0a1a0a") + b"\x00" * 64


def wire(**parameters: Any) -> dict[str, Any]:
    """The text-to-video body with some parameters changed (None removes one)."""
    body = copy.deepcopy(TEXT_TO_VIDEO)
    for name, value in parameters.items():
        if value is None:
            body["parameters"].pop(name, None)
        else:
            body["parameters"][name] = value
    return body


@dataclass(frozen=True)
class Reply:
    status: int
    headers: dict[str, str]
    raw: bytes

    @property
    def data(self) -> Any:
        return json.loads(self.raw)


class Caller:
    """The running simulator and an HTTP session to it."""

    def __init__(self, sim: Simulator, session: aiohttp.ClientSession) -> None:
        self.sim = sim
        self.session = session

    @property
    def auth(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.sim.api_key}", "accept": "application/json"}

    async def call(self, method: str, path: str, *, key: bool = True, body: Any = None,
                   headers: dict[str, str] | None = None, data: Any = None) -> Reply:
        """A request to `path` below the API root (or to an absolute URL)."""
        url = path if path.startswith("http") else self.sim.base_url + path
        sent = {**(self.auth if key else {}), **(headers or {})}
        kwargs: dict[str, Any] = {"headers": sent}
        if body is not None:
            kwargs["json"] = body
        if data is not None:
            kwargs["data"] = data
        async with self.session.request(method, url, **kwargs) as response:
            return Reply(response.status, dict(response.headers), await response.read())

    async def create(self, body: Any = None, **headers: Any) -> Reply:
        return await self.call("POST", "/v2/generations", body=TEXT_TO_VIDEO if body is None else body,
                               **headers)

    async def created_id(self, body: Any = None) -> str:
        reply = await self.create(body)
        assert reply.status == 200, reply.raw
        return reply.data["generate"]["generationId"]

    async def poll(self, generation_id: str) -> Reply:
        return await self.call("GET", f"/v1/generations/{generation_id}")

    async def finished(self, generation_id: str) -> dict[str, Any]:
        """Jump the clock past any render and queue, then the generation as polled."""
        self.sim.clock.advance(100_000)
        reply = await self.poll(generation_id)
        assert reply.status == 200
        return reply.data["generations_by_pk"]

    async def upload(self, extension: str = "png", *, content: bytes = PNG,
                     headers: dict[str, str] | None = None, fields: dict[str, str] | None = None,
                     before_post: Callable[[], None] | None = None) -> tuple[str, Reply]:
        """init-image, then the presigned form; the image id and the form's answer."""
        issued = (await self.call("POST", "/v1/init-image", body={"extension": extension})).data
        form = aiohttp.FormData()
        for name, value in {**json.loads(issued["uploadInitImage"]["fields"]), **(fields or {})}.items():
            form.add_field(name, value)
        form.add_field("file", content, filename=f"frame.{extension}", content_type="image/png")
        if before_post is not None:
            before_post()
        reply = await self.call("POST", issued["uploadInitImage"]["url"], key=False, data=form,
                                headers=headers)
        return issued["uploadInitImage"]["id"], reply


def run(scenario: Callable[[Caller], Awaitable[T]], settings: SimSettings | None = None,
        *, clock: SimClock | None = None) -> T:
    """Start a simulator, run the scenario against it, stop it; the scenario's result."""
    async def main() -> T:
        async with Simulator(settings or SimSettings(seed=1), clock=clock) as sim, \
                aiohttp.ClientSession() as session:
            return await scenario(Caller(sim, session))
    return asyncio.run(main())
