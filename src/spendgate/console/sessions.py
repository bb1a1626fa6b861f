"""Console sessions: who is signed in, carried by a signed cookie, and the CSRF token of each.

Signing in takes the admin token or an API key, checked exactly as the admin API checks a
bearer credential. The cookie then holds no secret: only who signed in (``admin`` or a key
id), a fingerprint of that credential, a CSRF token and an expiry, signed with HMAC-SHA256
under a server secret (``SPENDGATE_CONSOLE_SECRET``; without it, a random one per process, so
a restart signs everybody out). Every request checks the signature and expiry and looks the
signer up again: a revoked or rotated key, or a changed admin token, ends its sessions at
once. The cookie is HttpOnly, SameSite=Strict, limited to ``/console`` (and Secure over
HTTPS). Every state-changing request carries the CSRF token, in a form field or the
``x-csrf-token`` header, compared in constant time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from spendgate.admin.auth import ADMIN_ACTOR, Viewer, authenticate
from spendgate.admin.context import AdminContext
from spendgate.domain.keys import ADMIN, APPROVER

__all__ = ["CONSOLE_SECRET_ENV", "COOKIE", "Session", "SessionSigner"]

COOKIE = "spendgate_console"
CONSOLE_SECRET_ENV = "SPENDGATE_CONSOLE_SECRET"
# A session lasts a working day; signing in again is one paste.
LIFETIME_S = 12 * 3600


@dataclass(frozen=True, slots=True)
class Session:
    viewer: Viewer
    csrf: str
    expires: int


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class SessionSigner:
    def __init__(self, ctx: AdminContext, environ: Mapping[str, str]) -> None:
        self._ctx = ctx
        configured = environ.get(CONSOLE_SECRET_ENV, "")
        self._secret = configured.encode() if configured else secrets.token_bytes(32)

    def sign_in(self, credential: str) -> tuple[str, Session] | None:
        """The cookie value and session for ``credential``, or None if it is not valid."""
        ctx = self._ctx
        viewer = authenticate(
            f"Bearer {credential}", None, ctx.admin_token_digest, ctx.keys, ctx.records.keys.find
        )
        if viewer is None:
            return None
        subject = "admin" if viewer.key is None else viewer.key.id
        session = Session(viewer, secrets.token_urlsafe(24), int(time.time()) + LIFETIME_S)
        payload: dict[str, Any] = {
            "sub": subject,
            "fp": self._fingerprint(subject),
            "csrf": session.csrf,
            "exp": session.expires,
        }
        return self._encode(payload), session

    def session(self, cookie: str | None) -> Session | None:
        """The session this cookie carries, if it is genuine, current and its signer still
        holds the same credential."""
        payload = self._decode(cookie) if cookie else None
        if payload is None or payload.get("exp", 0) < time.time():
            return None
        subject = payload.get("sub")
        if not isinstance(subject, str) or not hmac.compare_digest(
            str(payload.get("fp", "")), self._fingerprint(subject) or "-"
        ):
            return None
        viewer = self._viewer(subject)
        if viewer is None:
            return None
        return Session(viewer, str(payload["csrf"]), int(payload["exp"]))

    def _viewer(self, subject: str) -> Viewer | None:
        ctx = self._ctx
        find = ctx.records.keys.find
        if subject == "admin":
            return Viewer(ADMIN_ACTOR, None, is_admin=True, is_approver=True, find_key=find)
        key = ctx.keys.get(subject)
        if key is None:
            return None
        return Viewer(
            key.id, key, is_admin=key.has(ADMIN), is_approver=key.has(APPROVER) or key.has(ADMIN),
            find_key=find,
        )  # fmt: skip

    def _fingerprint(self, subject: str) -> str | None:
        """A short digest of the credential the subject signed in with (None: it has none
        now), so a new admin token or a rotated key ends older sessions."""
        if subject == "admin":
            credential = self._ctx.admin_token_digest
        else:
            credential = self._ctx.keys.digest_of(subject)
        if credential is None:
            return None
        return hmac.new(self._secret, credential.encode(), hashlib.sha256).hexdigest()[:32]

    def _encode(self, payload: dict[str, Any]) -> str:
        body = _b64(orjson.dumps(payload))
        return f"{body}.{self._mac(body)}"

    def _decode(self, cookie: str) -> dict[str, Any] | None:
        body, _, mac = cookie.partition(".")
        if not mac or not hmac.compare_digest(mac, self._mac(body)):
            return None
        try:
            payload = orjson.loads(_unb64(body))
        except (ValueError, orjson.JSONDecodeError):
            return None
        return payload if isinstance(payload, dict) else None

    def _mac(self, body: str) -> str:
        return hmac.new(self._secret, body.encode(), hashlib.sha256).hexdigest()


def csrf_matches(session: Session, presented: str | None) -> bool:
    return presented is not None and hmac.compare_digest(session.csrf, presented)
