"""The ledger watch: an alert while this replica cannot reach the shared ledger.

It cannot be one of the detector's rules: the detector runs on the replica holding the alerts
lease, and that lease lives in the same Redis as the ledger, so while Redis is away no replica
runs the detector or the webhook notifier. The watch therefore runs on every replica. The
request path only counts (``SharedLedger.unchecked`` / ``refused``) and sets an event (when
availability changes, and per request affected); the watch does the writing, off the request
path, at most once a second:

* the ledger lost and a request admitted unchecked (``open``) or refused (``closed``): it opens
  the ``ledger_unavailable`` alert (or counts on the one another replica opened: one alert
  per ledger and outage), then counts such requests;
* while it is lost, it runs a webhook notifier of its own, so the alert is delivered during
  the outage (each delivery is claimed in the database before it is sent: the leased
  notifier of a replica that still reaches Redis never sends it too);
* the ledger back: it resolves the alert, sends the resolution, and stops its notifier.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import UTC, datetime

from spendgate.alerting.detector import Findings, Seen
from spendgate.alerting.notifier import WebhookNotifier
from spendgate.alerting.service import AlertBook
from spendgate.domain.alerts import ledger_condition
from spendgate.gateway.service import stop_task
from spendgate.ledger.base import LedgerFailure
from spendgate.ledger.shared import SharedLedger
from spendgate.store.alerts import AlertRepository

__all__ = ["LedgerWatch"]

log = logging.getLogger("spendgate.alerts")

# Passes are at least this far apart: a burst of affected requests (each wakes the watch) is
# one write, not one per request.
_PASS_GAP_S = 1.0


class LedgerWatch:
    def __init__(
        self,
        ledger: SharedLedger,
        name: str,
        book: AlertBook,
        repository: AlertRepository,
        every_s: float,
        notifier: Callable[[], WebhookNotifier] | None = None,
    ) -> None:
        self.ledger = ledger
        self.name = name
        self._book = book
        self._repository = repository
        self._every_s = every_s
        self._make_notifier = notifier
        self._notifier: WebhookNotifier | None = None
        self._key = ledger_condition(name, admitting=True).dedupe_key
        self._raised = False  # an unresolved alert of ours (or of a replica before us)
        self._counted = 0  # requests counted on it so far
        self._woken = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        # An alert left open by a replica that stopped during an outage: resolved once this
        # one finds the ledger reachable, counted on if not.
        try:
            unresolved = await asyncio.to_thread(self._repository.unresolved)
        except Exception:  # the database away at start must not stop the gateway starting
            log.exception("ledger watch: reading the open alerts failed")
            unresolved = []
        self._raised = any(alert.dedupe_key == self._key for alert in unresolved)
        self.ledger.on_change = self._woken.set
        self._woken.set()  # the first pass at once: the ledger may be away already
        self._task = asyncio.create_task(self._run(), name="spendgate-ledger-watch")

    async def stop(self) -> None:
        await stop_task(self._task)
        self._task = None
        await self._stop_notifier()

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._woken.wait(), self._every_s)
            self._woken.clear()
            try:
                wrote = await self.check()
            except Exception:  # the database may be away too: try again at the next pass
                log.exception("ledger watch: writing the ledger alert failed; retrying")
                wrote = True
            if wrote:  # a pass that wrote nothing (the ledger lost, no request yet) waits not
                await asyncio.sleep(_PASS_GAP_S)

    async def check(self) -> bool:
        """One pass: open, count or resolve the alert as the ledger's state says; whether it
        wrote."""
        ledger = self.ledger
        admitting = ledger.failure is LedgerFailure.OPEN
        requests = ledger.unchecked if admitting else ledger.refused
        more = requests - self._counted
        now = datetime.now(UTC)
        condition = ledger_condition(self.name, admitting=admitting)
        if not ledger.available:
            # Raised by the first request it affects (an idle outage harms nothing: the log
            # and /healthz tell it), counting every one.
            if more > 0:
                seen = Seen(condition, None, more, new=not self._raised)
                await asyncio.to_thread(self._book.write, Findings([seen]), now)
                self._raised, self._counted = True, requests
                await self._start_notifier()
                return True
            return False
        if not self._raised:
            self._counted = requests
            return False
        if more > 0:
            # Affected since the last pass: counted on the alert if it is still open, never
            # opening it again (another replica may have resolved it: the outage is over).
            await asyncio.to_thread(self._repository.count_on, self._key, more, now=now)
        await asyncio.to_thread(self._book.write, Findings(cleared=[self._key]), now)
        self._raised, self._counted = False, requests
        try:
            if self._notifier is not None:
                await self._notifier.send_due()  # the resolution, at once
        finally:
            # Whatever is still pending, the leased notifier sends: Redis is back.
            await self._stop_notifier()
        return True

    async def _start_notifier(self) -> None:
        if self._make_notifier is None:
            return
        if self._notifier is None:
            self._notifier = self._make_notifier()
            await self._notifier.start()
        self._notifier.wake()

    async def _stop_notifier(self) -> None:
        notifier, self._notifier = self._notifier, None
        if notifier is not None:
            await notifier.stop()
