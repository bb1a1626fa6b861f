"""The alert service: runs the detector and the notifier beside the gateway, off the request
path, and writes what the detector finds (``AlertBook``)."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime, timedelta

from spendgate.alerting.detector import AlertDetector, Findings
from spendgate.alerting.notifier import WebhookNotifier
from spendgate.alerting.payloads import Announcer
from spendgate.alerting.relay import OutcomeRelay
from spendgate.governor import SettleObserver
from spendgate.store.alerts import AlertRepository

__all__ = ["AlertBook", "AlertService"]

log = logging.getLogger("spendgate.alerts")

# An event pass runs at most this often: a burst of requests is looked at together.
EVENT_PASS_GAP_SECONDS = 1.0
# More occurrences of alerts already open are written at most this often (a new alert, a
# resolution, is written at once): under steady traffic the database sees a few writes a
# minute, not one per pass.
COUNT_FLUSH_SECONDS = 10.0


class AlertBook:
    """Writes findings: each condition seen opens its alert or counts on it (announced when
    new, or again once the cooldown has passed), each cleared one resolves its alert."""

    def __init__(
        self, repository: AlertRepository, announcer: Announcer, cooldown: timedelta
    ) -> None:
        self._repository = repository
        self._announcer = announcer
        self._cooldown = cooldown

    def write(self, findings: Findings, now: datetime) -> None:
        announce = self._announcer.alert
        for seen in findings.seen:
            condition = seen.condition
            alert, created = self._repository.upsert(
                alert_kind=condition.kind.value,
                severity=condition.severity.value,
                scope=condition.scope,
                summary=condition.summary,
                reason=condition.reason,
                recommended_action=condition.recommended_action,
                dedupe_key=condition.dedupe_key,
                tenant=seen.tenant,
                occurrences=seen.occurrences,
                now=now,
                announce=announce,
                cooldown=self._cooldown,
            )
            if created:
                log.warning("alert %s opened [%s] %s", alert.id, alert.severity, alert.summary)
        for key in findings.cleared:
            if self._repository.resolve_key(key, now=now, announce=announce):
                log.info("alert resolved: %s", key)


class AlertService:
    def __init__(
        self,
        detector: AlertDetector,
        book: AlertBook,
        repository: AlertRepository,
        notifier: WebhookNotifier | None,
        every_s: float,
    ) -> None:
        self.detector = detector
        self._book = book
        self._repository = repository
        self.notifier = notifier
        self._every_s = every_s
        self._woken = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self._counts = Findings()  # occurrences of open alerts, not written yet
        self._flushed = time.monotonic()
        self._evaluating = False
        detector.wake = self._woken.set
        # What the governor reports request outcomes to: the detector, or on replicas the
        # relay that brings every replica's to the detector (``relay_through``).
        self.observer: SettleObserver = detector
        self._relay: OutcomeRelay | None = None

    def relay_through(self, relay: OutcomeRelay) -> None:
        """Several replicas: requests report to ``relay``, and this service (when it runs,
        on one replica) takes every replica's outcomes from it before each pass."""
        self.observer = relay
        self._relay = relay

    @property
    def dropped(self) -> int:
        """Request outcomes the detector never saw (it, or the relay, fell behind)."""
        return self.detector.dropped + (0 if self._relay is None else self._relay.dropped)

    async def start(self) -> None:
        """Take over the open alerts and start; may follow a ``stop`` (a replica that takes
        the alerts lease again)."""
        self._stopping = False
        self.detector.resume(await asyncio.to_thread(self._repository.unresolved))
        if self.notifier is not None:
            await self.notifier.start()
        self._task = asyncio.create_task(self._run(), name="spendgate-alerts")

    async def stop(self) -> None:
        """One last pass over what is queued, then stop (the outbox keeps what is unsent)."""
        self._stopping = True
        self._woken.set()
        if self._task is not None:
            await self._task
            self._task = None
        if self.notifier is not None:
            await self.notifier.stop()

    async def _run(self) -> None:
        next_full = time.monotonic() + self._every_s
        while True:
            timeout = max(0.0, next_full - time.monotonic())
            if self._relay is not None:  # other replicas' requests do not wake this one
                timeout = min(timeout, EVENT_PASS_GAP_SECONDS)
            try:
                await asyncio.wait_for(self._woken.wait(), timeout)
                if not self._stopping:  # gather the rest of a burst
                    await asyncio.sleep(EVENT_PASS_GAP_SECONDS)
            except TimeoutError:
                pass
            self._woken.clear()
            full = time.monotonic() >= next_full
            if full:
                next_full = time.monotonic() + self._every_s
            await self.evaluate(full=full)
            if self._stopping:
                return

    def caught_up(self) -> bool:
        """Every request this process observed so far has been looked at, and the alerts it
        opened are written (read on the event loop this service runs on: a pass takes the
        queue and writes without that loop seeing anything in between). On replicas, what the
        relay holds of the others' requests is not counted."""
        return self.detector.pending == 0 and not self._evaluating

    async def evaluate(self, *, full: bool) -> None:
        self._evaluating = True
        try:
            await self._evaluate(full=full)
        finally:
            self._evaluating = False

    async def _evaluate(self, *, full: bool) -> None:
        if self._relay is not None:
            try:
                self.detector.feed(await self._relay.pull())
            except Exception as error:  # Redis away: this pass sees what it has
                log.warning("alerts: could not take the replicas' request outcomes: %s", error)
        now = datetime.now(UTC)
        try:
            found, counts = self.detector.evaluate(now, full=full).split()
        except Exception:
            log.exception("alerts: evaluation failed")
            return
        self._counts.drop(found.cleared)  # a resolved alert's count must not reopen it
        self._counts.merge(counts)
        if self._counts and (
            self._stopping or time.monotonic() - self._flushed >= COUNT_FLUSH_SECONDS
        ):
            found.merge(self._counts)
            self._counts = Findings()
            self._flushed = time.monotonic()
        if found:
            await self._write(found, now)

    async def _write(self, findings: Findings, now: datetime) -> None:
        try:
            await asyncio.to_thread(self._book.write, findings, now)
        except Exception:
            self.detector.forget(findings)
            log.exception("alerts: writing %d finding(s) failed; retrying at the next pass",
                          len(findings.seen) + len(findings.cleared))  # fmt: skip
            return
        if self.notifier is not None:
            self.notifier.wake()
