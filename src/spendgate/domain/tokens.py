"""Input token estimate (placeholder: calibrated version in progress)."""

from __future__ import annotations

from dataclasses import dataclass

from spendgate.domain.requests import ChatRequest

__all__ = ["TokenEstimate", "estimate_input_tokens", "estimate_text_tokens"]


@dataclass(frozen=True, slots=True)
class TokenEstimate:
    lower: int
    point: int
    upper: int


def estimate_text_tokens(text: str) -> int:
    return (len(text.encode()) + 3) // 4


def estimate_input_tokens(request: ChatRequest) -> TokenEstimate:
    point = 3 + sum(4 + estimate_text_tokens(m.text) for m in request.messages)
    point += estimate_text_tokens(request.tools_text) + 765 * request.image_count
    return TokenEstimate(point // 2, point, point * 2)
