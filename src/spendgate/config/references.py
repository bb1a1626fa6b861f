"""References between sections: duplicate ids and names of things that do not exist."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from typing import Any

from spendgate.config.errors import Loc, suggest


def _items(data: Mapping[str, object], section: str) -> list[tuple[int, dict[str, Any]]]:
    return _entries(data.get(section))


def _entries(value: object) -> list[tuple[int, dict[str, Any]]]:
    if not isinstance(value, list):
        return []
    return [(index, item) for index, item in enumerate(value) if isinstance(item, dict)]


def _names(items: object) -> list[tuple[int, str]]:
    if not isinstance(items, list):
        return []
    return [(index, name) for index, name in enumerate(items) if isinstance(name, str)]


def reference_problems(
    data: Mapping[str, object], known_models: Callable[[], Collection[str]]
) -> list[tuple[Loc, str]]:
    """Duplicate ids and references to things that do not exist, checked on the raw data
    so they are reported together with every other problem of the file."""
    found: list[tuple[Loc, str]] = []

    def unique(section: str, field: str, why: str) -> list[str]:
        first: dict[str, int] = {}
        for index, item in _items(data, section):
            name = item.get(field)
            if isinstance(name, str) and name in first:
                found.append(((section, index, field), why.format(name, first[name])))
            elif isinstance(name, str):
                first[name] = index
        return list(first)

    providers = unique("providers", "id", "duplicate id {0!r} (also providers[{1}])")
    models = unique("models", "id", "duplicate id {0!r} (also models[{1}])")
    unique("keys", "id", "duplicate id {0!r} (also keys[{1}])")
    unique("budgets", "id", "duplicate id {0!r} (also budgets[{1}])")
    unique("rate_limits", "id", "duplicate id {0!r} (also rate_limits[{1}])")
    unique("keys", "key_env", "{0} is also the key_env of keys[{1}]; each key needs its own secret")
    upstream = [item.get("upstream_id") for _, item in _items(data, "models")]
    for _, item in _items(data, "models"):
        upstream.extend(d.get("upstream_id") for _, d in _entries(item.get("deployments")))

    def check_provider(loc: Loc, name: str) -> None:
        if name not in providers:
            listed = ", ".join(providers) or "none"
            hint = suggest(name, providers)
            found.append((loc, f"unknown provider {name!r}{hint}; configured providers: {listed}"))

    def check_model(loc: Loc, name: str) -> None:
        if name in models or name in known_models():
            return
        hint = suggest(name, models) or suggest(name, known_models())
        why = "not configured under models and not in the price catalog"
        found.append((loc, f"unknown model {name!r}{hint}: {why}"))

    for index, item in _items(data, "models"):
        if isinstance(item.get("provider"), str):
            check_provider(("models", index, "provider"), item["provider"])
        for position, deployment in _entries(item.get("deployments")):
            if isinstance(deployment.get("provider"), str):
                check_provider(
                    ("models", index, "deployments", position, "provider"), deployment["provider"]
                )
    routing = data.get("routing")
    if isinstance(routing, dict) and isinstance(routing.get("default_model"), str):
        check_model(("routing", "default_model"), routing["default_model"])
    for index, item in _items(data, "pricing"):
        # A price may name a model's upstream id: ``Config.price_book`` applies it.
        if isinstance(item.get("model"), str) and item["model"] not in upstream:
            check_model(("pricing", index, "model"), item["model"])
    for index, item in _items(data, "keys"):
        for position, name in _names(item.get("models")):
            check_model(("keys", index, "models", position), name)
    for index, item in _items(data, "budgets"):
        degrade_to = item.get("degrade_to")
        if isinstance(degrade_to, str) and degrade_to not in models:
            listed = ", ".join(models) or "none"
            hint = suggest(degrade_to, models)
            found.append(
                (
                    ("budgets", index, "degrade_to"),
                    f"degrade_to must be a configured model; {degrade_to!r}{hint} is not "
                    f"one of: {listed}",
                )
            )
        filters = item.get("filters")
        if isinstance(filters, dict):
            for position, name in _names(filters.get("models")):
                check_model(("budgets", index, "filters", "models", position), name)
            for position, name in _names(filters.get("providers")):
                check_provider(("budgets", index, "filters", "providers", position), name)
    for index, item in _items(data, "rate_limits"):
        for position, name in _names(item.get("models")):
            check_model(("rate_limits", index, "models", position), name)

    first_row: dict[tuple[str, str], int] = {}
    for index, item in _items(data, "pricing"):
        row = (str(item.get("model")), str(item.get("effective_from")))
        if row in first_row:
            found.append(
                (
                    ("pricing", index, "effective_from"),
                    f"a second price for {row[0]} from the same effective_from (also "
                    f"pricing[{first_row[row]}]); which one applies would be arbitrary",
                )
            )
        else:
            first_row[row] = index
    return found
