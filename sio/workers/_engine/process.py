"""The one place that starts a program: :func:`run_process`.

It takes argv, cwd, env, the three standard streams and
:class:`~sio.workers._engine.types.Limits`, and returns an
:class:`~sio.workers._engine.types.Outcome`. It knows nothing of environs,
result codes or default limits.

How a run goes, and why:

* **Spawn without fork.** :class:`subprocess.Popen` without ``preexec_fn``
  uses vfork: ~0.45 ms per run here, where a ``preexec_fn`` (which forces a
  real fork of the whole Python process) costs ~1.6 ms, and ~11 ms from a
  200 MB worker. Resource limits therefore cannot be set in the child by
  Python code; the program is started through ``limitexec``, a tiny C
  wrapper (``limitexec.c`` beside this file) that calls ``setrlimit`` and
  ``execve``. Without a C library it costs ~0.06 ms per run. It is compiled
  once per machine with the system C compiler into a cache directory. When
  it cannot be built the engine falls back to ``preexec_fn`` (correct, but
  slower; logged once). Setting the limits with ``prlimit`` on the pid after
  the spawn would race with the program (its bss is mapped at exec time), so
  it is not used.
* **Own process group**, so the watchdog and the final clean-up kill
  everything the program started (unless a process moves itself to another
  group or session, which this unprotected engine does not prevent).
* **Waiting** through a pidfd in one ``poll`` loop that also reads captured
  pipes: no threads, no busy loop. The loop wakes at most every
  :data:`CPU_CHECK_INTERVAL_S` when a CPU limit is set, to sum the CPU time
  of the process tree from ``/proc``, and at the wall-time deadline.
* **Measuring** CPU time from the ``wait4`` rusage of the child (which
  includes the descendants it waited for), never from a ``time`` program.
* **Clean-up** under every outcome: the group is killed with SIGKILL while
  the child is still an unreaped zombie (so its pid, which is the group id,
  cannot have been reused), then the child is reaped and every pipe and
  pidfd is closed, exceptions included.

Settings (environment variables of the worker, read when first needed):

``SIO_ENGINE_CACHE_DIR``
    where the compiled wrapper is kept (default
    ``$XDG_CACHE_HOME/sioworkers/engine``, i.e. ``~/.cache/sioworkers/engine``).
``SIO_ENGINE_WRAPPER``
    ``off`` to never use the wrapper (always ``preexec_fn``).
``CC``
    the C compiler used to build the wrapper (default ``cc``).
"""

from __future__ import annotations

import errno
import logging
import os
import resource
import select
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from typing import IO, Any

from sio.workers._engine import build
from sio.workers._engine.rlimits import RLimit, apply_rlimits, program_rlimits
from sio.workers._engine.types import CAPTURE, STDOUT, KillReason, Limits, Outcome

logger = logging.getLogger(__name__)

__all__ = ["run_process", "limitexec_path", "CPU_CHECK_INTERVAL_S", "Stream"]

#: A caller-owned file descriptor, ``None`` (``/dev/null``), or the
#: ``CAPTURE`` / ``STDOUT`` sentinels.
Stream = Any

#: How often (seconds) the CPU time of a program with a CPU limit is checked.
CPU_CHECK_INTERVAL_S = 0.025

#: How long (seconds) captured pipes are still read after the program ended
#: and its group was killed: only a process that left the group can hold
#: them open longer, and it must not hang the caller.
_DRAIN_AFTER_EXIT_S = 1.0

_READ_CHUNK = 65536
_CLK_TCK = os.sysconf("SC_CLK_TCK")


# --------------------------------------------------------------------------
# The limitexec wrapper
# --------------------------------------------------------------------------

_SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "limitexec.c")
_wrapper_lock = threading.Lock()
_wrapper: list[str | None] = []  # [] = not looked for yet; [None] = unavailable

# Raw system calls, no C library: a static binary that starts in ~0.06 ms.
_RAW_FLAGS = ["-O2", "-static", "-nostdlib", "-ffreestanding", "-fno-builtin",
              "-fno-stack-protector", "-fno-pie", "-no-pie"]
_LIBC_FLAGS = ["-O2", "-DLIMITEXEC_LIBC"]


def limitexec_path() -> str | None:
    """Path of the compiled ``limitexec`` wrapper, building it on first use;
    ``None`` when it is disabled or cannot be built (then limits are set
    with a slower ``preexec_fn``)."""
    if _wrapper:
        return _wrapper[0]
    with _wrapper_lock:
        if not _wrapper:
            _wrapper.append(_find_or_build_wrapper())
        return _wrapper[0]


def _find_or_build_wrapper() -> str | None:
    if os.environ.get("SIO_ENGINE_WRAPPER", "").lower() in ("off", "0", "no", "false"):
        return None
    return build.find_or_build("limitexec", _SOURCE, (_RAW_FLAGS, _LIBC_FLAGS),
                               "programs will be started with preexec_fn (slower)")


# --------------------------------------------------------------------------
# Limits
# --------------------------------------------------------------------------

# (resource, soft, hard) in the kernel's units; None = leave inherited.
_RLimit = RLimit


def _rlimits(limits: Limits) -> dict[int, _RLimit]:
    # Computed with the supervisor's (see sio.workers._engine.rlimits).
    wanted = program_rlimits(
        cpu_time_ms=limits.cpu_time_ms, file_size_bytes=limits.output_bytes,
        stack_kib=limits.stack_kib, address_space_kib=limits.address_space_kib)
    return {rl[0]: rl for rl in wanted}


def _wrapper_argv(wrapper: str, rlimits: dict[int, _RLimit], program: str,
                  args: Sequence[str]) -> list[str]:
    def soft(res: int) -> str:
        return str(rlimits[res][1]) if res in rlimits else "-"

    def hard(res: int) -> str:
        return str(rlimits[res][2]) if res in rlimits else "-"

    return [wrapper, soft(resource.RLIMIT_AS), soft(resource.RLIMIT_CPU),
            hard(resource.RLIMIT_CPU), soft(resource.RLIMIT_FSIZE),
            soft(resource.RLIMIT_STACK), soft(resource.RLIMIT_CORE), "--", program, *args]


def _preexec(rlimits: dict[int, _RLimit]) -> Callable[[], None]:
    values = list(rlimits.values())

    def apply() -> None:  # runs in the forked child, before exec
        apply_rlimits(values)

    return apply


# --------------------------------------------------------------------------
# Measuring
# --------------------------------------------------------------------------

def _tree_cpu_ms(pid: int) -> int:
    """CPU time (ms) used so far by ``pid`` and all its live descendants
    (plus what they already collected from waited-for children)."""
    total = 0
    todo = [pid]
    seen = set()
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        try:
            with open(f"/proc/{p}/stat", "rb") as f:
                stat = f.read()
            # Fields after the command name (which may hold spaces and ')'):
            # utime, stime, cutime, cstime are the 14th-17th fields.
            fields = stat[stat.rindex(b")") + 2:].split()
            total += sum(int(x) for x in fields[11:15])
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children", "rb") as f:
                    todo.extend(int(c) for c in f.read().split())
        except (OSError, ValueError):
            continue  # it ended meanwhile
    return total * 1000 // _CLK_TCK


def _rusage_cpu_ms(ru: Any) -> int:
    return int(round((ru.ru_utime + ru.ru_stime) * 1000))


# --------------------------------------------------------------------------
# Running
# --------------------------------------------------------------------------

def _resolve(program: str, cwd: str, env: dict[str, str]) -> str:
    """The path to execute for ``program``: searched in ``env['PATH']`` when
    it has no slash, checked relative to ``cwd`` otherwise."""
    if "/" in program:
        path = os.path.join(cwd, program)
        if not os.path.exists(path):
            raise FileNotFoundError(errno.ENOENT, f"no such program (in {cwd})", program)
        if os.path.isdir(path) or not os.access(path, os.X_OK):
            raise PermissionError(errno.EACCES, "not an executable file", path)
        return program
    found = shutil.which(program, path=env.get("PATH", os.defpath))
    if found is None:
        raise FileNotFoundError(errno.ENOENT, "program not found in PATH "
                                f"{env.get('PATH', os.defpath)!r}", program)
    return found


def _popen_stream(stream: Stream, name: str) -> Any:
    if stream is None:
        return subprocess.DEVNULL
    if stream is CAPTURE:
        return subprocess.PIPE
    if stream is STDOUT:
        if name != "stderr":
            raise ValueError("STDOUT can only be given as stderr")
        return subprocess.STDOUT
    if isinstance(stream, int) and not isinstance(stream, bool) and stream >= 0:
        return stream
    raise TypeError(f"{name} must be a file descriptor, None, CAPTURE or STDOUT, "
                    f"not {stream!r}")


def _pidfd(pid: int) -> int | None:
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):  # Linux < 5.3, or forbidden by a seccomp policy
        return None


def _exited(pid: int) -> bool:
    # WNOWAIT: look without reaping, so that the group id stays reserved
    # until the group has been killed.
    try:
        return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


class _Capture:
    """Reads one captured pipe, keeping at most ``limit`` bytes."""

    def __init__(self, pipe: IO[bytes], limit: int | None) -> None:
        self.pipe = pipe
        self.fd = pipe.fileno()
        self.limit = limit
        self.chunks: list[bytes] = []
        self.kept = 0
        self.truncated = False
        self.open = True

    def fileno(self) -> int:
        return self.fd

    def read(self) -> None:
        try:
            data = os.read(self.fd, _READ_CHUNK)
        except BlockingIOError:
            return
        if not data:
            self.open = False
            return
        if self.limit is not None:
            room = self.limit - self.kept
            if len(data) > room:
                # Keep reading (and discarding): a blocked writer would
                # otherwise only end at the time limit.
                self.truncated = True
                data = data[:max(room, 0)]
        if data:
            self.chunks.append(data)
            self.kept += len(data)

    def value(self) -> bytes:
        return b"".join(self.chunks)


def run_process(argv: Sequence[str], *, cwd: str, env: dict[str, str],
                stdin: Stream = None, stdout: Stream = None, stderr: Stream = None,
                limits: Limits = Limits(), pass_fds: Sequence[int] = (),
                on_spawn: Callable[[], None] | None = None) -> Outcome:
    """Run ``argv`` to its end under ``limits`` and say what happened.

    :param argv: the program and its arguments (no shell); a program
        without a slash is looked up in ``env['PATH']``, one with a slash
        relative to ``cwd``.
    :param cwd: the working directory of the program.
    :param env: its whole environment.
    :param stdin: a file descriptor the caller owns (and closes), or
        ``None`` for ``/dev/null``.
    :param stdout: a file descriptor, ``None`` (``/dev/null``) or
        :data:`~sio.workers._engine.types.CAPTURE` (read through a pipe into
        ``Outcome.stdout``, at most ``limits.capture_bytes`` kept).
    :param stderr: the same, or :data:`~sio.workers._engine.types.STDOUT`
        to share whatever stdout is.
    :param limits: CPU time (watchdog + RLIMIT_CPU backstop), wall time
        (watchdog), address space (RLIMIT_AS), file size (RLIMIT_FSIZE),
        stack (RLIMIT_STACK); core dumps are always off (RLIMIT_CORE 0).
        They apply to each process of the program's group.
    :param pass_fds: more caller-owned descriptors the program inherits.
    :param on_spawn: called in this process right after the program was
        started (not when it could not be): the moment to close the caller's
        copies of descriptors the program inherited, e.g. pipe ends shared
        with a concurrently running peer, which must see end-of-file as soon
        as the program ends.
    :raises FileNotFoundError, PermissionError: when the program cannot be
        found or executed (nothing was started).
    """
    if not argv:
        raise ValueError("run_process: empty argv")
    program = _resolve(argv[0], cwd, env)
    rlimits = _rlimits(limits)
    wrapper = limitexec_path()
    if wrapper is not None:
        args = _wrapper_argv(wrapper, rlimits, program, argv[1:])
        executable, preexec = wrapper, None
    else:
        args, executable, preexec = list(argv), program, _preexec(rlimits)
    capture_limit = limits.capture_bytes if limits.capture_bytes is not None \
        else limits.output_bytes

    start = time.monotonic()
    proc = subprocess.Popen(
        args, executable=executable, cwd=cwd, env=env,
        stdin=_popen_stream(stdin, "stdin"), stdout=_popen_stream(stdout, "stdout"),
        stderr=_popen_stream(stderr, "stderr"), close_fds=True, pass_fds=tuple(pass_fds),
        process_group=0, preexec_fn=preexec)
    pid = proc.pid
    captures = {}
    if proc.stdout is not None:
        captures["stdout"] = _Capture(proc.stdout, capture_limit)
    if proc.stderr is not None:
        captures["stderr"] = _Capture(proc.stderr, capture_limit)
    pidfd = _pidfd(pid)
    reaped = False
    try:
        if on_spawn is not None:
            on_spawn()
        killed, end = _watch(pid, pidfd, captures, limits, start)
        # The child is a zombie: killing its group now reaches every process
        # it left behind, and its pid cannot have been reused yet.
        _kill_group(pid)
        _drain(captures)
        _, status, ru = os.wait4(pid, 0)
        reaped = True
        proc.returncode = os.waitstatus_to_exitcode(status)  # Popen must not wait again
    finally:
        if not reaped:  # an exception (KeyboardInterrupt included) interrupted the run
            _kill_group(pid)
            try:
                os.waitpid(pid, 0)
                proc.returncode = -signal.SIGKILL
            except ChildProcessError:
                pass
        for c in captures.values():
            c.pipe.close()
        if pidfd is not None:
            os.close(pidfd)

    exit_code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else None
    sig = os.WTERMSIG(status) if os.WIFSIGNALED(status) else None
    cpu_ms = _rusage_cpu_ms(ru)
    if killed is None and sig is not None:
        # Limits enforced by the kernel rather than by the watchdog.
        if sig in (signal.SIGXCPU, signal.SIGKILL) and limits.cpu_time_ms is not None \
                and cpu_ms >= limits.cpu_time_ms:
            killed = KillReason.CPU_TIME
        elif sig == signal.SIGXFSZ and limits.output_bytes is not None:
            killed = KillReason.OUTPUT
    out = captures.get("stdout")
    err = captures.get("stderr")
    return Outcome(
        exit_code=exit_code, signal=sig, cpu_time_ms=cpu_ms,
        wall_time_ms=int(round((end - start) * 1000)), killed=killed,
        stdout=out.value() if out else None, stderr=err.value() if err else None,
        output_truncated=any(c.truncated for c in captures.values()))


def _watch(pid: int, pidfd: int | None, captures: dict[str, _Capture], limits: Limits,
           start: float) -> tuple[KillReason | None, float]:
    """Wait for the child to exit, reading captured pipes and enforcing the
    time limits; returns (why it was killed, when it ended)."""
    poller = select.poll()
    by_fd = {c.fd: c for c in captures.values()}
    for fd in by_fd:
        poller.register(fd, select.POLLIN)
    if pidfd is not None:
        poller.register(pidfd, select.POLLIN)
    wall_deadline = start + limits.wall_time_ms / 1000 if limits.wall_time_ms else None
    cpu_limit = limits.cpu_time_ms
    next_cpu_check = start + CPU_CHECK_INTERVAL_S if cpu_limit is not None else None
    fallback_sleep = 0.0002  # without a pidfd: poll the child, backing off to 20 ms
    killed: KillReason | None = None
    while True:
        now = time.monotonic()
        wake = [t for t in (wall_deadline, next_cpu_check) if t is not None and killed is None]
        timeout: float | None = max(0.0, min(wake) - now) if wake else None
        if pidfd is None:
            timeout = fallback_sleep if timeout is None else min(timeout, fallback_sleep)
            fallback_sleep = min(fallback_sleep * 2, 0.02)
        events = poller.poll(None if timeout is None else timeout * 1000)
        for fd, _ in events:
            if fd == pidfd:
                continue
            capture = by_fd[fd]
            capture.read()
            if not capture.open:
                poller.unregister(fd)
        if (pidfd is not None and any(fd == pidfd for fd, _ in events)) or \
                (pidfd is None and _exited(pid)):
            return killed, time.monotonic()
        if killed is not None:
            continue
        now = time.monotonic()
        if wall_deadline is not None and now >= wall_deadline:
            killed = KillReason.WALL_TIME
            _kill_group(pid)
        elif next_cpu_check is not None and now >= next_cpu_check:
            assert cpu_limit is not None
            if _tree_cpu_ms(pid) >= cpu_limit:
                killed = KillReason.CPU_TIME
                _kill_group(pid)
            next_cpu_check = now + CPU_CHECK_INTERVAL_S


def _drain(captures: dict[str, _Capture]) -> None:
    """Read what is left in the captured pipes after the program ended."""
    deadline = time.monotonic() + _DRAIN_AFTER_EXIT_S
    open_ = [c for c in captures.values() if c.open]
    while open_:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            logger.warning("A process outside the program's group still holds its output "
                           "pipe open; output after this point is lost")
            return
        ready, _, _ = select.select(open_, [], [], remaining)
        for c in ready:
            c.read()
        open_ = [c for c in open_ if c.open]
