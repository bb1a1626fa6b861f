"""Plan a few varied requests with the library API on the built-in demo config.

Run: ``make demo`` (or ``.venv/bin/python examples/plan.py``). Nothing is called upstream:
this shows what spendgate decides and why.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from rich.console import Console
from rich.table import Table

from spendgate import Governor, RequestScopes, RoutingDecision, TaskClass, Usage, load_config

console = Console()

IMAGE = {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}

REQUESTS: list[tuple[str, dict[str, Any], TaskClass]] = [
    (
        "simple question",
        {"model": "gpt-4o", "messages": [{"role": "user", "content": "What is 2 + 2?"}]},
        TaskClass.PRIMARY_INTERACTIVE,
    ),
    (
        "complex reasoning with code",
        {
            "model": "gpt-4o",
            "max_tokens": 2000,
            "messages": [
                {"role": "system", "content": "You are a senior engineer."},
                {
                    "role": "user",
                    "content": "Analyze step by step why this lock-free queue can lose items, "
                    "compare it with a mutex design and prove the fix is correct.\n"
                    "```rust\nfn push(&self, v: T) { let n = Box::new(Node::new(v)); "
                    "self.tail.swap(n, SeqCst); }\n```\n" + "Detailed context. " * 300,
                },
            ],
        },
        TaskClass.PRIMARY_INTERACTIVE,
    ),
    (
        "background summary",
        {
            "model": "gpt-4o",
            "messages": [{"role": "user", "content": "Summarise this log: " + "ok " * 400}],
        },
        TaskClass.AUXILIARY_SUMMARY,
    ),
    (
        "vision + JSON mode",
        {
            "model": "auto",
            "response_format": {"type": "json_object"},
            "messages": [
                {"role": "user", "content": [{"type": "text", "text": "Describe as JSON"}, IMAGE]}
            ],
        },
        TaskClass.PRIMARY_INTERACTIVE,
    ),
    (
        "Czech reasoning prompt",
        {
            "model": "gpt-4o",
            "messages": [
                {
                    "role": "user",
                    "content": "Vysvětli krok za krokem, proč je tento algoritmus správný, "
                    "porovnej ho s alternativou a dokaž jeho složitost.",
                }
            ],
        },
        TaskClass.PRIMARY_INTERACTIVE,
    ),
]


def show(title: str, decision: RoutingDecision) -> None:
    estimate = decision.estimate
    cost = (
        f"${estimate.lower_usd:.6f} – ${estimate.upper_usd:.6f}"
        if estimate.lower_usd is not None and estimate.upper_usd is not None
        else "unpriced"
    )
    console.rule(f"[bold]{title}")
    console.print(
        f"mode [cyan]{decision.mode}[/]  action [magenta]{decision.routing_action}[/]"
        + (f" (would: {decision.would_action})" if decision.would_action else "")
        + f"  requested [bold]{decision.requested_model}[/] → recommended "
        f"[bold]{decision.recommended_model}[/] → actual [bold green]{decision.actual_model}[/]"
        f" on {decision.provider}"
    )
    console.print(f"estimated cost {cost} ({estimate.precision}), "
                  f"tokens ≤ {estimate.tokens_upper}")  # fmt: skip
    terms = ", ".join(
        f"{term.name}={term.contribution:.2f} ({term.detail})"
        for term in decision.complexity.terms
        if term.contribution > 0
    )
    console.print(f"complexity [yellow]{decision.complexity.score:.2f}[/]: {terms or 'none'}")
    if decision.budget_evaluations:
        table = Table("policy", "status", "consumed", "request", "hard limit", box=None)
        for evaluation in decision.budget_evaluations:
            table.add_row(
                evaluation.policy_id,
                evaluation.status.value,
                f"{evaluation.consumed.normalize():,f}",
                f"{(evaluation.request_amount or 0):,}",
                f"{evaluation.hard_limit}",
            )
        console.print(table)
    console.print("reason codes: " + ", ".join(decision.reason_codes))
    for sentence in decision.explanation:
        console.print(f"  • {sentence}")


def main() -> None:
    governor = Governor.from_config(load_config(None))
    scopes = RequestScopes(project="acme", principal="alice", api_key="demo-alice", session="s-1")
    now = datetime.now(UTC)
    for title, body, task_class in REQUESTS:
        show(title, governor.plan(body, scopes, now, task_class=task_class))

    # Keep sending the complex request and watch budget pressure change the decisions:
    # escalation while the budget allows, degrading past the soft limit, then the hard stop.
    console.rule("[bold]budget pressure: the complex request, again and again")
    body, task_class = REQUESTS[1][1], REQUESTS[1][2]
    spent, last = Decimal(0), None
    for attempt in range(1, 1001):
        decision = governor.plan(body, scopes, now, task_class=task_class)
        step = (decision.routing_action, decision.actual_model)
        if step != last:
            console.print(
                f"request {attempt:>4}: {decision.routing_action.value:<17} "
                f"{decision.actual_model or '—':<14} spent so far ${spent:.4f}  "
                f"[dim]{', '.join(decision.reason_codes[1:])}[/]"
            )
            last = step
        if decision.blocked or not governor.reserve(decision).ok:
            break
        usage = Usage(input_tokens=decision.estimate.input_tokens_upper, output_tokens=1500)
        spent += governor.settle(decision, usage) or 0
    show(f"request {attempt}, after spending ${spent:.2f}", decision)


if __name__ == "__main__":
    main()
