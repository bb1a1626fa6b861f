"""Prompt complexity in [0, 1], explained by the terms that produced it.

The score is a weighted sum of bounded signals. Weights sum to 1, so each term's
``contribution`` is directly its share of the score, which is what ``models explain`` shows.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from spendgate.domain.requests import ChatRequest

__all__ = ["ComplexityScore", "ComplexityTerm", "score_complexity"]


@dataclass(frozen=True, slots=True)
class ComplexityTerm:
    name: str
    contribution: float
    detail: str


@dataclass(frozen=True, slots=True)
class ComplexityScore:
    score: float
    terms: tuple[ComplexityTerm, ...]

    def describe(self) -> str:
        active = [term for term in self.terms if term.contribution > 0]
        if not active:
            return f"complexity {self.score:.2f}: short plain prompt"
        parts = ", ".join(f"{term.name} +{term.contribution:.2f}" for term in active)
        return f"complexity {self.score:.2f}: {parts}"


_W_LENGTH = 0.25
_W_REASONING = 0.35
_W_CODE = 0.20
_W_STRUCTURED = 0.08
_W_IMAGES = 0.07
_W_DEPTH = 0.05

# Prompt length (characters of the whole conversation) at which the length term saturates;
# it grows with the square root, so the first thousands of characters matter most.
_LENGTH_FULL = 8_000
# Turns at which conversation depth saturates.
_DEPTH_FULL = 16
# Distinct reasoning cues at which the reasoning term saturates.
_CUES_FULL = 3
# Only the head of the last user message is scanned for cues: cost stays flat for huge prompts.
_SCAN_LIMIT = 8_000

# Reasoning cues in several languages. Each alternative is one cue family; matching is on
# lower-cased text. Kept to stems so inflections match (analy[sz]e, analysiere, analyzuj…).
_REASONING_CUES = re.compile(
    "|".join(
        (
            # English
            r"step[- ]by[- ]step",
            r"\bprove\b|\bproof\b",
            r"\banaly[sz]",
            r"\bderive|\bderivation",
            r"\btrade-?offs?\b",
            r"\bcompare\b|\bcomparison\b",
            r"\bwhy\b",
            r"\boptimi[sz]e",
            r"\barchitect",
            r"\bdebug",
            r"\breason(?:ing)?\b",
            r"\bevaluate\b",
            r"\bdesign\b",
            # German
            r"schritt für schritt|beweise|analysiere|vergleiche|warum|begründe",
            # French
            r"étape par étape|démontre|analyse[zr]?\b|compare[zr]\b|pourquoi|justifie",
            # Spanish / Portuguese
            r"paso a paso|passo a passo|demuestra|analiza|compara\b|por qué|por que",
            # Czech / Polish
            r"krok za krokem|dokaž|analyzuj|porovnej|proč|krok po kroku|udowodnij|dlaczego",
            # Russian
            r"шаг за шагом|докажи|проанализируй|сравни|почему|обоснуй",
            # Chinese / Japanese / Korean
            r"一步一步|逐步|证明|分析|比较|推导|为什么|段階的|証明|比較|なぜ|단계별|증명|분석|비교|왜",
        )
    )
)
_CODE_HINTS = re.compile(
    r"```|\bdef \w+\(|\bclass \w+|\bfunction\s*\w*\(|\bfn \w+|#include|\bimport \w+|"
    r"\bSELECT\b.+\bFROM\b|=>|::|;\s*\n"
)


def score_complexity(request: ChatRequest) -> ComplexityScore:
    total_chars = 0
    turns = 0
    for message in request.messages:
        total_chars += len(message.text)
        if message.role in ("user", "assistant"):
            turns += 1
    last_user = request.last_user_text[:_SCAN_LIMIT]
    lowered = last_user.lower()

    length = min(1.0, total_chars / _LENGTH_FULL) ** 0.5
    cues = {match.group(0) for match in _REASONING_CUES.finditer(lowered)}
    reasoning = min(1.0, len(cues) / _CUES_FULL)
    fences = last_user.count("```") // 2
    code_hits = len(_CODE_HINTS.findall(last_user, 0, _SCAN_LIMIT))
    code = 1.0 if fences else min(1.0, code_hits / 4)
    structured = 1.0 if request.json_mode or request.tool_count else 0.0
    images = min(1.0, request.image_count / 2)
    depth = min(1.0, max(0, turns - 1) / _DEPTH_FULL)

    terms = (
        ComplexityTerm("length", _W_LENGTH * length, f"{total_chars} characters"),
        ComplexityTerm(
            "reasoning_cues",
            _W_REASONING * reasoning,
            f"{len(cues)} cue(s)" + (f": {', '.join(sorted(cues)[:5])}" if cues else ""),
        ),
        ComplexityTerm(
            "code", _W_CODE * code, f"{fences} fenced block(s), {code_hits} code marker(s)"
        ),
        ComplexityTerm(
            "structured_output",
            _W_STRUCTURED * structured,
            ", ".join(
                part
                for part in (
                    "JSON mode" if request.json_mode else "",
                    f"{request.tool_count} tool(s)" if request.tool_count else "",
                )
                if part
            )
            or "none",
        ),
        ComplexityTerm("images", _W_IMAGES * images, f"{request.image_count} image(s)"),
        ComplexityTerm("conversation_depth", _W_DEPTH * depth, f"{turns} turn(s)"),
    )
    score = min(1.0, sum(term.contribution for term in terms))
    return ComplexityScore(round(score, 4), terms)
