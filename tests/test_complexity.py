"""Complexity score: bounded, explainable, multilingual reasoning cues."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conftest import chat
from spendgate.domain.complexity import score_complexity
from spendgate.domain.requests import ChatRequest


def term(request: ChatRequest, name: str) -> float:
    return next(t.contribution for t in score_complexity(request).terms if t.name == name)


def test_short_plain_prompt_is_simple() -> None:
    score = score_complexity(chat("What's the weather like?"))
    assert score.score < 0.1
    assert score.describe().startswith("complexity 0.01: length")


@pytest.mark.parametrize(
    "prompt",
    [
        "Explain step by step and prove that the algorithm terminates; compare alternatives.",
        "Erkläre Schritt für Schritt, beweise die Aussage und vergleiche beide Ansätze.",
        "Explique étape par étape, démontre le théorème et compare les deux approches.",
        "Explica paso a paso, demuestra el teorema y compara ambos enfoques.",
        "Vysvětli krok za krokem, dokaž tvrzení a porovnej oba přístupy.",
        "Объясни шаг за шагом, докажи утверждение и сравни оба подхода.",
        "请一步一步地推导并证明这个结论,然后比较两种方法。",
        "段階的に説明して、この定理を証明し、二つの方法を比較してください。",
    ],
)
def test_reasoning_cues_in_several_languages(prompt: str) -> None:
    assert term(chat(prompt), "reasoning_cues") > 0.2


def test_code_blocks_and_markers() -> None:
    assert term(chat("Fix this:\n```python\nprint(1)\n```"), "code") == pytest.approx(0.2)
    assert term(chat("def main(): pass; import os\nclass A: ...\n"), "code") > 0


def test_structured_output_images_and_depth() -> None:
    tools = [{"type": "function", "function": {"name": "f", "parameters": {}}}]
    assert term(chat("x", tools=tools), "structured_output") > 0
    assert term(chat("x", response_format={"type": "json_object"}), "structured_output") > 0
    image = {"type": "image_url", "image_url": {"url": "data:,"}}
    with_image = ChatRequest.from_openai(
        {"model": "m", "messages": [{"role": "user", "content": [image, image]}]}
    )
    assert term(with_image, "images") == pytest.approx(0.07)
    turns: list[dict[str, Any]] = [
        {"role": "user" if i % 2 == 0 else "assistant", "content": "ok"} for i in range(17)
    ]
    deep = ChatRequest.from_openai({"model": "m", "messages": turns})
    assert term(deep, "conversation_depth") == pytest.approx(0.05)


def test_terms_add_up_to_the_score() -> None:
    score = score_complexity(chat("Prove why ```x``` " + "a" * 5000, max_tokens=10))
    assert score.score == pytest.approx(sum(t.contribution for t in score.terms), abs=1e-3)


@given(st.text(max_size=3000), st.integers(min_value=1, max_value=30))
def test_score_is_always_within_bounds(text: str, turns: int) -> None:
    messages = [{"role": "user", "content": text} for _ in range(turns)]
    score = score_complexity(ChatRequest.from_openai({"model": "m", "messages": messages}))
    assert 0.0 <= score.score <= 1.0
    assert all(t.contribution >= 0 for t in score.terms)
