"""The simulator's books: a JSON-lines request log and the summary a test or a user audits.

The summary answers the questions a batch runner must be able to face: how many creates were
paid for, how many of them repeated an identical body (a double billing), how hard the slots,
the queue and the create limit were pushed.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from aiohttp import web

from runner.errors import UsageError
from runner.lock import file_in_the_way
from runner.plan import canonical_json
from runner.simulator.limits import RateWindow
from runner.simulator.render import Generation

RESET = 0  # the status logged for a call whose connection was reset: it got no answer
HUNG_UP = 499  # the status logged for a call whose client hung up before its answer, as nginx logs it
# What a call met, noted on the request by the routes for the log line the guard writes.
CALL_FAULTS = web.RequestKey("faults", list)
CALL_GENERATION = web.RequestKey("generation", str)


@dataclass(frozen=True, slots=True)
class GenerationRecord:
    """One generation the simulator holds, as the books show it (times in simulated seconds)."""

    id: str
    status: str
    model: str
    prompt: str
    request: dict[str, Any]
    created_at: float
    started_at: float | None
    finished_at: float | None
    clip: int
    cost_credits: int
    deleted: bool


@dataclass(frozen=True, slots=True)
class Summary:
    """The audit at one moment. `requests` counts calls by endpoint, then by status."""

    creates_accepted: int
    duplicate_creates: int
    peak_concurrent_renders: int
    peak_creates_per_minute: int
    peak_queue: int
    credits_spent: int
    requests: dict[str, dict[int, int]]
    faults: dict[str, int]
    generations: tuple[GenerationRecord, ...]

    def as_dict(self) -> dict[str, Any]:
        """The figures as plain JSON-ready values, the generations by status only."""
        return {
            "creates_accepted": self.creates_accepted,
            "duplicate_creates": self.duplicate_creates,
            "peak_concurrent_renders": self.peak_concurrent_renders,
            "peak_creates_per_minute": self.peak_creates_per_minute,
            "peak_queue": self.peak_queue,
            "credits_spent": self.credits_spent,
            "requests": {endpoint: {str(status): n for status, n in sorted(by_status.items())}
                         for endpoint, by_status in sorted(self.requests.items())},
            "faults": dict(sorted(self.faults.items())),
            "generations": dict(sorted(Counter(g.status for g in self.generations).items())),
        }


class Books:
    """Counts every call and every accepted create; writes the request log when asked to."""

    def __init__(self, log_path: Path | None) -> None:
        self._log: TextIO | None = None
        if log_path is not None:
            try:
                # Open for the simulator's whole life, one line a call; `close` ends it.
                self._log = open(log_path, "a", encoding="utf-8", buffering=1)  # noqa: SIM115
            except OSError as exc:
                problem = file_in_the_way(log_path) or exc.strerror
                raise UsageError(f"{log_path}: cannot write the request log: {problem}") from exc
        self._requests: Counter[tuple[str, int]] = Counter()
        self._faults: Counter[str] = Counter()
        self._bodies: set[bytes] = set()
        self._creates = RateWindow(None)
        self.creates_accepted = 0
        self.duplicate_creates = 0
        self.credits_spent = 0
        self.peak_rendering = 0
        self.peak_queue = 0

    def record_call(self, *, at: float, endpoint: str, method: str, path: str, status: int,
                    faults: list[str], generation: str | None, real_ms: float) -> None:
        self._requests[endpoint, status] += 1
        if self._log is not None:
            self._log.write(json.dumps({
                "at": round(at, 3), "endpoint": endpoint, "method": method, "path": path,
                "status": status, "faults": faults, "generation": generation,
                "ms": round(real_ms, 2)}) + "\n")

    def record_fault(self, name: str) -> None:
        self._faults[name] += 1

    def remember(self, generations: Iterable[Generation]) -> None:
        """Bodies accepted before this process started (a saved account), so that a create
        repeating one after a restart still counts as a duplicate; the counts stay this process's."""
        self._bodies.update(_digest(generation) for generation in generations)

    def record_create(self, generation: Generation, *, rendering: int, queued: int) -> None:
        """An accepted (billed) create, with the load it left behind."""
        digest = _digest(generation)
        self.duplicate_creates += digest in self._bodies
        self._bodies.add(digest)
        self.creates_accepted += 1
        self.credits_spent += generation.cost_credits
        self._creates.add(generation.created_at)
        self.peak_rendering = max(self.peak_rendering, rendering)
        self.peak_queue = max(self.peak_queue, queued)

    def summary(self, generations: Iterable[Generation]) -> Summary:
        requests: dict[str, dict[int, int]] = {}
        for (endpoint, status), count in self._requests.items():
            requests.setdefault(endpoint, {})[status] = count
        return Summary(
            creates_accepted=self.creates_accepted, duplicate_creates=self.duplicate_creates,
            peak_concurrent_renders=self.peak_rendering,
            peak_creates_per_minute=self._creates.peak, peak_queue=self.peak_queue,
            credits_spent=self.credits_spent, requests=requests, faults=dict(self._faults),
            generations=tuple(_record(g) for g in generations))

    def close(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None


def _digest(generation: Generation) -> bytes:
    return hashlib.sha256(canonical_json(generation.request).encode("utf-8")).digest()


def _record(generation: Generation) -> GenerationRecord:
    return GenerationRecord(
        id=generation.id, status=generation.status, model=generation.request["model"],
        prompt=generation.parameters["prompt"], request=generation.request,
        created_at=generation.created_at, started_at=generation.started_at,
        finished_at=generation.finished_at, clip=generation.clip,
        cost_credits=generation.cost_credits, deleted=generation.deleted)
