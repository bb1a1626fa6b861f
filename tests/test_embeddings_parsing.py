"""The pure parsing and estimation of embeddings and legacy-completion inputs
(``domain/endpoints.py``): every shape OpenAI accepts, token ids counted exactly, strings
estimated unframed, output bounds, and clear refusals (Hypothesis for the shapes)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from spendgate.domain.endpoints import (
    COMPLETIONS_DEFAULT_MAX_TOKENS,
    parse_completion,
    parse_embeddings,
    parse_prompt,
)
from spendgate.domain.requests import Protocol, RequestError
from spendgate.domain.tokens import SLACK_TOKENS, UPPER_MARGIN, estimate_input_tokens
from spendgate.domain.tokens import _point as point_of

token_ids = st.lists(st.integers(min_value=0, max_value=200_000), min_size=1, max_size=50)
texts = st.text(min_size=1, max_size=200)


@given(st.lists(token_ids, min_size=1, max_size=20))
def test_token_id_lists_are_counted_exactly(lists: list[list[int]]) -> None:
    request = parse_embeddings({"model": "e", "input": lists})
    estimate = estimate_input_tokens(request)
    total = sum(map(len, lists))
    assert estimate.lower == estimate.point == estimate.upper == total
    assert request.choices == 0  # no output


@given(token_ids)
def test_one_token_id_list_is_one_input(ids: list[int]) -> None:
    prompt = parse_prompt(ids, "input", allow_empty_text=False)
    assert (prompt.texts, prompt.token_ids, prompt.items) == ((), len(ids), 1)


@given(st.lists(texts, min_size=1, max_size=20))
def test_strings_are_estimated_unframed_each_with_its_margin(strings: list[str]) -> None:
    estimate = estimate_input_tokens(parse_embeddings({"model": "e", "input": strings}))
    points = [point_of(text) for text in strings]
    assert estimate.lower <= estimate.point <= estimate.upper
    assert estimate.point == round(sum(points))  # no chat framing
    upper = sum(p * (1 + UPPER_MARGIN) + SLACK_TOKENS for p in points)
    assert estimate.upper == math.ceil(upper)


@given(
    st.one_of(texts, st.lists(texts, min_size=1, max_size=5), token_ids),
    st.integers(min_value=1, max_value=4),
    st.integers(min_value=0, max_value=3),
    st.one_of(st.none(), st.integers(min_value=1, max_value=500)),
)
def test_a_completion_reserves_max_tokens_for_every_best_of_of_every_prompt(
    prompt: object, n: int, extra: int, max_tokens: int | None
) -> None:
    body: dict[str, object] = {"model": "m", "prompt": prompt, "n": n, "best_of": n + extra}
    if max_tokens is not None:
        body["max_tokens"] = max_tokens
    request = parse_completion(body)
    items = len(prompt) if isinstance(prompt, list) and isinstance(prompt[0], str) else 1
    assert request.protocol is Protocol.COMPLETIONS
    assert request.max_tokens == (max_tokens or COMPLETIONS_DEFAULT_MAX_TOKENS)
    assert request.choices == items * (n + extra)


def test_a_suffix_is_read_after_every_prompt() -> None:
    plain = estimate_input_tokens(parse_completion({"model": "m", "prompt": ["a", "b"]}))
    suffixed = parse_completion({"model": "m", "prompt": ["a", "b"], "suffix": "tail"})
    assert [m.text for m in suffixed.messages] == ["a", "b", "tail", "tail"]
    assert estimate_input_tokens(suffixed).point > plain.point


def test_max_tokens_zero_generates_nothing() -> None:
    request = parse_completion({"model": "m", "prompt": "x", "max_tokens": 0, "echo": True})
    assert request.choices == 0


@given(
    st.lists(
        st.one_of(st.text(max_size=3), st.integers(), st.lists(st.integers()), st.none()),
        min_size=2,
        max_size=6,
    ).filter(lambda items: len({type(item) for item in items}) > 1)
)
def test_mixed_shapes_are_refused(items: list[object]) -> None:
    with pytest.raises(RequestError) as refused:
        parse_embeddings({"model": "e", "input": items})
    assert refused.value.param == "input"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "m", "prompt": "x", "n": 3, "best_of": 2}, "best_of"),
        ({"model": "m", "prompt": "x", "best_of": 2, "stream": True}, "best_of"),
        ({"model": "m", "prompt": "x", "logprobs": 6}, "logprobs"),
        ({"model": "m", "prompt": "x", "stop": ["a"] * 5}, "stop"),
        ({"model": "m", "prompt": "x", "temperature": 3}, "temperature"),
        (
            {"model": "m", "prompt": "x", "stream_options": {"include_usage": "yes"}},
            "stream_options.include_usage",
        ),
        ({"model": "m", "prompt": "x", "max_tokens": -1}, "max_tokens"),
        ({"model": "m", "prompt": "x", "echo": 1}, "echo"),
        ({"model": "m"}, "prompt"),
        ({"prompt": "x"}, "model"),
    ],
)
def test_malformed_completions_name_the_field(body: dict[str, object], param: str) -> None:
    with pytest.raises(RequestError) as refused:
        parse_completion(body)
    assert refused.value.param == param


def test_a_million_token_ids_parse_in_one_pass() -> None:
    request = parse_embeddings({"model": "e", "input": list(range(1_000_000))})
    assert estimate_input_tokens(request).upper == 1_000_000
