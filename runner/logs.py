"""Logs for people and for machines: plain lines, or one JSON object a line (`--log-format json`).

Every record goes to the log file when one is given, and to standard error otherwise; a cron
mail then reads as a short story of the run. The warnings a person must act on (a notification
that failed, a key file others may read), logged through ACT, reach standard error beside a log
file too: a broken webhook would otherwise go unnoticed in a file nobody reads. Nothing here
ever sees the API key: callers log events and figures, never requests' headers.
"""

from __future__ import annotations

import copy
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from runner.errors import UsageError, one_line
from runner.lock import file_in_the_way

LOGGER = "hailuo"
ACT = f"{LOGGER}.act"  # the warnings a person must act on: see the module's doc
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, message, and the record's extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
                    + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(), "message": record.getMessage()}
        entry.update({k: v for k, v in vars(record).items() if k not in _STANDARD})
        return json.dumps(entry, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    def __init__(self, fmt: str = "%(asctime)s %(levelname)s %(message)s") -> None:
        super().__init__(fmt, "%Y-%m-%d %H:%M:%S")
        self.converter = time.gmtime

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 (logging's name)
        """The record's line. Its message may carry text from outside (an API's answer, a
        prompt): each of its lines is kept to one (`one_line`), and a line after its first is
        indented, so that none reads as a record of its own (`... INFO run ended: ... exit 0`)
        or rewrites one on a terminal."""
        shown = copy.copy(record)
        shown.message = "\n    ".join(map(one_line, record.message.split("\n")))
        return super().formatMessage(shown)


class LogFile(logging.FileHandler):
    """A `--log-file` whose first failed write (a full disk, /dev/full) is said in one line on
    standard error, and any later one not at all: the run goes on, and a cron mail carries that
    line rather than the traceback logging's default prints for each record."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, encoding="utf-8")
        self.path = path
        self.failed = False

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 (logging's name)
        error = sys.exc_info()[1]
        if not isinstance(error, OSError):  # a record that cannot be formatted: a bug, traced
            super().handleError(record)
            return
        if not self.failed:
            self.failed = True
            sys.stderr.write(f"warning: --log-file {self.path}: cannot write it "
                             f"({error.strerror or error}); the run goes on, its log incomplete\n")


def configure(*, log_file: Path | None, fmt: str, stream: TextIO | None = None,
              level: int = logging.INFO) -> logging.Logger:
    """The runner's logger, writing to `log_file` (appending) or to `stream` (stderr); beside a
    log file, the warnings logged through ACT go to `stream` too, each a line of its own as
    LogFile says its failure: `warning: ...`."""
    logger = logging.getLogger(LOGGER)
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()
    if log_file is not None:
        try:
            log_file.parent.mkdir(parents=True, exist_ok=True)
            handler: logging.Handler = LogFile(log_file)
        except OSError as exc:
            problem = file_in_the_way(log_file)
            raise UsageError(f"--log-file {log_file}: {problem}" if problem else
                             f"--log-file {log_file}: cannot write it ({exc.strerror})") from exc
    else:
        handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    logger.addHandler(handler)
    if log_file is not None:
        told = logging.StreamHandler(stream or sys.stderr)
        told.addFilter(logging.Filter(ACT))
        told.setLevel(logging.WARNING)
        told.setFormatter(TextFormatter("warning: %(message)s"))
        logger.addHandler(told)
    logger.setLevel(level)
    logger.propagate = False
    return logger
