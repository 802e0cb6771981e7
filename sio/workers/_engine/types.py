"""The engine's small typed records: what to enforce and what happened.

Units are in the field names: ``_ms`` milliseconds, ``_kib`` KiB (1024
bytes), ``_bytes`` bytes. ``None`` means "no limit" / "not measured".
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final


class _Sentinel:
    def __init__(self, name: str) -> None:
        self._name = name

    def __repr__(self) -> str:
        return self._name


#: Pass as ``stdout``/``stderr`` of a run to have the engine read that stream
#: through a pipe (counting against ``Limits.output_bytes``) into
#: ``Outcome.stdout`` / ``Outcome.stderr``.
CAPTURE: Final = _Sentinel("CAPTURE")
#: Pass as ``stderr`` to send it wherever ``stdout`` goes (captured or a file).
STDOUT: Final = _Sentinel("STDOUT")


@dataclass(frozen=True)
class Limits:
    """Limits for one run of a program (and everything it starts)."""

    #: CPU time (user + system) of the program.
    cpu_time_ms: int | None = None
    #: Wall-clock time from start to end; the whole process group is killed.
    wall_time_ms: int | None = None
    #: Address space (RLIMIT_AS) of each process: the memory limit.
    address_space_kib: int | None = None
    #: Largest file the program may write (RLIMIT_FSIZE); for captured pipes
    #: the engine counts and truncates/kills instead.
    output_bytes: int | None = None
    #: Stack size (RLIMIT_STACK); None leaves the inherited value.
    stack_kib: int | None = None
    #: At most this many bytes of each CAPTURE'd stream are kept (the rest is
    #: read and dropped, ``Outcome.output_truncated`` is set); None means
    #: ``output_bytes``. Apart from it because a program may need to write
    #: big files (a compiler its binary) while its captured output is small.
    capture_bytes: int | None = None


class KillReason(enum.Enum):
    """Why the engine (not the program) ended the run."""

    CPU_TIME = "cpu_time"
    WALL_TIME = "wall_time"
    MEMORY = "memory"
    OUTPUT = "output"
    #: a forbidden system call (supervised runs only); see Outcome.violation
    SYSCALL = "syscall"


@dataclass(frozen=True)
class Outcome:
    """What happened to one run."""

    #: exit status when the program exited normally, else None
    exit_code: int | None
    #: number of the signal that ended it, else None
    signal: int | None
    #: CPU time (user + system) of the program and its waited-for children
    cpu_time_ms: int
    #: wall-clock time from start to end
    wall_time_ms: int
    #: set when the engine ended the run on a limit or a rule
    killed: KillReason | None = None
    #: peak memory (VmPeak semantics) where measured, else None
    mem_peak_kib: int | None = None
    #: peak resident memory (VmHWM) where measured, else None: what a
    #: runtime that reserves far more address space than it uses (the JVM)
    #: really used
    mem_resident_peak_kib: int | None = None
    #: system calls counted by the supervisor where it counts them
    syscalls: int | None = None
    #: a human-readable detail of a violation, e.g. the forbidden syscall name
    violation: str | None = None
    #: the supervisor itself failed (a system error, not the program's fault)
    system_error: str | None = None
    #: captured streams (see CAPTURE), at most Limits.output_bytes each
    stdout: bytes | None = None
    stderr: bytes | None = None
    #: a captured stream was cut at Limits.output_bytes
    output_truncated: bool = False

    @property
    def ok(self) -> bool:
        """Exited by itself with status 0 and was not killed."""
        return self.exit_code == 0 and self.signal is None and self.killed is None
