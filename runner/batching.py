"""Group commit: what the engine's jobs hand in during one turn of the event loop (or while the
previous batch is still being written) is handled by one call, and each job goes on only once
its own part of that call is done.

A journal transaction costs the same few page writes whether it holds one job's transition or
fifty, and a worker thread costs a hand-over each time it is woken; batching pays each once per
batch instead of once per job, while every job still waits for its own write before it takes
the step that follows (a `submitting` batch is flushed to disk before any of its creates is sent).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from functools import partial
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")
Waiting = list[tuple[T, "asyncio.Future[R]"]]


class Batcher(Generic[T, R]):
    """Hands items to `handle` in batches, in the loop's thread or, with `in_thread`, in a
    worker thread (one batch at a time, so it is the only writer). `handle` takes the items in
    order and returns one result for each."""

    def __init__(self, handle: Callable[[list[T]], Sequence[R]], *, in_thread: bool = False) -> None:
        self._handle = handle
        self._in_thread = in_thread
        self._waiting: Waiting[T, R] = []
        self._busy = False

    async def submit(self, item: T) -> R:
        """`item` handled (with whatever else is waiting); its result."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[R] = loop.create_future()
        self._waiting.append((item, done))
        if not self._busy:
            self._busy = True
            loop.call_soon(self._start)
        return await done

    def _start(self) -> None:
        waiting, self._waiting = self._waiting, []
        items = [item for item, _ in waiting]
        if self._in_thread:
            running = asyncio.get_running_loop().run_in_executor(None, self._handle, items)
            running.add_done_callback(partial(self._finished, waiting))
            return
        outcome: asyncio.Future[Sequence[R]] = asyncio.get_running_loop().create_future()
        try:
            outcome.set_result(self._handle(items))
        except BaseException as exc:
            outcome.set_exception(exc)
            self._finished(waiting, outcome)
            if isinstance(exc, Exception):
                return  # delivered: every item of the batch raises it where it waits
            raise
        self._finished(waiting, outcome)

    def _finished(self, waiting: Waiting[T, R], outcome: asyncio.Future[Sequence[R]]) -> None:
        error = outcome.exception()
        results = outcome.result() if error is None else [None] * len(waiting)
        for (_, done), result in zip(waiting, results, strict=True):
            if done.done():
                continue
            if error is not None:
                done.set_exception(error)
            else:
                done.set_result(result)
        self._busy = False
        if self._waiting:
            self._busy = True
            asyncio.get_running_loop().call_soon(self._start)
