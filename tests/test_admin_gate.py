"""The admin API's front door (``admin.gate``) over real HTTP: a request without a valid
credential is answered 401 before its body is read (the answer arrives while the body is
still unsent, and the connection is closed rather than drained); an authenticated body over
the limit is a 413, whether its length is declared or it streams in chunks; a body of too
many JSON values is a 400 before it is decoded."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

from admin_support import AdminGateway, admin_gateway
from gateway_support import http


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AdminGateway]:
    with admin_gateway(tmp_path_factory.mktemp("gate")) as running:
        yield running


def _post_raw(
    gw: AdminGateway, path: str, credential: str | None, length: int | None, body: bytes = b""
) -> bytes:
    """POST headers announcing ``length`` body bytes (None: chunked), then ``body`` (sent as
    it is), and return all the gateway answers until it closes the connection. With less
    body sent than announced, an answer at all shows the gateway did not wait for the rest."""
    address = urlsplit(gw.url)
    auth = f"authorization: Bearer {credential}\r\n" if credential else ""
    framing = "transfer-encoding: chunked" if length is None else f"content-length: {length}"
    head = (
        f"POST /api/v1{path} HTTP/1.1\r\nhost: {address.netloc}\r\n{auth}"
        f"content-type: application/json\r\n{framing}\r\n\r\n"
    )
    with socket.create_connection((address.hostname, address.port), timeout=10) as conn:
        conn.sendall(head.encode() + body)
        received = b""
        while chunk := conn.recv(65536):
            received += chunk
    return received


def test_no_credential_is_401_before_the_body_is_read(gw: AdminGateway) -> None:
    answer = _post_raw(gw, "/budgets", None, 60 * 1024 * 1024)
    status, _, rest = answer.partition(b"\r\n")
    assert status == b"HTTP/1.1 401 Unauthorized"
    assert b"connection: close" in rest.lower()
    assert b'"code":"invalid_api_key"' in rest
    answer = _post_raw(gw, "/keys", "sg-not-a-key", 60 * 1024 * 1024)
    assert answer.startswith(b"HTTP/1.1 401 ")


def test_declared_oversized_body_is_413_unread(gw: AdminGateway) -> None:
    answer = _post_raw(gw, "/budgets", gw.token, 2 * 1024 * 1024)
    assert answer.startswith(b"HTTP/1.1 413 ")
    assert b'"code":"body_too_large"' in answer
    assert b"1048576 bytes" in answer


def test_streamed_oversized_body_is_413(gw: AdminGateway) -> None:
    chunk = b"10000\r\n" + b" " * 65536 + b"\r\n"  # 64 KiB chunks, no end: 1.06 MiB so far
    answer = _post_raw(gw, "/budgets", gw.token, None, chunk * 17)
    assert answer.startswith(b"HTTP/1.1 413 ")
    assert b'"code":"body_too_large"' in answer


def test_a_body_within_the_limit_still_works(gw: AdminGateway) -> None:
    spec = {
        "id": "gate-ok",
        "scope": {"kind": "project", "id": "acme"},
        "metric": "usd",
        "interval": "daily",
        "hard_limit": "3",
    }
    assert gw.post("/budgets", json=spec).status_code == 201
    assert gw.get("/budgets/gate-ok").json()["hard_limit"] == "3"
    # The public OpenAPI document needs no credential.
    assert gw.get("/openapi.json", token=None).status_code == 200


def test_too_many_json_values_is_400_before_decoding(gw: AdminGateway) -> None:
    body = b'{"request": {"messages": [' + b",".join([b"{}"] * 400_000) + b"]}}"
    reply = http(
        "POST",
        gw.api + "/explain",
        content=body,
        authorization=f"Bearer {gw.token}",
        **{"content-type": "application/json"},
    )
    assert reply.status_code == 413  # over 1 MiB: refused while streaming in
    small = b'{"request": {"messages": [' + b",".join([b"[]"] * 120_000) + b"]}}"
    assert len(small) < 1024 * 1024
    reply = http(
        "POST",
        gw.api + "/explain",
        content=small,
        authorization=f"Bearer {gw.token}",
        **{"content-type": "application/json"},
    )
    assert reply.status_code == 400
    assert "more than 100000 JSON values" in reply.json()["error"]["message"]
    deep = b'{"request": {"model": "gpt-4o", "messages": [], "metadata": ' + b"[" * 300
    reply = http(
        "POST",
        gw.api + "/explain",
        content=deep + b"]" * 300 + b"}}",
        authorization=f"Bearer {gw.token}",
        **{"content-type": "application/json"},
    )
    assert reply.status_code == 400
    assert reply.json()["error"]["message"].endswith("deeper than 64.")
