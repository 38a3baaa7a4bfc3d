"""Starting and stopping the simulator: in the caller's event loop (`Simulator`), in a thread of
its own for synchronous code (`run_in_thread`), or in the foreground until a signal (`serve`).
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self, TypeVar

from aiohttp import web

from runner.errors import UsageError
from runner.simulator import statefile
from runner.simulator.app import API_ROOT, build_app
from runner.simulator.backend import Backend
from runner.simulator.books import Summary
from runner.simulator.limits import SimClock
from runner.simulator.media import Media, load_clips
from runner.simulator.settings import SimSettings
from runner.simulator.statefile import StateFile

HOST = "127.0.0.1"
T = TypeVar("T")


class Simulator:
    """A local Leonardo API on 127.0.0.1: `async with Simulator(settings) as sim: ...`."""

    def __init__(self, settings: SimSettings | None = None, *, clock: SimClock | None = None) -> None:
        """`clock` replaces the one built from `settings.time_scale` (tests drive it by hand)."""
        self.settings = settings or SimSettings()
        self.clock = clock or SimClock(self.settings.time_scale)
        self._backend: Backend | None = None
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def api_key(self) -> str:
        return self.settings.api_key

    @property
    def origin(self) -> str:
        """Where the simulator listens; the CDN and the upload form live below it."""
        return f"http://{HOST}:{self.port}"

    @property
    def base_url(self) -> str:
        """The API root, below which `/v1/...` and `/v2/...` live."""
        return self.origin + API_ROOT

    @property
    def balance(self) -> int | None:
        """The account's credits now, None when unlimited."""
        if self._backend is None:
            raise RuntimeError("the simulator is not running")
        return self._backend.balance

    @property
    def books(self) -> Summary:
        """The audit summary and the generations held, as of now."""
        if self._backend is None:
            raise RuntimeError("the simulator is not running")
        return self._backend.summary()

    async def __aenter__(self) -> Self:
        clips = load_clips()
        backend = self._open_account(len(clips))
        runner = web.AppRunner(build_app(backend, Media(backend, clips)), handle_signals=False,
                               access_log=None, shutdown_timeout=1.0)
        try:
            await runner.setup()
            site = web.TCPSite(runner, HOST, self.settings.port)
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            backend.stop()
            raise UsageError(f"port {self.settings.port}: cannot listen on {HOST}: "
                             f"{exc.strerror or exc}") from exc
        self._backend, self._runner = backend, runner
        self.port = runner.addresses[0][1]
        backend.origin = self.origin
        return self

    def _open_account(self, clips: int) -> Backend:
        """A fresh account, or the one kept in the state file, carried on from where it was;
        the state file is this simulator's alone until it stops."""
        path = self.settings.state_path
        if path is None:
            return Backend(self.settings, self.clock, clips=clips)
        with ExitStack() as undo:  # whatever fails, nothing stays open or held
            held = statefile.lock(path)
            undo.callback(held.release)
            saved = statefile.read(path, clips=clips)
            if saved is not None:
                self.settings = self.settings.with_account(saved.user_id, saved.username)
                self.clock.resume(saved.resume_at(self.clock.wall()), epoch=saved.epoch)
            backend = Backend(self.settings, self.clock, clips=clips)
            undo.callback(backend.stop)
            if saved is not None:
                backend.restore(saved)
            backend.kept = StateFile.open(path, self.clock, backend.account(), held)
            undo.pop_all()
        return backend

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._backend is not None:
            self._backend.stop()


class ThreadedSimulator:
    """A simulator running in a thread of its own; everything it holds is read in that thread."""

    def __init__(self, simulator: Simulator, loop: asyncio.AbstractEventLoop) -> None:
        self._simulator = simulator
        self._loop = loop
        self.settings = simulator.settings
        self.api_key = simulator.api_key
        self.origin = simulator.origin
        self.base_url = simulator.base_url
        self.port = simulator.port

    def call(self, action: Callable[[Simulator], T]) -> T:
        """Run `action(simulator)` in the simulator's thread and return its result."""
        async def run() -> T:
            return action(self._simulator)
        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(timeout=30)

    @property
    def books(self) -> Summary:
        return self.call(lambda sim: sim.books)

    def advance(self, seconds: float) -> None:
        """Jump the simulated clock forward."""
        self.call(lambda sim: sim.clock.advance(seconds))


@contextmanager
def run_in_thread(settings: SimSettings | None = None) -> Iterator[ThreadedSimulator]:
    """`with run_in_thread(settings) as sim:` for synchronous code; stopped when the block ends."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=_run_loop, args=(loop,), name="leonardo-simulator", daemon=True)
    thread.start()
    simulator = Simulator(settings)
    try:
        asyncio.run_coroutine_threadsafe(simulator.__aenter__(), loop).result(timeout=30)
        yield ThreadedSimulator(simulator, loop)
    finally:
        asyncio.run_coroutine_threadsafe(simulator.close(), loop).result(timeout=30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=30)


@dataclass(frozen=True)
class ProcessSimulator:
    """A simulator in a process of its own (`hailuo-batch simulate`): it shares no interpreter
    lock with the client it serves, and it can be killed, as a real server can go away."""

    base_url: str
    api_key: str = field(repr=False)
    process: subprocess.Popen[str] = field(repr=False)


@contextmanager
def run_in_process(settings: Mapping[str, Any]) -> Iterator[ProcessSimulator]:
    """`with run_in_process({"time_scale": 60, ...}) as sim:` a simulator process with these
    settings (by SimSettings field name; None as "none"), stopped when the block ends unless it
    was killed within it."""
    command = [sys.executable, "-m", "runner", "simulate",
               *(f"--set={name}={'none' if value is None else value}" for name, value in settings.items())]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        found: dict[str, str] = {}
        for line in process.stdout:
            name, _, value = line.strip().partition(": ")
            found[name] = value.strip()
            if name == "API key":
                break
        yield ProcessSimulator(found["base URL"], found["API key"], process)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
        process.communicate(timeout=30)


def _run_loop(loop: asyncio.AbstractEventLoop) -> None:
    asyncio.set_event_loop(loop)
    try:
        loop.run_forever()
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


async def serve(settings: SimSettings, *, announce: Callable[[Simulator], None]) -> Summary:
    """Serve until SIGINT or SIGTERM; `announce` is told where, once listening. The final books."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    signals = (signal.SIGINT, signal.SIGTERM)
    for number in signals:
        loop.add_signal_handler(number, stop.set)
    try:
        async with Simulator(settings) as simulator:
            announce(simulator)
            await stop.wait()
            return simulator.books
    finally:
        for number in signals:
            loop.remove_signal_handler(number)
