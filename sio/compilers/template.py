"""``foo``: the example compiler of the original, kept as a template for
writing one.

It accepts ``compiler`` = ``foo.1_0`` or ``foo.2_0`` and "compiles" the
source into a shell script that prints the source's size in bytes (version
1.0) or twice that (2.0). ``exec_info`` is ``executable``.

A real compiler is better written as a :class:`~sio.compilers.common.Compiler`
subclass with variants as data (see :mod:`sio.compilers.system_gcc`).
"""

from __future__ import annotations

import os
from typing import Any

from sio.compilers.common import fetch_file
from sio.workers.errors import UsageError
from sio.workers.results import ResultCode
from sio.workers.util import tempcwd

__all__ = ["run", "run_default"]

_FACTORS = {"foo.1_0": 1, "foo.2_0": 2}


def run(environ: dict[str, Any]) -> dict[str, Any]:
    """Environ keys read: ``compiler``, ``source_file``, ``out_file``,
    ``use_filetracker``. Written: ``result_code``, ``compiler_output``,
    ``exec_info``, ``out_file``."""
    from sio.workers import ft

    compiler = environ.get("compiler")
    if compiler not in _FACTORS:
        raise UsageError(f"compiler 'foo' takes environ['compiler'] = 'foo.1_0' or "
                         f"'foo.2_0', not {compiler!r}")
    source = fetch_file(environ, environ.get("source_file"), tempcwd("foo-source"),
                    "environ['source_file']")
    size = os.path.getsize(source) * _FACTORS[compiler]
    script = tempcwd("foo.sh")
    with open(script, "w", encoding="ascii") as f:
        f.write(f"#!/bin/sh\necho {size}\n")
    os.chmod(script, 0o755)
    ft.upload(environ, "out_file", script)
    environ["result_code"] = ResultCode.OK.value
    environ["compiler_output"] = ""
    environ["exec_info"] = {"mode": "executable"}
    return environ


#: the original's other name of :func:`run`
run_default = run
