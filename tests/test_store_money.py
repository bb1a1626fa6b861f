"""Exact Decimal storage: canonical text, split fixed point, and sums done by SQL."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway_support import journal_url_for
from spendgate.domain.budgets import CounterKey
from spendgate.store import Journal, WriterSettings
from spendgate.store.money import ATTO, from_parts, from_text, to_parts, to_text

# Amounts with up to 10 decimal places, negative ones included (corrections).
amounts = st.decimals(
    min_value=Decimal("-1e9"),
    max_value=Decimal("1e9"),
    places=10,
    allow_nan=False,
    allow_infinity=False,
)
any_finite = st.decimals(allow_nan=False, allow_infinity=False)


@given(any_finite)
def test_text_round_trip_is_exact_for_any_decimal(value: Decimal) -> None:
    text = to_text(value)
    assert "E" not in text.upper()
    assert from_text(text) == value


@given(st.decimals(min_value=Decimal("-9e18"), max_value=Decimal("9e18"), places=18))
def test_split_round_trip_is_exact_to_18_places(value: Decimal) -> None:
    units, atto = to_parts(value)
    assert 0 <= atto < ATTO
    assert from_parts(units, atto) == value


def test_split_rounds_half_even_beyond_18_places() -> None:
    assert from_parts(*to_parts(Decimal("0.0000000000000000015"))) == Decimal("2E-18")
    assert from_parts(*to_parts(Decimal("0.0000000000000000025"))) == Decimal("2E-18")


def test_non_finite_amounts_are_refused() -> None:
    for bad in (Decimal("NaN"), Decimal("Infinity")):
        with pytest.raises(ValueError, match="non-finite"):
            to_text(bad)
        with pytest.raises(ValueError, match="non-finite"):
            to_parts(bad)


@pytest.fixture(scope="module")
def journal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Journal]:
    path: Path = tmp_path_factory.mktemp("money") / "money.db"
    with Journal(journal_url_for(path), settings=WriterSettings(max_batch_wait_ms=1)) as opened:
        yield opened


_policy_ids = itertools.count()


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(batches=st.lists(st.lists(amounts, min_size=1, max_size=20), min_size=1, max_size=6))
def test_counter_sums_in_sql_equal_the_exact_decimal_sum(
    journal: Journal, batches: list[list[Decimal]]
) -> None:
    key = CounterKey(f"policy-{next(_policy_ids)}", "member", "2026-01-01T00:00:00Z")
    for batch in batches:
        for amount in batch:
            journal.add_to_counters({key: amount})
        # Separate commits, so the database (not Python) adds most of them up.
        assert journal.flush(timeout=10)
    stored = journal.load_counters()[key].settled
    exact = sum((a for batch in batches for a in batch), Decimal(0))
    assert stored == exact


def test_carry_between_the_two_integer_parts(journal: Journal) -> None:
    key = CounterKey("carry", "member", "2026-01-01T00:00:00Z")
    almost_one = Decimal("0.999999999999999999")
    for _ in range(3):
        journal.add_to_counters({key: almost_one})
        assert journal.flush(timeout=10)
    journal.add_to_counters({key: Decimal("-3.000000000000000001")})
    assert journal.flush(timeout=10)
    assert journal.load_counters()[key].settled == Decimal("-0.000000000000000004")


def test_large_token_counters_do_not_lose_precision(journal: Journal) -> None:
    key = CounterKey("tokens", "global", "2026-01-01T00:00:00Z")
    for _ in range(5):
        journal.add_to_counters({key: Decimal(4_000_000_000_000)})
        assert journal.flush(timeout=10)
    journal.add_to_counters({key: Decimal("0.0000000001")})
    assert journal.flush(timeout=10)
    assert journal.load_counters()[key].settled == Decimal("20000000000000.0000000001")
