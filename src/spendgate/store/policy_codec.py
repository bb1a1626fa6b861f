"""Budget policies and price rows ↔ table rows (and policy snapshots by content digest)."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import timedelta
from decimal import Decimal
from typing import Any

import orjson

from spendgate.domain.budgets import (
    BudgetFilters,
    BudgetPolicy,
    CountingIdentity,
    HardAction,
    Metric,
    SoftAction,
)
from spendgate.domain.pricing import Precision, PriceSource, PricingRecord
from spendgate.domain.scopes import ScopeKind, ScopeRef
from spendgate.domain.windows import Interval, IntervalKind
from spendgate.store.money import from_text, to_text
from spendgate.store.records import StoredPrice

__all__ = [
    "PolicyDigests",
    "identity_from_json",
    "identity_from_spec",
    "identity_json",
    "policy_from_row",
    "policy_from_snapshot",
    "policy_spec",
    "price_from_row",
    "price_row",
]

Row = Mapping[Any, Any]  # also SQLAlchemy's RowMapping


def _dec(value: Decimal | None) -> str | None:
    return None if value is None else to_text(value)


def _undec(value: str | None) -> Decimal | None:
    return None if value is None else from_text(value)


def _compact(mapping: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in mapping.items() if value is not None}


def _interval_json(interval: Interval) -> dict[str, Any]:
    duration = interval.duration
    seconds: float | None = None
    if duration is not None:
        total = duration.total_seconds()
        seconds = int(total) if total == int(total) else total
    return _compact(
        {"kind": interval.kind.value, "timezone": interval.timezone, "seconds": seconds}
    )


def _interval_from_json(data: Mapping[str, Any]) -> Interval:
    seconds = data.get("seconds")
    return Interval(
        IntervalKind(data["kind"]),
        timezone=data.get("timezone", "UTC"),
        duration=timedelta(seconds=seconds) if seconds is not None else None,
    )


def identity_json(identity: CountingIdentity) -> dict[str, Any]:
    return {
        "metric": identity.metric.value,
        "scope_kind": identity.scope_kind.value,
        "interval": _interval_json(identity.interval),
    }


def identity_from_json(data: Mapping[str, Any]) -> CountingIdentity:
    return CountingIdentity(
        Metric(data["metric"]),
        ScopeKind(data["scope_kind"]),
        _interval_from_json(data["interval"]),
    )


def identity_from_spec(spec: Mapping[str, Any]) -> CountingIdentity:
    """The counting identity of a policy spec (``policy_spec``), without decoding the rest."""
    return CountingIdentity(
        Metric(spec["metric"]),
        ScopeKind(spec["scope"]["kind"]),
        _interval_from_json(spec["interval"]),
    )


def _names(values: frozenset[str] | None) -> list[str] | None:
    return None if values is None else sorted(values)


def _name_set(values: list[str] | None) -> frozenset[str] | None:
    return None if values is None else frozenset(values)


def policy_spec(policy: BudgetPolicy, *, full: bool = False) -> dict[str, Any]:
    """A policy's JSON spec. Without ``full``, ``id``/``source``/``enabled`` are left out
    (they are columns of ``budget_policies``); snapshots keep everything."""
    filters = policy.filters
    spec = _compact(
        {
            "scope": {"kind": policy.scope.kind.value, "id": policy.scope.id},
            "metric": policy.metric.value,
            "interval": _interval_json(policy.interval),
            "hard_limit": to_text(policy.hard_limit),
            "soft_limit": _dec(policy.soft_limit),
            "soft_action": policy.soft_action.value,
            "hard_action": policy.hard_action.value,
            "degrade_to": policy.degrade_to,
            "alert_thresholds": [to_text(t) for t in policy.alert_thresholds],
            "routing_mode_override": policy.routing_mode_override,
            "mode": policy.mode,
            "filters": _compact(
                {
                    "models": _names(filters.models),
                    "providers": _names(filters.providers),
                    "task_classes": _names(filters.task_classes),
                }
            ),
            # Which counters the policy reads (snapshots rebuild its counter keys from this).
            "generation": policy.generation or None,
        }
    )
    if full:
        spec.update(id=policy.id, source=policy.source, enabled=policy.enabled)
    return spec


def _policy(spec: Mapping[str, Any], policy_id: str, source: str, enabled: bool) -> BudgetPolicy:
    if not isinstance(spec, Mapping):  # text that is not JSON, or JSON that is not an object
        raise TypeError("its spec is not a JSON object")
    filters = spec.get("filters", {})
    return BudgetPolicy(
        id=policy_id,
        scope=ScopeRef(ScopeKind(spec["scope"]["kind"]), spec["scope"]["id"]),
        metric=Metric(spec["metric"]),
        interval=_interval_from_json(spec["interval"]),
        hard_limit=from_text(spec["hard_limit"]),
        soft_limit=_undec(spec.get("soft_limit")),
        soft_action=SoftAction(spec["soft_action"]),
        hard_action=HardAction(spec["hard_action"]),
        degrade_to=spec.get("degrade_to"),
        alert_thresholds=tuple(from_text(t) for t in spec["alert_thresholds"]),
        routing_mode_override=spec.get("routing_mode_override"),
        mode=spec.get("mode"),
        filters=BudgetFilters(
            models=_name_set(filters.get("models")),
            providers=_name_set(filters.get("providers")),
            task_classes=_name_set(filters.get("task_classes")),
        ),
        enabled=enabled,
        source=source,
        generation=spec.get("generation", 0),
    )


def policy_from_row(row: Row) -> BudgetPolicy:
    """A ``budget_policies`` row."""
    return _policy(row["spec"], row["id"], row["source"], row["enabled"])


def policy_from_snapshot(spec: Mapping[str, Any]) -> BudgetPolicy:
    """A ``policy_snapshots`` spec (``policy_spec(..., full=True)``)."""
    return _policy(spec, spec["id"], spec["source"], spec["enabled"])


class PolicyDigests:
    """Content digests of policy versions, memoised per policy *object*.

    The planner hands the same ``BudgetPolicy`` objects to every decision until the policies
    change, so each version is serialised and hashed once, not once per request. The memo is
    keyed by ``id()`` (hashing a policy's fields costs more than the lookup should) and keeps
    the object alive, so an id is never reused while it is cached.
    """

    _LIMIT = 4096  # policies are replaced wholesale on change; never let the memo grow unbounded

    def __init__(self) -> None:
        self._memo: dict[int, tuple[BudgetPolicy, str, dict[str, Any]]] = {}

    def __call__(self, policy: BudgetPolicy) -> str:
        return self.snapshot(policy)[0]

    def snapshot(self, policy: BudgetPolicy) -> tuple[str, dict[str, Any]]:
        known = self._memo.get(id(policy))
        if known is not None and known[0] is policy:
            return known[1], known[2]
        spec = policy_spec(policy, full=True)
        digest = hashlib.blake2b(
            orjson.dumps(spec, option=orjson.OPT_SORT_KEYS), digest_size=10
        ).hexdigest()
        if len(self._memo) >= self._LIMIT:
            self._memo.clear()
        self._memo[id(policy)] = (policy, digest, spec)
        return digest, spec


def price_row(record: PricingRecord) -> dict[str, Any]:
    return {
        "model": record.model,
        "input_per_mtok": record.input_per_mtok,
        "output_per_mtok": record.output_per_mtok,
        "cached_input_per_mtok": record.cached_input_per_mtok,
        "per_request": record.per_request,
        "effective_from": record.effective_from,
        "effective_to": record.effective_to,
        "source": record.source.value,
        "precision": record.precision.value,
    }


def price_from_row(row: Row) -> StoredPrice:
    record = PricingRecord(
        model=row["model"],
        input_per_mtok=row["input_per_mtok"],
        output_per_mtok=row["output_per_mtok"],
        cached_input_per_mtok=row["cached_input_per_mtok"],
        per_request=row["per_request"],
        effective_from=row["effective_from"],
        effective_to=row["effective_to"],
        source=PriceSource(row["source"]),
        precision=Precision(row["precision"]),
    )
    return StoredPrice(id=row["id"], record=record, created_at=row["created_at"])
