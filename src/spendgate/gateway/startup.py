"""The start-up block ``spendgate serve`` logs (logger ``spendgate.serve``, INFO): what the
gateway is about to serve, read at a glance and within 80 columns::

    spendgate 0.1.0 serving
      listen     http://127.0.0.1:8787
      config     /srv/spendgate/spendgate.yaml
      database   SQLite /srv/spendgate/spendgate.db
      ledger     in memory, rebuilt from the database at start
      routing    enforced, default gpt-4o, smart routing on, failover on
      records    3 models, 2 budgets, 7 keys
      admin API  token set (SPENDGATE_ADMIN_TOKEN), 1 admin key
      provider   alpha: openai at https://api.openai.com/v1
                 credential OPENAI_API_KEY present

Never a secret: a credential is named by its environment variable and said present or
missing, a database URL's password is masked, a provider's URL loses its user-info and query.
The JSON log format carries the same facts as structured fields.
"""

from __future__ import annotations

import logging
import textwrap
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from spendgate import __version__
from spendgate.config import DEMO_SOURCE, Config
from spendgate.domain.keys import ADMIN, ADMIN_TOKEN_ENV
from spendgate.domain.models import Provider, ProviderKind
from spendgate.gateway.app import Gateway
from spendgate.ledger.memory import MemoryLedger
from spendgate.logs import FIELDS
from spendgate.providers.registry import DEFAULT_BASE_URLS
from spendgate.store.db import safe_url
from spendgate.urls import public_url

__all__ = ["log_startup", "startup_block"]

log = logging.getLogger("spendgate.serve")

_WIDTH = 80
_LABEL = 11  # "admin API" and a space or two


def log_startup(gateway: Gateway, config: Config, listen: str, environ: Mapping[str, str]) -> None:
    message, fields = startup_block(gateway, config, listen, environ)
    log.info(message, extra={FIELDS: fields})


def startup_block(
    gateway: Gateway, config: Config, listen: str, environ: Mapping[str, str]
) -> tuple[str, dict[str, Any]]:
    """The block's text and its structured fields."""
    state = gateway.governor.state
    settings = state.settings
    keys = gateway.keys.keys()
    admin_keys = sum(1 for key in keys if key.has(ADMIN))
    unusable = [spec.key_env for spec in config.keys if not environ.get(spec.key_env)]
    journal = gateway.governor.journal
    database = _database(journal.database_url) if journal is not None else "none"
    token_set = gateway.admin is not None and gateway.admin.admin_token_digest is not None
    models = sum(1 for model in state.models.values() if model.enabled)
    providers = [_provider(provider, environ) for provider in config.providers()]
    fields: dict[str, Any] = {
        "version": __version__,
        "listen": listen,
        "config": _config_file(config),
        "database": database,
        "ledger": _ledger(gateway, config),
        "routing_mode": settings.mode.value,
        "default_model": settings.default_model,
        "smart_routing": settings.smart_routing,
        "failover": settings.failover,
        "models": models,
        "budgets": len(state.policies),
        "keys": len(keys),
        "keys_unusable": unusable,
        "admin_token": token_set,
        "admin_keys": admin_keys,
        "providers": providers,
        "alerts": _alerts(gateway, config),
        "tracing": _tracing(config, environ),
    }
    lines = [f"spendgate {__version__} serving"]
    lines += _row("listen", listen)
    lines += _row("config", fields["config"])
    lines += _row("database", database)
    lines += _row("ledger", fields["ledger"])
    lines += _row(
        "routing",
        f"{settings.mode.value}, default {settings.default_model}, smart routing "
        f"{_on(settings.smart_routing)}, failover {_on(settings.failover)}",
    )
    counts = (_count(models, "model"), _count(len(state.policies), "budget"))
    lines += _row("records", ", ".join((*counts, _count(len(keys), "key"))))
    if unusable:
        lines += _row("unusable", f"keys whose variable is unset: {', '.join(unusable)}")
    lines += _row("admin API", _admin(gateway, token_set, admin_keys))
    lines += _row("alerts", fields["alerts"])
    lines += _row("tracing", fields["tracing"])
    for provider in providers:
        lines += _row("provider", f"{provider['id']}: {provider['kind']} at {provider['base_url']}")
        lines += _row("", _credential(provider))
    return "\n".join(lines), fields


def _row(label: str, value: str) -> list[str]:
    return textwrap.wrap(
        value,
        _WIDTH,
        initial_indent=f"  {label:<{_LABEL}}",
        subsequent_indent=" " * (2 + _LABEL),
        break_long_words=False,
        break_on_hyphens=False,
    )


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def _on(flag: bool) -> str:
    return "on" if flag else "off"


def _config_file(config: Config) -> str:
    if config.source == DEMO_SOURCE:
        return "built-in demo (no --config given)"
    return str(Path(config.source).resolve())


def _database(url: str) -> str:
    """A SQLite database as its absolute path; any other URL with its password masked."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database:
        return f"SQLite {Path(parsed.database).resolve()}"
    return safe_url(parsed)


def _ledger(gateway: Gateway, config: Config) -> str:
    if isinstance(gateway.governor.ledger, MemoryLedger):
        if gateway.governor.journal is None:
            return "in memory, empty at start"
        return "in memory, rebuilt from the database at start"
    if config.ledger_url is not None:
        where = safe_url(config.ledger_url) if "://" in config.ledger_url else config.ledger_url
        return (
            f"shared, Redis {where} (prefix {config.ledger_prefix}), "
            f"unreachable: {config.ledger_failure.value}"
        )
    return type(gateway.governor.ledger).__name__


def _alerts(gateway: Gateway, config: Config) -> str:
    if gateway.alerts is None:
        return "off" if not config.alerts.enabled else "off (no database)"
    hooks = config.alerts.all_webhooks()
    every = f"{config.alerts.evaluate_every_seconds:g} s"
    if not hooks:
        return f"on, evaluated every {every}, no webhooks"
    return f"on, evaluated every {every}, webhooks: {', '.join(hook.id for hook in hooks)}"


def _tracing(config: Config, environ: Mapping[str, str]) -> str:
    """Where spans go; header values are never shown (only the variables they come from)."""
    spec = config.tracing
    if spec is None:
        return "off"
    text = (
        f"on, OTLP/HTTP to {public_url(spec.otlp_endpoint)}, service {spec.service_name}, "
        f"sampling {spec.sample_ratio * 100:g}%"
    )
    named = [
        *spec.headers,
        *(
            f"{name} from {env}" + ("" if environ.get(env) else " (unset: not sent)")
            for name, env in spec.headers_env.items()
        ),
    ]
    if named:
        text += f", headers: {', '.join(named)}"
    return text


def _admin(gateway: Gateway, token_set: bool, admin_keys: int) -> str:
    if gateway.admin is None:
        return "off (no database)"
    token = f"token set ({ADMIN_TOKEN_ENV})" if token_set else f"no token ({ADMIN_TOKEN_ENV} unset)"
    keys = _count(admin_keys, "admin key")
    if not token_set and not admin_keys:
        return f"{token}, no admin key: nobody can change records through it"
    return f"{token}, {keys}"


def _provider(provider: Provider, environ: Mapping[str, str]) -> dict[str, Any]:
    if provider.api_key_env:
        credential = "present" if environ.get(provider.api_key_env) else "missing"
    else:
        credential = "none needed" if provider.kind is ProviderKind.MOCK else "none configured"
    return {
        "id": provider.id,
        "kind": provider.kind.value,
        "base_url": public_url(provider.base_url or DEFAULT_BASE_URLS.get(provider.kind, "")),
        "credential_env": provider.api_key_env,
        "credential": credential,
    }


def _credential(provider: Mapping[str, Any]) -> str:
    credential = provider["credential"]
    if provider["credential_env"] is None:
        return f"credential: {credential}"
    text = f"credential {provider['credential_env']} {credential}"
    return text + (": calls to it fail" if credential == "missing" else "")
