"""Usage: the gateway's ``Usage`` from either protocol's usage object, and back.

The gateway's ``Usage.input_tokens`` counts *every* input token once and
``cached_input_tokens`` is the part of it read from cache. OpenAI already reports it that way
(``prompt_tokens`` includes ``prompt_tokens_details.cached_tokens``). Anthropic reports the
three input parts separately (``input_tokens`` excludes ``cache_read_input_tokens`` and
``cache_creation_input_tokens``), so they are added. Cache *writes* count as ordinary input
tokens at the normal input price: ``Usage`` has no cache-write field yet, so their 25 % (5 min)
or 100 % (1 h) surcharge is not charged (an under-count of at most that surcharge).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeGuard

from spendgate.domain.pricing import Usage
from spendgate.domain.translate._common import Json


def _is_map(value: object) -> TypeGuard[Mapping[str, Any]]:
    # dict first: what JSON parsing yields, and much cheaper than the ABC check alone.
    return isinstance(value, (dict, Mapping))


def _usage_object(obj: object) -> Mapping[str, Any] | None:
    """``obj`` is a usage object or a whole response / stream event holding one."""
    if not _is_map(obj):
        return None
    inner = obj.get("usage")
    if _is_map(inner):
        return inner
    message = obj.get("message")  # Anthropic message_start event
    if _is_map(message):
        usage = message.get("usage")
        if _is_map(usage):
            return usage
    return obj


def _count(obj: Mapping[str, Any], key: str) -> int:
    value = obj.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return 0
    return value


def usage_from_openai(obj: object) -> Usage | None:
    """Usage of an OpenAI response, chunk or usage object; None when it reports none."""
    usage = _usage_object(obj)
    if usage is None or ("prompt_tokens" not in usage and "completion_tokens" not in usage):
        return None
    prompt = _count(usage, "prompt_tokens")
    details = usage.get("prompt_tokens_details")
    cached = _count(details, "cached_tokens") if isinstance(details, Mapping) else 0
    return Usage(
        input_tokens=prompt,
        output_tokens=_count(usage, "completion_tokens"),
        cached_input_tokens=min(cached, prompt),  # already part of prompt_tokens
    )


def usage_from_anthropic(obj: object) -> Usage | None:
    """Usage of an Anthropic message, stream event or usage object; None when it has none.

    Anthropic's ``input_tokens`` excludes cache reads and cache writes: both are added, so
    every input token is counted once; cache reads are the cached part."""
    usage = _usage_object(obj)
    if usage is None or ("input_tokens" not in usage and "output_tokens" not in usage):
        return None
    cache_read = _count(usage, "cache_read_input_tokens")
    cache_write = _count(usage, "cache_creation_input_tokens")
    return Usage(
        input_tokens=_count(usage, "input_tokens") + cache_read + cache_write,
        output_tokens=_count(usage, "output_tokens"),
        cached_input_tokens=cache_read,
    )


def usage_from_responses(obj: object) -> Usage | None:
    """Usage of a Responses API response, stream event (``response.completed`` and the other
    terminal events hold the response) or usage object; None when it reports none.

    ``input_tokens`` includes ``input_tokens_details.cached_tokens``; ``output_tokens``
    includes ``output_tokens_details.reasoning_tokens`` (billed as output): both as chat."""
    if _is_map(obj) and _is_map(obj.get("response")):
        obj = obj["response"]
    usage = _usage_object(obj)
    if usage is None or ("input_tokens" not in usage and "output_tokens" not in usage):
        return None
    inputs = _count(usage, "input_tokens")
    details = usage.get("input_tokens_details")
    cached = _count(details, "cached_tokens") if _is_map(details) else 0
    return Usage(
        input_tokens=inputs,
        output_tokens=_count(usage, "output_tokens"),
        cached_input_tokens=min(cached, inputs),
    )


def _responses_usage(usage: Usage, cache_write: int = 0) -> Json:
    """``usage`` in the Responses API's shape; ``cache_write``: input tokens written to the
    cache (part of the input; ``Usage`` does not keep them apart)."""
    details = {"cached_tokens": usage.cached_input_tokens, "cache_write_tokens": cache_write}
    return {
        "input_tokens": usage.input_tokens,
        "input_tokens_details": details,
        "output_tokens": usage.output_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": usage.total_tokens,
    }


def _openai_usage(usage: Usage) -> Json:
    return {
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.total_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cached_input_tokens},
    }


def _anthropic_usage(usage: Usage) -> Json:
    cached = min(usage.cached_input_tokens, usage.input_tokens)
    return {
        "input_tokens": usage.input_tokens - cached,
        "output_tokens": usage.output_tokens,
        "cache_read_input_tokens": cached,
        "cache_creation_input_tokens": 0,
    }


class _UsageFields:
    """Anthropic stream usage: message_start holds the input counts, message_delta the
    (cumulative) output count and, in newer API versions, input counts again."""

    __slots__ = ("fields",)

    def __init__(self) -> None:
        self.fields: dict[str, int] = {}

    def merge(self, usage: object) -> None:
        if isinstance(usage, dict):
            for key, value in usage.items():
                if isinstance(value, int) and not isinstance(value, bool):
                    self.fields[key] = value

    @property
    def usage(self) -> Usage | None:
        return usage_from_anthropic(self.fields) if self.fields else None
