"""The provider health log: a provider hovering around the degraded threshold is reported at
most once per quiet period, and the state it settles in is reported after it."""

from __future__ import annotations

import itertools
import logging

import pytest

from spendgate.domain.health import Outcome, ProviderHealth
from spendgate.providers.health_log import QUIET_S, HealthLog


class _Observed:
    """A provider's breaker and the health log, fed as the failover feeds them."""

    def __init__(self) -> None:
        self.health = ProviderHealth("alpha")
        self.log = HealthLog()

    def record(self, now: float, outcome: Outcome, count: int = 1) -> None:
        for _ in range(count):
            before = self.health.circuit
            self.health.record(now, outcome, 0.05)
            self.log.recorded(self.health, before, outcome, 0.05, now)


def _lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "spendgate.providers"]


def test_a_provider_flapping_at_the_threshold_is_reported_once_per_quiet_period(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, "spendgate.providers")
    observed = _Observed()
    states = []
    for second in range(10):  # 1 call in 9 fails: around the 10 % threshold
        for outcome in [Outcome.SUCCESS] * 8 + [Outcome.ERROR]:
            observed.record(float(second), outcome)
            states.append(observed.health.state(float(second)))
    flips = sum(1 for before, after in itertools.pairwise(states) if before != after)
    assert flips >= 10
    [degraded] = _lines(caplog)
    assert degraded.startswith("provider alpha is degraded (error rate 1")
    assert degraded.endswith("%; last failure: error)")
    assert [r.levelname for r in caplog.records] == ["WARNING"]

    # After the quiet period, the first call that finds it healthy says so, once.
    observed.record(10.0 + QUIET_S, Outcome.SUCCESS, 200)
    [healthy] = _lines(caplog)[1:]
    assert healthy.startswith("provider alpha is healthy again (error rate ")
