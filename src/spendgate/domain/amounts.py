"""The amounts a record may hold (limits, thresholds, prices): finite, below ``MAX_AMOUNT`` and
with at most ``MAX_PLACES`` decimal places.

The bounds are what the journal stores exactly (counters and rollups keep 18 decimal places)
and what ``Decimal`` arithmetic handles without overflow; they sit far beyond any real budget or
price. Without them a limit of ``1e999999999`` overflowed every comparison against it, and one
of ``1e-999999999`` was written out as a billion digits.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Final

__all__ = ["MAX_AMOUNT", "MAX_PLACES", "amount_problem"]

MAX_AMOUNT: Final = Decimal(10) ** 15
MAX_PLACES: Final = 18


def amount_problem(value: Decimal) -> str | None:
    """Why ``value`` cannot be stored as an amount, or ``None`` when it can."""
    if not value.is_finite():
        return f"{value} is not a finite number"
    # Context-free operations only: arithmetic on such a value is what overflows.
    if value.copy_abs() > MAX_AMOUNT:
        return f"{value} is too large: amounts are at most {MAX_AMOUNT:,}"
    if _places(value) > MAX_PLACES:
        return f"{value} has more than {MAX_PLACES} decimal places"
    return None


def _places(value: Decimal) -> int:
    """Decimal places of a finite value, trailing zeros aside (``1.50`` has 1)."""
    _, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)  # finite
    zeros = len(digits) - len("".join(map(str, digits)).rstrip("0"))
    return max(0, -(exponent + zeros)) if any(digits) else 0
