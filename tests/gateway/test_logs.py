"""Logging set-up: outbound HTTP clients never log the URLs they call."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from gateway.logs import configure_logging


@pytest.fixture
def restored_logging() -> Iterator[None]:
    root = logging.getLogger()
    names = ("httpx", "httpcore", "uvicorn", "uvicorn.error", "uvicorn.access")
    saved = {
        name: (
            logging.getLogger(name).level,
            logging.getLogger(name).handlers[:],
            logging.getLogger(name).propagate,
            logging.getLogger(name).disabled,
        )
        for name in names
    }
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers, root.level = handlers, level
    for name, (lvl, hs, propagate, disabled) in saved.items():
        logger = logging.getLogger(name)
        logger.level, logger.handlers, logger.propagate, logger.disabled = (
            lvl,
            hs,
            propagate,
            disabled,
        )


@pytest.mark.usefixtures("restored_logging")
def test_http_client_urls_are_not_logged_even_at_debug() -> None:
    configure_logging(fmt="json", level="DEBUG")

    assert not logging.getLogger("httpx").isEnabledFor(logging.INFO)
    assert not logging.getLogger("httpcore").isEnabledFor(logging.INFO)
    assert logging.getLogger("uvicorn.access").disabled
