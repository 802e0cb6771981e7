"""The supervised engine: run an untrusted program under limits and rules,
and say what it did (private; :mod:`sio.workers.executors` builds
``SupervisedExecutor`` on top of it).

* :func:`run_supervised` runs one program and returns an
  :class:`~sio.workers._engine.types.Outcome`;
* :class:`Policy` holds the rules (local opens, threads, extra paths);
* :func:`verdict` maps an outcome to SIO2's ``(result_code, result_string)``;
* :func:`probe` says what this machine supports.

How it works is described in ``docs/supervisor.rst``.
"""

from __future__ import annotations

from sio.workers._engine.supervisor._client import probe, run_supervised
from sio.workers._engine.supervisor.errors import (
    ProgramNotFound,
    SupervisorError,
    SupervisorUnavailable,
)
from sio.workers._engine.supervisor.policy import Policy, verdict
from sio.workers._engine.supervisor.probe import Capabilities

__all__ = ["Capabilities", "Policy", "ProgramNotFound", "SupervisorError",
           "SupervisorUnavailable", "probe", "run_supervised", "verdict"]
