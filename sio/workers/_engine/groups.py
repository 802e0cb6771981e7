"""Multi-process mechanism (private): resource groups with joint limits, PID
namespaces, private mount namespaces, and the ``nsexec`` helper that puts one
process into them.

Used by :mod:`sio.workflows` (SIO3 execution tasks). The rest of the engine
does not depend on this module; it knows nothing of environs or workflows.

* :class:`ResourceGroup` is one cgroup (v1: ``memory``, ``pids``,
  ``cpuacct``, ``cpu`` controllers) per group of processes whose limits apply
  **jointly**: memory (``memory.limit_in_bytes``, swap through
  ``memory.memsw``), number of tasks (``pids.max``), and CPU time summed over
  the group (``cpuacct.usage``, enforced by :meth:`ResourceGroup.check`
  called by the caller's watchdog), CPU bandwidth (``cpu`` controller,
  ``cpu.cfs_quota_us``).
  We are root, so cgroups are created directly under each controller's
  mount. :meth:`ResourceGroup.acquire` / :meth:`ResourceGroup.release` keep
  idle groups in a small pool (counters reset, limits rewritten only when
  they change): making and removing four cgroups costs about as much as
  running a small program. While groups are in use, a keep-alive keeps
  cgroup migration cheap (see :class:`_KeepAlive`). Pooled groups are removed
  at exit; those of a worker that could not (killed, or a pool process
  ended by ``os._exit``) are removed by the next process that uses groups
  (each group's name holds its owner's pid).
* :class:`PidNamespace` holds a PID namespace open: a tiny init (``nsexec
  -H``) is its PID 1 and reaps orphans, so that a process that ends does not
  take the namespace (and processes started after it) down with it.
* :func:`nsexec_argv` builds the argv that starts one program through
  ``nsexec`` (``nsexec.c`` beside this file, built once per machine like
  ``limitexec``): joins cgroups and a PID namespace, creates a mount
  namespace with a read-only tmpfs root and the given bind mounts and
  tmpfses, new network/IPC/UTS namespaces, drops to an unprivileged uid,
  sets ``no_new_privs``, places descriptors at the wanted numbers.

Settings: ``SIO_CGROUP_ROOT`` (default ``/sys/fs/cgroup``) where the v1
controllers are mounted.
"""

from __future__ import annotations

import atexit
import ctypes
import ctypes.util
import os
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from sio.workers._engine import build

__all__ = ["GroupLimits", "GroupUsage", "ResourceGroup", "PidNamespace", "Mount", "nsexec_path",
           "nsexec_argv", "mount_tmpfs", "unmount", "GroupUnavailable"]

_SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "nsexec.c")
_lock = threading.Lock()
_helper: list[str | None] = []

#: How often (seconds) the CPU time of a group with a time limit is checked.
CPU_CHECK_INTERVAL_S = 0.025


class GroupUnavailable(RuntimeError):
    """This machine cannot give joint limits or namespaces (no cgroup v1
    controllers, not root, no C compiler for ``nsexec``); the message says
    what is missing."""


def nsexec_path() -> str:
    """Path of the compiled ``nsexec`` helper (built on first use).

    :raises GroupUnavailable: when it cannot be built.
    """
    if not _helper:
        with _lock:
            if not _helper:
                _helper.append(build.find_or_build(
                    "nsexec", _SOURCE, (["-O2", "-static"], ["-O2"]),
                    "multi-process tasks cannot run"))
    if _helper[0] is None:
        raise GroupUnavailable("the nsexec helper cannot be built (is a C compiler installed?)")
    return _helper[0]


def _cgroup_root() -> str:
    return os.environ.get("SIO_CGROUP_ROOT", "/sys/fs/cgroup")


@dataclass(frozen=True)
class GroupLimits:
    """Joint limits of a resource group; ``None`` = no limit."""

    cpu_time_ms: int | None = None
    memory_bytes: int | None = None
    #: memory + swap; ``None`` or equal to ``memory_bytes`` means no swap
    memory_swap_bytes: int | None = None
    #: processes and threads alive at once
    pids: int | None = None
    #: CPU bandwidth in % of one CPU (CFS quota), e.g. 50.0 = half a CPU
    cpu_percent: float | None = None


class _KeepAlive:
    """Keeps cgroup migration cheap while resource groups are in use.

    A program joins its cgroups by writing its pid to ``cgroup.procs``. In
    cgroup v1 every such write takes a lock that, when none was taken for a
    while, first waits for an RCU grace period: 1-15 ms on these machines,
    more than the program itself. While groups are in use (and
    :data:`KEEPALIVE_LINGER_S` after), a thread re-writes the pid of an idle
    process of ours into the cgroup it is already in, every
    ``SIO_CGROUP_KEEPALIVE_MS`` (default 5; 0 turns this off), so the lock
    stays in its fast mode: what the kernel's ``favordynmods`` option does.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.users = 0
        self.last_use = 0.0
        self.thread: threading.Thread | None = None
        self.idle: subprocess.Popen[bytes] | None = None

    def enter(self) -> None:
        interval_ms = int(os.environ.get("SIO_CGROUP_KEEPALIVE_MS", "5"))
        with self.lock:
            self.users += 1
            if interval_ms <= 0 or (self.thread is not None and self.thread.is_alive()):
                return
            if self.idle is None or self.idle.poll() is not None:
                self.idle = subprocess.Popen(["sleep", "infinity"], stdin=subprocess.DEVNULL,
                                             stdout=subprocess.DEVNULL, close_fds=True,
                                             start_new_session=True)
            self.thread = threading.Thread(target=self._run, args=(interval_ms / 1000,),
                                           name="cgroup-keepalive", daemon=True)
            self.thread.start()

    def exit(self) -> None:
        with self.lock:
            self.users -= 1
            self.last_use = time.monotonic()

    def _run(self, interval: float) -> None:
        idle = self.idle
        assert idle is not None
        path = os.path.join(_cgroup_root(), "pids", "cgroup.procs")
        try:
            with open(f"/proc/{idle.pid}/cgroup") as f:
                for line in f:
                    _, controllers, where = line.strip().split(":", 2)
                    if "pids" in controllers.split(","):
                        path = os.path.join(_cgroup_root(), "pids", where.lstrip("/"),
                                            "cgroup.procs")
        except (OSError, ValueError):
            return
        while True:
            with self.lock:
                if self.users == 0 and time.monotonic() - self.last_use > KEEPALIVE_LINGER_S:
                    self.thread = None
                    return
            try:
                with open(path, "w") as f:
                    f.write(str(idle.pid))
            except OSError:
                return
            time.sleep(interval)

    def close(self) -> None:
        if self.idle is not None:
            self.idle.kill()
            self.idle.wait()
            self.idle = None


#: how long (seconds) the keep-alive runs after the last group was released
KEEPALIVE_LINGER_S = 2.0
_keepalive = _KeepAlive()


@atexit.register
def _close_keepalive() -> None:
    _keepalive.close()  # this process's (a forked child has its own)

_swept: list[bool] = []


def _sweep_orphans() -> None:
    """Once per process: remove the empty groups of workers that are gone
    (their pid, in the group's name, is not a live process)."""
    if _swept:
        return
    _swept.append(True)
    base = os.path.join(_cgroup_root(), ResourceGroup.CONTROLLERS[0])
    try:
        names = [n for n in os.listdir(base) if n.startswith("sioworkers-")]
    except OSError:
        return
    for name in names:
        try:
            owner = int(name.split("-")[1])
            os.kill(owner, 0)
            continue  # alive (or not ours to judge)
        except (ValueError, IndexError):
            continue
        except PermissionError:
            continue
        except ProcessLookupError:
            pass
        for controller in reversed(ResourceGroup.CONTROLLERS):
            try:
                os.rmdir(os.path.join(_cgroup_root(), controller, name))
            except OSError:
                pass  # not empty (still in use after all), or gone


@dataclass(frozen=True)
class GroupUsage:
    """What a resource group used, and which limits it hit."""

    cpu_time_ms: int
    memory_peak_bytes: int
    #: the OOM killer acted, or the usage reached the limit
    memory_limit_hit: bool
    #: a fork or clone was refused at ``pids.max``
    pids_limit_hit: bool
    #: why we killed it (see :attr:`ResourceGroup.killed`)
    killed: str | None


_pool_lock = threading.Lock()
_pool: list["ResourceGroup"] = []
_POOL_SIZE = 16


@atexit.register
def _remove_pooled() -> None:
    with _pool_lock:
        groups, _pool[:] = list(_pool), []
    for group in groups:
        group.close()


def _forget_pool_in_child() -> None:
    # A forked worker (Celery's pool) must not share the parent's idle groups.
    global _pool_lock, _keepalive
    _pool_lock = threading.Lock()
    _pool.clear()
    _keepalive = _KeepAlive()
    _swept.clear()


os.register_at_fork(after_in_child=_forget_pool_in_child)


class ResourceGroup:
    """One cgroup per controller (memory, pids, cpuacct) for a set of
    processes. Processes join it through ``nsexec -C`` (see
    :attr:`directories`)."""

    CONTROLLERS = ("memory", "pids", "cpuacct", "cpu")

    def __init__(self, limits: GroupLimits) -> None:
        # The owner's pid in the name: a group of a worker that died without
        # removing its pool (killed, or a pool process ended by os._exit)
        # is removed by the next worker that starts (see _sweep_orphans).
        self.name = f"sioworkers-{os.getpid()}-{uuid.uuid4().hex[:12]}"
        #: the limits written to the cgroup files (None: unknown)
        self._applied: GroupLimits | None = None
        root = _cgroup_root()
        self.directories: list[str] = []
        try:
            for controller in self.CONTROLLERS:
                base = os.path.join(root, controller)
                if not os.path.isdir(base):
                    raise GroupUnavailable(f"cgroup v1 controller {controller!r} is not mounted "
                                           f"at {base}")
                path = os.path.join(base, self.name)
                os.mkdir(path)
                self.directories.append(path)
            self._memory, self._pids, self._cpu, self._cfs = self.directories
            self._set(limits)
        except OSError as e:
            self.close()
            raise GroupUnavailable(f"cannot create cgroup {self.name}: {e}") from e
        except BaseException:
            self.close()
            raise

    def _set(self, limits: GroupLimits) -> None:
        """Apply ``limits`` and start counting afresh."""
        self.limits = limits
        #: why the group was killed by us: "time", "memory", "pids", or an
        #: outside reason given to :meth:`kill`
        self.killed: str | None = None
        # Counters that cannot be reset are remembered, and only what comes
        # after counts.
        self._pids_events = self._pids_max_events()
        self._oom_kills = self._oom_kill_count()
        usage = self._read(self._memory, "memory.usage_in_bytes").strip()
        self._memory_base = int(usage) if usage else 0
        if self._applied == limits:
            return  # a pooled group used with the same limits as last time
        self._applied = None
        # memory+swap first unlimited: the limit may be raised or lowered,
        # and the kernel refuses memsw below the memory limit at any moment.
        self._write_quietly(self._memory, "memory.memsw.limit_in_bytes", -1)
        self._write(self._memory, "memory.limit_in_bytes",
                    -1 if limits.memory_bytes is None else limits.memory_bytes)
        if limits.memory_bytes is not None:
            swap = limits.memory_swap_bytes
            if swap is None or swap < limits.memory_bytes:
                swap = limits.memory_bytes
            # Not every kernel accounts swap: then there is none to limit.
            self._write_quietly(self._memory, "memory.memsw.limit_in_bytes", swap)
        self._write(self._pids, "pids.max", "max" if limits.pids is None else limits.pids)
        self._write(self._cfs, "cpu.cfs_period_us", 100000)
        self._write(self._cfs, "cpu.cfs_quota_us", -1 if limits.cpu_percent is None
                    else max(1000, int(limits.cpu_percent * 1000)))
        self._applied = limits

    def _reset(self) -> None:
        """Forget what the last user did (all its processes are gone)."""
        # What the last processes left charged (page cache of the files
        # they wrote) stays: reclaiming it (memory.force_empty) costs tens of
        # milliseconds. It is reclaimable, so it never makes the next user
        # go over its limit, and it is subtracted from the next peak.
        self._write(self._memory, "memory.max_usage_in_bytes", 0)
        self._write(self._memory, "memory.failcnt", 0)
        self._write(self._cpu, "cpuacct.usage", 0)

    @staticmethod
    def _write_quietly(directory: str, name: str, value: object) -> None:
        try:
            ResourceGroup._write(directory, name, value)
        except OSError:
            pass

    def _pids_max_events(self) -> int:
        events = self._read(self._pids, "pids.events").split()
        return int(events[1]) if len(events) == 2 else 0

    def _oom_kill_count(self) -> int:
        for line in self._read(self._memory, "memory.oom_control").splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill" and value.strip():
                return int(value)
        return 0

    @classmethod
    def acquire(cls, limits: GroupLimits) -> ResourceGroup:
        """A group with ``limits``: an idle one from the pool (cgroups are
        kept between tasks: creating and removing four of them costs about
        as much as running a small program), or a new one."""
        _sweep_orphans()
        _keepalive.enter()
        try:
            with _pool_lock:
                # One last used with the same limits needs no writes; while
                # the pool is not full, a new one is made rather than one
                # rewritten, so that tasks with alternating limits (a run,
                # then a checker) each find theirs.
                same = [g for g in _pool if g._applied == limits]
                if same:
                    group: ResourceGroup | None = same[-1]
                elif _pool and len(_pool) >= _POOL_SIZE // 2:
                    group = _pool[0]
                else:
                    group = None
                if group is not None:
                    _pool.remove(group)
            if group is None:
                return cls(limits)
            try:
                group._set(limits)
            except OSError:
                group.close()
                return cls(limits)
            return group
        except BaseException:
            _keepalive.exit()
            raise

    def release(self) -> None:
        """Kill what is left and give the group back to the pool (or remove
        it when the pool is full or it cannot be reset). Only for groups
        from :meth:`acquire`."""
        _keepalive.exit()
        self.kill()
        if not self.directories:
            return
        try:
            if self.pids():
                raise OSError("processes left")
            self._reset()
        except OSError:
            self.close()
            return
        with _pool_lock:
            if len(_pool) < _POOL_SIZE:
                _pool.append(self)
                return
        self.close()

    @staticmethod
    def _write(directory: str, name: str, value: object) -> None:
        with open(os.path.join(directory, name), "w") as f:
            f.write(str(value))

    @staticmethod
    def _read(directory: str, name: str) -> str:
        try:
            with open(os.path.join(directory, name)) as f:
                return f.read()
        except OSError:
            return ""

    def cpu_time_ms(self) -> int:
        """CPU time (user + system) used by the group so far."""
        value = self._read(self._cpu, "cpuacct.usage").strip()
        return int(value) // 1_000_000 if value else 0

    def memory_peak_bytes(self) -> int:
        """Peak memory charged to the group (processes, kernel memory,
        page cache of files written) since it was last set up, less what an
        earlier user left charged."""
        value = self._read(self._memory, "memory.max_usage_in_bytes").strip()
        return max(0, int(value) - self._memory_base) if value else 0

    def oom_killed(self) -> bool:
        """The kernel's OOM killer acted inside the group (it went over the
        memory limit)."""
        return self._oom_kill_count() > self._oom_kills

    @property
    def joined(self) -> list[str]:
        """The cgroups a program joins (``nsexec -C``): memory first (see
        :meth:`pids`), the ``cpu`` one only when it has a quota (one
        write less per program)."""
        if self._applied is not None and self._applied.cpu_percent is None:
            return self.directories[:3]
        return self.directories

    def usage(self) -> GroupUsage:
        """What the group used and hit, read once."""
        return GroupUsage(cpu_time_ms=self.cpu_time_ms(),
                          memory_peak_bytes=self.memory_peak_bytes(),
                          memory_limit_hit=self.memory_limit_hit(),
                          pids_limit_hit=self.pids_limit_hit(), killed=self.killed)

    def memory_limit_hit(self) -> bool:
        if self.limits.memory_bytes is None:
            return False
        failcnt = self._read(self._memory, "memory.failcnt").strip()
        return self.oom_killed() or (failcnt not in ("", "0")
                                     and self.memory_peak_bytes() >= self.limits.memory_bytes)

    def pids_limit_hit(self) -> bool:
        return self._pids_max_events() > self._pids_events

    def pids(self) -> list[int]:
        """The processes of the group. A program joins the memory cgroup
        first (see ``nsexec -C``), so that one lists every member."""
        if not self.directories:
            return []
        return sorted(int(p) for p in self._read(self._memory, "cgroup.procs").split())

    def kill(self, reason: str | None = None) -> None:
        """SIGKILL every process of the group (repeated until none is left
        or a short while passed: a process may be forking meanwhile)."""
        if reason is not None and self.killed is None:
            self.killed = reason
        for _ in range(50):
            pids = self.pids()
            if not pids:
                return
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.002)

    def check(self) -> bool:
        """Enforce the CPU time limit once; True when the group was killed."""
        limit = self.limits.cpu_time_ms
        if limit is not None and self.killed is None and self.cpu_time_ms() >= limit:
            self.kill("time")
            return True
        return False

    def close(self) -> None:
        """Kill what is left and remove the cgroups."""
        if self.directories:
            self.kill()
        for directory in reversed(self.directories):
            for _ in range(100):
                try:
                    os.rmdir(directory)
                    break
                except FileNotFoundError:
                    break
                except OSError:  # EBUSY: a killed process not yet gone
                    time.sleep(0.005)
        self.directories = []


class PidNamespace:
    """A PID namespace kept alive by a reaper init; processes join it with
    ``nsexec -P`` :attr:`path`. :meth:`close` kills the init, and with it
    every process of the namespace.

    With ``network``, the init also holds new network, IPC and UTS
    namespaces, which processes join with ``nsexec -J`` :attr:`init_pid`
    (creating a network namespace costs milliseconds; joining one does not).
    """

    def __init__(self, network: bool = False) -> None:
        self._holder = subprocess.Popen([nsexec_path(), "-H", *(["-N"] if network else [])],
                                        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, close_fds=True)
        assert self._holder.stdout is not None
        line = self._holder.stdout.readline()
        try:
            self.init_pid = int(line)
        except ValueError:
            err = self._holder.stderr.read().decode(errors="replace") \
                if self._holder.stderr else ""
            self._holder.wait()
            raise GroupUnavailable(f"cannot create a PID namespace: {err.strip()}") from None
        self.path = f"/proc/{self.init_pid}/ns/pid"

    def close(self) -> None:
        try:
            os.kill(self.init_pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self._holder.wait()
        for stream in (self._holder.stdout, self._holder.stderr):
            if stream is not None:
                stream.close()


@dataclass(frozen=True)
class Mount:
    """One mount of a private mount namespace: a bind mount of ``source``
    (a host file or directory), or a fresh tmpfs when ``source`` is None."""

    target: str
    source: str | None
    writable: bool = False
    #: tmpfs size (0 = the kernel's default)
    tmpfs_bytes: int = 0


def nsexec_argv(argv: Sequence[str], *, cgroups: Sequence[str] = (),
                pid_namespace: str | None = None, own_pid_namespace: bool = False,
                network_of: int | None = None, isolate_network: bool = False,
                root_dir: str | None = None, mounts: Sequence[Mount] = (),
                links: Sequence[tuple[str, str]] = (), devices: bool = False, cwd: str = "/",
                user: tuple[int, int] | None = None,
                fds: dict[int, int] | None = None) -> list[str]:
    """The argv that runs ``argv`` through ``nsexec`` (see its header for
    the options).

    :param pid_namespace: join this PID namespace (``PidNamespace.path``);
    :param own_pid_namespace: or create one for this program alone;
    :param network_of: join the network/IPC/UTS namespaces of this holder
        (``PidNamespace(network=True).init_pid``);
    :param isolate_network: or create new ones (costs milliseconds);
    :param root_dir: an empty host directory on which the new root is
        mounted (None: no mount namespace), with ``mounts``, symbolic
        ``links`` (path, target) and, with ``devices``, the device nodes
        null, zero, random, urandom;
    :param fds: maps the caller's descriptors (passed to the child) to the
        numbers the program sees.
    """
    args = [nsexec_path()]
    for directory in cgroups:
        args += ["-C", directory]
    if pid_namespace is not None:
        args += ["-P", pid_namespace]
    elif own_pid_namespace:
        args.append("-p")
    if network_of is not None:
        args += ["-J", str(network_of)]
    elif isolate_network:
        args.append("-N")
    if root_dir is not None:
        args += ["-R", root_dir]
        for m in mounts:
            if ":" in m.target or (m.source is not None and ":" in m.source):
                raise ValueError(f"mount paths cannot contain ':': {m.target!r}")
            if m.source is None:
                args += ["-T", f"{m.target}:{m.tmpfs_bytes}"]
            else:
                args += ["-B", f"{m.source}:{m.target}:{'w' if m.writable else 'r'}"]
        for link, target in links:
            args += ["-S", f"{link}:{target}"]
        if devices:
            args.append("-V")
    args += ["-D", cwd]
    if user is not None:
        args += ["-U", f"{user[0]}:{user[1]}"]
    for src, dst in (fds or {}).items():
        args += ["-F", f"{src}:{dst}"]
    return [*args, "--", *argv]


_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def mount_tmpfs(path: str, size_bytes: int) -> None:
    """Mount a tmpfs of ``size_bytes`` (0 = kernel default) on ``path`` in
    this (the worker's) mount namespace, so that every process of a task
    shares it; :func:`unmount` it when the task ends."""
    opts = f"size={size_bytes},mode=1777" if size_bytes else "mode=1777"
    if _libc.mount(b"none", os.fsencode(path), b"tmpfs", 0, opts.encode()) != 0:
        err = ctypes.get_errno()
        raise GroupUnavailable(f"cannot mount a tmpfs on {path}: {os.strerror(err)}")


def unmount(path: str) -> None:
    # MNT_DETACH: a process still holding a file there must not keep the
    # mount (and our clean-up) hanging.
    _libc.umount2(os.fsencode(path), 2)
