"""The probe's checks, run inside the spawner (see :mod:`.capabilities` for the
answer's type and its plain-words description)."""

from __future__ import annotations

import os

from sio.workers._engine.supervisor import _linux as L
from sio.workers._engine.supervisor import bpf

REQUIRED_SECCOMP_ACTIONS = ("allow", "errno", "trace", "kill_process")
WALL = 0x40000000  # __WALL


def _seccomp_actions() -> tuple[bool, str | None]:
    try:
        with open("/proc/sys/kernel/seccomp/actions_avail") as f:
            avail = set(f.read().split())
    except OSError as e:
        return False, f"cannot read seccomp actions ({e.strerror})"
    lacking = [a for a in REQUIRED_SECCOMP_ACTIONS if a not in avail]
    if lacking:
        return False, f"seccomp lacks the action(s) {', '.join(lacking)}"
    return True, None


def _selftest_filter() -> bytes:
    asm = bpf.Assembler()
    asm.load(bpf.OFF_NR)
    asm.jump("==", L.NR["getppid"], false="allow")
    asm.ret(bpf.SECCOMP_RET_TRACE | 1)
    asm.label("allow")
    asm.ret(bpf.SECCOMP_RET_ALLOW)
    return asm.assemble()


def _ptrace_seccomp_selftest() -> tuple[bool, str | None]:
    """Fork a child that installs a filter tracing getppid(), seize it, and
    check that the TRACE stop reaches us: the whole mechanism the supervisor
    relies on, on a harmless call."""
    fprog, _buf = L.make_fprog(_selftest_filter())
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: wait until seized, then trip the filter
        try:
            os.close(w)
            os.read(r, 1)
            L.prctl(L.PR_SET_NO_NEW_PRIVS, 1)
            L.seccomp_set_filter(fprog)
            os.getppid()
            os._exit(0)
        except BaseException:
            os._exit(1)
    os.close(r)
    try:
        try:
            L.ptrace(L.PTRACE_SEIZE, pid, 0, L.PTRACE_O_TRACESECCOMP | L.PTRACE_O_EXITKILL)
        except OSError as e:
            return False, f"ptrace of a child failed ({e.strerror})"
        os.write(w, b"x")
        saw_stop = False
        while True:
            _, status = os.waitpid(pid, WALL)
            if os.WIFSTOPPED(status):
                event = status >> 16
                saw_stop |= event == L.PTRACE_EVENT_SECCOMP
                L.ptrace(L.PTRACE_CONT, pid, 0, 0 if event else os.WSTOPSIG(status))
                continue
            if not (os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0):
                return False, "the seccomp/ptrace self-test child failed"
            if not saw_stop:
                return False, "seccomp TRACE stops do not reach the tracer"
            return True, None
    finally:
        os.close(w)
        try:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass


def probe_here(namespaces: tuple[str, ...] = (), problems: tuple[str, ...] = (),
               view: bool = False) -> dict:
    """Probe in the current process (the spawner; forks a child). Returns the
    fields of :class:`~sio.workers._engine.supervisor.capabilities.Capabilities`."""
    notes = list(problems)
    machine = os.uname().machine
    seccomp = ptrace = False
    if machine == "x86_64":
        seccomp, why = _seccomp_actions()
        if why:
            notes.append(why)
        if seccomp:
            ptrace, why = _ptrace_seccomp_selftest()
            if why:
                notes.append(why)
    abi = L.landlock_abi()
    if not abi:
        notes.append("Landlock is not available (kernel older than 5.13 or disabled)")
    return {"machine": machine, "seccomp": seccomp, "ptrace": ptrace, "landlock_abi": abi,
            "namespaces": list(namespaces), "root": os.geteuid() == 0, "view": view,
            "problems": notes}
