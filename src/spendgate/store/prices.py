"""Runtime and config price overrides (the built-in catalog is bundled data, never stored)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import Engine, delete, select

from spendgate.domain.pricing import PriceSource, PricingRecord
from spendgate.store import schema
from spendgate.store.db import write_engine
from spendgate.store.policy_codec import price_from_row, price_row
from spendgate.store.records import StoredPrice

__all__ = ["PricingRepository"]


class PricingRepository:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._write = write_engine(engine)

    def add(self, record: PricingRecord, *, now: datetime | None = None) -> StoredPrice:
        """Store a price row. Rows are effective-dated, so a new price is a new row."""
        if record.source is PriceSource.CATALOG:
            raise ValueError("catalog prices come from the bundled catalog and are not stored")
        created_at = now or datetime.now(UTC)
        with self._write.begin() as connection:
            result = connection.execute(
                schema.pricing_rows.insert().values(**price_row(record), created_at=created_at)
            )
            key = result.inserted_primary_key
            assert key is not None
            price_id = int(key[0])
        return StoredPrice(id=price_id, record=record, created_at=created_at)

    def add_many(
        self, records: Sequence[PricingRecord], *, now: datetime | None = None
    ) -> list[StoredPrice]:
        """Store several rows in one transaction: all of them, or none (a price sheet import)."""
        if any(record.source is PriceSource.CATALOG for record in records):
            raise ValueError("catalog prices come from the bundled catalog and are not stored")
        created_at = now or datetime.now(UTC)
        stored: list[StoredPrice] = []
        with self._write.begin() as connection:
            for record in records:
                result = connection.execute(
                    schema.pricing_rows.insert().values(**price_row(record), created_at=created_at)
                )
                key = result.inserted_primary_key
                assert key is not None
                stored.append(StoredPrice(id=int(key[0]), record=record, created_at=created_at))
        return stored

    def get(self, price_id: int) -> StoredPrice | None:
        table = schema.pricing_rows
        with self._engine.connect() as connection:
            row = connection.execute(select(table).where(table.c.id == price_id)).mappings().first()
        return None if row is None else price_from_row(row)

    def list_prices(
        self, model: str | None = None, source: PriceSource | None = None
    ) -> list[StoredPrice]:
        table = schema.pricing_rows
        query = select(table).order_by(table.c.model, table.c.id)
        if model is not None:
            query = query.where(table.c.model == model)
        if source is not None:
            query = query.where(table.c.source == source.value)
        with self._engine.connect() as connection:
            return [price_from_row(row) for row in connection.execute(query).mappings()]

    def records(self) -> list[PricingRecord]:
        """Every stored row, to merge into the in-memory ``PriceBook`` on start or change."""
        return [stored.record for stored in self.list_prices()]

    def delete(self, price_id: int) -> bool:
        table = schema.pricing_rows
        with self._write.begin() as connection:
            result = connection.execute(delete(table).where(table.c.id == price_id))
            return result.rowcount == 1

    def delete_source(self, source: PriceSource) -> int:
        """Drop all rows of one source (e.g. ``config`` before re-importing the YAML's rows)."""
        table = schema.pricing_rows
        with self._write.begin() as connection:
            result = connection.execute(delete(table).where(table.c.source == source.value))
            return int(result.rowcount)
