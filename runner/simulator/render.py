"""The render lifecycle: concurrency slots, the queue behind them, and when each clip is done.

Rendering is an event simulation evaluated when a request asks (`catch_up`), not a sleeping task
per generation, so the simulator can hold many thousands of generations cheaply: a heap of the
renders in the slots by finish time, and a FIFO queue behind them. When a render finishes at
time t, the head of the queue takes its slot at that same t.
"""

from __future__ import annotations

import heapq
import itertools
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

PENDING, COMPLETE, FAILED = "PENDING", "COMPLETE", "FAILED"


@dataclass(slots=True, eq=False)
class Generation:
    """One accepted create. `outcome` is decided when it is accepted; `status` shows it once done.
    `created_at` is the simulated instant it was accepted, `made_at` the real one (seconds since
    1970), which `createdAt` shows, as the API's own clock would: at any time scale a client can
    compare it with the real time it sent its create (None in a state file written before it
    was kept: `createdAt` is then read off the simulated clock)."""

    id: str
    request: dict[str, Any]
    created_at: float
    render_seconds: float
    outcome: str
    clip: int
    cost_credits: int
    image_id: str
    moderated: bool = False
    status: str = PENDING
    started_at: float | None = None
    finished_at: float | None = None
    deleted: bool = False
    made_at: float | None = None

    @property
    def parameters(self) -> dict[str, Any]:
        return self.request["parameters"]


class Renderer:
    """Slots and queue of one API key."""

    def __init__(self, slots: int, queue_limit: int) -> None:
        self.slots = slots
        self.queue_limit = queue_limit
        self._rendering: list[tuple[float, int, Generation]] = []
        self._queue: deque[Generation] = deque()
        self._order = itertools.count()

    @property
    def rendering(self) -> int:
        return len(self._rendering)

    @property
    def queued(self) -> int:
        return len(self._queue)

    def catch_up(self, now: float) -> None:
        """Finish every render due by `now`, starting queued ones in the slots they free."""
        heap = self._rendering
        while heap and heap[0][0] <= now:
            finished_at, _, generation = heapq.heappop(heap)
            generation.status = generation.outcome
            if self._queue:
                self._start(self._queue.popleft(), finished_at)

    def room_in(self, now: float) -> float | None:
        """None when a create fits now; else the simulated seconds until a slot frees."""
        self.catch_up(now)
        if len(self._rendering) < self.slots or len(self._queue) < self.queue_limit:
            return None
        return self._rendering[0][0] - now

    def submit(self, generation: Generation, now: float) -> None:
        """Start the render if a slot is free, else queue it (the caller checked `room_in`)."""
        if len(self._rendering) < self.slots:
            self._start(generation, now)
        else:
            self._queue.append(generation)

    def restore(self, generations: Iterable[Generation], now: float) -> None:
        """Take back saved generations, oldest first: each unfinished one rendering if it had
        started, else queued; then bring them up to `now` and fill any slot left free (the
        account may come back with more slots than it was saved with)."""
        for generation in generations:
            if generation.status != PENDING:
                continue
            if generation.started_at is None:
                self._queue.append(generation)
            else:
                finished_at = generation.started_at + generation.render_seconds
                heapq.heappush(self._rendering, (finished_at, next(self._order), generation))
        self.catch_up(now)
        while self._queue and len(self._rendering) < self.slots:
            self._start(self._queue.popleft(), now)

    def _start(self, generation: Generation, now: float) -> None:
        generation.started_at = now
        generation.finished_at = now + generation.render_seconds
        heapq.heappush(self._rendering, (generation.finished_at, next(self._order), generation))
