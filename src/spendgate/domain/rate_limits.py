"""Rate limits: requests and tokens per minute, beside budgets (pure rules and arithmetic).

A limit of L per minute is a bucket of capacity L that empties continuously at L/60 per
second, as OpenAI's own limits do: a request is admitted when the bucket's level now plus its
amount stays within L. So ``retry-after`` is the honest time until this request would fit
(about a second for 60 requests per minute), never "the next minute", and a burst of L is
allowed after a quiet minute (never more: the level never exceeds L).

Amounts are exact integers. A level is kept in *scaled units*, one request or token being
``UNIT`` = 60 000 of them, so a limit of L per minute drains exactly L scaled units per
millisecond; time is integer milliseconds (the Redis ledger's scripts do the same arithmetic
on Lua numbers, exact below 2⁵³: ``MAX_PER_MINUTE`` keeps every sum far below it).

Tokens are reserved at the request's upper bound (its input estimate's upper bound plus its
output ceiling) and what was not used is given back when it settles; requests are consumed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import NamedTuple

from spendgate.domain.scopes import EACH_MEMBER, RequestScopes

__all__ = [
    "MAX_PER_MINUTE",
    "UNIT",
    "Bucket",
    "RateLimit",
    "RateLine",
    "RateMetric",
    "RateRefund",
    "RateScopeKind",
    "RateState",
    "RateVerdict",
    "bucket_key",
    "check_rates",
    "drained",
    "epoch_ms",
    "oversized",
    "rate_lines",
    "rate_verdict",
    "refunded",
]

UNIT = 60_000  # scaled units per request or token: a minute in milliseconds
MAX_PER_MINUTE = 1_000_000_000  # capacity x UNIT = 6e13, far below 2**53
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MILLISECOND = timedelta(milliseconds=1)


class RateScopeKind(StrEnum):
    API_KEY = "api_key"
    PRINCIPAL = "principal"
    PROJECT = "project"
    MODEL = "model"


class RateMetric(StrEnum):
    REQUESTS = "requests"
    TOKENS = "tokens"


@dataclass(frozen=True, slots=True)
class RateLimit:
    """One configured rate limit. ``scope_id`` ``*``: each member separately."""

    id: str
    scope_kind: RateScopeKind
    scope_id: str
    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None
    models: frozenset[str] | None = None

    def member_for(self, scopes: RequestScopes, model: str) -> str | None:
        """The member this request is limited as, or ``None`` when the limit does not apply."""
        if self.models is not None and model not in self.models:
            return None
        if self.scope_kind is RateScopeKind.MODEL:
            member: str | None = model
        else:
            member = getattr(scopes, self.scope_kind.value)
        if member is None or (self.scope_id != EACH_MEMBER and self.scope_id != member):
            return None
        return member


class RateLine(NamedTuple):
    """Take ``amount`` from ``bucket`` (a limit's member and metric) if it fits now."""

    limit_id: str
    metric: RateMetric
    bucket: str
    per_minute: int
    amount: int


class RateRefund(NamedTuple):
    """Give ``amount`` back to ``bucket`` (tokens reserved but not used)."""

    bucket: str
    per_minute: int
    amount: int


class Bucket(NamedTuple):
    """A bucket as stored: its level in scaled units at ``at_ms``, and the limit it drains
    at (to know when it is empty and may be forgotten)."""

    level: int
    at_ms: int
    per_minute: int

    def empty_at_ms(self) -> int:
        return self.at_ms + _ceil_div(self.level, self.per_minute)


class RateState(NamedTuple):
    """One limit's bucket as a client sees it (the ``x-ratelimit-*`` headers)."""

    limit_id: str
    metric: RateMetric
    per_minute: int
    remaining: int
    reset_ms: int  # until the bucket is empty again


@dataclass(frozen=True, slots=True)
class RateVerdict:
    """What the rate limits said of a request: each bucket after admission (or as it is, when
    refused); ``refused``: the line that did not fit, ``retry_after_ms`` when it will (None:
    it never can, its amount exceeds the limit)."""

    states: tuple[RateState, ...]
    refused: RateLine | None = None
    retry_after_ms: int | None = None


def bucket_key(limit_id: str, metric: RateMetric, member: str) -> str:
    return f"{limit_id}|{metric.value}|{member}"


def rate_lines(
    limits: Iterable[RateLimit], scopes: RequestScopes, model: str, tokens: int
) -> tuple[RateLine, ...]:
    """The buckets a request on ``model`` with at most ``tokens`` tokens takes from."""
    lines: list[RateLine] = []
    for limit in limits:
        member = limit.member_for(scopes, model)
        if member is None:
            continue
        if limit.requests_per_minute is not None:
            key = bucket_key(limit.id, RateMetric.REQUESTS, member)
            lines.append(RateLine(limit.id, RateMetric.REQUESTS, key, limit.requests_per_minute, 1))
        if limit.tokens_per_minute is not None:
            key = bucket_key(limit.id, RateMetric.TOKENS, member)
            lines.append(
                RateLine(limit.id, RateMetric.TOKENS, key, limit.tokens_per_minute, tokens)
            )
    return tuple(lines)


def oversized(lines: Iterable[RateLine]) -> RateLine | None:
    """A line whose amount exceeds its whole limit: it could never be admitted, however
    long the client waited."""
    return next((line for line in lines if line.amount > line.per_minute), None)


def drained(bucket: Bucket | None, per_minute: int, now_ms: int) -> int:
    """The bucket's level at ``now_ms`` (time never runs backwards for it)."""
    if bucket is None:
        return 0
    # Exact in Lua too: a product beyond 2**53 is far above any level, so the result is 0.
    return max(bucket.level - max(now_ms - bucket.at_ms, 0) * per_minute, 0)


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def _state(line: RateLine, level: int) -> RateState:
    capacity = line.per_minute * UNIT
    return RateState(
        line.limit_id,
        line.metric,
        line.per_minute,
        max(capacity - level, 0) // UNIT,
        _ceil_div(level, line.per_minute),
    )


def rate_verdict(
    lines: Sequence[RateLine], levels: Sequence[int], refused: int | None = None
) -> RateVerdict:
    """The verdict from the buckets' levels: after admission, one per line; refused by line
    ``refused`` (an index), those before it after admission and its own level as it is."""
    states = tuple(_state(line, level) for line, level in zip(lines, levels, strict=False))
    if refused is None:
        return RateVerdict(states)
    line = lines[refused]
    if line.amount > line.per_minute:
        return RateVerdict(states, line)
    excess = levels[refused] + (line.amount - line.per_minute) * UNIT
    return RateVerdict(states, line, _ceil_div(excess, line.per_minute))


def check_rates(buckets: dict[str, Bucket], lines: Sequence[RateLine], now_ms: int) -> RateVerdict:
    """Admit the request on every line or on none: on admission, ``buckets`` (the stored
    ones, by key) are updated in place; refused, they are left as they were."""
    levels: list[int] = []
    for index, line in enumerate(lines):
        level = drained(buckets.get(line.bucket), line.per_minute, now_ms)
        after = level + line.amount * UNIT
        if after > line.per_minute * UNIT:
            return rate_verdict(lines, [*levels, level], index)
        levels.append(after)
    for line, after in zip(lines, levels, strict=True):
        previous = buckets.get(line.bucket)
        at = now_ms if previous is None else max(previous.at_ms, now_ms)
        buckets[line.bucket] = Bucket(after, at, line.per_minute)
    return rate_verdict(lines, levels)


def refunded(bucket: Bucket | None, refund: RateRefund, now_ms: int) -> Bucket | None:
    """The bucket after giving ``refund`` back (never below empty); None when empty."""
    level = drained(bucket, refund.per_minute, now_ms) - refund.amount * UNIT
    if level <= 0:
        return None
    at = now_ms if bucket is None else max(bucket.at_ms, now_ms)
    return Bucket(level, at, refund.per_minute)


def epoch_ms(at: datetime) -> int:
    """``at`` in whole milliseconds since the epoch (the buckets' clock)."""
    return (at - _EPOCH) // _MILLISECOND
