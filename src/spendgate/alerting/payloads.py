"""What a webhook receives: the JSON payloads of alert and approval events, or a Slack message.

The body is encoded once, when the event is written to the outbox, and sent byte for byte on
every attempt, so its signature and its content never change between retries. Each webhook
gets the events it subscribed to (``kinds``: alert kinds and approval events; every event when
unset) at or above its ``min_severity`` (approval events have none and are not filtered by it).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import orjson

from spendgate.config.alerts import AlertsSpec, WebhookSpec
from spendgate.domain.alerts import Severity
from spendgate.store.alerts import ALERT_OPENED
from spendgate.store.outbox import OutboxItem
from spendgate.store.records import Alert, Approval, ApprovalEvent

__all__ = [
    "APPROVAL_DECIDED",
    "APPROVAL_REQUESTED",
    "Announcer",
    "alert_payload",
    "approval_payload",
]

APPROVAL_REQUESTED = "approval.requested"
APPROVAL_DECIDED = "approval.decided"

# Approval events worth telling: a request waits for somebody, or somebody decided it.
_APPROVAL_EVENTS = {
    "requested": APPROVAL_REQUESTED,
    "approved": APPROVAL_DECIDED,
    "denied": APPROVAL_DECIDED,
}
# Renders a payload as a Slack message, linking to the console when its address is known.
_Text = Callable[[dict[str, Any], str | None], str]
_ICONS = {Severity.INFO: ":information_source:", Severity.WARNING: ":warning:",
          Severity.CRITICAL: ":rotating_light:"}  # fmt: skip


def _time(at: datetime | None) -> str | None:
    return None if at is None else at.isoformat().replace("+00:00", "Z")


def alert_payload(alert: Alert, event: str) -> dict[str, Any]:
    return {
        "event": event,
        "alert": {
            "id": alert.id,
            "kind": alert.alert_kind,
            "severity": alert.severity,
            "state": alert.state.value,
            "scope": alert.scope,
            "tenant": alert.tenant,
            "summary": alert.summary,
            "reason": alert.reason,
            "recommended_action": alert.recommended_action,
            "occurrences": alert.occurrences,
            "first_seen": _time(alert.first_seen),
            "last_seen": _time(alert.last_seen),
            "resolved_at": _time(alert.resolved_at),
        },
    }


def approval_payload(approval: Approval, event: ApprovalEvent) -> dict[str, Any]:
    return {
        "event": _APPROVAL_EVENTS[event.event],
        "approval": {
            "id": approval.id,
            "state": event.event if event.event != "requested" else "pending",
            "policy_id": approval.policy_id,
            "requester": approval.requester,
            "project": approval.project,
            "member": approval.member,
            "reason": approval.reason,
            "amount": None if approval.amount is None else str(approval.amount),
            "session_id": approval.session_id,
            "context": approval.context,
            "created_at": _time(approval.created_at),
            "expires_at": _time(approval.expires_at),
            "decided_by": event.actor if event.event != "requested" else None,
            "decided_at": _time(event.at) if event.event != "requested" else None,
            "scope": approval.scope.value if approval.scope else None,
            "until": _time(approval.until),
            "note": approval.note,
        },
    }


class Announcer:
    """Builds the outbox rows of an event for every webhook that wants it."""

    def __init__(self, spec: AlertsSpec) -> None:
        self._hooks = spec.all_webhooks()
        self._console = spec.console_url.rstrip("/") if spec.console_url else None

    @property
    def hooks(self) -> list[WebhookSpec]:
        return list(self._hooks)

    def alert(self, alert: Alert, event: str) -> Sequence[OutboxItem]:
        rank = Severity(alert.severity).rank
        wanted = [
            hook
            for hook in self._hooks
            if (hook.kinds is None or alert.alert_kind in hook.kinds)
            and rank >= hook.min_severity.rank
        ]
        if not wanted:
            return ()
        payload = alert_payload(alert, event)
        return [
            OutboxItem(hook.id, event, alert.id, self._encode(hook, payload, _alert_text))
            for hook in wanted
        ]

    def approval(self, approval: Approval, event: ApprovalEvent) -> Sequence[OutboxItem]:
        name = _APPROVAL_EVENTS.get(event.event)
        if name is None:
            return ()
        wanted = [hook for hook in self._hooks if hook.kinds is None or name in hook.kinds]
        if not wanted:
            return ()
        payload = approval_payload(approval, event)
        return [
            OutboxItem(hook.id, name, approval.id, self._encode(hook, payload, _approval_text))
            for hook in wanted
        ]

    def _encode(self, hook: WebhookSpec, payload: dict[str, Any], text: _Text) -> bytes:
        if hook.format == "slack":
            return orjson.dumps({"text": text(payload, self._console)})
        return orjson.dumps(payload)


def _link(console: str | None, path: str, label: str) -> str:
    return "" if console is None else f"\n<{console}/{path}|{label}>"


def _alert_text(payload: dict[str, Any], console: str | None) -> str:
    alert = payload["alert"]
    if payload["event"] == ALERT_OPENED:
        icon = _ICONS[Severity(alert["severity"])]
        seen = (
            f"\nSeen {alert['occurrences']:,} times since {alert['first_seen']}."
            if alert["occurrences"] > 1
            else ""
        )
        head = f"{icon} *{alert['severity'].upper()}* {alert['summary']}"
        body = f"{alert['reason']}\n*Action:* {alert['recommended_action']}{seen}"
    else:
        head = f":white_check_mark: *RESOLVED* {alert['summary']}"
        body = f"Cleared at {alert['resolved_at']} after {alert['occurrences']:,} occurrence(s)."
    return f"{head}\n{body}{_link(console, 'alerts/' + alert['id'], 'Open in the console')}"


def _approval_text(payload: dict[str, Any], console: str | None) -> str:
    approval = payload["approval"]
    cost = (approval["context"] or {}).get("estimated_cost_usd")
    if payload["event"] == APPROVAL_REQUESTED:
        head = (
            f":raised_hand: *Approval requested* by {approval['requester']} "
            f"for budget {approval['policy_id']} ({approval['member']})"
        )
        details = [f"Reason: {approval['reason'] or '(none given)'}"]
        if approval["amount"] is not None:
            details.append(f"Asked for {approval['amount']} beyond the limit")
        if cost is not None:
            details.append(f"Blocked request's estimated cost: ≤ ${cost}")
        details.append(f"Expires at {approval['expires_at']}")
        body = "\n".join(details)
    else:
        verdict = approval["state"]
        head = (
            f"*Approval {verdict}* by {approval['decided_by']}: budget "
            f"{approval['policy_id']} for {approval['requester']}"
        )
        body = approval["note"] or ""
        if verdict == "approved" and approval["scope"]:
            body = f"Scope: {approval['scope']}" + (f"\n{body}" if body else "")
    return f"{head}\n{body}{_link(console, 'approvals/' + approval['id'], 'Open in the console')}"
