"""Helpers of the nightly tests: a small manifest, the real command in a child process, a webhook
receiver on 127.0.0.1, and a clock that runs at the simulator's time scale.

Every run goes over real sockets to the project's simulator, served from a thread of the test;
the command runs as `python -m runner run` in a child process with no terminal, as cron runs it.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import yaml
from sharedkit import Quiet, serving

from runner.simulator import SimSettings, ThreadedSimulator

ROOT = Path(__file__).resolve().parents[2]
PROMPTS = ["Steam rising from a cup of coffee on a wooden table",
           "Fishing boats leaving a small harbor at sunrise"]


def sim_settings(**changes: Any) -> SimSettings:
    """A simulator whose renders take 0.05 real seconds and which limits nothing."""
    values: dict[str, Any] = {"render_seconds": 5.0, "render_jitter_seconds": 0.0,
                              "time_scale": 100.0, "creates_per_minute": None,
                              "requests_per_minute": None, "seed": 11}
    values.update(changes)
    return SimSettings(**values)


def write_manifest(folder: Path, *, repeat: int = 2,
                   output_dir: str = "out/{name}", run: dict[str, Any] | None = None,
                   **extra: Any) -> Path:
    """Two prompts x two vibes x `repeat`: 8 jobs at $0.27 by default, fast to run."""
    document: dict[str, Any] = {
        "version": 1, "name": "nightly",
        "defaults": {"model": "hailuo-2_3", "resolution": "768p", "duration": 6,
                     "aspect_ratio": "16:9"},
        "prompts": PROMPTS, "styles": {"vibe": ["Stock Footage", "none"]}, "repeat": repeat,
        "run": {"concurrency": 4, "submit_per_minute": 60000, "poll_interval": "0.05s",
                "timeout": "30s", **(run or {})},
        "output": {"dir": output_dir, "filename": "{prompt}/{vibe}_{n}.mp4"},
        **extra}
    path = folder / f"{document['name']}.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return path


def key_file(folder: Path, sim: ThreadedSimulator) -> Path:
    path = folder / "api-key"
    path.write_text(sim.api_key + "\n", encoding="utf-8")
    path.chmod(0o600)  # as the README has it made: its owner's alone
    return path


def command(*args: str | Path) -> list[str]:
    """`hailuo-batch ARGS` as this interpreter runs it."""
    return [sys.executable, "-m", "runner", *map(str, args)]


def run_cli(*args: str | Path, cwd: Path, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    """`hailuo-batch ARGS` to the end, its output captured (so it has no terminal), without a
    key or API root from this environment."""
    return subprocess.run(command(*args), cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=child_env(), check=False)


@contextmanager
def started(*args: str | Path, cwd: Path,
            until: str = "INFO run started: ") -> Iterator[subprocess.Popen[str]]:
    """`hailuo-batch ARGS` running until its log has a line with `until` (by default, that the run
    started, so it holds the folder's lock); SIGKILLed when the block ends if it is still
    running."""
    with subprocess.Popen(command(*args), cwd=cwd, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True) as child:
        try:
            assert child.stderr is not None
            lines = []
            for line in child.stderr:
                lines.append(line)
                if until in line:
                    break
            else:
                raise AssertionError(f"the run never logged {until!r}: {''.join(lines)}")
            yield child
        finally:
            child.kill()
            child.communicate()


def json_log(path: Path) -> list[dict[str, Any]]:
    """Every line of a `--log-format json` file, each one JSON object."""
    return [json.loads(line) for line in path.read_text("utf-8").splitlines()]


def summary(out: Path) -> dict[str, Any]:
    return json.loads((out / "summary.json").read_text("utf-8"))


@dataclass
class Receiver:
    """A webhook on 127.0.0.1 that keeps every body it is sent."""

    url: str
    received: list[dict[str, Any]] = field(default_factory=list)
    status: int = 204


@contextmanager
def receiver() -> Iterator[Receiver]:
    found = Receiver("")

    class Handler(Quiet, BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (the stdlib's name)
            body = self.rfile.read(int(self.headers["content-length"]))
            found.received.append(json.loads(body))
            self.send_response(found.status)
            self.end_headers()

    with serving(Handler) as root:
        found.url = f"{root}/hooks/hailuo"
        yield found


@dataclass
class Trickle:
    """A webhook that answers a byte at a time: `asked` once it holds the request, and its
    connection closed once `stop` is set."""

    url: str
    asked: threading.Event = field(default_factory=threading.Event)
    stop: threading.Event = field(default_factory=threading.Event)


@contextmanager
def trickling(head: bytes) -> Iterator[Trickle]:
    """A webhook on 127.0.0.1 that answers `head` at once, then one byte every 50 ms."""
    server = socket.create_server(("127.0.0.1", 0))
    found = Trickle(f"http://127.0.0.1:{server.getsockname()[1]}/hooks/hailuo")

    def serve() -> None:
        try:
            connection, _ = server.accept()
            with connection:
                connection.recv(65536)
                found.asked.set()
                connection.sendall(head)
                while not found.stop.wait(0.05):
                    connection.sendall(b"x")
        except OSError:  # the client hung up, or nobody came and the server was shut
            return

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield found
    finally:
        found.stop.set()
        server.shutdown(socket.SHUT_RDWR)  # wakes an accept() still waiting
        server.close()
        thread.join()


def closed_port_url() -> str:
    """A URL on 127.0.0.1 where nothing listens: a receiver that is down."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/hooks/hailuo"


def child_env(**changes: str) -> dict[str, str]:
    """This environment without a key of its own, plus `changes`."""
    env = {k: v for k, v in os.environ.items() if k not in ("LEONARDO_API_KEY", "LEONARDO_BASE_URL")}
    env.update(changes)
    return env


class ScaledClock:
    """The runner's clock at the simulator's time scale: `scale` seconds pass each real second,
    so a run's `max_runtime`, grace and polls are read in the simulator's seconds."""

    def __init__(self, scale: float) -> None:
        self.scale = scale
        self._mono = time.monotonic()
        self._wall = time.time()

    def now(self) -> float:
        return (time.monotonic() - self._mono) * self.scale

    def wall(self) -> float:
        return self._wall + self.now()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds) / self.scale)
