"""The top level of the file: ``Config``, whose fields are the sections and whose methods
convert them to domain objects and report what is misconfigured without being invalid."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Annotated, Final, TypeVar

from pydantic import BeforeValidator, Field, PrivateAttr, field_validator

from spendgate.config import convert
from spendgate.config.alerts import AlertsSpec
from spendgate.config.approvals import ApprovalsSpec
from spendgate.config.budgets import BudgetSpec
from spendgate.config.errors import invalid
from spendgate.config.journal import JournalSpec
from spendgate.config.keys import KeySpec
from spendgate.config.pricing import PricingSpec
from spendgate.config.providers import ModelSpec, ProviderSpec
from spendgate.config.rate_limits import RateLimitSpec
from spendgate.config.routing import RoutingSpec
from spendgate.config.tracing import TracingSpec
from spendgate.config.values import DatabaseUrl, Duration, LedgerUrl, Spec, TimezoneName
from spendgate.domain.budgets import BudgetPolicy, UnpricedAction
from spendgate.domain.keys import ADMIN, ADMIN_TOKEN_ENV, ApiKey
from spendgate.domain.models import Model, Provider, ProviderKind
from spendgate.domain.pricing import PriceBook, PricingRecord
from spendgate.domain.rate_limits import RateLimit
from spendgate.domain.routing import RoutingSettings
from spendgate.ledger.base import DEFAULT_RESERVATION_TTL, LedgerFailure

DEFAULT_DATABASE_URL: Final = "sqlite:///./spendgate.db"
# Room for a few base64 images (5 MB each is ~6.7 MB encoded); Anthropic's own request limit.
DEFAULT_MAX_BODY_BYTES: Final = 32 * 1024 * 1024

_S = TypeVar("_S", bound=Spec)


def _none_as_list(value: object) -> object:
    # ``budgets:`` with every entry commented out parses as null: treat it as empty.
    return [] if value is None else value


def _none_as_mapping(value: object) -> object:
    return {} if value is None else value


# A list section (``providers``, ``budgets``, ...) and a mapping section (``routing``,
# ``alerts``), either of which may be left empty in the file.
_Entries = Annotated[list[_S], BeforeValidator(_none_as_list)]
_Section = Annotated[_S, BeforeValidator(_none_as_mapping)]


class Config(Spec):
    """A validated config file. Fields mirror the YAML; methods convert to domain objects."""

    database_url: DatabaseUrl = DEFAULT_DATABASE_URL
    # A ledger shared by several workers and replicas (Redis); none: this process's memory.
    ledger_url: LedgerUrl | None = None
    # The shared ledger unreachable: refuse requests with 503 (closed), or admit them
    # unchecked, journal them and alert (open).
    ledger_failure: LedgerFailure = LedgerFailure.CLOSED
    # A hold nobody keeps alive (its process died) is freed this long after its last
    # keep-alive; running requests renew theirs every third of it.
    reservation_ttl: Duration = DEFAULT_RESERVATION_TTL
    # Prefix of the shared ledger's Redis keys: deployments sharing one Redis stay apart.
    ledger_prefix: str = Field(
        default="spendgate", min_length=1, max_length=64, pattern=r"^[\w.-]+$"
    )
    timezone: TimezoneName = "UTC"  # default timezone of calendar budget windows
    unpriced_action: UnpricedAction = UnpricedAction.ESTIMATE
    # Largest proxied request body: larger ones are refused (413) before they are decoded.
    max_body_bytes: int = Field(default=DEFAULT_MAX_BODY_BYTES, ge=1024, le=1024**3)
    # ``providers`` and ``models`` are conversion methods, so the fields carry other names.
    provider_specs: _Entries[ProviderSpec] = Field(default_factory=list, alias="providers")
    model_specs: _Entries[ModelSpec] = Field(default_factory=list, alias="models")
    pricing: _Entries[PricingSpec] = Field(default_factory=list)
    routing: _Section[RoutingSpec] = Field(default_factory=RoutingSpec)
    keys: _Entries[KeySpec] = Field(default_factory=list)
    budgets: _Entries[BudgetSpec] = Field(default_factory=list)
    rate_limits: _Entries[RateLimitSpec] = Field(default_factory=list)
    alerts: _Section[AlertsSpec] = Field(default_factory=AlertsSpec)
    approvals: _Section[ApprovalsSpec] = Field(default_factory=ApprovalsSpec)
    journal: _Section[JournalSpec] = Field(default_factory=JournalSpec)
    # OpenTelemetry export of one span per proxied call; None (absent): off.
    tracing: TracingSpec | None = None

    _source: str = PrivateAttr(default="<string>")

    @field_validator("reservation_ttl")
    @classmethod
    def _reservation_ttl(cls, value: timedelta) -> timedelta:
        if not timedelta(seconds=3) <= value <= timedelta(hours=24):
            raise invalid(f"must be between 3s and 24h (got {value})")
        return value

    @property
    def source(self) -> str:
        """Where this config came from (a file path or ``DEMO_SOURCE``)."""
        return self._source

    # -- conversion to the domain --------------------------------------------------------

    def providers(self) -> tuple[Provider, ...]:
        return convert.providers(self.provider_specs)

    def models(self, prices: PriceBook, at: datetime | None = None) -> tuple[Model, ...]:
        """The configured models; a model without ``cost_tier`` gets the tier of its price at
        ``at`` (default: now), or medium when it is unpriced."""
        return convert.models(self.model_specs, prices, at)

    def pricing_records(self) -> tuple[PricingRecord, ...]:
        return convert.pricing_records(self.pricing)

    def price_book(self, catalog: Sequence[PricingRecord] = ()) -> PriceBook:
        """Catalog rows + this file's rows, with each model priced under its own id.

        The book is keyed by the id routing uses, so a model whose ``id`` differs from its
        ``upstream_id`` (``fast`` → ``gpt-4o-mini``) gets the upstream id's rows when it has
        none of its own.
        """
        return convert.price_book(self.model_specs, self.pricing, catalog)

    def budget_policies(self) -> tuple[BudgetPolicy, ...]:
        return tuple(convert.budget_policy(spec, self.timezone) for spec in self.budgets)

    def rate_limit_list(self) -> tuple[RateLimit, ...]:
        return tuple(spec.rate_limit() for spec in self.rate_limits)

    def routing_settings(self) -> RoutingSettings:
        """Routing settings; the default model falls back to the first enabled model.

        Raises ``ConfigError`` when no default can be found (a file without models).
        """
        return convert.routing_settings(self.routing, self.model_specs, self.source)

    def api_keys(self) -> tuple[ApiKey, ...]:
        return convert.api_keys(self.keys)

    # -- problems that do not make the file invalid --------------------------------------

    def provider_problems(self, environ: Mapping[str, str]) -> list[str]:
        """Providers that cannot authenticate: their ``api_key_env`` is unset or empty.

        A provider without ``api_key_env`` is an unauthenticated endpoint (e.g. a local
        server) and the ``mock`` kind needs no key, so neither is a problem.
        """
        return [
            f"provider {spec.id}: environment variable {spec.api_key_env} is not set, so "
            "calls to it cannot authenticate"
            for spec in self.provider_specs
            if spec.kind is not ProviderKind.MOCK
            and spec.api_key_env is not None
            and not environ.get(spec.api_key_env)
        ]

    def key_problems(self, environ: Mapping[str, str]) -> list[str]:
        """Config keys whose secret variable is unset: nobody can use them."""
        return [
            f"key {spec.id}: environment variable {spec.key_env} is not set, so the key "
            "cannot be used"
            for spec in self.keys
            if not environ.get(spec.key_env)
        ]

    def webhook_problems(self, environ: Mapping[str, str]) -> list[str]:
        """Webhooks whose signing secret variable is unset: their deliveries would go out
        unsigned, which a receiver that verifies signatures rejects."""
        return [
            f"alerts.webhooks {hook.id}: environment variable {hook.secret_env} is not set, so "
            "its deliveries cannot be signed"
            for hook in self.alerts.all_webhooks()
            if hook.secret_env is not None and not environ.get(hook.secret_env)
        ]

    def model_problems(self) -> list[str]:
        """References to models known only to the price catalog: valid, but not routable."""
        configured = {spec.id for spec in self.model_specs}
        refs: list[tuple[str, str]] = []
        if self.routing.default_model is not None:
            refs.append(("routing.default_model", self.routing.default_model))
        for index, key in enumerate(self.keys):
            refs.extend((f"keys[{index}] ({key.id}).models", m) for m in key.models or ())
        for index, budget in enumerate(self.budgets):
            models = budget.filters.models if budget.filters else None
            refs.extend((f"budgets[{index}] ({budget.id}).filters.models", m) for m in models or ())
        return [
            f"{path}: {model} is not configured under models, so it cannot be routed "
            "(it is only known to the price catalog)"
            for path, model in refs
            if model not in configured
        ]

    def access_problems(
        self, environ: Mapping[str, str], runtime_keys: Collection[ApiKey] | None
    ) -> list[str]:
        """Nobody can get in: no API key at all, or no admin access (neither the admin token
        nor a usable key with the admin permission). ``runtime_keys`` are the active keys
        created through the admin API (in the database); ``None`` when they are unknown."""
        found: list[str] = []
        stored = list(runtime_keys or ())
        if not self.keys and not stored:
            known = "" if runtime_keys is not None else " (the database could not be read)"
            found.append(
                "no API keys: none under keys: and none created through the admin API"
                f"{known}, so no client can call the gateway; add a key under keys: with its "
                "secret in the environment variable its key_env names"
            )
        usable = [spec.id for spec in self.keys if environ.get(spec.key_env)]
        admins = [key for key in self.api_keys() if key.id in usable and key.has(ADMIN)]
        admins += [key for key in stored if key.has(ADMIN)]
        if not environ.get(ADMIN_TOKEN_ENV) and not admins:
            found.append(
                f"no admin access: {ADMIN_TOKEN_ENV} is not set in this environment and no "
                "usable key has the admin permission, so neither the admin API nor the "
                f"spendgate CLI's admin commands can be used; set {ADMIN_TOKEN_ENV} where the "
                "gateway is started"
            )
        return found

    def problems(self, environ: Mapping[str, str]) -> list[str]:
        """Everything misconfigured that does not make the file invalid."""
        return [
            *self.provider_problems(environ),
            *self.key_problems(environ),
            *self.webhook_problems(environ),
            *self.model_problems(),
            *(self.tracing.problems(environ) if self.tracing is not None else ()),
        ]
