"""Request headers the gateway reads and the ``x-spendgate-*`` headers it answers with."""

from __future__ import annotations

from dataclasses import dataclass

from spendgate.domain.budgets import BudgetStatus, most_severe
from spendgate.domain.routing import RoutingDecision, RoutingMode, TaskClass

__all__ = ["HeaderError", "RequestHeaders", "decision_headers"]

_MODES = {mode.value: mode for mode in RoutingMode}
_TASKS = {task.value: task for task in TaskClass}


class HeaderError(ValueError):
    def __init__(self, header: str, value: str, allowed: list[str]) -> None:
        super().__init__(f"{header}: {value!r} is not one of {', '.join(allowed)}")
        self.header = header


@dataclass(frozen=True, slots=True)
class RequestHeaders:
    """The ``x-spendgate-*`` request headers, validated."""

    session_id: str | None = None
    agent_id: str | None = None
    task_class: TaskClass = TaskClass.PRIMARY_INTERACTIVE
    routing_mode: RoutingMode | None = None

    @classmethod
    def parse(cls, headers: dict[str, str]) -> RequestHeaders:
        """``headers`` has lower-case names. Raises ``HeaderError`` for an unknown value."""
        task = headers.get("x-spendgate-task-class")
        mode = headers.get("x-spendgate-routing-mode")
        if task is not None and task not in _TASKS:
            raise HeaderError("x-spendgate-task-class", task, sorted(_TASKS))
        if mode is not None and mode not in _MODES:
            raise HeaderError("x-spendgate-routing-mode", mode, sorted(_MODES))
        return cls(
            session_id=headers.get("x-spendgate-session-id") or None,
            agent_id=headers.get("x-spendgate-agent-id") or None,
            task_class=_TASKS[task] if task else TaskClass.PRIMARY_INTERACTIVE,
            routing_mode=_MODES[mode] if mode else None,
        )


def decision_headers(decision: RoutingDecision) -> list[tuple[bytes, bytes]]:
    """The response headers that tell a client what spendgate decided (DESIGN.md §4)."""
    worst = most_severe(decision.budget_evaluations)
    status = worst.status if worst is not None else BudgetStatus.OK
    upper = decision.estimate.upper_usd
    return [
        (b"x-spendgate-decision-id", decision.id.encode()),
        (b"x-spendgate-model", decision.actual_model.encode()),
        (b"x-spendgate-routing-action", decision.routing_action.value.encode()),
        (b"x-spendgate-recommended-model", decision.recommended_model.encode()),
        (
            b"x-spendgate-estimated-cost-usd",
            b"unpriced" if upper is None else f"{upper:f}".encode(),
        ),
        (b"x-spendgate-budget-status", status.value.encode()),
    ]
