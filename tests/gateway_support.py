"""Shared helpers of the gateway's end-to-end tests: the gateway served by uvicorn in a thread
on a loopback port, raw HTTP calls for what the SDKs would refuse to send, and ledger / journal
readers. Real HTTP everywhere: the official SDKs (or aiohttp) talk to uvicorn, the gateway talks
to mock upstreams (``MockUpstreamThread``) over loopback."""

from __future__ import annotations

import asyncio
import atexit
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import anthropic
import openai
import orjson
import uvicorn
from aiohttp import web
from multidict import CIMultiDict

from postgres_support import throwaway_postgres
from spendgate.config import parse_config
from spendgate.domain.budgets import CounterState, counters_for
from spendgate.gateway.app import Gateway
from spendgate.gateway.compose import create_gateway
from spendgate.ledger.memory import MemoryLedger
from spendgate.mock_upstream.runner import MockUpstreamThread
from spendgate.store.journal import Journal
from spendgate.store.migrate import migrate
from spendgate.store.records import StoredDecision

__all__ = [
    "HELLO",
    "ONE_PROVIDER",
    "ONE_PROVIDER_ENV",
    "Reply",
    "Served",
    "anthropic_client",
    "counter",
    "decisions",
    "eventually",
    "http",
    "inject_mock_headers",
    "journal_url_for",
    "last_upstream_body",
    "leave_stream",
    "open_reservations",
    "openai_client",
    "quiet_mock",
    "serve",
    "serve_config",
    "settled",
    "stored",
]

HELLO = [{"role": "user", "content": "Say hello to the budget team."}]

# One OpenAI-kind provider (the mock at ``{mock}``) with one model, enforced, and alice's key
# (project acme): a ``str.format`` template to which a test appends its budgets and settings.
ONE_PROVIDER = """
providers:
  - {{id: alpha, kind: openai, base_url: "{mock}/v1", api_key_env: ALPHA_KEY}}
models:
  - {{id: gpt-4o-mini, provider: alpha, cost_tier: low, max_output_tokens: 16384}}
routing: {{default_model: gpt-4o-mini, mode: enforced, smart_routing: false, failover: false}}
keys:
  - {{id: alice, key_env: ALICE_KEY, principal: alice, project: acme}}
"""
ONE_PROVIDER_ENV = {"ALPHA_KEY": "sk-alpha-upstream-secret", "ALICE_KEY": "sg-alice"}


@dataclass
class Reply:
    status_code: int
    body: bytes
    headers: Mapping[str, str]

    def json(self) -> Any:
        return orjson.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode()


def http(method: str, url: str, *, content: bytes = b"", json: Any = None, **headers: str) -> Reply:
    """A raw HTTP call (aiohttp), for what the SDKs would refuse to send."""

    async def call() -> Reply:
        data = orjson.dumps(json) if json is not None else content
        async with (
            aiohttp.ClientSession() as session,
            session.request(method, url, data=data or None, headers=headers) as response,
        ):
            return Reply(response.status, await response.read(), CIMultiDict(response.headers))

    return asyncio.run(call())


@dataclass
class Served:
    """A gateway served on loopback: ``url`` is its root (``http://127.0.0.1:<port>``)."""

    gateway: Gateway
    url: str
    journal: Journal | None = None

    @property
    def ledger(self) -> MemoryLedger:
        ledger = self.gateway.governor.ledger
        assert isinstance(ledger, MemoryLedger)
        return ledger


@contextmanager
def serve(
    gateway: Gateway, *, log_level: str = "warning", configure_logging: bool = True
) -> Iterator[str]:
    """Serve ``gateway`` with uvicorn in a thread (lifespan on); yields its root URL.
    ``configure_logging=False`` leaves logging alone (uvicorn otherwise installs its own
    handlers on its loggers, replacing any a test attached)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    options: dict[str, Any] = {} if configure_logging else {"log_config": None}
    config = uvicorn.Config(gateway, log_level=log_level, lifespan="on", **options)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert server.started, "the gateway did not start"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


_POSTGRES: dict[Path, str] = {}
_POSTGRES_DATABASES = ExitStack()
atexit.register(_POSTGRES_DATABASES.close)


def _postgres_for(database: Path) -> str:
    """A throwaway PostgreSQL database standing for the SQLite file ``database``: the same
    one each time a test serves that path again (a restart), dropped when the tests end.
    Migrated, as `spendgate db upgrade` leaves it: `spendgate serve` refuses it otherwise."""
    url = _POSTGRES.get(database)
    if url is None:
        url = _POSTGRES_DATABASES.enter_context(throwaway_postgres())
        migrate(url)
        _POSTGRES[database] = url
    return url


def journal_url_for(database: Path) -> str:
    """The journal's URL for the SQLite file ``database``: that file or, with
    ``SPENDGATE_TEST_JOURNAL=postgresql`` (the suite's second pass), a throwaway PostgreSQL
    database standing for it (the same one each time, so a restart finds its data)."""
    if os.environ.get("SPENDGATE_TEST_JOURNAL") == "postgresql":
        return _postgres_for(database)
    return f"sqlite:///{database}"


@contextmanager
def serve_config(
    config_text: str,
    environ: Mapping[str, str],
    *,
    database: Path | None = None,
    log_level: str = "warning",
    configure_logging: bool = True,
) -> Iterator[Served]:
    """Parse ``config_text``, build the gateway (with a journal at ``database`` when given:
    ``journal_url_for``) and serve it. The gateway's shutdown closes the journal."""
    config = parse_config(config_text, "test.yaml")
    journal = None if database is None else Journal(journal_url_for(database))
    gateway = create_gateway(config, environ, journal=journal)
    with serve(gateway, log_level=log_level, configure_logging=configure_logging) as url:
        yield Served(gateway, url, journal)


def openai_client(served: Served, key: str, **options: Any) -> openai.OpenAI:
    options.setdefault("max_retries", 0)
    return openai.OpenAI(base_url=served.url + "/v1", api_key=key, **options)


def anthropic_client(served: Served, key: str, **options: Any) -> anthropic.Anthropic:
    options.setdefault("max_retries", 0)
    return anthropic.Anthropic(base_url=served.url, api_key=key, **options)


# -- ledger and journal -------------------------------------------------------------------------


def counter(served: Served, policy_id: str, member: str) -> CounterState:
    """Settled and reserved on ``policy_id``'s current window for ``member``."""
    policy = next(p for p in served.gateway.governor.state.policies if p.id == policy_id)
    keys, _ = counters_for(policy, member, datetime.now(UTC))
    return served.ledger.read_total(keys)


def settled(served: Served, policy_id: str, member: str) -> Decimal:
    return counter(served, policy_id, member).settled


def open_reservations(served: Served) -> int:
    return served.ledger.open_reservations


def stored(served: Served, decision_id: str) -> StoredDecision:
    """The journaled decision (after flushing the journal's writer). A streaming client can
    read the final event before the gateway has settled, so wait for the decision a moment."""
    assert served.journal is not None
    found = None
    for _ in range(200):
        assert served.journal.flush(10)
        found = served.journal.get_decision(decision_id)
        if found is not None:
            break
        time.sleep(0.025)
    assert found is not None, f"decision {decision_id} was not journaled"
    return found


def decisions(served: Served) -> list[StoredDecision]:
    assert served.journal is not None
    assert served.journal.flush(10)
    return served.journal.list_decisions(limit=10_000)


def eventually(check: Callable[[], bool], timeout_s: float = 5.0) -> bool:
    """Poll ``check`` until it holds (settlement after a disconnect is asynchronous)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.01)
    return check()


# -- mock upstream ------------------------------------------------------------------------------


def last_upstream_body(mock: MockUpstreamThread) -> dict[str, Any]:
    """The JSON body of the last request the mock received."""
    body = mock.stats.history[-1].body
    assert isinstance(body, dict)
    return body


def inject_mock_headers(mock: MockUpstreamThread, headers: Mapping[str, str]) -> None:
    """Make a mock (not yet started) behave as if every request carried ``headers`` (its
    ``x-mock-*`` controls), since the gateway forwards none of a client's headers upstream."""
    server = mock._mock.server  # the MockServer: its handler is bound when the mock starts
    handle = server.handle

    async def with_headers(request: web.BaseRequest) -> web.StreamResponse:
        merged = CIMultiDict(request.headers)
        merged.update(headers)
        return await handle(request.clone(headers=merged))

    server.handle = with_headers  # type: ignore[method-assign]


def quiet_mock() -> MockUpstreamThread:
    """A mock (to start) that reports no usage at all, as some OpenAI-compatible servers do."""
    mock = MockUpstreamThread(latency_ms=0)
    inject_mock_headers(mock, {"x-mock-no-usage": "1"})
    return mock


def leave_stream(
    served: Served, path: str, body: Mapping[str, Any], events: int | None, key: str = "sg-alice"
) -> str:
    """POST a streamed request to ``path``, read ``events`` SSE data events (all when None),
    then drop the connection (a client that leaves mid-stream). Returns the decision id."""

    async def run() -> str:
        headers = {"authorization": f"Bearer {key}", "content-type": "application/json"}
        async with aiohttp.ClientSession(headers=headers) as session:
            response = await session.post(served.url + path, data=orjson.dumps(body))
            assert response.status == 200
            decision_id = response.headers["x-spendgate-decision-id"]
            seen = 0
            async for line in response.content:
                if line.startswith(b"data: {"):
                    seen += 1
                    if events is not None and seen >= events:
                        break
            response.close()  # drops the connection if the stream is not over
            return decision_id

    return asyncio.run(run())
