"""Group commit: the transitions the engine's jobs make in one turn of the event loop share one
journal transaction, and each job goes on only once its own transition is written.

A transaction costs the same few page writes whether it holds one job's transition or fifty, so
at full speed this cuts the journal's work several times over while every job still waits for
its transition to be on record before it takes the step that follows (a `submitting` batch is
flushed to disk before any of its creates is sent).
"""

from __future__ import annotations

import asyncio

from runner.state import JobRow, Journal, Move


class Recorder:
    """Collects moves until the loop's current turn is over, then applies them together."""

    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        self._waiting: list[tuple[Move, asyncio.Future[JobRow]]] = []

    async def record(self, move: Move) -> JobRow:
        """Write `move` (with whatever else is waiting); the job's row as it is afterwards."""
        loop = asyncio.get_running_loop()
        if not self._waiting:
            loop.call_soon(self._flush)
        done: asyncio.Future[JobRow] = loop.create_future()
        self._waiting.append((move, done))
        return await done

    def _flush(self) -> None:
        waiting, self._waiting = self._waiting, []
        try:
            rows = self.journal.apply([move for move, _ in waiting])
        except BaseException as exc:
            for _, done in waiting:
                if not done.done():
                    done.set_exception(exc)
            if isinstance(exc, Exception):
                return  # delivered: every job of the batch raises it where it waits
            raise
        for (_, done), row in zip(waiting, rows, strict=True):
            if not done.done():
                done.set_result(row)
