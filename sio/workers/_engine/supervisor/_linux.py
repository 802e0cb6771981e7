"""Thin ctypes bindings to the Linux calls the supervisor needs (x86-64 only).

Only what Python's :mod:`os` lacks in 3.11: ptrace, prctl, seccomp,
landlock, unshare, process_vm_readv, signalfd, execveat. Every wrapper raises
:class:`OSError` with the errno on failure.
"""

from __future__ import annotations

import ctypes
import os
import struct

from sio.workers._engine.supervisor._syscalls import NUMBERS as NR

libc = ctypes.CDLL(None, use_errno=True)

_syscall = libc.syscall
_syscall.restype = ctypes.c_long


def _check(result: int) -> int:
    if result == -1:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return result


def syscall(name: str, *args: object) -> int:
    """Call a raw system call by name (arguments: ints, bytes, None, or ctypes
    objects and references)."""
    conv = [ctypes.c_long(a) if isinstance(a, int) else a for a in args]
    return _check(_syscall(ctypes.c_long(NR[name]), *conv))


# --- ptrace ---------------------------------------------------------------

PTRACE_POKEDATA = 5
PTRACE_CONT = 7
PTRACE_SINGLESTEP = 9
PTRACE_GETREGS = 12
PTRACE_SETREGS = 13
PTRACE_SETOPTIONS = 0x4200
PTRACE_GETEVENTMSG = 0x4201
PTRACE_SEIZE = 0x4206

PTRACE_O_TRACEFORK = 0x02
PTRACE_O_TRACEVFORK = 0x04
PTRACE_O_TRACECLONE = 0x08
PTRACE_O_TRACEEXEC = 0x10
PTRACE_O_TRACEEXIT = 0x40
PTRACE_O_TRACESECCOMP = 0x80
PTRACE_O_EXITKILL = 0x100000

PTRACE_EVENT_FORK = 1
PTRACE_EVENT_VFORK = 2
PTRACE_EVENT_CLONE = 3
PTRACE_EVENT_EXEC = 4
PTRACE_EVENT_EXIT = 6
PTRACE_EVENT_SECCOMP = 7
PTRACE_EVENT_STOP = 128

_ptrace = libc.ptrace
_ptrace.restype = ctypes.c_long
_ptrace.argtypes = [ctypes.c_long, ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p]


def ptrace(request: int, pid: int, addr: int = 0, data: int | ctypes.c_void_p | None = 0) -> int:
    return _check(_ptrace(request, pid, addr, data))


class Regs(ctypes.Structure):
    """``struct user_regs_struct`` of x86-64."""

    _fields_ = [(n, ctypes.c_ulonglong) for n in (
        "r15", "r14", "r13", "r12", "rbp", "rbx", "r11", "r10", "r9", "r8", "rax", "rcx",
        "rdx", "rsi", "rdi", "orig_rax", "rip", "cs", "eflags", "rsp", "ss", "fs_base",
        "gs_base", "ds", "es", "fs", "gs")]

    def arg(self, i: int) -> int:
        """The i-th system call argument (x86-64 syscall convention)."""
        return (self.rdi, self.rsi, self.rdx, self.r10, self.r8, self.r9)[i]


def get_regs(pid: int) -> Regs:
    regs = Regs()
    ptrace(PTRACE_GETREGS, pid, 0, ctypes.addressof(regs))
    return regs


def set_regs(pid: int, regs: Regs) -> None:
    ptrace(PTRACE_SETREGS, pid, 0, ctypes.addressof(regs))


def get_event_msg(pid: int) -> int:
    msg = ctypes.c_ulong()
    ptrace(PTRACE_GETEVENTMSG, pid, 0, ctypes.addressof(msg))
    return msg.value


# --- prctl, seccomp, landlock, namespaces -----------------------------------

PR_SET_NO_NEW_PRIVS = 38
PR_SET_TSC = 26
PR_TSC_SIGSEGV = 2
PR_SET_CHILD_SUBREAPER = 36

SECCOMP_SET_MODE_FILTER = 1

_prctl = libc.prctl
_prctl.restype = ctypes.c_int
_prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]


def prctl(option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> int:
    return _check(_prctl(option, arg2, arg3, arg4, arg5))


class SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def make_fprog(program: bytes) -> tuple[SockFprog, ctypes.Array]:
    """A ``struct sock_fprog`` for a packed BPF program (keep both objects alive)."""
    buf = ctypes.create_string_buffer(program, len(program))
    return SockFprog(len(program) // 8, ctypes.addressof(buf)), buf


SECCOMP_FILTER_FLAG_SPEC_ALLOW = 1 << 2


def seccomp_set_filter(fprog: SockFprog, spec_allow: bool = False) -> None:
    """Install a filter. ``spec_allow``: do not let the kernel force the
    Speculative Store Bypass mitigation on the task (it slows every program
    down by several percent where the CPU has it; it protects a process from
    itself, and a supervised program is alone in its address space)."""
    if spec_allow:
        try:
            syscall("seccomp", SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_SPEC_ALLOW,
                    ctypes.byref(fprog))
            return
        except OSError as e:
            if e.errno != 22:  # EINVAL: a kernel older than 4.17
                raise
    syscall("seccomp", SECCOMP_SET_MODE_FILTER, 0, ctypes.byref(fprog))


LANDLOCK_CREATE_RULESET_VERSION = 1
LANDLOCK_RULE_PATH_BENEATH = 1
# Landlock filesystem rights, by the ABI version that introduced them.
LL_EXECUTE = 1 << 0
LL_WRITE_FILE = 1 << 1
LL_READ_FILE = 1 << 2
LL_READ_DIR = 1 << 3
LL_FS_V1 = (1 << 13) - 1
LL_REFER = 1 << 13          # ABI 2
LL_TRUNCATE = 1 << 14       # ABI 3
LL_IOCTL_DEV = 1 << 15      # ABI 5
LL_NET_BIND_TCP = 1 << 0    # ABI 4
LL_NET_CONNECT_TCP = 1 << 1
LL_SCOPE_ABSTRACT_UNIX = 1 << 0  # ABI 6
LL_SCOPE_SIGNAL = 1 << 1


class LandlockRulesetAttr(ctypes.Structure):
    _fields_ = [("handled_access_fs", ctypes.c_uint64),
                ("handled_access_net", ctypes.c_uint64),
                ("scoped", ctypes.c_uint64)]


class LandlockPathBeneath(ctypes.Structure):
    _pack_ = 1  # the kernel struct is __attribute__((packed))
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


def landlock_abi() -> int:
    """The Landlock ABI version, 0 when the kernel has none (or it is disabled)."""
    try:
        return syscall("landlock_create_ruleset", None, 0, LANDLOCK_CREATE_RULESET_VERSION)
    except OSError:
        return 0


CLONE_NEWNS = 0x00020000
CLONE_NEWPID = 0x20000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000


def unshare(flags: int) -> None:
    _check(libc.unshare(ctypes.c_int(flags)))


def setns(fd: int, nstype: int) -> None:
    _check(libc.setns(ctypes.c_int(fd), ctypes.c_int(nstype)))


MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MNT_DETACH = 2

_mount = libc.mount
_mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong,
                   ctypes.c_char_p]


def mount(source: str | None, target: str, fstype: str | None, flags: int,
          data: str | None = None) -> None:
    def b(x: str | None) -> bytes | None:
        return None if x is None else os.fsencode(x)

    _check(_mount(b(source), b(target), b(fstype), flags, b(data)))


def umount(target: str, flags: int = MNT_DETACH) -> None:
    _check(libc.umount2(os.fsencode(target), ctypes.c_int(flags)))


# --- memory of another process, signals, exec --------------------------------

class IoVec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]


_pvr = libc.process_vm_readv
_pvr.restype = ctypes.c_ssize_t
_pvr.argtypes = [ctypes.c_int, ctypes.POINTER(IoVec), ctypes.c_ulong,
                 ctypes.POINTER(IoVec), ctypes.c_ulong, ctypes.c_ulong]


def read_memory(pid: int, address: int, size: int) -> bytes:
    """Read up to ``size`` bytes at ``address`` in ``pid``; short at an unmapped page."""
    buf = ctypes.create_string_buffer(size)
    local = IoVec(ctypes.addressof(buf), size)
    remote = IoVec(address, size)
    n = _pvr(pid, ctypes.byref(local), 1, ctypes.byref(remote), 1, 0)
    if n < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return buf.raw[:n]


_pvw = libc.process_vm_writev
_pvw.restype = ctypes.c_ssize_t
_pvw.argtypes = _pvr.argtypes


def write_memory(pid: int, address: int, data: bytes) -> None:
    """Write ``data`` at ``address`` in ``pid`` (OSError EFAULT if any of it
    is not mapped writable)."""
    buf = ctypes.create_string_buffer(data, len(data))
    local = IoVec(ctypes.addressof(buf), len(data))
    remote = IoVec(address, len(data))
    n = _pvw(pid, ctypes.byref(local), 1, ctypes.byref(remote), 1, 0)
    if n < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    if n != len(data):
        raise OSError(14, "bad address")  # EFAULT


def read_c_string(pid: int, address: int, limit: int = 4096) -> bytes | None:
    """The NUL-terminated string at ``address`` in ``pid``; None if it is not
    terminated within ``limit`` bytes. Reads page by page, because a read
    across into an unmapped page fails as a whole."""
    out = b""
    while len(out) < limit:
        chunk = min(4096 - (address % 4096), limit - len(out))
        data = read_memory(pid, address, chunk)
        end = data.find(b"\0")
        if end >= 0:
            return out + data[:end]
        if len(data) < chunk:
            raise OSError(14, "bad address")  # EFAULT
        out += data
        address += chunk
    return None


SFD_NONBLOCK = 0o4000
SFD_CLOEXEC = 0o2000000


def signalfd(signals: list[int]) -> int:
    """A signalfd for ``signals`` (which the caller must block)."""
    mask = ctypes.create_string_buffer(128)  # sigset_t of glibc
    bits = 0
    for s in signals:
        bits |= 1 << (s - 1)
    struct.pack_into("<Q", mask, 0, bits)
    return _check(libc.signalfd(-1, mask, SFD_NONBLOCK | SFD_CLOEXEC))


AT_EMPTY_PATH = 0x1000


def string_array(items: list[bytes]) -> ctypes.Array:
    arr = (ctypes.c_char_p * (len(items) + 1))()
    for i, item in enumerate(items):
        arr[i] = item
    return arr  # the last element stays NULL


_sched_getcpu = libc.sched_getcpu


def current_cpu() -> int:
    return _check(_sched_getcpu())


WALL = 0x40000000  # __WALL: wait for threads (clones) too
#: all ones in 64 bits (registers, RLIM_INFINITY as the kernel sees it)
U64_MASK = (1 << 64) - 1
