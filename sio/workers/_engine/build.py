"""Building the engine's small C helpers once per machine.

The engine has two tiny C programs that sit between a Python process and
the program it starts, because nothing else can do their job as cheaply:

* ``limitexec.c`` (used by :mod:`~sio.workers._engine.process`): sets
  resource limits, then executes the program;
* ``supervisor/execstub.c`` (used by the supervisor's spawner): the
  pre-started child that sets up a supervised run and executes the program.

Each is compiled with the system C compiler on first use into a cache
directory, under a name that holds a hash of its source and the machine's
architecture, so a stale or foreign binary is never picked up from a shared
cache. Several workers building at once is fine: each compiles under a
temporary name and renames the result into place. When no compiler is
available the callers fall back to slower pure-Python paths (and log it).

Settings (environment variables of the worker):

``SIO_ENGINE_CACHE_DIR``
    where the compiled helpers are kept (default
    ``$XDG_CACHE_HOME/sioworkers/engine``, i.e. ``~/.cache/sioworkers/engine``).
``CC``
    the C compiler (default ``cc``). The supervisor's stub is built with
    ``musl-gcc`` when it is installed (Debian: ``musl-tools``): a static
    binary of the glibc starts in ~0.4 ms of CPU (most of it ``cpuid``
    instructions, which a virtual machine traps), one of musl in ~0.13 ms,
    and the stub starts once per supervised run.
"""

from __future__ import annotations

import hashlib
import logging
import os
import platform
import shutil
import subprocess
import tempfile
from collections.abc import Sequence

logger = logging.getLogger("sio.workers._engine")


def cache_dir() -> str:
    """Where compiled helpers are kept (see the module docs)."""
    configured = os.environ.get("SIO_ENGINE_CACHE_DIR")
    if configured:
        return configured
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "sioworkers", "engine")


def find_or_build(name: str, source_path: str, flag_sets: Sequence[Sequence[str]],
                  fallback: str,
                  preferred: Sequence[tuple[str, Sequence[str]]] = ()) -> str | None:
    """The path of helper ``name`` compiled from ``source_path``, building it
    if needed with the first of ``flag_sets`` that works; ``None`` (with a
    warning naming ``fallback``, what the caller does instead) when it
    cannot be built. ``preferred``: ``(compiler, flags)`` pairs tried
    first, those compilers that are installed (e.g. a C library whose
    start-up is cheaper), before ``CC`` with ``flag_sets``."""
    with open(source_path, "rb") as f:
        source = f.read()
    preferred = [(cc, flags) for cc, flags in preferred if shutil.which(cc) is not None]
    if preferred:
        # Installing a preferred compiler later gets it a build of its own.
        source += repr(preferred).encode()
    digest = hashlib.sha256(source).hexdigest()[:16]
    directory = cache_dir()
    target = os.path.join(directory, f"{name}-{platform.machine()}-{digest}")
    if os.access(target, os.X_OK):
        return target
    compiler = os.environ.get("CC") or "cc"
    attempts = list(preferred)
    if shutil.which(compiler) is not None:
        attempts += [(compiler, flags) for flags in flag_sets]
    if not attempts:
        logger.warning("No C compiler %r to build %s: %s. Install gcc or set CC.",
                       compiler, name, fallback)
        return None
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError as e:
        logger.warning("Cannot create %s for %s (%s): %s. Set SIO_ENGINE_CACHE_DIR.",
                       directory, name, e, fallback)
        return None
    errors = []
    for compiler, flags in attempts:
        # Built under a temporary name and renamed into place: another worker
        # building at the same time never sees a half-written binary.
        fd, tmp = tempfile.mkstemp(prefix=f".{name}-", dir=directory)
        os.close(fd)
        try:
            result = subprocess.run([compiler, *flags, "-o", tmp, source_path],
                                    stdin=subprocess.DEVNULL, capture_output=True, timeout=120)
            if result.returncode == 0:
                os.chmod(tmp, 0o755)
                os.replace(tmp, target)
                logger.debug("Built %s with %s %s", target, compiler, " ".join(flags))
                return target
            errors.append(result.stderr.decode(errors="replace").strip()[-500:])
        except (OSError, subprocess.SubprocessError) as e:
            errors.append(str(e))
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    logger.warning("Cannot build %s with %s (%s): %s.", name,
                   " or ".join(dict.fromkeys(cc for cc, _ in attempts)), " | ".join(errors),
                   fallback)
    return None
