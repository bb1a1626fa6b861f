"""Pydantic validation errors as operator messages: what was expected, what was written, and
for an unknown key or value, what was probably meant."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ValidationError

from spendgate.config.alerts import AlertsSpec, WebhookSpec
from spendgate.config.budgets import BudgetSpec, FiltersSpec, IntervalSpec, ScopeSpec
from spendgate.config.errors import Loc, closest, describe, suggest
from spendgate.config.keys import KeySpec
from spendgate.config.pricing import PricingSpec
from spendgate.config.providers import ModelSpec, ProviderSpec
from spendgate.config.routing import RoutingSpec
from spendgate.config.schema import Config

# Keys allowed at each place of the file (list indices dropped), for "did you mean".
_SECTIONS: dict[tuple[str, ...], type[BaseModel]] = {
    (): Config,
    ("providers",): ProviderSpec,
    ("models",): ModelSpec,
    ("pricing",): PricingSpec,
    ("routing",): RoutingSpec,
    ("keys",): KeySpec,
    ("budgets",): BudgetSpec,
    ("budgets", "scope"): ScopeSpec,
    ("budgets", "filters"): FiltersSpec,
    ("budgets", "interval"): IntervalSpec,
    ("alerts",): AlertsSpec,
    ("alerts", "webhooks"): WebhookSpec,
}

_EXPECTED = {
    "string_type": "a string",
    "int_type": "a whole number",
    "int_parsing": "a whole number",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "float_parsing": "a number",
    "decimal_type": "a number",
    "decimal_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "list_type": "a list",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
    "datetime_type": "a date-time such as 2024-07-18T00:00:00Z",
    "datetime_parsing": "a date-time such as 2024-07-18T00:00:00Z",
    "datetime_from_date_parsing": "a date-time such as 2024-07-18T00:00:00Z",
    "finite_number": "a finite number",
}

_BOUNDS = {
    "greater_than": ("gt", "greater than"),
    "greater_than_equal": ("ge", "at least"),
    "less_than": ("lt", "less than"),
    "less_than_equal": ("le", "at most"),
}


def _allowed_keys(loc: Loc) -> list[str]:
    shape = tuple(part for part in loc if isinstance(part, str))
    model = _SECTIONS.get(shape)
    if model is None:
        return []
    return [field.alias or name for name, field in model.model_fields.items()]


def messages(error: ValidationError) -> list[tuple[Loc, str]]:
    """Each error of ``error`` as (location, message)."""
    found: list[tuple[Loc, str]] = []
    meant: set[Loc] = set()  # missing keys an unknown key probably meant: not reported twice
    for detail in error.errors():
        loc: Loc = tuple(detail["loc"])
        kind = detail["type"]
        ctx: dict[str, Any] = dict(detail.get("ctx") or {})
        value = detail.get("input")
        if kind == "spendgate":
            loc = (*loc, *ctx.get("at", ()))
            message = str(ctx["reason"])
        elif kind == "extra_forbidden":
            allowed = _allowed_keys(loc[:-1])
            intended = closest(loc[-1], allowed)
            if intended is not None:
                meant.add((*loc[:-1], intended))
            message = f"unknown key {str(loc[-1])!r}{suggest(loc[-1], allowed)}"
        elif kind == "missing":
            message = "required key is missing"
        elif kind in ("enum", "literal_error"):
            choices = re.findall(r"'([^']*)'", str(ctx.get("expected", "")))
            message = (
                f"unknown value {value!r}{suggest(value, choices)}; "
                f"expected one of: {', '.join(choices)}"
            )
        elif kind in _EXPECTED:
            message = f"expected {_EXPECTED[kind]}, got {describe(value)}"
        elif kind in _BOUNDS:
            bound_key, words = _BOUNDS[kind]
            message = f"must be {words} {ctx.get(bound_key)} (got {describe(value)})"
        else:
            message = str(detail["msg"]).removeprefix("Value error, ")
        found.append((loc, message))
    return [
        (loc, message)
        for loc, message in found
        if not (message == "required key is missing" and loc in meant)
    ]
