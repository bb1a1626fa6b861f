"""The composition root: builds a gateway from a config — governor, keys, upstreams, the
alert service — and mounts the admin API (``/api``) and the console (``/console``) beside the
proxy. The only module that knows all the parts; each of them stays a leaf."""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import orjson

from spendgate.config import Config
from spendgate.domain.keys import ADMIN_TOKEN_ENV
from spendgate.gateway.app import Gateway
from spendgate.gateway.approvals import ApprovalDesk
from spendgate.gateway.asgi import Receive, Scope, Send, respond
from spendgate.gateway.auth import KeyRing, digest
from spendgate.gateway.housekeeping import HousekeepingSettings
from spendgate.gateway.mounts import App, Mount
from spendgate.gateway.service import Service
from spendgate.governor import Governor
from spendgate.providers.registry import UpstreamRegistry
from spendgate.store.journal import Journal
from spendgate.urls import public_url

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from spendgate.admin.context import AdminContext
    from spendgate.alerting import AlertService
    from spendgate.ledger.shared import SharedLedger
    from spendgate.tracing.calls import CallTracer
    from spendgate.tracing.otlp import OtlpSpans

__all__ = ["DEFAULT_ADMIN_MAX_BODY", "create_gateway"]

# Admin bodies are small records (a budget, a price, an explain request).
DEFAULT_ADMIN_MAX_BODY = 1024 * 1024

_NO_ADMIN = orjson.dumps(
    {
        "error": {
            "message": "The admin API and the console need the gateway's journal (database); "
            "this gateway was started without one.",
            "type": "api_error",
            "code": "admin_unavailable",
            "param": None,
        }
    }
)


async def _unavailable(scope: Scope, receive: Receive, send: Send) -> None:
    await respond(send, 503, _NO_ADMIN)


def create_gateway(
    config: Config,
    environ: Mapping[str, str] | None = None,
    *,
    journal: Journal | None = None,
) -> Gateway:
    """A gateway for ``config``: keys, provider credentials and the admin token
    (``SPENDGATE_ADMIN_TOKEN``) from ``environ``. With a ``journal`` it serves the admin API
    and the console, and the records created at runtime (budgets, prices, keys) are loaded
    from it first."""
    env = os.environ if environ is None else environ
    keys, _missing = KeyRing.from_environment(config.api_keys(), env)
    redis = _redis(config)
    shared = _shared_ledger(config, redis) if redis is not None else None
    governor = Governor.from_config(config, ledger=shared, journal=journal)
    if shared is not None:
        shared.windows = governor.current_windows
        shared.journaled = governor.journal_snapshot
    upstreams = UpstreamRegistry(config.providers(), env=env)
    approvals = ApprovalDesk(
        journal.approvals if journal is not None else None,
        pending_ttl=config.approvals.pending_ttl,
        max_wait_s=config.approvals.max_wait_seconds,
    )
    admin = _admin_context(config, governor, keys, upstreams, journal, env, approvals)
    governor.reservation_ttl = config.reservation_ttl
    retention = config.journal
    housekeeping = HousekeepingSettings(
        # Holds of running requests are renewed, and dead ones swept, thrice per TTL.
        hold_interval_s=min(15.0, config.reservation_ttl.total_seconds() / 3),
        retention_interval_s=retention.prune_every.total_seconds(),
        keep_decisions=retention.keep_decisions,
    )
    alerts = _alert_service(config, governor, keys, upstreams, journal, env)
    services: list[Service] = []
    if redis is not None and shared is not None:
        services = _replica_services(config, redis, shared, admin, alerts, journal, env)
    run_alerts = not services  # else a replica service runs them, on the one holding a lease
    tracing = _tracing(config, upstreams, env)
    if tracing is not None:
        services.append(tracing[1])
    gateway = Gateway(
        governor,
        keys,
        upstreams,
        max_body=config.max_body_bytes,
        housekeeping=housekeeping,
        admin=admin,
        approvals=approvals,
        alerts=alerts,
        mounts=_mounts(admin, env),
        services=services,
        run_alerts=run_alerts,
        tracer=tracing[0] if tracing is not None else None,
    )
    if tracing is not None:
        gateway.metrics.watch_traces(tracing[1].counts)
    return gateway


def _tracing(
    config: Config, upstreams: UpstreamRegistry, env: Mapping[str, str]
) -> tuple[CallTracer, OtlpSpans] | None:
    """The call tracer and its OTLP exporter when ``tracing`` is configured: only then is
    OpenTelemetry imported."""
    spec = config.tracing
    if spec is None:
        return None
    from spendgate.tracing.calls import CallTracer
    from spendgate.tracing.otlp import OtlpSpans
    from spendgate.tracing.spans import provider_endpoint

    providers = {
        provider_id: provider_endpoint(
            upstream.provider.kind.value, upstream.url(min(upstream.protocols))
        )
        for provider_id, upstream in upstreams.items()
    }
    spans = OtlpSpans(spec, env, providers, public_url(spec.otlp_endpoint) or "")
    return CallTracer(spans), spans


def _redis(config: Config) -> Redis | None:
    """The client of the shared ledger's Redis (``ledger_url``), or None: one process."""
    if config.ledger_url is None:
        return None
    from redis.asyncio import BlockingConnectionPool, Redis

    # Short timeouts: an unreachable Redis must turn into ledger_failure's answer within a
    # second, not hold requests for a TCP timeout. Requests beyond the pool wait for a
    # connection (a plain pool would fail them).
    pool = BlockingConnectionPool.from_url(
        config.ledger_url,
        max_connections=64,
        timeout=1.0,
        socket_connect_timeout=1.0,
        socket_timeout=1.0,
    )
    return Redis(connection_pool=pool)


def _shared_ledger(config: Config, redis: Redis) -> SharedLedger:
    from spendgate.ledger.redis import RedisLedger
    from spendgate.ledger.shared import SharedLedger

    backend = RedisLedger(redis, prefix=config.ledger_prefix, guarded=True)
    return SharedLedger(backend, failure=config.ledger_failure)


def _replica_services(
    config: Config,
    redis: Redis,
    shared: SharedLedger,
    admin: AdminContext | None,
    alerts: AlertService | None,
    journal: Journal | None,
    env: Mapping[str, str],
) -> list[Service]:
    """One of several processes: the ledger's background work, the records others change
    (watched), the alerts run by the one replica holding their lease (one detector, one
    delivery of each webhook), and on every replica the ledger watch (its lease lives in the
    Redis whose outage it reports)."""
    services: list[Service] = [shared]
    if alerts is not None and journal is not None:
        services.append(_ledger_watch(config, shared, journal, env))
    if admin is not None:
        from spendgate.records.watch import RecordsWatcher

        services.append(RecordsWatcher(admin.records, admin.journal.engine))
    if alerts is not None:
        from spendgate.alerting.relay import OutcomeRelay
        from spendgate.coordination.lease import Lease
        from spendgate.coordination.leased import Leased

        relay = OutcomeRelay(redis, prefix=config.ledger_prefix)
        alerts.relay_through(relay)  # every replica's requests reach the one detector
        services.append(relay)
        services.append(Leased(alerts, Lease(redis, "alerts", prefix=config.ledger_prefix)))
    return services


def _ledger_watch(
    config: Config, shared: SharedLedger, journal: Journal, env: Mapping[str, str]
) -> Service:
    from spendgate.alerting import AlertBook, Announcer, WebhookNotifier
    from spendgate.alerting.ledger_watch import LedgerWatch

    spec = config.alerts
    book = AlertBook(journal.alerts, Announcer(spec), spec.cooldown)

    def notifier() -> WebhookNotifier:
        return WebhookNotifier(journal.outbox, spec, env)

    return LedgerWatch(
        shared,
        config.ledger_prefix,
        book,
        journal.alerts,
        spec.evaluate_every_seconds,
        notifier if spec.all_webhooks() else None,
    )


def _mounts(admin: AdminContext | None, env: Mapping[str, str]) -> list[Mount]:
    if admin is None:
        return [Mount("/api", lambda: _unavailable), Mount("/console", lambda: _unavailable)]
    context = admin

    def admin_api() -> App:
        from spendgate.admin.app import create_admin_app
        from spendgate.admin.gate import AdminGate

        return AdminGate(create_admin_app(context), context, DEFAULT_ADMIN_MAX_BODY)

    def console() -> App:
        from spendgate.console.app import create_console_app

        return create_console_app(context, env)

    return [Mount("/api", admin_api), Mount("/console", console)]


def _alert_service(
    config: Config,
    governor: Governor,
    keys: KeyRing,
    upstreams: UpstreamRegistry,
    journal: Journal | None,
    env: Mapping[str, str],
) -> AlertService | None:
    """Alerts are records: without a journal there is nowhere to keep them."""
    if journal is None or not config.alerts.enabled:
        return None
    from spendgate.alerting import (
        AlertBook,
        AlertDetector,
        AlertService,
        Announcer,
        WebhookNotifier,
    )

    spec = config.alerts
    detector = AlertDetector(governor, upstreams.health, spec, keys.get)
    book = AlertBook(journal.alerts, Announcer(spec), spec.cooldown)
    notifier = WebhookNotifier(journal.outbox, spec, env) if spec.all_webhooks() else None
    return AlertService(detector, book, journal.alerts, notifier, spec.evaluate_every_seconds)


def _admin_context(
    config: Config,
    governor: Governor,
    keys: KeyRing,
    upstreams: UpstreamRegistry,
    journal: Journal | None,
    env: Mapping[str, str],
    approvals: ApprovalDesk,
) -> AdminContext | None:
    if journal is None:
        return None
    from spendgate.admin.context import AdminContext
    from spendgate.catalog import load_catalog
    from spendgate.records import RuntimeRecords

    records = RuntimeRecords(config, governor, keys, journal, load_catalog(), approvals)
    records.load()
    token = env.get(ADMIN_TOKEN_ENV, "")
    return AdminContext(
        config=config,
        governor=governor,
        keys=keys,
        upstreams=upstreams,
        journal=journal,
        records=records,
        admin_token_digest=digest(token) if token else None,
        started_at=datetime.now(UTC),
    )
