"""The built-in price catalog from genai-prices' bundled snapshot: right prices, aliases,
creator providers preferred, effective dating, estimates flagged, strictly offline."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import textwrap
from collections import defaultdict
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from genai_prices import data_snapshot
from genai_prices import types as gp

from spendgate import catalog
from spendgate.catalog import (
    CREATOR_PROVIDERS,
    catalog_model_ids,
    catalog_timestamp,
    catalog_version,
    load_catalog,
)
from spendgate.catalog_mapping import checked, mapped
from spendgate.domain.pricing import Precision, PriceBook, PriceSource, PricingRecord

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def book() -> PriceBook:
    return PriceBook(load_catalog())


def snapshot_model(provider_id: str, model_id: str) -> gp.ModelInfo:
    for provider in data_snapshot.get_snapshot().providers:
        if provider.id == provider_id:
            for model in provider.models:
                if model.id == model_id:
                    return model
    raise LookupError(f"{provider_id}/{model_id}")


def price_at(book: PriceBook, model: str, at: datetime = NOW) -> PricingRecord:
    record = book.price_for(model, at)
    assert record is not None, f"{model} is not priced"
    return record


def base(value: object) -> Decimal | None:
    if isinstance(value, gp.TieredPrices):
        return value.base
    return value if isinstance(value, Decimal) else None


@pytest.mark.parametrize("model", ["gpt-4o", "gpt-4o-mini"])
def test_openai_prices_as_in_the_catalog(book: PriceBook, model: str) -> None:
    expected = snapshot_model("openai", model).get_prices(NOW)
    record = price_at(book, model)
    assert record.input_per_mtok == expected.input_mtok
    assert record.output_per_mtok == expected.output_mtok
    assert record.cached_input_per_mtok == expected.cache_read_mtok
    assert record.per_request == 0
    assert record.source is PriceSource.CATALOG
    assert record.precision is Precision.EXACT


def test_well_known_prices(book: PriceBook) -> None:
    # The snapshot's prices for the demo's models (USD per 1M tokens).
    mini = price_at(book, "gpt-4o-mini")
    assert (mini.input_per_mtok, mini.output_per_mtok) == (Decimal("0.15"), Decimal("0.6"))
    big = price_at(book, "gpt-4o")
    assert (big.input_per_mtok, big.output_per_mtok) == (Decimal("2.5"), Decimal("10"))
    opus = price_at(book, "claude-opus-4")
    assert (opus.input_per_mtok, opus.output_per_mtok) == (Decimal("15"), Decimal("75"))


def test_creator_provider_wins_over_resellers(book: PriceBook) -> None:
    # GitHub Copilot lists gpt-4o with no per-token price (a subscription); Azure lists o1.
    listed_by = defaultdict(set)
    for provider in data_snapshot.get_snapshot().providers:
        for model in provider.models:
            listed_by[model.id].add(provider.id)
    assert {"openai", "github-copilot"} <= listed_by["gpt-4o"]
    assert {"openai", "azure"} <= listed_by["o1"]
    for model in ("gpt-4o", "o1"):
        expected = snapshot_model("openai", model).get_prices(NOW)
        assert price_at(book, model).input_per_mtok == expected.input_mtok


def test_claude_models_present(book: PriceBook) -> None:
    anthropic = next(p for p in data_snapshot.get_snapshot().providers if p.id == "anthropic")
    priced = [m.id for m in anthropic.models if m.get_prices(NOW).__dict__.get("input_mtok")]
    assert len(priced) >= 10
    for model_id in priced:
        assert book.price_for(model_id, NOW) is not None, model_id
    for alias in ("claude-opus-4", "claude-sonnet-4"):  # exact-equals aliases of *-0 ids
        assert book.price_for(alias, NOW) is not None, alias


def test_exact_aliases_share_the_price(book: PriceBook) -> None:
    model = snapshot_model("openai", "gpt-4o")
    assert isinstance(model.match, gp.ClauseOr)
    aliases = [c.equals for c in model.match.or_ if isinstance(c, gp.ClauseEquals)]
    assert "gpt-4o-2024-08-06" in aliases
    for alias in aliases:
        assert price_at(book, alias).input_per_mtok == price_at(book, "gpt-4o").input_per_mtok


def test_prefix_matches_are_not_expanded(book: PriceBook) -> None:
    # genai-prices matches "claude-opus-4-1*" by prefix; the book is exact, so only the id is
    # priced and a dated variant stays unpriced here (the gateway resolves ids first).
    assert book.price_for("claude-opus-4-1", NOW) is not None
    assert "claude-opus-4-1-20250805" not in catalog_model_ids()


def _date_constrained_models() -> list[tuple[str, gp.ModelInfo]]:
    """Date-constrained models whose id only one creator provider lists (so its row is
    unambiguously from that provider)."""
    creators = [p for p in data_snapshot.get_snapshot().providers if p.id in CREATOR_PROVIDERS]
    listings = defaultdict(int)
    for provider in creators:
        for model in provider.models:
            listings[model.id] += 1
    found = []
    for provider in creators:
        for model in provider.models:
            if (
                listings[model.id] == 1
                and isinstance(model.prices, list)
                and any(isinstance(c.constraint, gp.StartDateConstraint) for c in model.prices)
            ):
                found.append((provider.id, model))
    return found


def test_effective_dated_rows_follow_genai_prices(book: PriceBook) -> None:
    models = _date_constrained_models()
    assert models, "the snapshot has date-constrained prices"
    checked = 0
    for _, model in models:
        assert isinstance(model.prices, list)
        has_daytime = any(isinstance(c.constraint, gp.TimeOfDateConstraint) for c in model.prices)
        starts = {
            c.constraint.start_date
            for c in model.prices
            if isinstance(c.constraint, gp.StartDateConstraint)
        }
        rows = book.rows(model.id)
        for start in starts:
            boundary = datetime.combine(start, time(), UTC)
            for at in (boundary - timedelta(seconds=1), boundary):
                record = book.price_for(model.id, at)
                expected = base(model.get_prices(at).input_mtok)
                if expected is None:
                    continue
                assert record is not None, (model.id, at)
                if has_daytime:
                    assert record.precision is Precision.ESTIMATE
                    assert record.input_per_mtok >= expected
                else:
                    assert record.input_per_mtok == expected, (model.id, at)
                checked += 1
        # Rows of one model never overlap.
        spans = sorted(
            (r.effective_from or datetime.min.replace(tzinfo=UTC), r.effective_to) for r in rows
        )
        for (_, end), (start_next, _) in itertools.pairwise(spans):
            assert end is not None, model.id
            assert end <= start_next, model.id
    assert checked >= 10


def test_price_change_is_a_new_row(book: PriceBook) -> None:
    # claude-opus-4-6: tiered until 2026-03-13, flat from then on.
    rows = book.rows("claude-opus-4-6")
    assert len(rows) == 2
    change = datetime(2026, 3, 13, tzinfo=UTC)
    before = price_at(book, "claude-opus-4-6", change - timedelta(days=1))
    after = price_at(book, "claude-opus-4-6", change)
    assert before.effective_to == change
    assert after.effective_from == change
    assert before.precision is Precision.ESTIMATE  # tiered by context length: base tier
    assert after.precision is Precision.EXACT


def test_tiered_prices_use_the_base_tier(book: PriceBook) -> None:
    model = snapshot_model("anthropic", "claude-sonnet-4-5")
    tiered = model.get_prices(NOW).input_mtok
    assert isinstance(tiered, gp.TieredPrices)
    record = price_at(book, "claude-sonnet-4-5")
    assert record.input_per_mtok == tiered.base
    assert record.precision is Precision.ESTIMATE


def test_time_of_day_prices_take_the_highest(book: PriceBook) -> None:
    # deepseek-chat: an off-peak discount most of the day; the row is the peak price.
    model = snapshot_model("deepseek", "deepseek-chat")
    assert isinstance(model.prices, list)
    inputs = [c.prices.__dict__["input_mtok"] for c in model.prices]
    record = price_at(book, "deepseek-chat")
    assert record.input_per_mtok == max(inputs)
    assert record.precision is Precision.ESTIMATE


def test_rows_are_well_formed() -> None:
    rows = load_catalog()
    assert len(rows) > 1000
    for record in rows:
        assert record.source is PriceSource.CATALOG
        assert isinstance(record.input_per_mtok, Decimal)
        assert isinstance(record.output_per_mtok, Decimal)
        assert record.input_per_mtok >= 0
        assert record.output_per_mtok >= 0
        assert record.per_request >= 0
        for moment in (record.effective_from, record.effective_to):
            assert moment is None or moment.tzinfo is UTC
    assert catalog_model_ids() == {record.model for record in rows}


def test_load_is_cached() -> None:
    assert load_catalog() is load_catalog()


def test_timestamp_and_version() -> None:
    stamp = catalog_timestamp()
    assert stamp.tzinfo is UTC
    assert datetime(2024, 1, 1, tzinfo=UTC) < stamp
    assert catalog_version().count(".") >= 1


OFFLINE = textwrap.dedent(
    """
    import socket, sys, time
    from pathlib import Path

    def refuse(*args, **kwargs):
        raise AssertionError("network access attempted")

    socket.socket.connect = refuse
    socket.socket.connect_ex = refuse
    socket.create_connection = refuse
    socket.getaddrinfo = refuse

    started = time.perf_counter()
    from spendgate import catalog
    if len(sys.argv) > 1:  # the shipped index of another genai-prices release
        catalog.INDEX = Path(sys.argv[1])
    rows = catalog.load_catalog()
    elapsed = time.perf_counter() - started
    catalog.catalog_timestamp()
    print(len(rows), round(elapsed, 3), "genai_prices" in sys.modules)
    """
)


def _load_in_fresh_interpreter(cache: Path, *args: str) -> tuple[int, float, bool]:
    env = {**os.environ, "SPENDGATE_CACHE_DIR": str(cache)}
    result = subprocess.run(
        [sys.executable, "-c", OFFLINE, *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    count, seconds, imported = result.stdout.split()
    return int(count), float(seconds), imported == "True"


def _stale_index(tmp_path: Path) -> Path:
    """The shipped index as another genai-prices release would have left it."""
    index = tmp_path / "catalog_index.json"
    catalog.write_index(index)
    text = index.read_text()
    index.write_text(text.replace(json.loads(text)["data_sha256"], "0" * 64))
    return index


def test_catalog_loads_offline_and_fast(tmp_path: Path) -> None:
    """From the shipped index or, for another genai-prices release, from the index the first
    start cached: either way a start after the first never imports genai-prices."""
    cache = tmp_path / "cache"
    _load_in_fresh_interpreter(cache)
    count, seconds, imported = _load_in_fresh_interpreter(cache)
    assert count == len(load_catalog())
    assert seconds < 5  # measured ~0.03 s from an index, in a fresh interpreter
    assert not imported


def test_another_genai_prices_is_mapped_once_then_read_from_the_cache(tmp_path: Path) -> None:
    stale, cache = _stale_index(tmp_path), tmp_path / "cache"
    count, _, imported = _load_in_fresh_interpreter(cache, str(stale))
    assert imported
    assert count == len(load_catalog())
    (cached,) = cache.glob("catalog-index-*.json")
    assert cached.name == f"catalog-index-{catalog._data_digest()}.json"
    assert list(cache.glob(".catalog-*")) == []  # nothing half-written left behind
    count, _, imported = _load_in_fresh_interpreter(cache, str(stale))
    assert not imported
    assert count == len(load_catalog())


def test_an_unwritable_cache_only_costs_the_mapping(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    count, _, imported = _load_in_fresh_interpreter(blocker / "cache", str(_stale_index(tmp_path)))
    assert imported
    assert count == len(load_catalog())


def _as_text(chosen: catalog.Chosen) -> dict[str, str]:
    # repr keeps each Decimal's exponent: "0.10" and "0.1" would compare equal as numbers.
    return {model: repr(found) for model, found in chosen.items()}


def test_the_index_in_use_is_the_mapping_of_the_installed_snapshot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The shipped index when it was built from the installed genai-prices, else the one the
    mapping cached: either way the same rows as mapping the snapshot afresh."""
    monkeypatch.setenv("SPENDGATE_CACHE_DIR", str(tmp_path))
    catalog._chosen.__wrapped__()  # caches an index when the shipped one does not match
    index = catalog._index()
    assert index is not None
    assert _as_text(catalog._chosen_from_index(index)) == _as_text(mapped())
    assert catalog_timestamp() == checked()


def test_shipped_index_matches_the_pinned_genai_prices() -> None:
    """The release this checkout was built against ships its index; regenerate it with
    ``python -m spendgate.catalog`` after raising the genai-prices lower bound."""
    shipped = catalog._read_index(catalog.INDEX)
    assert shipped is not None
    assert shipped["models"]
    if shipped["data_sha256"] != catalog._data_digest():
        pytest.skip(f"genai-prices {catalog_version()} is newer than the shipped index")
    assert _as_text(catalog._chosen_from_index(shipped)) == _as_text(mapped())


def test_an_index_of_another_genai_prices_is_ignored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(catalog, "INDEX", _stale_index(tmp_path))
    monkeypatch.setenv("SPENDGATE_CACHE_DIR", str(tmp_path / "empty"))
    assert catalog._index() is None
    # Mapped from the installed snapshot instead (the cached function, called afresh).
    assert _as_text(catalog._chosen.__wrapped__()) == _as_text(mapped())
