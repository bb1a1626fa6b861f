"""Prompt complexity in [0, 1], explained by the terms that produced it.

The score is a weighted sum of bounded signals. Weights sum to 1, so each term's
``contribution`` is directly its share of the score, which is what ``models explain`` shows.
"""

from __future__ import annotations

import string
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
# Only the head and tail of the last user message are scanned for cues (instructions sit
# there), so the cost stays flat for huge prompts.
_SCAN_HEAD = 3_000
_SCAN_TAIL = 1_000

# Reasoning cues in several languages, matched on lower-cased text. Whole words are looked up
# in a set (one C-level intersection); phrases and CJK cues by substring. A regex alternation
# of all of them was measured ~20x slower: it retries every branch at every position.
_CUE_WORDS = frozenset(
    # English
    "prove proof proofs analyze analyse analyzing analysing analysis derive derivation "
    "tradeoff tradeoffs trade-off trade-offs compare comparison why optimize optimise "
    "optimizing optimising optimization architecture architect debug debugging reason "
    "reasoning evaluate design rigorous justify "
    # German
    "beweise beweis analysiere vergleiche warum begründe optimiere "
    # French
    "démontre démontrer analysez analyser comparez comparer pourquoi justifie justifiez "
    # Spanish / Portuguese
    "demuestra demostrar analiza analizar compara comparar porque prova analise "
    # Czech / Polish
    "dokaž dokažte analyzuj analyzujte porovnej porovnejte proč zdůvodni udowodnij "
    "przeanalizuj porównaj dlaczego "
    # Russian
    "докажи докажите проанализируй сравни сравните почему обоснуй".split()
)
_CUE_PHRASES = (
    "step by step",
    "step-by-step",
    "schritt für schritt",
    "étape par étape",
    "paso a paso",
    "passo a passo",
    "por qué",
    "krok za krokem",
    "krok po kroku",
    "шаг за шагом",
    # Chinese, Japanese, Korean (no word boundaries)
    "一步一步",
    "逐步",
    "证明",
    "分析",
    "比较",
    "推导",
    "为什么",
    "段階的",
    "証明",
    "比較",
    "なぜ",
    "단계별",
    "증명",
    "분석",
    "비교",
)
# Punctuation becomes spaces so that str.split() yields bare words (C-level, ~3x faster than
# a word regex); apostrophes and hyphens stay inside words ("trade-off").
_PUNCTUATION_TO_SPACE = str.maketrans(
    dict.fromkeys(string.punctuation.replace("'", "").replace("-", ""), " ")
)
_CODE_MARKERS = (
    "def ",
    "class ",
    "function",
    "#include",
    "import ",
    "select ",
    "=>",
    "::",
    ";\n",
    "return ",
    "fn ",
)


def score_complexity(request: ChatRequest) -> ComplexityScore:
    total_chars = 0
    turns = 0
    for message in request.messages:
        total_chars += len(message.text)
        if message.role in ("user", "assistant"):
            turns += 1
    text = request.last_user_text
    if len(text) > _SCAN_HEAD + _SCAN_TAIL:
        text = text[:_SCAN_HEAD] + "\n" + text[-_SCAN_TAIL:]
    lowered = text.lower()

    length = min(1.0, total_chars / _LENGTH_FULL) ** 0.5
    cues = set(_CUE_WORDS.intersection(lowered.translate(_PUNCTUATION_TO_SPACE).split()))
    cues.update(phrase for phrase in _CUE_PHRASES if phrase in lowered)
    reasoning = min(1.0, len(cues) / _CUES_FULL)
    fences = text.count("```") // 2
    code_hits = sum(1 for marker in _CODE_MARKERS if marker in lowered)
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
