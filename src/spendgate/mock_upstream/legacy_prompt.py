"""The ``input`` / ``prompt`` of OpenAI's embeddings and legacy completions, metered by the
mock's token rule: each string ``ceil(utf8_bytes / 4)`` tokens (no message framing), each
token id one token."""

from __future__ import annotations

from typing import Any

from spendgate.mock_upstream.reply import RequestError
from spendgate.mock_upstream.textgen import PromptMeter, text_tokens

__all__ = ["meter_prompt"]


def meter_prompt(value: Any, field: str, meter: PromptMeter) -> tuple[int, int]:
    """Feed a prompt to ``meter`` (for the answer's digest); returns its tokens and how many
    separate inputs it holds."""
    if isinstance(value, str):
        meter.text(value)
        return text_tokens(value), 1
    if not isinstance(value, list) or not value:
        raise RequestError(f"'{field}' must be a string or a non-empty array", field)
    if all(isinstance(item, str) for item in value):
        for item in value:
            meter.text(item)
            meter.end_message()  # each input apart: ["ab", "c"] and ["a", "bc"] differ
        return sum(text_tokens(item) for item in value), len(value)
    if all(type(item) is int for item in value):
        meter.text(str(value))
        return len(value), 1
    if all(isinstance(item, list) and all(type(i) is int for i in item) for item in value):
        meter.text(str(value))
        return sum(len(item) for item in value), len(value)
    raise RequestError(f"'{field}' holds items of an unsupported type", field)
