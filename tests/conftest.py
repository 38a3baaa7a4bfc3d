"""What every test folder shares: the run's log, captured."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from runner.logs import LOGGER


@pytest.fixture
def hailuo_log(caplog: pytest.LogCaptureFixture,
               monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.LogCaptureFixture]:
    """`caplog`, holding the records of the run's log from INFO up, each once, and no other
    logger's (asyncio's word on a task an earlier test left behind, say)."""
    logger = logging.getLogger(LOGGER)
    logger.addHandler(caplog.handler)
    logger.setLevel(logging.INFO)
    monkeypatch.setattr(logger, "propagate", False)  # else caplog gets them through the root too
    ours = logging.Filter(LOGGER)
    caplog.handler.addFilter(ours)
    try:
        yield caplog
    finally:
        caplog.handler.removeFilter(ours)
        logger.removeHandler(caplog.handler)
