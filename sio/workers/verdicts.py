"""Verdicts: what a run's :class:`~sio.workers._engine.types.Outcome` means
as a SIO2 result code and string.

The engine says what happened (exit status, signal, the typed
:class:`~sio.workers._engine.types.KillReason` of a run it ended, the
forbidden call of a violation); this module, on the policy side, turns
that into ``(result_code, result_string)``. The engine spells no verdict.
Today it holds the supervised executors' mapping (:func:`verdict`, with the
strings of SIO2's supervisor); it is the place for every executor's.
"""

from __future__ import annotations

from sio.workers._engine.types import KillReason, Outcome
from sio.workers.results import ResultCode

__all__ = ["verdict"]

#: Result strings of SIO2's supervisor, by kill reason.
_KILL_STRINGS = {
    KillReason.MEMORY: (ResultCode.MLE, "memory limit exceeded"),
    KillReason.CPU_TIME: (ResultCode.TLE, "time limit exceeded"),
    KillReason.WALL_TIME: (ResultCode.TLE, "real time limit exceeded"),
    KillReason.OUTPUT: (ResultCode.OLE, "output limit exceeded"),
}


def verdict(outcome: Outcome, *, ignore_return: bool = False) -> tuple[ResultCode, str]:
    """``(result_code, result_string)`` of a supervised run, with the strings
    of SIO2's supervisor.

    In order: a supervisor failure is ``SE``; a forbidden system call ``RV``
    (``intercepted forbidden syscall <name>``); then the limit that ended the
    run: ``MLE``, ``TLE`` (CPU: ``time limit exceeded``; wall clock: ``real
    time limit exceeded``), ``OLE``; a signal is ``RE`` (``process exited due
    to signal N``); a non-zero exit status is ``RE`` (``runtime error N``)
    unless ``ignore_return``; otherwise ``OK`` (``ok``).
    """
    if outcome.system_error is not None:
        return ResultCode.SE, outcome.system_error
    if outcome.killed is KillReason.SYSCALL:
        return ResultCode.RV, f"intercepted forbidden syscall {outcome.violation or 'unknown'}"
    if outcome.killed is not None:
        return _KILL_STRINGS[outcome.killed]
    if outcome.signal is not None:
        return ResultCode.RE, f"process exited due to signal {outcome.signal}"
    if outcome.exit_code and not ignore_return:
        return ResultCode.RE, f"runtime error {outcome.exit_code}"
    return ResultCode.OK, "ok"
