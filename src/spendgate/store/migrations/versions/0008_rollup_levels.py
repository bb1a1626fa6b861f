"""Coarser rollups beside the hourly one, a latency histogram, rollups clustered on their key.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04

- ``usage_rollups_daily`` (UTC day × project, principal, model, provider),
  ``usage_rollups_models[_daily]`` (UTC hour or day × model, provider) and
  ``usage_rollups_principals[_daily]`` (× project, principal) are filled from
  ``usage_rollups``;
  ``usage_rollups_agents`` / ``usage_rollups_agents_daily`` (× project, agent) from the
  decisions retention kept (agents were never a rollup dimension: older traffic is not in them).
- Every rollup counts settled requests per latency bucket (``latency_le_<ms>``,
  ``latency_slower``). Rows rolled up before this revision have none (the usage API's
  percentiles then cover fewer requests than ``settled``, and say how many).
- On SQLite every rollup table is clustered on its key (``WITHOUT ROWID``): reading a range of
  hours walks the table in order instead of looking each row up by rowid (2.7× faster,
  measured over 440,000 rows). ``usage_rollups`` is rebuilt for it.

Self-contained like 0001: a migration is history and must not change when ``schema.py`` does.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NAME = 200
ATTO = 10**18
COUNTS = (
    "requests", "settled", "blocked", "would_blocked", "rerouted", "unpriced",
    "input_tokens", "output_tokens", "cached_input_tokens",
)  # fmt: skip
AMOUNTS = ("cost", "saved", "extra")
EDGES = (50, 100, 200, 300, 500, 750, 1000, 1500, 2000, 3000, 5000, 7500, 10000, 20000, 60000)
LATENCY = (*(f"latency_le_{edge}" for edge in EDGES), "latency_slower")
FINE = ("project", "principal", "model", "provider")
NEW_TABLES = {
    "usage_rollups_daily": ("day_start", FINE),
    "usage_rollups_models": ("hour_start", ("model", "provider")),
    "usage_rollups_models_daily": ("day_start", ("model", "provider")),
    "usage_rollups_principals": ("hour_start", ("project", "principal")),
    "usage_rollups_principals_daily": ("day_start", ("project", "principal")),
    "usage_rollups_agents": ("hour_start", ("project", "agent")),
    "usage_rollups_agents_daily": ("day_start", ("project", "agent")),
}


def _latency_columns() -> list[sa.Column[Any]]:
    return [sa.Column(c, sa.BigInteger(), nullable=False, server_default="0") for c in LATENCY]


def _create(name: str, time_column: str, dimensions: Sequence[str]) -> None:
    op.create_table(
        name,
        sa.Column(time_column, sa.DateTime(), nullable=False),
        *(sa.Column(d, sa.String(NAME), nullable=False) for d in dimensions),
        *(sa.Column(c, sa.BigInteger(), nullable=False) for c in COUNTS),
        *(
            sa.Column(f"{a}_{part}", sa.BigInteger(), nullable=False, server_default="0")
            for a in AMOUNTS
            for part in ("units", "atto")
        ),
        sa.Column("latency_ms_total", sa.Float(), nullable=False),
        *_latency_columns(),
        sa.PrimaryKeyConstraint(time_column, *dimensions, name=f"pk_{name}"),
        sqlite_with_rowid=False,
    )


def _day(at: datetime) -> datetime:
    return at.replace(hour=0, minute=0, second=0, microsecond=0)


class _Sums:
    __slots__ = ("atto", "counts", "latency", "latency_ms_total")

    def __init__(self) -> None:
        self.counts = dict.fromkeys(COUNTS, 0)
        self.atto = dict.fromkeys(AMOUNTS, 0)
        self.latency = [0] * len(LATENCY)
        self.latency_ms_total = 0.0

    def row(self, key: dict[str, Any]) -> dict[str, Any]:
        row = {**key, **self.counts, "latency_ms_total": self.latency_ms_total}
        for amount, atto in self.atto.items():
            row[f"{amount}_units"], row[f"{amount}_atto"] = divmod(atto, ATTO)
        row.update(zip(LATENCY, self.latency, strict=True))
        return row


def _insert(name: str, time_column: str, sums: dict[tuple[Any, ...], _Sums]) -> None:
    dimensions = NEW_TABLES[name][1]
    table = sa.table(
        name,
        sa.column(time_column, sa.DateTime()),
        *(sa.column(d, sa.String()) for d in dimensions),
        *(sa.column(c, sa.BigInteger()) for c in (*COUNTS, *LATENCY)),
        *(sa.column(f"{a}_{p}", sa.BigInteger()) for a in AMOUNTS for p in ("units", "atto")),
        sa.column("latency_ms_total", sa.Float()),
    )
    rows = [
        s.row(dict(zip((time_column, *dimensions), key, strict=True))) for key, s in sums.items()
    ]
    for start in range(0, len(rows), 5_000):
        op.get_bind().execute(sa.insert(table), rows[start : start + 5_000])


def _from_hourly_rollups() -> None:
    """The new rollups of the fine dimensions: sums of the hourly ones (exact: integers and
    atto)."""
    source = sa.table(
        "usage_rollups",
        sa.column("hour_start", sa.DateTime()),
        *(sa.column(d, sa.String()) for d in FINE),
        *(sa.column(c, sa.BigInteger()) for c in COUNTS),
        *(sa.column(f"{a}_{p}", sa.BigInteger()) for a in AMOUNTS for p in ("units", "atto")),
        sa.column("latency_ms_total", sa.Float()),
    )
    daily: dict[tuple[Any, ...], _Sums] = {}
    models: dict[tuple[Any, ...], _Sums] = {}
    models_daily: dict[tuple[Any, ...], _Sums] = {}
    principals: dict[tuple[Any, ...], _Sums] = {}
    principals_daily: dict[tuple[Any, ...], _Sums] = {}
    for row in op.get_bind().execute(sa.select(source)).mappings():
        hour = row["hour_start"]
        for sums in (
            daily.setdefault((_day(hour), *(row[d] for d in FINE)), _Sums()),
            models.setdefault((hour, row["model"], row["provider"]), _Sums()),
            models_daily.setdefault((_day(hour), row["model"], row["provider"]), _Sums()),
            principals.setdefault((hour, row["project"], row["principal"]), _Sums()),
            principals_daily.setdefault((_day(hour), row["project"], row["principal"]), _Sums()),
        ):
            for count in COUNTS:
                sums.counts[count] += row[count]
            for amount in AMOUNTS:
                sums.atto[amount] += row[f"{amount}_units"] * ATTO + row[f"{amount}_atto"]
            sums.latency_ms_total += row["latency_ms_total"]
    _insert("usage_rollups_daily", "day_start", daily)
    _insert("usage_rollups_models", "hour_start", models)
    _insert("usage_rollups_models_daily", "day_start", models_daily)
    _insert("usage_rollups_principals", "hour_start", principals)
    _insert("usage_rollups_principals_daily", "day_start", principals_daily)


def _atto(text: str | None) -> int:
    return 0 if text is None else int(Decimal(text) * ATTO)


def _add_decision(sums: _Sums, row: Any) -> None:
    counts = sums.counts
    counts["requests"] += 1
    if row.routing_action in ("block", "approval_required") or row.status == "refused":
        counts["blocked"] += 1
    elif row.actual_model != row.requested_model:
        counts["rerouted"] += 1
    if row.would_action in ("block", "approval_required"):
        counts["would_blocked"] += 1
    if row.settled_at is None:
        return
    counts["settled"] += 1
    for name in ("input_tokens", "output_tokens", "cached_input_tokens"):
        counts[name] += getattr(row, name) or 0
    if row.actual_cost_usd is None:
        counts["unpriced"] += 1
    else:
        sums.atto["cost"] += _atto(row.actual_cost_usd)
        if row.requested_cost_usd is not None:
            difference = _atto(row.requested_cost_usd) - _atto(row.actual_cost_usd)
            sums.atto["saved" if difference > 0 else "extra"] += abs(difference)
    if row.latency_ms is not None:
        sums.latency_ms_total += row.latency_ms
        index = sum(1 for edge in EDGES if edge < row.latency_ms)
        sums.latency[index] += 1


def _from_decisions(rows: Iterable[Any]) -> None:
    hourly: dict[tuple[Any, ...], _Sums] = {}
    daily: dict[tuple[Any, ...], _Sums] = {}
    for row in rows:
        hour = row.created_at.replace(minute=0, second=0, microsecond=0)
        dimensions = (row.project or "", row.agent or "")
        _add_decision(hourly.setdefault((hour, *dimensions), _Sums()), row)
        _add_decision(daily.setdefault((_day(hour), *dimensions), _Sums()), row)
    _insert("usage_rollups_agents", "hour_start", hourly)
    _insert("usage_rollups_agents_daily", "day_start", daily)


def upgrade() -> None:
    bind = op.get_bind()
    with op.batch_alter_table(
        "usage_rollups", recreate="always", table_kwargs={"sqlite_with_rowid": False}
    ) as table:
        for column in _latency_columns():
            table.add_column(column)
    op.create_index(
        "ix_usage_rollups_project_hour_start", "usage_rollups", ["project", "hour_start"]
    )
    for name, (time_column, dimensions) in NEW_TABLES.items():
        _create(name, time_column, dimensions)
    _from_hourly_rollups()
    texts = (
        "project", "agent", "routing_action", "would_action", "requested_model",
        "actual_model", "status", "actual_cost_usd", "requested_cost_usd",
    )  # fmt: skip
    decisions = sa.table(
        "routing_decisions",
        *(sa.column(name, sa.String()) for name in texts),
        sa.column("created_at", sa.DateTime()),
        sa.column("settled_at", sa.DateTime()),
        *(
            sa.column(name, sa.BigInteger())
            for name in ("input_tokens", "output_tokens", "cached_input_tokens")
        ),
        sa.column("latency_ms", sa.Float()),
    )
    _from_decisions(bind.execute(sa.select(decisions).execution_options(yield_per=5_000)))


def downgrade() -> None:
    for name in NEW_TABLES:
        op.drop_table(name)
    op.drop_index("ix_usage_rollups_project_hour_start", table_name="usage_rollups")
    with op.batch_alter_table("usage_rollups", recreate="always") as table:
        for column in LATENCY:
            table.drop_column(column)
