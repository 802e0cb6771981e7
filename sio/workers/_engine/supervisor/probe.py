"""What this machine lets the supervisor do, found out once per spawner.

The spawner runs :func:`probe_here` at start-up, after entering its
namespaces, so the answer describes the very process that will supervise
programs. Required: x86-64, seccomp filters with the TRACE action, and ptrace
of our own children. Everything else is an extra layer whose absence is
reported in :meth:`Capabilities.describe` (and makes the engine stricter
rather than looser, e.g. no threads without Landlock).
"""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass, field

from sio.workers._engine.supervisor import _linux as L
from sio.workers._engine.supervisor import bpf

REQUIRED_SECCOMP_ACTIONS = ("allow", "errno", "trace", "kill_process")


@dataclass(frozen=True)
class Capabilities:
    """The answer of the probe."""

    #: machine architecture (the supervisor needs ``x86_64``)
    machine: str
    #: seccomp filters with the actions the supervisor uses
    seccomp: bool
    #: a spawner can ptrace its children and sees their seccomp TRACE stops
    ptrace: bool
    #: Landlock ABI version (0 = none): file access confined by the kernel
    landlock_abi: int
    #: namespaces the spawner (and so every program) runs in, e.g. ``("net",
    #: "ipc", "uts")``; empty when they could not be created
    namespaces: tuple[str, ...]
    #: the spawner runs as root, so programs run under fresh unprivileged uids
    root: bool
    #: why something above is missing, in plain words
    problems: tuple[str, ...] = field(default=())

    @property
    def usable(self) -> bool:
        """True when programs can be supervised at all."""
        return self.machine == "x86_64" and self.seccomp and self.ptrace

    def missing(self) -> str:
        """What makes supervision impossible (empty when :attr:`usable`)."""
        out = []
        if self.machine != "x86_64":
            out.append(f"the supervisor supports x86-64 only (this machine is {self.machine})")
        if not self.seccomp:
            out.append("the kernel has no usable seccomp filters")
        if not self.ptrace:
            out.append("ptrace of child processes is not allowed")
        return "; ".join(out)

    def describe(self) -> str:
        """One paragraph, in plain words, of what is enforced on this machine."""
        if not self.usable:
            text = f"Supervised execution is NOT available: {self.missing()}."
        else:
            parts = ["Supervised execution is available: seccomp-bpf system-call filter "
                     "with a ptrace tracer for decision points"]
            if self.landlock_abi:
                parts.append(f"Landlock (ABI {self.landlock_abi}) confines file access "
                             "in the kernel")
            else:
                parts.append("no Landlock: file access is checked by the tracer only, so "
                             "programs are limited to one thread")
            if self.namespaces:
                parts.append(f"programs run in their own {'/'.join(self.namespaces)} "
                             "namespaces")
            else:
                parts.append("no namespaces (socket and IPC calls are still forbidden by "
                             "the filter)")
            if self.root:
                parts.append("running as root: each program gets a fresh unprivileged uid")
            text = "; ".join(parts) + "."
        if self.problems:
            text += " Notes: " + "; ".join(self.problems) + "."
        return text


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


def _ptrace_seccomp_selftest() -> tuple[bool, str | None]:
    """Fork a child that installs a filter tracing getppid(), seize it, and
    check that the TRACE stop reaches us. This is the whole mechanism the
    supervisor relies on, on a harmless call."""
    program = _selftest_filter()
    fprog, _buf = L.make_fprog(program)
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
            _, status = os.waitpid(pid, 0x40000000)  # __WALL
            if os.WIFSTOPPED(status):
                if status >> 16 == L.PTRACE_EVENT_SECCOMP:
                    saw_stop = True
                    L.ptrace(L.PTRACE_CONT, pid, 0, 0)
                else:
                    sig = os.WSTOPSIG(status)
                    L.ptrace(L.PTRACE_CONT, pid, 0, 0 if status >> 16 else sig)
                continue
            ok = os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
            if not ok:
                return False, "the seccomp/ptrace self-test child failed"
            if not saw_stop:
                return False, "seccomp TRACE stops do not reach the tracer"
            return True, None
    finally:
        os.close(w)
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass


def _selftest_filter() -> bytes:
    asm = bpf.Assembler()
    asm.load(bpf.OFF_NR)
    asm.jump("==", L.NR["getppid"], false="allow")
    asm.ret(bpf.SECCOMP_RET_TRACE | 1)
    asm.label("allow")
    asm.ret(bpf.SECCOMP_RET_ALLOW)
    return asm.assemble()


def probe_here(namespaces: tuple[str, ...] = (), problems: tuple[str, ...] = ()) -> Capabilities:
    """Probe in the current process (meant for the spawner; forks children)."""
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
    return Capabilities(machine=machine, seccomp=seccomp, ptrace=ptrace, landlock_abi=abi,
                        namespaces=namespaces, root=os.geteuid() == 0,
                        problems=tuple(notes))

