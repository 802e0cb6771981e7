"""Messages between the worker and its spawner: one ``marshal``-encoded
value (dicts, lists, str, bytes, int, None) per message, length-prefixed,
with file descriptors attached to the first chunk (SCM_RIGHTS).

marshal, not pickle: it is built into the interpreter (the spawner stays
small, which makes every fork cheaper) and it only carries plain data.
Works with :class:`socket.socket` and with the spawner's bare
``_socket.socket`` alike."""

from __future__ import annotations

import array
import marshal
import struct

TYPE_CHECKING = False  # typing is not imported at run time (see _spawner)
if TYPE_CHECKING:
    from typing import Any

_HEADER = struct.Struct("<Q")
MAX_FDS = 8
SOL_SOCKET = 1
SCM_RIGHTS = 1


def send(sock: Any, value: Any, fds: list[int] | tuple[int, ...] = ()) -> None:
    data = marshal.dumps(value)
    send_bytes(sock, _HEADER.pack(len(data)) + data, fds)


def send_bytes(sock: Any, data: bytes, fds: list[int] | tuple[int, ...] = ()) -> None:
    """Send ``data`` whole, with ``fds`` attached to its first bytes (also
    for messages of another layout, such as the supervisor stub's)."""
    payload = memoryview(data)
    if fds:
        # The descriptors travel with the first bytes; the rest follows.
        ancillary = [(SOL_SOCKET, SCM_RIGHTS, array.array("i", fds).tobytes())]
        sent = sock.sendmsg([payload[:_HEADER.size]], ancillary)
        payload = payload[sent:]
    while payload:
        payload = payload[sock.send(payload):]


def recv_bytes(sock: Any, size: int) -> tuple[bytes, list[int]]:
    """Up to ``size`` bytes (empty at end of stream) and the descriptors
    attached to them."""
    data, ancdata, _flags, _addr = sock.recvmsg(size, _cmsg_space(MAX_FDS * 4))
    return data, _fds(ancdata)


def _fds(ancdata: list) -> list[int]:
    fds: list[int] = []
    for level, kind, data in ancdata:
        if level == SOL_SOCKET and kind == SCM_RIGHTS:
            fds += array.array("i", data[:len(data) - len(data) % 4]).tolist()
    return fds


def recv(sock: Any) -> tuple[Any, list[int]] | None:
    """The next ``(value, fds)``, or None at end of stream."""
    header, fds = recv_bytes(sock, _HEADER.size)
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
    return marshal.loads(buf), fds


def _cmsg_space(length: int) -> int:
    # CMSG_SPACE on x86-64 Linux: a 16-byte header, data padded to 8 bytes.
    return 16 + ((length + 7) & ~7)
