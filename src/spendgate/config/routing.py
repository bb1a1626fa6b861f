"""The ``routing`` section: the default model, the routing mode and the complexity bands."""

from __future__ import annotations

from pydantic import StrictBool, model_validator

from spendgate.config.errors import invalid
from spendgate.config.values import Fraction, Id, Spec
from spendgate.domain.routing import RoutingMode


class RoutingSpec(Spec):
    default_model: Id | None = None  # None: the first enabled model
    mode: RoutingMode = RoutingMode.SUGGEST
    smart_routing: StrictBool = True
    auxiliary_routing: StrictBool = True
    failover: StrictBool = True
    simple_below: Fraction = 0.35
    complex_above: Fraction = 0.75

    @model_validator(mode="after")
    def _bands(self) -> RoutingSpec:
        if self.simple_below >= self.complex_above:
            raise invalid(
                f"simple_below ({self.simple_below}) must be below complex_above "
                f"({self.complex_above})",
                ("simple_below",),
            )
        return self
