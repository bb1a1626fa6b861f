"""Anthropic token counting (``POST /v1/messages/count_tokens``): the input tokens the same
request would report from ``/v1/messages`` (the mock's token rule)."""

from __future__ import annotations

from typing import Any

import orjson

from spendgate.mock_upstream import anthropic_api

__all__ = ["answer"]


def answer(body: dict[str, Any], seed: int) -> bytes:
    # A count takes no max_tokens; the Messages parser requires one.
    call = anthropic_api.parse({**body, "max_tokens": 1}, seed)
    return orjson.dumps({"input_tokens": call.prompt_tokens})
