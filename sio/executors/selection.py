"""Which executor runs what: the one place where the judging jobs choose.

Every program a judging job starts (the submission, a checker, an
interactor, an input generator or verifier) runs in the executor that
:data:`EXECUTORS` names for its *role*. Changing how a job type runs its
programs is a change of one line here.

Roles:

=============================== ===============================================
role                            executor
=============================== ===============================================
``exec``, ``cpu-exec``          the supervisor (:func:`supervised`)
``unsafe-exec``                 :class:`~sio.workers.executors.DetailedUnprotectedExecutor`
``interactive-exec``,           the supervisor
``cpu-interactive-exec``
``unsafe-interactive-exec``     :class:`~sio.workers.executors.DetailedUnprotectedExecutor`
``interactor``                  :class:`~sio.workers.executors.DetailedUnprotectedExecutor`
                                (the problem's own program, trusted)
``checker``                     :class:`~sio.workers.executors.UnprotectedExecutor`
``untrusted-checker``           the supervisor (local-open)
``inwer``                       :class:`~sio.workers.executors.DetailedUnprotectedExecutor`
``sandboxed-inwer``             the supervisor
``ingen``                       :class:`~sio.workers.executors.UnprotectedExecutor`
``sandboxed-ingen``             ``PRootExecutor('null-sandbox')`` (it writes files)
``sio2jail-exec``               none yet (:func:`instruction_counted` raises
                                :class:`InstructionCountingUnavailable`)
``sio2jail-interactive-exec``   the same
=============================== ===============================================

"The supervisor" is the built-in one
(:class:`~sio.workers.executors.SupervisedExecutor`) unless the worker's
environment variable ``SIO_SUPERVISOR`` (read when a job runs) says
``exec-sandbox``: then it is the original's binary from the ``exec-sandbox``
sandbox (:class:`~sio.workers.executors.ExecSandboxSupervisedExecutor`).

The supervised roles kill a program that sleeps or waits instead of
computing after 2 × its time limit + 1 s unless ``<prefix>real_time_limit``
(ms) is given (:data:`JUDGING_REAL_TIME_MULTIPLIER`); an explicit limit also
gets the 1 s. ``SupervisedExecutor`` used directly defaults to 64 × + 1 s.
The unprotected roles default to 2 × the time limit, ``sandboxed-ingen``
(PRoot) to 3 ×.

A program is **never run unprotected in place of a protected executor**:
an executor class missing from :mod:`sio.workers.executors` raises
:class:`ExecutorUnavailable` (naming the role and the ``unsafe-*``
alternative), and a machine that cannot supervise (not x86-64, no seccomp
filter with the TRACE action, no ptrace of children) makes the run raise
``SupervisorUnavailable`` saying what is missing. Either way the job fails
with that exception.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from sio.workers import executors
from sio.workers.errors import SioWorkersError
from sio.workers.executors import (
    BaseExecutor,
    DetailedUnprotectedExecutor,
    UnprotectedExecutor,
)

__all__ = ["ExecutorUnavailable", "InstructionCountingUnavailable", "EXECUTORS",
           "executor_for", "supervised", "supervisor_setting", "SUPERVISOR_SETTING",
           "SUPERVISORS", "proot", "instruction_counted"]


class ExecutorUnavailable(SioWorkersError, RuntimeError):
    """The job asks for an executor this installation does not have (the job
    fails: running the program unprotected instead would be a security
    hole)."""


class InstructionCountingUnavailable(ExecutorUnavailable,
                                     executors.InstructionCountingUnavailable):
    """The job measures time in counted instructions, which this machine
    or this installation cannot do (the job fails: measuring CPU time
    instead under a name that promises instruction counts would give
    different, machine-dependent verdicts). Also a
    :class:`sio.workers.executors.InstructionCountingUnavailable`, what
    :class:`~sio.workers.executors.Sio2JailExecutor` raises."""


def _contract_class(name: str, role: str) -> type[BaseExecutor]:
    cls = getattr(executors, name, None)
    if cls is None:
        raise ExecutorUnavailable(
            f"the {role} needs sio.workers.executors.{name}, which is not available "
            "in this installation: the supervised executor is not available. Use an "
            "unsafe-* job type (or use_sandboxes=False) on a trusted machine")
    return cls


#: Roles whose program reads files of its run directory (a checker reads
#: ``in``, ``out`` and ``hint``): read-only, writes refused.
LOCAL_READERS = frozenset({"untrusted-checker"})


#: The judging jobs' guard against programs that sleep or wait instead of
#: computing: without an explicit ``<prefix>real_time_limit`` a supervised
#: program is killed after this many times its time limit, plus 1 s. The
#: executor's own default (64x, the original's SupervisedExecutor) would let
#: one sleeping submission hold a worker for over ten minutes on a 10 s
#: limit; oioioi expects about 2x (what the latest original's exec did).
JUDGING_REAL_TIME_MULTIPLIER = 2


#: The worker setting (environment variable, read when a job runs) that
#: chooses the supervisor of the supervised roles.
SUPERVISOR_SETTING = "SIO_SUPERVISOR"

#: Values of :data:`SUPERVISOR_SETTING` -> executor class in
#: :mod:`sio.workers.executors`. ``builtin`` (the default) is the built-in
#: supervisor; ``exec-sandbox`` is the original's supervisor binary from the
#: ``exec-sandbox`` sandbox, for deployments that have it.
SUPERVISORS: dict[str, str] = {
    "builtin": "SupervisedExecutor",
    "exec-sandbox": "ExecSandboxSupervisedExecutor",
}


def supervisor_setting() -> str:
    """The supervisor this worker is set to use: ``SIO_SUPERVISOR``, read on
    every call (default ``builtin``).

    :raises ExecutorUnavailable: an unknown value (the message lists the
        known ones). It is never replaced by another supervisor: an operator
        who asked for one must not get a different one silently.
    """
    value = os.environ.get(SUPERVISOR_SETTING, "").strip() or "builtin"
    if value not in SUPERVISORS:
        raise ExecutorUnavailable(
            f"{SUPERVISOR_SETTING}={value!r} is not a supervisor this worker knows: set it to "
            + " or ".join(repr(k) for k in SUPERVISORS) + " (or unset it for 'builtin')")
    return value


def supervised(role: str) -> BaseExecutor:
    """The supervisor chosen by :func:`supervisor_setting` for ``role``: the
    built-in one (``SupervisedExecutor``) by default, or the original's
    binary (``ExecSandboxSupervisedExecutor``, whose sandbox is installed
    when the job enters it: a missing one is a
    :class:`~sio.workers.sandbox.SandboxError`, never a fall-back). Roles in
    :data:`LOCAL_READERS` may open files of their directory read-only; the
    default real-time limit is :data:`JUDGING_REAL_TIME_MULTIPLIER` times
    the time limit, plus 1 s.

    :raises ExecutorUnavailable: it does not exist here, or the setting is
        unknown.
    """
    cls = _contract_class(SUPERVISORS[supervisor_setting()], role)
    return cls(allow_local_open=role in LOCAL_READERS,  # type: ignore[call-arg]
               real_time_limit_multiplier=JUDGING_REAL_TIME_MULTIPLIER)


def proot(role: str, sandbox: str = "null-sandbox") -> BaseExecutor:
    """``PRootExecutor(sandbox)`` for ``role``.

    :raises ExecutorUnavailable: it does not exist here.
    """
    return _contract_class("PRootExecutor", role)(sandbox)  # type: ignore[call-arg]


def instruction_counted(role: str) -> BaseExecutor:
    """The executor of instruction-counted time (2·10⁹ instructions = 1 s).

    There is none yet, so this always raises; the message says whether the
    machine lacks the hardware counter (probed once with
    ``perf_event_open``) or only the supervisor lacks the counting.

    :raises InstructionCountingUnavailable: always.
    """
    instead = ("Use job type 'exec' or 'cpu-exec' instead (time measured as CPU time)"
               if "interactive" not in role else
               "Use job type 'interactive-exec' or 'cpu-interactive-exec' instead "
               "(time measured as CPU time)")
    raise InstructionCountingUnavailable(
        executors.instruction_counting_problem(f"job {role!r}", instead))


def _unprotected(role: str) -> BaseExecutor:
    return UnprotectedExecutor()


def _detailed(role: str) -> BaseExecutor:
    return DetailedUnprotectedExecutor()


#: role -> factory(role) of a fresh executor (see the module docs).
EXECUTORS: dict[str, Callable[[str], BaseExecutor]] = {
    "exec": supervised,
    "cpu-exec": supervised,
    "unsafe-exec": _detailed,
    "interactive-exec": supervised,
    "cpu-interactive-exec": supervised,
    "unsafe-interactive-exec": _detailed,
    "interactor": _detailed,
    "checker": _unprotected,
    "untrusted-checker": supervised,
    "inwer": _detailed,
    "sandboxed-inwer": supervised,
    "ingen": _unprotected,
    "sandboxed-ingen": proot,
    "sio2jail-exec": instruction_counted,
    "sio2jail-interactive-exec": instruction_counted,
}


def executor_for(role: str) -> BaseExecutor:
    """A fresh executor for ``role`` (a key of :data:`EXECUTORS`).

    :raises ExecutorUnavailable: the executor does not exist here.
    :raises KeyError: an unknown role (a programming error).
    """
    return EXECUTORS[role](role)
