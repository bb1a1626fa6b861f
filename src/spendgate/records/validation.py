"""Records submitted at runtime are validated exactly like the same section of the YAML file:
the same pydantic specs, the same operator messages and the same cross-references (a budget's
``degrade_to`` must be a configured model, a price's model must be known, ...)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from decimal import Decimal
from typing import Any, Literal

from pydantic import ValidationError

from spendgate.config import Config
from spendgate.config.budgets import BudgetSpec
from spendgate.config.errors import Loc
from spendgate.config.messages import messages
from spendgate.config.pricing import PricingSpec
from spendgate.config.rate_limits import RateLimitSpec
from spendgate.config.references import reference_problems
from spendgate.records.errors import Problem, RecordInvalidError

__all__ = [
    "exact_json",
    "render_path",
    "validate_budgets",
    "validate_prices",
    "validate_rate_limit",
]

Section = Literal["budgets", "pricing", "rate_limits"]


def exact_json(text: str | bytes) -> Any:
    """JSON with its fractions as ``Decimal``: money sent as a JSON number keeps every digit
    (a float turns 1.0000000000000001 into 1). Raises ``json.JSONDecodeError``."""
    return json.loads(text, parse_float=Decimal)


def render_path(loc: Loc) -> str:
    """``("scope", "id")`` → ``scope.id``; ``(3, "model")`` → ``[3].model``."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


def _known_models() -> frozenset[str]:
    from spendgate.catalog import catalog_model_ids

    return catalog_model_ids()


def _validate(config: Config, section: Section, items: Sequence[object], *, indexed: bool) -> Any:
    """The validated section holding ``items``; raises ``RecordInvalidError`` with every
    problem. Paths are relative to one item, or start with ``[index]`` when ``indexed``."""
    found: list[tuple[Loc, str]] = []
    validated: Config | None = None
    try:
        validated = Config.model_validate({section: list(items)})
    except ValidationError as error:
        found.extend(messages(error))
    # Cross-references against the running config's providers and models.
    references = {
        "providers": [{"id": spec.id} for spec in config.provider_specs],
        "models": [
            {"id": spec.id, "upstream_id": upstream}
            for spec in config.model_specs
            for upstream in spec.upstream_ids()
        ],
        section: list(items),
    }
    found.extend(
        (loc, why)
        for loc, why in reference_problems(references, _known_models)
        if loc[:1] == (section,)
    )
    if found:
        problems: list[Problem] = []
        for loc, why in found:
            inner = loc[1:] if indexed else loc[2:]  # drop the section (and the index)
            problems.append((render_path(inner), why))
        raise RecordInvalidError(problems)
    assert validated is not None
    return getattr(validated, section)


def validate_budgets(config: Config, budget: object) -> BudgetSpec:
    specs: list[BudgetSpec] = _validate(config, "budgets", [budget], indexed=False)
    return specs[0]


def validate_prices(config: Config, rows: Sequence[object], *, indexed: bool) -> list[PricingSpec]:
    specs: list[PricingSpec] = _validate(config, "pricing", rows, indexed=indexed)
    return specs


def validate_rate_limit(config: Config, entry: object) -> RateLimitSpec:
    specs: list[RateLimitSpec] = _validate(config, "rate_limits", [entry], indexed=False)
    return specs[0]
