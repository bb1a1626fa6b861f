"""What the gateway starts and stops with itself, beside the proxy."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable
from typing import Any, Protocol

__all__ = ["Service", "stop_task", "stop_within"]

log = logging.getLogger("spendgate.serve")


class Service(Protocol):
    """Started on the gateway's event loop before it serves, stopped after it stops (a
    shared ledger's background sender, say)."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


async def stop_task(task: asyncio.Task[Any] | None) -> None:
    """Cancel a service's background task (if it has one) and wait until it has stopped."""
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def stop_within(what: str, stopping: Awaitable[None], timeout_s: float) -> None:
    """Await one part's stop for at most ``timeout_s``: a part that hangs (a task that never
    ends) must not keep the gateway from closing its journal and exiting. Logged, and left
    behind when it does not stop in time."""
    task = asyncio.ensure_future(stopping)
    done, _ = await asyncio.wait({task}, timeout=timeout_s)
    if not done:
        log.warning("%s did not stop within %g s: shutting down without it", what, timeout_s)
        task.cancel()
        return
    if not task.cancelled() and (error := task.exception()) is not None:
        log.error("%s failed to stop: %s: %s", what, type(error).__name__, error)
