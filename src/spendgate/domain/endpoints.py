"""OpenAI's embeddings and legacy text completions, parsed into the request model planning
reads (``ChatRequest``), so both are estimated, planned, reserved and settled like chat.

Their input (``input`` / ``prompt``) is a string, a list of strings, a list of token ids or a
list of token-id lists. Token ids are counted exactly (one id is one token); strings are
estimated like message text, without chat framing (``domain/tokens.py``). Validation is one
pass over the input: a body of a million token ids is checked in linear time.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from spendgate.domain.requests import ChatRequest, Message, Protocol, RequestError

__all__ = [
    "COMPLETIONS_DEFAULT_MAX_TOKENS",
    "MAX_EMBEDDING_INPUTS",
    "PromptInput",
    "parse_completion",
    "parse_embeddings",
    "parse_prompt",
]

# OpenAI's default ``max_tokens`` of a legacy completion: its output bound when none is set.
COMPLETIONS_DEFAULT_MAX_TOKENS = 16
# OpenAI's bounds: inputs per embeddings request, ``n``, ``best_of``, ``logprobs``, stops.
MAX_EMBEDDING_INPUTS = 2048
_MAX_CHOICES = 128
_MAX_BEST_OF = 20
_MAX_LOGPROBS = 5
_MAX_STOPS = 4
_ENCODING_FORMATS = frozenset({"float", "base64"})
_INT_ONLY = {int}
_STR_ONLY = {str}


@dataclass(frozen=True, slots=True)
class PromptInput:
    """An ``input`` / ``prompt``: its strings, how many token ids it gives, and how many
    separate inputs (prompts, or texts to embed) it holds."""

    texts: tuple[str, ...]
    token_ids: int
    items: int


def parse_prompt(value: object, field: str, *, allow_empty_text: bool) -> PromptInput:
    """The four shapes OpenAI accepts: ``"text"``, ``["a", "b"]``, ``[1, 2, 3]`` and
    ``[[1, 2], [3]]``. Raises ``RequestError`` naming ``field`` for anything else."""
    if isinstance(value, str):
        if not value and not allow_empty_text:
            raise RequestError(f"{field}: an empty string has nothing to read", field)
        return PromptInput((value,), 0, 1)
    if not isinstance(value, list) or not value:
        raise RequestError(
            f"{field}: expected a string, a list of strings, a list of token ids or a list "
            "of token-id lists (non-empty)",
            field,
        )
    first = value[0]
    if isinstance(first, str):
        if set(map(type, value)) != _STR_ONLY:
            raise RequestError(f"{field}: a list of strings may hold only strings", field)
        if not allow_empty_text and not all(value):
            raise RequestError(f"{field}: an empty string has nothing to read", field)
        return PromptInput(tuple(value), 0, len(value))
    if type(first) is int:
        return PromptInput((), _token_ids(value, field, field), 1)
    if isinstance(first, list):
        total = 0
        for index, ids in enumerate(value):
            if not isinstance(ids, list) or not ids:
                raise RequestError(
                    f"{field}[{index}]: expected a non-empty list of token ids", field
                )
            total += _token_ids(ids, f"{field}[{index}]", field)
        return PromptInput((), total, len(value))
    raise RequestError(
        f"{field}: expected strings or token ids (non-negative integers), not "
        f"{type(first).__name__}",
        field,
    )


def _token_ids(ids: list[Any], where: str, field: str) -> int:
    # Exactly ``int``: a boolean is not a token id. Both passes run in C (a generator over
    # the ids measured 4x slower).
    if set(map(type, ids)) != _INT_ONLY or min(ids) < 0:
        raise RequestError(f"{where}: token ids must be non-negative integers", field)
    return len(ids)


def parse_embeddings(body: Mapping[str, Any]) -> ChatRequest:
    """``POST /v1/embeddings``: one text per input; no output (``choices`` 0)."""
    model = _model(body)
    prompt = parse_prompt(body.get("input"), "input", allow_empty_text=False)
    if prompt.items > MAX_EMBEDDING_INPUTS:
        raise RequestError(f"input: at most {MAX_EMBEDDING_INPUTS} inputs per request", "input")
    encoding = body.get("encoding_format")
    if encoding is not None and encoding not in _ENCODING_FORMATS:
        raise RequestError("encoding_format: expected 'float' or 'base64'", "encoding_format")
    _check_int(body, "dimensions", 1, None)
    _check_type(body, "user", str, "a string")
    return _request(model, prompt, Protocol.EMBEDDINGS, None, 0, stream=False)


def parse_completion(body: Mapping[str, Any]) -> ChatRequest:
    """``POST /v1/completions`` (legacy): the output bound is ``max_tokens`` (16 when
    unset, OpenAI's default) for each of ``best_of`` (at least ``n``) completions of each
    prompt, as OpenAI generates and bills them all."""
    model = _model(body)
    prompt = parse_prompt(body.get("prompt"), "prompt", allow_empty_text=True)
    max_tokens = _check_int(body, "max_tokens", 0, None)
    if max_tokens is None:
        max_tokens = COMPLETIONS_DEFAULT_MAX_TOKENS
    n = _check_int(body, "n", 1, _MAX_CHOICES) or 1
    best_of = _check_int(body, "best_of", 1, _MAX_BEST_OF) or n
    if best_of < n:
        raise RequestError(f"best_of: must be at least n ({n})", "best_of")
    stream = _check_type(body, "stream", bool, "a boolean") is True
    if stream and best_of > 1:
        raise RequestError("best_of: cannot be above 1 when streaming", "best_of")
    options = _check_type(body, "stream_options", Mapping, "an object")
    if options is not None:
        _check_type(options, "include_usage", bool, "a boolean", "stream_options.")
    _check_type(body, "echo", bool, "a boolean")
    _check_int(body, "logprobs", 0, _MAX_LOGPROBS)
    _check_int(body, "seed", None, None)
    _check_type(body, "user", str, "a string")
    _check_type(body, "logit_bias", Mapping, "an object")
    for name, (low, high) in _SAMPLING.items():
        _check_number(body, name, low, high)
    stop = body.get("stop")
    if stop is not None and not isinstance(stop, str):
        if not isinstance(stop, list) or not all(isinstance(item, str) for item in stop):
            raise RequestError("stop: expected a string or a list of strings", "stop")
        if len(stop) > _MAX_STOPS:
            raise RequestError(f"stop: at most {_MAX_STOPS} sequences", "stop")
    suffix = _check_type(body, "suffix", str, "a string")
    if suffix:  # read after each prompt
        texts = prompt.texts + (suffix,) * prompt.items
        prompt = PromptInput(texts, prompt.token_ids, prompt.items)
    # Every prompt gets ``best_of`` completions; max_tokens 0 (an echo of the prompt's
    # logprobs) generates nothing.
    choices = prompt.items * best_of if max_tokens else 0
    return _request(model, prompt, Protocol.COMPLETIONS, max_tokens or None, choices, stream=stream)


_SAMPLING = {
    "temperature": (0, 2),
    "top_p": (0, 1),
    "presence_penalty": (-2, 2),
    "frequency_penalty": (-2, 2),
}


def _request(
    model: str,
    prompt: PromptInput,
    protocol: Protocol,
    max_tokens: int | None,
    choices: int,
    *,
    stream: bool,
) -> ChatRequest:
    return ChatRequest(
        model=model,
        messages=tuple(Message("user", text) for text in prompt.texts),
        max_tokens=max_tokens,
        stream=stream,
        protocol=protocol,
        choices=choices,
        token_ids=prompt.token_ids,
    )


def _model(body: Mapping[str, Any]) -> str:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise RequestError("model: expected a non-empty string", "model")
    return model


def _check_type(
    body: Mapping[str, Any], key: str, kind: type, described: str, prefix: str = ""
) -> Any:
    value = body.get(key)
    if value is not None and not isinstance(value, kind):
        raise RequestError(f"{prefix}{key}: expected {described}", f"{prefix}{key}")
    return value


def _check_int(body: Mapping[str, Any], key: str, low: int | None, high: int | None) -> int | None:
    value = body.get(key)
    if value is None:
        return None
    if type(value) is not int:
        raise RequestError(f"{key}: expected an integer", key)
    if (low is not None and value < low) or (high is not None and value > high):
        bounds = f"at least {low}" if high is None else f"between {low} and {high}"
        raise RequestError(f"{key}: {value} is not {bounds}", key)
    return value


def _check_number(body: Mapping[str, Any], key: str, low: float, high: float) -> None:
    value = body.get(key)
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RequestError(f"{key}: expected a number", key)
    if not low <= value <= high:  # NaN fails this too
        raise RequestError(f"{key}: {value} is not between {low} and {high}", key)
