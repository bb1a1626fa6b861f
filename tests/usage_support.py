"""Usage test traffic written through the real write path: ``Governor.plan`` / ``reserve`` /
``settle`` into a ``Journal`` (whose writer maintains the rollups), or append-then-settle as the
gateway's streams do, at chosen instants."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from conftest import ALL_CAPS, MODELS, PRICES, policy, state
from spendgate.domain.budgets import UnpricedAction
from spendgate.domain.models import Model, Tier
from spendgate.domain.pricing import Usage
from spendgate.domain.routing import RoutingDecision, RoutingMode
from spendgate.domain.scopes import RequestScopes, ScopeKind
from spendgate.governor import Governor
from spendgate.store.journal import Journal

__all__ = ["Settle", "governor", "record"]

# A model without any price: its settled requests are unpriced (never $0).
MYSTERY = Model(
    "mystery",
    "gamma",
    capabilities=ALL_CAPS,
    cost_tier=Tier.MEDIUM,
    latency_tier=Tier.MEDIUM,
    context_window=128_000,
    max_output_tokens=4_096,
)


def governor(
    journal: Journal, *, smart_routing: bool = True, mode: RoutingMode = RoutingMode.ENFORCED
) -> Governor:
    """Models mini/standard/premium/… priced, ``mystery`` unpriced (``alert``: let through,
    reported unpriced); project ``capped`` has a tiny hard USD limit, so its requests block
    (in ``dry_run`` they would block). Without smart routing the requested model is used."""
    governance = state(
        [policy("capped-usd", kind=ScopeKind.PROJECT, member="capped", hard="0.0000001")],
        models=(*MODELS, MYSTERY),
        prices=PRICES,
        unpriced_action=UnpricedAction.ALERT,
        mode=mode,
        smart_routing=smart_routing,
    )
    return Governor(governance, journal=journal)


@dataclass(frozen=True)
class Settle:
    """How the request ends: ``now`` (settled by ``Governor.settle``), ``later`` (appended,
    then settled by ``Journal.settle_decision``, as streams are) or ``never`` (unsettled)."""

    how: str = "now"


def record(
    gov: Governor,
    at: datetime,
    scopes: RequestScopes,
    *,
    model: str = "standard",
    text: str = "Please summarise the attached quarterly report in three sentences.",
    usage: Usage | None = None,
    latency_ms: float = 120.5,
    settle: str = "now",
) -> RoutingDecision:
    """One request planned at ``at``; returns the decision as planned."""
    journal = gov.journal
    assert journal is not None
    usage = usage or Usage(input_tokens=40, output_tokens=25)
    body = {"model": model, "messages": [{"role": "user", "content": text}], "max_tokens": 200}
    decision = gov.plan(body, scopes, now=at)
    outcome = gov.reserve(decision, now=at)
    if not outcome.ok:
        return decision  # journaled as refused by reserve()
    if settle == "now":
        gov.settle(decision, usage, latency_ms=latency_ms)
    elif settle == "later":
        gov.ledger.release(decision.id)
        journal.append_decision(decision)
        cost: Decimal | None = gov.cost(decision, usage).upper_usd
        journal.settle_decision(decision.id, usage, cost, latency_ms, "ok")
    else:
        gov.ledger.release(decision.id)
        journal.append_decision(decision)
    return decision
