"""The amounts a record may hold (limits, thresholds, prices): finite, below ``MAX_AMOUNT`` and
with at most ``MAX_PLACES`` decimal places; and their exact integer form on the hot path.

The bounds are what the journal stores exactly (counters and rollups keep 18 decimal places)
and what ``Decimal`` arithmetic handles without overflow; they sit far beyond any real budget or
price. Without them a limit of ``1e999999999`` overflowed every comparison against it, and one
of ``1e-999999999`` was written out as a billion digits.

**Attos.** Planning, reserving and settling count in integer attos (10⁻¹⁸ of the unit: USD,
tokens or requests): integer addition and comparison are several times cheaper than
``Decimal``'s and never round. Every amount a record may hold has at most 18 places, so limits
and thresholds are exact in attos. A cost is a price (per 1M tokens) times tokens over a
million: exact in attos for prices of up to 12 places (the catalog's have at most 6); a
config or API price with more places can give a cost finer than an atto, which ``to_atto``
rounds **up** to the next atto (never down: a reservation never holds less than the request's
upper bound, and a settlement counts at most one atto more than the exact cost).
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Final, TypeVar

__all__ = [
    "ATTO",
    "ATTO_PLACES",
    "MAX_AMOUNT",
    "MAX_PLACES",
    "amount_problem",
    "atto_text",
    "decimal_amounts",
    "from_atto",
    "to_atto",
]

MAX_AMOUNT: Final = Decimal(10) ** 15
MAX_PLACES: Final = 18
ATTO_PLACES: Final = 18
ATTO: Final = 10**ATTO_PLACES
_ZERO: Final = Decimal(0)


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


def to_atto(value: Decimal) -> int:
    """``value`` in attos: exact up to 18 places, rounded up (toward +∞) past them.
    Raises ``ValueError`` for NaN and infinities."""
    try:
        # The exact fraction (in C), then a ceiling division: half the cost of scaling in a
        # wide decimal context and rounding there.
        numerator, denominator = value.as_integer_ratio()
    except OverflowError:  # an infinity (a NaN raises ValueError itself)
        raise ValueError(f"not a finite amount: {value}") from None
    return -(-numerator * ATTO // denominator)


def from_atto(atto: int) -> Decimal:
    """The exact ``Decimal`` of an atto count, without trailing zeros (``1.5``, ``1200``)."""
    whole, fraction = divmod(atto, ATTO)
    if not fraction:
        return Decimal(whole) if whole else _ZERO
    sign = "-" if atto < 0 else ""
    digits = str(abs(atto)).rjust(ATTO_PLACES + 1, "0")
    return Decimal(f"{sign}{digits[:-ATTO_PLACES]}.{digits[-ATTO_PLACES:].rstrip('0')}")


def atto_text(atto: int) -> str:
    """``str(from_atto(atto))``, without building the ``Decimal`` for whole amounts (token
    and request counters: most of what a decision's record holds)."""
    return str(atto // ATTO) if not atto % ATTO else str(from_atto(atto))


_K = TypeVar("_K")


def decimal_amounts(attos: Mapping[_K, int]) -> dict[_K, Decimal]:
    """``from_atto`` of each value; a settlement has one amount per metric, so each distinct
    one is converted once."""
    converted: dict[int, Decimal] = {}
    result: dict[_K, Decimal] = {}
    for key, atto in attos.items():
        value = converted.get(atto)
        if value is None:
            value = converted[atto] = from_atto(atto)
        result[key] = value
    return result
