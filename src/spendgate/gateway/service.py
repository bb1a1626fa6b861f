"""What the gateway starts and stops with itself, beside the proxy."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, Protocol

__all__ = ["Service", "stop_task"]


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
