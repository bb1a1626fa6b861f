"""Bounds on the shape of a JSON body, checked before it is decoded.

Decoding allocates one Python object per JSON value: 8 MB of ``[{},{},…]`` is 2.7 million
dicts, hundreds of MB and a stalled event loop. Nesting deeper than orjson can re-encode (255)
would fail later, when the body is sent upstream. ``check_json_shape`` refuses both first.

It works on the body's skeleton: one C-speed ``translate`` pass keeps only the bytes that make
the structure (brackets, commas, quotes, backslashes), so a long prompt costs one pass over
its text. Brackets and commas inside strings only overcount; when a bound is crossed, the
strings are cut out and the count is redone exactly, so a prompt full of code is not refused
for the braces in its text.
"""

from __future__ import annotations

from typing import Final

__all__ = ["MAX_JSON_DEPTH", "MAX_JSON_VALUES", "JsonShapeError", "check_json_shape"]

MAX_JSON_DEPTH: Final = 64  # nested objects / arrays
MAX_JSON_VALUES: Final = 100_000  # objects and arrays, and the elements / members within them

# Arrays count as objects here: depth and counts do not care which bracket it is.
_AS_BRACES: Final = bytes.maketrans(b"[]", b"{}")
_NOT_SKELETON: Final = bytes(b for b in range(256) if b not in b'[]{},"\\')


class JsonShapeError(ValueError):
    """The body holds too many values or nests too deep; the message says which bound."""


def check_json_shape(
    body: bytes, *, max_depth: int = MAX_JSON_DEPTH, max_values: int = MAX_JSON_VALUES
) -> None:
    """Raise ``JsonShapeError`` if ``body`` (JSON text) nests deeper than ``max_depth`` or holds
    more than ``max_values`` values. Malformed JSON is left for the decoder to report."""
    skeleton = body.translate(_AS_BRACES, _NOT_SKELETON)
    opens = skeleton.count(b"{")
    if opens <= max_depth and opens + skeleton.count(b",") < max_values:
        return
    if b"\\" in skeleton and b'\\"' in skeleton and b'\\"' in body:  # memchr first
        # Escaped quotes: drop them (escaped backslashes first) so every quote left delimits
        # a string.
        unescaped = body.replace(b"\\\\", b"").replace(b'\\"', b"")
        skeleton = unescaped.translate(_AS_BRACES, _NOT_SKELETON)
    if skeleton.count(b'"') > 4 * max_values:  # each string is a key or an element
        raise _too_many(max_values)
    structure = b"".join(skeleton.split(b'"')[::2])
    if structure.count(b"{") + structure.count(b",") >= max_values:
        raise _too_many(max_values)
    brackets = structure.translate(None, b",\\")
    for _ in range(max_depth):  # each pass removes exactly the innermost level
        if not brackets:
            return
        brackets = brackets.replace(b"{}", b"")
    if brackets:
        raise JsonShapeError(f"The body nests JSON objects and arrays deeper than {max_depth}.")


def _too_many(max_values: int) -> JsonShapeError:
    return JsonShapeError(
        f"The body holds more than {max_values} JSON values (objects, arrays and their "
        "elements); split the request."
    )
