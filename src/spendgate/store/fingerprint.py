"""A fingerprint of the runtime records (budgets, rate limits, prices, keys, approval
decisions): when another replica changes one of them, the fingerprint read here changes too.

One small query, run by each replica every half second (``records.watch``), never per
request: counts and the newest change of each table. Every change of these records moves one
of them: a budget or rate limit created or changed (``updated_at``) or deleted (the count), a
price row added or deleted (ids are never reused), a key created, rotated or revoked, an
approval decided, consumed or expired (each writes an ``approval_events`` row).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, func, select

from spendgate.store import schema

__all__ = ["records_fingerprint"]


def records_fingerprint(connection: Connection) -> tuple[Any, ...]:
    policies, limits, prices, keys, events = (
        schema.budget_policies,
        schema.rate_limits,
        schema.pricing_rows,
        schema.api_keys,
        schema.approval_events,
    )
    query = select(
        select(func.count()).select_from(policies).scalar_subquery(),
        select(func.max(policies.c.updated_at)).scalar_subquery(),
        select(func.count()).select_from(limits).scalar_subquery(),
        select(func.max(limits.c.updated_at)).scalar_subquery(),
        select(func.count()).select_from(prices).scalar_subquery(),
        select(func.max(prices.c.id)).scalar_subquery(),
        select(func.count()).select_from(keys).scalar_subquery(),
        select(func.max(keys.c.created_at)).scalar_subquery(),
        select(func.max(keys.c.revoked_at)).scalar_subquery(),
        select(func.max(keys.c.rotated_at)).scalar_subquery(),
        select(func.max(events.c.id)).scalar_subquery(),
    )
    return tuple(connection.execute(query).one())
