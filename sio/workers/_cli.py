"""What every command-line script of sioworkers does the same way (private).

A script's standard output carries its result only (``sio-batch`` and
``sio-compile``: the environ between the ``--- BEGIN/END ENVIRON ---``
lines; ``sio-get-sandbox``: paths), so that it can be piped and parsed.
Libraries do not know that: the filetracker client prints ``Settled for
protocol version 2`` when it first talks to a server, and a program a job
starts may write to the descriptor it inherited. :func:`result_only_stdout`
sends all of that to standard error while the work is done.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
from collections.abc import Iterator
from typing import Any

logger = logging.getLogger(__name__)

__all__ = ["result_only_stdout"]


@contextlib.contextmanager
def result_only_stdout() -> Iterator[None]:
    """While the block runs, standard output goes to standard error: both
    ``sys.stdout`` (``print``) and descriptor 1 (C code, child processes).
    The result is written after the block."""
    _quiet_library_finalizers()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    try:
        saved = os.dup(1)
        os.dup2(2, 1)
    except OSError:
        saved = -1  # no descriptor 1 or 2: only the Python-level redirection
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        with contextlib.suppress(Exception):
            sys.stderr.flush()
        if saved >= 0:
            os.dup2(saved, 1)
            os.close(saved)


_hook_lock = threading.Lock()
_hook_installed = False


def _quiet_library_finalizers() -> None:
    """Keep a known harmless finalizer error of the filetracker client off
    standard error (logged at DEBUG instead).

    When ``FcntlLockManager.FcntlLock.__init__`` fails (a lock file it cannot
    create: the name was a directory, the cache is read-only), its
    ``__del__`` later raises ``AttributeError`` (no ``fd`` yet), and Python
    prints "Exception ignored in ... __del__" with a traceback under the
    error that was already reported. Installed once per process; every
    other unraisable exception goes to the previous hook.
    """
    global _hook_installed
    with _hook_lock:
        if _hook_installed:
            return
        previous = sys.unraisablehook

        def hook(unraisable: Any) -> None:
            origin = getattr(unraisable.object, "__module__", None) or ""
            if origin.startswith("filetracker.") and unraisable.exc_type is AttributeError:
                logger.debug("ignored in %r: %s", unraisable.object, unraisable.exc_value)
                return
            previous(unraisable)

        sys.unraisablehook = hook
        _hook_installed = True
