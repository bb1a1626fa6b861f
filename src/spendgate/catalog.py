"""The built-in price catalog, from the ``genai-prices`` package's bundled snapshot.

Strictly offline: only the data that ships inside the installed package is read; none of its
update functions (which fetch prices over HTTP) is ever called. The snapshot is mapped to
``PricingRecord`` rows (``source=catalog``), one or more per model id:

- every model id and each of its exact-match aliases (``ClauseEquals``) gets its own rows,
  because the price book is keyed by exact model id. Prefix/regex matches are not expanded;
- start-date constrained prices become effective-dated rows (``effective_from`` /
  ``effective_to``, at UTC midnight, as genai-prices compares UTC dates);
- prices that depend on the time of day (off-peak discounts) cannot be expressed as a row,
  so the row takes the highest of the alternatives and is marked ``precision=estimate``: a
  budget may over-count such a request, never under-count it;
- context-length tiered prices use their base tier and are marked ``precision=estimate``;
- request-specific variants (service tier, batch) are ignored: the standard price applies;
- when one id is listed by several providers, the model creator's own provider wins over
  resellers and aggregators (which may list it at a different or subscription price).

Loading is done once per process and cached (see ``load_catalog``). Importing genai-prices and
mapping its snapshot cost the gateway ~7 MB and ~140 ms at every start, so the mapped rows
also ship as ``catalog_index.json`` (written by ``python -m spendgate.catalog``), tied to the
SHA-256 of the genai-prices data file it was built from: when the installed package's data
file is the same, the rows come from the index and genai-prices is never imported. Another
genai-prices release (pip installs the newest) has another data file: its rows are mapped from
the snapshot as above, once, and written as an index of its own to the user's cache directory
(``$SPENDGATE_CACHE_DIR``, else ``$XDG_CACHE_HOME/spendgate``, else ``~/.cache/spendgate``),
so later starts read that instead. Writing it is best effort: a read-only home only costs the
mapping at every start. Tests keep the shipped index equal to the mapping of its snapshot.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import sys
import tempfile
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any

from spendgate.domain.pricing import Precision, PriceSource, PricingRecord

__all__ = [
    "CREATOR_PROVIDERS",
    "catalog_model_ids",
    "catalog_provider",
    "catalog_timestamp",
    "catalog_version",
    "load_catalog",
]

# Providers that create the models they list, in order of preference. Any other provider
# (clouds, aggregators, resellers, subscription products) only fills in ids none of these has.
CREATOR_PROVIDERS: tuple[str, ...] = (
    "openai",
    "anthropic",
    "google",
    "mistral",
    "deepseek",
    "x-ai",
    "meta",
    "cohere",
    "moonshotai",
    "zai",
    "zhipuai",
    "minimax",
    "perplexity",
    "voyageai",
    "elevenlabs",
    "arcee",
)


@dataclass(frozen=True, slots=True)
class Price:
    """One catalog price reduced to what a ``PricingRecord`` holds."""

    input_per_mtok: Decimal
    output_per_mtok: Decimal
    cached_input_per_mtok: Decimal | None
    per_request: Decimal
    precision: Precision

    def record(self, model: str, start: date | None, end: date | None) -> PricingRecord:
        return PricingRecord(
            model=model,
            input_per_mtok=self.input_per_mtok,
            output_per_mtok=self.output_per_mtok,
            cached_input_per_mtok=self.cached_input_per_mtok,
            per_request=self.per_request,
            effective_from=_utc_midnight(start),
            effective_to=_utc_midnight(end),
            source=PriceSource.CATALOG,
            precision=self.precision,
        )


@dataclass(frozen=True, slots=True)
class Period:
    start: date | None  # None: since always
    end: date | None  # None: until further notice
    price: Price


Chosen = dict[str, tuple[str, tuple[Period, ...]]]

INDEX = Path(__file__).with_name("catalog_index.json")

_log = logging.getLogger(__name__)


@cache
def _chosen() -> Chosen:
    """Per model id: the catalog provider whose listing prices it, and its price periods."""
    index = _index()
    if index is not None:
        return _chosen_from_index(index)
    from spendgate.catalog_mapping import mapped

    chosen = mapped()
    _cache_index(chosen)
    return chosen


def cache_dir() -> Path:
    """Where an index mapped from another genai-prices release is kept between starts."""
    configured = os.environ.get("SPENDGATE_CACHE_DIR")
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "spendgate"


def _cached_index_path(digest: str) -> Path:
    return cache_dir() / f"catalog-index-{digest}.json"


def _data_digest() -> str | None:
    """SHA-256 of the installed genai-prices data file, found without importing the package."""
    spec = importlib.util.find_spec("genai_prices")
    if spec is None or spec.origin is None:
        return None
    data = Path(spec.origin).with_name("data.py")
    return hashlib.sha256(data.read_bytes()).hexdigest() if data.is_file() else None


def _index() -> dict[str, Any] | None:
    """The index built from the installed genai-prices data file: the shipped one, else one
    cached by an earlier start (read each time: the callers cache what they make of it, the
    parsed text is garbage)."""
    digest = _data_digest()
    if digest is None:
        return None
    for path in (INDEX, _cached_index_path(digest)):
        index = _read_index(path)
        if index is not None and index.get("data_sha256") == digest:
            return index
    return None


def _read_index(path: Path) -> dict[str, Any] | None:
    try:
        index: dict[str, Any] = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None
    return index if isinstance(index, dict) else None


def _cache_index(chosen: Chosen) -> None:
    """Keep the rows just mapped for the next start; any failure only costs that start."""
    digest = _data_digest()
    if digest is None:
        return
    target = _cached_index_path(digest)
    aside: str | None = None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        # Written aside and renamed: concurrent starts (workers) never read half a file.
        handle, aside = tempfile.mkstemp(dir=target.parent, prefix=".catalog-", suffix=".tmp")
        with os.fdopen(handle, "w") as file:
            file.write(_index_text(chosen, digest))
        os.replace(aside, target)
    except OSError as error:
        if aside is not None:
            Path(aside).unlink(missing_ok=True)
        _log.debug("price catalog index not cached in %s: %s", target.parent, error)
        return
    _log.info("price catalog mapped from genai-prices %s, cached in %s", catalog_version(), target)


def _chosen_from_index(index: dict[str, Any]) -> Chosen:
    # Prices repeat across models ("0", "0.15", …): one immutable Decimal per text, and one
    # Price per distinct price, shared by every row that has it (~1 MB less resident).
    decimals: dict[str, Decimal] = {}
    prices: dict[tuple[str, str, str | None, str, str], Price] = {}

    def day(text: str | None) -> date | None:
        return None if text is None else date.fromisoformat(text)

    def number(text: str) -> Decimal:
        found = decimals.get(text)
        if found is None:
            found = decimals[text] = Decimal(text)
        return found

    def price(inp: str, out: str, cached: str | None, per: str, precision: str) -> Price:
        key = (inp, out, cached, per, precision)
        found = prices.get(key)
        if found is None:
            found = prices[key] = Price(
                number(inp),
                number(out),
                None if cached is None else number(cached),
                number(per),
                Precision(precision),
            )
        return found

    return {
        model_id: (
            provider,
            tuple(Period(day(start), day(end), price(*row)) for start, end, *row in periods),
        )
        for model_id, (provider, periods) in index["models"].items()
    }


def write_index(path: Path = INDEX) -> None:
    """Map the installed snapshot and write it as the index (``python -m spendgate.catalog``)."""
    from spendgate.catalog_mapping import mapped

    path.write_text(_index_text(mapped(), _data_digest()))


def _index_text(chosen: Chosen, digest: str | None) -> str:
    from spendgate.catalog_mapping import checked

    def text(value: object) -> str | None:
        return None if value is None else str(value)

    models = {
        model_id: [
            provider,
            [
                [
                    text(period.start),
                    text(period.end),
                    str(period.price.input_per_mtok),
                    str(period.price.output_per_mtok),
                    text(period.price.cached_input_per_mtok),
                    str(period.price.per_request),
                    period.price.precision.value,
                ]
                for period in periods
            ],
        ]
        for model_id, (provider, periods) in sorted(chosen.items())
    }
    # One model a line, so a new genai-prices release shows as a readable diff.
    lines = [
        f"{json.dumps(model_id)}:{json.dumps(row, separators=(',', ':'))}"
        for model_id, row in models.items()
    ]
    return (
        f'{{"data_sha256":{json.dumps(digest)},\n'
        f'"checked":{json.dumps(checked().isoformat())},\n'
        '"models":{\n' + ",\n".join(lines) + "\n}}\n"
    )


@cache
def load_catalog() -> tuple[PricingRecord, ...]:
    """Every catalog pricing row, built once per process from the bundled snapshot."""
    return tuple(
        period.price.record(model_id, period.start, period.end)
        for model_id, (_, periods) in sorted(_chosen().items())
        for period in periods
    )


def catalog_provider(model: str) -> str | None:
    """The catalog provider (``openai``, ``anthropic``, …) whose listing prices ``model``."""
    found = _chosen().get(model)
    return None if found is None else found[0]


@cache
def catalog_model_ids() -> frozenset[str]:
    """The model ids the catalog prices (used to accept config references to them)."""
    return frozenset(record.model for record in load_catalog())


def catalog_version() -> str:
    """The installed genai-prices version (its snapshot is tied to the release)."""
    from importlib.metadata import version

    return version("genai-prices")


@cache
def catalog_timestamp() -> datetime:
    """When the bundled snapshot was last checked (UTC), to show how old the catalog is.

    genai-prices records no snapshot date, so this is the newest check date its curators
    noted in the price comments; failing that, when the package's data file was installed.
    """
    index = _index()
    if index is not None:
        return datetime.fromisoformat(index["checked"])
    from spendgate.catalog_mapping import checked

    return checked()


def _utc_midnight(day: date | None) -> datetime | None:
    return None if day is None else datetime.combine(day, time(), UTC)


if __name__ == "__main__":
    write_index(Path(sys.argv[1]) if len(sys.argv) > 1 else INDEX)
