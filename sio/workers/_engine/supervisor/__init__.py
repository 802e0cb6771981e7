"""The supervised engine: run an untrusted program under limits and rules,
and say what it did (private; :mod:`sio.workers.executors` builds
``SupervisedExecutor`` on top of it).

* :func:`run_supervised` runs one program and returns an
  :class:`~sio.workers._engine.types.Outcome`;
* :class:`Policy` holds the rules (local opens, threads, extra paths);
* :func:`probe` says what this machine supports (a :class:`Capabilities`).

What an outcome means as a verdict is not the engine's business:
:func:`sio.workers.verdicts.verdict` maps it to SIO2's
``(result_code, result_string)``.

How it works is described in ``docs/supervisor.rst``.

The names are loaded lazily (PEP 562): the spawner process imports
submodules of this package and must not pay for the worker-side ones.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "run_supervised": "_client", "probe": "_client",
    "Policy": "policy",
    "Capabilities": "capabilities",
    "SupervisorError": "errors", "SupervisorUnavailable": "errors",
    "ProgramNotFound": "errors",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> object:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
