"""Which deployment of a model serves a request, and in which order the others are tried.

Pure: the caller passes the providers' health and a uniform random draw in [0, 1). A
weighted random pick, not a round-robin counter: it needs no state shared between workers
or replicas (each would keep its own counter), and over many requests each healthy
deployment gets its weight's share of the traffic.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from spendgate.domain.models import Deployment, Model
from spendgate.domain.routing import HealthState

__all__ = ["deployment_order", "healthy_deployments", "pick_weighted"]


def healthy_deployments(model: Model, health: Mapping[str, HealthState]) -> tuple[Deployment, ...]:
    """The model's deployments whose provider is not unhealthy (circuit open and cooling
    down). A degraded one stays: its circuit needs traffic to probe and close again."""
    return tuple(
        d
        for d in model.deployments
        if health.get(d.provider, HealthState.HEALTHY) is not HealthState.UNHEALTHY
    )


def pick_weighted(deployments: Sequence[Deployment], draw: float) -> Deployment:
    """The deployment ``draw`` falls on when [0, 1) is cut in slices as wide as the weights
    (in listed order): each is picked with probability weight / total weight."""
    if not deployments:
        raise ValueError("no deployment to pick from")
    total = sum(d.weight for d in deployments)
    point = min(max(draw, 0.0), 1.0) * total
    running = 0
    for deployment in deployments:
        running += deployment.weight
        if point < running:
            return deployment
    return deployments[-1]  # draw == 1.0 (or rounding): the last slice


def deployment_order(
    model: Model, health: Mapping[str, HealthState], draw: float
) -> tuple[Deployment, ...]:
    """The model's deployments in the order to try them: one picked by weight among the
    healthy ones, then the other healthy ones by weight (heaviest first, then as listed).
    When none is healthy the model is unhealthy: every deployment is kept, picked alike
    (their breakers decide whether a call may go)."""
    if len(model.deployments) == 1:  # the common case: nothing to choose
        return model.deployments
    pool = healthy_deployments(model, health) or model.deployments
    if len(pool) == 1:
        return pool
    chosen = pick_weighted(pool, draw)
    rest = sorted((d for d in pool if d is not chosen), key=lambda d: -d.weight)
    return (chosen, *rest)
