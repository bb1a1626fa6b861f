"""How much of a budget is used in its current window: the numbers every budget view shows."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_FLOOR, Context, Decimal

from spendgate.domain.budgets import CounterState
from spendgate.domain.windows import Window

__all__ = ["Consumption", "consumption"]

ZERO = Decimal(0)
_HUNDREDTH = Decimal("0.01")
# Wide and rounding down, so neither the division nor the quantize can round a percent up
# (with the default 28 digits, 99.999...% of a limit would read 100).
_WIDE = Context(prec=100, rounding=ROUND_FLOOR)


@dataclass(frozen=True, slots=True)
class Consumption:
    """One member's use of a policy in one window. ``consumed`` counts in-flight reservations
    too, as reserve does: that is what the next request is judged against."""

    member: str
    window: Window
    settled: Decimal
    reserved: Decimal
    limit: Decimal

    @property
    def consumed(self) -> Decimal:
        return self.settled + self.reserved

    @property
    def remaining(self) -> Decimal:
        return max(self.limit - self.consumed, ZERO)

    @property
    def percent(self) -> Decimal:
        """Percent of the hard limit, rounded *down* to 0.01: it reads 100 only once the
        limit is really reached, never a rounding step early."""
        if self.limit <= 0:
            return Decimal(100)
        ratio = _WIDE.divide(_WIDE.multiply(self.consumed, 100), self.limit)
        return ratio.quantize(_HUNDREDTH, context=_WIDE)


def consumption(member: str, window: Window, counter: CounterState, limit: Decimal) -> Consumption:
    return Consumption(member, window, counter.settled, counter.reserved, limit)
