"""Header values are UTF-8: a session or agent id in any script reaches the ledger and the
journal as sent (it was read as Latin-1: ``é`` became ``Ã©``), and bytes that are not UTF-8
get a 400 naming the header, on the proxy and on the admin API."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from urllib.parse import urlsplit

import orjson
import pytest

from admin_support import AdminGateway, admin_gateway
from gateway_support import stored


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AdminGateway]:
    with admin_gateway(tmp_path_factory.mktemp("headers")) as running:
        yield running


def _raw(gw: AdminGateway, method: str, path: str, headers: dict[str, bytes], body: bytes) -> bytes:
    """One request with header values sent as these exact bytes; the whole answer."""
    address = urlsplit(gw.url)
    lines = [f"{method} {path} HTTP/1.1".encode(), f"host: {address.netloc}".encode()]
    lines += [name.encode() + b": " + value for name, value in headers.items()]
    lines += [b"content-type: application/json", b"content-length: %d" % len(body)]
    lines += [b"connection: close", b"", b""]
    with socket.create_connection((address.hostname, address.port), timeout=10) as conn:
        conn.sendall(b"\r\n".join(lines) + body)
        received = b""
        while chunk := conn.recv(65536):
            received += chunk
    return received


def _status_and_json(answer: bytes) -> tuple[int, dict[str, object]]:
    head, _, body = answer.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    if b"transfer-encoding: chunked" in head.lower():
        size, _, rest = body.partition(b"\r\n")
        body = rest[: int(size, 16)]
    parsed: dict[str, object] = orjson.loads(body)
    return status, parsed


CHAT = orjson.dumps({"model": "gpt-4o", "messages": [{"role": "user", "content": "Hello"}]})


def test_utf8_agent_and_session_ids_are_kept(gw: AdminGateway) -> None:
    headers = {
        "authorization": f"Bearer {gw.secrets['alice']}".encode(),
        "x-spendgate-agent-id": "indexer-é".encode(),
        "x-spendgate-session-id": "sitzung-日本".encode(),
    }
    answer = _raw(gw, "POST", "/v1/chat/completions", headers, CHAT)
    status, _ = _status_and_json(answer)
    assert status == 200
    head = answer.partition(b"\r\n\r\n")[0].decode("latin-1").lower()
    decision_id = head.split("x-spendgate-decision-id: ", 1)[1].split("\r\n", 1)[0]
    scopes = stored(gw.served, decision_id).decision.scopes
    assert scopes.agent is not None
    assert scopes.agent.endswith("/indexer-é")
    assert scopes.session is not None
    assert scopes.session.endswith("/sitzung-日本")


def test_a_header_that_is_not_utf8_is_a_400_naming_it(gw: AdminGateway) -> None:
    headers = {
        "authorization": f"Bearer {gw.secrets['alice']}".encode(),
        "x-spendgate-session-id": b"caf\xe9",
    }
    status, body = _status_and_json(_raw(gw, "POST", "/v1/chat/completions", headers, CHAT))
    assert status == 400
    error = body["error"]
    assert isinstance(error, dict)
    assert error["param"] == "x-spendgate-session-id"
    assert "not valid UTF-8" in error["message"]
    headers["authorization"] = f"Bearer {gw.token}".encode()
    status, body = _status_and_json(_raw(gw, "GET", "/api/v1/budgets", headers, b""))
    assert status == 400
    error = body["error"]
    assert isinstance(error, dict)
    assert error["param"] == "header.x-spendgate-session-id"
