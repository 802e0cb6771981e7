"""The stub protocol: how the spawner talks to ``execstub.c``, the C warm
child that sets a run up and execs the program.

Apart because it is a binary layout that must match the C side exactly
(``execstub.c``, main()): one place to read beside it. The Python warm
child gets the same set-up as a marshalled dict (:mod:`._wire`) instead.
"""

from __future__ import annotations

import os
import struct

from sio.workers._engine.supervisor._linux import U64_MASK as _U64_MASK

#: exit status of a child of the spawner (the init, or a Python warm child
#: in the view) that could not execute the stub
STUB_FAILED = 126
#: what the stub writes on its socket once it runs (see execstub.c)
STUB_READY = b"R"


_STUB_MAGIC = 0x53494F53
(_STUB_DROP_UID, _STUB_LANDLOCK, _STUB_ADDRESS_SPACE, _STUB_VIEW, _STUB_PROC,
 _STUB_FAKE_TSC) = 1, 2, 4, 8, 16, 32
_U32 = struct.Struct("<I")


def pack_setup(setup: dict, program: bytes) -> bytes:
    """The run's set-up in the stub's binary layout (see execstub.c, main()),
    with its u32 length in front."""
    def string(value: str | bytes) -> bytes:
        data = os.fsencode(value) + b"\0"
        return _U32.pack(len(data)) + data

    flags = ((_STUB_DROP_UID if setup["drop_uid"] else 0)
             | (_STUB_LANDLOCK if setup["landlock"] else 0)
             | (_STUB_ADDRESS_SPACE if setup["address_space"] is not None else 0)
             | (_STUB_VIEW if setup["root"] else 0)
             | (_STUB_PROC if setup["proc"] else 0)
             | (_STUB_FAKE_TSC if setup["fake_tsc"] else 0))
    parts = [struct.pack("<IiIQII", _STUB_MAGIC, setup["cpu"], flags,
                         (setup["address_space"] or 0) & _U64_MASK, setup["uid"],
                         len(setup["rlimits"]))]
    for res, soft, hard in setup["rlimits"]:
        # RLIM_INFINITY is -1 in Python, all ones in the kernel
        parts.append(struct.pack("<IIQQ", res, 0, soft & _U64_MASK, hard & _U64_MASK))
    parts += [string(setup["cwd"]), string(setup["exe"]), string(setup["root"]),
              _U32.pack(len(setup["argv"]))]
    parts += [string(a) for a in setup["argv"]]
    parts.append(_U32.pack(len(setup["env"])))
    parts += [string(e) for e in setup["env"]]
    parts += [_U32.pack(len(program)), program]
    body = b"".join(parts)
    return _U32.pack(len(body)) + body
