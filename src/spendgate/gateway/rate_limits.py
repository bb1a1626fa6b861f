"""Rate limits as clients see them: the 429 ``rate_limited`` refusal and the
``x-ratelimit-*`` headers, in OpenAI's style (whose SDKs wait ``retry-after-ms`` and retry)."""

from __future__ import annotations

from spendgate.domain.rate_limits import RateMetric, RateState, RateVerdict
from spendgate.gateway.errors import GatewayError

__all__ = ["openai_duration", "rate_headers", "rate_limited"]


def openai_duration(ms: int) -> str:
    """A duration as OpenAI's ``x-ratelimit-reset-*`` headers write it: ``120ms``, ``1.5s``,
    ``6m0s``."""
    if ms < 1000:
        return f"{ms}ms"
    minutes, rest = divmod(ms, 60_000)
    seconds = f"{rest / 1000:.3f}".rstrip("0").rstrip(".")
    return f"{minutes}m{seconds}s" if minutes else f"{seconds}s"


def _tightest(states: tuple[RateState, ...], metric: RateMetric) -> RateState | None:
    return min(
        (state for state in states if state.metric is metric),
        key=lambda state: (state.remaining, -state.reset_ms),
        default=None,
    )


def rate_headers(verdict: RateVerdict) -> list[tuple[str, str]]:
    """``x-ratelimit-{limit,remaining,reset}-{requests,tokens}`` of the tightest limit of
    each metric that applied (none for a metric no limit counts)."""
    headers: list[tuple[str, str]] = []
    for metric in RateMetric:
        state = _tightest(verdict.states, metric)
        if state is not None:
            name = metric.value
            headers += [
                (f"x-ratelimit-limit-{name}", str(state.per_minute)),
                (f"x-ratelimit-remaining-{name}", str(state.remaining)),
                (f"x-ratelimit-reset-{name}", openai_duration(state.reset_ms)),
            ]
    return headers


def rate_limited(verdict: RateVerdict, decision_id: str) -> GatewayError:
    """The refusal of a request a rate limit did not admit: retryable after ``retry-after``,
    unless the request could never fit (its worst case exceeds the whole limit)."""
    line = verdict.refused
    assert line is not None, "a rate limit refused the request"
    unit = "requests" if line.metric is RateMetric.REQUESTS else "tokens"
    references = {"decision_id": decision_id, "rate_limit_id": line.limit_id}
    wait = verdict.retry_after_ms
    if wait is None:
        return GatewayError(
            429,
            "rate_limited",
            f"This request may use up to {line.amount} tokens, more than rate limit "
            f"{line.limit_id} admits in a minute ({line.per_minute} {unit} per minute), so it "
            "can never be admitted: lower max_tokens or shorten the input.",
            type=unit,
            references=references,
            headers=(("x-should-retry", "false"), *rate_headers(verdict)),
        )
    return GatewayError(
        429,
        "rate_limited",
        f"Rate limit {line.limit_id} reached ({line.per_minute} {unit} per minute): "
        f"try again in {wait / 1000:.3f}s.",
        type=unit,
        references=references,
        headers=(
            ("retry-after", str(-(-wait // 1000))),
            ("retry-after-ms", str(wait)),
            *rate_headers(verdict),
        ),
    )
