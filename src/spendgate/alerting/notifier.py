"""The webhook notifier: sends the outbox's deliveries until each receiver takes them.

A delivery is POSTed with its stored body and the headers ``x-spendgate-event``,
``x-spendgate-delivery-id`` (the same on every attempt) and, when its webhook has a secret,
``x-spendgate-signature: sha256=<hex HMAC-SHA256 of the body>``. A 2xx answer delivers it. A
timeout, a connection error, a 5xx, a 408 or a 429 is retried after a delay that doubles from
``retry_first_seconds`` up to ``retry_max_seconds`` (±10% jitter, so receivers coming back are
not hit by every sender at once), until ``give_up_after`` since it was written. Any other
answer (a 3xx, a 4xx: the receiver refused it, and sending it again will not change that)
fails it at once. Each failed attempt is logged at WARNING, giving up at ERROR.

It runs as a task of its own with its own HTTP session; database work goes to a thread. A slow
or dead receiver therefore delays only other deliveries, never a proxied request.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import random
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from enum import StrEnum

import aiohttp

from spendgate.alerting.payloads import Announcer
from spendgate.config.alerts import AlertsSpec, WebhookSpec
from spendgate.store.outbox import WebhookOutbox
from spendgate.store.records import Delivery, DeliveryState

__all__ = ["DeliveryOutcome", "WebhookNotifier", "signature"]

log = logging.getLogger("spendgate.alerts")

# How often the outbox is looked at when nothing wakes the notifier, for approval events (and
# anything written by another process); retries are awaited until they are due.
POLL_SECONDS = 2.0
# Deliveries sent at once.
CONCURRENCY = 8
_RETRY_STATUSES = frozenset({408, 429})


def signature(secret: str, body: bytes) -> str:
    """The ``x-spendgate-signature`` header's value."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class DeliveryOutcome(StrEnum):
    DELIVERED = "delivered"
    RETRY = "retry"  # this attempt failed, another will follow
    FAILED = "failed"  # given up


class WebhookNotifier:
    def __init__(
        self,
        outbox: WebhookOutbox,
        spec: AlertsSpec,
        environ: Mapping[str, str],
    ) -> None:
        self._outbox = outbox
        self._spec = spec
        self._hooks = {hook.id: hook for hook in spec.all_webhooks()}
        self._environ = environ
        self._announcer = Announcer(spec)
        # Told each attempt's outcome (``DeliveryOutcome``): the gateway counts them.
        self.on_attempt: Callable[[str], None] = _ignore
        self._woken = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        """Start sending; may follow a ``stop`` (the alerts lease lost while Redis was away,
        then taken again)."""
        self._stopping = False
        self._woken.clear()
        await asyncio.to_thread(self._outbox.start_relay)
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self._spec.delivery_timeout_seconds),
            headers={"user-agent": "spendgate-webhooks"},
        )
        self._task = asyncio.create_task(self._run(), name="spendgate-webhooks")

    def wake(self) -> None:
        """Something was written to the outbox: look now rather than at the next poll."""
        self._woken.set()

    async def stop(self) -> None:
        """Stop after the attempts in progress; what is still pending stays in the outbox."""
        self._stopping = True
        self._woken.set()
        if self._task is not None:
            await self._task
            self._task = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _run(self) -> None:
        while not self._stopping:
            wait = POLL_SECONDS
            try:
                next_due = await self.send_due()
                if next_due is not None:
                    wait = min(wait, (next_due - datetime.now(UTC)).total_seconds())
            except Exception:
                log.exception("webhooks: sending the outbox failed; trying again shortly")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._woken.wait(), max(wait, 0.0))
            self._woken.clear()

    async def send_due(self) -> datetime | None:
        """Relay new approval events, then attempt every due delivery; returns when the next
        pending one is due (None: none is pending). Idle, it is one query."""
        events_waiting, next_due = await asyncio.to_thread(self._outbox.pending_work)
        if events_waiting:
            await asyncio.to_thread(self._outbox.relay_approval_events, self._announcer.approval)
        elif next_due is None or next_due > datetime.now(UTC):
            return next_due
        due = await asyncio.to_thread(self._outbox.due, limit=100)
        limit = asyncio.Semaphore(CONCURRENCY)

        # Past this, an attempt that was never recorded (its process died) is due again.
        claimed_for = timedelta(seconds=self._spec.delivery_timeout_seconds + 30)

        async def attempt(delivery: Delivery) -> None:
            async with limit:
                until = datetime.now(UTC) + claimed_for
                if await asyncio.to_thread(self._outbox.claim, delivery.id, until=until):
                    await self._attempt(delivery)

        await asyncio.gather(*(attempt(delivery) for delivery in due))
        return (await asyncio.to_thread(self._outbox.pending_work))[1]

    async def _attempt(self, delivery: Delivery) -> None:
        hook = self._hooks.get(delivery.webhook_id)
        if hook is None:
            await self._record(delivery, DeliveryOutcome.FAILED, None, "webhook not configured")
            return
        status: int | None = None
        try:
            status = await self._post(hook, delivery)
        except (aiohttp.ClientError, TimeoutError, OSError) as error:
            problem = f"{type(error).__name__}: {error}".rstrip(": ") or "timed out"
            await self._record(delivery, DeliveryOutcome.RETRY, None, problem)
            return
        if 200 <= status < 300:
            await self._record(delivery, DeliveryOutcome.DELIVERED, status, None)
        elif status >= 500 or status in _RETRY_STATUSES:
            await self._record(delivery, DeliveryOutcome.RETRY, status, f"HTTP {status}")
        else:
            await self._record(delivery, DeliveryOutcome.FAILED, status, f"HTTP {status}")

    async def _post(self, hook: WebhookSpec, delivery: Delivery) -> int:
        assert self._session is not None
        headers = {
            "content-type": "application/json",
            "x-spendgate-event": delivery.event,
            "x-spendgate-delivery-id": delivery.id,
        }
        secret = self._environ.get(hook.secret_env) if hook.secret_env else None
        if secret:
            headers["x-spendgate-signature"] = signature(secret, delivery.body)
        async with self._session.post(
            hook.url, data=delivery.body, headers=headers, allow_redirects=False
        ) as response:
            await response.read()
            return response.status

    async def _record(
        self, delivery: Delivery, outcome: DeliveryOutcome, status: int | None, error: str | None
    ) -> None:
        now = datetime.now(UTC)
        state = DeliveryState.PENDING
        next_at = None
        if outcome == DeliveryOutcome.DELIVERED:
            state = DeliveryState.DELIVERED
        elif outcome == DeliveryOutcome.RETRY:
            next_at = now + self._delay(delivery.attempts)
            if next_at - delivery.created_at > self._spec.give_up_after:
                outcome, state = DeliveryOutcome.FAILED, DeliveryState.FAILED
        else:
            state = DeliveryState.FAILED
        self.on_attempt(outcome)
        if outcome == DeliveryOutcome.RETRY:
            log.warning(
                "webhook %s: delivery %s (%s) failed (%s); retrying at %s",
                delivery.webhook_id, delivery.id, delivery.event, error,
                next_at.isoformat(timespec="seconds") if next_at else "once due",
            )  # fmt: skip
        elif outcome == DeliveryOutcome.FAILED:
            log.error(
                "webhook %s: delivery %s (%s) given up after %d attempt(s): %s",
                delivery.webhook_id, delivery.id, delivery.event, delivery.attempts + 1, error,
            )  # fmt: skip
        await asyncio.to_thread(
            self._outbox.record_attempt,
            delivery.id,
            state=state,
            status=status,
            error=error,
            next_attempt_at=next_at,
            now=now,
        )

    def _delay(self, attempts: int) -> timedelta:
        spec = self._spec
        base = min(spec.retry_first_seconds * 2 ** min(attempts, 30), spec.retry_max_seconds)
        return timedelta(seconds=base * random.uniform(0.9, 1.1))


def _ignore(outcome: str) -> None:
    return None
