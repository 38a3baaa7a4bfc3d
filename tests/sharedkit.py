"""Helpers the test folders share: an HTTP server of a test's own on 127.0.0.1, the simulated
account a state file keeps, and a folder's journal read from outside the run writing it."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from runner.simulator import statefile
from runner.simulator.media import load_clips


class Quiet:
    """A request handler's mixin that logs nothing: the test reads what was asked and answered."""

    def log_message(self, *args: object) -> None:
        """Nothing logged."""


@contextmanager
def serving(handler: Callable[..., BaseHTTPRequestHandler]) -> Iterator[str]:
    """`handler` answering on 127.0.0.1, from a thread, until the block ends; its root URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def kept_account(path: Path) -> statefile.Account | None:
    """The simulated account the state file `path` keeps, read as the simulator reads it; None
    when there is no such file."""
    return statefile.read(path, clips=len(load_clips()))


def journal_rows_now(out: Path, sql: str) -> list[tuple[Any, ...]]:
    """The rows `sql` reads from the folder's journal as it is now, from outside the process
    writing it; none while it has no journal yet."""
    try:
        conn = sqlite3.connect(f"file:{out / 'journal.sqlite'}?mode=ro", uri=True, timeout=5)
        try:
            return conn.execute(sql).fetchall()
        finally:
            conn.close()
    except sqlite3.OperationalError:
        return []
