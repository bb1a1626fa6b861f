"""The access log: one line per proxied request on the logger ``spendgate.access`` (INFO),
written when the request is finished (a stream: when it ended).

Off unless asked for (``spendgate serve --access-log``): the proxy checks ``enabled()`` (the
logging module's cached level check) and builds nothing when it is off. Never a credential,
a prompt or an answer: ids, models, status, latency, tokens and cost.
"""

from __future__ import annotations

import logging
from decimal import Decimal

from spendgate.domain.pricing import Usage
from spendgate.logs import FIELDS

__all__ = ["enabled", "log_request"]

log = logging.getLogger("spendgate.access")

_COST_QUANTUM = Decimal("0.00000001")


def enabled() -> bool:
    return log.isEnabledFor(logging.INFO)


def log_request(
    *,
    route: str,
    status: int,
    latency_s: float,
    decision_id: str | None,
    key_id: str | None,
    requested: str | None,
    actual: str | None,
    action: str | None,
    usage: Usage | None,
    cost_usd: Decimal | None,
) -> None:
    """``200 /v1/chat/completions decision=… key=alice gpt-4o → gpt-4o-mini degrade 12.3 ms
    12 in / 41 out $0.0000258``; what a request never reached (a key, a decision, a served
    model) is left out of the text, and null in the JSON fields."""
    latency_ms = round(latency_s * 1000, 1)
    parts = [str(status), route]
    if decision_id is not None:
        parts.append(f"decision={decision_id}")
    if key_id is not None:
        parts.append(f"key={key_id}")
    if requested is not None:
        parts.append(f"{requested} → {actual or '—'}")
    if action is not None:
        parts.append(action)
    parts.append(f"{latency_ms} ms")
    cost = None if cost_usd is None else cost_usd.quantize(_COST_QUANTUM).normalize()
    if usage is not None:
        parts.append(f"{usage.input_tokens} in / {usage.output_tokens} out")
        parts.append("unpriced" if cost is None else f"${cost:f}")
    fields = {
        "route": route,
        "status": status,
        "decision_id": decision_id,
        "key_id": key_id,
        "requested_model": requested,
        "actual_model": actual,
        "action": action,
        "latency_ms": latency_ms,
        "input_tokens": None if usage is None else usage.input_tokens,
        "output_tokens": None if usage is None else usage.output_tokens,
        "cost_usd": None if cost is None else float(cost),
    }
    log.info(" ".join(parts), extra={FIELDS: fields})
