"""spendgate.yaml: the issue's example loads exactly, converts to the right domain objects, and
every kind of bad config is reported with the file, the path to the bad key and why."""

from __future__ import annotations

import copy
import textwrap
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

from spendgate.config import (
    DEFAULT_DATABASE_URL,
    DEMO_SOURCE,
    Config,
    ConfigError,
    load_config,
    parse_config,
)
from spendgate.domain.budgets import (
    DEFAULT_ALERT_THRESHOLDS,
    BudgetFilters,
    HardAction,
    Metric,
    SoftAction,
    UnpricedAction,
)
from spendgate.domain.keys import ADMIN, APPROVER, OVERRIDE_ROUTING_MODE, ApiKey
from spendgate.domain.models import Capability, Model, Provider, ProviderKind, Tier
from spendgate.domain.pricing import (
    Precision,
    PriceBook,
    PriceSource,
    PricingRecord,
    tier_for_price,
)
from spendgate.domain.routing import RoutingMode, RoutingSettings
from spendgate.domain.scopes import RequestScopes, ScopeKind, ScopeRef, split_member
from spendgate.domain.windows import Interval, IntervalKind

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)

# The "Config (spendgate.yaml)" example of issue 2, verbatim.
ISSUE_EXAMPLE = """\
database_url: sqlite:///./spendgate.db     # default when omitted
timezone: UTC                              # default timezone for calendar windows
providers:
  - {id: openai, kind: openai, base_url: "http://127.0.0.1:9100/v1", api_key_env: OPENAI_API_KEY, max_concurrency: 64, timeout_s: 60}
models:
  - {id: gpt-4o-mini, provider: openai, upstream_id: gpt-4o-mini, capabilities: [json, vision, tools],
     context_window: 128000, max_output_tokens: 16384, cost_tier: low, latency_tier: low}
pricing:                                   # USD per 1M tokens; overrides the built-in catalog
  - {model: gpt-4o-mini, input_per_mtok: 0.15, output_per_mtok: 0.60, cached_input_per_mtok: 0.075, per_request: 0, effective_from: "2024-07-18T00:00:00Z"}
routing: {default_model: gpt-4o, mode: suggest, smart_routing: true, auxiliary_routing: true,
          failover: true, simple_below: 0.35, complex_above: 0.75}
keys:
  - {id: alice, key_env: ALICE_KEY, principal: alice, project: acme, permissions: [], models: [gpt-4o, gpt-4o-mini]}
budgets:
  - id: acme-daily
    scope: {kind: project, id: acme}       # global | project | principal | api_key | agent | session; id "*" = each member
    filters: {models: [gpt-4o]}            # optional: models, providers, task_classes
    metric: usd                            # usd | tokens | requests
    interval: daily                        # hourly|daily|weekly|monthly, or {kind: monthly, timezone: Europe/Prague}, or {kind: rolling, duration: 7d}
    soft_limit: 5
    hard_limit: 10
    soft_action: alert                     # alert | degrade
    hard_action: block                     # block | require_approval | degrade | alert
    degrade_to: gpt-4o-mini                # optional
    alert_thresholds: [0.5, 0.8, 0.95]
    routing_mode_override: enforced        # optional, applied to the scope once the soft limit is crossed
    enabled: true
alerts: {webhook_url: null, cost_spike_usd: 0.50}
"""  # noqa: E501

# Model ids the price catalog knows, for tests that must not depend on the catalog's data.
KNOWN = frozenset({"gpt-4o", "gpt-4o-mini", "o1"})


def parse(text: str, source: str = "spendgate.yaml") -> Config:
    return parse_config(textwrap.dedent(text), source, known_models=KNOWN)


# -- the issue's example ------------------------------------------------------------------


@pytest.fixture(scope="module")
def example() -> Config:
    # Uses the real catalog for references: gpt-4o is priced there but not configured.
    return parse_config(ISSUE_EXAMPLE, "spendgate.yaml")


def test_example_top_level(example: Config) -> None:
    assert example.database_url == "sqlite:///./spendgate.db"
    assert example.timezone == "UTC"
    assert example.unpriced_action is UnpricedAction.ESTIMATE
    assert example.alerts.webhook_url is None
    assert example.alerts.cost_spike_usd == Decimal("0.50")
    assert example.source == "spendgate.yaml"


def test_example_providers(example: Config) -> None:
    assert example.providers() == (
        Provider(
            id="openai",
            kind=ProviderKind.OPENAI,
            base_url="http://127.0.0.1:9100/v1",
            api_key_env="OPENAI_API_KEY",
            max_concurrency=64,
            timeout_s=60.0,
        ),
    )


def test_example_models(example: Config) -> None:
    assert example.models(PriceBook(()), NOW) == (
        Model(
            id="gpt-4o-mini",
            provider="openai",
            upstream_id="gpt-4o-mini",
            capabilities=frozenset({Capability.JSON, Capability.VISION, Capability.TOOLS}),
            context_window=128000,
            max_output_tokens=16384,
            cost_tier=Tier.LOW,
            latency_tier=Tier.LOW,
        ),
    )


def test_example_pricing_is_exact_decimal(example: Config) -> None:
    assert example.pricing_records() == (
        PricingRecord(
            model="gpt-4o-mini",
            input_per_mtok=Decimal("0.15"),
            output_per_mtok=Decimal("0.60"),
            cached_input_per_mtok=Decimal("0.075"),
            per_request=Decimal(0),
            effective_from=datetime(2024, 7, 18, tzinfo=UTC),
            effective_to=None,
            source=PriceSource.CONFIG,
            precision=Precision.EXACT,
        ),
    )
    record = example.pricing_records()[0]
    assert str(record.input_per_mtok) == "0.15"  # parsed via str, not via binary float


def test_example_routing(example: Config) -> None:
    assert example.routing_settings() == RoutingSettings(
        default_model="gpt-4o",
        mode=RoutingMode.SUGGEST,
        smart_routing=True,
        auxiliary_routing=True,
        failover=True,
        simple_below=0.35,
        complex_above=0.75,
    )


def test_example_keys(example: Config) -> None:
    assert example.api_keys() == (
        ApiKey(
            id="alice",
            principal="alice",
            project="acme",
            permissions=frozenset(),
            models=frozenset({"gpt-4o", "gpt-4o-mini"}),
            key_env="ALICE_KEY",
        ),
    )


def test_example_budget(example: Config) -> None:
    (policy,) = example.budget_policies()
    assert policy.id == "acme-daily"
    assert policy.scope == ScopeRef(ScopeKind.PROJECT, "acme")
    assert policy.filters == BudgetFilters(models=frozenset({"gpt-4o"}))
    assert policy.metric is Metric.USD
    assert policy.interval == Interval(IntervalKind.DAILY, "UTC")
    assert (policy.soft_limit, policy.hard_limit) == (Decimal(5), Decimal(10))
    assert policy.soft_action is SoftAction.ALERT
    assert policy.hard_action is HardAction.BLOCK
    assert policy.degrade_to == "gpt-4o-mini"
    assert policy.alert_thresholds == (Decimal("0.5"), Decimal("0.8"), Decimal("0.95"))
    assert policy.routing_mode_override == "enforced"
    assert policy.mode is None
    assert policy.enabled is True
    assert policy.source == "config"


def test_example_problems_are_reported_not_raised(example: Config) -> None:
    problems = example.problems({})
    assert any("OPENAI_API_KEY" in p for p in problems)
    assert any("ALICE_KEY" in p for p in problems)
    assert any(p.startswith("routing.default_model: gpt-4o is not configured") for p in problems)
    assert example.provider_problems({"OPENAI_API_KEY": "sk-x"}) == []


# -- optional keys and defaults ----------------------------------------------------------

MINIMAL = """
providers: [{id: up, kind: openai}]
models: [{id: gpt-4o-mini, provider: up}, {id: gpt-4o, provider: up}]
pricing: [{model: gpt-4o, input_per_mtok: 2.5, output_per_mtok: 10}]
budgets:
  - {id: b, scope: {kind: global}, metric: requests, interval: hourly, hard_limit: 100}
"""


def test_minimal_entries_get_their_defaults() -> None:
    config = parse(MINIMAL)
    (provider,) = config.providers()
    assert provider == Provider("up", ProviderKind.OPENAI, None, None, 64, 60.0)
    (price,) = config.pricing_records()
    assert price.cached_input_per_mtok is None
    assert price.per_request == Decimal(0)
    assert (price.effective_from, price.effective_to) == (None, None)
    (policy,) = config.budget_policies()
    assert policy.scope == ScopeRef(ScopeKind.GLOBAL, "global")
    assert policy.soft_limit is None
    assert policy.soft_action is SoftAction.ALERT
    assert policy.hard_action is HardAction.BLOCK
    assert policy.enabled is True
    assert policy.alert_thresholds == DEFAULT_ALERT_THRESHOLDS
    assert policy.filters == BudgetFilters()
    assert config.api_keys() == ()
    assert config.routing_settings() == RoutingSettings(default_model="gpt-4o-mini")


def test_model_defaults_and_derived_cost_tier() -> None:
    config = parse(MINIMAL)
    book = config.price_book(
        [PricingRecord("gpt-4o-mini", Decimal("0.15"), Decimal("0.6"))]  # a catalog row
    )
    mini, big = config.models(book, NOW)
    assert mini.upstream_id == "gpt-4o-mini"
    assert mini.capabilities == frozenset()
    assert mini.latency_tier is Tier.MEDIUM
    assert mini.enabled is True
    assert mini.cost_tier is Tier.LOW  # derived from the catalog price
    assert big.cost_tier is Tier.MEDIUM  # derived from the config price (blended 4.375)


def test_unpriced_model_without_tier_is_medium() -> None:
    config = parse("providers: [{id: up, kind: mock}]\nmodels: [{id: local, provider: up}]")
    (model,) = config.models(PriceBook(()), NOW)
    assert model.cost_tier is Tier.MEDIUM


def test_price_book_prices_a_model_under_its_own_id() -> None:
    config = parse(
        """
        providers: [{id: up, kind: openai}]
        models: [{id: fast, provider: up, upstream_id: gpt-4o-mini}]
        """
    )
    catalog = [PricingRecord("gpt-4o-mini", Decimal("0.15"), Decimal("0.6"))]
    book = config.price_book(catalog)
    record = book.price_for("fast", NOW)
    assert record is not None
    assert record.input_per_mtok == Decimal("0.15")
    assert config.models(book, NOW)[0].cost_tier is Tier.LOW


def test_config_prices_override_catalog() -> None:
    config = parse(MINIMAL)
    book = config.price_book([PricingRecord("gpt-4o", Decimal("5"), Decimal("15"))])
    record = book.price_for("gpt-4o", NOW)
    assert record is not None
    assert record.source is PriceSource.CONFIG
    assert record.input_per_mtok == Decimal("2.5")


@pytest.mark.parametrize("text", ["", "\n", "# only a comment\n", "---\n"])
def test_empty_file_is_all_defaults(text: str) -> None:
    config = parse(text)
    assert config.database_url == DEFAULT_DATABASE_URL
    assert config.timezone == "UTC"
    assert config.unpriced_action is UnpricedAction.ESTIMATE
    assert config.providers() == ()
    assert config.models(PriceBook(())) == ()
    assert config.budget_policies() == ()
    assert config.routing.mode is RoutingMode.SUGGEST
    assert config.alerts.cost_spike_usd == Decimal("0.50")
    assert config.problems({}) == []


def test_no_models_means_no_default_model() -> None:
    with pytest.raises(ConfigError, match=r"routing\.default_model"):
        parse("").routing_settings()


def test_null_sections_are_empty() -> None:
    config = parse("providers:\nmodels:\nbudgets:\nkeys:\npricing:\nrouting:\nalerts:\n")
    assert config.providers() == ()
    assert config.routing.mode is RoutingMode.SUGGEST


def test_unpriced_action_setting() -> None:
    assert parse("unpriced_action: block").unpriced_action is UnpricedAction.BLOCK
    assert parse("unpriced_action: alert").unpriced_action is UnpricedAction.ALERT


@pytest.mark.parametrize(
    ("interval", "expected"),
    [
        ("hourly", Interval(IntervalKind.HOURLY, "Europe/Prague")),
        ("weekly", Interval(IntervalKind.WEEKLY, "Europe/Prague")),
        (
            "{kind: monthly, timezone: America/New_York}",
            Interval(IntervalKind.MONTHLY, "America/New_York"),
        ),
        (
            "{kind: rolling, duration: 30m}",
            Interval(IntervalKind.ROLLING, duration=timedelta(minutes=30)),
        ),
        (
            "{kind: rolling, duration: 12h}",
            Interval(IntervalKind.ROLLING, duration=timedelta(hours=12)),
        ),
        (
            "{kind: rolling, duration: 7d}",
            Interval(IntervalKind.ROLLING, duration=timedelta(days=7)),
        ),
        (
            "{kind: rolling, duration: 2w}",
            Interval(IntervalKind.ROLLING, duration=timedelta(weeks=2)),
        ),
    ],
)
def test_interval_forms(interval: str, expected: Interval) -> None:
    config = parse(
        f"""
        timezone: Europe/Prague
        budgets:
          - {{id: b, scope: {{kind: project, id: "*"}}, metric: tokens, interval: {interval}, hard_limit: 5}}
        """  # noqa: E501
    )
    assert config.budget_policies()[0].interval == expected


def test_decimal_money_is_exact() -> None:
    config = parse(
        """
        budgets: [{id: b, scope: {kind: global}, metric: usd, interval: daily, hard_limit: 0.1,
                   soft_limit: 0.07, alert_thresholds: [0.1, 0.2, 0.3]}]
        """
    )
    policy = config.budget_policies()[0]
    assert policy.hard_limit == Decimal("0.1")
    assert policy.soft_limit == Decimal("0.07")
    assert policy.alert_thresholds == (Decimal("0.1"), Decimal("0.2"), Decimal("0.3"))


def test_budget_modes_filters_and_degrade() -> None:
    config = parse(
        """
        providers: [{id: up, kind: openai}]
        models: [{id: gpt-4o-mini, provider: up}, {id: gpt-4o, provider: up}]
        budgets:
          - id: b
            scope: {kind: api_key, id: "*"}
            filters: {models: [gpt-4o], providers: [up], task_classes: [auxiliary_summary]}
            metric: usd
            interval: {kind: rolling, duration: 7d}
            soft_limit: 1
            hard_limit: 2
            soft_action: degrade
            hard_action: degrade
            mode: dry_run
            enabled: false
        """
    )
    policy = config.budget_policies()[0]
    assert policy.scope == ScopeRef(ScopeKind.API_KEY, "*")
    assert policy.filters == BudgetFilters(
        frozenset({"gpt-4o"}), frozenset({"up"}), frozenset({"auxiliary_summary"})
    )
    assert policy.degrade_to is None  # routing picks the cheapest suitable model
    assert policy.mode == "dry_run"
    assert policy.enabled is False


def test_provider_problems() -> None:
    config = parse(
        """
        providers:
          - {id: oa, kind: openai, api_key_env: OA_KEY}
          - {id: an, kind: anthropic, api_key_env: AN_KEY}
          - {id: local, kind: openai, base_url: "http://localhost:8000/v1"}
          - {id: mock, kind: mock, api_key_env: NEVER_SET}
        """
    )
    assert config.provider_problems({"OA_KEY": "x", "AN_KEY": ""}) == [
        "provider an: environment variable AN_KEY is not set, so calls to it cannot authenticate"
    ]
    assert len(config.provider_problems({})) == 2


def test_access_problems() -> None:
    """No key at all, or no admin access, in the environment given and the keys stored."""
    bare = parse("models: [{id: gpt-4o-mini, provider: oa}]\nproviders: [{id: oa, kind: mock}]")
    unknown, none_stored = bare.access_problems({}, None), bare.access_problems({}, [])
    assert [p.split(":")[0] for p in none_stored] == ["no API keys", "no admin access"]
    assert "(the database could not be read)" in unknown[0]
    assert "(the database could not be read)" not in none_stored[0]
    stored_admin = ApiKey("ops", permissions=frozenset({ADMIN}))
    assert bare.access_problems({}, [stored_admin]) == []
    assert bare.access_problems({"SPENDGATE_ADMIN_TOKEN": "t"}, [ApiKey("eve")]) == []

    keyed = parse(
        """
        keys:
          - {id: ops, key_env: OPS_KEY, permissions: [admin]}
          - {id: eve, key_env: EVE_KEY}
        """
    )
    assert keyed.access_problems({"OPS_KEY": "s"}, []) == []
    # An admin key whose secret is unset grants nothing (and key_problems names it).
    (problem,) = keyed.access_problems({"EVE_KEY": "s"}, None)
    assert problem.startswith("no admin access: SPENDGATE_ADMIN_TOKEN is not set")


def test_timestamps_as_dates_and_naive_times_are_utc() -> None:
    config = parse(
        """
        pricing:
          - {model: o1, input_per_mtok: 15, output_per_mtok: 60, effective_from: 2024-12-17,
             effective_to: "2025-06-01T02:00:00+02:00"}
        """
    )
    record = config.pricing_records()[0]
    assert record.effective_from == datetime(2024, 12, 17, tzinfo=UTC)
    assert record.effective_to == datetime(2025, 6, 1, tzinfo=UTC)


# -- the demo config -----------------------------------------------------------------------


def test_demo_config_loads_without_any_env() -> None:
    config = load_config(None)
    assert config.source == DEMO_SOURCE
    (provider,) = config.providers()
    assert provider.kind is ProviderKind.MOCK
    assert provider.base_url == "http://127.0.0.1:9100/v1"
    assert config.provider_problems({}) == []
    assert config.model_problems() == []
    models = config.models(PriceBook(()), NOW)
    assert len(models) == 3
    assert {m.cost_tier for m in models} == {Tier.LOW, Tier.MEDIUM, Tier.HIGH}
    assert len(config.budget_policies()) == 3
    assert {p.hard_action for p in config.budget_policies()} >= {HardAction.BLOCK}
    assert config.routing_settings().default_model in {m.id for m in models}
    assert all(key.key_env for key in config.api_keys())


def test_demo_models_are_priced_by_the_catalog() -> None:
    from spendgate.catalog import load_catalog

    config = load_config(None)
    book = config.price_book(load_catalog())
    for model in config.models(book, NOW):
        record = book.price_for(model.id, NOW)
        assert record is not None, model.id
        # The demo writes its tiers out; they are the ones its catalog prices derive.
        assert model.cost_tier is tier_for_price(record), model.id


# -- files -----------------------------------------------------------------------------------


def test_load_config_from_file(tmp_path: Path) -> None:
    path = tmp_path / "spendgate.yaml"
    path.write_text(ISSUE_EXAMPLE)
    config = load_config(path)
    assert config.source == str(path)
    assert load_config(str(path)).budget_policies() == config.budget_policies()


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path / "nope.yaml")
    assert str(caught.value) == f"{tmp_path / 'nope.yaml'}: no such file"


def test_yaml_syntax_error_reports_line_and_column() -> None:
    with pytest.raises(ConfigError) as caught:
        parse("providers:\n  - {id: a, kind: openai\nmodels: []\n", "bad.yaml")
    message = str(caught.value)
    assert message.startswith("bad.yaml:3:")
    assert "YAML syntax error" in message
    assert caught.value.problems[0].column is not None


@pytest.mark.parametrize("text", ["- a\n- b\n", "just a string\n", "42\n"])
def test_top_level_must_be_a_mapping(text: str) -> None:
    with pytest.raises(ConfigError, match="must be a mapping"):
        parse(text)


# -- bad configs: every kind is reported with its path and reason ------------------------

BASE: dict[str, Any] = {
    "providers": [
        {"id": "oa", "kind": "openai", "api_key_env": "OA_KEY"},
        {"id": "local", "kind": "mock"},
    ],
    "models": [
        {"id": "gpt-4o-mini", "provider": "oa", "capabilities": ["json"]},
        {"id": "gpt-4o", "provider": "oa"},
    ],
    "pricing": [{"model": "gpt-4o", "input_per_mtok": 2.5, "output_per_mtok": 10}],
    "routing": {"default_model": "gpt-4o", "mode": "suggest"},
    "keys": [{"id": "alice", "key_env": "ALICE_KEY", "permissions": [], "models": ["gpt-4o"]}],
    "budgets": [
        {
            "id": "acme-daily",
            "scope": {"kind": "project", "id": "acme"},
            "metric": "usd",
            "interval": "daily",
            "soft_limit": 5,
            "hard_limit": 10,
        },
        {
            "id": "global-hourly",
            "scope": {"kind": "global"},
            "metric": "requests",
            "interval": {"kind": "rolling", "duration": "1h"},
            "hard_limit": 100,
        },
    ],
    "alerts": {"cost_spike_usd": 0.5},
}
DELETE = object()


def variant(path: str, value: object) -> str:
    """BASE as YAML with the value at ``path`` (``budgets.1.interval.duration``) replaced."""
    data = copy.deepcopy(BASE)
    *parents, last = [int(p) if p.isdigit() else p for p in path.split(".")]
    node: Any = data
    for part in parents:
        node = node[part]
    if value is DELETE:
        del node[last]
    else:
        node[last] = value
    return yaml.safe_dump(data, sort_keys=False)


def test_base_is_valid() -> None:
    assert parse(variant("timezone", "UTC")).budget_policies()


BAD = [
    # unknown keys, with a suggestion when close
    ("hard_limt", "budgets.0.hard_limt", 3, "budgets[0] (acme-daily).hard_limt", "unknown key 'hard_limt' (did you mean 'hard_limit'?)"),  # noqa: E501
    ("unknown_top", "budget", [], "budget", "unknown key 'budget' (did you mean 'budgets'?)"),
    ("unknown_far", "routing.colour", "red", "routing.colour", "unknown key 'colour'"),
    # wrong types
    ("type_int", "providers.0.max_concurrency", "many", "providers[0] (oa).max_concurrency", "expected a whole number, got the string 'many'"),  # noqa: E501
    ("type_bool", "routing.failover", "yes please", "routing.failover", "expected true or false"),
    ("type_number", "budgets.0.hard_limit", "ten", "budgets[0] (acme-daily).hard_limit", "expected a number, got the string 'ten'"),  # noqa: E501
    ("type_list", "models.0.capabilities", "json", "models[0] (gpt-4o-mini).capabilities", "expected a list"),  # noqa: E501
    ("type_mapping", "routing", 5, "routing", "expected a mapping, got 5"),
    ("type_id", "models.1.id", 4, "models[1].id", "expected a string, got 4"),
    # missing required fields
    ("missing_metric", "budgets.0.metric", DELETE, "budgets[0] (acme-daily).metric", "required key is missing"),  # noqa: E501
    ("missing_provider", "models.1.provider", DELETE, "models[1] (gpt-4o).provider", "a model needs a provider, or deployments"),  # noqa: E501
    ("missing_key_env", "keys.0.key_env", DELETE, "keys[0] (alice).key_env", "required key is missing"),  # noqa: E501
    # limits
    ("negative_limit", "budgets.0.hard_limit", -10, "budgets[0] (acme-daily).hard_limit", "must be greater than 0"),  # noqa: E501
    ("zero_limit", "budgets.1.hard_limit", 0, "budgets[1] (global-hourly).hard_limit", "must be greater than 0"),  # noqa: E501
    ("zero_soft", "budgets.0.soft_limit", 0, "budgets[0] (acme-daily).soft_limit", "must be greater than 0"),  # noqa: E501
    ("soft_above_hard", "budgets.0.soft_limit", 50, "budgets[0] (acme-daily).soft_limit", "soft_limit 50 is above hard_limit 10"),  # noqa: E501
    ("fractional_requests", "budgets.1.hard_limit", 10.5, "budgets[1] (global-hourly).hard_limit", "must be a whole number"),  # noqa: E501
    ("huge_limit", "budgets.0.hard_limit", "1e999999999", "budgets[0] (acme-daily).hard_limit", "too large: amounts are at most 1,000,000,000,000,000"),  # noqa: E501
    ("limit_too_precise", "budgets.0.hard_limit", "1e-999999999", "budgets[0] (acme-daily).hard_limit", "more than 18 decimal places"),  # noqa: E501
    ("threshold_too_precise", "budgets.0.alert_thresholds", ["1e-30"], "budgets[0] (acme-daily).alert_thresholds[0]", "more than 18 decimal places"),  # noqa: E501
    ("fee_too_precise", "pricing.0.per_request", "1e-999999999", "pricing[0] (gpt-4o).per_request", "more than 18 decimal places"),  # noqa: E501
    ("negative_spike", "alerts.cost_spike_usd", -1, "alerts.cost_spike_usd", "must be greater than 0"),  # noqa: E501
    ("falling_spike", "alerts.spike_factor", 0.5, "alerts.spike_factor", "must be at least 1: a spike is a rise"),  # noqa: E501
    ("bad_webhook_kind", "alerts.webhooks", [{"id": "ops", "url": "https://hooks.example.com/a", "kinds": ["cost_spikes"]}], "alerts.webhooks[0].kinds", "unknown kind(s) ['cost_spikes']"),  # noqa: E501
    ("webhook_format", "alerts.webhooks", [{"id": "ops", "url": "https://hooks.example.com/a", "format": "teams"}], "alerts.webhooks[0].format", "teams"),  # noqa: E501
    ("duplicate_webhooks", "alerts", {"webhook_url": "https://hooks.example.com/a", "webhooks": [{"id": "default", "url": "https://hooks.example.com/b"}]}, "alerts", "webhook ids must be unique: default"),  # noqa: E501
    # alert thresholds
    ("threshold_above_1", "budgets.0.alert_thresholds", [0.5, 1.5], "budgets[0] (acme-daily).alert_thresholds[1]", "not a fraction of the hard limit in (0, 1]"),  # noqa: E501
    ("threshold_zero", "budgets.0.alert_thresholds", [0, 0.5], "budgets[0] (acme-daily).alert_thresholds[0]", "not a fraction"),  # noqa: E501
    ("threshold_unsorted", "budgets.0.alert_thresholds", [0.8, 0.5], "budgets[0] (acme-daily).alert_thresholds[1]", "sorted and distinct"),  # noqa: E501
    ("threshold_duplicate", "budgets.0.alert_thresholds", [0.5, 0.5], "budgets[0] (acme-daily).alert_thresholds[1]", "sorted and distinct"),  # noqa: E501
    # timezones
    ("bad_timezone", "timezone", "Europe/Prag", "timezone", "unknown IANA timezone 'Europe/Prag' (did you mean 'Europe/Prague'?)"),  # noqa: E501
    ("bad_interval_tz", "budgets.0.interval", {"kind": "daily", "timezone": "Mars/Olympus"}, "budgets[0] (acme-daily).interval.timezone", "unknown IANA timezone 'Mars/Olympus'"),  # noqa: E501
    ("huge_timezone", "timezone", "A" * 300, "timezone", "unknown IANA timezone 'AAAA"),
    # intervals and durations
    ("rolling_no_duration", "budgets.1.interval.duration", DELETE, "budgets[1] (global-hourly).interval.duration", "a rolling interval needs a duration"),  # noqa: E501
    ("rolling_bad_duration", "budgets.1.interval.duration", "7 days", "budgets[1] (global-hourly).interval.duration", "malformed duration '7 days'"),  # noqa: E501
    ("rolling_zero_duration", "budgets.1.interval.duration", "0h", "budgets[1] (global-hourly).interval.duration", "must be positive"),  # noqa: E501
    ("rolling_number_duration", "budgets.1.interval.duration", 7, "budgets[1] (global-hourly).interval.duration", "expected a duration such as 30m"),  # noqa: E501
    ("calendar_with_duration", "budgets.0.interval", {"kind": "daily", "duration": "1d"}, "budgets[0] (acme-daily).interval.duration", "only a rolling interval takes a duration"),  # noqa: E501
    ("rolling_huge_duration", "budgets.1.interval.duration", "900000d", "budgets[1] (global-hourly).interval.duration", "a rolling window lasts at most 366 days (got 900000d)"),  # noqa: E501
    ("rolling_year_and_a_day", "budgets.1.interval.duration", "367d", "budgets[1] (global-hourly).interval.duration", "at most 366 days"),  # noqa: E501
    ("rolling_overflowing_duration", "budgets.1.interval.duration", "99999999999999w", "budgets[1] (global-hourly).interval.duration", "is too long"),  # noqa: E501
    ("rolling_with_tz", "budgets.1.interval.timezone", "UTC", "budgets[1] (global-hourly).interval.timezone", "not tied to a timezone"),  # noqa: E501
    ("unknown_interval", "budgets.0.interval", "fortnightly", "budgets[0] (acme-daily).interval", "unknown interval 'fortnightly'"),  # noqa: E501
    ("bare_rolling", "budgets.0.interval", "rolling", "budgets[0] (acme-daily).interval.duration", "needs a duration"),  # noqa: E501
    # unknown enum values
    ("enum_metric", "budgets.0.metric", "dollars", "budgets[0] (acme-daily).metric", "unknown value 'dollars'; expected one of: usd, tokens, requests"),  # noqa: E501
    ("enum_hard_action", "budgets.0.hard_action", "explode", "budgets[0] (acme-daily).hard_action", "expected one of: block, require_approval, degrade, alert"),  # noqa: E501
    ("enum_soft_action", "budgets.0.soft_action", "degarde", "budgets[0] (acme-daily).soft_action", "(did you mean 'degrade'?)"),  # noqa: E501
    ("enum_scope_kind", "budgets.0.scope.kind", "team", "budgets[0] (acme-daily).scope.kind", "unknown value 'team'"),  # noqa: E501
    ("enum_routing_mode", "routing.mode", "strict", "routing.mode", "expected one of: suggest, dry_run, enforced"),  # noqa: E501
    ("enum_override_mode", "budgets.0.routing_mode_override", "enforce", "budgets[0] (acme-daily).routing_mode_override", "(did you mean 'enforced'?)"),  # noqa: E501
    ("enum_capability", "models.0.capabilities", ["json", "vison"], "models[0] (gpt-4o-mini).capabilities[1]", "unknown value 'vison' (did you mean 'vision'?)"),  # noqa: E501
    ("enum_tier", "models.0.cost_tier", "cheap", "models[0] (gpt-4o-mini).cost_tier", "expected one of: low, medium, high"),  # noqa: E501
    ("enum_latency_tier", "models.0.latency_tier", "fast", "models[0] (gpt-4o-mini).latency_tier", "unknown value 'fast'"),  # noqa: E501
    ("enum_provider_kind", "providers.0.kind", "openia", "providers[0] (oa).kind", "(did you mean 'openai'?)"),  # noqa: E501
    ("enum_task_class", "budgets.0.filters", {"task_classes": ["chat"]}, "budgets[0] (acme-daily).filters.task_classes[0]", "unknown value 'chat'"),  # noqa: E501
    ("enum_unpriced", "unpriced_action", "ignore", "unpriced_action", "expected one of: estimate, block, alert"),  # noqa: E501
    ("enum_permission", "keys.0.permissions", ["admn"], "keys[0] (alice).permissions[0]", "unknown permission 'admn' (did you mean 'admin'?)"),  # noqa: E501
    # duplicate ids
    ("dup_provider", "providers.1.id", "oa", "providers[1] (oa).id", "duplicate id 'oa' (also providers[0])"),  # noqa: E501
    ("dup_model", "models.1.id", "gpt-4o-mini", "models[1] (gpt-4o-mini).id", "duplicate id 'gpt-4o-mini' (also models[0])"),  # noqa: E501
    ("dup_budget", "budgets.1.id", "acme-daily", "budgets[1] (acme-daily).id", "duplicate id 'acme-daily' (also budgets[0])"),  # noqa: E501
    ("dup_key", "keys", [{"id": "k", "key_env": "A"}, {"id": "k", "key_env": "B"}], "keys[1] (k).id", "duplicate id 'k' (also keys[0])"),  # noqa: E501
    ("dup_key_env", "keys", [{"id": "a", "key_env": "A"}, {"id": "b", "key_env": "A"}], "keys[1] (b).key_env", "A is also the key_env of keys[0]"),  # noqa: E501
    # dangling references
    ("ref_model_provider", "models.1.provider", "opneai", "models[1] (gpt-4o).provider", "unknown provider 'opneai'; configured providers: oa, local"),  # noqa: E501
    ("ref_default_model", "routing.default_model", "gpt-4p", "routing.default_model", "unknown model 'gpt-4p' (did you mean 'gpt-4o'?): not configured under models and not in the price catalog"),  # noqa: E501
    ("ref_degrade_to", "budgets.0.degrade_to", "o1", "budgets[0] (acme-daily).degrade_to", "degrade_to must be a configured model; 'o1' is not one of: gpt-4o-mini, gpt-4o"),  # noqa: E501
    ("ref_filter_model", "budgets.0.filters", {"models": ["gpt-5o"]}, "budgets[0] (acme-daily).filters.models[0]", "unknown model 'gpt-5o'"),  # noqa: E501
    ("ref_filter_provider", "budgets.0.filters", {"providers": ["openai"]}, "budgets[0] (acme-daily).filters.providers[0]", "unknown provider 'openai'"),  # noqa: E501
    ("ref_key_models", "keys.0.models", ["gpt-4o", "claude-x"], "keys[0] (alice).models[1]", "unknown model 'claude-x'"),  # noqa: E501
    ("ref_pricing_model", "pricing.0.model", "gtp-4o", "pricing[0] (gtp-4o).model", "unknown model 'gtp-4o'"),  # noqa: E501
    # prices that look per token, or absurd, or negative
    ("per_token_price", "pricing.0.input_per_mtok", 0.0000025, "pricing[0] (gpt-4o).input_per_mtok", "looks like a price per token; prices are USD per 1M tokens (write 2.5 for 0.0000025 per token)"),  # noqa: E501
    ("per_token_output", "pricing.0.output_per_mtok", 0.00001, "pricing[0] (gpt-4o).output_per_mtok", "looks like a price per token"),  # noqa: E501
    ("huge_price", "pricing.0.output_per_mtok", 25000, "pricing[0] (gpt-4o).output_per_mtok", "implausibly high; prices are USD per 1M tokens"),  # noqa: E501
    ("negative_price", "pricing.0.input_per_mtok", -1, "pricing[0] (gpt-4o).input_per_mtok", "cannot be negative"),  # noqa: E501
    ("negative_fee", "pricing.0.per_request", -0.01, "pricing[0] (gpt-4o).per_request", "cannot be negative"),  # noqa: E501
    ("dates_reversed", "pricing.0", {"model": "gpt-4o", "input_per_mtok": 2.5, "output_per_mtok": 10, "effective_from": "2025-01-01T00:00:00Z", "effective_to": "2024-01-01T00:00:00Z"}, "pricing[0] (gpt-4o).effective_to", "is not after effective_from"),  # noqa: E501
    ("dup_price_row", "pricing", [{"model": "gpt-4o", "input_per_mtok": 2.5, "output_per_mtok": 10}] * 2, "pricing[1] (gpt-4o).effective_from", "a second price for gpt-4o"),  # noqa: E501
    # routing bands
    ("bands_reversed", "routing", {"simple_below": 0.8, "complex_above": 0.5}, "routing.simple_below", "must be below complex_above"),  # noqa: E501
    ("bands_equal", "routing", {"simple_below": 0.5, "complex_above": 0.5}, "routing.simple_below", "must be below complex_above"),  # noqa: E501
    ("band_out_of_range", "routing.complex_above", 1.5, "routing.complex_above", "must be at most 1"),  # noqa: E501
    # scopes
    ("global_with_id", "budgets.1.scope", {"kind": "global", "id": "acme"}, "budgets[1] (global-hourly).scope.id", "a global scope has one member"),  # noqa: E501
    ("scope_without_id", "budgets.0.scope", {"kind": "principal"}, "budgets[0] (acme-daily).scope.id", "needs an id"),  # noqa: E501
    # other
    ("soft_degrade_without_soft", "budgets.1.soft_action", "degrade", "budgets[1] (global-hourly).soft_action", "never applies without a soft_limit"),  # noqa: E501
    ("empty_filter", "budgets.0.filters", {"models": []}, "budgets[0] (acme-daily).filters.models", "matches nothing"),  # noqa: E501
    ("secret_in_env_name", "providers.0.api_key_env", "sk-abc123", "providers[0] (oa).api_key_env", "is not an environment variable name"),  # noqa: E501
    ("bad_base_url", "providers.0.base_url", "127.0.0.1:9100", "providers[0] (oa).base_url", "expected an http:// or https:// URL"),  # noqa: E501
    ("bad_database_url", "database_url", "mysql://db", "database_url", "expected a sqlite:///path or postgresql://"),  # noqa: E501
    ("zero_timeout", "providers.0.timeout_s", 0, "providers[0] (oa).timeout_s", "must be greater than 0"),  # noqa: E501
    ("id_with_space", "budgets.0.id", "acme daily", "budgets[0] (acme daily).id", "without spaces"),
    ("id_too_long", "keys.0.project", "p" * 129, "keys[0] (alice).project", "must be at most 128 characters, got 129"),  # noqa: E501
]  # fmt: skip


@pytest.mark.parametrize(
    ("path", "value", "where", "why"), [case[1:] for case in BAD], ids=[case[0] for case in BAD]
)
def test_bad_config_names_file_path_and_reason(
    path: str, value: object, where: str, why: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        parse(variant(path, value), "conf/spendgate.yaml")
    lines = str(caught.value).splitlines()
    matching = [line for line in lines if f": {where}: " in line and why in line]
    assert matching, "\n".join(lines)
    assert all(line.startswith("conf/spendgate.yaml:") for line in lines)
    assert caught.value.source == "conf/spendgate.yaml"


def test_kinds_of_bad_config_covered() -> None:
    assert len({case[0].split("_")[0] for case in BAD}) >= 12
    assert len(BAD) >= 40


def test_every_problem_reported_at_once_with_lines() -> None:
    text = """\
        providers:
          - {id: oa, kind: openia}
        models:
          - {id: m, provider: nope}
        budgets:
          - id: b
            scope: {kind: global}
            metric: usd
            interval: daily
            hard_limit: -1
            hard_limt: 4
        routing: {mode: strict}
        """
    with pytest.raises(ConfigError) as caught:
        parse(text, "f.yaml")
    assert caught.value.lines == [
        "f.yaml:2: providers[0] (oa).kind: unknown value 'openia' (did you mean 'openai'?); "
        "expected one of: openai, anthropic, mock, azure, gemini",
        "f.yaml:4: models[0] (m).provider: unknown provider 'nope'; configured providers: oa",
        "f.yaml:10: budgets[0] (b).hard_limit: must be greater than 0 (got -1)",
        "f.yaml:11: budgets[0] (b).hard_limt: unknown key 'hard_limt' (did you mean 'hard_limit'?)",
        "f.yaml:12: routing.mode: unknown value 'strict'; expected one of: suggest, dry_run, "
        "enforced",
    ]


def test_misspelt_required_key_is_one_problem() -> None:
    text = """\
        budgets:
          - {id: b, scope: {kind: global}, metric: usd, interval: daily, hard_limt: 4}
        """
    with pytest.raises(ConfigError) as caught:
        parse(text)
    assert len(caught.value.problems) == 1
    assert "did you mean 'hard_limit'" in str(caught.value)


def test_duplicate_yaml_key_is_reported() -> None:
    text = """\
        budgets:
          - id: b
            scope: {kind: global}
            metric: usd
            interval: daily
            hard_limit: 10
            hard_limit: 1000
        """
    with pytest.raises(ConfigError) as caught:
        parse(text, "f.yaml")
    assert str(caught.value) == (
        "f.yaml:6: budgets[0] (b).hard_limit: duplicate key on line 7 (first set on line 6); "
        "YAML would silently keep only the last value"
    )


def test_references_are_checked_against_the_catalog_by_default() -> None:
    text = "routing: {default_model: gpt-4o}\nkeys: [{id: k, key_env: K, models: [o1]}]"
    config = parse_config(text, "f.yaml")  # real catalog: both ids are priced there
    assert config.routing_settings().default_model == "gpt-4o"
    with pytest.raises(ConfigError, match="unknown model 'no-such-model-xyz'"):
        parse_config("routing: {default_model: no-such-model-xyz}", "f.yaml")


# -- the domain's ApiKey ---------------------------------------------------------------------


def test_api_key_helpers() -> None:
    key = ApiKey(
        id="k1",
        principal="alice",
        project="acme",
        permissions=frozenset({OVERRIDE_ROUTING_MODE, APPROVER}),
        models=frozenset({"gpt-4o"}),
        key_env="K1",
    )
    assert key.may_relax_mode
    assert key.has(APPROVER)
    assert not key.has(ADMIN)
    assert key.allows_model("gpt-4o")
    assert not key.allows_model("o1")
    assert ApiKey("k2").allows_model("anything")
    assert not ApiKey("k2").may_relax_mode
    # Agent and session ids, chosen by clients, are members within the key's tenant.
    assert key.scopes(agent="bot", session="s1") == RequestScopes(
        project="acme",
        principal="alice",
        api_key="k1",
        agent="project:acme/bot",
        session="project:acme/s1",
    )
    assert ApiKey("k/2", principal="a/b").scopes("x/y").agent == "principal:a%2Fb/x/y"
    assert ApiKey("k%2").scopes(session="s").session == "api_key:k%252/s"
    assert split_member("principal:a%2Fb/x/y") == ("principal:a%2Fb", "x/y")
    assert split_member("indexer") is None
    assert split_member("team:a/x") is None


def test_alerts_section_defaults_webhooks_and_their_secrets() -> None:
    config = parse(
        """
        alerts:
          webhook_url: https://hooks.slack.com/services/T/B/x
          console_url: https://gateway.example.com/console
          spike_factor: 3
          cooldown: 30m
          webhooks:
            - {id: ops, url: "https://hooks.example.com/spendgate", secret_env: HOOK_SECRET,
               kinds: [budget_exhausted, approval.requested], min_severity: warning}
        """
    )
    alerts = config.alerts
    assert (alerts.cost_spike_usd, alerts.spike_factor) == (Decimal("0.50"), Decimal(3))
    assert alerts.evaluate_every_seconds == 15
    assert alerts.cooldown == timedelta(minutes=30)
    hooks = {hook.id: hook for hook in alerts.all_webhooks()}
    assert (hooks["default"].format, hooks["ops"].format) == ("slack", "json")
    assert hooks["ops"].kinds == ["budget_exhausted", "approval.requested"]
    problems = config.problems({})
    assert problems == [
        "alerts.webhooks ops: environment variable HOOK_SECRET is not set, so its deliveries "
        "cannot be signed"
    ]
    assert config.problems({"HOOK_SECRET": "s3cret"}) == []
