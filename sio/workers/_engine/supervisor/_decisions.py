"""Syscall decisions: what the tracer does at a program's ptrace stops.

The seccomp filter (:mod:`.bpf`) sends the rare decision points here: opens
and path queries (the contract's verdicts, never a secret: the kernel's view
and Landlock guard those), the first exec, clone, signals, large mappings,
``fcntl(F_SETFL)`` and, with ``fake_time``, clock reads and RDTSC (emulated
here). Apart because it is the part that reads the program's registers and
memory, and every stop it handles costs the program time.
"""

from __future__ import annotations

import _signal as signal
import errno
import os
import struct
import time

from sio.workers._engine.supervisor import _linux as L
from sio.workers._engine.supervisor import bpf
from sio.workers._engine.supervisor._linux import U64_MASK as _U64_MASK
from sio.workers._engine.supervisor._linux import WALL
from sio.workers._engine.supervisor._syscalls import NAMES
from sio.workers._engine.supervisor._watchdog import MEMORY, SYSCALL, Watchdog, _proc_status
from sio.workers._engine.supervisor.bpf import Stop

TYPE_CHECKING = False  # typing is not imported at run time (see _spawner)
if TYPE_CHECKING:
    from sio.workers._engine.supervisor._spawner import Spawner

AT_FDCWD = -100

# clone() flags
CLONE_VM = 0x100
CLONE_SIGHAND = 0x800
CLONE_THREAD = 0x10000
THREAD_FLAGS = CLONE_VM | CLONE_SIGHAND | CLONE_THREAD
#: never allowed even for a thread: a thread that escapes tracing (UNTRACED),
#: gets a new parent, or new namespaces
CLONE_FORBIDDEN = (0x00800000 | 0x00008000 | 0x00020000 | 0x02000000 | 0x04000000
                   | 0x08000000 | 0x10000000 | 0x20000000 | 0x40000000)
MAP_FIXED = 0x10

#: fake_time "random": the seed of the sequence, the range of the clock's
#: start (ns, about 13 days) and the largest step at a read (ns)
FAKE_TIME_SEED = 0x5105_2026_F4CE_713E
FAKE_TIME_START_RANGE = 1 << 50
FAKE_TIME_STEP_NS = 1 << 16
NUMBERS_MUNMAP = 11
# auxiliary vector entry types (the program's initial stack)
AT_NULL, AT_IGNORE, AT_SYSINFO_EHDR = 0, 1, 33

#: the registers of the system call arguments, in order
_ARG_REGS = ("rdi", "rsi", "rdx", "r10", "r8", "r9")


def _signed32(value: int) -> int:
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value & 0x80000000 else value


def _ns_pid(tid: int) -> int | None:
    """The id of task ``tid`` in its own (innermost) PID namespace."""
    try:
        with open(f"/proc/{tid}/status", "rb") as f:
            for line in f:
                if line.startswith(b"NSpid:"):
                    return int(line.split()[-1])
    except (OSError, ValueError):
        pass
    return None


def _inside(path: str, roots: tuple[str, ...]) -> bool:
    return any(path == r or path.startswith(r if r.endswith("/") else r + "/") for r in roots)


def _above(path: str, roots: tuple[str, ...]) -> bool:
    """Whether ``path`` is a directory on the way to one of ``roots``."""
    prefix = path if path.endswith("/") else path + "/"
    return any(r.startswith(prefix) for r in roots)


class Decisions(Watchdog):
    """The tracer's side of a run: ptrace stops and the decisions at them."""

    def __init__(self, spawner: Spawner, request: dict, fds: list[int]) -> None:
        super().__init__(spawner, request, fds)
        #: the virtual clock (ns) and the state of its pseudo-random
        #: sequence of fake_time; see _fake_clock()
        self.fake_ns = 0
        self.fake_state = FAKE_TIME_SEED
        if self.fake_time == "random":
            self.fake_ns = self._fake_random() % FAKE_TIME_START_RANGE
        #: what decides a traced call, by its Stop (made once per run, not per stop)
        self.deciders = {
            Stop.OPEN: self._decide_open,
            Stop.PATH_QUERY: self._decide_path_query,
            Stop.EXEC: self._decide_exec,
            Stop.CLONE: self._decide_clone,
            Stop.SIGNAL: self._decide_signal,
            Stop.MEMORY: self._decide_memory,
            Stop.SETFL: self._decide_setfl,
            Stop.CLOCK: self._decide_clock,
        }

    def _cont(self, tid: int, sig: int = 0) -> None:
        try:
            L.ptrace(L.PTRACE_CONT, tid, 0, sig)
        except OSError:  # it died meanwhile (e.g. SIGKILL)
            pass

    def _on_stop(self, tid: int, status: int) -> None:
        event = status >> 16
        sig = os.WSTOPSIG(status)
        if tid not in self.tids:
            self.tids.add(tid)  # a new thread's first stop may precede its clone event
        if event != L.PTRACE_EVENT_CLONE:
            # Its clone call (if any) has returned: no longer in flight.
            self.pending_clones.discard(tid)
        if event == L.PTRACE_EVENT_SECCOMP:
            self._on_seccomp(tid)
        elif event == L.PTRACE_EVENT_EXEC:
            self._on_exec(tid)
        elif event == L.PTRACE_EVENT_EXIT:
            self._sample_memory(tid)
            self._cont(tid)
        elif event == L.PTRACE_EVENT_CLONE:
            try:
                self.tids.add(L.get_event_msg(tid))
            except OSError:
                pass
            self.pending_clones.discard(tid)
            self._cont(tid)
        elif event in (L.PTRACE_EVENT_FORK, L.PTRACE_EVENT_VFORK):
            # Cannot happen (the filter stops every fork first); if it ever
            # does, the new process is traced and killed with the rest.
            try:
                self.tids.add(L.get_event_msg(tid))
            except OSError:
                pass
            self._violate("fork")
        elif (event == 0 and sig == signal.SIGSEGV and self.fake_time != "off"
              and self._emulate_tsc(tid)):
            pass  # an RDTSC/RDTSCP, answered
        elif event == L.PTRACE_EVENT_STOP:
            # A new thread's initial stop, or a group-stop (SIGSTOP to
            # itself): keep it running; a stopped program would only wait for
            # the wall-time limit.
            self._cont(tid)
        else:
            # A signal for the program: deliver it.
            self._cont(tid, sig)

    def _on_exec(self, tid: int) -> None:
        if self.exec_time is None:
            # The watchdog's first memory sample comes 50 ms from now, not at
            # once: a program just exec'd has nothing to measure yet, and
            # reading /proc here would delay its start (same CPU).
            self.exec_time = self.last_memory_sample = time.monotonic()
            # CPU time spent before this point was the spawner's set-up in
            # the child, not the program's: subtracted from its time.
            self.exec_cpu_ns = self.last_cpu_ns = self._cpu_now()
            if self.fake_time != "off" and not self._hide_vdso(tid):
                # Cannot: the program would read real time through the
                # vDSO. Say so rather than judge it on that.
                self.system_error = "fake_time: cannot hide the vDSO from the program"
                self._kill(SYSCALL)
                return
        self._cont(tid)

    # --- decisions ------------------------------------------------------------

    def _on_seccomp(self, tid: int) -> None:
        try:
            stop = L.get_event_msg(tid) & 0xFFFF
            regs = L.get_regs(tid)
        except OSError:
            return  # killed meanwhile
        if self.exec_time is not None:
            self.stops += 1
        nr = regs.orig_rax
        name = NAMES.get(nr, f"syscall {nr}")
        if stop == Stop.FOREIGN_ABI:
            return self._violate(f"i386:{nr}")  # `int 0x80`: a number of another table
        if stop == Stop.X32:
            return self._violate(f"x32:{nr & ~bpf.X32_SYSCALL_BIT}")
        handler = self.deciders.get(stop)
        decision = handler(tid, name, regs) if handler else ("violate", name)
        kind = decision[0]
        if kind == "allow":
            self._cont(tid)
        elif kind in ("errno", "return", "args"):
            if kind == "args":
                # The call goes ahead with changed arguments (the kernel
                # runs the filter again on them).
                for i, value in decision[1].items():
                    setattr(regs, _ARG_REGS[i], value)
            else:
                # Skip the call (nr -1); it returns the value, or -errno.
                regs.orig_rax = _U64_MASK
                regs.rax = (-decision[1] if kind == "errno" else decision[1]) & _U64_MASK
            try:
                L.set_regs(tid, regs)
            except OSError:
                return  # killed meanwhile
            self._cont(tid)
        elif kind == "memory":
            self.mem_peak_kib = max(self.mem_peak_kib, decision[1])
            self._kill(MEMORY)
        else:
            self._violate(decision[1])

    def _path(self, tid: int, dirfd: int, address: int) -> str | int:
        """The absolute, symlink-resolved path a call would open, or an errno."""
        try:
            raw = L.read_c_string(tid, address)
        except OSError:
            return errno.EFAULT
        if raw is None:
            return errno.ENAMETOOLONG
        path = os.fsdecode(raw)
        if not path:
            return errno.ENOENT
        if not path.startswith("/"):
            dirfd = _signed32(dirfd)
            link = f"/proc/{tid}/cwd" if dirfd == AT_FDCWD else f"/proc/{tid}/fd/{dirfd}"
            try:
                base = os.readlink(link)
            except OSError:
                return errno.EBADF
            root = self.view_root
            if root is not None and (base == root or base.startswith(root + "/")):
                base = base[len(root):] or "/"  # as the program names it
            path = base + "/" + path
        # "self" in the program's paths is the program, not us.
        for alias in ("/proc/self", "/proc/thread-self"):
            if path == alias or path.startswith(alias + "/"):
                target = str(self.leader) if alias == "/proc/self" else f"{self.leader}/task/{tid}"
                path = "/proc/" + target + path[len(alias):]
        if self.view_root is not None:
            # The program's world is the view: what a path names there is
            # the kernel's business (it exists there or not, Landlock lets
            # it be read or not). The tracer only gives the verdict, from
            # the path as named; no resolution on the host, whose files the
            # name may not even mean.
            path = os.path.normpath(path)
            return "/" + path.lstrip("/")
        return os.path.realpath(path)

    def _decide_open(self, tid: int, name: str, regs: L.Regs) -> tuple:
        if name == "openat":
            dirfd, address, flags = regs.arg(0), regs.arg(1), regs.arg(2)
        elif name == "open":
            dirfd, address, flags = AT_FDCWD, regs.arg(0), regs.arg(1)
        else:  # creat
            dirfd, address = AT_FDCWD, regs.arg(0)
            flags = os.O_CREAT | os.O_WRONLY | os.O_TRUNC
        path = self._path(tid, dirfd, address)
        if isinstance(path, int):
            return ("errno", path)
        writes = (flags & os.O_ACCMODE) != os.O_RDONLY or flags & (os.O_CREAT | os.O_TRUNC)
        if _inside(path, self.read_roots):
            return ("errno", errno.EACCES) if writes else ("allow",)
        if self.allow_local_open or self.quiet_denials:
            # SIO2 local-open mode (or a runtime's probing): anything else is
            # an error the program sees.
            return ("errno", errno.EACCES)
        return ("violate", name)

    def _decide_path_query(self, tid: int, name: str, regs: L.Regs) -> tuple:
        if name in ("stat", "lstat", "access", "readlink"):
            dirfd, address = AT_FDCWD, regs.arg(0)
        else:
            dirfd, address = regs.arg(0), regs.arg(1)
        try:
            raw = L.read_c_string(tid, address)
        except OSError:
            return ("errno", errno.EFAULT)
        if raw == b"" and name in ("newfstatat", "statx"):
            return ("allow",)  # fstat() of an open descriptor (AT_EMPTY_PATH)
        if raw == b"/proc/self/exe" and name in ("readlink", "readlinkat"):
            return ("allow",)  # static glibc asks where it lives
        path = self._path(tid, dirfd, address)
        if isinstance(path, int):
            return ("errno", path)
        if _inside(path, self.read_roots) or _above(path, self.read_roots):
            # The directories above an allowed path too: realpath() looks at
            # each of them (a runtime finding its home from /proc/self/exe).
            return ("allow",)
        # Not a violation: only whether something exists would leak.
        return ("errno", errno.EACCES)

    def _decide_exec(self, tid: int, name: str, regs: L.Regs) -> tuple:
        if self.exec_time is None and not self.exec_allowed:
            self.exec_allowed = True
            return ("allow",)  # ours: the child becoming the program
        return ("violate", name)

    def _decide_clone(self, tid: int, name: str, regs: L.Regs) -> tuple:
        flags = regs.arg(0)
        if flags & THREAD_FLAGS != THREAD_FLAGS or flags & CLONE_FORBIDDEN:
            return ("violate", name)  # a new process, or a thread escaping control
        if len(self.tids) + len(self.pending_clones) >= self.max_threads:
            return ("violate", name)
        self.pending_clones.add(tid)
        return ("allow",)

    def _own_ids(self) -> tuple[int, set[int]]:
        """The program's pid and thread ids as it names them: in its own
        PID namespace (with the view), as read from /proc (signals are rare
        enough for that)."""
        if self.view_root is None:
            return self.leader, self.tids
        ids = {n for n in map(_ns_pid, self.tids) if n is not None}
        return _ns_pid(self.leader) or 0, ids

    def _decide_signal(self, tid: int, name: str, regs: L.Regs) -> tuple:
        a0, a1 = _signed32(regs.arg(0)), _signed32(regs.arg(1))
        leader, tids = self._own_ids()
        own = {
            "kill": a0 in (leader, 0, -leader),  # itself or its own group
            "tkill": a0 in tids,
            "tgkill": a0 == leader and a1 in tids,
            "rt_sigqueueinfo": a0 == leader,
            "rt_tgsigqueueinfo": a0 == leader and a1 in tids,
        }.get(name, False)
        return ("allow",) if own else ("violate", name)

    def _decide_setfl(self, tid: int, name: str, regs: L.Regs) -> tuple:
        """fcntl(fd, F_SETFL, flags) without O_APPEND: with it. The output
        is opened for appending; whichever descriptor this is by the time
        the kernel runs the call (another thread may dup2() the output onto
        it meanwhile), the flag stays. On pipes, the input and the other
        descriptors a program has, O_APPEND changes nothing."""
        return ("args", {2: regs.arg(2) | bpf.O_APPEND})

    # --- fake_time ------------------------------------------------------------

    def _fake_random(self) -> int:
        """The next 64-bit value of the run's pseudo-random sequence
        (splitmix64 from a fixed seed: the same sequence in every run)."""
        self.fake_state = state = (self.fake_state + 0x9E3779B97F4A7C15) & _U64_MASK
        z = ((state ^ (state >> 30)) * 0xBF58476D1CE4E5B9) & _U64_MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _U64_MASK
        return z ^ (z >> 31)

    def _fake_clock(self) -> int:
        """The program's virtual time in ns, read once: 0 with "zero"; with
        "random" it moves on by 1 ns to FAKE_TIME_STEP_NS at each read, so
        that a program waiting for time to pass does not wait forever."""
        if self.fake_time == "random" and self.exec_time is not None:
            self.fake_ns += 1 + self._fake_random() % FAKE_TIME_STEP_NS
        return self.fake_ns

    def _decide_clock(self, tid: int, name: str, regs: L.Regs) -> tuple:
        """clock_gettime, gettimeofday, time, times, getrusage with
        fake_time: answered with the virtual clock (every clock id reads
        the same), the call itself never made."""
        ns = self._fake_clock()
        sec, nsec = divmod(ns, 1_000_000_000)
        value = 0
        # (address, bytes, whether a NULL address is EFAULT)
        if name == "clock_gettime":
            clock = _signed32(regs.arg(0))
            if clock >= 0 and (clock > 11 or clock == 10):
                return ("errno", errno.EINVAL)  # no such clock (10: removed)
            writes = [(regs.arg(1), struct.pack("<qq", sec, nsec), True)]
        elif name == "gettimeofday":
            writes = [(regs.arg(0), struct.pack("<qq", sec, nsec // 1000), False),
                      (regs.arg(1), bytes(8), False)]  # struct timezone: UTC
        elif name == "time":
            writes, value = [(regs.arg(0), struct.pack("<q", sec), False)], sec
        elif name == "times":
            value = ns // 10_000_000  # USER_HZ = 100
            writes = [(regs.arg(0), struct.pack("<qqqq", value, 0, 0, 0), False)]
        else:  # getrusage: its user time; the rest reads 0
            writes = [(regs.arg(1), struct.pack("<qq", sec, nsec // 1000) + bytes(128), True)]
        for address, data, required in writes:
            if address == 0:
                if required:
                    return ("errno", errno.EFAULT)
                continue
            try:
                L.write_memory(tid, address, data)
            except OSError:
                return ("errno", errno.EFAULT)
        return ("return", value)

    def _emulate_tsc(self, tid: int) -> bool:
        """At a SIGSEGV of a program under PR_TSC_SIGSEGV: if it is an
        RDTSC (0f 31) or RDTSCP (0f 01 f9), do what it would with the
        virtual clock (edx:eax, and ecx = TSC_AUX 0 for RDTSCP), step over
        it and drop the signal. Any other SIGSEGV is the program's."""
        try:
            regs = L.get_regs(tid)
            code = L.read_memory(tid, regs.rip, 3)
        except OSError:
            return False
        if code[:2] == b"\x0f\x31":
            size = 2
        elif code == b"\x0f\x01\xf9":
            size = 3
            regs.rcx = 0
        else:
            return False
        value = self._fake_clock()
        regs.rax, regs.rdx = value & 0xFFFFFFFF, (value >> 32) & 0xFFFFFFFF
        regs.rip += size
        try:
            L.set_regs(tid, regs)
        except OSError:
            return True  # killed meanwhile
        self._cont(tid)
        return True

    def _hide_vdso(self, tid: int) -> bool:
        """At the program's exec (``tid`` stopped there): make the vDSO
        unreachable, so that every clock read is a system call that the
        filter sends here. Its address is taken out of the auxiliary vector
        (AT_SYSINFO_EHDR becomes AT_IGNORE: the C library then makes real
        calls), and it and its data pages ([vvar], which hold the kernel's
        clock, readable without any call) are unmapped, so that a program
        that searches its memory finds nothing either. False on failure."""
        try:
            if not self._drop_auxv_vdso(tid):
                return False
            with open(f"/proc/{tid}/maps", "rb") as f:
                maps = [line.split() for line in f]
        except (OSError, IndexError, struct.error):
            return False
        ranges = []
        for fields in maps:
            if len(fields) >= 6 and fields[5] in (b"[vvar]", b"[vvar_vclock]", b"[vdso]"):
                lo, hi = (int(x, 16) for x in fields[0].split(b"-"))
                ranges.append((fields[5] == b"[vdso]", lo, hi))
        ranges.sort()  # the data pages first: the vDSO holds the syscall used
        vdso = [r for r in ranges if r[0]]
        if not vdso:
            return True
        try:
            code = L.read_memory(tid, vdso[0][1], vdso[0][2] - vdso[0][1])
            gadget = code.find(b"\x0f\x05")  # a `syscall` instruction
            if gadget < 0:
                return False
            return self._munmap_in(tid, vdso[0][1] + gadget, [(lo, hi) for _, lo, hi in ranges])
        except OSError:
            return False

    @staticmethod
    def _drop_auxv_vdso(tid: int) -> bool:
        """Turn AT_SYSINFO_EHDR into AT_IGNORE in the initial stack of
        ``tid``, at its exec: argc, argv[], NULL, envp[], NULL, auxv."""
        rsp = L.get_regs(tid).rsp
        size = 1 << 14
        while size <= 1 << 20:
            data = L.read_memory(tid, rsp, size)
            words = struct.unpack(f"<{len(data) // 8}Q", data[:len(data) // 8 * 8])
            i = 1 + words[0] + 1
            while i < len(words) and words[i]:
                i += 1
            i += 1
            while i + 1 < len(words) and words[i] != AT_NULL:
                if words[i] == AT_SYSINFO_EHDR:
                    L.write_memory(tid, rsp + 8 * i, struct.pack("<Q", AT_IGNORE))
                    return True
                i += 2
            if i + 1 < len(words) or len(data) < size:
                return True  # no vDSO given
            size *= 4
        return False

    def _munmap_in(self, tid: int, gadget: int, ranges: list[tuple[int, int]]) -> bool:
        """Make ``tid`` (stopped at its exec) call munmap() on each range,
        through the ``syscall`` instruction at ``gadget``, before its first
        instruction, then let it start as it would have."""
        # A single step from the exec stop stops again as the call returns
        # to user space, before the program's first instruction.
        if not self._single_step(tid):
            return False
        saved = L.get_regs(tid)
        for lo, hi in ranges:
            regs = L.Regs.from_buffer_copy(saved)
            regs.rip, regs.rax, regs.orig_rax = gadget, NUMBERS_MUNMAP, (1 << 64) - 1
            regs.rdi, regs.rsi = lo, hi - lo
            L.set_regs(tid, regs)
            if not self._single_step(tid) or L.get_regs(tid).rax != 0:
                return False
        L.set_regs(tid, saved)
        return True

    def _single_step(self, tid: int) -> bool:
        """One PTRACE_SINGLESTEP of ``tid``, waited for: True when it stopped
        with its SIGTRAP."""
        L.ptrace(L.PTRACE_SINGLESTEP, tid, 0, 0)
        pid, status, ru = os.wait4(tid, WALL)
        if not os.WIFSTOPPED(status):
            self.tids.discard(pid)
            if pid == self.leader:
                self.leader_status, self.rusage = status, ru
                self.end_time = time.monotonic()
            return False
        # Anything but the step's SIGTRAP (a group-stop, another signal) is
        # not waited out here: the caller gives up.
        return os.WSTOPSIG(status) == signal.SIGTRAP and status >> 16 == 0

    def _decide_memory(self, tid: int, name: str, regs: L.Regs) -> tuple:
        if self.mem_limit_kib is None:
            return ("allow",)
        if name == "mmap":
            if regs.arg(3) & MAP_FIXED:
                return ("allow",)  # replaces a mapping it has; RLIMIT_AS decides
            grow = regs.arg(1)
        else:  # mremap(old, old_len, new_len, ...)
            grow = regs.arg(2) - regs.arg(1)
        if grow <= 0:
            return ("allow",)
        size_kib = _proc_status(tid).get("VmSize")
        if size_kib is None:
            return ("allow",)
        would_be = size_kib + (grow + 1023) // 1024
        if would_be > self.mem_limit_kib:
            # The mapping would take the program over its limit; under
            # RLIMIT_AS it would fail and the program would crash (RE) or
            # limp on. Its memory use is what it asked for: MLE now.
            return ("memory", would_be)
        return ("allow",)
