"""Planning: capabilities, smart routing, modes, budgets, failover, pricing at request time."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from conftest import MODELS, NOW, PRICES, chat, day_key, policy, run_plan, state
from spendgate.domain.budgets import (
    BudgetFilters,
    BudgetStatus,
    CounterState,
    HardAction,
    Metric,
    OverrideGrant,
    SoftAction,
    UnpricedAction,
)
from spendgate.domain.estimates import DEFAULT_CONTEXT_WINDOW
from spendgate.domain.models import Model, Tier
from spendgate.domain.planner import AUTO_MODEL, ModelNotAllowedError, ModelNotFoundError
from spendgate.domain.pricing import Precision, PriceSource, PricingRecord
from spendgate.domain.requests import ChatRequest
from spendgate.domain.reservations import reservation_lines
from spendgate.domain.routing import HealthState, RoutingAction, RoutingMode, TaskClass

IMAGE = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
COMPLEX = (
    "Analyze step by step why this design fails, compare the trade-offs, and prove the "
    "invariant. ```python\ndef f(x):\n    return x\n```\n" + "Context line. " * 600
)


def spent(policy_id: str, amount: str) -> dict:  # type: ignore[type-arg]
    return {day_key(policy_id): CounterState.of(Decimal(amount))}


class TestCapabilities:
    def test_default_model_not_readded_without_the_capability(self) -> None:
        """Defect §6.12: a model lacking a required capability is never a candidate."""
        vision = ChatRequest.from_openai(
            {
                "model": "text-only",
                "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}, IMAGE]}],
            }
        )
        decision = run_plan(state(), vision)
        assert decision.actual_model != "text-only"
        assert "requested_model_lacks_capability" in decision.reason_codes
        text_only = next(c for c in decision.candidates if c.model == "text-only")
        assert not text_only.eligible
        assert "vision" in text_only.reason

    def test_json_mode_and_tools_require_capable_models(self) -> None:
        tools = [{"type": "function", "function": {"name": "f", "parameters": {}}}]
        decision = run_plan(state(), chat("call f", model="text-only", tools=tools))
        assert decision.actual_model != "text-only"
        capable = {c.model for c in decision.candidates if c.eligible}
        assert "text-only" not in capable

    def test_context_window_filters_candidates(self) -> None:
        huge = chat("word " * 60_000, model="standard")
        decision = run_plan(state(), huge)
        text_only = next(c for c in decision.candidates if c.model == "text-only")
        assert not text_only.eligible
        assert "context window" in text_only.reason


class TestSmartRouting:
    def test_simple_prompt_goes_to_cheaper_model(self) -> None:
        decision = run_plan(state(), chat("What is the capital of France?"))
        assert decision.actual_model == "mini"
        assert decision.routing_action is RoutingAction.DEGRADE
        assert "simple_prompt_cheaper_model" in decision.reason_codes
        assert decision.estimated_saving_usd is not None
        assert decision.estimated_saving_usd > 0

    def test_complex_primary_prompt_escalates(self) -> None:
        decision = run_plan(state(), chat(COMPLEX))
        assert decision.complexity.score > 0.75
        assert decision.actual_model == "premium"
        assert decision.routing_action is RoutingAction.ESCALATE
        assert "complex_prompt_escalated" in decision.reason_codes

    def test_only_primary_interactive_escalates(self) -> None:
        decision = run_plan(state(), chat(COMPLEX), task_class=TaskClass.BACKGROUND_AUTOMATION)
        assert decision.actual_model != "premium"

    def test_escalation_denied_when_budget_pressed(self) -> None:
        p = policy(hard="1", soft="0.0001")
        decision = run_plan(state([p]), chat(COMPLEX))
        assert "escalation_denied_by_budget" in decision.reason_codes
        assert decision.actual_model == "standard"

    def test_summary_task_prefers_low_cost(self) -> None:
        decision = run_plan(
            state(), chat("Summarise: " + "text " * 300), task_class=TaskClass.AUXILIARY_SUMMARY
        )
        assert decision.actual_model == "mini"
        assert "auxiliary_task_low_cost" in decision.reason_codes

    def test_classification_prefers_low_latency(self) -> None:
        models = [*MODELS[:4], Model("fast", "alpha", cost_tier=Tier.MEDIUM,
                                     latency_tier=Tier.LOW)]  # fmt: skip
        models[0] = Model("mini", "alpha", cost_tier=Tier.LOW, latency_tier=Tier.HIGH)
        decision = run_plan(
            state(models=models, prices=(*PRICES, PricingRecord("fast", Decimal(1), Decimal(2)))),
            chat("Label this: spam or ham?"),
            task_class=TaskClass.AUXILIARY_CLASSIFICATION,
        )
        assert decision.actual_model == "fast"
        assert "auxiliary_task_low_latency" in decision.reason_codes

    def test_smart_routing_off_keeps_the_requested_model(self) -> None:
        decision = run_plan(state(smart_routing=False), chat("hi"))
        assert decision.actual_model == "standard"
        assert "smart_routing_disabled" in decision.reason_codes

    def test_auto_model_starts_from_the_default(self) -> None:
        decision = run_plan(state(smart_routing=False), chat("hi", model=AUTO_MODEL))
        assert decision.actual_model == "standard"
        assert "default_model_used" in decision.reason_codes

    def test_complexity_terms_explain_the_score(self) -> None:
        decision = run_plan(state(), chat(COMPLEX))
        names = {term.name for term in decision.complexity.terms if term.contribution > 0}
        assert {"length", "reasoning_cues", "code"} <= names
        total = sum(term.contribution for term in decision.complexity.terms)
        assert decision.complexity.score == pytest.approx(min(1.0, total), abs=1e-3)


class TestModes:
    """Defect §6.6: suggest, dry_run and enforced differ as DESIGN.md §1 defines."""

    def blocked_state(self, mode: RoutingMode):  # type: ignore[no-untyped-def]
        return state([policy("cap", hard="1")], mode=mode, smart_routing=False)

    def test_enforced_blocks(self) -> None:
        decision = run_plan(
            self.blocked_state(RoutingMode.ENFORCED), chat(), counters=spent("cap", "1")
        )
        assert decision.routing_action is RoutingAction.BLOCK
        assert "budget_blocked" in decision.reason_codes
        assert decision.would_action is None

    def test_dry_run_proceeds_records_and_reserves_without_limit(self) -> None:
        decision = run_plan(
            self.blocked_state(RoutingMode.DRY_RUN), chat(), counters=spent("cap", "1")
        )
        assert decision.routing_action is RoutingAction.PROCEED
        assert decision.would_action is RoutingAction.BLOCK
        assert "dry_run_not_applied" in decision.reason_codes
        lines = reservation_lines(decision)
        assert len(lines) == 1
        assert lines[0].limit is None

    def test_suggest_proceeds_recommends_and_reserves_nothing(self) -> None:
        decision = run_plan(
            self.blocked_state(RoutingMode.SUGGEST), chat(), counters=spent("cap", "1")
        )
        assert decision.routing_action is RoutingAction.PROCEED
        assert decision.would_action is RoutingAction.BLOCK
        assert "suggest_only" in decision.reason_codes
        assert reservation_lines(decision) == ()

    def test_suggest_keeps_requested_model_but_recommends_cheaper(self) -> None:
        decision = run_plan(state(mode=RoutingMode.SUGGEST), chat("hi"))
        assert decision.actual_model == "standard"
        assert decision.recommended_model == "mini"
        assert decision.would_action is RoutingAction.DEGRADE

    def test_enforced_reserves_against_the_hard_limit(self) -> None:
        decision = run_plan(self.blocked_state(RoutingMode.ENFORCED), chat())
        (line,) = reservation_lines(decision)
        assert line.limit == Decimal(1)

    def test_request_cannot_relax_the_mode_without_permission(self) -> None:
        """Defect §6.7: a client must never switch enforcement off by itself."""
        decision = run_plan(
            self.blocked_state(RoutingMode.ENFORCED),
            chat(),
            counters=spent("cap", "1"),
            requested_mode=RoutingMode.SUGGEST,
        )
        assert decision.mode is RoutingMode.ENFORCED
        assert decision.routing_action is RoutingAction.BLOCK
        assert "mode_relax_denied" in decision.reason_codes

    def test_request_relaxes_with_permission(self) -> None:
        decision = run_plan(
            self.blocked_state(RoutingMode.ENFORCED),
            chat(),
            counters=spent("cap", "1"),
            requested_mode=RoutingMode.SUGGEST,
            may_relax_mode=True,
        )
        assert decision.mode is RoutingMode.SUGGEST
        assert "mode_relaxed_by_request" in decision.reason_codes

    def test_request_may_always_tighten(self) -> None:
        decision = run_plan(
            state(mode=RoutingMode.SUGGEST), chat(), requested_mode=RoutingMode.ENFORCED
        )
        assert decision.mode is RoutingMode.ENFORCED
        assert "mode_tightened_by_request" in decision.reason_codes

    def test_policy_mode_tightens(self) -> None:
        governance = state([policy(mode=RoutingMode.ENFORCED)], mode=RoutingMode.SUGGEST)
        decision = run_plan(governance, chat())
        assert decision.mode is RoutingMode.ENFORCED
        assert "mode_tightened_by_policy" in decision.reason_codes

    def test_routing_mode_override_applies_once_soft_limit_crossed(self) -> None:
        p = policy(soft="5", routing_mode_override=RoutingMode.ENFORCED)
        governance = state([p], mode=RoutingMode.SUGGEST)
        assert run_plan(governance, chat()).mode is RoutingMode.SUGGEST
        assert run_plan(governance, chat(), counters=spent("p", "6")).mode is RoutingMode.ENFORCED


class TestBudgetsInPlanning:
    def test_budget_pressure_degrades_to_configured_model(self) -> None:
        """Defect §6.10: budget pressure degrades routing to a cheaper model."""
        p = policy(soft="5", soft_action=SoftAction.DEGRADE, degrade_to="mini")
        decision = run_plan(state([p], smart_routing=False), chat(), counters=spent("p", "6"))
        assert decision.actual_model == "mini"
        assert decision.routing_action is RoutingAction.DEGRADE
        assert "budget_degrade" in decision.reason_codes

    def test_hard_degrade_without_cheaper_model_blocks(self) -> None:
        p = policy(hard="1", hard_action=HardAction.DEGRADE)
        decision = run_plan(
            state([p], smart_routing=False), chat(model="mini"), counters=spent("p", "1")
        )
        assert decision.routing_action is RoutingAction.BLOCK
        assert "degrade_unavailable" in decision.reason_codes

    def test_approval_required(self) -> None:
        p = policy(hard="1", hard_action=HardAction.REQUIRE_APPROVAL)
        decision = run_plan(state([p]), chat(), counters=spent("p", "1"))
        assert decision.routing_action is RoutingAction.APPROVAL_REQUIRED

    def test_override_grant_lets_it_through(self) -> None:
        p = policy(hard="1", hard_action=HardAction.REQUIRE_APPROVAL)
        from conftest import ACME
        from spendgate.domain.planner import PlanCall, plan

        decision = plan(
            state([p], smart_routing=False),
            PlanCall(chat(), ACME),
            now=NOW,
            decision_id="d",
            counters=lambda keys: CounterState.of(Decimal(1)),
            grants={"p": OverrideGrant("p", "appr-1", Decimal(5))},
        )
        assert decision.routing_action is RoutingAction.PROCEED
        assert "budget_override_applied" in decision.reason_codes
        assert decision.budget_evaluations[0].approval_id == "appr-1"

    def test_most_severe_policy_decides(self) -> None:
        """Defect §6.11."""
        blocker = policy("blocker", hard="1")
        fine = policy("fine", hard="1000")
        for order in ([blocker, fine], [fine, blocker]):
            decision = run_plan(
                state(order, smart_routing=False), chat(), counters=spent("blocker", "1")
            )
            assert decision.routing_action is RoutingAction.BLOCK

    def test_other_scopes_and_windows_do_not_count(self) -> None:
        """Defect §6.1: yesterday's spend and another project's spend are not counted."""
        p = policy(hard="1")
        counters = {
            day_key("p", day="2026-11-24"): CounterState.of(Decimal(100)),
            day_key("p", member="globex"): CounterState.of(Decimal(100)),
        }
        decision = run_plan(state([p], smart_routing=False), chat(), counters=counters)
        assert decision.routing_action is RoutingAction.PROCEED

    def test_filters_follow_the_routed_model(self) -> None:
        only_standard = policy(hard="1", filters=BudgetFilters(models=frozenset({"standard"})))
        decision = run_plan(state([only_standard]), chat("hi"), counters=spent("p", "1"))
        # The simple prompt routes to mini, which this policy does not cover.
        assert decision.actual_model == "mini"
        assert decision.routing_action is RoutingAction.DEGRADE

    def test_token_budget_uses_upper_bound(self) -> None:
        p = policy(metric=Metric.TOKENS, hard="1000")
        decision = run_plan(state([p], smart_routing=False), chat(max_tokens=2000))
        assert decision.routing_action is RoutingAction.BLOCK
        evaluation = decision.budget_evaluations[0]
        assert evaluation.request_amount == decision.estimate.tokens_upper
        assert decision.estimate.output_tokens_upper == 2000


class TestPricing:
    def test_priced_at_request_time(self) -> None:
        """Defect §6.5: the newest price row effective at the request time prices it."""
        rise = PricingRecord(
            "standard",
            Decimal(5),
            Decimal(20),
            effective_from=NOW,
            source=PriceSource.CONFIG,
        )
        governance = state(prices=(*PRICES, rise), smart_routing=False)
        before = run_plan(governance, chat(max_tokens=100), now=NOW - timedelta(seconds=1))
        after = run_plan(governance, chat(max_tokens=100), now=NOW)
        assert before.estimate.upper_usd is not None
        assert after.estimate.upper_usd is not None
        assert after.estimate.upper_usd > before.estimate.upper_usd
        assert after.estimate.source is PriceSource.CONFIG

    def test_unpriced_model_is_never_zero(self) -> None:
        """Defect §7.8: unpriced is its own state; policy decides."""
        prices = [p for p in PRICES if p.model != "standard"]
        cap = policy(hard="100")
        alert = run_plan(
            state([cap], prices=prices, unpriced_action=UnpricedAction.ALERT, smart_routing=False),
            chat(),
        )
        assert alert.estimate.unpriced
        assert alert.estimate.upper_usd is None
        assert alert.budget_evaluations[0].status is BudgetStatus.UNPRICED
        assert "unpriced_model" in alert.reason_codes
        blocked = run_plan(
            state([cap], prices=prices, unpriced_action=UnpricedAction.BLOCK, smart_routing=False),
            chat(),
        )
        assert blocked.routing_action is RoutingAction.BLOCK
        estimated = run_plan(state([cap], prices=prices, smart_routing=False), chat())
        assert estimated.estimate.unpriced
        assert estimated.estimate.precision is Precision.ESTIMATE
        assert estimated.estimate.upper_usd is not None
        assert estimated.estimate.upper_usd > 0

    def test_several_choices_multiply_the_output_bound(self) -> None:
        one = run_plan(state(smart_routing=False), chat("Name a colour", max_tokens=50))
        ten = run_plan(state(smart_routing=False), chat("Name a colour", max_tokens=50, n=10))
        assert ten.estimate.output_tokens_upper == 10 * one.estimate.output_tokens_upper == 500

    def test_cost_bounds_are_ordered(self) -> None:
        decision = run_plan(state(smart_routing=False), chat("Tell me a story", max_tokens=500))
        estimate = decision.estimate
        assert estimate.lower_usd is not None
        assert estimate.upper_usd is not None
        assert 0 < estimate.lower_usd < estimate.upper_usd
        assert estimate.input_tokens_lower <= estimate.input_tokens_upper


class TestHealth:
    def test_failover_to_another_provider(self) -> None:
        from conftest import ACME
        from spendgate.domain.planner import PlanCall, plan

        decision = plan(
            state(smart_routing=False),
            PlanCall(chat(), ACME),
            now=NOW,
            decision_id="d",
            counters=lambda keys: CounterState.of(),
            health={"alpha": HealthState.UNHEALTHY},
        )
        assert decision.provider == "beta"
        assert decision.actual_model == "beta-standard"  # same tier on the healthy provider
        assert decision.routing_action is RoutingAction.FAILOVER

    def test_failover_target_is_rechecked_against_budget(self) -> None:
        """Peer failure §7.3: a pricier fallback must pass the budget at its own price."""
        from conftest import ACME
        from spendgate.domain.planner import PlanCall, plan

        only_beta = [MODELS[0], MODELS[3]]  # mini on alpha, premium on beta
        p = policy(hard="0.01")
        decision = plan(
            state([p], models=only_beta, smart_routing=False),
            PlanCall(chat(model="mini", max_tokens=1000), ACME),
            now=NOW,
            decision_id="d",
            counters=lambda keys: CounterState.of(),
            health={"alpha": HealthState.UNHEALTHY},
        )
        assert decision.recommended_model == "premium"
        assert decision.routing_action is RoutingAction.BLOCK


class TestErrors:
    def test_unknown_model(self) -> None:
        with pytest.raises(ModelNotFoundError):
            run_plan(state(), chat(model="nope"))

    def test_model_not_allowed_for_key(self) -> None:
        with pytest.raises(ModelNotAllowedError):
            run_plan(state(), chat(model="premium"), allowed_models=frozenset({"mini"}))

    def test_allowlist_limits_candidates(self) -> None:
        decision = run_plan(state(), chat("hi"), allowed_models=frozenset({"standard"}))
        assert decision.actual_model == "standard"

    def test_decision_is_fully_explained(self) -> None:
        decision = run_plan(state([policy()]), chat())
        assert decision.reason_codes
        assert decision.explanation
        assert all(code == code.lower() and " " not in code for code in decision.reason_codes)
        assert decision.budget_evaluations


class TestBoundsSentAndReserved:
    """The output ceiling reserved is the limit the provider gets, and input of unknown size
    is reserved up to the context window: the decision says both."""

    def test_no_max_tokens_is_sent_the_models_maximum(self) -> None:
        decision = run_plan(state(smart_routing=False), chat("Hi", model="standard"))
        assert decision.estimate.output_tokens_upper == 16_384
        assert "output_ceiling_applied" in decision.reason_codes
        assert any("limit of 16384 output tokens" in s for s in decision.explanation)

    def test_max_tokens_above_the_models_maximum_is_lowered(self) -> None:
        request = chat("Hi", model="standard", max_completion_tokens=100_000)
        decision = run_plan(state(smart_routing=False), request)
        assert decision.estimate.output_tokens_upper == 16_384
        assert "output_ceiling_applied" in decision.reason_codes
        assert any("up to 100000 output tokens" in s for s in decision.explanation)

    def test_max_tokens_within_the_maximum_is_left_alone(self) -> None:
        decision = run_plan(state(smart_routing=False), chat("Hi", model="standard", max_tokens=50))
        assert decision.estimate.output_tokens_upper == 50
        assert "output_ceiling_applied" not in decision.reason_codes

    @pytest.mark.parametrize("mode", [RoutingMode.SUGGEST, RoutingMode.DRY_RUN])
    def test_modes_that_change_nothing_apply_no_ceiling(self, mode: RoutingMode) -> None:
        decision = run_plan(state(mode=mode, smart_routing=False), chat("Hi", model="standard"))
        assert "output_ceiling_applied" not in decision.reason_codes

    def test_a_blocked_request_is_sent_nothing(self) -> None:
        blocked = state([policy("cap", hard="0.000001")], smart_routing=False)
        decision = run_plan(blocked, chat("Hi", model="standard"))
        assert decision.routing_action is RoutingAction.BLOCK
        assert "output_ceiling_applied" not in decision.reason_codes

    @staticmethod
    def file_by_id(model: str) -> ChatRequest:
        part = {"type": "file", "file": {"file_id": "file-abc"}}
        return ChatRequest.from_openai(
            {"model": model, "max_tokens": 10, "messages": [{"role": "user", "content": [part]}]}
        )

    def test_a_file_known_by_id_reserves_the_context_window(self) -> None:
        decision = run_plan(state(smart_routing=False), self.file_by_id("standard"))
        assert decision.estimate.input_tokens_upper == 128_000
        assert "input_size_unknown" in decision.reason_codes
        assert any("context window of 128000" in s for s in decision.explanation)

    def test_without_a_context_window_the_largest_one_is_assumed(self) -> None:
        models = (*MODELS, Model("open", "alpha", cost_tier=Tier.MEDIUM))
        decision = run_plan(state(models=models, smart_routing=False), self.file_by_id("open"))
        assert decision.estimate.input_tokens_upper == DEFAULT_CONTEXT_WINDOW


def test_a_headline_says_what_was_decided_not_how() -> None:
    from spendgate.domain.routing import headline

    codes = ("mode_enforced_configured", "simple_prompt_cheaper_model", "budget_ok")
    sentences = ("Mode enforced from config.", "A simple prompt goes to gpt-4o-mini.",
                 "Every applicable budget policy allows this request.")  # fmt: skip
    assert headline(codes, sentences) == "A simple prompt goes to gpt-4o-mini."
    assert headline(codes[:1], sentences[:1]) == "Mode enforced from config."
    assert headline((), ()) is None
    # A refused request: what refused it, not how it would have been routed.
    refused = ("mode_enforced_configured", "requested_model", "budget_approval_required")
    why = ("Mode enforced from config.", "gpt-4o-mini suits this simple request.",
           "batch-bot-daily-tokens needs an approved override.")  # fmt: skip
    assert headline(refused, why) == why[2]
