"""Server-sent events: an incremental decoder and the encoder."""

from __future__ import annotations

from typing import NamedTuple

import orjson


class SSEEvent(NamedTuple):
    """One server-sent event: its ``event:`` name (None when absent) and joined data.
    (A tuple: it is created per chunk on the streaming hot path.)"""

    event: str | None
    data: bytes


_DATA = b"data:"
_EVENT = b"event:"


class SSEDecoder:
    """Incremental SSE parser: feed it bytes as they arrive, in any chunking.

    Only complete events (ended by a blank line) are parsed, so no field state spans two
    ``feed`` calls: the unparsed tail simply waits in the buffer. A stream whose first line
    ends in CRLF is normalised to LF (a CR split from its LF waits in the tail).
    """

    __slots__ = ("_buffer", "_crlf")

    def __init__(self) -> None:
        self._buffer = b""
        self._crlf: bool | None = None  # decided at the first line end

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        buffer = self._buffer + chunk if self._buffer else chunk
        crlf = self._crlf
        if crlf is None:
            first = buffer.find(b"\n")
            if first < 0:
                self._buffer = buffer
                return []
            crlf = self._crlf = first > 0 and buffer[first - 1 : first] == b"\r"
        if crlf:
            buffer = buffer.replace(b"\r\n", b"\n")
        events: list[SSEEvent] = []
        start = 0
        find = buffer.find
        new = tuple.__new__  # a NamedTuple's own constructor is a slow Python function
        while True:
            line_end = find(b"\n", start)
            if line_end < 0:
                break
            if buffer[line_end + 1 : line_end + 2] == b"\n":
                # A one-line event: the shape of every OpenAI chunk.
                line = buffer[start:line_end]
                start = line_end + 2
                if line.startswith(_DATA):
                    value = line[6:] if line[5:6] == b" " else line[5:]
                    events.append(new(SSEEvent, (None, value)))
                elif line and (event := _parse_block(line)) is not None:
                    events.append(event)
                continue
            end = find(b"\n\n", line_end)
            if end < 0:
                break
            block = buffer[start:end]
            start = end + 2
            event = _parse_block(block)
            if event is not None:
                events.append(event)
        self._buffer = buffer[start:] if start else buffer
        return events

    def flush(self) -> list[SSEEvent]:
        """The event left when the stream ends without a final blank line."""
        events = self.feed(b"\n\n") if self._buffer.strip() else []
        self._buffer = b""
        return events


def _parse_block(block: bytes) -> SSEEvent | None:
    name: str | None = None
    data: list[bytes] = []
    for line in block.split(b"\n"):
        field, _, value = line.partition(b":")
        if value[:1] == b" ":
            value = value[1:]
        if field == b"data":
            data.append(value)
        elif field == b"event":
            name = value.decode("utf-8", "replace")
        # "id", "retry" and ":" comments carry nothing a translator needs.
    if not data and name is None:
        return None
    return SSEEvent(name, b"\n".join(data))


def encode_sse(payload: object, event: str | None = None) -> bytes:
    data = payload if isinstance(payload, bytes) else orjson.dumps(payload)
    if event is None:
        return b"data: " + data + b"\n\n"
    return b"event: " + event.encode() + b"\ndata: " + data + b"\n\n"
