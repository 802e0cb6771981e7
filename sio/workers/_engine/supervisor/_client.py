"""The worker's side: spawner processes and :func:`run_supervised`.

Spawners are started lazily, kept for reuse (one per concurrently running
thread of the worker), and never shared with a forked copy of the worker
(Celery's prefork pool forks workers after import): a process that finds
spawners of its parent starts its own.
"""

from __future__ import annotations

import atexit
import dataclasses
import functools
import logging
import os
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from sio.workers._engine import build
from sio.workers._engine.supervisor import _wire
from sio.workers._engine.supervisor.errors import (
    ProgramNotFound,
    SupervisorError,
    SupervisorUnavailable,
)
from sio.workers._engine.supervisor.policy import Policy
from sio.workers._engine.supervisor.capabilities import Capabilities
from sio.workers._engine.types import CAPTURE, STDOUT, KillReason, Limits, Outcome

log = logging.getLogger("sio.workers.supervisor")

# The spawner runs without site-packages processing (-S) and isolated from
# the environment (-I): a small, fast, predictable interpreter. It finds this
# package through the directory that holds the ``sio`` namespace.
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[4])
_BOOT = ("import sys; sys.path.insert(0, sys.argv[2]); "
         "from sio.workers._engine.supervisor._spawner import main; "
         "main(int(sys.argv[1]), sys.argv[3], sys.argv[4] == 'view')")

_STUB_SOURCE = str(Path(__file__).resolve().parent / "execstub.c")
# musl's start-up does not probe the CPU (glibc's runs dozens of cpuid
# instructions, ~0.3 ms in a VM), and the stub starts once per run. musl
# ships no kernel headers: <linux/...> and <asm/...> come from the system's,
# searched after musl's own.
_MUSL_FLAGS = ["-O2", "-static", "-idirafter", "/usr/include",
               "-idirafter", f"/usr/include/{os.uname().machine}-linux-gnu"]
_stub_lock = threading.Lock()
_stub: list[str | None] = []  # [] = not looked for yet; [None] = unavailable


def execstub_path() -> str | None:
    """The compiled ``execstub.c`` that the spawner's pre-started children
    become (built on first use, see :mod:`sio.workers._engine.build`);
    ``None`` when disabled (``SIO_ENGINE_STUB=off``) or it cannot be built:
    the children then set runs up in Python, ~0.7 ms slower per run."""
    if not _stub:
        with _stub_lock:
            if not _stub:
                off = os.environ.get("SIO_ENGINE_STUB", "").lower() in ("off", "0", "no",
                                                                         "false")
                _stub.append(None if off else build.find_or_build(
                    "execstub", _STUB_SOURCE, (["-O2", "-static"], ["-O2"]),
                    "supervised programs will be set up in Python (slower)",
                    preferred=[("musl-gcc", _MUSL_FLAGS)]))
    return _stub[0]


#: The setting (environment variable of the worker, read when a spawner
#: starts or a run is acquired) for the isolation of supervised programs:
#: ``full``: run programs only where every layer is in force (the private
#: view and Landlock; otherwise SupervisorUnavailable); unset or ``best``:
#: with the layers the machine has (the probe says which are missing);
#: ``no-view``: without the private view even where it is possible (to
#: measure its cost, or to rule it out when looking for a problem).
ISOLATION_SETTING = "SIO_SUPERVISOR_ISOLATION"
_ISOLATION_VALUES = ("best", "full", "no-view")


def _isolation() -> str:
    value = os.environ.get(ISOLATION_SETTING, "").strip().lower() or "best"
    if value not in _ISOLATION_VALUES:
        raise SupervisorUnavailable(
            f"{ISOLATION_SETTING}={value!r} is not one of {', '.join(_ISOLATION_VALUES)}")
    return value


def _full_isolation_required() -> bool:
    return _isolation() == "full"


class _Spawner:
    def __init__(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-I", "-S", "-c", _BOOT, str(theirs.fileno()), _PACKAGE_ROOT,
                 execstub_path() or "", "no-view" if _isolation() == "no-view" else "view"],
                pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL, env={},
                close_fds=True)
        finally:
            theirs.close()
        self.sock = ours
        hello = self._recv()
        self.capabilities = Capabilities.from_dict(hello["capabilities"])

    def _recv(self) -> dict:
        try:
            msg = _wire.recv(self.sock)
        except (OSError, EOFError) as e:
            msg = None
            detail = f" ({e})"
        else:
            detail = ""
        if msg is None:
            code = self.proc.wait()
            self.close()
            raise SupervisorError(f"the supervisor process died (exit status {code}){detail}")
        return msg[0]

    def run(self, request: dict, fds: list[int],
            on_sent: Callable[[], None] | None = None) -> Outcome:
        try:
            _wire.send(self.sock, request, fds)
        except OSError:
            pass  # it died: _recv() says how
        if on_sent is not None:
            # The descriptors now travel with the message (the kernel holds
            # references to them): the caller may close its copies, so that
            # the program's peers see end-of-file as soon as it ends.
            on_sent()
        answer = self._recv()
        if "error" in answer:
            raise SupervisorError(f"the supervisor failed: {answer['error']}")
        fields = answer["outcome"]
        if fields["killed"] is not None:
            fields["killed"] = KillReason(fields["killed"])
        return Outcome(**fields)

    def close(self) -> None:
        try:
            self.sock.close()  # the spawner exits at end of stream
        finally:
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


_lock = threading.Lock()
_idle: list[_Spawner] = []
_inherited: list[_Spawner] = []  # the parent's, after a fork: kept, never used
_described = False
_unusable: Capabilities | None = None


def _acquire() -> _Spawner:
    global _described, _unusable
    if _unusable is not None:
        raise SupervisorUnavailable(_unusable.describe())
    with _lock:
        while _idle:
            sp = _idle.pop()
            if sp.proc.poll() is None:
                if _full_isolation_required() and not sp.capabilities.fully_isolated:
                    _idle.append(sp)
                    raise SupervisorUnavailable(
                        f"{ISOLATION_SETTING}=full, and this machine cannot isolate "
                        f"programs fully: {sp.capabilities.weaker()}")
                return sp
            sp.sock.close()
    sp = _Spawner()
    caps = sp.capabilities
    if not caps.usable:
        sp.close()
        _unusable = caps
        raise SupervisorUnavailable(caps.describe())
    if _full_isolation_required() and not caps.fully_isolated:
        # Not cached as unusable: the setting is read on every run.
        sp.close()
        raise SupervisorUnavailable(
            f"{ISOLATION_SETTING}=full, and this machine cannot isolate programs fully: "
            f"{caps.weaker()}")
    if not _described:
        _described = True
        log.log(logging.WARNING if caps.problems else logging.INFO, "%s", caps.describe())
    return sp


def _release(sp: _Spawner) -> None:
    with _lock:
        _idle.append(sp)


def _forget_inherited() -> None:
    """In a forked copy of the worker: the parent's spawners are not ours.
    Close our copies of their sockets (the parent keeps its own, so its
    spawners live on) and start afresh; the lock may have been held by
    another thread of the parent at fork time."""
    global _lock
    _lock = threading.Lock()
    for sp in _idle:
        sp.sock.close()
    # Not our children: kept referenced so that no Popen finalizer warns
    # about (or waits for) them.
    _inherited.extend(_idle)
    _idle.clear()


os.register_at_fork(after_in_child=_forget_inherited)


@atexit.register
def _shutdown() -> None:
    with _lock:
        spawners, _idle[:] = list(_idle), []
    for sp in spawners:
        sp.close()


def probe() -> Capabilities:
    """What supervision this machine supports, as found by a spawner (cached
    in the spawner; the first call starts one). Never raises for a missing
    feature: check :attr:`Capabilities.usable`."""
    with _lock:
        for candidate in _idle:
            return candidate.capabilities
    sp = _Spawner()
    caps = sp.capabilities
    if caps.usable:
        _release(sp)
    else:
        sp.close()
    return caps


def _resolve(program: str, cwd: str, env: Mapping[str, str]) -> str:
    if "/" in program:
        path = os.path.join(cwd, program)
        if not os.path.isfile(path):
            raise ProgramNotFound(f"program not found: {path}")
        if not os.access(path, os.X_OK):
            raise ProgramNotFound(f"program is not executable: {path}")
        return os.path.abspath(path)
    found = shutil.which(program, path=env.get("PATH", os.defpath))
    if found is None:
        raise ProgramNotFound(f"program {program!r} not found in PATH "
                              f"{env.get('PATH', os.defpath)!r}")
    return os.path.abspath(found)


def _stdio_mode(value: object, name: str, allowed: tuple[object, ...]) -> str:
    if value is None:
        return "null"
    if value is CAPTURE and CAPTURE in allowed:
        return "capture"
    if value is STDOUT and STDOUT in allowed:
        return "stdout"
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return "fd"
    raise TypeError(f"{name} must be a file descriptor (int), None"
                    + "".join(f" or {a!r}" for a in allowed) + f", not {value!r}")


@functools.lru_cache(maxsize=64)
def _fields(record: Limits | Policy) -> dict:
    """The fields of a frozen record as a plain dict (cached: the same limits
    and policy come back run after run)."""
    return dataclasses.asdict(record)


def run_supervised(argv: Sequence[str | bytes], *, cwd: str | os.PathLike[str],
                   env: Mapping[str, str], stdin: int | None = None,
                   stdout: object = None, stderr: object = None,
                   limits: Limits = Limits(), policy: Policy = Policy(),
                   on_spawn: Callable[[], None] | None = None) -> Outcome:
    """Run ``argv`` under the supervisor and return what happened.

    :param argv: the program and its arguments; ``argv[0]`` is looked up in
        ``env['PATH']`` unless it contains a slash (then it is relative to
        ``cwd``). Run interpreted programs through their interpreter.
    :param cwd: the working directory (the job directory).
    :param env: the complete environment of the program.
    :param stdin: a descriptor the caller owns, or None for ``/dev/null``.
    :param stdout: a descriptor, None (``/dev/null``) or
        :data:`~sio.workers._engine.types.CAPTURE` (read into
        ``Outcome.stdout``, at most ``limits.output_bytes``; more is OLE).
    :param stderr: as ``stdout``, or :data:`~sio.workers._engine.types.STDOUT`.
    :param limits: CPU time (ms), wall time (ms), memory (KiB, on VmPeak),
        output (bytes: files via RLIMIT_FSIZE, captured pipes by counting),
        stack (KiB; default unlimited like SIO2's ``ulimit -s unlimited``).
    :param policy: what the program may do, see :class:`Policy`.
    :param on_spawn: called once the program's descriptors have been handed
        to the supervisor (before the program ends), e.g. to close the
        caller's copies of pipe ends.
    :raises SupervisorUnavailable: this machine cannot supervise (the message
        says why); nothing was run.
    :raises ProgramNotFound: ``argv[0]`` does not exist or is not executable.
    :raises SupervisorError: the supervisor itself failed.
    """
    if not argv:
        raise ValueError("argv must not be empty")
    cwd = os.fspath(cwd)
    if not os.path.isdir(cwd):
        raise NotADirectoryError(f"working directory {cwd!r} does not exist")
    modes = (_stdio_mode(stdin, "stdin", ()),
             _stdio_mode(stdout, "stdout", (CAPTURE,)),
             _stdio_mode(stderr, "stderr", (CAPTURE, STDOUT)))
    fds = [fd for fd, mode in zip((stdin, stdout, stderr), modes)
           if mode == "fd" and isinstance(fd, int)]
    args = [os.fsencode(a) for a in argv]
    request = {
        "argv": args,
        "exe": _resolve(os.fsdecode(args[0]), cwd, env),
        "cwd": os.path.abspath(cwd),
        "env": [os.fsencode(k) + b"=" + os.fsencode(v) for k, v in env.items()],
        "limits": _fields(limits),
        "policy": _fields(policy),
        "stdio": modes,
    }
    sp = _acquire()
    try:
        outcome = sp.run(request, fds, on_spawn)
    except BaseException:
        # Interrupted or broken mid-run: the spawner's state is unknown.
        # Closing the socket makes it kill the program and exit.
        sp.close()
        raise
    _release(sp)
    return outcome
