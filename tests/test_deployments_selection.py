"""The pure choice of a model's deployment (issue 14): weighted by a draw passed in, never an
unhealthy deployment while a healthy one exists, and the planner's route — the same model's
other healthy deployments before any other model."""

from __future__ import annotations

from collections import Counter

from hypothesis import given
from hypothesis import strategies as st

from conftest import ACME, ALL_CAPS, MODELS, NOW, PRICES, chat, policy, state
from spendgate.domain.budgets import BudgetFilters, CounterKey, CounterState
from spendgate.domain.deployments import deployment_order, healthy_deployments, pick_weighted
from spendgate.domain.models import Deployment, Model, Tier
from spendgate.domain.planner import PlanCall, plan
from spendgate.domain.routing import HealthState, RouteStep, RoutingDecision

PROVIDERS = ["p0", "p1", "p2", "p3", "p4"]

deployments = st.lists(st.integers(1, 12), min_size=1, max_size=5).map(
    lambda weights: tuple(Deployment(PROVIDERS[i], weight=w) for i, w in enumerate(weights))
)
healths = st.lists(st.sampled_from(list(HealthState)), min_size=5, max_size=5).map(
    lambda states: dict(zip(PROVIDERS, states, strict=True))
)


@given(deployments)
def test_each_deployment_gets_exactly_its_weights_share_of_evenly_spread_draws(
    choices: tuple[Deployment, ...],
) -> None:
    total = sum(d.weight for d in choices)
    picked = Counter(pick_weighted(choices, (i + 0.5) / total).provider for i in range(total))
    assert picked == {d.provider: d.weight for d in choices}


@given(deployments, st.floats(0.0, 1.0))
def test_any_draw_picks_one_of_them(choices: tuple[Deployment, ...], draw: float) -> None:
    assert pick_weighted(choices, draw) in choices


@given(deployments, healths, st.floats(0.0, 1.0, exclude_max=True))
def test_never_an_unhealthy_deployment_while_a_healthy_one_exists(
    choices: tuple[Deployment, ...], health: dict[str, HealthState], draw: float
) -> None:
    model = Model("m", deployments=choices)
    order = deployment_order(model, health, draw)
    healthy = healthy_deployments(model, health)
    if healthy:
        assert set(order) == set(healthy)  # the unhealthy ones are not even in the route
        assert all(health[d.provider] is not HealthState.UNHEALTHY for d in order)
    else:
        assert set(order) == set(choices)  # the model is unhealthy: all kept, as before
    assert len(order) == len(set(order))
    rest = [d.weight for d in order[1:]]
    assert rest == sorted(rest, reverse=True)  # after the pick: heaviest first


TWO = Model(
    "standard",
    deployments=(Deployment("alpha", weight=3), Deployment("gamma", "standard-2", weight=1)),
    capabilities=ALL_CAPS,
    cost_tier=Tier.MEDIUM,
    max_output_tokens=16_384,
)
MODELS_TWO = (*(m for m in MODELS if m.id != "standard"), TWO)


def _plan(
    draw: float, health: dict[str, HealthState] | None = None, **kw: object
) -> RoutingDecision:
    store: dict[CounterKey, CounterState] = {}

    def reader(keys: tuple[CounterKey, ...]) -> CounterState:
        return sum((store.get(k, CounterState.of()) for k in keys), CounterState.of())

    governance = state(models=MODELS_TWO, prices=PRICES, smart_routing=False, **kw)
    call = PlanCall(request=chat(model="standard"), scopes=ACME, draw=draw)
    return plan(governance, call, now=NOW, decision_id="d", counters=reader, health=health or {})


def test_the_draw_picks_the_deployment_and_the_route_tries_the_other_before_other_models() -> None:
    first = _plan(0.1)  # in alpha's 3/4
    assert first.target_provider == "alpha"
    assert first.route[0] == RouteStep("standard", "gamma")
    # Fallback models follow, none of them on standard's providers.
    assert all(step.model != "standard" for step in first.route[1:])
    assert all(step.provider not in ("alpha", "gamma") for step in first.route[1:])
    assert first.fallbacks == tuple(dict.fromkeys(s.model for s in first.route[1:]))
    assert "deployment_weighted" in first.reason_codes
    assert "alpha serves it, picked by weight (3 of 4 among the healthy ones)" in " ".join(
        first.explanation
    )
    assert _plan(0.9).target_provider == "gamma"


def test_an_unhealthy_deployment_is_skipped_and_explained() -> None:
    decision = _plan(0.1, {"alpha": HealthState.UNHEALTHY})
    assert decision.target_provider == "gamma"
    assert decision.actual_model == "standard"  # the model stays: it has a healthy deployment
    assert all(step.model != "standard" for step in decision.route)
    assert "deployment_unhealthy" in decision.reason_codes


def test_every_deployment_unhealthy_fails_over_to_another_model() -> None:
    decision = _plan(0.1, {"alpha": HealthState.UNHEALTHY, "gamma": HealthState.UNHEALTHY})
    assert decision.actual_model != "standard"
    assert "provider_unhealthy_failover" in decision.reason_codes
    assert "Every deployment of standard (alpha, gamma) is unhealthy" in " ".join(
        decision.explanation
    )


def test_failover_off_keeps_one_deployment_and_no_route() -> None:
    decision = _plan(0.1, failover=False)
    assert decision.route == ()
    assert decision.fallbacks == ()


def test_budgets_filtered_by_provider_apply_to_the_chosen_deployment() -> None:
    on_gamma = policy("gamma-only", filters=BudgetFilters(providers=frozenset({"gamma"})))
    governance = state([on_gamma], models=MODELS_TWO, smart_routing=False)

    def evaluated(draw: float) -> set[str]:
        decision = plan(
            governance,
            PlanCall(request=chat(model="standard"), scopes=ACME, draw=draw),
            now=NOW,
            decision_id="d",
            counters=lambda keys: CounterState.of(),
        )
        return {e.policy_id for e in decision.budget_evaluations}

    assert evaluated(0.1) == set()  # on alpha
    assert evaluated(0.9) == {"gamma-only"}  # on gamma


def test_a_pinned_provider_plans_that_deployment_only() -> None:
    governance = state(models=MODELS_TWO, smart_routing=False)
    decision = plan(
        governance,
        PlanCall(request=chat(model="standard"), scopes=ACME, draw=0.1, provider="gamma"),
        now=NOW,
        decision_id="d",
        counters=lambda keys: CounterState.of(),
    )
    assert decision.target_provider == "gamma"
    assert decision.route == ()
