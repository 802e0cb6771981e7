"""What this machine lets the supervisor do, found out once per spawner.

The spawner runs the checks (:mod:`._checks`) at start-up, after entering its
namespaces, so the answer describes the very process that will supervise
programs. Required: x86-64, seccomp filters with the TRACE action, and ptrace
of our own children. Everything else is an extra layer whose absence is
reported in :meth:`Capabilities.describe` (and makes the engine stricter
rather than looser, e.g. no threads without Landlock).
"""

from __future__ import annotations

from dataclasses import dataclass, field


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
    #: each program runs in a private filesystem view (its own mount and PID
    #: namespaces, a minimal read-only root): nothing else of the host exists
    #: in its world
    view: bool = False
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

    @property
    def fully_isolated(self) -> bool:
        """Every layer is in force: the private view, Landlock and the
        seccomp filter (what ``SIO_SUPERVISOR_ISOLATION=full`` requires)."""
        return self.usable and self.view and self.landlock_abi > 0

    def weaker(self) -> str:
        """What is weaker than full isolation, in plain words (empty when
        :attr:`fully_isolated`)."""
        out = []
        if not self.view:
            out.append("no private filesystem view: programs see the host's file tree; "
                       "Landlock keeps file contents safe, but the names, sizes, times "
                       "and link targets of any file can be probed (the tracer's path "
                       "checks can be raced by another thread), and a program sees the "
                       "other processes of the machine")
        if not self.landlock_abi:
            out.append("no Landlock: file access is checked by the tracer only, so "
                       "programs are limited to one thread")
        return "; ".join(out)

    def describe(self) -> str:
        """One paragraph, in plain words, of what is enforced on this machine."""
        if not self.usable:
            text = f"Supervised execution is NOT available: {self.missing()}."
        else:
            parts = ["Supervised execution is available: seccomp-bpf system-call filter "
                     "with a ptrace tracer for decision points"]
            if self.view:
                parts.append("each program runs in a private view (its own mount and PID "
                             "namespaces, a read-only root holding only the system "
                             "libraries and runtimes, its job directory and three devices)")
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
            if not self.fully_isolated:
                text += " Weaker than full isolation: " + self.weaker() + "."
        if self.problems:
            text += " Notes: " + "; ".join(self.problems) + "."
        return text

    @classmethod
    def from_dict(cls, fields: dict) -> Capabilities:
        """Build from what the spawner reports."""
        return cls(**{"view": False, **fields, "namespaces": tuple(fields["namespaces"]),
                      "problems": tuple(fields["problems"])})
