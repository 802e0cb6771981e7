"""Interactive tasks: the solution talks with the problem's interactor.

The body of the jobs ``interactive-exec``, ``cpu-interactive-exec`` and
``unsafe-interactive-exec`` (they differ in the solution's executor, see
:mod:`sio.executors.selection`; the interactor, the problem's own trusted
program, always runs in a
:class:`~sio.workers.executors.DetailedUnprotectedExecutor`).

Wiring, for ``n = num_processes`` copies of the solution: copy ``i`` runs
as ``<exe> i`` with its stdin and stdout on two pipes; the interactor runs
as ``./soc n r_0 w_0 ... r_{n-1} w_{n-1}`` where it reads copy ``i``'s
output from descriptor ``r_i`` and writes its input to ``w_i``. The
interactor's stdin is the test input, its stdout the file ``out``, whose
first three lines are its verdict (as a checker's: ``OK`` or anything
else, a comment, a score in percent). There is no ``check_output``.

Environ keys read:

``exe_file``, ``in_file``, ``exec_info``, ``extra_execution_files``, ``extra_execution_args``, ``fake_time``
    as in :mod:`sio.executors.common` (``fake_time`` applies to the solution
    and to the interactor where they run under the supervisor).
``interactor_file`` (required)
    the interactor: a native executable, a ``#!`` script, or a Python zip
    application (what ``system-python`` makes; run as ``<python> -I soc
    ...``, see :func:`sio.workers.file_runners.helper_runner`).
``num_processes`` (int, default 1)
    how many copies of the solution run.
``exec_time_limit`` (ms, **required**), ``exec_real_time_limit`` (ms), ``exec_mem_limit`` (KiB), ``exec_output_limit`` (bytes)
    limits of **each** copy of the solution, with the defaults of
    :mod:`sio.executors.common` (supervised jobs: 65536 KiB, 52428800
    bytes, real time 2 × ``exec_time_limit`` + 1000 ms; ``unsafe-*``: no
    memory or output limit, real time 2 × ``exec_time_limit``).
``interactor_time_limit`` (ms, default twice ``exec_time_limit``), ``interactor_real_time_limit`` (ms, default twice its time limit), ``interactor_mem_limit`` (KiB, default 262144), ``interactor_output_limit`` (bytes)
    limits of the interactor.
``out_file``, ``upload_out``
    where to store the interactor's output ``out``.

Keys written: ``result_code``, ``result_string``, ``result_percentage``
(``[numerator, denominator]``), ``time_used`` (ms) and ``mem_used`` (KiB)
(the largest over the copies, or those of the first copy that failed),
``num_syscalls``, ``out_file`` (versioned). The verdict, by the first rule
that applies:

1. the interactor printed a first line: ``OK`` (trailing whitespace
   ignored) gives ``OK`` with the comment and the score of its next lines;
   anything else gives ``WA`` with the comment, ``[0, 1]``;
2. the interactor failed (not ``OK``/``TLE``), other than by ``SIGPIPE``:
   :class:`InteractorError`, the job fails;
3. a copy of the solution failed other than by ``SIGPIPE``: its result
   (``TLE``, ``RE``, ``MLE``, ...);
4. the interactor died of ``SIGPIPE``: ``WA`` ``solution exited
   prematurely``;
5. the interactor hit its real time limit: ``TLE`` (either side may be
   the cause);
6. otherwise :class:`InteractorError`.

"Died of ``SIGPIPE``" includes exiting with status 128 + 13 (141) for the
programs run by :class:`~sio.workers.executors.DetailedUnprotectedExecutor`
(the interactor always, the solution under ``unsafe-interactive-exec``):
the original ran them through a shell, which reports a signal that way,
and oioioi's interactors ``return 128 + 13`` on purpose when the
solution's pipe closes.

Neither side can hang the job: the parent keeps no pipe end once the
processes started, so a side that ends is seen at once by the other (end of
file, or ``SIGPIPE``/``EPIPE`` on writing), and both sides have wall-clock
limits.
"""

from __future__ import annotations

import contextvars
import functools
import os
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sio.executors import common
from sio.executors.checker import (
    RESULT_STRING_LENGTH_LIMIT,
    CheckerError,
    limit_result_string,
    output_to_fraction,
)
from sio.executors.selection import executor_for
from sio.workers.errors import MissingEnvironKey, SioWorkersError, UsageError
from sio.workers.executors import ExecLimits
from sio.workers.file_runners import (
    fetch_extra_execution_files,
    get_file_runner,
    helper_runner,
)
from sio.workers.util import replace_invalid_UTF, tempcwd

__all__ = ["InteractorError", "run", "DEFAULT_INTERACTOR_MEM_LIMIT", "Pipes",
           "RESULT_STRING_LENGTH_LIMIT"]

#: Memory limit of the interactor when ``interactor_mem_limit`` is absent (KiB).
DEFAULT_INTERACTOR_MEM_LIMIT = 262144
#: The interactor's time limit is this many times ``exec_time_limit`` by default.
INTERACTOR_TIME_LIMIT_MULTIPLIER = 2
#: How much of each of the interactor's first three lines is read (bytes).
_LINE_LIMIT = 1 << 20

Environ = dict[str, Any]


class InteractorError(SioWorkersError, SystemError):
    """The interactor is broken (it crashed without a verdict, or printed an
    invalid score): the job fails, like with a broken checker."""


@dataclass(frozen=True)
class Pipes:
    """The two pipes between the interactor and one copy of the solution,
    as four descriptors (the original's name): the interactor reads the
    solution's output from ``r_interactor`` and writes its input to
    ``w_interactor``; the solution reads from ``r_solution`` and writes to
    ``w_solution``."""

    r_interactor: int
    w_interactor: int
    r_solution: int
    w_solution: int

    @classmethod
    def open(cls) -> Pipes:
        """Two new pipes, non-inheritable (PEP 446): only the process each
        end is given to gets it, never a sibling started at the same
        moment."""
        to_solution_r, to_solution_w = os.pipe()
        try:
            from_solution_r, from_solution_w = os.pipe()
        except BaseException:
            os.close(to_solution_r)
            os.close(to_solution_w)
            raise
        return cls(r_interactor=from_solution_r, w_interactor=to_solution_w,
                   r_solution=to_solution_r, w_solution=from_solution_w)


class _Ends:
    """Pipe ends that one process inherits. Handed to its executor call
    (which closes them right after the spawn), or closed here if the call
    never happened; never closed twice (another thread could have opened a
    new descriptor under the same number)."""

    def __init__(self) -> None:
        self.fds: list[int] = []
        self._lock = threading.Lock()
        self._owned = True

    def take(self) -> tuple[int, ...]:
        with self._lock:
            if not self._owned:
                raise RuntimeError("pipe ends handed over twice")
            self._owned = False
            return tuple(self.fds)

    def close(self) -> None:
        with self._lock:
            if not self._owned:
                return
            self._owned = False
        for fd in self.fds:
            os.close(fd)


class _Task:
    """One process run in its own thread; keeps the renv or the exception."""

    def __init__(self, name: str, call: Callable[[], dict[str, Any]]) -> None:
        self.renv: dict[str, Any] | None = None
        self.error: BaseException | None = None
        self._call = call
        # Threads start with an empty context: give each a copy of this one
        # (the job directory of tempcwd() lives there).
        context = contextvars.copy_context()
        self.thread = threading.Thread(target=context.run, args=(self._target,),
                                       name=f"sio-interactive-{name}", daemon=True)

    def _target(self) -> None:
        try:
            self.renv = self._call()
        except BaseException as e:  # re-raised in the job's thread
            self.error = e


def _int_key(environ: Environ, key: str, default: Any = None) -> int:
    value = environ.get(key, default)
    if value is None:
        raise MissingEnvironKey(key, "the interactive jobs")
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise UsageError(f"environ[{key!r}] must be a whole number, not {value!r}") from None
    if number < 1 or isinstance(value, bool):
        raise UsageError(f"environ[{key!r}] must be at least 1, not {value!r}")
    return number


def _signal(renv: dict[str, Any]) -> int | None:
    return renv.get("exit_signal")


def _read_verdict(path: str) -> list[bytes]:
    lines = []
    with open(path, "rb") as f:
        for _ in range(3):
            lines.append(f.readline(_LINE_LIMIT).rstrip())
    return lines


def _solution_renv(renvs: list[dict[str, Any]]) -> dict[str, Any]:
    """The first copy that failed, else the first with the largest time and
    memory of all."""
    for renv in renvs:
        if renv.get("result_code") != "OK":
            return renv
    merged = dict(renvs[0])
    for key in ("time_used", "mem_used"):
        merged[key] = max(r.get(key) or 0 for r in renvs)
    return merged


def _describe(environ: Environ, solution: dict[str, Any], interactor: dict[str, Any],
              lines: list[bytes]) -> str:
    keep = ("result_code", "result_string", "return_code", "exit_signal", "time_used",
            "real_time_used", "real_time_killed")
    return (f"interactor {environ.get('interactor_file')!r} on in_file "
            f"{environ.get('in_file')!r}: its output begins {lines!r}; interactor "
            f"{ {k: interactor.get(k) for k in keep} }; solution "
            f"{ {k: solution.get(k) for k in keep} }")


def _decide(environ: Environ, solution: dict[str, Any], interactor: dict[str, Any],
            lines: list[bytes]) -> tuple[str, str, list[int]]:
    """(result_code, result_string, result_percentage) by the rules of the
    module docs."""
    first, comment, score = lines
    if first:
        if first == b"OK":
            try:
                percentage = output_to_fraction(score)
            except CheckerError as e:
                raise InteractorError(f"{e}; {_describe(environ, solution, interactor, lines)}"
                                      ) from e
            return "OK", limit_result_string(comment), list(percentage)
        return "WA", limit_result_string(comment), [0, 1]
    interactor_sigpipe = _signal(interactor) == signal.SIGPIPE
    if interactor.get("result_code") not in ("OK", "TLE") and not interactor_sigpipe:
        raise InteractorError("The interactor failed without a verdict: "
                              + _describe(environ, solution, interactor, lines))
    if solution.get("result_code") != "OK" and _signal(solution) != signal.SIGPIPE:
        return solution["result_code"], solution.get("result_string") or "", [0, 1]
    if interactor_sigpipe:
        return "WA", "solution exited prematurely", [0, 1]
    if interactor.get("real_time_killed"):
        return ("TLE", "interactor time limit exceeded (user's solution or interactor can "
                "be the cause)", [0, 1])
    raise InteractorError("Unexpected interactor error: "
                          + _describe(environ, solution, interactor, lines))


def run(environ: Environ, role: str) -> Environ:
    """Run an interactive test with the solution in the executor of
    ``role`` (see :mod:`sio.executors.selection`); returns ``environ`` with
    the results (see the module docs).

    :raises InteractorError: (a :class:`SystemError`) the interactor is
        broken.
    """
    needed_by = f"the job {role}"
    time_limit = _int_key(environ, "exec_time_limit")
    num_processes = _int_key(environ, "num_processes", 1)
    if common.is_output_only(environ):
        raise UsageError(f"{needed_by}: an output-only submission cannot be interactive "
                         "(exec_info['mode'] is 'output-only')")
    # Bad limits are reported now, before any process or pipe exists.
    ExecLimits.build(environ, "exec_")
    ExecLimits.build(environ, "interactor_")

    executors = [executor_for(role) for _ in range(num_processes)]
    runners = [get_file_runner(executor, environ) for executor in executors]
    exe = runners[0].preferred_filename()
    common.download_program(environ, "exe_file", exe, needed_by, add_to_cache=True)
    common.download_program(environ, "interactor_file", "soc", needed_by, add_to_cache=True)
    stdin_path = common.fetch_input(environ, needed_by)
    # Fetched once here: the copies run at the same time and must not all
    # write the same files.
    fetch_extra_execution_files(environ, tempcwd())
    run_environ = {k: v for k, v in environ.items() if k != "extra_execution_files"}
    for runner in runners:
        runner.environ = run_environ
    args = common.program_args(environ)
    output = tempcwd(common.OUTPUT)

    solution_ends = [_Ends() for _ in range(num_processes)]
    interactor_ends = _Ends()
    tasks: list[_Task] = []
    try:
        interactor_args = [str(num_processes)]
        for ends in solution_ends:
            pipes = Pipes.open()
            ends.fds += [pipes.r_solution, pipes.w_solution]
            interactor_ends.fds += [pipes.w_interactor, pipes.r_interactor]
            interactor_args += [str(pipes.r_interactor), str(pipes.w_interactor)]

        def solution(i: int) -> dict[str, Any]:
            to_solution_r, from_solution_w = solution_ends[i].fds
            with runners[i]:
                return runners[i](exe, [str(i), *args], stdin=to_solution_r,
                                  stdout=from_solution_w, ignore_errors=True,
                                  environ=environ, environ_prefix="exec_",
                                  fds_to_close=solution_ends[i].take())

        # oioioi sends the interactor without its exec_info: a Python one
        # (a zip application) is told by its first bytes.
        interactor = helper_runner(executor_for("interactor"), "soc")

        def interactor_run() -> dict[str, Any]:
            with interactor, open(stdin_path, "rb") as stdin, open(output, "wb") as stdout:
                return interactor("soc", interactor_args, stdin=stdin, stdout=stdout,
                                  ignore_errors=True, pass_fds=interactor_ends.fds,
                                  time_limit=INTERACTOR_TIME_LIMIT_MULTIPLIER * time_limit,
                                  mem_limit=DEFAULT_INTERACTOR_MEM_LIMIT,
                                  environ=environ, environ_prefix="interactor_",
                                  fds_to_close=interactor_ends.take())

        tasks.append(_Task("interactor", interactor_run))
        tasks += [_Task(f"solution-{i}", functools.partial(solution, i))
                  for i in range(num_processes)]
        for task in tasks:
            task.thread.start()
    finally:
        for task in tasks:
            if task.thread.ident is not None:
                task.thread.join()
        # Ends of processes that never started (an error above, or in a
        # thread before its executor took them).
        for ends in (interactor_ends, *solution_ends):
            ends.close()
    for task in tasks:
        if task.error is not None:
            raise task.error

    interactor_renv = tasks[0].renv or {}
    solution_renv = _solution_renv([task.renv or {} for task in tasks[1:]])
    lines = _read_verdict(output)
    code, message, percentage = _decide(environ, solution_renv, interactor_renv, lines)
    common.populate_environ(solution_renv, environ)
    environ["result_code"] = code
    environ["result_string"] = replace_invalid_UTF(message)
    environ["result_percentage"] = percentage
    common.upload_output(environ, output)
    return environ
