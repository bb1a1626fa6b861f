"""Log a provider's health as the failover sees it change (logger ``spendgate.providers``):
its circuit opening, half-opening and closing, and a closed circuit's provider turning
degraded (errors or latency above the thresholds) and healthy again.

The breaker (``domain/health.py``) is pure and logs nothing: the failover notes the circuit
before each admission and outcome it reports, and hands both states here. Openings, closings
and health changes are WARNINGs (recoveries too: whoever watches for the one needs the
other); a half-open circuit (a probe on its way) is INFO.
"""

from __future__ import annotations

import logging

from spendgate.domain.health import CircuitState, Outcome, ProviderHealth
from spendgate.domain.routing import HealthState
from spendgate.logs import FIELDS

__all__ = ["HealthLog"]

log = logging.getLogger("spendgate.providers")

# A provider hovering around a threshold would flip between healthy and degraded at every
# call: such a change is logged at most this often per provider (the next call after the
# quiet period logs the state it then has, if that differs from the one last logged).
QUIET_S = 30.0


class HealthLog:
    """What was last logged per provider. One per ``Failover`` (one event loop)."""

    __slots__ = ("_quiet_until", "_shown")

    def __init__(self) -> None:
        self._shown: dict[str, HealthState] = {}
        self._quiet_until: dict[str, float] = {}

    def admitted(self, health: ProviderHealth, before: CircuitState, now: float) -> None:
        """After ``health.admit``: a cooldown that ended (half-open), or a lost probe
        (re-opened)."""
        if health.circuit is not before:
            self._circuit_changed(health, before, now)

    def recorded(
        self,
        health: ProviderHealth,
        before: CircuitState,
        outcome: Outcome,
        latency_s: float | None,
        now: float,
    ) -> None:
        """After ``health.record``: cheap for the common case, a healthy provider's fast
        success (which can neither raise the error rate nor the latency percentiles)."""
        if health.circuit is not before:
            self._circuit_changed(health, before, now)
            return
        if health.circuit is not CircuitState.CLOSED:
            return
        shown = self._shown.get(health.provider, HealthState.HEALTHY)
        fast = latency_s is None or latency_s < health.config.slow_p95_s
        if shown is HealthState.HEALTHY and not outcome.failed and fast:
            return
        if now < self._quiet_until.get(health.provider, 0.0):
            return
        state = health.state(now)
        if state is shown:
            return
        self._shown[health.provider] = state
        self._quiet_until[health.provider] = now + QUIET_S
        p95 = health.latency_quantile(0.95)
        slow = p95 is not None and p95 >= health.config.slow_p95_s
        detail = f"error rate {health.error_rate():.1%}" + (
            f", p95 latency {_seconds(p95)}" if p95 is not None and slow else ""
        )
        if state is HealthState.HEALTHY:
            message = f"provider {health.provider} is healthy again ({detail})"
        else:
            last = f"; last failure: {health.last_failure}" if health.last_failure else ""
            message = f"provider {health.provider} is {state.value} ({detail}{last})"
        _warn(message, health, state)

    def _circuit_changed(self, health: ProviderHealth, before: CircuitState, now: float) -> None:
        provider = health.provider
        state = health.state(now)
        self._shown[provider] = state
        if health.circuit is CircuitState.OPEN:
            retry = "" if health.retry_at is None else _seconds(max(0.0, health.retry_at - now))
            verb = "re-opened" if before is CircuitState.HALF_OPEN else "opened"
            _warn(
                f"provider {provider}: circuit {verb}: {health.reason}; its calls fail over "
                f"or fail for {retry}, then one probe call is let through",
                health,
                state,
            )
        elif health.circuit is CircuitState.HALF_OPEN:
            log.info(
                "provider %s: circuit half-open, cooldown over: the next call is a probe",
                provider,
                extra={FIELDS: _fields(health, state)},
            )
        else:
            since = health.opened_at
            opened = "" if since is None else f" (it last opened {_seconds(now - since)} ago)"
            _warn(
                f"provider {provider} recovered: a probe call succeeded, circuit closed{opened}",
                health,
                state,
            )


def _warn(message: str, health: ProviderHealth, state: HealthState) -> None:
    log.warning(message, extra={FIELDS: _fields(health, state)})


def _fields(health: ProviderHealth, state: HealthState) -> dict[str, object]:
    return {
        "provider": health.provider,
        "circuit": health.circuit.value,
        "health": state.value,
        "reason_code": health.reason_code if health.circuit is not CircuitState.CLOSED else None,
        "error_rate": round(health.error_rate(), 4),
    }


def _seconds(value: float) -> str:
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.1f} s"
