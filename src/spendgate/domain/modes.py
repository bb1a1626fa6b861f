"""Effective routing mode: configured, made stricter by policies, relaxed only with permission.

A client must never switch enforcement off by itself (the original's defect §6.7): a request
header may always tighten the mode, but may relax it only when its API key carries the
``override_routing_mode`` permission.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

__all__ = ["ModeResolution", "RoutingMode", "resolve_mode"]


class RoutingMode(StrEnum):
    SUGGEST = "suggest"
    DRY_RUN = "dry_run"
    ENFORCED = "enforced"

    @property
    def strictness(self) -> int:
        return _STRICTNESS[self]


_STRICTNESS = {RoutingMode.SUGGEST: 0, RoutingMode.DRY_RUN: 1, RoutingMode.ENFORCED: 2}


@dataclass(frozen=True, slots=True)
class ModeResolution:
    mode: RoutingMode
    reason_codes: tuple[str, ...]
    explanation: str


def resolve_mode(
    configured: RoutingMode,
    policy_modes: Iterable[tuple[str, RoutingMode]],
    requested: RoutingMode | None,
    may_relax: bool,
) -> ModeResolution:
    """``policy_modes`` pairs a policy id with the mode it imposes (its ``mode``, or its
    ``routing_mode_override`` once its soft limit is crossed)."""
    mode = configured
    codes = [f"mode_{configured.value}_configured"]
    why = f"Mode {configured.value} from config"
    tightened_by = [
        (policy_id, policy_mode)
        for policy_id, policy_mode in policy_modes
        if policy_mode.strictness > mode.strictness
    ]
    if tightened_by:
        policy_id, mode = max(tightened_by, key=lambda pair: pair[1].strictness)
        codes.append("mode_tightened_by_policy")
        why += f", tightened to {mode.value} by policy {policy_id}"
    if requested is not None and requested is not mode:
        if requested.strictness > mode.strictness:
            mode = requested
            codes.append("mode_tightened_by_request")
            why += f", tightened to {mode.value} by the request"
        elif may_relax:
            mode = requested
            codes.append("mode_relaxed_by_request")
            why += f", relaxed to {mode.value} by the request (key may override the mode)"
        else:
            codes.append("mode_relax_denied")
            why += (
                f"; the request asked for {requested.value} but its key lacks the "
                "override_routing_mode permission"
            )
    return ModeResolution(mode, tuple(codes), why + ".")
