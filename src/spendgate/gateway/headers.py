"""Request headers the gateway reads and the ``x-spendgate-*`` headers it answers with."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from spendgate.domain.budgets import BudgetStatus, most_severe
from spendgate.domain.routing import RoutingDecision, RoutingMode, TaskClass
from spendgate.domain.scopes import member_room

__all__ = ["HeaderError", "RequestHeaders", "budget_status", "decision_headers", "mode_headers"]

_MODES = {mode.value: mode for mode in RoutingMode}
_TASKS = {task.value: task for task in TaskClass}


class HeaderError(ValueError):
    def __init__(self, header: str, problem: str) -> None:
        super().__init__(f"{header}: {problem}")
        self.header = header


def _one_of(header: str, value: str, allowed: Collection[str]) -> HeaderError:
    return HeaderError(header, f"{value!r} is not one of {', '.join(sorted(allowed))}")


def _member_id(headers: dict[str, str], header: str, tenant: str | None) -> str | None:
    """An agent or session id: a member within the key's tenant, so its length is bounded by
    what is left of the member's room once the tenant is written before it."""
    value = headers.get(header) or None
    if value is not None and len(value) > (room := member_room(tenant)):
        raise HeaderError(header, f"at most {max(room, 0)} characters with this key")
    return value


def _seconds(headers: dict[str, str], header: str) -> float:
    value = headers.get(header)
    if value is None:
        return 0.0
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not 0 <= seconds < float("inf"):
        raise HeaderError(header, f"{value!r} is not a number of seconds")
    return seconds


@dataclass(frozen=True, slots=True)
class RequestHeaders:
    """The ``x-spendgate-*`` request headers, validated."""

    session_id: str | None = None
    agent_id: str | None = None
    task_class: TaskClass = TaskClass.PRIMARY_INTERACTIVE
    routing_mode: RoutingMode | None = None
    # Seconds to hold the request while the approval it needs is pending (0: answer at once).
    approval_wait: float = 0.0

    @classmethod
    def parse(cls, headers: dict[str, str], tenant: str | None = None) -> RequestHeaders:
        """``headers`` has lower-case names; ``tenant`` is the key's, which agent and session
        ids belong to. Raises ``HeaderError`` for an unknown value or an id too long."""
        task = headers.get("x-spendgate-task-class")
        mode = headers.get("x-spendgate-routing-mode")
        if task is not None and task not in _TASKS:
            raise _one_of("x-spendgate-task-class", task, _TASKS)
        if mode is not None and mode not in _MODES:
            raise _one_of("x-spendgate-routing-mode", mode, _MODES)
        return cls(
            session_id=_member_id(headers, "x-spendgate-session-id", tenant),
            agent_id=_member_id(headers, "x-spendgate-agent-id", tenant),
            task_class=_TASKS[task] if task else TaskClass.PRIMARY_INTERACTIVE,
            routing_mode=_MODES[mode] if mode else None,
            approval_wait=_seconds(headers, "x-spendgate-approval-wait"),
        )


# Said in the response, not only in the decision log: a client that asked to relax the mode
# (say, to dry_run while testing) must not believe it got it.
_RELAX_DENIED_WARNING = (
    "routing mode not relaxed: this API key lacks the override_routing_mode permission"
)


def mode_headers(decision: RoutingDecision) -> tuple[tuple[str, str], ...]:
    """The mode the request ran in, and a warning when the request asked to relax it and its
    key may not (on every response that has a decision, refusals included)."""
    mode = ("x-spendgate-routing-mode", decision.mode.value)
    if "mode_relax_denied" in decision.reason_codes:
        return (mode, ("x-spendgate-warning", f"{_RELAX_DENIED_WARNING} ({decision.mode.value})"))
    return (mode,)


def budget_status(decision: RoutingDecision) -> BudgetStatus:
    """What ``x-spendgate-budget-status`` says: the most severe evaluation's status."""
    worst = most_severe(decision.budget_evaluations)
    return worst.status if worst is not None else BudgetStatus.OK


def decision_headers(decision: RoutingDecision) -> list[tuple[bytes, bytes]]:
    """The response headers that tell a client what spendgate decided."""
    status = budget_status(decision)
    upper = decision.estimate.upper_usd
    return [
        *((name.encode(), value.encode()) for name, value in mode_headers(decision)),
        (b"x-spendgate-decision-id", decision.id.encode()),
        (b"x-spendgate-model", decision.target_model.encode()),
        (b"x-spendgate-routing-action", decision.routing_action.value.encode()),
        (b"x-spendgate-recommended-model", decision.recommended_model.encode()),
        (
            b"x-spendgate-estimated-cost-usd",
            b"unpriced" if upper is None else f"{upper:f}".encode(),
        ),
        (b"x-spendgate-budget-status", status.value.encode()),
    ]
