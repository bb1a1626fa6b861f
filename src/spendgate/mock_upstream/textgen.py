"""The mock's tokenizer rule and its deterministic text / tool-argument generator.

Token rule (documented in docs/mock-upstream.md, relied upon by tests and benchmarks):

- a text is ``ceil(utf8_bytes / 4)`` tokens;
- a message is ``MESSAGE_OVERHEAD`` tokens of framing plus the tokens of all its text
  fragments taken together (their bytes are summed before rounding up), plus
  ``IMAGE_TOKENS`` per image or audio part and per document / file part that carries no data
  (one that does counts its data as text);
- tool definitions add the tokens of their compact JSON encoding.

Generated text is built from a fixed 256-word vocabulary indexed by the bytes of a BLAKE2b
digest of (seed, prompt): the same prompt and seed always give the same answer, on any
machine and Python version (``hash()`` is salted per process, so it is not used).
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from typing import Any

__all__ = [
    "IMAGE_TOKENS",
    "MESSAGE_OVERHEAD",
    "PromptMeter",
    "generate_text",
    "output_length",
    "text_tokens",
    "tool_arguments",
]

MESSAGE_OVERHEAD = 4
IMAGE_TOKENS = 85

# Exactly 256 words so that one digest byte picks one word with no modulo bias.
_VOCABULARY: tuple[str, ...] = tuple(
    """the of and to in is it for on with as at by from that this be are was or an not but all
    can has have more one will up out about if into time only new some could them other than
    then its also after use two how our work first well way even want because any these give
    day most us model token budget cost route cache value stream policy request reply answer
    result signal data graph table index query limit window record ledger agent session
    project user key price rate level tier quick slow small large brief clear plain simple
    robust stable steady green amber red blue light dark north south east west river stone
    cloud forest garden harbor bridge market engine circuit sensor packet frame vector matrix
    kernel thread socket buffer channel server client gateway proxy router metric counter
    gauge alert notice report summary detail context prompt output input system format schema
    field column entry batch queue task job plan step stage phase cycle loop branch merge
    commit build check test verify measure estimate forecast balance share spend save track
    watch guard control govern approve review allow block degrade escalate retry recover
    settle reserve expire refresh update create delete list show explain compare choose select
    filter sort group count sum average median peak trend spike drift hour minute second week
    month year today later early often always never again number letter story paper music
    travel orange silver golden copper bright calm fresh sharp gentle honest modest rapid
    narrow broad quiet warm""".split()
)
if len(_VOCABULARY) != 256 or len(set(_VOCABULARY)) != 256:  # pragma: no cover - edit guard
    raise RuntimeError("the mock vocabulary must hold exactly 256 distinct words")


def text_tokens(text: str) -> int:
    """Tokens of one text under the mock's rule: ``ceil(utf8_bytes / 4)``."""
    return -(-len(text.encode()) // 4)


class PromptMeter:
    """Counts prompt tokens while hashing the prompt text (one pass over the request)."""

    __slots__ = ("_hash", "_message_bytes", "tokens")

    def __init__(self, seed: int) -> None:
        # BLAKE2b's key (at most 64 bytes) mixes the seed in without hashing it separately.
        self._hash = hashlib.blake2b(key=str(seed).encode()[:64], digest_size=32)
        self._message_bytes = 0
        self.tokens = 0

    def text(self, fragment: str) -> None:
        encoded = fragment.encode()
        self._hash.update(encoded)
        self._message_bytes += len(encoded)

    def image(self) -> None:
        self.tokens += IMAGE_TOKENS

    def end_message(self) -> None:
        self.tokens += MESSAGE_OVERHEAD - (-self._message_bytes // 4)
        self._message_bytes = 0
        self._hash.update(b"\x00")  # message boundary: ["ab", "c"] and ["a", "bc"] differ

    def raw_json(self, encoded: bytes) -> None:
        """Tool definitions: counted by their JSON size, and they change the answer too."""
        self._hash.update(encoded)
        self.tokens -= -len(encoded) // 4

    def digest(self) -> bytes:
        return self._hash.digest()


def output_length(digest: bytes, mean_tokens: int) -> int:
    """A length between half and one and a half times the mean, chosen by the prompt."""
    spread = int.from_bytes(digest[:4], "big") % (mean_tokens + 1)
    return max(1, mean_tokens // 2 + spread)


def generate_text(digest: bytes, tokens: int) -> str:
    """Exactly ``tokens`` tokens of words (``4 * tokens`` ASCII bytes), ending with a period.

    A truncated answer (``max_tokens``) is a prefix of this text, so it has no final period.
    """
    if tokens <= _CACHED_TOKENS:
        return _cached_text(digest, tokens)
    return _build_text(digest, tokens)


# Benchmarks repeat the same few prompts, and an answer depends on nothing else; only
# ordinary lengths are cached so that a few huge answers cannot pin hundreds of megabytes.
_CACHED_TOKENS = 4096


@lru_cache(maxsize=2048)
def _cached_text(digest: bytes, tokens: int) -> str:
    return _build_text(digest, tokens)


def _build_text(digest: bytes, tokens: int) -> str:
    size = 4 * tokens
    if size == 0:
        return ""
    words: list[str] = []
    length = -1  # the joined length: words plus one space fewer than there are words
    block, counter = digest, 0
    while length < size:
        for byte in block:
            word = _VOCABULARY[byte]
            words.append(word)
            length += len(word) + 1
            if length >= size:
                break
        counter += 1
        block = hashlib.blake2b(digest + counter.to_bytes(4, "big")).digest()
    head = " ".join(words)[: size - 1]
    if head.endswith(" "):
        # Keep the exact length without a " ." ending: drop the space, add a comma earlier.
        head = head[:-1]
        head = head.replace(" ", ", ", 1) if " " in head else head + "s"
    return head[0].upper() + head[1:] + "."


def tool_arguments(schema: Any, digest: bytes) -> dict[str, Any]:
    """Small arguments that fit the tool's JSON schema: required properties (or the first
    two), one plausible value each. Nested schemas are not explored: tests need valid JSON
    with the right keys, not a schema-complete instance."""
    if not isinstance(schema, dict):
        return {}
    properties = schema.get("properties")
    if not isinstance(properties, dict) or not properties:
        return {}
    required = schema.get("required")
    names = [n for n in required if n in properties] if isinstance(required, list) else []
    if not names:
        names = list(properties)[:2]
    return {name: _value(properties[name], digest[i % len(digest)]) for i, name in enumerate(names)}


def _value(prop: Any, byte: int) -> Any:
    if not isinstance(prop, dict):
        return _VOCABULARY[byte]
    enum = prop.get("enum")
    if isinstance(enum, list) and enum:
        return enum[byte % len(enum)]
    kind = prop.get("type")
    if isinstance(kind, list):  # ["string", "null"]: the first non-null type
        kind = next((k for k in kind if k != "null"), "string")
    values: dict[Any, Any] = {
        "integer": byte % 100,
        "number": byte / 8,
        "boolean": byte % 2 == 0,
        "array": [_VOCABULARY[byte]],
        "object": {},
        "null": None,
    }
    return values.get(kind, _VOCABULARY[byte])
