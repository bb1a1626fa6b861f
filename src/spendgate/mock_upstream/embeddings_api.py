"""OpenAI embeddings (``POST /v1/embeddings``): deterministic unit vectors, one per input,
from a hash of (seed, input); usage by the mock's token rule (``legacy_prompt``)."""

from __future__ import annotations

import base64
import hashlib
import math
import struct
from typing import Any

import orjson

from spendgate.mock_upstream.legacy_prompt import meter_prompt
from spendgate.mock_upstream.reply import RequestError
from spendgate.mock_upstream.textgen import PromptMeter

__all__ = ["DEFAULT_DIMENSIONS", "answer"]

# Short vectors by default (real models return 1,536 or 3,072): tests read them, and a batch
# of 2,048 inputs stays small. ``dimensions`` asks for another length.
DEFAULT_DIMENSIONS = 16


def answer(body: dict[str, Any], seed: int) -> bytes:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise RequestError("you must provide a model parameter", "model")
    dimensions = body.get("dimensions", DEFAULT_DIMENSIONS)
    if type(dimensions) is not int or dimensions < 1:
        raise RequestError("'dimensions' must be an integer >= 1", "dimensions")
    encoding = body.get("encoding_format") or "float"
    if encoding not in ("float", "base64"):
        raise RequestError("'encoding_format' must be 'float' or 'base64'", "encoding_format")
    inputs = body.get("input")
    tokens, count = meter_prompt(inputs, "input", PromptMeter(seed))
    items = inputs if isinstance(inputs, list) and count > 1 else [inputs]
    data = [
        {
            "object": "embedding",
            "index": index,
            "embedding": _encode(_vector(seed, item, dimensions), encoding),
        }
        for index, item in enumerate(items)
    ]
    usage = {"prompt_tokens": tokens, "total_tokens": tokens}
    return orjson.dumps({"object": "list", "data": data, "model": model, "usage": usage})


def _vector(seed: int, item: Any, dimensions: int) -> list[float]:
    raw = hashlib.shake_256(f"{seed}:{orjson.dumps(item).decode()}".encode()).digest(2 * dimensions)
    values = [v / 32768 for v in struct.unpack(f"<{dimensions}h", raw)]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return [v / norm for v in values]


def _encode(vector: list[float], encoding: str) -> list[float] | str:
    if encoding == "float":
        return vector
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
