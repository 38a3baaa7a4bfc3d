"""What every test folder shares: the run's log, captured."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from runner.logs import LOGGER


@pytest.fixture
def hailuo_log(caplog: pytest.LogCaptureFixture,
               monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.LogCaptureFixture]:
    """`caplog`, holding the records of the run's log from INFO up, each once."""
    logger = logging.getLogger(LOGGER)
    logger.addHandler(caplog.handler)
    logger.setLevel(logging.INFO)
    monkeypatch.setattr(logger, "propagate", False)  # else caplog gets them through the root too
    try:
        yield caplog
    finally:
        logger.removeHandler(caplog.handler)
