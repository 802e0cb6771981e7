"""The supervised ``exec`` family of jobs.

``exec`` and ``cpu-exec`` run a submission on one test
(:func:`sio.executors.common.run`, every key documented there);
``interactive-exec`` and ``cpu-interactive-exec`` run an interactive test
(:func:`sio.executors.interactive_common.run`). All of them run the
submission under the built-in supervisor (see
:mod:`sio.executors.selection`) and a custom checker with
``untrusted_checker`` under it too. Without the supervisor in this
installation they fail with
:class:`~sio.executors.selection.ExecutorUnavailable`: they never run a
submission unprotected (``unsafe-exec`` does that, on purpose).

``cpu-exec`` differs from ``exec`` only in scheduling: a contest system
sends it to a worker that runs nothing else at the same time, so that CPU
time is measured undisturbed.
"""

from __future__ import annotations

from typing import Any

from sio.executors import common, interactive_common
from sio.executors.selection import executor_for

__all__ = ["run", "cpu_run", "interactive_run", "cpu_interactive_run", "run_exec_job"]

Environ = dict[str, Any]


def run_exec_job(environ: Environ, role: str, use_sandboxes: bool) -> Environ:
    """:func:`sio.executors.common.run` with the executor of ``role`` (none
    for an output-only submission, which runs nothing)."""
    executor = None if common.is_output_only(environ) else executor_for(role)
    return common.run(environ, executor, use_sandboxes=use_sandboxes)


def run(environ: Environ) -> Environ:
    """Job ``exec``."""
    return run_exec_job(environ, "exec", use_sandboxes=True)


def cpu_run(environ: Environ) -> Environ:
    """Job ``cpu-exec``."""
    return run_exec_job(environ, "cpu-exec", use_sandboxes=True)


def interactive_run(environ: Environ) -> Environ:
    """Job ``interactive-exec``."""
    return interactive_common.run(environ, "interactive-exec")


def cpu_interactive_run(environ: Environ) -> Environ:
    """Job ``cpu-interactive-exec``."""
    return interactive_common.run(environ, "cpu-interactive-exec")
