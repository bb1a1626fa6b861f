"""What the gateway starts and stops with itself, beside the proxy."""

from __future__ import annotations

from typing import Protocol

__all__ = ["Service"]


class Service(Protocol):
    """Started on the gateway's event loop before it serves, stopped after it stops (a
    shared ledger's background sender, say)."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...
