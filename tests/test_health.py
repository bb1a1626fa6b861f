"""Provider health and circuit breaker (spendgate.domain.health): pure, time passed in."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spendgate.domain.health import (
    Admission,
    CircuitState,
    HealthBoard,
    HealthConfig,
    Outcome,
    Permit,
    ProviderHealth,
)
from spendgate.domain.routing import HealthState

WALL = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def fail(health: ProviderHealth, now: float, times: int = 1, detail: str = "HTTP 500") -> None:
    for _ in range(times):
        health.record(now, Outcome.ERROR, 0.05, detail=detail)


def ok(health: ProviderHealth, now: float, times: int = 1, latency: float = 0.05) -> None:
    for _ in range(times):
        health.record(now, Outcome.SUCCESS, latency)


def opened(config: HealthConfig | None = None, now: float = 100.0) -> ProviderHealth:
    health = ProviderHealth("p", config)
    fail(health, now, health.config.failure_threshold)
    assert health.circuit is CircuitState.OPEN
    return health


# -- closed ---------------------------------------------------------------------------------


def test_a_new_provider_is_healthy_and_closed() -> None:
    health = ProviderHealth("p")
    snap = health.snapshot(0.0, WALL)
    assert snap.state is HealthState.HEALTHY
    assert snap.circuit is CircuitState.CLOSED
    assert snap.error_rate == 0.0
    assert snap.calls == 0.0
    assert snap.p50_latency_s is None
    assert snap.retry_at is None
    assert snap.reason is None
    assert health.admit(0.0).admission is Admission.NORMAL


def test_successes_keep_it_healthy() -> None:
    health = ProviderHealth("p")
    ok(health, 1.0, 100)
    assert health.state(1.0) is HealthState.HEALTHY
    assert health.snapshot(1.0).calls == pytest.approx(100)


def test_twenty_five_consecutive_500s_take_the_provider_out_of_rotation() -> None:
    """DESIGN §7.11: visible why, and until when."""
    health = ProviderHealth("p")
    reached = 0
    for i in range(25):
        now = 10.0 + i * 0.01
        permit = health.admit(now)
        if permit.admitted:
            reached += 1
            health.record(now, Outcome.ERROR, 0.02, permit=permit, detail="HTTP 500")
    assert reached == 5  # the breaker opened after 5 and kept the other 20 away
    now = 10.3
    snap = health.snapshot(now, WALL)
    assert snap.state is HealthState.UNHEALTHY
    assert snap.circuit is CircuitState.OPEN
    assert snap.reason_code == "consecutive_failures"
    assert snap.reason == "5 consecutive failures (last: HTTP 500)"
    assert snap.last_failure == "HTTP 500"
    assert snap.opened_at_s == pytest.approx(10.04)
    assert snap.retry_at_s == pytest.approx(15.04)
    assert snap.retry_at == WALL + timedelta(seconds=15.04 - now)
    assert snap.opened_at == WALL + timedelta(seconds=10.04 - now)
    assert snap.retry_in_s == pytest.approx(4.74)


def test_client_errors_do_not_count_against_the_provider() -> None:
    health = ProviderHealth("p")
    for _ in range(50):
        health.record(1.0, Outcome.CLIENT_ERROR, 0.01)
    assert health.circuit is CircuitState.CLOSED
    assert health.error_rate() == 0.0
    fail(health, 1.0, 4)
    health.record(1.0, Outcome.CLIENT_ERROR)  # the provider answered: the run is broken
    fail(health, 1.0, 4)
    assert health.circuit is CircuitState.CLOSED
    assert health.consecutive_failures == 4


def test_timeouts_count_as_failures() -> None:
    health = ProviderHealth("p")
    for _ in range(5):
        health.record(1.0, Outcome.TIMEOUT, 60.0)
    assert health.circuit is CircuitState.OPEN
    assert health.reason == "5 consecutive failures (last: timeout)"


def test_error_rate_over_enough_calls_opens_without_a_failure_run() -> None:
    health = ProviderHealth("p", HealthConfig(failure_threshold=10, min_calls=20))
    for i in range(30):
        if i % 3 == 0:
            ok(health, 1.0)
        else:
            fail(health, 1.0)
        if health.circuit is CircuitState.OPEN:
            break
    assert health.circuit is CircuitState.OPEN
    assert health.reason_code == "error_rate"
    assert health.reason is not None
    assert "error rate 6" in health.reason
    assert health.consecutive_failures < 10


def test_error_rate_needs_the_minimum_number_of_calls() -> None:
    health = ProviderHealth("p", HealthConfig(failure_threshold=100, min_calls=20))
    for _ in range(9):
        ok(health, 1.0)
        fail(health, 1.0)
    assert health.circuit is CircuitState.CLOSED  # 18 calls at 50 %: not enough evidence
    assert health.state(1.0) is HealthState.DEGRADED


def test_old_outcomes_decay() -> None:
    health = ProviderHealth("p", HealthConfig(half_life_s=10.0))
    ok(health, 0.0, 8)
    assert health.calls(10.0) == pytest.approx(4.0)
    assert health.calls(20.0) == pytest.approx(2.0)
    fail(health, 100.0, 2)  # 8 successes ~2**-10 old, 2 fresh failures
    assert health.error_rate() == pytest.approx(2 / (2 + 8 / 1024))


def test_decay_survives_huge_gaps_without_overflow() -> None:
    health = ProviderHealth("p", HealthConfig(half_life_s=1.0))
    ok(health, 0.0, 10)
    fail(health, 1e7)  # 10 million half-lives later: the reference time is moved forward
    assert health.error_rate() == pytest.approx(1.0)
    ok(health, 1e7 + 100)
    assert 0.0 < health.error_rate() < 1.0


def test_elevated_error_rate_is_degraded() -> None:
    health = ProviderHealth("p")
    ok(health, 1.0, 8)
    fail(health, 1.0, 2)
    assert health.circuit is CircuitState.CLOSED
    assert health.state(1.0) is HealthState.DEGRADED
    ok(health, 1.0, 100)
    assert health.state(1.0) is HealthState.HEALTHY


def test_latency_quantiles_and_slowness() -> None:
    health = ProviderHealth("p", HealthConfig(slow_p95_s=2.0))
    for i in range(100):
        ok(health, 1.0, latency=0.1 if i < 90 else 5.0)
    snap = health.snapshot(1.0)
    assert snap.p50_latency_s == pytest.approx(0.1, rel=0.1)
    assert snap.p95_latency_s == pytest.approx(5.0, rel=0.1)
    assert snap.state is HealthState.DEGRADED
    ok(health, 1.0, 900, latency=0.1)
    assert health.state(1.0) is HealthState.HEALTHY


@pytest.mark.parametrize("latency", [0.0, 0.0005, 0.001, 0.0123, 1.0, 59.0, 10_000.0])
def test_latency_estimate_is_within_a_bucket(latency: float) -> None:
    health = ProviderHealth("p")
    ok(health, 1.0, latency=latency)
    estimate = health.latency_quantile(0.5)
    assert estimate is not None
    if 0.001 <= latency <= 500:
        assert estimate == pytest.approx(latency, rel=0.1)


# -- open, half-open ----------------------------------------------------------------------


def test_open_rejects_until_the_cooldown_then_admits_one_probe() -> None:
    health = opened(now=100.0)
    assert not health.admit(104.9).admitted
    assert health.state(104.9) is HealthState.UNHEALTHY
    assert health.state(105.0) is HealthState.DEGRADED  # the router may send a probe now
    probe = health.admit(105.0)
    assert probe.probe
    assert health.circuit is CircuitState.HALF_OPEN
    assert not health.admit(105.1).admitted  # only one probe at a time
    health.record(105.2, Outcome.SUCCESS, 0.1, permit=probe)
    assert health.circuit is CircuitState.CLOSED
    assert health.state(105.2) is HealthState.HEALTHY  # the window was reset on close
    assert health.admit(105.3).admission is Admission.NORMAL


def test_a_failed_probe_reopens_with_a_longer_cooldown() -> None:
    health = opened(now=0.0)
    assert health.retry_at == 5.0
    cooldowns = []
    now = 0.0
    for _ in range(9):
        now = health.retry_at or 0.0
        probe = health.admit(now)
        assert probe.probe
        health.record(now, Outcome.ERROR, permit=probe, detail="HTTP 503")
        assert health.circuit is CircuitState.OPEN
        assert health.reason_code == "probe_failed"
        cooldowns.append((health.retry_at or 0.0) - now)
    assert cooldowns == [10, 20, 40, 80, 160, 300, 300, 300, 300]
    assert health.snapshot(now).opens == 10


def test_cooldown_grows_on_a_quick_reopen_and_resets_after_a_long_quiet() -> None:
    config = HealthConfig(open_memory_s=600.0)
    health = opened(config, now=0.0)
    probe = health.admit(5.0)
    health.record(5.0, Outcome.SUCCESS, permit=probe)
    fail(health, 10.0, 5)  # re-opens soon after closing: the same incident
    assert health.opens == 2
    assert health.retry_at == 20.0
    probe = health.admit(20.0)
    health.record(20.0, Outcome.SUCCESS, permit=probe)
    fail(health, 10_000.0, 5)  # long after: a new incident
    assert health.opens == 1
    assert health.retry_at == 10_005.0


def test_several_probes_and_successes_to_close() -> None:
    health = opened(HealthConfig(half_open_probes=3, probe_successes=2), now=0.0)
    probes = [health.admit(5.0) for _ in range(4)]
    assert [p.admission for p in probes] == [Admission.PROBE] * 3 + [Admission.REJECTED]
    health.record(5.1, Outcome.SUCCESS, permit=probes[0])
    assert health.circuit is CircuitState.HALF_OPEN
    assert health.admit(5.1).probe  # a slot came free
    health.record(5.2, Outcome.SUCCESS, permit=probes[1])
    assert health.circuit is CircuitState.CLOSED
    # The third probe reports after the close: an ordinary outcome now.
    health.record(5.3, Outcome.ERROR, permit=probes[2])
    assert health.circuit is CircuitState.CLOSED
    assert health.consecutive_failures == 1


def test_released_probe_frees_its_slot() -> None:
    health = opened(now=0.0)
    probe = health.admit(5.0)
    assert not health.admit(5.0).admitted
    health.release(probe)
    assert health.snapshot(5.0).probes_in_flight == 0
    assert health.admit(5.0).probe
    health.release(Permit(Admission.NORMAL))  # harmless


def test_a_lost_probe_times_out_and_reopens() -> None:
    health = opened(HealthConfig(probe_timeout_s=30.0), now=0.0)
    assert health.admit(5.0).probe
    assert not health.admit(34.0).admitted
    assert not health.admit(35.0).admitted  # the probe is 30 s old: counted as failed
    assert health.circuit is CircuitState.OPEN
    assert health.reason_code == "probe_timeout"
    assert health.retry_at == 45.0


def test_a_stale_probe_result_cannot_close_a_newer_episode() -> None:
    health = opened(HealthConfig(probe_timeout_s=10.0), now=0.0)
    old = health.admit(5.0)
    health.admit(15.0)  # expires the old probe: re-opened, retry at 25
    new = health.admit(25.0)
    assert new.probe
    assert new.episode != old.episode
    health.record(25.1, Outcome.SUCCESS, permit=old)
    assert health.circuit is CircuitState.HALF_OPEN
    health.record(25.2, Outcome.SUCCESS, permit=new)
    assert health.circuit is CircuitState.CLOSED


def test_results_of_calls_admitted_before_the_open_do_not_extend_it() -> None:
    health = ProviderHealth("p")
    early = [health.admit(0.0) for _ in range(10)]
    for permit in early[:5]:
        health.record(0.0, Outcome.ERROR, permit=permit)
    retry_at = health.retry_at
    for permit in early[5:]:
        health.record(1.0, Outcome.ERROR, permit=permit)
    assert health.retry_at == retry_at
    assert health.opens == 1


# -- board, config ------------------------------------------------------------------------


def test_board_states_and_snapshots() -> None:
    board = HealthBoard(["b", "a"], configs={"b": HealthConfig(failure_threshold=1)})
    fail(board.get("b"), 1.0)
    assert board.states(1.0) == {"a": HealthState.HEALTHY, "b": HealthState.UNHEALTHY}
    assert [s.provider for s in board.snapshots(1.0)] == ["a", "b"]
    assert "c" not in board
    assert board.get("c").config == HealthConfig()
    assert "c" in board


@pytest.mark.parametrize(
    "fields",
    [
        {"failure_threshold": 0},
        {"error_rate_threshold": 0.0},
        {"error_rate_threshold": 1.5},
        {"half_life_s": 0},
        {"cooldown_multiplier": 0.5},
        {"max_cooldown_s": 1.0},
        {"half_open_probes": 0},
        {"probe_successes": 2},
    ],
)
def test_config_rejects_nonsense(fields: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=r"must|need"):
        HealthConfig(**fields)  # type: ignore[arg-type]


# -- properties -----------------------------------------------------------------------------

_op = st.one_of(
    st.tuples(st.just("admit"), st.floats(0, 50)),
    st.tuples(st.just("report"), st.sampled_from(list(Outcome)), st.integers(0, 20)),
    st.tuples(st.just("release"), st.integers(0, 20)),
)


@settings(max_examples=300, deadline=None)
@given(
    ops=st.lists(_op, max_size=80),
    probes=st.integers(1, 3),
    threshold=st.integers(1, 4),
)
def test_property_never_more_half_open_probes_than_configured(
    ops: list[tuple[object, ...]], probes: int, threshold: int
) -> None:
    config = HealthConfig(
        failure_threshold=threshold,
        half_open_probes=probes,
        probe_successes=1,
        cooldown_s=1.0,
        probe_timeout_s=40.0,
    )
    health = ProviderHealth("p", config)
    now = 0.0
    outstanding: list[Permit] = []
    for op in ops:
        if op[0] == "admit":
            now += float(op[1])  # type: ignore[arg-type]
            permit = health.admit(now)
            if permit.admitted:
                outstanding.append(permit)
        elif outstanding:
            permit = outstanding.pop(int(op[-1]) % len(outstanding))  # type: ignore[call-overload]
            if op[0] == "report":
                health.record(now, op[1], 0.01, permit=permit)  # type: ignore[arg-type]
            else:
                health.release(permit)
        in_flight = health.snapshot(now).probes_in_flight
        assert in_flight <= probes
        if health.circuit is CircuitState.HALF_OPEN:
            live = [p for p in outstanding if p.probe and p.episode == health._episode]
            assert len(live) <= probes
            assert in_flight == len(live)
        else:
            assert in_flight == 0


@settings(max_examples=200, deadline=None)
@given(
    steps=st.lists(
        st.tuples(st.sampled_from([Outcome.ERROR, Outcome.TIMEOUT]), st.floats(0, 1e6)),
        min_size=1,
        max_size=60,
    ),
    probe_first=st.booleans(),
)
def test_property_a_provider_that_only_fails_is_never_healthy(
    steps: list[tuple[Outcome, float]], probe_first: bool
) -> None:
    health = ProviderHealth("p")
    now = 0.0
    for outcome, gap in steps:
        now += gap
        permit = health.admit(now) if probe_first else Permit(Admission.NORMAL)
        if permit.admitted or not probe_first:
            health.record(now, outcome, gap % 30, permit=permit)
        for later in (now, now + 1.0, now + 1e4, now + 1e9):
            assert health.state(later) is not HealthState.HEALTHY
