"""A part of the gateway that hangs at shutdown is logged and left behind, so the rest (the
journal above all) still closes."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from spendgate.gateway.service import stop_within


async def _stuck() -> None:
    while True:  # ignores cancellation, as a buggy loop would
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            continue


def test_a_stop_that_hangs_is_given_up_after_its_time(caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> float:
        started = time.monotonic()
        await stop_within("stuck part", _stuck(), 0.2)
        return time.monotonic() - started

    with caplog.at_level(logging.WARNING, "spendgate.serve"):
        elapsed = _run_leaving_tasks(main)
    assert 0.2 <= elapsed < 2
    assert "stuck part did not stop within 0.2 s" in caplog.text


def test_a_stop_that_fails_is_logged_and_does_not_raise(caplog: pytest.LogCaptureFixture) -> None:
    async def failing() -> None:
        raise RuntimeError("connection reset")

    with caplog.at_level(logging.ERROR, "spendgate.serve"):
        asyncio.run(stop_within("ledger", failing(), 1))
    assert "ledger failed to stop: RuntimeError: connection reset" in caplog.text


def test_a_stop_that_finishes_in_time_logs_nothing(caplog: pytest.LogCaptureFixture) -> None:
    stopped = []

    async def quick() -> None:
        await asyncio.sleep(0.01)
        stopped.append(True)

    with caplog.at_level(logging.WARNING, "spendgate.serve"):
        asyncio.run(stop_within("quick part", quick(), 1))
    assert stopped == [True]
    assert caplog.text == ""


def _run_leaving_tasks(main: Callable[[], Coroutine[Any, Any, float]]) -> float:
    """asyncio.run cancels leftover tasks and waits for them: the stuck one would never end,
    so run the loop by hand and close it with the stuck task still pending."""
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(main())
    finally:
        loop.close()
