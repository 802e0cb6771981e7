"""Executors: run a command for a job, with limits, and report in a renv.

This module is policy only: defaults, units, result codes and strings. The
processes are started by :func:`sio.workers._engine.process.run_process`.

Usage (every executor is a callable context manager)::

    with DetailedUnprotectedExecutor() as executor:
        renv = executor(['./exe'], stdin=infile, stdout=outfile,
                        time_limit=1000, mem_limit=65536, ignore_errors=True,
                        environ=environ, environ_prefix='exec_')

Units everywhere: time in **milliseconds**, memory in **KiB**, output in
**bytes**.

Commands: a **list** is an argv; each element is a single argument (shell
quoted when a shell is needed) except :class:`noquote` elements, which are
inserted into a shell line verbatim (``<``, ``>``, ``&&``, ...); a nested
list becomes one argument holding its own quoted line (for ``sh -c``). A
list without :class:`noquote` elements whose program exists is executed
directly, without a shell. A **string** is a shell line (``/bin/sh -c``).

Executors here:

* :class:`UnprotectedExecutor`: limits enforced with rlimits and a watchdog,
  no isolation at all;
* :class:`DetailedUnprotectedExecutor`: the same, plus a verdict
  (``result_code``) and the CPU time used;
* :class:`SandboxExecutor`, :class:`PRootExecutor`: programs from a sandbox;
* :class:`SupervisedExecutor`: untrusted programs under the built-in secure
  supervisor, with SIO2's verdicts (MLE, OLE, RV, ...);
* :class:`ExecSandboxSupervisedExecutor`: the same contract with the
  original's ``exec-sandbox`` supervisor binary, for deployments that have
  it.

Sandboxed and supervised executors subclass :class:`UnprotectedExecutor`
(or :class:`BaseExecutor`) and override :meth:`UnprotectedExecutor._run`,
the single step that runs the command.
"""

from __future__ import annotations

import dataclasses
import os
import posixpath
import re
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from sio.workers._engine.process import run_process
from sio.workers._engine.types import CAPTURE, STDOUT, KillReason, Limits, Outcome
from sio.workers.errors import SioWorkersError, UsageError
from sio.workers.results import ResultCode
from sio.workers.util import tempcwd
from sio.workers.verdicts import verdict

if TYPE_CHECKING:
    from sio.workers._engine.perf import CounterProbe
    from sio.workers.sandbox import Sandbox

__all__ = [
    "ExecError",
    "noquote",
    "shellquote",
    "ExecLimits",
    "ExecRequest",
    "BaseExecutor",
    "UnprotectedExecutor",
    "DetailedUnprotectedExecutor",
    "SandboxExecutor",
    "PRootExecutor",
    "SupervisedExecutor",
    "ExecSandboxSupervisedExecutor",
    "SupervisorReport",
    "SupervisorReportError",
    "SUPERVISOR_RESULT_CODES",
    "parse_supervisor_report",
    "instruction_counter_probe",
    "instruction_counting_problem",
    "InstructionCountingUnavailable",
    "DEFAULT_LOCALE",
    "SUPERVISED_BASE_ENV",
    # The original's names (compatibility)
    "CompoundSandboxExecutor",
    "PRoot32BitExecutor",
    "Sio2JailExecutor",
    "RealTimeSio2JailExecutor",
    "TIME_OUTPUT_RE",
    "execute_command",
    "ulimit",
]

#: ``LC_ALL`` and ``LANGUAGE`` of every executed program.
DEFAULT_LOCALE = "en_US.UTF-8"


class ExecError(SioWorkersError, RuntimeError):
    """A command failed (non-zero exit status or killed) and the caller did
    not say to ignore it. A :class:`RuntimeError`, as in the original."""


class noquote(str):  # noqa: N801 (contract name)
    """An element of a command list that goes into the shell line verbatim,
    e.g. ``noquote('>')``."""

    __slots__ = ()


# --------------------------------------------------------------------------
# Commands
# --------------------------------------------------------------------------

def _quote(arg: str) -> str:
    return "'" + arg.replace("'", "'\\''") + "'"


def shellquote(command: Any) -> Any:
    """Make a shell line of a command list.

    Each element is single-quoted, except :class:`noquote` ones; a nested
    list is quoted and joined itself, then quoted again as one argument. A
    non-list is returned unchanged.
    For example ``['echo', "it's", noquote('>'), 'f']`` gives the line
    ``'echo' 'it'\\''s' > 'f'``.
    """
    if not isinstance(command, (list, tuple)):
        return command
    parts = []
    for element in command:
        if isinstance(element, noquote):
            parts.append(str(element))
        elif isinstance(element, (list, tuple)):
            parts.append(_quote(shellquote(element)))
        else:
            parts.append(_quote(str(element)))
    return " ".join(parts)


def _as_command(command: Any) -> list[Any]:
    if isinstance(command, (list, tuple)):
        if not command:
            raise UsageError("empty command: give a program to run")
        return list(command)
    if isinstance(command, str):
        return [noquote(command)]
    raise TypeError(f"command must be a list or a string, not {type(command).__name__}")


def _direct_argv(command: Sequence[Any]) -> list[str] | None:
    """The argv to execute without a shell, or None when a shell is needed
    (the command holds :class:`noquote` pieces of shell syntax)."""
    if any(isinstance(element, noquote) for element in command):
        return None
    return [shellquote(e) if isinstance(e, (list, tuple)) else str(e) for e in command]


#: What the original parsed from ``bash``'s ``time`` report (the user time
#: line, minutes and seconds). Kept for code that parses such reports;
#: :class:`DetailedUnprotectedExecutor` takes the CPU time from the kernel.
TIME_OUTPUT_RE = re.compile(r"^user\s+([0-9]+)m([0-9.]+)s$", re.MULTILINE)


def ulimit(command: Any, mem_limit: int | None = None,
           time_limit: int | None = None) -> list[Any]:
    """The original's shell-text limits: ``command`` (a list, or a shell
    line) prefixed with ``ulimit -t <ceil(time_limit ms)> &&`` and, with a
    memory limit, ``ulimit -Ss unlimited && ulimit -v <mem_limit KiB> &&``.

    Kept for compatibility; the executors here set their limits with
    ``setrlimit`` and a watchdog instead (finer than whole seconds).
    """
    from sio.workers.util import ceil_ms2s

    prefix: list[Any] = []
    if time_limit:
        prefix += [noquote("ulimit"), noquote("-t"), noquote(str(ceil_ms2s(time_limit))),
                   noquote("&&")]
    if mem_limit:
        prefix += [noquote("ulimit -Ss unlimited"), noquote("&&"), noquote("ulimit"),
                   noquote("-v"), noquote(str(int(mem_limit))), noquote("&&")]
    return prefix + _as_command(command)


# --------------------------------------------------------------------------
# Limits and requests
# --------------------------------------------------------------------------

def _limit_value(value: Any, name: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise UsageError(f"{name} must be a whole number, not {value!r}")
    try:
        number = int(value)
        if isinstance(value, float) and number != value:
            raise ValueError
    except (TypeError, ValueError):
        raise UsageError(f"{name} must be a whole number, not {value!r}") from None
    if number < 0:
        raise UsageError(f"{name} must not be negative, not {value!r}")
    return number


@dataclass(frozen=True)
class ExecLimits:
    """The limits a job asked for, in the environ's units.

    ``None`` means "not given" (an executor may apply a default, e.g. the
    real-time limit of :class:`UnprotectedExecutor` is twice the time
    limit); ``0`` means "no limit".
    """

    #: CPU time (user + system) in milliseconds
    time_limit_ms: int | None = None
    #: wall-clock time in milliseconds
    real_time_limit_ms: int | None = None
    #: memory (address space) in KiB
    mem_limit_kib: int | None = None
    #: output in bytes (the unprotected executors only truncate captured output)
    output_limit_bytes: int | None = None

    #: (field, environ key suffix = legacy argument name)
    KEYS: ClassVar[tuple[tuple[str, str], ...]] = (
        ("time_limit_ms", "time_limit"),
        ("real_time_limit_ms", "real_time_limit"),
        ("mem_limit_kib", "mem_limit"),
        ("output_limit_bytes", "output_limit"),
    )

    @classmethod
    def build(cls, environ: Mapping[str, Any] | None = None, prefix: str = "", *,
              time_limit: Any = None, real_time_limit: Any = None, mem_limit: Any = None,
              output_limit: Any = None) -> ExecLimits:
        """The limits for one call, built from the explicit arguments
        (``time_limit`` ms, ``real_time_limit`` ms, ``mem_limit`` KiB,
        ``output_limit`` bytes) and the environ keys ``<prefix>time_limit``,
        ``<prefix>real_time_limit``, ``<prefix>mem_limit``,
        ``<prefix>output_limit``.

        **A key present in the environ wins over the explicit argument**:
        the arguments are the caller's defaults (e.g. a compiler's 30 s), the
        environ is what the job was asked to do (as in the original). A key
        whose value is ``None`` counts as absent.

        :raises UsageError: a value is not a non-negative whole number; the
            message names the environ key or argument.
        """
        explicit = {"time_limit": time_limit, "real_time_limit": real_time_limit,
                    "mem_limit": mem_limit, "output_limit": output_limit}
        values = {}
        for attr, name in cls.KEYS:
            key = prefix + name
            if environ and environ.get(key) is not None:
                values[attr] = _limit_value(environ[key], f"environ key {key!r}")
            else:
                values[attr] = _limit_value(explicit[name], f"argument {name}")
        return cls(**values)


#: A stream option: an open file (anything with ``fileno()``), a file
#: descriptor, or None (``/dev/null``).
StreamArg = Any


def _fd(stream: StreamArg, name: str) -> int | None:
    if stream is None:
        return None
    if isinstance(stream, int) and not isinstance(stream, bool):
        return stream
    fileno = getattr(stream, "fileno", None)
    if fileno is None:
        raise TypeError(f"{name} must be an open file or a file descriptor, not {stream!r}")
    if hasattr(stream, "flush") and name != "stdin":
        stream.flush()  # what the caller wrote must come before the program's output
    return int(fileno())


#: The whole environment of a program run under the supervisor, before what
#: the caller (a job, a file runner) passes explicitly: never the worker's own
#: variables, which may hold a broker password or a Filetracker URL.
#: ``LC_ALL`` and ``LANGUAGE`` are then set to :data:`DEFAULT_LOCALE`.
SUPERVISED_BASE_ENV: Mapping[str, str] = {"PATH": "/usr/local/bin:/usr/bin:/bin"}


def _env(env: Mapping[str, Any] | None, inherit: bool = True) -> dict[str, str]:
    """The program's environment: ``env`` (when empty, this process's own
    when ``inherit``, else :data:`SUPERVISED_BASE_ENV` plus nothing), with the
    locale forced."""
    if inherit:
        base: Mapping[str, Any] = env if env else os.environ
    else:
        base = {**SUPERVISED_BASE_ENV, **(env or {})}
    result = {str(k): str(v) for k, v in base.items()}
    result["LC_ALL"] = DEFAULT_LOCALE
    result["LANGUAGE"] = DEFAULT_LOCALE
    return result


class _FdCloser:
    """Closes a set of descriptors exactly once, whichever of the engine
    (right after the spawn) and the executor's clean-up comes first: closing
    a number twice could close a descriptor another thread has just opened
    under it."""

    def __init__(self, fds: Iterable[int]) -> None:
        self.fds = tuple(fds)
        self._lock = threading.Lock()
        self._closed = False

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        for fd in self.fds:
            try:
                os.close(fd)
            except OSError:
                pass


@dataclass(frozen=True)
class ExecRequest:
    """One call of an executor, with every option normalised."""

    #: the command as a list (a string command is ``[noquote(line)]``)
    command: list[Any]
    env: dict[str, str]
    cwd: str
    limits: ExecLimits
    stdin: int | None = None
    stdout: int | None = None
    stderr: int | None = None
    capture_output: bool = False
    forward_stderr: bool = False
    split_lines: bool = False
    ignore_errors: bool = False
    extra_ignore_errors: tuple[int, ...] = ()
    pass_fds: tuple[int, ...] = ()
    #: the environ's ``fake_time`` (``off``, ``zero``, ``random``); only the
    #: supervised executor can fake a program's time, the others ignore it
    fake_time: str = "off"
    #: other keyword options, for subclasses (e.g. ``use_path``, ``binds``)
    options: dict[str, Any] = field(default_factory=dict)
    #: to call right after the program started (closes ``fds_to_close``);
    #: an executor that starts the program itself must call it then
    after_spawn: Callable[[], None] | None = None

    @property
    def shell_line(self) -> str:
        """The command as one shell line (used in messages)."""
        return str(shellquote(self.command))

    def replace(self, **changes: Any) -> ExecRequest:
        return dataclasses.replace(self, **changes)


# --------------------------------------------------------------------------
# Executors
# --------------------------------------------------------------------------

def _fake_time(environ: Mapping[str, Any] | None) -> str:
    """The environ's ``fake_time``, checked (absent or None: ``off``)."""
    from sio.workers._engine.supervisor.policy import FAKE_TIME_MODES

    value = (environ or {}).get("fake_time")
    if value is None:
        return "off"
    if value not in FAKE_TIME_MODES:
        raise UsageError(f"fake_time must be one of {', '.join(FAKE_TIME_MODES)}, "
                         f"not {value!r}")
    return str(value)


class BaseExecutor:
    """Base of all executors: a callable context manager.

    ``with executor: renv = executor(command, **options)``. Subclasses
    implement :meth:`_execute`.
    """

    #: Whether a call without ``env`` gives the program this process's
    #: environment (trusted tools: compilers); False for untrusted programs.
    inherits_environment: bool = True

    def __enter__(self) -> BaseExecutor:
        return self

    def __exit__(self, *exc_info: object) -> None:
        return None

    def __call__(self, command: Any, env: Mapping[str, Any] | None = None,
                 split_lines: bool = False, ignore_errors: bool = False,
                 extra_ignore_errors: Iterable[int] = (), stdin: StreamArg = None,
                 stdout: StreamArg = None, stderr: StreamArg = None,
                 forward_stderr: bool = False, capture_output: bool = False,
                 mem_limit: int | None = None, time_limit: int | None = None,
                 real_time_limit: int | None = None, output_limit: int | None = None,
                 environ: Mapping[str, Any] | None = None, environ_prefix: str = "",
                 cwd: str | None = None, pass_fds: Iterable[int] = (),
                 fds_to_close: Iterable[int] = (), **kwargs: Any) -> dict[str, Any]:
        """Run ``command`` and return the renv.

        :param command: a list (argv; see the module docs for quoting and
            :class:`noquote`) or a string (a shell line).
        :param env: the environment; ``None`` or empty = a copy of this
            process's (for the supervised executor: only
            :data:`SUPERVISED_BASE_ENV`, to which a given ``env`` is
            added). ``LC_ALL`` and ``LANGUAGE`` are always set to
            :data:`DEFAULT_LOCALE`. Values are converted to ``str``.
        :param split_lines: return captured output as a list of lines (split
            on ``b'\\n'``).
        :param ignore_errors: do not raise :class:`ExecError` on a non-zero
            return code.
        :param extra_ignore_errors: return codes not to raise on.
        :param stdin: an open file or descriptor to read (default
            ``/dev/null``); the caller keeps and closes it.
        :param stdout: an open file or descriptor to write (default
            ``/dev/null``); ignored with ``capture_output``.
        :param stderr: the same for the standard error stream.
        :param forward_stderr: send stderr wherever stdout goes.
        :param capture_output: return stdout (bytes) as ``renv['stdout']``.
        :param mem_limit: memory limit, KiB (environ key
            ``<prefix>mem_limit`` wins).
        :param time_limit: CPU time limit, ms (``<prefix>time_limit`` wins).
        :param real_time_limit: wall time limit, ms
            (``<prefix>real_time_limit`` wins).
        :param output_limit: output limit, bytes (``<prefix>output_limit``
            wins).
        :param environ: the job environ to read limits from, and
            ``fake_time`` (without the prefix, as SIO2 sends it: ``off``,
            ``zero`` or ``random``; see :class:`SupervisedExecutor`).
        :param environ_prefix: prefix of those keys, e.g. ``'exec_'``.
        :param cwd: the working directory (default :func:`tempcwd`).
        :param pass_fds: more descriptors the program inherits.
        :param fds_to_close: descriptors the executor closes in this process
            right after the program started (or, if it never starts, before
            returning): the caller's copies of pipe ends given to the
            program, so that its peer sees end-of-file or ``EPIPE`` as soon
            as it ends. Ownership passes to the executor with the call.
        :param kwargs: options of particular executors.

        Writes (renv): ``return_code`` (exit status, or 128 + signal number
        when killed by a signal), ``real_time_used`` (ms),
        ``real_time_killed`` (bool), ``stdout`` (with ``capture_output``;
        at most ``output_limit`` bytes), and what subclasses add.

        :raises ExecError: non-zero return code, unless ignored.
        """
        closer = _FdCloser(fds_to_close)
        try:
            request = ExecRequest(
                command=_as_command(command),
                env=_env(env, self.inherits_environment),
                cwd=cwd if cwd is not None else tempcwd(),
                limits=ExecLimits.build(environ, environ_prefix, time_limit=time_limit,
                                        real_time_limit=real_time_limit, mem_limit=mem_limit,
                                        output_limit=output_limit),
                stdin=_fd(stdin, "stdin"),
                stdout=_fd(stdout, "stdout"),
                stderr=_fd(stderr, "stderr"),
                capture_output=bool(capture_output),
                forward_stderr=bool(forward_stderr),
                split_lines=bool(split_lines),
                ignore_errors=bool(ignore_errors),
                extra_ignore_errors=tuple(extra_ignore_errors),
                pass_fds=tuple(pass_fds),
                fake_time=_fake_time(environ),
                options=dict(kwargs),
                after_spawn=closer.close if closer.fds else None,
            )
            return self._execute(request)
        finally:
            closer.close()

    def _execute(self, request: ExecRequest) -> dict[str, Any]:
        raise NotImplementedError

    # Paths as the executed program sees them (sandboxes that change the
    # root override these).
    def rcwd(self, subpath: str = "") -> str:
        """The job directory (or ``subpath`` in it) as seen by the program."""
        return tempcwd(subpath) if subpath else tempcwd()

    def tempcwd_to_rcwd(self, path: str) -> str:
        """Map a path under :func:`tempcwd` to the program's view of it.

        :raises ValueError: ``path`` is not under the job directory.
        """
        base = tempcwd()
        relative = os.path.relpath(os.path.abspath(path), base)
        if relative == os.pardir or relative.startswith(os.pardir + os.sep):
            raise ValueError(f"{path!r} is not inside the job directory {base!r}")
        return self.rcwd(relative if relative != os.curdir else "")


class UnprotectedExecutor(BaseExecutor):
    """Runs the command as is: limits, but no isolation.

    * CPU time limit: a watchdog kills the process group at ``time_limit``
      (and RLIMIT_CPU one second later as a backstop);
    * wall time limit: ``real_time_limit``, by default twice
      ``time_limit``; the whole group is killed;
    * memory: RLIMIT_AS of ``mem_limit`` KiB (and the stack may use all of
      it);
    * output: captured output is truncated to ``output_limit`` bytes (no
      verdict).

    Everything the program leaves running in its group is killed when it
    ends.
    """

    #: the real-time limit when only a time limit is given: this many times it
    REAL_TIME_LIMIT_MULTIPLIER: ClassVar[int] = 2

    def _execute(self, request: ExecRequest) -> dict[str, Any]:
        outcome = self._run(request)
        renv = self._renv(request, outcome)
        self._check(request, renv)
        return renv

    def _real_time_limit_ms(self, limits: ExecLimits) -> int | None:
        if limits.real_time_limit_ms is None and limits.time_limit_ms:
            return self.REAL_TIME_LIMIT_MULTIPLIER * limits.time_limit_ms
        return limits.real_time_limit_ms or None

    def _engine_limits(self, request: ExecRequest) -> Limits:
        """What the engine enforces for this request (0 = no limit)."""
        limits = request.limits
        mem = limits.mem_limit_kib or None
        return Limits(
            cpu_time_ms=limits.time_limit_ms or None,
            wall_time_ms=self._real_time_limit_ms(limits),
            address_space_kib=mem,
            # The original ran 'ulimit -s unlimited' with a memory limit: the
            # stack may take all of it. A finite value (unlike 'unlimited')
            # keeps the kernel's usual top-down memory layout.
            stack_kib=mem,
            capture_bytes=limits.output_limit_bytes or None,
        )

    def _run(self, request: ExecRequest) -> Outcome:
        """Run the command; the one step subclasses override to run it
        differently (in a sandbox, under a supervisor)."""
        streams: dict[str, Any] = dict(
            stdin=request.stdin,
            stdout=CAPTURE if request.capture_output else request.stdout,
            stderr=STDOUT if request.forward_stderr else request.stderr,
        )
        limits = self._engine_limits(request)
        argv = _direct_argv(request.command)
        if argv is not None:
            try:
                return run_process(argv, cwd=request.cwd, env=request.env, limits=limits,
                                   pass_fds=request.pass_fds, on_spawn=request.after_spawn,
                                   **streams)
            except (FileNotFoundError, PermissionError):
                # Not an executable file (a shell builtin such as 'exit', or
                # a missing program): let the shell run it or report it, with
                # its usual status 127/126, as the original did.
                pass
        return run_process(["/bin/sh", "-c", request.shell_line], cwd=request.cwd,
                           env=request.env, limits=limits, pass_fds=request.pass_fds,
                           on_spawn=request.after_spawn, **streams)

    def _renv(self, request: ExecRequest, outcome: Outcome) -> dict[str, Any]:
        renv: dict[str, Any] = {
            "return_code": return_code(outcome),
            "real_time_used": outcome.wall_time_ms,
            "real_time_killed": outcome.killed is KillReason.WALL_TIME,
        }
        if request.capture_output:
            output = outcome.stdout or b""
            renv["stdout"] = output.split(b"\n") if request.split_lines else output
        return renv

    def _check(self, request: ExecRequest, renv: Mapping[str, Any]) -> None:
        code = renv["return_code"]
        if code != 0 and not request.ignore_errors and code not in request.extra_ignore_errors:
            raise ExecError(f"Failed to execute command: {request.shell_line}. "
                            f"Returned with code {code}\n")


class DetailedUnprotectedExecutor(UnprotectedExecutor):
    """:class:`UnprotectedExecutor` that also gives a verdict.

    Writes, besides the basic renv: ``time_used`` (CPU ms, from the
    kernel's accounting of the process and the children it waited for),
    ``result_code`` and ``result_string``:

    1. ``TLE`` ``time limit exceeded`` when ``time_used`` reached 95 % of
       ``time_limit`` (so a run stopped by the time limit is TLE even if its
       last tick was not counted);
    2. ``TLE`` ``real time limit exceeded`` when killed on the wall time;
    3. ``OLE`` ``output limit exceeded`` when it wrote more than
       ``output_limit`` bytes to a file (its ``stdout`` when that is a file
       rather than captured: then ``output_limit`` is also the largest file
       it may write, RLIMIT_FSIZE);
    4. ``OK`` ``ok`` on exit status 0;
    5. ``RE`` ``program exited due to signal N`` (and ``exit_signal`` = N)
       when a signal N ended it, **or when it exited with status 128 + N**
       (N > 0, see below);
    6. ``RE`` ``program exited with code N``.

    An exit status above 128 reads as a signal, as the original read it:
    it ran every program through a shell (``bash -c 'time ...'``), which
    reports a child killed by signal N as status 128 + N, so a program that
    exits with 141 was indistinguishable from one killed by ``SIGPIPE``.
    Clients rely on it: oioioi's interactors ``return 128 + 13`` when the
    solution's pipe closes, to be judged as if ``SIGPIPE`` killed them
    (see :mod:`sio.executors.interactive_common`). ``return_code`` stays
    the status (141). The supervised executors report what really happened
    (:attr:`SHELL_STATUS_SIGNALS` is this executor's choice only).

    ``mem_used`` and ``num_syscalls`` are always 0 (not measured).
    """

    #: fraction of the time limit from which a run is TLE
    TLE_FRACTION: ClassVar[float] = 0.95
    #: read an exit status 128 + N (N > 0) as signal N, as the original's
    #: shell did (see the class docs)
    SHELL_STATUS_SIGNALS: ClassVar[bool] = True

    def _signal(self, outcome: Outcome) -> int | None:
        """The signal the renv reports: the one that ended the program, or
        N of an exit status 128 + N (with :attr:`SHELL_STATUS_SIGNALS`)."""
        if outcome.signal is not None:
            return outcome.signal
        status = outcome.exit_code
        if self.SHELL_STATUS_SIGNALS and status is not None and status > 128:
            return status - 128
        return None

    def _renv(self, request: ExecRequest, outcome: Outcome) -> dict[str, Any]:
        renv = super()._renv(request, outcome)
        renv.update(time_used=outcome.cpu_time_ms, mem_used=0, num_syscalls=0)
        signal = self._signal(outcome)
        if signal is not None:
            renv["exit_signal"] = signal
        code, message = self._verdict(request, outcome)
        renv["result_code"] = code.value
        renv["result_string"] = message
        return renv

    def _engine_limits(self, request: ExecRequest) -> Limits:
        limits = super()._engine_limits(request)
        output = request.limits.output_limit_bytes
        if output and request.stdout is not None and not request.capture_output:
            # The program's output goes to a file (the exec jobs' 'out'):
            # the kernel stops it there, instead of filling the disk.
            limits = dataclasses.replace(limits, output_bytes=output)
        return limits

    def _verdict(self, request: ExecRequest, outcome: Outcome) -> tuple[ResultCode, str]:
        time_limit = request.limits.time_limit_ms
        if outcome.killed is KillReason.CPU_TIME or \
                (time_limit and outcome.cpu_time_ms >= self.TLE_FRACTION * time_limit):
            return ResultCode.TLE, "time limit exceeded"
        if outcome.killed is KillReason.WALL_TIME:
            return ResultCode.TLE, "real time limit exceeded"
        if outcome.killed is KillReason.OUTPUT:
            return ResultCode.OLE, "output limit exceeded"
        if outcome.exit_code == 0:
            return ResultCode.OK, "ok"
        signal = self._signal(outcome)
        if signal is not None:
            return ResultCode.RE, f"program exited due to signal {signal}"
        return ResultCode.RE, f"program exited with code {outcome.exit_code}"


def execute_command(command: Any, env: Mapping[str, Any] | None = None,
                    split_lines: bool = False, stdin: StreamArg = None,
                    stdout: StreamArg = None, stderr: StreamArg = None,
                    forward_stderr: bool = False, capture_output: bool = False,
                    output_limit: int | None = None, real_time_limit: int | None = None,
                    ignore_errors: bool = False, extra_ignore_errors: Iterable[int] = (),
                    cwd: str | None = None, pass_fds: Iterable[int] = (),
                    fds_to_close: Iterable[int] = (), **kwargs: Any) -> dict[str, Any]:
    """The original's one function that ran a command: run ``command`` (a
    list or a shell line) in the job directory (or ``cwd``) with only a
    wall-time limit (``real_time_limit``, ms) and return the basic renv
    (``return_code``, ``real_time_used``, ``real_time_killed``, ``stdout``
    with ``capture_output``, at most ``output_limit`` bytes).

    It is an :class:`UnprotectedExecutor` call without CPU or memory limits;
    the options are those of :meth:`BaseExecutor.__call__`.

    :raises ExecError: non-zero return code, unless ignored.
    """
    with UnprotectedExecutor() as executor:
        return executor(command, env=env, split_lines=split_lines, stdin=stdin,
                        stdout=stdout, stderr=stderr, forward_stderr=forward_stderr,
                        capture_output=capture_output, output_limit=output_limit,
                        real_time_limit=real_time_limit, ignore_errors=ignore_errors,
                        extra_ignore_errors=extra_ignore_errors, cwd=cwd,
                        pass_fds=pass_fds, fds_to_close=fds_to_close, **kwargs)


def return_code(outcome: Outcome) -> int:
    """The renv ``return_code`` of an outcome: the exit status, or 128 plus
    the signal number when a signal ended the program (as a shell reports
    it)."""
    if outcome.exit_code is not None:
        return outcome.exit_code
    return 128 + (outcome.signal or 0)


# --------------------------------------------------------------------------
# Executors that use sandboxes (see sio.workers.sandbox and docs/sandboxes.rst)
# --------------------------------------------------------------------------

class SandboxExecutor(UnprotectedExecutor):
    """:class:`UnprotectedExecutor` with the programs of a sandbox.

    Entering the executor enters sandbox ``sandbox`` (installing it if
    needed, see :func:`sio.workers.sandbox.get_sandbox`). For each call:

    * a relative program (``command[0]`` of a list) is taken from the
      sandbox: ``gcc/bin/gcc`` means ``<sandbox>/gcc/bin/gcc``; the option
      ``use_path=True`` leaves it to be found on ``PATH`` instead;
    * ``PATH`` starts with ``<sandbox>/bin:<sandbox>/usr/bin``;
    * ``LD_LIBRARY_PATH`` is ``<sandbox>/lib:<sandbox>/usr/lib``, unless the
      sandbox's ``elf_loader_patch`` fixup made its programs find their
      libraries themselves.

    A sandbox is not isolation: the program sees the whole machine. The
    renv and limits are those of :class:`UnprotectedExecutor`.

    Symbolic links with absolute targets in the sandbox (common in trees
    built from Debian packages) mean paths of the sandbox in the
    directories named above: with ``lib -> /usr/lib``, ``LD_LIBRARY_PATH``
    names the sandbox's ``usr/lib``, and ``bin/gcc`` below ``bin ->
    /usr/bin`` is the sandbox's ``usr/bin/gcc``. The program itself runs on
    the host, though: when it (or a program named by an absolute link)
    follows such a link, it reaches the host's file, as with the original.
    Such sandboxes are meant to be the root file system of
    :class:`PRootExecutor`.
    """

    def __init__(self, sandbox: str) -> None:
        from sio.workers.sandbox import get_sandbox

        self.sandbox = get_sandbox(sandbox)

    def __enter__(self) -> SandboxExecutor:
        self.sandbox.__enter__()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.sandbox.__exit__(*exc_info)

    @property
    def path(self) -> str:
        """The sandbox directory."""
        return self.sandbox.path

    @property
    def rpath(self) -> str:
        """The sandbox directory as the program sees it (the same path)."""
        return self.sandbox.path

    def _run(self, request: ExecRequest) -> Outcome:
        from sio.workers.sandbox import ELF_LOADER_PATCH

        # Entered again for the call (cheap, re-entrant), so a call outside
        # 'with executor:' cannot see the tree being replaced under it.
        with self.sandbox:
            root = self.sandbox.path
            command = list(request.command)
            first = command[0]
            # A shell line (noquote) is left to find programs on PATH.
            relative = isinstance(first, str) and not isinstance(first, noquote) \
                and not os.path.isabs(first)
            if relative and not request.options.get("use_path"):
                command[0] = _sandbox_program(root, first)
            # The directories as the sandbox means them: 'lib -> /usr/lib'
            # (an absolute link) is the sandbox's usr/lib, not the host's.
            bins, libs = (":".join(_sandbox_dir(root, d) for d in pair)
                          for pair in (("bin", "usr/bin"), ("lib", "usr/lib")))
            env = dict(request.env)
            env["PATH"] = f"{bins}:" + env.get("PATH", os.defpath)
            if not self.sandbox.has_fixup(ELF_LOADER_PATCH):
                env["LD_LIBRARY_PATH"] = libs
            return super()._run(request.replace(command=command, env=env))


def _sandbox_dir(root: str, path: str) -> str:
    """Directory ``path`` of the sandbox tree ``root``, links in it followed
    inside the tree (:func:`~sio.workers.sandbox.resolve_in_sandbox`)."""
    from sio.workers.sandbox import resolve_in_sandbox

    try:
        return resolve_in_sandbox(root, path)
    except OSError:  # a loop (refused when installed): leave it to fail
        return os.path.join(root, path)


def _sandbox_program(root: str, path: str) -> str:
    """Program ``path`` of the sandbox tree ``root`` run on the host: its
    directories are found inside the tree (``bin -> /usr/bin`` is the
    sandbox's ``usr/bin``), its own name is kept, since multi-call programs
    (busybox) tell what to do by it; a program that is itself an absolute
    link is followed by the host's kernel, onto the host."""
    head, tail = os.path.split(path)
    return os.path.join(_sandbox_dir(root, head), tail) if head else os.path.join(root, tail)


def _executable_in(root: str, path: str) -> bool:
    """Whether ``path`` of the sandbox tree ``root`` is an executable file
    when ``root`` is ``/`` (links followed inside the tree)."""
    from sio.workers.sandbox import resolve_in_sandbox

    try:
        resolved = resolve_in_sandbox(root, path)
    except OSError:  # a loop: nothing to run
        return False
    return os.path.isfile(resolved) and os.access(resolved, os.X_OK)


#: (tool sandbox name, base directory) -> time.monotonic() of its last failure
_proot_tool_failures: dict[tuple[str, str], float] = {}


class CompoundSandboxExecutor(UnprotectedExecutor):
    """Base of the executors that run a program with a *tool* from one
    sandbox (:attr:`TOOL_SANDBOX`) and another sandbox as the program's root
    file system (``sandbox``, in its ``pristine`` flavour: no fixups), as
    the latest original's class of this name. The job directory is
    ``/tmp`` as the program sees it (:meth:`rcwd`).

    Entering it enters both sandboxes (installing them if needed);
    subclasses (:class:`PRootExecutor`) say how the tool runs the command.
    Calling this base class itself is a usage error.

    :param sandbox: the root sandbox; ``None``: none (a subclass decides).
    """

    #: the sandbox holding the tool (None: none)
    TOOL_SANDBOX: ClassVar[str | None] = None
    #: the job directory inside the root sandbox
    GUEST_TMP: ClassVar[str] = "/tmp"

    def __init__(self, sandbox: str | None = None) -> None:
        from sio.workers.sandbox import get_sandbox

        self.chroot: Sandbox | None = get_sandbox(sandbox, flavor="pristine") if sandbox \
            else None
        self.tool_sandbox = get_sandbox(self.TOOL_SANDBOX) if self.TOOL_SANDBOX else None
        self._compound_stacks: list[Any] = []

    def __enter__(self) -> CompoundSandboxExecutor:
        from contextlib import ExitStack

        with ExitStack() as stack:
            for sandbox in (self.tool_sandbox, self.chroot):
                if sandbox is not None:
                    stack.enter_context(sandbox)
            self._compound_stacks.append(stack.pop_all())
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._compound_stacks.pop().close()

    @property
    def path(self) -> str:
        """The root sandbox's directory on the host."""
        if self.chroot is None:
            raise UsageError(f"{type(self).__name__} has no root sandbox")
        return self.chroot.path

    @property
    def rpath(self) -> str:
        """The root sandbox as the program sees it: ``/``."""
        return "/"

    def rcwd(self, subpath: str = "") -> str:
        return posixpath.join(self.GUEST_TMP, subpath) if subpath else self.GUEST_TMP

    def _run(self, request: ExecRequest) -> Outcome:
        raise UsageError(f"{type(self).__name__} is a base class: use PRootExecutor (or "
                         "another subclass that says how its tool runs the command)")


class PRootExecutor(CompoundSandboxExecutor):
    """Runs the command with sandbox ``sandbox`` as its root file system,
    through PRoot (``ptrace``-based ``chroot``, no privileges needed).

    * The sandbox (its ``pristine`` flavour: no fixups) becomes ``/``.
    * The job directory (:func:`~sio.workers.util.tempcwd`) is visible as
      ``/tmp`` and is the working directory (a ``cwd`` under the job
      directory becomes the matching directory under ``/tmp``; any other
      ``cwd`` is taken as a path inside the sandbox).
    * The command runs as ``/bin/sh -c LINE`` inside the sandbox; a sandbox
      without ``/bin/sh`` (even from the tool sandbox) runs only list
      commands without :class:`noquote` pieces, executed directly.
    * ``proot`` is ``proot/proot`` of sandbox ``tool_sandbox`` (default
      :attr:`TOOL_SANDBOX`) when that can be installed, else ``proot`` from
      ``PATH`` (Debian: ``apt install proot``). A failed tool sandbox is not
      tried again for ``SIO_SANDBOXES_CHECK_INTERVAL`` seconds. Without a
      ``/bin/sh`` or ``/lib`` in the sandbox, the tool sandbox's are bound
      there.
    * Symbolic links with absolute targets in the sandbox mean paths of the
      sandbox (PRoot makes it ``/``); looking for ``/bin/sh`` follows them
      inside the sandbox too (:func:`sio.workers.sandbox.resolve_in_sandbox`).

    Call options besides those of :class:`UnprotectedExecutor`:
    ``binds`` (a list of ``(what, where)`` or ``(what, where, mode)``: host
    path ``what`` appears at ``where``; PRoot cannot make a bind read-only,
    so ``mode`` is ignored) and ``proot_options`` (a list of more PRoot
    arguments, e.g. ``['-b', '/proc']``). Both apply to that call only.

    The real-time limit defaults to three times the time limit (tracing
    costs). The renv is that of :class:`UnprotectedExecutor`; the time
    measured includes PRoot's own.
    """

    #: sandbox whose ``proot/proot`` is used when available
    TOOL_SANDBOX: ClassVar[str | None] = "proot-sandbox_amd64-v2.1"
    REAL_TIME_LIMIT_MULTIPLIER: ClassVar[int] = 3
    #: the root sandbox (always one here)
    chroot: Sandbox

    def __init__(self, sandbox: str, tool_sandbox: str | None = "") -> None:
        from sio.workers.sandbox import get_sandbox

        self.chroot = get_sandbox(sandbox, flavor="pristine")
        self.tool_sandbox_name = self.TOOL_SANDBOX if tool_sandbox == "" else tool_sandbox
        self._stacks: list[Any] = []
        self._tool: SandboxExecutor | None = None
        self._proot: str | None = None

    def __enter__(self) -> PRootExecutor:
        from contextlib import ExitStack

        with ExitStack() as stack:
            stack.enter_context(self.chroot)
            if not self._stacks:
                self._tool, self._proot = self._find_proot(stack)
            self._stacks.append(stack.pop_all())
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stacks.pop().close()

    def _find_proot(self, stack: Any) -> tuple[SandboxExecutor | None, str]:
        import shutil
        import time

        from sio.workers.sandbox import SandboxError, check_interval_s, get_sandbox

        problem = "no proot tool sandbox is configured"
        name = self.tool_sandbox_name
        if name:
            key = (name, get_sandbox(name).basedir)
            failed_at = _proot_tool_failures.get(key)
            if failed_at is not None and time.monotonic() - failed_at < check_interval_s():
                problem = f"sandbox {name!r} failed recently"
            else:
                tool = SandboxExecutor(name)
                try:
                    stack.enter_context(tool)
                except SandboxError as e:
                    _proot_tool_failures[key] = time.monotonic()
                    problem = str(e)
                else:
                    _proot_tool_failures.pop(key, None)
                    for rel in ("proot/proot", "bin/proot"):
                        # Checked where the tool executor will run it.
                        if os.access(_sandbox_program(tool.path, rel), os.X_OK):
                            return tool, rel
                    problem = f"sandbox {name!r} has no proot/proot"
        system = shutil.which("proot")
        if system is None:
            raise SandboxError(f"PRootExecutor needs proot: {problem}, and there is no 'proot' "
                               "on PATH (Debian/Ubuntu: apt install proot)")
        return None, system

    def _guest_cwd(self, cwd: str) -> str:
        try:
            return self.tempcwd_to_rcwd(cwd)
        except ValueError:
            return cwd  # already a path inside the sandbox

    def _run(self, request: ExecRequest) -> Outcome:
        from sio.workers.sandbox import resolve_in_sandbox

        if not self._stacks or self._proot is None:
            raise UsageError("use PRootExecutor inside 'with executor:'")
        root = self.chroot.path
        tool = self._tool
        job_dir = tempcwd()
        # Built afresh for every call: binds of one call never leak into
        # the next (the original appended them to a shared list).
        options = ["-v", "-1", "-r", root]
        # Looked up as PRoot will, with the sandbox as '/': a sandbox built
        # from Debian packages has links such as bin/sh -> /bin/dash, which
        # on the host would lead to the host's file.
        has_sh = _executable_in(root, "/bin/sh")
        if tool is not None:
            # The tool sandbox's shell and libraries become the guest's
            # /bin/sh and /lib: what they mean with the tool sandbox as '/'
            # is bound (PRoot would follow an absolute link on the host).
            if not has_sh and _executable_in(tool.path, "/bin/sh"):
                options += ["-b", f"{resolve_in_sandbox(tool.path, '/bin/sh')}:/bin/sh"]
                has_sh = True
            tool_lib = resolve_in_sandbox(tool.path, "/lib")
            if not os.path.lexists(os.path.join(root, "lib")) and os.path.isdir(tool_lib):
                options += ["-b", f"{tool_lib}:/lib"]
        options += ["-b", f"{job_dir}:{self.GUEST_TMP}", "-w", self._guest_cwd(request.cwd)]
        for bind in request.options.get("binds") or ():
            if not isinstance(bind, (list, tuple)) or len(bind) not in (2, 3):
                raise UsageError(f"binds: {bind!r} is not (what, where) or (what, where, mode)")
            options += ["-b", f"{bind[0]}:{bind[1]}"]
        options += [str(o) for o in request.options.get("proot_options") or ()]
        # Through the sandbox's shell when it has one, as the original did:
        # shell builtins work and a missing program gives status 127.
        program = ["/bin/sh", "-c", request.shell_line] if has_sh \
            else _direct_argv(request.command)
        if program is None:
            raise UsageError(f"sandbox {self.chroot.name!r} has no /bin/sh, so the shell line "
                             f"{request.shell_line!r} cannot run in it; give the command as "
                             "a list without noquote pieces")
        # The host side of the run: proot starts in the job directory; the
        # real-time default is ours even when the tool executor runs it.
        limits = dataclasses.replace(
            request.limits, real_time_limit_ms=self._real_time_limit_ms(request.limits) or 0)
        run = request.replace(command=[self._proot, *options, *program], cwd=job_dir,
                              limits=limits)
        if tool is not None:
            return tool._run(run)
        return UnprotectedExecutor._run(self, run)


class PRoot32BitExecutor(PRootExecutor):
    """:class:`PRootExecutor` with the original's 32-bit PRoot tool sandbox
    ``proot-sandbox`` (the latest original ran its Java 1.8 compiler with
    it); like :class:`PRootExecutor`, it uses the system ``proot`` when the
    tool sandbox cannot be had."""

    TOOL_SANDBOX: ClassVar[str | None] = "proot-sandbox"


# --------------------------------------------------------------------------
# The supervised executor (built-in secure supervisor)
# --------------------------------------------------------------------------

class _SIOSupervisorContract:
    """What every executor of SIO2's supervisor contract shares, whichever
    supervisor does the work: the default limits, the default real-time
    limit (a multiple of the time limit, plus 1000 ms) and the rule for
    raising :class:`ExecError`."""

    DEFAULT_TIME_LIMIT_MS: ClassVar[int] = 30000
    DEFAULT_MEMORY_LIMIT_KIB: ClassVar[int] = 65536
    DEFAULT_OUTPUT_LIMIT_BYTES: ClassVar[int] = 52428800
    REAL_TIME_LIMIT_MULTIPLIER: ClassVar[int] = 64
    REAL_TIME_LIMIT_ADDEND_MS: ClassVar[int] = 1000

    def _set_real_time_limit_multiplier(self, multiplier: int | None) -> None:
        if multiplier is not None:
            if multiplier < 1:
                raise ValueError("real_time_limit_multiplier must be at least 1")
            # An instance attribute: the judging jobs guard sleeping programs
            # more tightly than the original's executor default (see
            # sio.executors.selection).
            self.REAL_TIME_LIMIT_MULTIPLIER = multiplier  # type: ignore[misc]

    def _real_time_limit_ms(self, limits: ExecLimits) -> int | None:
        if limits.real_time_limit_ms == 0:
            return None  # explicitly no wall-time limit
        base = limits.real_time_limit_ms
        if base is None:
            base = self.REAL_TIME_LIMIT_MULTIPLIER * self._time_limit_ms(limits)
        return base + self.REAL_TIME_LIMIT_ADDEND_MS if base else None

    def _time_limit_ms(self, limits: ExecLimits) -> int:
        tl = limits.time_limit_ms
        return self.DEFAULT_TIME_LIMIT_MS if tl is None else tl

    def _check(self, request: ExecRequest, renv: Mapping[str, Any]) -> None:
        code = renv["result_code"]
        if code == ResultCode.OK or request.ignore_errors:
            return
        if code == ResultCode.RE and renv["return_code"] in request.extra_ignore_errors:
            return
        raise ExecError(f"Failed to execute command: {request.shell_line}. "
                        f"Reason: {renv['result_string']}")


class SupervisedExecutor(_SIOSupervisorContract, UnprotectedExecutor):
    """Runs an untrusted program under the built-in secure supervisor
    (:mod:`sio.workers._engine.supervisor`, described in
    :doc:`supervisor`): seccomp-bpf allow-list, a tracer for the rare
    decisions (opening files, creating processes, signals), Landlock and
    namespaces where the kernel has them, an unprivileged uid when run as
    root. No binary is downloaded; the ``exec-sandbox`` of the original is
    not needed.

    :param allow_local_open: the program may open files inside its working
        directory **read-only**; opening them for writing is refused (the
        program sees an error) instead of being a rule violation.
    :param use_program_return_code: accepted for compatibility with the
        original (its ``-r`` option); ``return_code`` is always the
        program's own exit status here.
    :param policy: the engine's full :class:`Policy` (threads, extra
        read-only paths, extra system calls), for runtimes that need more;
        ``allow_local_open`` is applied on top of it.
    :param real_time_limit_multiplier: the default real-time limit is this
        many times the time limit, plus 1000 ms (default 64, as the
        original's supervised executors).

    Limits (environ keys with the call's ``environ_prefix``, or arguments):
    ``time_limit`` (CPU ms, default 30000), ``mem_limit`` (KiB, default
    65536, on the peak virtual memory like SIO2's supervisor),
    ``output_limit`` (bytes, default 52428800: files through RLIMIT_FSIZE,
    captured output by counting), ``real_time_limit`` (ms; by default 64
    times the time limit, the judging jobs ask for 2 times, see
    :mod:`sio.executors.selection`; 1000 ms are always added, to a given
    limit too; an explicit 0 means no wall-time limit). ``0`` for the others
    means no limit.

    Call options: ``ignore_return=True``: a non-zero exit status is not RE;
    ``read_paths``: more files or directories (absolute paths) the program
    may open read-only in this call, e.g. its script or extra files;
    ``policy_changes``: a mapping of
    :class:`~sio.workers._engine.supervisor.Policy` fields replaced for
    this call (a language runtime's needs, see
    :class:`~sio.workers.file_runners.SupervisedJava`);
    ``resident_memory=True``: ``mem_used`` is the peak resident memory
    (``VmHWM``) rather than the peak virtual memory, for a runtime that
    reserves far more address space than it uses.

    Environ key (without the prefix, as SIO2 sends it): ``fake_time``:
    ``off`` (default), ``zero`` or ``random``, the program's view of time
    (RDTSC/RDTSCP and the clock calls; exactly what is faked is in
    :doc:`supervisor`).

    Environment: the program never sees the worker's variables; it gets
    :data:`SUPERVISED_BASE_ENV` (``PATH``), what the call passes as ``env``,
    and ``LC_ALL`` = ``LANGUAGE`` = :data:`DEFAULT_LOCALE`.

    Writes (renv): ``result_code`` (``OK`` ``RE`` ``TLE`` ``MLE`` ``OLE``
    ``RV`` ``SE``), ``result_string`` (``ok``, ``time limit exceeded``,
    ``real time limit exceeded``, ``memory limit exceeded``, ``output limit
    exceeded``, ``intercepted forbidden syscall <name>``, ``process exited
    due to signal N``, ``runtime error N``), ``time_used`` (CPU ms, user +
    system), ``mem_used`` (peak KiB), ``num_syscalls`` (system calls the
    tracer stopped on: opens, path queries, process creation, signals, large
    mappings; the others run in the kernel uncounted), ``return_code`` (the
    program's exit status; -1 when it did not exit by itself),
    ``real_time_used`` (ms), ``real_time_killed``, ``exit_signal`` (when a
    signal ended it) and ``stdout`` (with ``capture_output``).

    :raises ExecError: the verdict is not OK, unless ``ignore_errors``, or
        the verdict is RE with a ``return_code`` in ``extra_ignore_errors``.
    :raises SupervisorUnavailable: the machine cannot supervise (the
        message says what is missing); nothing is run unsupervised.
    """

    #: the program's environment is SUPERVISED_BASE_ENV + the call's ``env``
    inherits_environment = False

    def __init__(self, allow_local_open: bool = False, use_program_return_code: bool = False,
                 policy: Any = None, real_time_limit_multiplier: int | None = None) -> None:
        from sio.workers._engine.supervisor.policy import Policy

        base = policy if policy is not None else Policy()
        self.policy = dataclasses.replace(base, allow_local_open=bool(allow_local_open)
                                          or base.allow_local_open)
        self.use_program_return_code = use_program_return_code
        self._set_real_time_limit_multiplier(real_time_limit_multiplier)

    def _engine_limits(self, request: ExecRequest) -> Limits:
        limits = request.limits

        def default(value: int | None, fallback: int) -> int | None:
            value = fallback if value is None else value
            return value or None  # 0 = no limit

        output = default(limits.output_limit_bytes, self.DEFAULT_OUTPUT_LIMIT_BYTES)
        return Limits(
            cpu_time_ms=default(limits.time_limit_ms, self.DEFAULT_TIME_LIMIT_MS),
            wall_time_ms=self._real_time_limit_ms(limits),
            address_space_kib=default(limits.mem_limit_kib, self.DEFAULT_MEMORY_LIMIT_KIB),
            output_bytes=output,
            # Unlimited stack (SIO2 ran 'ulimit -s unlimited'): the memory
            # limit bounds it, and threads keep their usual 2 MiB stacks.
            stack_kib=None,
            capture_bytes=output,
        )

    def _run(self, request: ExecRequest) -> Outcome:
        from sio.workers._engine.supervisor._client import run_supervised

        if request.pass_fds:
            raise UsageError("the supervised executor gives a program only its standard "
                             "streams: pass_fds is not supported")
        argv = _direct_argv(request.command)
        if argv is None:
            raise UsageError(
                f"the supervised executor runs one program, not a shell line: give the "
                f"command as a list without noquote pieces (got {request.shell_line!r})")
        policy = self.policy
        changes = dict(request.options.get("policy_changes") or {})
        if request.fake_time != "off":
            changes.setdefault("fake_time", request.fake_time)
        extra = tuple(os.path.abspath(os.path.join(request.cwd, p))
                      for p in request.options.get("read_paths") or ())
        if extra:
            changes["read_paths"] = tuple(changes.get("read_paths", policy.read_paths)) + extra
        if changes:
            policy = dataclasses.replace(policy, **changes)
        return run_supervised(
            argv, cwd=request.cwd, env=request.env,
            stdin=request.stdin,
            stdout=CAPTURE if request.capture_output else request.stdout,
            stderr=STDOUT if request.forward_stderr else request.stderr,
            limits=self._engine_limits(request), policy=policy,
            on_spawn=request.after_spawn)

    def _renv(self, request: ExecRequest, outcome: Outcome) -> dict[str, Any]:
        renv = super()._renv(request, outcome)
        code, message = verdict(outcome, ignore_return=bool(request.options.get("ignore_return")))
        renv.update(
            result_code=code.value,
            result_string=message,
            time_used=outcome.cpu_time_ms,
            mem_used=(outcome.mem_resident_peak_kib if request.options.get("resident_memory")
                      else outcome.mem_peak_kib) or 0,
            num_syscalls=outcome.syscalls or 0,
            # The program's own status, as the original's supervisor reported
            # it: -1 when it did not exit by itself (signal, limit, rule).
            return_code=outcome.exit_code if outcome.exit_code is not None and
            outcome.killed is None else -1,
        )
        if outcome.signal is not None:
            renv["exit_signal"] = outcome.signal
        return renv


class Sio2JailExecutor(SupervisedExecutor):
    """The original's executor of ``sio2jail-exec``: instruction-counted
    time (:attr:`INSTRUCTIONS_PER_VIRTUAL_SECOND` instructions are one
    second), measured by the ``sio2jail`` binary with the processor's
    performance counters.

    It can be built and entered as in the original, but the built-in
    supervisor does not count instructions yet: every call raises
    :class:`InstructionCountingUnavailable`, whose message says whether
    this machine lacks the hardware instruction counter or only the
    supervisor lacks the counting (the same as the ``sio2jail-exec`` job).
    It never measures CPU time instead under this name.

    :param sandbox: the original's root sandbox of the program; the
        supervisor builds its own minimal root, so only ``None`` is
        accepted (a name is a usage error when called).
    :param measure_real_time: what :class:`RealTimeSio2JailExecutor` is.
    """

    #: instructions counted as one second
    INSTRUCTIONS_PER_VIRTUAL_SECOND: ClassVar[int] = 2_000_000_000

    def __init__(self, sandbox: str | None = None, measure_real_time: bool = False,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.chroot_sandbox = sandbox
        self.measure_real_time = bool(measure_real_time)

    def _run(self, request: ExecRequest) -> Outcome:
        if self.chroot_sandbox is not None:
            raise UsageError(f"{type(self).__name__}: a sandbox as the program's root "
                             f"({self.chroot_sandbox!r}) is not supported; the supervisor "
                             "gives programs its own minimal root")
        if not self.measure_real_time:
            raise InstructionCountingUnavailable(instruction_counting_problem(
                type(self).__name__,
                "Use SupervisedExecutor or RealTimeSio2JailExecutor instead (time measured "
                "as CPU time)"))
        return super()._run(request)


class RealTimeSio2JailExecutor(Sio2JailExecutor):
    """The original's executor of ``exec`` and ``cpu-exec`` (sio2jail
    measuring time instead of counting instructions), here the built-in
    supervisor, as those jobs use it: the renv and limits of
    :class:`SupervisedExecutor`, with the judging jobs' default real-time
    limit (twice the time limit, plus 1000 ms). ``time_used`` is CPU time,
    which the original's sio2jail replaced with wall time.
    """

    #: the default real-time limit: this many times the time limit (+1 s)
    REAL_TIME_LIMIT_MULTIPLIER: ClassVar[int] = 2

    def __init__(self, sandbox: str | None = None, **kwargs: Any) -> None:
        super().__init__(sandbox, measure_real_time=True, **kwargs)


# --------------------------------------------------------------------------
# The original exec-sandbox supervisor binary, for deployments that have it
# --------------------------------------------------------------------------

#: The supervisor's result code (the second word of its report) -> verdict;
#: any other code is ``RE``.
SUPERVISOR_RESULT_CODES: Mapping[int, ResultCode] = {
    0: ResultCode.OK,
    120: ResultCode.OLE,
    121: ResultCode.RV,
    124: ResultCode.MLE,
    125: ResultCode.TLE,
}

_SIGNAL_PREFIX = "process exited due to signal "


class SupervisorReportError(SioWorkersError, ValueError):
    """A supervisor's report cannot be parsed (the run is SE)."""


@dataclass(frozen=True)
class SupervisorReport:
    """The report of SIO2's supervisor protocol (see
    :func:`parse_supervisor_report`)."""

    #: the supervisor's result code (0 ok, 120 OLE, 121 RV, 124 MLE,
    #: 125 TLE, 200 + N exit status N, anything else RE)
    code: int
    #: CPU time of the program, ms
    time_used_ms: int
    #: peak memory of the program, KiB
    mem_used_kib: int
    #: system calls the supervisor counted
    num_syscalls: int
    #: the human-readable verdict, e.g. ``process exited due to signal 11``
    result_string: str

    @property
    def result_code(self) -> ResultCode:
        return SUPERVISOR_RESULT_CODES.get(self.code, ResultCode.RE)

    @property
    def return_code(self) -> int:
        """The program's exit status: ``code - 200`` above 200, 0 when OK,
        else -1 (it did not exit by itself, or the code does not say)."""
        if self.code > 200:
            return self.code - 200
        return 0 if self.result_code == ResultCode.OK else -1

    @property
    def exit_signal(self) -> int | None:
        """N of ``process exited due to signal N``, else None."""
        if not self.result_string.startswith(_SIGNAL_PREFIX):
            return None
        words = self.result_string[len(_SIGNAL_PREFIX):].split()
        return int(words[0]) if words and words[0].isdigit() else None


def parse_supervisor_report(data: bytes) -> SupervisorReport:
    """Parse the report a supervisor of SIO2's protocol writes to its report
    descriptor: two lines,
    ``<tag> <code> <time_ms> <ignored> <mem_kib> <syscalls>`` and the
    result string (strict UTF-8). The tag is not checked.

    :raises SupervisorReportError: the report is empty, has fewer than two
        lines or six words, a number is not a non-negative whole number, or
        it is not UTF-8; the message quotes the start of it.
    """
    def garbled(why: str) -> SupervisorReportError:
        return SupervisorReportError(f"the supervisor's report {why}: {data[:200]!r}")

    if not data.strip():
        raise SupervisorReportError("the supervisor wrote no report")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise garbled("is not UTF-8") from None
    lines = text.split("\n")
    if len(lines) < 2:
        raise garbled("has no result string (second line)")
    words = lines[0].split()
    if len(words) < 6:
        raise garbled("has fewer than six words on its first line")
    numbers = []
    for word in (words[1], words[2], words[4], words[5]):
        if not word.isascii() or not word.isdigit():
            raise garbled(f"has {word!r} where a number should be")
        numbers.append(int(word))
    code, time_ms, mem_kib, syscalls = numbers
    return SupervisorReport(code=code, time_used_ms=time_ms, mem_used_kib=mem_kib,
                            num_syscalls=syscalls, result_string=lines[1].rstrip("\r"))


class ExecSandboxSupervisedExecutor(_SIOSupervisorContract, SandboxExecutor):
    """Runs an untrusted program under the original's supervisor binary,
    ``bin/supervisor`` of sandbox ``exec-sandbox``, for deployments that
    have that sandbox (see :doc:`supervisor`). Nothing else needs it:
    :class:`SupervisedExecutor` is the default.

    The binary is driven with SIO2's supervisor protocol: the command is
    ``<sandbox>/bin/supervisor -q -f <fd> [-l] [-R] program args...``, the
    limits go in its environment (``MEM_LIMIT`` KiB, ``TIME_LIMIT`` ms,
    ``OUT_LIMIT`` bytes, ``HARD_LIMIT`` whole seconds of wall time), and it
    writes its report (see :func:`parse_supervisor_report`) to descriptor
    ``<fd>``, a temporary file in the job directory.

    :param allow_local_open: pass ``-l``: the program may open files in its
        working directory read-only.
    :param use_program_return_code: accepted for compatibility, ignored (the
        original's ``-r`` made the supervisor exit with the program's status,
        which the latest original already dropped; ``return_code`` comes
        from the report).
    :param real_time_limit_multiplier: the default real-time limit is this
        many times the time limit, plus 1000 ms (default 64).
    :param sandbox: the sandbox holding ``bin/supervisor``.

    Limits (environ keys with the call's ``environ_prefix``, or arguments):
    ``time_limit`` (CPU ms, default 30000), ``mem_limit`` (KiB, default
    65536), ``output_limit`` (bytes, default 52428800); the binary cannot
    be told "no limit", so 0 means the default, as in the original.
    ``real_time_limit`` (ms; by default the multiplier times the time limit;
    1000 ms are always added; an explicit 0 means no wall-time limit)
    becomes ``HARD_LIMIT``, rounded up to whole seconds; the supervisor
    itself is killed at twice that (then the run is SE).

    Call options: ``ignore_return=True`` passes ``-R`` (a non-zero exit
    status is not RE). The command must be a list (one program, no shell
    line); ``pass_fds`` are passed to the supervisor.

    Writes (renv): ``result_code`` (``OK`` ``RE`` ``TLE`` ``MLE`` ``OLE``
    ``RV`` ``SE``), ``result_string`` (the supervisor's), ``time_used``
    (ms), ``mem_used`` (KiB), ``num_syscalls`` (as the supervisor counts
    them), ``return_code`` (the program's exit status from the report, -1
    when it did not exit by itself or on SE), ``exit_signal`` (when the
    result string is ``process exited due to signal N``),
    ``supervisor_return_code`` (the binary's own exit status),
    ``real_time_used`` (ms, of the supervisor), ``real_time_killed`` (the
    supervisor was killed by the outer guard) and ``stdout`` (with
    ``capture_output``).

    SE (``result_string`` says why; ``time_used``, ``mem_used`` and
    ``num_syscalls`` are 0): the supervisor was killed by the outer guard
    or a signal, exited with a non-zero status not in
    ``extra_ignore_errors``, or wrote no report or a garbled one.

    :raises ExecError: the verdict is not OK, unless ``ignore_errors``, or
        the verdict is RE with a ``return_code`` in ``extra_ignore_errors``.
    :raises SandboxError: the sandbox cannot be installed or has no
        executable ``bin/supervisor``.
    """

    SANDBOX: ClassVar[str] = "exec-sandbox"
    SUPERVISOR: ClassVar[str] = "bin/supervisor"
    #: the supervisor itself is killed after this many times HARD_LIMIT
    OUTER_GUARD_MULTIPLIER: ClassVar[int] = 2
    #: more of a report than this is not read (a report is a few dozen bytes)
    REPORT_MAX_BYTES: ClassVar[int] = 65536

    def __init__(self, allow_local_open: bool = False, use_program_return_code: bool = False,
                 real_time_limit_multiplier: int | None = None,
                 sandbox: str | None = None) -> None:
        super().__init__(sandbox or self.SANDBOX)
        self.allow_local_open = bool(allow_local_open)
        self.use_program_return_code = use_program_return_code
        self._set_real_time_limit_multiplier(real_time_limit_multiplier)

    def __enter__(self) -> ExecSandboxSupervisedExecutor:
        from sio.workers.sandbox import SandboxError

        name = self.sandbox.name
        try:
            self.sandbox.__enter__()
        except SandboxError as e:
            raise SandboxError(f"the exec-sandbox supervisor needs sandbox {name!r}: {e}",
                               e.failures) from e
        if not os.access(self.supervisor_path, os.X_OK):
            self.sandbox.__exit__(None, None, None)
            raise SandboxError(f"sandbox {name!r} (in {self.sandbox.path}) has no "
                               f"executable {self.SUPERVISOR}: it is not an exec-sandbox")
        return self

    @property
    def supervisor_path(self) -> str:
        """The supervisor binary."""
        return os.path.join(self.sandbox.path, self.SUPERVISOR)

    def _supervisor_env(self, request: ExecRequest) -> dict[str, str]:
        limits = request.limits
        env = dict(request.env)
        # 'or': 0 and None both give the default, as the original did (the
        # binary has no way to say "no limit").
        env["MEM_LIMIT"] = str(limits.mem_limit_kib or self.DEFAULT_MEMORY_LIMIT_KIB)
        env["TIME_LIMIT"] = str(limits.time_limit_ms or self.DEFAULT_TIME_LIMIT_MS)
        env["OUT_LIMIT"] = str(limits.output_limit_bytes or self.DEFAULT_OUTPUT_LIMIT_BYTES)
        hard_s = self._hard_limit_s(limits)
        if hard_s is None:
            env.pop("HARD_LIMIT", None)  # never one inherited from the worker
        else:
            env["HARD_LIMIT"] = str(hard_s)
        return env

    def _hard_limit_s(self, limits: ExecLimits) -> int | None:
        real_time = self._real_time_limit_ms(limits)
        return None if real_time is None else -(-real_time // 1000)

    def _execute(self, request: ExecRequest) -> dict[str, Any]:
        import tempfile

        from sio.workers.sandbox import SandboxError

        argv = _direct_argv(request.command)
        if argv is None:
            raise UsageError(
                f"the exec-sandbox supervisor runs one program, not a shell line: give the "
                f"command as a list without noquote pieces (got {request.shell_line!r})")
        hard_s = self._hard_limit_s(request.limits)
        output = request.limits.output_limit_bytes or self.DEFAULT_OUTPUT_LIMIT_BYTES
        # Entered again for the call, as SandboxExecutor does, so that the
        # binary cannot be replaced under a running call.
        with self.sandbox:
            # The report goes to a descriptor of our own number, named to the
            # supervisor with -f: the engine spawns without a fork-time hook
            # that could move it to 3, and -f is what tells the supervisor
            # where to write. Non-inheritable (PEP 446) except for this run.
            fd, path = tempfile.mkstemp(prefix=".supervisor-report-", dir=tempcwd())
            try:
                options = ["-q", "-f", str(fd)]
                if self.allow_local_open:
                    options.append("-l")
                if request.options.get("ignore_return"):
                    options.append("-R")
                try:
                    outcome = run_process(
                        [self.supervisor_path, *options, *argv], cwd=request.cwd,
                        env=self._supervisor_env(request), stdin=request.stdin,
                        stdout=CAPTURE if request.capture_output else request.stdout,
                        stderr=STDOUT if request.forward_stderr else request.stderr,
                        limits=Limits(wall_time_ms=None if hard_s is None else
                                      hard_s * 1000 * self.OUTER_GUARD_MULTIPLIER,
                                      capture_bytes=output),
                        pass_fds=(fd, *request.pass_fds), on_spawn=request.after_spawn)
                except (FileNotFoundError, PermissionError) as e:
                    raise SandboxError(f"cannot run the supervisor {self.supervisor_path}: "
                                       f"{e}") from e
                report = os.pread(fd, self.REPORT_MAX_BYTES, 0)
            finally:
                os.close(fd)
                os.unlink(path)
        renv = self._report_renv(request, outcome, report)
        self._check(request, renv)
        return renv

    def _report_renv(self, request: ExecRequest, outcome: Outcome,
                     report: bytes) -> dict[str, Any]:
        """The renv of a run: the supervisor's verdict, or SE."""
        renv = super()._renv(request, outcome)
        supervisor_code = return_code(outcome)
        renv["supervisor_return_code"] = supervisor_code
        problem = None
        if outcome.killed is KillReason.WALL_TIME:
            problem = "Supervisor exceeded realtime limit"
        elif outcome.signal is not None:
            problem = f"Supervisor was killed by signal {outcome.signal}"
        elif supervisor_code != 0 and supervisor_code not in request.extra_ignore_errors:
            problem = f"Supervisor returned code {supervisor_code}"
        else:
            try:
                parsed = parse_supervisor_report(report)
            except SupervisorReportError as e:
                problem = str(e)
        if problem is not None:
            renv.update(result_code=ResultCode.SE.value, result_string=problem, time_used=0,
                        mem_used=0, num_syscalls=0, return_code=-1)
            return renv
        renv.update(result_code=parsed.result_code.value,
                    result_string=parsed.result_string, time_used=parsed.time_used_ms,
                    mem_used=parsed.mem_used_kib, num_syscalls=parsed.num_syscalls,
                    return_code=parsed.return_code)
        if parsed.exit_signal is not None:
            renv["exit_signal"] = parsed.exit_signal
        return renv


# --------------------------------------------------------------------------
# Instruction-counted time (sio2jail-exec): what the machine offers
# --------------------------------------------------------------------------

class InstructionCountingUnavailable(SioWorkersError, RuntimeError):
    """Time in counted instructions was asked for, and this machine or this
    installation cannot measure it (see :func:`instruction_counting_problem`)."""


def instruction_counting_problem(what: str, instead: str) -> str:
    """The message of :class:`InstructionCountingUnavailable` for ``what``
    (e.g. ``"job 'sio2jail-exec'"``), ending with the advice ``instead``:
    whether the machine lacks the hardware instruction counter (probed once
    with ``perf_event_open``) or only the supervisor lacks the counting."""
    probe = instruction_counter_probe()
    if not probe.available:
        return (f"{what} measures time in counted instructions (2*10^9 per second), "
                f"which needs the {probe.counter}; this machine does not have it: "
                f"{probe.reason}. {instead}.")
    return (f"{what} measures time in counted instructions (2*10^9 per second); this "
            f"machine has the {probe.counter}, but sioworkers' supervisor does not count "
            f"instructions yet. {instead}.")


def instruction_counter_probe() -> CounterProbe:
    """Whether this machine has the hardware instruction counter that
    instruction-counted time needs: a
    :class:`sio.workers._engine.perf.CounterProbe` with ``available``,
    ``counter`` (its name) and ``reason`` (why not). Probed once per
    process with ``perf_event_open``; imported only when asked for."""
    from sio.workers._engine.perf import instruction_counter

    return instruction_counter()
