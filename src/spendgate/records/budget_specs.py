"""Budget policies ↔ the documents the admin API exchanges, shaped exactly like an entry of
the YAML ``budgets`` section: what ``GET /budgets/{id}`` returns can be edited and sent back,
and an update is the stored document with the changed fields merged in, validated again."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

from spendgate.config import BudgetSpec, Config
from spendgate.config.convert import budget_policy
from spendgate.domain.budgets import BudgetPolicy
from spendgate.domain.windows import IntervalKind
from spendgate.records.errors import RecordInvalidError
from spendgate.records.validation import validate_budgets

__all__ = ["API_SOURCE", "budget_document", "format_duration", "merged_document", "parse_budget"]

API_SOURCE = "api"

_UNITS = (("w", timedelta(weeks=1)), ("d", timedelta(days=1)), ("h", timedelta(hours=1)),
          ("m", timedelta(minutes=1)))  # fmt: skip


def format_duration(duration: timedelta) -> str:
    """A rolling duration as the config writes it: the largest whole unit (``7d``, ``90m``)."""
    for suffix, unit in _UNITS:
        if duration % unit == timedelta(0):
            return f"{duration // unit}{suffix}"
    return f"{int(duration.total_seconds() // 60)}m"  # not reachable from a validated spec


def _text(value: object) -> str:
    return format(value, "f")


def budget_document(policy: BudgetPolicy) -> dict[str, Any]:
    """The policy as a ``budgets`` entry (amounts as exact strings; unset keys omitted)."""
    interval: dict[str, Any] = {"kind": policy.interval.kind.value}
    if policy.interval.kind is IntervalKind.ROLLING:
        assert policy.interval.duration is not None
        interval["duration"] = format_duration(policy.interval.duration)
    else:
        interval["timezone"] = policy.interval.timezone
    filters = {
        name: sorted(values)
        for name, values in (
            ("models", policy.filters.models),
            ("providers", policy.filters.providers),
            ("task_classes", policy.filters.task_classes),
        )
        if values is not None
    }
    document: dict[str, Any] = {
        "id": policy.id,
        "scope": {"kind": policy.scope.kind.value, "id": policy.scope.id},
        "metric": policy.metric.value,
        "interval": interval,
        "hard_limit": _text(policy.hard_limit),
        "soft_limit": None if policy.soft_limit is None else _text(policy.soft_limit),
        "soft_action": policy.soft_action.value,
        "hard_action": policy.hard_action.value,
        "degrade_to": policy.degrade_to,
        "alert_thresholds": [_text(fraction) for fraction in policy.alert_thresholds],
        "routing_mode_override": policy.routing_mode_override,
        "mode": policy.mode,
        "enabled": policy.enabled,
    }
    if filters:
        document["filters"] = filters
    if policy.scope.kind.value == "global":
        del document["scope"]["id"]
    return {key: value for key, value in document.items() if value is not None}


def parse_budget(config: Config, document: object) -> BudgetPolicy:
    """Validate a submitted ``budgets`` entry (raises ``RecordInvalidError``) into an API policy."""
    spec: BudgetSpec = validate_budgets(config, document)
    return replace(budget_policy(spec, config.timezone), source=API_SOURCE)


def merged_document(current: BudgetPolicy, changes: object) -> dict[str, Any]:
    """The current document with ``changes`` (top-level keys) replacing its values; a change
    to ``null`` removes the key (back to its default)."""
    if not isinstance(changes, dict):
        raise RecordInvalidError([("", "expected a mapping of the fields to change")])
    if "id" in changes and changes["id"] != current.id:
        raise RecordInvalidError([("id", "the id of a budget cannot be changed")])
    document = budget_document(current)
    for key, value in changes.items():
        if value is None:
            document.pop(key, None)
        else:
            document[key] = value
    return document
