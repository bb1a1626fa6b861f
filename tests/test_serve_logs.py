"""What ``spendgate serve`` logs, read from the stderr of the real command: the start-up block
(never a secret), JSON lines, the access log, provider circuits, the audit trail."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import anthropic
import httpx
import openai
import orjson
import pytest

from gateway_support import HELLO
from serve_support import RunningServe, serve_process
from spendgate.mock_upstream.runner import MockUpstreamThread

# alpha's credential is set, beta's is not; beta's URL carries a password in its user-info.
CONFIG = """
database_url: sqlite:///./journal.db
providers:
  - {{id: alpha, kind: openai, base_url: "{mock}/v1", api_key_env: ALPHA_KEY}}
  - {{id: beta, kind: anthropic, base_url: "http://ops:hunter2@127.0.0.1:9/?k=zzz-secret",
     api_key_env: BETA_KEY}}
models:
  - {{id: gpt-4o-mini, provider: alpha, cost_tier: low, max_output_tokens: 16384}}
  - {{id: claude-opus-4, provider: beta, cost_tier: high, max_output_tokens: 32000}}
routing: {{default_model: gpt-4o-mini, mode: enforced, smart_routing: false, failover: false}}
keys:
  - {{id: ops, key_env: OPS_KEY, principal: ops, permissions: [admin]}}
  - {{id: alice, key_env: ALICE_KEY, principal: alice, project: acme}}
  - {{id: dave, key_env: DAVE_KEY, principal: dave, project: thrifty}}
budgets:
  - {{id: thrifty-daily, scope: {{kind: project, id: thrifty}}, metric: usd, interval: daily,
     hard_limit: 0.000001}}
"""
UPSTREAM_SECRET = "sk-alpha-upstream-secret"
ENV = {
    "ALPHA_KEY": UPSTREAM_SECRET,
    "OPS_KEY": "sg-ops",
    "ALICE_KEY": "sg-alice",
    "DAVE_KEY": "sg-dave",
    "SPENDGATE_ADMIN_TOKEN": "sg-admin-token",
}
SECRETS = (UPSTREAM_SECRET, "hunter2", "zzz-secret", "sg-alice", "sg-admin-token")


@pytest.fixture(scope="module")
def mock() -> Iterator[MockUpstreamThread]:
    with MockUpstreamThread(latency_ms=0) as running:
        yield running


@pytest.fixture(scope="module")
def text_serve(
    mock: MockUpstreamThread, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServe]:
    directory = tmp_path_factory.mktemp("text")
    config = CONFIG.format(mock=mock.base_url)
    with serve_process(directory, config, ENV, "--access-log") as running:
        yield running


def _sdk(serve: RunningServe, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=serve.url + "/v1", api_key=key, max_retries=0)


def _block(log: str) -> list[str]:
    """The start-up block: its first line and the indented lines that follow it."""
    lines = log.splitlines()
    start = next(i for i, line in enumerate(lines) if "spendgate.serve: " in line)
    block = [lines[start]]
    for line in lines[start + 1 :]:
        if not line.startswith("  "):
            break
        block.append(line)
    return block


def test_the_start_up_block_says_what_is_served_and_no_secret(
    text_serve: RunningServe, mock: MockUpstreamThread
) -> None:
    log = text_serve.log()
    block = _block(log)
    directory = text_serve.stderr.parent.resolve()
    assert block[0].endswith(" INFO spendgate.serve: spendgate 0.1.0 serving")
    assert f"  listen     {text_serve.url}" in block
    assert f"  config     {directory / 'spendgate.yaml'}" in block
    assert f"  database   SQLite {directory / 'journal.db'}" in block
    assert "  ledger     in memory, rebuilt from the database at start" in block
    assert "  routing    enforced, default gpt-4o-mini, smart routing off, failover off" in block
    assert "  records    2 models, 1 budget, 3 keys" in block
    assert "  admin API  token set (SPENDGATE_ADMIN_TOKEN), 1 admin key" in block
    assert "  alerts     on, evaluated every 15 s, no webhooks" in block
    provider = block.index(f"  provider   alpha: openai at {mock.base_url}/v1")
    assert block[provider + 1].strip() == "credential ALPHA_KEY present"
    beta = block.index("  provider   beta: anthropic at http://127.0.0.1:9/")
    assert block[beta + 1].strip() == "credential BETA_KEY missing: calls to it fail"
    assert all(len(line) <= 80 for line in block[1:]), block
    for secret in SECRETS:
        assert secret not in log


def test_the_access_log_has_one_line_per_request_with_its_decision_id(
    text_serve: RunningServe,
) -> None:
    sdk = _sdk(text_serve, "sg-alice")
    plain = sdk.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=HELLO, max_tokens=50
    )
    with sdk.chat.completions.with_streaming_response.create(
        model="gpt-4o-mini", messages=HELLO, max_tokens=50, stream=True
    ) as streamed:
        assert "[DONE]" in streamed.read().decode()
    messages = anthropic.Anthropic(base_url=text_serve.url, api_key="sg-alice", max_retries=0)
    answer = messages.messages.with_raw_response.create(
        model="gpt-4o-mini", messages=HELLO, max_tokens=50
    )
    with pytest.raises(openai.RateLimitError) as refused:
        _sdk(text_serve, "sg-dave").chat.completions.create(
            model="gpt-4o-mini", messages=HELLO, max_tokens=50
        )
    with pytest.raises(openai.AuthenticationError):
        _sdk(text_serve, "sg-nobody").chat.completions.create(model="gpt-4o-mini", messages=HELLO)

    ids = [
        reply.headers["x-spendgate-decision-id"]
        for reply in (plain, streamed, answer, refused.value.response)
    ]
    log = text_serve.wait_for("401 /v1/chat/completions")
    access = [line for line in log.splitlines() if " spendgate.access: " in line]
    served = [next(line for line in access if f"decision={id_} " in line) for id_ in ids[:3]]
    for line in served:
        assert " INFO spendgate.access: 200 /v1/" in line
        assert " key=alice gpt-4o-mini → gpt-4o-mini proceed " in line
        assert " in / " in line
        assert " out $0.0" in line
    assert "200 /v1/messages " in served[2]
    [blocked] = [line for line in access if f"decision={ids[3]} " in line]
    assert "429 /v1/chat/completions" in blocked
    assert "key=dave gpt-4o-mini → — block" in blocked
    [unknown] = [line for line in access if "401 " in line]
    assert "decision=" not in unknown
    assert "key=" not in unknown
    assert len(access) == 5


def test_an_admin_change_reaches_the_audit_log(text_serve: RunningServe) -> None:
    created = httpx.post(
        text_serve.url + "/api/v1/budgets",
        headers={"authorization": "Bearer sg-admin-token"},
        json={
            "id": "acme-daily",
            "scope": {"kind": "project", "id": "acme"},
            "metric": "usd",
            "interval": "daily",
            "hard_limit": "5",
        },
        timeout=30,
    )
    assert created.status_code == 201, created.text
    log = text_serve.wait_for("budget acme-daily created")
    assert " INFO spendgate.audit: budget acme-daily created by admin-token" in log


def test_a_database_that_refuses_writes_is_logged_at_error(text_serve: RunningServe) -> None:
    """Another process holds SQLite's write lock past the busy timeout (5 s): the journal's
    failed write is an ERROR; once the lock is gone, its recovery a WARNING."""
    blocker = sqlite3.connect(text_serve.stderr.parent / "journal.db", isolation_level=None)
    try:
        blocker.execute("BEGIN IMMEDIATE")
        _sdk(text_serve, "sg-alice").chat.completions.create(model="gpt-4o-mini", messages=HELLO)
        log = text_serve.wait_for("database write of", timeout_s=20)
    finally:
        blocker.close()  # rolls back, releasing the lock
    failed = next(line for line in log.splitlines() if "database write of" in line)
    assert " ERROR spendgate.journal: journal: database write of " in failed
    assert " item(s) failed (attempt 1), retrying in " in failed
    assert "database is locked" in failed
    log = text_serve.wait_for("database writes recovered", timeout_s=20)
    assert " WARNING spendgate.journal: journal: database writes recovered" in log


def test_json_lines_carry_the_start_up_facts_as_fields(
    mock: MockUpstreamThread, tmp_path: Path
) -> None:
    config = CONFIG.format(mock=mock.base_url)
    with serve_process(tmp_path, config, ENV, "--log-format", "json") as running:
        _sdk(running, "sg-alice").chat.completions.create(model="gpt-4o-mini", messages=HELLO)
        log = running.wait_for("Uvicorn running on")
    entries = [orjson.loads(line) for line in log.splitlines()]
    assert all({"time", "level", "logger", "message"} <= entry.keys() for entry in entries)
    [start] = [entry for entry in entries if entry["logger"] == "spendgate.serve"]
    assert start["level"] == "INFO"
    assert start["listen"] == running.url
    assert start["database"] == f"SQLite {tmp_path.resolve() / 'journal.db'}"
    assert start["admin_token"] is True
    assert start["providers"][1] == {
        "id": "beta",
        "kind": "anthropic",
        "base_url": "http://127.0.0.1:9/",
        "credential_env": "BETA_KEY",
        "credential": "missing",
    }
    assert any(entry["logger"] == "uvicorn" for entry in entries)
    assert not any(entry["logger"] == "spendgate.access" for entry in entries)  # opt-in
    for secret in SECRETS:
        assert secret not in log


def test_a_provider_going_down_and_back_is_logged_at_warning(tmp_path: Path) -> None:
    with MockUpstreamThread(latency_ms=0) as upstream:
        config = CONFIG.format(mock=upstream.base_url)
        with serve_process(tmp_path, config, ENV) as running:
            sdk = _sdk(running, "sg-alice")
            upstream.options.forced_status = 503
            for _ in range(5):  # the circuit opens after 5 consecutive failures
                with pytest.raises(openai.InternalServerError):
                    sdk.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
            log = running.wait_for("circuit opened")
            opened = next(line for line in log.splitlines() if "circuit opened" in line)
            assert " WARNING spendgate.providers: provider alpha: circuit opened: 5 " in opened
            assert "HTTP 503" in opened
            assert " WARNING spendgate.providers: provider alpha is degraded" in log

            upstream.options.forced_status = None
            # After the cooldown (5 s) one call is let through as a probe: it succeeds.
            deadline = time.monotonic() + 15
            while True:
                try:
                    sdk.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
                    break
                except openai.InternalServerError:  # still open: refused without a call
                    assert time.monotonic() < deadline, running.log()
                    time.sleep(0.25)
            log = running.wait_for("recovered")
            assert " INFO spendgate.providers: provider alpha: circuit half-open" in log
            assert " WARNING spendgate.providers: provider alpha recovered: " in log
