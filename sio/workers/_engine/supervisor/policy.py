"""The rules of a supervised run (:class:`Policy`). What an outcome means as a
verdict is the policy layer's business: :mod:`sio.workers.verdicts`."""

from __future__ import annotations

from dataclasses import dataclass

from sio.workers._engine.supervisor.bpf import LARGE_MAPPING
from sio.workers._engine.supervisor.paths import SYSTEM_READ_PATHS

__all__ = ["FAKE_TIME_MODES", "SYSTEM_READ_PATHS", "Policy"]

#: the values of :attr:`Policy.fake_time`
FAKE_TIME_MODES = ("off", "zero", "random")


@dataclass(frozen=True)
class Policy:
    """What a supervised program may do besides computing and using the
    descriptors it was given. The defaults are the SIO2 ``exec`` rules."""

    #: The program may open files inside its working directory **read-only**
    #: (SIO2 ``allow_local_open``). Opening them for writing is refused with
    #: EACCES, and so is any open outside the allowed paths, which otherwise
    #: is a rule violation (RV). When the program runs under a dropped uid
    #: (see :attr:`drop_uid`), the working directory is made searchable by
    #: others (``o+x``) so it can reach its files by name; the files must be
    #: readable by others.
    allow_local_open: bool = False
    #: Most threads alive at once, the main one included. Creating one more is
    #: a rule violation (``clone``). Any new *process* always is. Without
    #: Landlock this is forced to 1, because the tracer's path checks are
    #: race-free only in a single-threaded program.
    max_threads: int = 16
    #: More read-only paths (files or directory trees) the program may open,
    #: e.g. a language runtime's library directory.
    read_paths: tuple[str, ...] = ()
    #: More system calls to allow in the kernel (names of the x86-64 ABI), for
    #: runtimes that need them. Traced calls (open, clone, kill, ...) cannot
    #: be listed here.
    extra_syscalls: tuple[str, ...] = ()
    #: System calls that fail with an errno instead of being a rule
    #: violation, as ``(name, errno)`` pairs: for runtimes that probe for
    #: something they can do without (the JVM tries a name-service socket).
    #: Traced, argument-checked and allowed calls cannot be listed.
    refused_syscalls: tuple[tuple[str, int], ...] = ()
    #: Opening (or querying) a path outside the allowed ones fails with
    #: EACCES instead of being a rule violation, as with
    #: :attr:`allow_local_open` but without its reading of the working
    #: directory: for runtimes that probe many system files (the JVM reads
    #: cgroup and CPU information it can do without).
    quiet_denials: bool = False
    #: The program may read its own ``/proc/<pid>`` (``/proc/self``: memory
    #: maps, limits, cgroup, mount information), which runtimes read at
    #: start-up; nothing else of ``/proc``.
    read_own_proc: bool = False
    #: When the supervisor runs as root, run the program under a fresh
    #: unprivileged uid/gid (the root uid ignores RLIMIT_NPROC and file
    #: permissions). Only for tests that need root's view; keep it True.
    drop_uid: bool = True
    #: RLIMIT_AS is the memory limit plus this margin, so that a program
    #: failing an allocation near the limit has already gone over it (and gets
    #: MLE, decided on VmPeak) instead of crashing below it (RE).
    memory_margin_kib: int = 8192
    #: RLIMIT_NOFILE: the most descriptors the program may hold (its three
    #: standard streams included). Small, because descriptors are how a
    #: program parks memory in the kernel where its address-space limit does
    #: not see it: each pipe holds up to 1 MiB of buffers (``pipe-max-size``),
    #: each epoll watch, timer or event object some more. With 16, at most 6
    #: pipes: their buffers stay within :attr:`memory_margin_kib`.
    max_open_files: int = 16
    #: CPU to pin the tracer and the program to; None picks the CPU the
    #: spawner is running on when the run starts.
    cpu: int | None = None
    #: The program's view of time (SIO2's ``fake_time``): ``"off"`` (real
    #: time), ``"zero"`` (every clock and the time-stamp counter read 0) or
    #: ``"random"`` (a virtual clock that starts at a pseudo-random value
    #: and moves on by a pseudo-random step at each read, the same sequence
    #: in every run). RDTSC/RDTSCP trap and are emulated by the tracer;
    #: clock_gettime, gettimeofday, time, times and getrusage are answered
    #: by it (the vDSO is hidden, so that they reach it). What is *not*
    #: faked is listed in ``docs/supervisor.rst``.
    fake_time: str = "off"

    def __post_init__(self) -> None:
        if self.fake_time not in FAKE_TIME_MODES:
            raise ValueError(f"Policy.fake_time must be one of {', '.join(FAKE_TIME_MODES)}, "
                             f"not {self.fake_time!r}")
        if self.max_threads < 1:
            raise ValueError("Policy.max_threads must be at least 1")
        if self.max_open_files < 3:
            raise ValueError("Policy.max_open_files must be at least 3 (the standard "
                             "streams)")
        if self.memory_margin_kib * 1024 < LARGE_MAPPING:
            # Smaller mappings are not checked by the tracer: one of them
            # must not be able to cross the whole margin.
            raise ValueError(f"Policy.memory_margin_kib must be at least "
                             f"{LARGE_MAPPING // 1024} (the size from which the tracer "
                             f"checks mappings)")

