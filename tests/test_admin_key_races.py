"""Concurrent changes to one API key through the admin API (its routes run in a thread pool):
whatever order a rotate and a revoke, or two rotates, commit in, the gateway accepts exactly
the secret the database holds for an active key, and none for a revoked one."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from functools import partial

import httpx
import pytest

from admin_support import AdminGateway, admin_gateway

ROUNDS = 30


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AdminGateway]:
    with admin_gateway(tmp_path_factory.mktemp("key-races")) as running:
        yield running


def _together(*calls: Callable[[], httpx.Response]) -> list[httpx.Response]:
    """Run the calls at the same instant, each in its own thread."""
    barrier = threading.Barrier(len(calls))
    replies: list[httpx.Response | None] = [None] * len(calls)

    def run(index: int) -> None:
        barrier.wait()
        replies[index] = calls[index]()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert all(reply is not None for reply in replies)
    return [reply for reply in replies if reply is not None]


def _accepted(gw: AdminGateway, secret: str) -> bool:
    reply = httpx.get(gw.url + "/v1/models", headers={"authorization": f"Bearer {secret}"})
    assert reply.status_code in (200, 401)
    return reply.status_code == 200


def test_rotate_racing_revoke_never_leaves_a_secret_live(gw: AdminGateway) -> None:
    for round_ in range(ROUNDS):
        key_id = f"race-{round_}"
        first = gw.post("/keys", json={"id": key_id, "project": "acme"}).json()["secret"]
        rotated, revoked = _together(
            partial(gw.post, f"/keys/{key_id}/rotate"), partial(gw.delete, f"/keys/{key_id}")
        )
        assert revoked.status_code in (200, 409)
        assert rotated.status_code in (200, 409)
        listed = {key["id"]: key for key in gw.get("/keys").json()["data"]}
        assert listed[key_id]["active"] is False  # the revoke commits, before or after
        secrets = [first] + ([rotated.json()["secret"]] if rotated.status_code == 200 else [])
        assert [_accepted(gw, secret) for secret in secrets] == [False] * len(secrets), round_


def test_two_rotations_leave_exactly_one_secret(gw: AdminGateway) -> None:
    for round_ in range(ROUNDS):
        key_id = f"twice-{round_}"
        first = gw.post("/keys", json={"id": key_id, "project": "acme"}).json()["secret"]
        replies = _together(
            partial(gw.post, f"/keys/{key_id}/rotate"), partial(gw.post, f"/keys/{key_id}/rotate")
        )
        assert [reply.status_code for reply in replies] == [200, 200]
        secrets = [reply.json()["secret"] for reply in replies]
        assert not _accepted(gw, first)
        assert sorted(_accepted(gw, secret) for secret in secrets) == [False, True], round_
