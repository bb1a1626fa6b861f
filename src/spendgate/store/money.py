"""Exact storage encodings for ``Decimal`` amounts (money, tokens, request counts).

Two encodings, chosen by how a column is used:

* **Canonical decimal text** (``to_text`` / ``from_text``) for values that are written once and
  read back (prices, estimates, a decision's cost, limits). Any finite ``Decimal`` round-trips
  exactly, on every backend, because the database never interprets it.

* **Split fixed point** (``to_parts`` / ``from_parts``) for amounts the database must *add*
  (``usage_counters.settled``, ``usage_rollups.cost_usd``): two BIGINT columns, ``<x>_units``
  (the floor of the value) and ``<x>_atto`` (the remainder in units of 10⁻¹⁸, in ``[0, 10¹⁸)``).
  ``x = x + excluded.x`` then runs as exact integer arithmetic in SQL on SQLite and PostgreSQL
  alike (SQLite has no exact decimal type: NUMERIC there is a float). A carry moves overflow of
  the atto part into the units (see ``db.upsert_increment``). Range: |units| < 9.2·10¹⁸;
  precision: 18 decimal places. Inputs with more places are rounded half-even at the 18th —
  far below any billable amount (prices with ≤ 12 decimals per 1M tokens stay exact).
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import ROUND_HALF_EVEN, Context, Decimal

from spendgate.domain.amounts import ATTO, ATTO_PLACES, from_atto

__all__ = [
    "ATTO",
    "ATTO_PLACES",
    "from_atto",
    "from_parts",
    "from_text",
    "to_atto",
    "to_parts",
    "to_text",
]

# Big enough that no conversion below ever rounds before the explicit quantize.
_WIDE = Context(prec=80, rounding=ROUND_HALF_EVEN)
_ATTO_QUANTUM = Decimal(1).scaleb(-ATTO_PLACES)


def _finite(value: Decimal) -> Decimal:
    if not isinstance(value, Decimal):
        raise TypeError(f"expected Decimal, got {type(value).__name__}")
    if not value.is_finite():
        raise ValueError(f"cannot store a non-finite amount: {value}")
    return value


def to_text(value: Decimal) -> str:
    """Plain (non-exponent) decimal text; keeps the value's own scale (``1.10`` stays ``1.10``)."""
    return format(_finite(value), "f")


def from_text(text: str) -> Decimal:
    return Decimal(text)


def to_atto(value: Decimal) -> int:
    """The amount as an integer number of 10⁻¹⁸ units (rounded half-even past 18 places, as
    stored; the hot path's ``domain.amounts.to_atto`` rounds up instead)."""
    quantized = _finite(value).quantize(_ATTO_QUANTUM, context=_WIDE)
    return int(quantized.scaleb(ATTO_PLACES, context=_WIDE))


def exact_sum(amounts: Iterable[Decimal]) -> Decimal:
    """The sum of amounts, exactly (in atto-dollars, whatever their exponents)."""
    return from_atto(sum(map(to_atto, amounts)))


def to_parts(value: Decimal) -> tuple[int, int]:
    """``(units, atto)`` with ``value = units + atto·10⁻¹⁸`` and ``0 ≤ atto < 10¹⁸``."""
    # divmod floors, so the atto part is never negative: SQL integer division (which truncates)
    # then agrees with Python's on the carry.
    return divmod(to_atto(value), ATTO)


def from_parts(units: int, atto: int) -> Decimal:
    return from_atto(int(units) * ATTO + int(atto))
