"""``spendgate config …``: inspect and validate a config file (offline, no daemon needed).

Shows what the file configures, the price each model is charged at (or UNPRICED), and what
is misconfigured. It prints the names of the environment variables holding secrets and
whether they are set, never their values. When the config's database exists, it reads it
(read-only) for the budgets whose counting identity the file changes: the next start puts
them on fresh counters.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

if TYPE_CHECKING:
    from spendgate.config import Config
    from spendgate.domain.keys import ApiKey

__all__ = ["ConfigOption", "config_app"]

config_app = typer.Typer(
    help="Validate and inspect the spendgate.yaml config.", no_args_is_help=True
)

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        envvar="SPENDGATE_CONFIG",
        help="Config file (default: the built-in demo config).",
        show_default=False,
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")]


@config_app.command("check")
def check(config_path: ConfigOption = None, as_json: JsonOption = False) -> None:
    """Validate a config file and show what it configures; exit 1 when it is invalid.

    Warnings (exit 0) name what will not work as configured: unset environment variables,
    models that cannot be routed, no API key, no admin access.
    """
    # Imported here so that other commands (and --help) start without building the schema.
    from spendgate.config import ConfigError, load_config

    try:
        config = load_config(config_path)
    except ConfigError as error:
        if as_json:
            typer.echo(json.dumps({"valid": False, "source": error.source, "errors": error.lines}))
        else:
            # Plain lines, never wrapped: one line per problem, easy to grep.
            typer.echo(f"Invalid config {error.source}:", err=True)
            for line in error.lines:
                typer.echo(line, err=True)
        raise typer.Exit(1) from None
    summary = _summary(config, datetime.now(UTC))
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
        return
    out = Console()
    if not out.is_terminal and "COLUMNS" not in os.environ:
        out = Console(width=160)  # piped to a file or a pager: no need to squeeze tables
    _render(out, summary)


_STARTER_URL = "https://api.openai.com/v1"


@config_app.command("init")
def init(
    path: Annotated[
        Path, typer.Argument(help="Where to write the config.", show_default=True)
    ] = Path("spendgate.yaml"),
    force: Annotated[
        bool, typer.Option("--force", help="Overwrite the file if it exists.")
    ] = False,
    base_url: Annotated[
        str,
        typer.Option(
            "--base-url",
            help="The OpenAI-compatible endpoint of the starter's provider (e.g. the local "
            "mock upstream: http://127.0.0.1:9100/v1).",
        ),
    ] = _STARTER_URL,
) -> None:
    """Write a commented starter config: a provider, two models, routing, a key, a budget."""
    from importlib import resources

    text = resources.files("spendgate").joinpath("starter.yaml").read_text(encoding="utf-8")
    text = text.replace(f'base_url: "{_STARTER_URL}"', f"base_url: {json.dumps(base_url)}")
    try:
        with path.open("w" if force else "x", encoding="utf-8") as file:
            file.write(text)
    except FileExistsError:
        typer.echo(f"{path} exists; pass --force to overwrite it.", err=True)
        raise typer.Exit(1) from None
    except OSError as error:
        typer.echo(f"cannot write {path}: {error.strerror}", err=True)
        raise typer.Exit(1) from None
    typer.echo(
        f"Wrote {path}. It reads OPENAI_API_KEY (the provider's key) and ALICE_KEY (a client "
        "key's secret); set them, and SPENDGATE_ADMIN_TOKEN for the admin API, then:\n"
        f"  spendgate config check --config {path}\n"
        f"  spendgate serve --config {path}"
    )


def _money(value: Decimal | None) -> str | None:
    return None if value is None else f"{value.normalize():f}"


def _summary(config: Config, now: datetime) -> dict[str, Any]:
    """Everything ``config check`` shows, as plain data (also the ``--json`` output)."""
    from spendgate.catalog import catalog_timestamp, catalog_version, load_catalog
    from spendgate.store.db import safe_url

    environ = os.environ
    database = _read_database(config)
    prices = config.price_book(load_catalog())
    explicit_tiers = {spec.id: spec.cost_tier for spec in config.model_specs}
    models = []
    for model in config.models(prices, now):
        record = prices.price_for(model.id, now)
        models.append(
            {
                "id": model.id,
                "provider": model.provider,
                "upstream_id": model.upstream_model,
                "deployments": [
                    {"provider": d.provider, "upstream_id": d.upstream_id, "weight": d.weight}
                    for d in model.deployments
                ],
                "capabilities": sorted(c.value for c in model.capabilities),
                "cost_tier": model.cost_tier.value,
                "cost_tier_derived": explicit_tiers.get(model.id) is None,
                "latency_tier": model.latency_tier.value,
                "enabled": model.enabled,
                "priced": record is not None,
                "input_per_mtok": _money(record.input_per_mtok) if record else None,
                "output_per_mtok": _money(record.output_per_mtok) if record else None,
                "cached_input_per_mtok": _money(record.cached_input_per_mtok) if record else None,
                "price_source": record.source.value if record else None,
                "price_precision": record.precision.value if record else None,
            }
        )
    routing = config.routing
    return {
        "valid": True,
        "source": config.source,
        "database_url": safe_url(config.database_url),  # never the password
        "timezone": config.timezone,
        "unpriced_action": config.unpriced_action.value,
        "routing": {
            "default_model": routing.default_model,
            "mode": routing.mode.value,
            "smart_routing": routing.smart_routing,
            "auxiliary_routing": routing.auxiliary_routing,
            "failover": routing.failover,
        },
        "catalog": {
            "genai_prices": catalog_version(),
            "checked": catalog_timestamp().date().isoformat(),
        },
        "providers": [
            {
                "id": p.id,
                "kind": p.kind.value,
                "base_url": p.base_url,
                "api_key_env": p.api_key_env,
                "api_key_set": bool(p.api_key_env and environ.get(p.api_key_env)),
            }
            for p in config.providers()
        ],
        "models": models,
        "budgets": [
            {
                "id": b.id,
                "scope": str(b.scope),
                "metric": b.metric.value,
                "interval": str(b.interval),
                "soft_limit": _money(b.soft_limit),
                "hard_limit": _money(b.hard_limit),
                "soft_action": b.soft_action.value,
                "hard_action": b.hard_action.value,
                "degrade_to": b.degrade_to,
                "enabled": b.enabled,
            }
            for b in config.budget_policies()
        ],
        "keys": [
            {
                "id": k.id,
                "principal": k.principal,
                "project": k.project,
                "permissions": sorted(k.permissions),
                "models": None if k.models is None else sorted(k.models),
                "key_env": k.key_env,
                "key_set": bool(k.key_env and environ.get(k.key_env)),
            }
            for k in config.api_keys()
        ],
        "counter_changes": database.counter_changes,
        # Valid, but will not work as it stands (exit status 0): unset environment
        # variables, unroutable models, no key, no admin access.
        "warnings": [
            *config.problems(environ),
            *config.access_problems(environ, database.runtime_keys),
        ],
    }


@dataclass(frozen=True, slots=True)
class _Database:
    """What ``config check`` reads (read-only) from the config's database; ``None`` fields
    when it cannot be read."""

    counter_changes: list[dict[str, Any]] | None
    runtime_keys: list[ApiKey] | None


def _read_database(config: Config) -> _Database:
    """The config's budgets whose counting identity differs from the one their counters were
    written under, and the active keys created through the admin API."""
    from sqlalchemy.exc import SQLAlchemyError

    from spendgate.store.counting import CountingRegistry
    from spendgate.store.db import read_only_engine
    from spendgate.store.keys import KeyRepository

    try:
        engine = read_only_engine(config.database_url)
        if engine is None:  # no database yet: nothing has been counted, no key created
            return _Database([], [])
        try:
            changes = CountingRegistry(engine).pending(config.budget_policies())
            keys = [stored.key for stored in KeyRepository(engine).list_keys(include_revoked=False)]
        finally:
            engine.dispose()
    except (SQLAlchemyError, ImportError):  # unreachable, locked, or its driver is missing
        return _Database(None, None)
    return _Database([{"id": c.policy_id, "changes": c.changes} for c in changes], keys)


def _render(out: Console, s: dict[str, Any]) -> None:
    routing = s["routing"]
    catalog = s["catalog"]
    out.print(f"[bold green]Config OK[/] {s['source']}", highlight=False, soft_wrap=True)
    out.print(
        f"database {s['database_url']} · timezone {s['timezone']} · routing mode "
        f"[bold]{routing['mode']}[/], default model {routing['default_model'] or '(first model)'}"
        f" · unpriced models: {s['unpriced_action']}",
        highlight=False,
        soft_wrap=True,
    )
    out.print(
        f"price catalog: genai-prices {catalog['genai_prices']}, checked {catalog['checked']}",
        highlight=False,
        soft_wrap=True,
    )

    providers = Table(
        "id", "kind", "base url", "credential", title="Providers", title_justify="left"
    )
    for p in s["providers"]:
        if p["kind"] == "mock":
            credential = "not needed"
        elif p["api_key_env"] is None:
            credential = "none (unauthenticated endpoint)"
        else:
            credential = f"${p['api_key_env']} " + (
                "set" if p["api_key_set"] else "[red]NOT SET[/]"
            )
        providers.add_row(p["id"], p["kind"], p["base_url"] or "(kind default)", credential)
    out.print(providers)

    models = Table(
        "id",
        "provider",
        "capabilities",
        "tier cost/latency",
        "USD per 1M in / out / cached",
        "price",
        title="Models",
        title_justify="left",
    )
    for m in s["models"]:
        renamed = m["upstream_id"] != m["id"] and len(m["deployments"]) == 1
        name = f"{m['id']} → {m['upstream_id']}" if renamed else m["id"]
        if not m["enabled"]:
            name += " (disabled)"
        derived = " (derived)" if m["cost_tier_derived"] else ""
        tiers = f"{m['cost_tier']}{derived} / {m['latency_tier']}"
        if m["priced"]:
            cached = m["cached_input_per_mtok"] or "-"
            per_mtok = f"{m['input_per_mtok']} / {m['output_per_mtok']} / {cached}"
            price = f"priced ({m['price_source']}, {m['price_precision']})"
        else:
            per_mtok = "-"
            price = f"[bold red]UNPRICED[/] ({s['unpriced_action']})"
        capabilities = ", ".join(m["capabilities"]) or "-"
        deployments = m["deployments"]
        provider = (
            m["provider"]
            if len(deployments) == 1
            else ", ".join(
                f"{d['provider']}: {d['upstream_id']} ×{d['weight']}" for d in deployments
            )
        )
        models.add_row(name, provider, capabilities, tiers, per_mtok, price)
    out.print(models)

    budgets = Table(
        "id", "scope", "metric", "interval", "soft / hard", "on soft / hard", title="Budgets",
        title_justify="left",
    )  # fmt: skip
    for b in s["budgets"]:
        target = f" to {b['degrade_to']}" if b["degrade_to"] else " (cheapest)"
        soft, hard = (
            a + target if a == "degrade" else a for a in (b["soft_action"], b["hard_action"])
        )
        actions = f"{soft} / {hard}"
        name = b["id"] if b["enabled"] else f"{b['id']} (disabled)"
        limits = f"{b['soft_limit'] or '-'} / {b['hard_limit']}"
        budgets.add_row(name, b["scope"], b["metric"], b["interval"], limits, actions)
    out.print(budgets)

    keys = Table(
        "id", "principal", "project", "permissions", "models", "secret from",
        title="API keys (ids only, never secrets)", title_justify="left",
    )  # fmt: skip
    for k in s["keys"]:
        secret = f"${k['key_env']} " + ("set" if k["key_set"] else "[yellow]not set[/]")
        permissions = ", ".join(k["permissions"]) or "-"
        allowed = "all" if k["models"] is None else ", ".join(k["models"])
        keys.add_row(
            k["id"], k["principal"] or "-", k["project"] or "-", permissions, allowed, secret
        )
    out.print(keys)

    changes = s["counter_changes"]
    if changes is None:
        out.print(
            f"[yellow]Could not read the database[/] {escape(s['database_url'])} to compare "
            "budgets with their counters.",
            highlight=False,
            soft_wrap=True,
        )
    elif changes:
        out.print(
            "[bold yellow]Budgets that start on fresh counters[/] at the next start (what "
            "their counters measure changed; the old counters are kept, never read as theirs):"
        )
        for change in changes:
            out.print(
                f"  - {change['id']}: {'; '.join(change['changes'])}",
                markup=False,
                highlight=False,
                soft_wrap=True,
            )
    if s["warnings"]:
        out.print("[bold yellow]Warnings[/] (the file is valid, but these will not work):")
        for warning in s["warnings"]:
            out.print(f"  - {warning}", markup=False, highlight=False, soft_wrap=True)
    else:
        out.print("No warnings.")
