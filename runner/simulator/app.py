"""The simulator's routes: the Leonardo REST API below /api/rest, and the guard every call passes.

The guard is where a call meets the world as it is: faults that strike before anything happens
(a reset connection, a slow answer, a 500), then the key and the request limit, then the route,
then the fault that garbles a good answer. Every call is written to the books, whatever it met;
one whose client hung up before its answer (a slow answer past the client's timeout, the ordinary
end of that fault) is written there with status 499 and told nowhere else.
"""

from __future__ import annotations

import asyncio
import json
import socket
import struct
import time
from collections.abc import Awaitable, Callable
from email.utils import formatdate
from typing import Any

from aiohttp import web

from runner.catalog import Violation
from runner.simulator import answers
from runner.simulator.answers import Refusal, v1_error
from runner.simulator.backend import Backend
from runner.simulator.books import CALL_FAULTS, CALL_GENERATION, HUNG_UP, RESET
from runner.simulator.media import Media
from runner.simulator.uploads import UPLOAD_PATH

API_ROOT = "/api/rest"
API_ROUTES = frozenset({"create", "poll", "list", "delete", "me", "init-image"})
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# The tasks answering a call now, so that the simulator's stop can end those whose client is gone.
ANSWERING = web.AppKey("answering", set[asyncio.Task[None]])


def build_app(backend: Backend, media: Media) -> web.Application:
    """The aiohttp application serving one simulated account."""
    api = Api(backend)
    app = web.Application(middlewares=[_guard(backend)])
    app[ANSWERING] = set()
    app.on_cleanup.append(_end_answers)
    add = app.router.add_route
    add("POST", f"{API_ROOT}/v2/generations", api.create, name="create")
    add("GET", f"{API_ROOT}/v1/generations/user/{{user_id}}", api.listing, name="list")
    add("GET", f"{API_ROOT}/v1/generations/{{id}}", api.poll, name="poll")
    add("DELETE", f"{API_ROOT}/v1/generations/{{id}}", api.delete, name="delete")
    add("GET", f"{API_ROOT}/v1/me", api.me, name="me")
    add("POST", f"{API_ROOT}/v1/init-image", api.init_image, name="init-image")
    add("*", f"{API_ROOT}/{{tail:.*}}", api.not_found, name="unknown")
    add("POST", UPLOAD_PATH, media.upload, name="upload")
    add("GET", "/cdn/users/{user_id}/generations/{id}/{name}", media.cdn, name="cdn")
    return app


def json_answer(body: Any, status: int = 200) -> web.Response:
    return web.Response(body=json.dumps(body).encode(), status=status, content_type="application/json")


class Api:
    """The API routes proper; the key and the limits were checked by the guard."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend

    async def create(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError:
            raise Refusal(400, answers.validation_errors(
                [Violation("body", "$", "the request body is not valid JSON")])) from None
        if self.backend.hit("create_late"):
            request[CALL_FAULTS].append("create_late")
            self.backend.create_later(body)
            return json_answer(answers.SERVICE_ERROR, 500)
        generation, answer = self.backend.create(body)
        request[CALL_GENERATION] = generation.id
        if self.backend.hit("create_500"):
            request[CALL_FAULTS].append("create_500")
            return json_answer(answers.SERVICE_ERROR, 500)
        return json_answer(answer)

    async def poll(self, request: web.Request) -> web.Response:
        request[CALL_GENERATION] = request.match_info["id"]
        return json_answer(self.backend.poll(request.match_info["id"]))

    async def listing(self, request: web.Request) -> web.Response:
        return json_answer(self.backend.listing(request.match_info["user_id"], request.query))

    async def delete(self, request: web.Request) -> web.Response:
        request[CALL_GENERATION] = request.match_info["id"]
        return json_answer(self.backend.delete(request.match_info["id"]))

    async def me(self, request: web.Request) -> web.Response:
        return json_answer(self.backend.me())

    async def init_image(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError:
            raise Refusal(400, v1_error("the request body is not valid JSON", "validation-failed")) from None
        return json_answer(self.backend.uploads.issue(body, self.backend.origin))

    async def not_found(self, request: web.Request) -> web.Response:
        """Any other path or method, `GET /v2/generations/{id}` among them, as the live API says."""
        return json_answer(answers.NOT_FOUND, 404)


def _guard(backend: Backend) -> Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]:
    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        started = time.perf_counter()
        request[CALL_FAULTS] = []
        answering = request.app[ANSWERING]
        answering.add(request.task)
        try:
            response = await _answer(backend, request, handler)
        except ConnectionResetError:
            if request.transport is not None:
                raise  # the client is still there: the simulator's own fault, with its traceback
            response = web.Response(status=HUNG_UP)  # nobody is left to read it
        finally:
            answering.discard(request.task)
        if not response.prepared and not backend.settings.date_header:
            response.headers["Date"] = ""
        elif not response.prepared and backend.settings.clock_ahead:
            response.headers["Date"] = formatdate(backend.server_time(), usegmt=True)
        endpoint = request.match_info.route.name or "unknown"
        hung_up = request.transport is None
        backend.books.record_call(
            at=backend.clock.now(), endpoint=endpoint, method=request.method, path=request.path,
            status=RESET if "reset" in request[CALL_FAULTS] else HUNG_UP if hung_up else response.status,
            faults=request[CALL_FAULTS], generation=request.get(CALL_GENERATION),
            real_ms=(time.perf_counter() - started) * 1000)
        return response
    return guard


async def _answer(backend: Backend, request: web.Request, handler: Handler) -> web.StreamResponse:
    faults: list[str] = request[CALL_FAULTS]
    if backend.hit("reset"):
        faults.append("reset")
        _reset(request)
        return web.Response(status=204)
    if backend.hit("slow"):
        faults.append("slow")
        await asyncio.sleep(backend.clock.real_seconds(backend.settings.slow_seconds))
    if backend.hit("500"):
        faults.append("500")
        return json_answer(answers.SERVICE_ERROR, 500)
    is_api = request.match_info.route.name in API_ROUTES
    try:
        if is_api:
            backend.authorize(request.headers.get("Authorization"))
            backend.admit()
        response = await handler(request)
    except Refusal as refusal:
        if refusal.content_type != "application/json":
            return web.Response(text=refusal.body, status=refusal.status, headers=refusal.headers,
                                content_type=refusal.content_type)
        return web.Response(body=json.dumps(refusal.body).encode(), status=refusal.status,
                            headers=refusal.headers, content_type="application/json")
    if is_api and response.status == 200 and backend.hit("not_json"):
        faults.append("not_json")
        return web.Response(text=answers.NOT_JSON, content_type="text/html")
    return response


async def _end_answers(app: web.Application) -> None:
    """Once the server has shut down, the calls still being answered are those whose client hung
    up during a slow answer: end them, so that none is left pending when the simulator's loop
    closes."""
    answering = app[ANSWERING]
    for task in answering:
        task.cancel()
    if answering:
        await asyncio.wait(set(answering))


def _reset(request: web.Request) -> None:
    """Drop the connection with a TCP reset (linger 0), as a failing load balancer would."""
    transport = request.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()
