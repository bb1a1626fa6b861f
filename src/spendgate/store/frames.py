"""Length-prefixed pickle frames over a pipe, between the gateway and its journal writer.

Both ends are our own code in the same installation, so pickle is safe here; it is also the
cheapest serialiser for the tuples of ``compact`` (C all the way down). A frame is written in
one ``os.write`` call where the pipe takes it whole.
"""

from __future__ import annotations

import os
import pickle
import struct
from typing import IO, Any

__all__ = ["read_frame", "write_frame"]

_HEADER = struct.Struct("!I")


def write_frame(fd: int, message: Any) -> None:
    """Write one frame (blocks while the pipe is full; ``OSError`` if the reader is gone)."""
    payload = pickle.dumps(message, pickle.HIGHEST_PROTOCOL)
    view = memoryview(_HEADER.pack(len(payload)) + payload)
    while view:
        view = view[os.write(fd, view) :]


def read_frame(stream: IO[bytes]) -> Any | None:
    """The next frame, or None at the end of the stream (the other side closed or died)."""
    header = stream.read(_HEADER.size)
    if len(header) < _HEADER.size:
        return None
    (size,) = _HEADER.unpack(header)
    payload = stream.read(size)
    if len(payload) < size:
        return None
    return pickle.loads(payload)
