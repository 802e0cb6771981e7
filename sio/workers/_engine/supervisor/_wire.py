"""Messages between the worker and its spawner: a length-prefixed pickle per
message, with file descriptors attached to the first chunk (SCM_RIGHTS).

Both ends are our own processes joined by a private socketpair, so pickle is
safe here (nothing else can write to that socket)."""

from __future__ import annotations

import pickle
import socket
import struct
from typing import Any

_HEADER = struct.Struct("<Q")
MAX_FDS = 8


def send(sock: socket.socket, obj: Any, fds: list[int] | tuple[int, ...] = ()) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    payload = _HEADER.pack(len(data)) + data
    if fds:
        # The descriptors travel with the first bytes; the rest follows.
        sent = socket.send_fds(sock, [payload[:_HEADER.size]], list(fds))
        payload = payload[sent:]
    if payload:
        sock.sendall(payload)


def recv(sock: socket.socket) -> tuple[Any, list[int]] | None:
    """The next message and its descriptors, or None at end of stream."""
    header, fds, _flags, _addr = socket.recv_fds(sock, _HEADER.size, MAX_FDS)
    if not header:
        return None
    while len(header) < _HEADER.size:
        more = sock.recv(_HEADER.size - len(header))
        if not more:
            raise EOFError("truncated message header")
        header += more
    (size,) = _HEADER.unpack(header)
    buf = bytearray(size)
    view = memoryview(buf)
    got = 0
    while got < size:
        n = sock.recv_into(view[got:], size - got)
        if n == 0:
            raise EOFError("truncated message")
        got += n
    return pickle.loads(buf), fds
