"""Private helpers shared by the translators: shape checks that raise ``TranslationError``,
tool-argument (de)serialisation and lenient JSON loading."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import orjson

from spendgate.domain.translate.errors import TranslationError

Json = dict[str, Any]

# The data of OpenAI's last stream event.
_DONE = b"[DONE]"


def _mapping(value: object, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise TranslationError(f"{where}: expected an object", where)
    return value


def _list(value: object, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise TranslationError(f"{where}: expected a list", where)
    return value


def _str(value: object, where: str) -> str:
    if not isinstance(value, str):
        raise TranslationError(f"{where}: expected a string", where)
    return value


def _parse_arguments(arguments: object) -> Any:
    """OpenAI tool-call arguments (a JSON string) as the object Anthropic's ``input`` needs.
    Models sometimes emit invalid JSON; it is kept (wrapped) rather than lost.

    The stdlib parser, not orjson: tool arguments are small, and orjson turns integers
    beyond 64 bits into floats (silently changing an id the model passed to a tool)."""
    if isinstance(arguments, Mapping):
        return dict(arguments)
    if not isinstance(arguments, str) or not arguments.strip():
        return {}
    try:
        parsed = json.loads(arguments)
    except ValueError:
        return {"_arguments": arguments}
    return parsed if isinstance(parsed, dict) else {"_arguments": arguments}


def _dump(value: object) -> str:
    """Tool input as OpenAI's arguments string (stdlib: orjson refuses big integers)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _max_tokens(body: Mapping[str, Any]) -> int | None:
    for key in ("max_completion_tokens", "max_tokens"):
        value = body.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


def _an_blocks(content: object, where: str) -> list[Mapping[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return [_mapping(raw, f"{where}[{i}]") for i, raw in enumerate(_list(content, where))]


def _load(data: bytes) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
