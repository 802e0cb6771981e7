"""The seccomp-bpf program of supervised runs: a tiny classic-BPF assembler and
the rule table it is built from.

Every system call of the program falls in one class:

* **allowed** in the kernel (:data:`ALLOWED`): reading and writing the files it
  was given, memory management, time, signals to itself, threads' futexes.
  These cost nothing measurable per call, and they are what hot code runs.
* **refused** with an errno (:data:`REFUSED`): calls that are harmless to refuse
  and that ordinary runtimes try (``ioctl`` on stdout, ``clone3`` so glibc
  falls back to ``clone``, raising rlimits, changing CPU affinity).
* **traced** (:data:`TRACED`): decision points where the tracer looks at the
  arguments: opening files (path and flags), path queries such as ``stat``,
  the first ``execve``, ``clone`` (threads up to a limit, never a new
  process), ``kill``-like calls (only at the program itself), and large
  ``mmap``/``mremap`` (memory-limit prediction).
* everything else, calls of another ABI (i386 ``int 0x80``, x32) included, is
  **forbidden**: it also stops in the tracer (so the verdict can name it),
  which kills the program and reports a rule violation.

The ``SECCOMP_RET_DATA`` of a traced call is a :class:`Stop` telling the
tracer which of these it is.
"""

from __future__ import annotations

import errno
import struct
from collections.abc import Iterable, Mapping

from sio.workers._engine.supervisor._syscalls import NUMBERS

# struct seccomp_data: int nr; __u32 arch; __u64 instruction_pointer; __u64 args[6];
OFF_NR = 0
OFF_ARCH = 4


def off_arg_lo(i: int) -> int:
    return 16 + 8 * i  # little-endian: the low 32 bits come first


def off_arg_hi(i: int) -> int:
    return 16 + 8 * i + 4


AUDIT_ARCH_X86_64 = 0xC000003E
X32_SYSCALL_BIT = 0x40000000

SECCOMP_RET_KILL_PROCESS = 0x80000000
SECCOMP_RET_ERRNO = 0x00050000
SECCOMP_RET_TRACE = 0x7FF00000
SECCOMP_RET_ALLOW = 0x7FFF0000

# classic BPF opcodes
_LD_W_ABS = 0x20
_JMP_JA = 0x05
_JMP_JEQ_K = 0x15
_JMP_JGT_K = 0x25
_JMP_JGE_K = 0x35
_JMP_JSET_K = 0x45
_RET_K = 0x06


class Stop:
    """Why a traced call stopped (the ``SECCOMP_RET_DATA`` of its TRACE action).
    Plain ints, not an enum: the spawner keeps its imports minimal."""

    FORBIDDEN = 1   #: not allowed at all: rule violation
    FOREIGN_ABI = 2  #: a call of another architecture (i386 ``int 0x80``)
    X32 = 3         #: an x32-ABI call
    OPEN = 4        #: open/openat/creat: check path and flags
    PATH_QUERY = 5  #: stat/access/readlink: check the path
    EXEC = 6        #: execve/execveat: only the first one (ours) is allowed
    CLONE = 7       #: threads up to a limit, never a new process
    SIGNAL = 8      #: kill/tgkill/...: only at the program itself
    MEMORY = 9      #: a large mmap/mremap: would it exceed the memory limit?
    SETFL = 10      #: fcntl(F_SETFL) without O_APPEND: O_APPEND is kept
    CLOCK = 11      #: with fake_time, a clock read the tracer answers


def _trace(stop: int) -> int:
    return SECCOMP_RET_TRACE | int(stop)


def _errno(code: int) -> int:
    return SECCOMP_RET_ERRNO | code


#: Run in the kernel without stopping. Keep this to calls that act only on the
#: program itself or on file descriptors it already holds.
ALLOWED: tuple[str, ...] = (
    # I/O on descriptors it was given
    "read", "write", "readv", "writev", "pread64", "pwrite64", "preadv", "pwritev",
    "preadv2", "lseek", "close", "fstat", "dup", "dup2", "dup3",
    "fsync", "fdatasync", "fadvise64", "sendfile", "splice", "tee",
    "getdents", "getdents64", "fstatfs", "close_range", "pipe", "pipe2",
    "poll", "ppoll", "select", "pselect6", "epoll_create", "epoll_create1", "epoll_ctl",
    "epoll_wait", "epoll_pwait", "epoll_pwait2", "eventfd", "eventfd2",
    "timerfd_create", "timerfd_settime", "timerfd_gettime",
    # memory (mmap and mremap have argument checks, see build_filter)
    "munmap", "mprotect", "brk", "madvise", "mincore", "msync", "pkey_mprotect",
    "pkey_alloc", "pkey_free",
    # threads and synchronisation (clone itself is traced)
    "futex", "futex_waitv", "get_robust_list", "set_robust_list", "set_tid_address",
    "rseq", "membarrier", "sched_yield", "sched_getaffinity", "sched_getparam",
    "sched_getscheduler", "sched_get_priority_max", "sched_get_priority_min", "getcpu",
    # signals to itself (sending them is traced)
    "rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "rt_sigpending", "rt_sigtimedwait",
    "rt_sigsuspend", "sigaltstack", "pause", "restart_syscall",
    # time
    "nanosleep", "clock_nanosleep", "clock_gettime", "clock_getres", "gettimeofday",
    "time", "alarm", "setitimer", "getitimer", "timer_create", "timer_settime",
    "timer_gettime", "timer_getoverrun", "timer_delete", "times", "getrusage",
    # identity and environment queries
    "getpid", "gettid", "getppid", "getuid", "geteuid", "getgid", "getegid",
    "getresuid", "getresgid", "getgroups", "getpgrp", "getpgid", "getsid", "uname",
    "sysinfo", "getcwd", "umask", "getrlimit", "getpriority", "getrandom",
    "arch_prctl", "wait4", "waitid",
    "exit", "exit_group",
)

#: Refused with this errno; the program sees an ordinary failure.
REFUSED: dict[str, int] = {
    "ioctl": errno.ENOTTY,          # isatty() and terminal queries
    "clone3": errno.ENOSYS,         # glibc then falls back to clone, which is traced
    "openat2": errno.ENOSYS,        # glibc falls back to openat, which is traced
    "setrlimit": errno.EPERM,       # no raising of the limits we set
    "sched_setaffinity": errno.EPERM,  # stay on the CPU we pinned it to
    "sched_setscheduler": errno.EPERM,
    "sched_setparam": errno.EPERM,
    "setpriority": errno.EPERM,
    "setpgid": errno.EPERM,         # stay in the process group we kill
    "setsid": errno.EPERM,
    "personality": errno.EPERM,
    "mlock": errno.EPERM, "mlock2": errno.EPERM, "mlockall": errno.EPERM,
    "munlock": errno.EPERM, "munlockall": errno.EPERM,
    "chdir": errno.EPERM, "fchdir": errno.EPERM,
    "flock": errno.ENOLCK,          # no locks on shared inodes (a side channel)
    # The output is appended to (O_APPEND, see fcntl below): not cut either.
    "ftruncate": errno.EPERM,
    "statfs": errno.EACCES,
    "mbind": errno.EPERM, "set_mempolicy": errno.EPERM, "get_mempolicy": errno.ENOSYS,
}

#: Stop in the tracer, which decides from the arguments.
TRACED: dict[str, int] = {
    "open": Stop.OPEN, "openat": Stop.OPEN, "creat": Stop.OPEN,
    "stat": Stop.PATH_QUERY, "lstat": Stop.PATH_QUERY, "newfstatat": Stop.PATH_QUERY,
    "statx": Stop.PATH_QUERY, "access": Stop.PATH_QUERY, "faccessat": Stop.PATH_QUERY,
    "faccessat2": Stop.PATH_QUERY, "readlink": Stop.PATH_QUERY,
    "readlinkat": Stop.PATH_QUERY,
    "execve": Stop.EXEC, "execveat": Stop.EXEC,
    "clone": Stop.CLONE,
    "kill": Stop.SIGNAL, "tkill": Stop.SIGNAL, "tgkill": Stop.SIGNAL,
    "rt_sigqueueinfo": Stop.SIGNAL, "rt_tgsigqueueinfo": Stop.SIGNAL,
}

#: The calls that read a clock, answered by the tracer when time is faked
#: (see Policy.fake_time); otherwise allowed like the rest of ALLOWED.
CLOCK_CALLS: tuple[str, ...] = ("clock_gettime", "gettimeofday", "time", "times", "getrusage")

#: prctl options that are allowed (thread names); every other one is refused.
PRCTL_ALLOWED = (15, 16)  # PR_SET_NAME, PR_GET_NAME
#: fcntl commands refused (EPERM): F_SETOWN, F_SETSIG, F_SETOWN_EX would let
#: SIGIO signal another process; F_SETLEASE, F_NOTIFY watch shared inodes.
FCNTL_REFUSED = (8, 10, 15, 1024, 1026)
#: fcntl record locks, refused (ENOLCK) like flock: concurrent runs share
#: inodes (an input is a hard link of Filetracker's cache), and a lock one
#: run takes another can see, a channel between them. F_GETLK, F_SETLK,
#: F_SETLKW (the same numbers as their 64-bit forms on x86-64), F_OFD_GETLK,
#: F_OFD_SETLK, F_OFD_SETLKW.
FCNTL_LOCKS = (5, 6, 7, 36, 37, 38)
F_SETFL = 4
O_APPEND = 0o2000
#: pwritev2 flag: write at the offset even on an O_APPEND descriptor (Linux 6.9)
RWF_NOAPPEND = 0x20

#: mmap/mremap sizes from which the tracer checks the memory limit. Smaller
#: ones are left to RLIMIT_AS, whose margin they cannot jump over (so it
#: must not be larger than Policy.memory_margin_kib, which checks it). 4 MiB:
#: the dynamic loader's mapping of libc (~2 MiB) and glibc's malloc of
#: blocks of a few MiB stay in the kernel, at no stop each.
LARGE_MAPPING = 4 << 20
#: mmap flag: the mapping replaces part of one the program has; its size
#: is already counted, so the tracer would allow it anyway
MAP_FIXED = 0x10


class Assembler:
    """Classic BPF with forward jumps to named labels."""

    def __init__(self) -> None:
        self._code: list[tuple[int, str | int, str | int, int]] = []
        self._labels: dict[str, int] = {}
        self._n = 0

    def fresh(self, prefix: str) -> str:
        self._n += 1
        return f"{prefix}{self._n}"

    def label(self, name: str) -> None:
        if name in self._labels:
            raise ValueError(f"duplicate BPF label {name!r}")
        self._labels[name] = len(self._code)

    def load(self, offset: int) -> None:
        self._code.append((_LD_W_ABS, 0, 0, offset))

    def jump(self, op: str, k: int, true: str | int = 0, false: str | int = 0) -> None:
        """Conditional jump on ``A <op> k`` (``&``: any bit of ``k`` set in
        ``A``); a target is a label or 0 (next)."""
        opcode = {"==": _JMP_JEQ_K, ">": _JMP_JGT_K, ">=": _JMP_JGE_K, "&": _JMP_JSET_K}[op]
        self._code.append((opcode, true, false, k))

    def goto(self, target: str) -> None:
        self._code.append((_JMP_JA, 0, 0, target))  # type: ignore[arg-type]

    def ret(self, value: int) -> None:
        self._code.append((_RET_K, 0, 0, value))

    def assemble(self) -> bytes:
        out = bytearray()
        for i, (op, jt, jf, k) in enumerate(self._code):
            if op == _JMP_JA:
                k = self._offset(i, k)
                jt = jf = 0
            elif op in (_JMP_JEQ_K, _JMP_JGT_K, _JMP_JGE_K, _JMP_JSET_K):
                jt, jf = self._offset(i, jt), self._offset(i, jf)
                if not (0 <= jt <= 255 and 0 <= jf <= 255):
                    raise ValueError(f"BPF jump out of range at instruction {i}")
            out += struct.pack("<HBBI", op, jt, jf, k)
        if len(self._code) > 4096:
            raise ValueError("BPF program too long")
        return bytes(out)

    def _offset(self, i: int, target: str | int) -> int:
        if isinstance(target, int):
            return target
        if target not in self._labels:
            raise ValueError(f"undefined BPF label {target!r}")
        delta = self._labels[target] - (i + 1)
        if delta < 0:
            raise ValueError(f"backward BPF jump to {target!r}")
        return delta


def _numbers(names: Iterable[str]) -> list[int]:
    unknown = [n for n in names if n not in NUMBERS]
    if unknown:
        raise ValueError(f"unknown x86-64 system call(s): {', '.join(unknown)}")
    return [NUMBERS[n] for n in names]


#: Calls whose arguments decide (see build_filter, step 4).
ARGUMENT_CHECKED = ("mmap", "mremap", "prlimit64", "prctl", "fcntl", "pwritev2")


#: Numbers above every real x86-64 call (the range search needs an upper end).
_NR_END = X32_SYSCALL_BIT


def _actions(extra: list[str], refused: Mapping[str, int] | None = None,
             fake_time: bool = False) -> dict[int, int | str]:
    """What each listed call number does: a SECCOMP_RET value, or the label of
    a block that looks at the arguments. Unlisted numbers are forbidden. When
    a name is in several tables, the first of ALLOWED (with ``extra``), the
    argument checks, ``refused``, REFUSED, TRACED wins."""
    actions: dict[int, int | str] = {}
    if fake_time:
        for name in CLOCK_CALLS:
            actions[NUMBERS[name]] = _trace(Stop.CLOCK)
    for nr in _numbers(list(ALLOWED) + [n for n in extra if n not in ALLOWED]):
        actions.setdefault(nr, SECCOMP_RET_ALLOW)
    for name in ARGUMENT_CHECKED:
        actions.setdefault(NUMBERS[name], name)
    for name, code in (refused or {}).items():
        actions.setdefault(_numbers([name])[0], _errno(code))
    for name, code in REFUSED.items():
        if name not in extra:
            actions.setdefault(NUMBERS[name], _errno(code))
    for name, stop in TRACED.items():
        actions.setdefault(NUMBERS[name], _trace(stop))
    return actions


def _ranges(actions: dict[int, int | str]) -> list[tuple[int, int | str]]:
    """``[(first number, action), ...]``: maximal runs of consecutive numbers
    with one action, covering 0 .. _NR_END - 1 (gaps are forbidden)."""
    forbidden = _trace(Stop.FORBIDDEN)
    runs: list[tuple[int, int | str]] = []
    previous: int | str | None = None
    for nr in sorted(set(actions) | {n + 1 for n in actions} | {0}):
        if nr >= _NR_END:
            continue
        action = actions.get(nr, forbidden)
        if action != previous:
            runs.append((nr, action))
            previous = action
    return runs


def _large_size(asm: Assembler, arg: int, large: str, small: str) -> None:
    """Jump to ``large`` if 64-bit argument ``arg`` >= LARGE_MAPPING, else ``small``."""
    asm.load(off_arg_hi(arg))
    asm.jump("==", 0, false=large)
    asm.load(off_arg_lo(arg))
    asm.jump(">=", LARGE_MAPPING, true=large, false=small)


def _one_of(asm: Assembler, arg: int, values: Iterable[int], *, listed: str,
            other: str) -> None:
    """Jump to ``listed`` if (the low half of) argument ``arg`` is one of
    ``values``, else to ``other``."""
    asm.load(off_arg_lo(arg))
    for value in values:
        asm.jump("==", value, true=listed)
    asm.goto(other)


def build_filter(extra_allowed: Iterable[str] = (),
                 extra_refused: Mapping[str, int] | None = None,
                 fake_time: bool = False) -> bytes:
    """The packed ``struct sock_filter`` array of a supervised run.

    ``extra_allowed`` names more system calls to allow in the kernel (for
    runtimes that need them); it cannot allow a traced call.
    ``extra_refused`` (name -> errno) makes more calls fail with that errno
    instead of being forbidden (for runtimes that probe for something they
    can do without); it cannot refuse a traced or allowed call.

    The call number is looked up by a binary search over runs of numbers
    with the same action (about 8 comparisons), not by a list of
    comparisons: the kernel, when it installs a filter, runs it for every
    call number to find the ones it may allow without running it again
    (the seccomp action cache, Linux >= 5.11). With a list of ~200
    comparisons that set-up cost ~0.2 ms per supervised run; with the
    search, about a fifth of it. The actions are the same.

    ``fake_time``: the clock reads of :data:`CLOCK_CALLS` stop in the
    tracer, which answers them (they cannot be listed in ``extra_allowed``).
    """
    extra = list(extra_allowed)
    traced_extra = [n for n in extra if n in TRACED or n in ARGUMENT_CHECKED]
    if traced_extra:
        raise ValueError(f"these calls are decided by the tracer and cannot be simply "
                         f"allowed: {', '.join(traced_extra)}")
    refused = dict(extra_refused or {})
    clash = [n for n in refused if n in TRACED or n in ARGUMENT_CHECKED or n in ALLOWED
             or n in extra]
    if clash:
        raise ValueError(f"these calls cannot be refused with an errno (traced, checked "
                         f"or allowed): {', '.join(clash)}")
    asm = Assembler()
    # 1. Architecture. A 64-bit process can still make i386 calls with
    #    `int 0x80`; their numbers mean other calls, so the arch must be checked
    #    before any number is looked at.
    asm.load(OFF_ARCH)
    asm.jump("==", AUDIT_ARCH_X86_64, true="native")
    asm.ret(_trace(Stop.FOREIGN_ABI))
    asm.label("native")
    # 2. x32 calls share the x86-64 arch value but set bit 30 of nr (as do
    #    numbers that are negative as an int: all stop here).
    asm.load(OFF_NR)
    asm.jump(">=", X32_SYSCALL_BIT, false="x64")
    asm.ret(_trace(Stop.X32))
    asm.label("x64")
    # 3. The number: a balanced binary tree of `nr >= first` comparisons
    #    whose leaves are jumps straight to the shared endings below. Every
    #    ending follows the whole tree, and the program stays well below 256
    #    instructions, so every jump is within the 8-bit range (the
    #    assembler checks).
    runs = _ranges(_actions(extra, refused, fake_time))
    # Shared endings; the argument blocks below return through the first three.
    endings: dict[int | str, str] = {SECCOMP_RET_ALLOW: "allow", _errno(errno.EPERM): "eperm",
                                     _trace(Stop.MEMORY): "trace_memory"}
    shared = set(endings.values())

    def target(lo: int, hi: int) -> str:
        if hi - lo == 1:
            action = runs[lo][1]
            if action not in endings:
                endings[action] = (action if isinstance(action, str)
                                   else f"ret_{action:#x}")
            return endings[action]
        return f"node_{lo}_{hi}"

    def tree(lo: int, hi: int) -> None:  # runs[lo:hi], at least two of them
        mid = (lo + hi) // 2
        asm.label(f"node_{lo}_{hi}")
        asm.jump(">=", runs[mid][0], true=target(mid, hi), false=target(lo, mid))
        if mid - lo > 1:
            tree(lo, mid)
        if hi - mid > 1:
            tree(mid, hi)

    tree(0, len(runs))
    for action, label in endings.items():
        if isinstance(action, int) and label not in shared:
            asm.label(label)
            asm.ret(action)
    # 4. Calls allowed depending on their arguments.
    #    mmap(addr, len, prot, flags, ...): a large mapping that is not
    #    PROT_NONE nor MAP_FIXED goes to the tracer (memory prediction);
    #    PROT_NONE reservations (glibc arenas, guard areas) stay in the kernel,
    #    where RLIMIT_AS may simply refuse them, and MAP_FIXED ones (the
    #    loader placing segments inside its reservation) replace memory the
    #    program has.
    asm.label("mmap")
    _large_size(asm, 1, large="mmap_large", small="allow")
    asm.label("mmap_large")
    asm.load(off_arg_lo(2))
    asm.jump("==", 0, true="allow")
    asm.load(off_arg_lo(3))
    asm.jump("&", MAP_FIXED, true="allow", false="trace_memory")
    #    mremap(old, old_len, new_len, ...)
    asm.label("mremap")
    _large_size(asm, 2, large="trace_memory", small="allow")
    #    prlimit64(pid, res, new, old): reading limits is fine, setting is not.
    asm.label("prlimit64")
    asm.load(off_arg_lo(2))
    asm.jump("==", 0, false="eperm")
    asm.load(off_arg_hi(2))
    asm.jump("==", 0, true="allow", false="eperm")
    #    prctl(option, ...): thread names only.
    asm.label("prctl")
    _one_of(asm, 0, PRCTL_ALLOWED, listed="allow", other="eperm")
    #    fcntl(fd, cmd, arg): everything but signal ownership, leases and
    #    locks; F_SETFL only keeping O_APPEND (the output is opened for
    #    appending, so that no program rewrites what it wrote: the tracer
    #    adds O_APPEND to any F_SETFL without it, a race-free change of an
    #    argument; no program needs to take it off).
    asm.label("fcntl")
    _one_of(asm, 1, FCNTL_REFUSED, listed="eperm", other="fcntl_locks")
    asm.label("fcntl_locks")
    _one_of(asm, 1, FCNTL_LOCKS, listed="enolck", other="fcntl_setfl")
    asm.label("fcntl_setfl")
    asm.jump("==", F_SETFL, false="allow")
    asm.load(off_arg_lo(2))
    asm.jump("&", O_APPEND, true="allow", false="trace_setfl")
    #    pwritev2(fd, iov, iovcnt, pos_l, pos_h, flags): not past O_APPEND.
    asm.label("pwritev2")
    asm.load(off_arg_lo(5))
    asm.jump("&", RWF_NOAPPEND, true="eperm", false="allow")
    asm.label("enolck")
    asm.ret(_errno(errno.ENOLCK))
    asm.label("trace_setfl")
    asm.ret(_trace(Stop.SETFL))
    asm.label("allow")
    asm.ret(SECCOMP_RET_ALLOW)
    asm.label("eperm")
    asm.ret(_errno(errno.EPERM))
    asm.label("trace_memory")
    asm.ret(_trace(Stop.MEMORY))
    return asm.assemble()


def evaluate(program: bytes, nr: int, args: tuple[int, ...] = (0,) * 6,
             arch: int = AUDIT_ARCH_X86_64) -> int:
    """Run ``program`` on one ``seccomp_data`` like the kernel would and return
    the action. For tests and for reading the policy; not used at run time."""
    data = struct.pack("<iIQ6Q", nr, arch, 0, *(list(args) + [0] * 6)[:6])
    code = [struct.unpack_from("<HBBI", program, i) for i in range(0, len(program), 8)]
    pc, acc = 0, 0
    while True:
        op, jt, jf, k = code[pc]
        pc += 1
        if op == _LD_W_ABS:
            acc = struct.unpack_from("<I", data, k)[0]
        elif op == _JMP_JA:
            pc += k
        elif op == _JMP_JEQ_K:
            pc += jt if acc == k else jf
        elif op == _JMP_JGT_K:
            pc += jt if acc > k else jf
        elif op == _JMP_JGE_K:
            pc += jt if acc >= k else jf
        elif op == _JMP_JSET_K:
            pc += jt if acc & k else jf
        elif op == _RET_K:
            return k
        else:  # pragma: no cover - the assembler emits nothing else
            raise ValueError(f"unknown BPF opcode {op:#x}")
