"""``sio2jail-exec`` and ``sio2jail-interactive-exec``: time as counted
instructions (2·10⁹ instructions = one second), the default of oioioi.

Keys: as :func:`sio.executors.common.run` and
:func:`sio.executors.interactive_common.run`; ``exec_time_limit`` (ms) is
meant in virtual time.

Counting instructions needs the CPU's hardware counter (through
``perf_event_open``) **and** a supervisor that counts; the built-in
supervisor does not count yet. So both jobs fail with
:class:`~sio.executors.selection.InstructionCountingUnavailable` before
anything is downloaded or run, naming what is missing (the hardware
counter on this machine, or the counting in the supervisor) and
suggesting ``exec`` / ``cpu-exec`` (or their interactive forms), which
measure CPU time. They never measure CPU time silently under this name.

An output-only submission (``exec_info['mode'] == 'output-only'``) runs
nothing, so ``sio2jail-exec`` judges it as ``exec`` does, on any machine.
"""

from __future__ import annotations

from typing import Any

from sio.executors import interactive_common
from sio.executors.executor import run_exec_job
from sio.executors.selection import InstructionCountingUnavailable

__all__ = ["run", "interactive_run", "InstructionCountingUnavailable"]


def run(environ: dict[str, Any]) -> dict[str, Any]:
    """Job ``sio2jail-exec``."""
    return run_exec_job(environ, "sio2jail-exec", use_sandboxes=True)


def interactive_run(environ: dict[str, Any]) -> dict[str, Any]:
    """Job ``sio2jail-interactive-exec``."""
    return interactive_common.run(environ, "sio2jail-interactive-exec")
