"""The zone the CLI prints times in (the global ``--time`` option), apart from the printing
(``output``, which loads Rich) because every command sets it, ``serve`` too, which prints no
time and is better without Rich's memory."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["clock", "use_utc"]


@dataclass(slots=True)
class Clock:
    utc: bool = False


clock = Clock()


def use_utc(utc: bool) -> None:
    """Set the zone of every printed time (the global ``--time`` option)."""
    clock.utc = utc
