"""Reservations of requests still running are kept alive (issue 8, item 4): a stream that runs
longer than the reservation TTL keeps its hold, so concurrent requests cannot spend the budget
it holds; a hold whose request is gone (a crashed handler) still expires after the TTL."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import openai
import pytest

from gateway_support import (
    HELLO,
    ONE_PROVIDER,
    ONE_PROVIDER_ENV,
    Served,
    counter,
    eventually,
    open_reservations,
    openai_client,
    serve,
)
from spendgate.config import parse_config
from spendgate.domain.budgets import CounterKey, counters_for
from spendgate.domain.reservations import ReservationLine
from spendgate.gateway.compose import create_gateway
from spendgate.mock_upstream.runner import MockUpstreamThread

TTL = timedelta(milliseconds=400)
CHUNKS, CHUNK_DELAY_MS = 30, 60  # the stream lasts ≥ 1.8 s: 4.5 TTLs
CONFIG = (
    ONE_PROVIDER
    + """
budgets:
  # Room for one request's upper bound (≈ 1,000 tokens), not two.
  - {{id: acme-tokens, scope: {{kind: project, id: acme}}, metric: tokens, interval: daily,
     hard_limit: 1500}}
"""
)
ENV = ONE_PROVIDER_ENV


@pytest.fixture(scope="module")
def mock() -> Iterator[MockUpstreamThread]:
    with MockUpstreamThread(
        latency_ms=0, stream_chunks=CHUNKS, chunk_delay_ms=CHUNK_DELAY_MS, output_tokens=200
    ) as mock:
        yield mock


@pytest.fixture
def served(mock: MockUpstreamThread) -> Iterator[Served]:
    config = parse_config(CONFIG.format(mock=mock.base_url), "test.yaml")
    gateway = create_gateway(config, ENV)
    gateway.governor.reservation_ttl = TTL
    gateway.housekeeping.hold_interval_s = 0.02
    with serve(gateway) as url:
        yield Served(gateway, url)


def ask(client: openai.OpenAI) -> int:
    try:
        client.chat.completions.create(model="gpt-4o-mini", messages=HELLO, max_tokens=1000)
    except openai.RateLimitError as error:
        return error.status_code
    return 200


def test_a_stream_longer_than_the_ttl_keeps_its_hold(served: Served) -> None:
    client = openai_client(served, "sg-alice")
    started = time.monotonic()
    stream = client.chat.completions.create(
        model="gpt-4o-mini", messages=HELLO, max_tokens=1000, stream=True
    )
    held = counter(served, "acme-tokens", "acme").reserved
    assert held > 1000
    contents = 0
    while contents < CHUNKS // 2:
        chunk = next(stream)
        contents += bool(chunk.choices and chunk.choices[0].delta.content)
    # Half the stream has come: over two TTLs (and many expiry sweeps) have passed.
    assert time.monotonic() - started >= 2 * TTL.total_seconds()
    assert counter(served, "acme-tokens", "acme").reserved == held
    assert ask(client) == 429  # the budget is still held: no overspend
    for _ in stream:
        pass
    assert eventually(lambda: open_reservations(served) == 0)
    settled = counter(served, "acme-tokens", "acme").settled
    assert 0 < settled <= 1500
    assert ask(client) == 200  # the hold ended with the stream


def test_a_hold_whose_request_is_gone_still_expires(served: Served) -> None:
    key = CounterKey("acme-tokens", "acme", counter_window(served))
    line = ReservationLine.of("acme-tokens", (key,), Decimal(1400), Decimal(1500))
    # A handler that died without settling or releasing: nobody keeps its hold alive.
    assert served.ledger.reserve("crashed", [line], datetime.now(UTC), TTL).ok
    assert ask(openai_client(served, "sg-alice")) == 429
    assert eventually(lambda: open_reservations(served) == 0)
    assert counter(served, "acme-tokens", "acme").reserved == 0
    assert ask(openai_client(served, "sg-alice")) == 200


def counter_window(served: Served) -> str:
    (policy,) = served.gateway.governor.state.policies
    keys, _ = counters_for(policy, "acme", datetime.now(UTC))
    return keys[-1].window
