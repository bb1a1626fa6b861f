"""Provider health: a decayed window of call outcomes, and a circuit breaker.

Pure: time is passed in as float seconds from a monotonic clock (``time.monotonic()`` in the
adapters); nothing here reads a clock. ``HealthSnapshot`` converts monotonic instants to wall
time only when the caller passes the current wall time, so status views can say "until when".

The window is exponentially decayed ("forward decay"): an outcome at time ``t`` is stored with
weight ``2 ** ((t - t0) / half_life)`` against a reference time ``t0``, and reads divide by
the weight of *now*. Recording is O(1) (no decay pass over every counter on each call); the
reference is moved forward (all counters rescaled once) before the weights grow too large.

Breaker (per provider)::

    CLOSED ──N consecutive failures, or error rate ≥ threshold over ≥ min_calls──► OPEN
    OPEN ──cooldown elapsed (cooldown grows with repeated opens)──► HALF_OPEN
    HALF_OPEN ──probe succeeds──► CLOSED      HALF_OPEN ──probe fails / times out──► OPEN

While OPEN nothing is admitted; HALF_OPEN admits at most ``half_open_probes`` calls at once.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from spendgate.domain.routing import HealthState

__all__ = [
    "Admission",
    "CircuitState",
    "HealthBoard",
    "HealthConfig",
    "HealthSnapshot",
    "Outcome",
    "Permit",
    "ProviderHealth",
]


class CircuitState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class Outcome(StrEnum):
    """What one upstream call did. Only ERROR and TIMEOUT count against the provider: a 4xx
    (CLIENT_ERROR) means the provider answered, the request was at fault."""

    SUCCESS = "success"
    ERROR = "error"
    TIMEOUT = "timeout"
    CLIENT_ERROR = "client_error"

    @property
    def failed(self) -> bool:
        return self is Outcome.ERROR or self is Outcome.TIMEOUT


class Admission(StrEnum):
    REJECTED = "rejected"
    NORMAL = "normal"
    PROBE = "probe"


@dataclass(frozen=True, slots=True)
class Permit:
    """The breaker's answer to one call. ``episode`` ties a probe to the half-open period
    that admitted it, so a late probe result cannot close a circuit that re-opened since."""

    admission: Admission
    episode: int = 0

    @property
    def admitted(self) -> bool:
        return self.admission is not Admission.REJECTED

    @property
    def probe(self) -> bool:
        return self.admission is Admission.PROBE


_NORMAL = Permit(Admission.NORMAL)
_REJECTED = Permit(Admission.REJECTED)


@dataclass(frozen=True, slots=True)
class HealthConfig:
    """Thresholds. Defaults suit a provider seeing a few requests per second or more.

    ``failure_threshold``: consecutive failures that open the circuit (fast reaction to a
    dead upstream even at low traffic). ``error_rate_threshold`` over at least ``min_calls``
    (decayed) calls: opens on a provider that fails often but not in an unbroken run.
    ``half_life_s``: an outcome's weight halves every this many seconds.
    ``cooldown_s`` grows by ``cooldown_multiplier`` for each re-open within
    ``open_memory_s`` of the last close, up to ``max_cooldown_s``.
    ``half_open_probes``: calls admitted at once while half-open; ``probe_successes`` of
    them must succeed to close. ``probe_timeout_s``: a probe that has not reported by then
    counts as failed (so a lost probe can never wedge the circuit half-open).
    ``degraded_error_rate`` / ``slow_p95_s``: a closed circuit above either is DEGRADED.
    """

    failure_threshold: int = 5
    error_rate_threshold: float = 0.5
    min_calls: float = 20.0
    half_life_s: float = 30.0
    cooldown_s: float = 5.0
    cooldown_multiplier: float = 2.0
    max_cooldown_s: float = 300.0
    open_memory_s: float = 600.0
    half_open_probes: int = 1
    probe_successes: int = 1
    probe_timeout_s: float = 120.0
    degraded_error_rate: float = 0.1
    slow_p95_s: float = 20.0

    def __post_init__(self) -> None:
        if self.failure_threshold < 1:
            raise ValueError("failure_threshold must be at least 1")
        if not 0.0 < self.error_rate_threshold <= 1.0:
            raise ValueError("error_rate_threshold must be in (0, 1]")
        if self.half_life_s <= 0 or self.cooldown_s <= 0 or self.probe_timeout_s <= 0:
            raise ValueError("half_life_s, cooldown_s and probe_timeout_s must be positive")
        if self.cooldown_multiplier < 1.0 or self.max_cooldown_s < self.cooldown_s:
            raise ValueError("cooldowns must not shrink: multiplier ≥ 1, max ≥ base")
        if self.half_open_probes < 1 or not 1 <= self.probe_successes <= self.half_open_probes:
            raise ValueError("need 1 ≤ probe_successes ≤ half_open_probes")

    def cooldown(self, opens: int) -> float:
        """Cooldown after the ``opens``-th consecutive open (1-based)."""
        grown = self.cooldown_s * self.cooldown_multiplier ** max(0, min(opens - 1, 64))
        return min(grown, self.max_cooldown_s)


@dataclass(frozen=True, slots=True)
class HealthSnapshot:
    """What the status views show for one provider. Monotonic instants are in ``*_s``
    fields; the datetimes are set when the snapshot was taken with a wall-clock time."""

    provider: str
    state: HealthState
    circuit: CircuitState
    error_rate: float
    calls: float  # decayed number of calls in the window
    p50_latency_s: float | None
    p95_latency_s: float | None
    consecutive_failures: int
    opens: int  # consecutive opens so far (drives the cooldown)
    probes_in_flight: int
    reason_code: str | None  # why the circuit is (or last was) open: stable snake_case
    reason: str | None
    last_failure: str | None
    opened_at_s: float | None
    retry_at_s: float | None
    opened_at: datetime | None = None
    retry_at: datetime | None = None
    retry_in_s: float | None = None  # cooldown left at snapshot time; 0 once elapsed


# Latency histogram: log-spaced buckets, 4 per doubling from 1 ms (≈ ±9 % per estimate),
# up to ~10 minutes; faster or slower calls land in the first / last bucket.
_BUCKET_BASE_S = 0.001
_BUCKETS_PER_DOUBLING = 4
_BUCKET_COUNT = 80
# Rebase the forward-decay reference before weights reach 2**64 (far from float overflow,
# and far enough that rebasing is rare: every 64 half-lives).
_MAX_EXPONENT = 64.0


def _bucket(latency_s: float) -> int:
    if latency_s <= _BUCKET_BASE_S:
        return 0
    index = int(math.log2(latency_s / _BUCKET_BASE_S) * _BUCKETS_PER_DOUBLING) + 1
    return min(index, _BUCKET_COUNT - 1)


def _bucket_value(index: int) -> float:
    """Representative latency of a bucket: the geometric middle of its bounds."""
    if index == 0:
        return _BUCKET_BASE_S
    return float(_BUCKET_BASE_S * 2 ** ((index - 0.5) / _BUCKETS_PER_DOUBLING))


class ProviderHealth:
    """Health and breaker of one provider. Not thread-safe: one per event loop (asyncio
    runs each method without interruption, which is what keeps probe counting exact)."""

    __slots__ = (
        "_calls",
        "_closed_at",
        "_episode",
        "_failures",
        "_hist",
        "_latency_weight",
        "_probe_starts",
        "_probe_successes",
        "_t0",
        "circuit",
        "config",
        "consecutive_failures",
        "last_failure",
        "opened_at",
        "opens",
        "provider",
        "reason",
        "reason_code",
        "retry_at",
    )

    def __init__(self, provider: str, config: HealthConfig | None = None) -> None:
        self.provider = provider
        self.config = config or HealthConfig()
        self.circuit = CircuitState.CLOSED
        self.consecutive_failures = 0
        self.opens = 0
        self.opened_at: float | None = None
        self.retry_at: float | None = None
        self.reason_code: str | None = None
        self.reason: str | None = None
        self.last_failure: str | None = None
        self._closed_at: float | None = None
        self._episode = 0
        self._probe_starts: list[float] = []
        self._probe_successes = 0
        self._t0: float | None = None
        self._calls = 0.0
        self._failures = 0.0
        self._latency_weight = 0.0
        self._hist = [0.0] * _BUCKET_COUNT

    # -- admission ----------------------------------------------------------------------

    def admit(self, now: float) -> Permit:
        """May a call go to this provider now? Admitted probes must be reported with
        ``record`` or handed back with ``release``."""
        circuit = self.circuit
        if circuit is CircuitState.CLOSED:
            return _NORMAL
        if circuit is CircuitState.OPEN:
            if self.retry_at is None or now < self.retry_at:
                return _REJECTED
            self._half_open()
        self._expire_probes(now)
        if self.circuit is not CircuitState.HALF_OPEN:
            return _REJECTED
        if len(self._probe_starts) >= self.config.half_open_probes:
            return _REJECTED
        self._probe_starts.append(now)
        return Permit(Admission.PROBE, self._episode)

    def release(self, permit: Permit) -> None:
        """Hand back a permit whose call never reached the provider (skipped, cancelled)."""
        if self._current_probe(permit):
            self._probe_starts.pop(0)

    # -- outcomes -----------------------------------------------------------------------

    def record(
        self,
        now: float,
        outcome: Outcome,
        latency_s: float | None = None,
        *,
        permit: Permit = _NORMAL,
        detail: str = "",
    ) -> None:
        """Record one call's outcome. ``detail`` (e.g. "HTTP 500") explains a failure."""
        failed = outcome.failed
        self._observe(now, failed, latency_s)
        if failed:
            self.consecutive_failures += 1
            self.last_failure = detail or outcome.value
        else:
            self.consecutive_failures = 0

        if self._current_probe(permit):
            self._probe_starts.pop(0)
            if failed:
                self._open(now, "probe_failed", f"half-open probe failed ({self.last_failure})")
                return
            self._probe_successes += 1
            if self._probe_successes >= self.config.probe_successes:
                self._close(now)
            return
        if failed and self.circuit is CircuitState.CLOSED:
            self._maybe_trip(now)

    def _maybe_trip(self, now: float) -> None:
        config = self.config
        if self.consecutive_failures >= config.failure_threshold:
            self._open(
                now,
                "consecutive_failures",
                f"{self.consecutive_failures} consecutive failures (last: {self.last_failure})",
            )
            return
        calls = self.calls(now)
        rate = self.error_rate()
        if calls >= config.min_calls and rate >= config.error_rate_threshold:
            self._open(
                now,
                "error_rate",
                f"error rate {rate:.0%} over the last ~{calls:.0f} calls "
                f"(threshold {config.error_rate_threshold:.0%}; last: {self.last_failure})",
            )

    # -- transitions --------------------------------------------------------------------

    def _open(self, now: float, code: str, reason: str) -> None:
        recent_close = (
            self._closed_at is not None and now - self._closed_at <= self.config.open_memory_s
        )
        # Re-opening from half-open, or soon after a close, is the same incident: grow the
        # cooldown. A provider that stayed closed a long while starts from the base again.
        if self.circuit is CircuitState.HALF_OPEN or recent_close:
            self.opens += 1
        else:
            self.opens = 1
        self.circuit = CircuitState.OPEN
        self.opened_at = now
        self.retry_at = now + self.config.cooldown(self.opens)
        self.reason_code = code
        self.reason = reason
        self._episode += 1
        self._probe_starts.clear()
        self._probe_successes = 0

    def _half_open(self) -> None:
        self.circuit = CircuitState.HALF_OPEN
        self._episode += 1
        self._probe_starts.clear()
        self._probe_successes = 0

    def _close(self, now: float) -> None:
        self.circuit = CircuitState.CLOSED
        self._closed_at = now
        self._episode += 1
        self._probe_starts.clear()
        self._probe_successes = 0
        self.consecutive_failures = 0
        # The window still holds the failures that opened the circuit: keeping them would
        # let one more failure re-trip the error-rate rule at once. Start counting afresh
        # (latencies are kept: they are still the best estimate).
        self._calls = 0.0
        self._failures = 0.0

    def _current_probe(self, permit: Permit) -> bool:
        return (
            permit.admission is Admission.PROBE
            and permit.episode == self._episode
            and self.circuit is CircuitState.HALF_OPEN
            and bool(self._probe_starts)
        )

    def _expire_probes(self, now: float) -> None:
        starts = self._probe_starts
        if starts and now - starts[0] >= self.config.probe_timeout_s:
            self._open(now, "probe_timeout", "half-open probe did not report in time")

    # -- window -------------------------------------------------------------------------

    def _weight(self, now: float) -> float:
        if self._t0 is None:
            self._t0 = now
        exponent = (now - self._t0) / self.config.half_life_s
        if exponent > _MAX_EXPONENT:
            scale = 2.0**-exponent
            self._calls *= scale
            self._failures *= scale
            self._latency_weight *= scale
            self._hist = [value * scale for value in self._hist]
            self._t0 = now
            exponent = 0.0
        return float(2.0**exponent)

    def _observe(self, now: float, failed: bool, latency_s: float | None) -> None:
        weight = self._weight(now)
        self._calls += weight
        if failed:
            self._failures += weight
        if latency_s is not None and latency_s >= 0:
            self._hist[_bucket(latency_s)] += weight
            self._latency_weight += weight

    def calls(self, now: float) -> float:
        """Decayed number of calls in the window as of ``now``."""
        if self._t0 is None:
            return 0.0
        return float(self._calls * 2.0 ** ((self._t0 - now) / self.config.half_life_s))

    def error_rate(self) -> float:
        # A ratio of two counters decayed alike: time cancels out.
        return self._failures / self._calls if self._calls > 0 else 0.0

    def latency_quantile(self, q: float) -> float | None:
        total = self._latency_weight
        if total <= 0:
            return None
        target = q * total
        running = 0.0
        for index, weight in enumerate(self._hist):
            running += weight
            if running >= target and weight > 0:
                return _bucket_value(index)
        return _bucket_value(_BUCKET_COUNT - 1)

    # -- views --------------------------------------------------------------------------

    def state(self, now: float) -> HealthState:
        """UNHEALTHY while cooling down. Once the cooldown has elapsed (or while probing)
        DEGRADED, so the router sends it traffic again, of which only probes are admitted;
        the rest fails over. A closed circuit is DEGRADED when errors or latency are high."""
        if self.circuit is CircuitState.OPEN:
            if self.retry_at is None or now < self.retry_at:
                return HealthState.UNHEALTHY
            return HealthState.DEGRADED
        if self.circuit is CircuitState.HALF_OPEN:
            return HealthState.DEGRADED
        if self._calls > 0 and self.error_rate() >= self.config.degraded_error_rate:
            return HealthState.DEGRADED
        p95 = self.latency_quantile(0.95)
        if p95 is not None and p95 >= self.config.slow_p95_s:
            return HealthState.DEGRADED
        return HealthState.HEALTHY

    def snapshot(self, now: float, wall_now: datetime | None = None) -> HealthSnapshot:
        def wall(instant: float | None) -> datetime | None:
            if instant is None or wall_now is None:
                return None
            return wall_now + timedelta(seconds=instant - now)

        retry_in = None if self.retry_at is None else max(0.0, self.retry_at - now)
        return HealthSnapshot(
            provider=self.provider,
            state=self.state(now),
            circuit=self.circuit,
            error_rate=self.error_rate(),
            calls=self.calls(now),
            p50_latency_s=self.latency_quantile(0.5),
            p95_latency_s=self.latency_quantile(0.95),
            consecutive_failures=self.consecutive_failures,
            opens=self.opens,
            probes_in_flight=len(self._probe_starts),
            reason_code=self.reason_code,
            reason=self.reason,
            last_failure=self.last_failure,
            opened_at_s=self.opened_at,
            retry_at_s=self.retry_at,
            opened_at=wall(self.opened_at),
            retry_at=wall(self.retry_at),
            retry_in_s=retry_in if self.circuit is not CircuitState.CLOSED else None,
        )


class HealthBoard:
    """Health of every provider, by id. Unknown providers are created on first use."""

    __slots__ = ("_config", "_configs", "_providers")

    def __init__(
        self,
        providers: Iterable[str] = (),
        config: HealthConfig | None = None,
        configs: Mapping[str, HealthConfig] | None = None,
    ) -> None:
        self._config = config or HealthConfig()
        self._configs = dict(configs or {})
        self._providers: dict[str, ProviderHealth] = {}
        for provider in providers:
            self.get(provider)

    def get(self, provider: str) -> ProviderHealth:
        health = self._providers.get(provider)
        if health is None:
            health = ProviderHealth(provider, self._configs.get(provider, self._config))
            self._providers[provider] = health
        return health

    def __contains__(self, provider: object) -> bool:
        return provider in self._providers

    def states(self, now: float) -> dict[str, HealthState]:
        """The map the planner takes (``Governor.set_health`` / ``plan(health=...)``)."""
        return {name: health.state(now) for name, health in self._providers.items()}

    def snapshots(self, now: float, wall_now: datetime | None = None) -> list[HealthSnapshot]:
        return [
            health.snapshot(now, wall_now)
            for _, health in sorted(self._providers.items(), key=lambda item: item[0])
        ]
