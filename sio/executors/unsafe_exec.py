"""``unsafe-exec`` and ``unsafe-interactive-exec``: run a submission with
**no isolation** (a :class:`~sio.workers.executors.DetailedUnprotectedExecutor`:
rlimits and time limits only), for development, tests and trusted code
such as a model solution generating outputs.

Keys: as :func:`sio.executors.common.run` and
:func:`sio.executors.interactive_common.run`. Differences from ``exec``:
``mem_used`` and ``num_syscalls`` are 0, a program over the memory limit
usually ends with ``RE`` (its allocation fails) rather than ``MLE``, there
is no ``RV``, and without ``chk_file`` the output is compared like
``diff -b`` (amounts of whitespace ignored) instead of with oicompare's
rules; a custom checker always runs unprotected.
"""

from __future__ import annotations

from typing import Any

from sio.executors import interactive_common
from sio.executors.executor import run_exec_job

__all__ = ["run", "interactive_run"]


def run(environ: dict[str, Any]) -> dict[str, Any]:
    """Job ``unsafe-exec``."""
    return run_exec_job(environ, "unsafe-exec", use_sandboxes=False)


def interactive_run(environ: dict[str, Any]) -> dict[str, Any]:
    """Job ``unsafe-interactive-exec``."""
    return interactive_common.run(environ, "unsafe-interactive-exec")
