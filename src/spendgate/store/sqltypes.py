"""Column types that make storage exact and backend-neutral."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson
from sqlalchemy import DateTime, Dialect, String, Text
from sqlalchemy.types import TypeDecorator

from spendgate.store.money import from_text, to_text

__all__ = ["CompactJson", "DecimalText", "UnreadableJson", "UtcDateTime"]


class DecimalText(TypeDecorator[Decimal]):
    """A ``Decimal`` stored as canonical text: exact on SQLite, where NUMERIC is a float.

    Not for columns that SQL must add up or compare numerically (see ``money.to_parts``).
    """

    impl = String
    cache_ok = True

    def process_bind_param(self, value: Decimal | None, dialect: Dialect) -> str | None:
        return None if value is None else to_text(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        return None if value is None else from_text(str(value))


class UtcDateTime(TypeDecorator[datetime]):
    """An aware instant, stored as naive UTC (SQLite keeps no offset; one convention for all).

    Naive datetimes are refused: a wall-clock time without a zone is a bug waiting to happen.
    """

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("UtcDateTime needs an aware datetime")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class UnreadableJson:
    """What a ``CompactJson`` column reads as when its text is not JSON (edited by hand, cut
    short): the row's reader refuses that one row, and the query still returns the others."""

    text: str


class CompactJson(TypeDecorator[Any]):
    """JSON as compact text via orjson (no whitespace): decision details stay small."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:
        return None if value is None else orjson.dumps(value).decode()

    def process_result_value(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        try:
            return orjson.loads(value)
        except orjson.JSONDecodeError:
            return UnreadableJson(value)
