"""The spawner: a small process, one per worker process, that starts programs
and supervises them.

Why a separate process: forking the (large, multi-threaded) worker costs up
to ~11 ms per run, inflates the child's system time with the teardown of the
inherited address space and poisons ``ru_maxrss``; a fresh ``python -I -S``
holding only this package's engine forks in well under a millisecond, is
single-threaded (so forking from Python is safe) and can be the ptrace
parent of the program, which the tracer has to be.

The worker talks to it over a private socketpair (:mod:`._wire`): one
request (argv, cwd, env, limits, policy, and the program's stdio descriptors
via SCM_RIGHTS), one answer (the fields of an ``Outcome``). The spawner exits
when the worker closes its end, killing a running program first.

The child that becomes the program is started *ahead* of its run: after
each answer (and once at start-up) the spawner starts a **warm child**, the
**stub** (``execstub.c``, built by the worker, see
``_client.execstub_path``) in its own session with default signals and
only its private socket, through posix_spawn (vfork semantics: no copy of
this interpreter's page tables), which waits on that socket until it gets
a run. Its start then happens while the worker handles the previous
outcome, and at the run the set-up is a few system calls in C from a
process of a few pages. Without the stub (no C compiler) the warm child is
a fork of the spawner that waits in Python and does the same steps itself
(_become_program): correct, ~0.7 ms slower per run.

A run, in order (details at each step below):

1. parent: pick a CPU and pin itself to it, prepare pipes and the Landlock
   ruleset, take the warm child (forking one now if there is none) and
   PTRACE_SEIZE it, then send it the run (parameters and descriptors);
2. child (the stub, or _become_program): pin to the same CPU, stdio, cwd,
   drop to a fresh uid (when root),
   rlimits, no_new_privs, Landlock, seccomp, execveat;
3. parent: the event loop: seccomp TRACE stops (decisions), exec (start the
   clocks), exit events (VmPeak), the watchdog (CPU and wall time) and
   captured output;
4. reap the program and report; fork the next warm child.
"""

from __future__ import annotations

# Only built-in and C modules (and this package's small ones): every module
# the spawner loads makes each fork of it slower (the page tables of its heap
# are copied, then torn down again at exec). `_signal`/`_socket` instead of
# `signal`/`socket` avoids loading enum; no dataclasses, pickle or typing.
import _signal as signal
import _socket
import ctypes
import errno
import fcntl
import marshal
import math
import os
import resource
import select
import stat
import struct
import time

from sio.workers._engine.supervisor import _linux as L
from sio.workers._engine.supervisor import _wire, bpf
from sio.workers._engine.supervisor._checks import probe_here
from sio.workers._engine.supervisor._syscalls import NAMES
from sio.workers._engine.supervisor.bpf import Stop
from sio.workers._engine.supervisor.paths import SYSTEM_READ_PATHS

# Values of sio.workers._engine.types.KillReason (the client converts).
CPU_TIME, WALL_TIME, MEMORY, OUTPUT, SYSCALL = (
    "cpu_time", "wall_time", "memory", "output", "syscall")

WALL = 0x40000000  # __WALL: wait for threads (clones) too
#: Programs of a root spawner run as uid/gid UID_BASE + their pid: unique
#: among live processes, so RLIMIT_NPROC counts exactly one run's tasks and
#: no two runs share a uid. (pid_max <= 2^22 keeps it below 2^31.)
UID_BASE = 2_000_000_000
AT_FDCWD = -100

SEIZE_OPTIONS = (L.PTRACE_O_TRACESECCOMP | L.PTRACE_O_TRACEEXEC | L.PTRACE_O_TRACEEXIT
                 | L.PTRACE_O_TRACECLONE | L.PTRACE_O_TRACEFORK | L.PTRACE_O_TRACEVFORK
                 | L.PTRACE_O_EXITKILL)

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

WATCHDOG_PERIOD = 0.05  # seconds: the longest the watchdog sleeps
#: The most ptrace stops the event loop handles before it looks at the
#: clocks, the worker's socket and the captured output again (it also stops
#: early when a deadline comes): threads that keep a stop always pending
#: must not keep the watchdog from running.
STOPS_PER_TURN = 64
#: seconds: how often an idle spawner checks that its worker is alive
IDLE_CHECK = 0.5
#: the key of the default seccomp filter (see Spawner.seccomp_filter)
NO_EXTRAS: tuple = ((), (), False)
#: what the stub writes on its socket once it runs (see execstub.c)
STUB_READY = b"R"


#: the registers of the system call arguments, in order
_ARG_REGS = ("rdi", "rsi", "rdx", "r10", "r8", "r9")


class _ClientGone(Exception):
    """The worker closed its end of the socket during a run."""


def _signed32(value: int) -> int:
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value & 0x80000000 else value


def _cpu_clock(pid: int) -> int:
    """clockid of the CPU-time clock of process ``pid`` (glibc's
    clock_getcpuclockid: CPUCLOCK_SCHED of the whole thread group), read in ns
    with no /proc parsing."""
    return ((~pid) << 3) | 2


def _proc_status(tid: int) -> dict[str, int]:
    """VmPeak, VmSize and VmHWM (KiB) of ``tid``, those it has. Read with one
    read() and searched as bytes: this runs at every exit stop (half the
    time of reading it line by line as a file)."""
    out = {}
    try:
        fd = os.open(f"/proc/{tid}/status", os.O_RDONLY | os.O_CLOEXEC)
        try:
            data = os.read(fd, 1 << 14)
        finally:
            os.close(fd)
        for key, name in _STATUS_KEYS:
            i = data.find(key)
            if i >= 0:
                out[name] = int(data[i + len(key):data.index(b" kB", i)])
    except (OSError, ValueError):
        pass
    return out


_STATUS_KEYS = ((b"\nVmPeak:", "VmPeak"), (b"\nVmSize:", "VmSize"), (b"\nVmHWM:", "VmHWM"))


def _inside(path: str, roots: tuple[str, ...]) -> bool:
    return any(path == r or path.startswith(r if r.endswith("/") else r + "/") for r in roots)


def _above(path: str, roots: tuple[str, ...]) -> bool:
    """Whether ``path`` is a directory on the way to one of ``roots``."""
    prefix = path if path.endswith("/") else path + "/"
    return any(r.startswith(prefix) for r in roots)


def _enter_namespaces() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Put the spawner itself into new net/IPC/UTS namespaces (plus a user
    namespace when not root, which the others need), so that every program it
    starts inherits them at no per-run cost. Creating a network namespace per
    run costs ~1.2 ms here; sharing one empty namespace between this spawner's
    programs is as good, since they cannot create sockets or IPC objects."""
    flags = L.CLONE_NEWNET | L.CLONE_NEWIPC | L.CLONE_NEWUTS
    names = ["net", "ipc", "uts"]
    root = os.geteuid() == 0
    if not root:
        flags |= L.CLONE_NEWUSER
        names.insert(0, "user")
    uid, gid = os.geteuid(), os.getegid()
    try:
        L.unshare(flags)
        if not root:
            # Map our own uid/gid to themselves: the programs keep our
            # identity for files and lose all capabilities at exec.
            for name, text in (("setgroups", "deny"), ("uid_map", f"{uid} {uid} 1"),
                               ("gid_map", f"{gid} {gid} 1")):
                with open(f"/proc/self/{name}", "w") as f:
                    f.write(text)
    except OSError as e:
        return (), (f"cannot create {'/'.join(names)} namespaces ({e.strerror})",)
    return tuple(names), ()


class Spawner:
    """The spawner's state across runs."""

    def __init__(self, sock: _socket.socket, stub: str | None = None) -> None:
        self.sock = sock
        #: the worker: when our parent is another process, it has died (see
        #: worker_gone)
        self.worker = os.getppid()
        #: the compiled execstub.c the warm children become, or None: they
        #: then stay Python (see _warm_child)
        self.stub = stub
        # Orphans of a program (there should be none: it cannot fork) would
        # become our children, so we reap and can kill them by pid.
        L.prctl(L.PR_SET_CHILD_SUBREAPER, 1)
        namespaces, problems = _enter_namespaces()
        self.caps: dict = probe_here(namespaces, problems)
        self.usable = self.caps["machine"] == "x86_64" and self.caps["seccomp"] and \
            self.caps["ptrace"]
        self.landlock_abi: int = self.caps["landlock_abi"]
        # Where the always-allowed paths really are (resolved once).
        self.system_roots = tuple(os.path.realpath(p) for p in SYSTEM_READ_PATHS
                                  if os.path.exists(p))
        # SIGCHLD (sent on every ptrace stop and exit) is read through a
        # signalfd, so one select() waits for tracees, captured output, the
        # worker's socket and the watchdog's timeout at once.
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGCHLD})
        self.sigfd = L.signalfd([signal.SIGCHLD])
        self.cpus = os.sched_getaffinity(0)
        self.devnull = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
        self._filters: dict[tuple, tuple[L.SockFprog, ctypes.Array]] = {}
        self._path_fds: dict[str, int | None] = {}
        self._dirs: dict[str, bool] = {}
        #: Landlock ruleset descriptors by what they grant (see Run._landlock_ruleset)
        self.rulesets: dict[tuple, int] = {}
        #: the warm child: (pid, our end of its socket, whether it runs the
        #: stub), or None
        self.warm: tuple[int, _socket.socket, bool] | None = None
        if self.usable:
            # Built before any warm child is forked, so that children inherit
            # it instead of each building its own.
            self.seccomp_filter(NO_EXTRAS)

    def serve(self) -> None:
        try:
            _wire.send(self.sock, {"capabilities": self.caps})
            while True:
                try:
                    self.prefork()
                except OSError:
                    pass  # no fork now: the run tries again, and reports it
                while not select.select([self.sock], [], [], IDLE_CHECK)[0]:
                    if self.worker_gone():
                        return
                msg = _wire.recv(self.sock)
                if msg is None:
                    return
                if not self.serve_one(*msg):
                    return
        finally:
            self.drop_warm()

    def serve_one(self, request: dict, fds: list[int]) -> bool:
        """Run one request and answer it; False when the worker has gone."""
        try:
            answer: dict = {"outcome": Run(self, request, fds).execute()}
        except _ClientGone:
            return False
        except Exception as e:  # report, keep serving
            tb, where = e.__traceback__, ""
            while tb is not None:  # where it was raised, for the log
                where = f" (in {tb.tb_frame.f_code.co_name}, line {tb.tb_lineno})"
                tb = tb.tb_next
            answer = {"error": f"{type(e).__name__}: {e}{where}"}
        finally:
            for fd in fds:
                os.close(fd)
        _wire.send(self.sock, answer)
        return True

    def worker_gone(self) -> bool:
        """Whether the worker that started us has died. Its end of our socket
        normally tells (end of stream), but a copy of that descriptor may
        outlive it (a process it forked); being re-parented cannot be
        missed. Not PR_SET_PDEATHSIG: it fires when the *thread* that forked
        us ends, and any thread of the worker may have started its spawner."""
        return os.getppid() != self.worker

    # --- the warm child -------------------------------------------------------

    def prefork(self) -> None:
        """Fork the next run's child now, if there is none, so that the fork
        is not part of the run. Only between runs: the run's event loop
        reaps any child of ours (wait4(-1)), and it must find only the
        program there."""
        if self.warm is not None or not self.usable:
            return
        ours, theirs = _socket.socketpair(_socket.AF_UNIX,
                                          _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC)
        try:
            pid = self._spawn_stub(theirs) if self.stub is not None else None
            if pid is None:
                pid = os.fork()
                if pid == 0:
                    self._warm_child(theirs)  # never returns
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        self.warm = (pid, ours, self.stub is not None)

    def _spawn_stub(self, theirs: _socket.socket) -> int | None:
        """Start the stub as the warm child with posix_spawn: the C library
        does it with vfork semantics, without copying this interpreter's
        page tables (and tearing them down again at the exec), which costs
        half a millisecond less than fork + exec. The child gets what
        _warm_child would give it: its own session, default dispositions of
        the signals we ignore, an empty signal mask, and only stdio and its
        socket as fd 3 (every other descriptor of ours is close-on-exec).
        None if the stub cannot be executed: Python children from now on."""
        stub = self.stub
        assert stub is not None
        fd = theirs.fileno()
        moved = None
        if fd == 3:  # dup2(3, 3) would leave it close-on-exec
            moved = fd = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 4)
        try:
            return os.posix_spawn(
                stub, [b"sio-execstub"], {},
                file_actions=[(os.POSIX_SPAWN_DUP2, fd, 3)], setsid=True,
                setsigmask=(), setsigdef=(signal.SIGPIPE, signal.SIGXFSZ, signal.SIGINT))
        except OSError:
            self.stub = None
            return None
        finally:
            if moved is not None:
                os.close(moved)

    def take_warm(self) -> tuple[int, _socket.socket, bool]:
        """The warm child for this run, alive and waiting (forked now if
        there is none, or if it died meanwhile)."""
        stub_failures = 0
        for _ in range(3):
            self.prefork()
            assert self.warm is not None
            pid, ctl, stub = self.warm
            if self._ready(pid, ctl, stub):
                warm, self.warm = self.warm, None
                return warm
            # Killed from outside while it waited, or the stub could not be
            # executed: never mind, another one.
            self.warm = None
            ctl.close()
            try:
                os.kill(pid, signal.SIGKILL)  # still our unreaped child
            except OSError:
                pass
            os.waitpid(pid, 0)
            if stub:
                stub_failures += 1
                if stub_failures == 2:
                    # The stub does not start (one that cannot be executed
                    # at all, _spawn_stub finds): Python children from now on.
                    self.stub = None
        raise OSError(errno.EAGAIN, "the child for the run keeps dying before it starts")

    @staticmethod
    def _ready(pid: int, ctl: _socket.socket, stub: bool) -> bool:
        if stub:
            # The stub says so as soon as it runs. It must not be seized
            # before: the tracer would take its own exec for the program's.
            try:
                return ctl.recv(1) == STUB_READY
            except OSError:
                return False
        try:
            return os.waitpid(pid, os.WNOHANG)[0] == 0
        except ChildProcessError:
            return False

    def drop_warm(self) -> None:
        """End the warm child (at exit): nothing of ours may outlive us."""
        if self.warm is None:
            return
        pid, ctl, _ = self.warm
        self.warm = None
        ctl.close()
        try:
            # Still our unreaped child, so the pid cannot be anyone else's.
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except OSError:
            pass

    def _warm_child(self, ctl: _socket.socket) -> None:
        """In a warm child without the stub (a fork of the spawner): drop
        everything inherited from the spawner that the program must not
        have, wait for a run, become its program. Never
        returns. The spawner keeps the other end of ``ctl``: if the spawner
        goes away, the child sees end-of-file and exits."""
        try:
            # A new session: its own process group (which Run._kill() kills
            # as a whole) and no controlling terminal (no terminal signals,
            # no /dev/tty). setsid() fails for a process that is already a
            # group leader, so the spawner must not setpgid() it.
            os.setsid()
            # Python ignores SIGPIPE and SIGXFSZ, and ignored signals survive
            # exec: the program must get the default actions (SIGXFSZ is how
            # RLIMIT_FSIZE ends it). SIGCHLD is blocked in the spawner.
            signal.signal(signal.SIGPIPE, signal.SIG_DFL)
            signal.signal(signal.SIGXFSZ, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.SIG_DFL)  # ignored by main()
            signal.pthread_sigmask(signal.SIG_SETMASK, ())
            # None of the spawner's descriptors (the worker's socket, the
            # signalfd, cached rulesets, the previous run's ends) stays here:
            # only 0-2 (replaced before exec) and our socket, as fd 3.
            fd = ctl.detach()
            if fd != 3:
                os.dup2(fd, 3, inheritable=False)
            os.closerange(4, 1 << 20)
            ctl = _socket.socket(fileno=3)
            _rehearse(self)
            msg = _wire.recv(ctl)
        except BaseException:
            os._exit(127)
        if msg is None:  # the spawner has gone
            os._exit(0)
        _become_program(self, ctl, *msg)

    def seccomp_filter(self, key: tuple) -> L.SockFprog:
        """The filter for ``key`` = (extra allowed calls, (name, errno) pairs of
        extra refused ones), built once."""
        if key not in self._filters:
            extra, refused, fake_time = key
            self._filters[key] = L.make_fprog(bpf.build_filter(extra, dict(refused),
                                                               fake_time))
        return self._filters[key][0]

    def seccomp_program(self, key: tuple) -> bytes:
        """The packed BPF program of :meth:`seccomp_filter` (for the stub)."""
        self.seccomp_filter(key)
        return self._filters[key][1].raw

    def is_dir(self, path: str, fd: int) -> bool:
        if path not in self._dirs:
            self._dirs[path] = stat.S_ISDIR(os.fstat(fd).st_mode)
        return self._dirs[path]

    def path_fd(self, path: str) -> int | None:
        """A cached O_PATH descriptor of an allowed system path (None if absent)."""
        if path not in self._path_fds:
            try:
                self._path_fds[path] = os.open(path, os.O_PATH | os.O_CLOEXEC)
            except OSError:
                self._path_fds[path] = None
        return self._path_fds[path]


class Run:
    """One supervised run of one program."""

    def __init__(self, spawner: Spawner, request: dict, fds: list[int]) -> None:
        self.sp = spawner
        self.argv: list[bytes] = request["argv"]
        self.exe: str = request["exe"]
        self.cwd: str = request["cwd"]
        self.env: list[bytes] = request["env"]
        #: Limits fields (cpu_time_ms, wall_time_ms, address_space_kib,
        #: output_bytes, stack_kib) and Policy fields, as dicts
        self.limits: dict = request["limits"]
        self.policy: dict = request["policy"]
        self.stdio_modes: tuple[str, str, str] = request["stdio"]
        self.given_fds = list(fds)
        if not spawner.usable:
            raise RuntimeError("this machine cannot supervise programs")
        policy = self.policy
        self.allow_local_open: bool = policy["allow_local_open"]
        # .get: a worker of an older version may send a policy without them
        self.quiet_denials: bool = policy.get("quiet_denials", False)
        self.read_own_proc: bool = policy.get("read_own_proc", False)
        #: Policy.fake_time ("off", "zero", "random"), the virtual clock (ns)
        #: and the state of its pseudo-random sequence; see _fake_clock()
        self.fake_time: str = policy.get("fake_time", "off")
        self.fake_ns = 0
        self.fake_state = FAKE_TIME_SEED
        if self.fake_time == "random":
            self.fake_ns = self._fake_random() % FAKE_TIME_START_RANGE
        #: the seccomp filter's key (see Spawner.seccomp_filter)
        self.filter_key: tuple = (
            tuple(policy["extra_syscalls"]),
            tuple((name, code) for name, code in policy.get("refused_syscalls", ())),
            self.fake_time != "off")
        self.max_threads: int = policy["max_threads"] if spawner.landlock_abi else 1
        self.drop_uid: bool = spawner.caps["root"] and policy["drop_uid"]
        roots = list(spawner.system_roots)
        roots += [os.path.realpath(p) for p in policy["read_paths"] if os.path.exists(p)]
        if self.allow_local_open:
            roots.append(os.path.realpath(self.cwd))
        self.read_roots = tuple(dict.fromkeys(roots))
        lim = self.limits
        self.cpu_limit_ns = (None if lim["cpu_time_ms"] is None
                             else lim["cpu_time_ms"] * 1_000_000)
        self.wall_limit_s = (None if lim["wall_time_ms"] is None
                             else lim["wall_time_ms"] / 1000)
        self.mem_limit_kib: int | None = lim["address_space_kib"]
        self.output_limit: int | None = lim["output_bytes"]
        # How much of a captured stream to keep: Limits.capture_bytes where
        # the record has it (newer engine types), else the output limit.
        capture = lim.get("capture_bytes")
        self.capture_limit: int | None = self.output_limit if capture is None else capture
        # run state
        self.leader = 0
        self.tids: set[int] = set()
        self.pending_clones: set[int] = set()
        self.exec_allowed = False
        self.fork_time = 0.0
        self.exec_time: float | None = None
        self.exec_cpu_ns = 0
        self.last_memory_sample = 0.0
        self.last_cpu_ns = 0
        self.leader_status: int | None = None
        self.end_time: float | None = None  # time.monotonic() when the leader was reaped
        self.rusage: resource.struct_rusage | None = None
        self.killed: str | None = None
        self.violation: str | None = None
        self.mem_peak_kib = 0
        self.rss_peak_kib = 0
        self.stops = 0
        #: time.monotonic() at which the loop must run the watchdog again
        self.check_at = 0.0
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
        self.captures: dict[int, str] = {}  # open read end -> stream name
        self.captured: dict[str, bytearray] = {}
        self.written: dict[str, int] = {}  # bytes read from each captured stream
        self.truncated = False
        self.system_error: str | None = None

    # --- set-up ---------------------------------------------------------------

    def execute(self) -> dict:
        sp = self.sp
        child_fds: list[int] = []   # to close in the parent once sent to the child
        parent_fds: list[int] = []  # to close at the end
        pinned = False
        ctl = None
        try:
            stdio = self._stdio(child_fds, parent_fds)
            # With read_own_proc the ruleset names the program's /proc entry,
            # known once the child is taken: built below, for this run only.
            ruleset = None if self.read_own_proc else self._landlock_ruleset()
            # Cached here, so that the next warm children inherit it.
            sp.seccomp_filter(self.filter_key)
            if self.drop_uid:
                self._grant_dropped_uid()
            cpu = self.policy["cpu"] if self.policy["cpu"] is not None else L.current_cpu()
            # Tracer and program on one CPU: a ptrace stop then wakes the
            # tracer on the same CPU instead of through a cross-CPU wake-up,
            # which on this kind of VM costs 5-7x more per stop.
            os.sched_setaffinity(0, {cpu})
            pinned = True
            pid, ctl, stub = sp.take_warm()
            self.fork_time = time.monotonic()
            self.leader = pid
            self.tids.add(pid)
            if self.read_own_proc:
                # The child's pid is the program's (exec keeps it), and so is
                # its /proc entry: the tracer maps /proc/self to it.
                own = f"/proc/{pid}"
                # First: with allow_local_open the working directory stays last.
                self.read_roots = (own, *self.read_roots)
                if sp.landlock_abi:
                    ruleset = self._new_ruleset(transient=(own,))
                    parent_fds.append(ruleset)
            try:
                L.ptrace(L.PTRACE_SEIZE, pid, 0, SEIZE_OPTIONS)
            except OSError:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                raise
            # Sent only once seized: the child's first traced call (the
            # execveat) must find its tracer, or a TRACE action fails it
            # with ENOSYS.
            setup = {
                "cpu": cpu, "cwd": self.cwd, "exe": self.exe, "argv": self.argv,
                "env": self.env, "drop_uid": self.drop_uid, "rlimits": self._rlimits(),
                "address_space": (None if self.mem_limit_kib is None else
                                  (self.mem_limit_kib + self.policy["memory_margin_kib"])
                                  * 1024),
                "filter_key": self.filter_key,
                "landlock": ruleset is not None,
                "fake_tsc": self.fake_time != "off",
            }
            fds = stdio + ([ruleset] if ruleset is not None else [])
            try:
                if stub:
                    program = sp.seccomp_program(self.filter_key)
                    _wire.send_bytes(ctl, _pack_setup(setup, program), fds)
                else:
                    _wire.send(ctl, setup, fds)
            except OSError:
                pass  # it died: the loop reaps it and _outcome() says so
            for fd in child_fds:
                os.close(fd)
            child_fds = []
            self._loop()
            return self._outcome(ctl, stdio)
        finally:
            if ctl is not None:
                ctl.close()
            if pinned:
                os.sched_setaffinity(0, sp.cpus)
            for fd in child_fds + parent_fds:
                os.close(fd)

    def _stdio(self, child_fds: list[int], parent_fds: list[int]) -> list[int]:
        """The program's descriptors 0, 1, 2 (pipes made for CAPTURE)."""
        given = iter(self.given_fds)
        stdio: list[int] = []
        for i, mode in enumerate(self.stdio_modes):
            if mode == "fd":
                stdio.append(next(given))
            elif mode == "null":
                stdio.append(self.sp.devnull)
            elif mode == "stdout":
                stdio.append(stdio[1])
            elif mode == "capture":
                r, w = os.pipe2(os.O_CLOEXEC)
                parent_fds.append(r)
                child_fds.append(w)
                name = "stdout" if i == 1 else "stderr"
                self.captures[r] = name
                self.captured[name] = bytearray()
                self.written[name] = 0
                stdio.append(w)
            else:
                raise ValueError(f"bad stdio mode {mode!r}")
        return stdio

    def _grant_dropped_uid(self) -> None:
        """Let the unprivileged uid the program runs under use what it was
        given, and nothing more: file permissions apply to it like to any
        other user. The job directory gets search permission (o+x) when the
        program reads files in it, the program file o+rx (a submission is
        saved with mode 0700), and read-only paths inside the job directory
        (all of it with ``allow_local_open``) o+r. Only bits that are
        missing are added, and only on what is inside the job directory or
        is the program itself."""

        def grant(path: str, bits: int) -> None:
            # A file may be a hard link shared with other jobs (Filetracker's
            # cache), which add bits to its mode at the same time: chmod sets
            # the whole mode, so one of two concurrent additions can be
            # lost. Look again after ours and redo it if it was.
            for _ in range(3):
                try:
                    mode = stat.S_IMODE(os.stat(path).st_mode)
                except OSError:
                    return  # the program will get its own error for it
                if mode & bits == bits:
                    return
                os.chmod(path, mode | bits)

        cwd = os.path.join(self.cwd, "")
        inside = [p for p in self.policy["read_paths"]
                  if os.path.abspath(p).startswith(cwd)]
        if self.allow_local_open:
            # SIO2's local open: the program reads any file of its directory
            # (a checker reads 'in', 'out' and 'hint'), whatever mode the
            # worker created it with. Writing stays refused by the rules.
            for root, dirs, files in os.walk(self.cwd):
                inside += [os.path.join(root, d) for d in dirs]
                inside += [os.path.join(root, f) for f in files]
        if self.allow_local_open or inside or self.exe.startswith(cwd):
            # The program (another uid) reaches files in cwd by name.
            grant(self.cwd, stat.S_IXOTH)
        grant(self.exe, stat.S_IROTH | stat.S_IXOTH)
        for path in inside:
            bits = stat.S_IROTH | (stat.S_IXOTH if os.path.isdir(path) else 0)
            grant(path, bits)

    def _landlock_ruleset(self) -> int | None:
        """A Landlock ruleset: read (and execute) below the allowed roots and
        the program itself; no writing, no creating, no removing anywhere;
        no TCP; no signals out of the sandbox. Built here, applied by the
        child; descriptors the program was given keep working.

        Rulesets are reusable, so the spawner keeps the last few, keyed by
        the inodes they grant (a rebuilt program at the same path is a new
        inode, hence a new ruleset)."""
        if not self.sp.landlock_abi:
            return None
        st = os.stat(self.exe)
        key: tuple = (self.read_roots, st.st_dev, st.st_ino)
        if self.allow_local_open:
            cwd = os.stat(self.read_roots[-1])
            key += (cwd.st_dev, cwd.st_ino)
        cache = self.sp.rulesets
        if key in cache:
            cache[key] = cache.pop(key)  # most recently used last
            return cache[key]
        ruleset = self._new_ruleset()
        cache[key] = ruleset
        while len(cache) > 8:
            os.close(cache.pop(next(iter(cache))))
        return ruleset

    def _new_ruleset(self, transient: tuple[str, ...] = ()) -> int:
        """A new ruleset for this run's read roots; ``transient`` ones (also
        among them) are opened for it alone rather than kept open."""
        abi = self.sp.landlock_abi
        fs = L.LL_FS_V1
        if abi >= 2:
            fs |= L.LL_REFER
        if abi >= 3:
            fs |= L.LL_TRUNCATE
        if abi >= 5:
            fs |= L.LL_IOCTL_DEV
        attr = L.LandlockRulesetAttr(fs, 0, 0)
        size = 8
        if abi >= 4:
            attr.handled_access_net = L.LL_NET_BIND_TCP | L.LL_NET_CONNECT_TCP
            size = 16
        if abi >= 6:
            attr.scoped = L.LL_SCOPE_ABSTRACT_UNIX | L.LL_SCOPE_SIGNAL
            size = 24
        ruleset = L.syscall("landlock_create_ruleset", ctypes.byref(attr), size, 0)
        try:
            read_file = L.LL_READ_FILE | L.LL_EXECUTE
            for root in self.read_roots:
                is_cwd = (self.allow_local_open and root == self.read_roots[-1]
                          or root in transient)
                fd = (os.open(root, os.O_PATH | os.O_CLOEXEC) if is_cwd
                      else self.sp.path_fd(root))
                if fd is None:
                    continue
                try:
                    rights = read_file
                    if (stat.S_ISDIR(os.fstat(fd).st_mode) if root in transient
                            else self.sp.is_dir(root, fd)):
                        rights |= L.LL_READ_DIR
                    self._add_rule(ruleset, fd, rights)
                finally:
                    if is_cwd:
                        os.close(fd)
            fd = os.open(self.exe, os.O_PATH | os.O_CLOEXEC)
            try:
                self._add_rule(ruleset, fd, read_file)
            finally:
                os.close(fd)
        except BaseException:
            os.close(ruleset)
            raise
        return ruleset

    @staticmethod
    def _add_rule(ruleset: int, fd: int, rights: int) -> None:
        rule = L.LandlockPathBeneath(rights, fd)
        L.syscall("landlock_add_rule", ruleset, L.LANDLOCK_RULE_PATH_BENEATH,
                  ctypes.byref(rule), 0)

    def _rlimits(self) -> list[tuple[int, int, int]]:
        """The program's rlimits as (resource, soft, hard), RLIMIT_STACK
        last; RLIMIT_AS is not among them (see _become_program)."""
        lim = self.limits
        out = [(resource.RLIMIT_CORE, 0, 0)]
        if lim["cpu_time_ms"] is not None:
            # Only a backstop: the watchdog kills at the limit. SIGXCPU a
            # second later, SIGKILL (which cannot be ignored) one more later.
            soft = math.ceil(lim["cpu_time_ms"] / 1000) + 1
            out.append((resource.RLIMIT_CPU, soft, soft + 1))
        if self.output_limit is not None:
            # One byte over the limit is how we see, after the run, that the
            # program tried to write more even if it ignored SIGXFSZ.
            out.append((resource.RLIMIT_FSIZE, self.output_limit + 1, self.output_limit + 1))
        if self.drop_uid:
            # Counts the tasks of this run's own uid: the kernel's backstop
            # for the thread limit the tracer enforces.
            out.append((resource.RLIMIT_NPROC, self.max_threads, self.max_threads))
        stack = (resource.RLIM_INFINITY if lim["stack_kib"] is None
                 else lim["stack_kib"] * 1024)
        out.append((resource.RLIMIT_STACK, stack, stack))
        return out

    # --- the event loop -------------------------------------------------------

    def _loop(self) -> None:
        """Until the program has ended: turns of (the watchdog, a wait for
        anything to do, at most STOPS_PER_TURN stops). Whatever the program
        does, every turn ends within a stop's handling of the next deadline
        (see _reap), so the limits and the worker's death are acted on in
        time even when its threads keep a stop pending all the time."""
        sp = self.sp
        more = False  # stops may be pending that no new SIGCHLD will announce
        while self.leader_status is None:
            timeout = self._watchdog()
            self.check_at = time.monotonic() + timeout
            watch = [sp.sigfd, sp.sock.fileno(), *self.captures]
            ready, _, _ = select.select(watch, [], [], 0 if more else timeout)
            if sp.sock.fileno() in ready or sp.worker_gone():
                # The worker went away (or broke the protocol): nobody will
                # read the outcome, so end the program and the spawner.
                self._kill(WALL_TIME)
                self._reap_all()
                raise _ClientGone()
            for fd in ready:
                if fd in self.captures:
                    self._read_capture(fd)
            if sp.sigfd in ready:
                # Drained before reaping: a stop that comes after this read
                # signals again. (SIGCHLD is a standard signal: at most one
                # is pending, so one read takes it.)
                try:
                    os.read(sp.sigfd, 128 * 16)
                except BlockingIOError:
                    pass
            more = self._reap()
        self._reap_all()

    def _reap(self) -> bool:
        """Handle what is pending: at most STOPS_PER_TURN stops, and none
        once the watchdog is due (``check_at``). True when it stopped early
        (more may be pending)."""
        for _ in range(STOPS_PER_TURN):
            try:
                pid, status, ru = os.wait4(-1, os.WNOHANG | WALL)
            except ChildProcessError:
                return False
            if pid == 0:
                return False
            if os.WIFSTOPPED(status):
                self._on_stop(pid, status)
                if time.monotonic() >= self.check_at:
                    return True
                continue
            self.tids.discard(pid)
            self.pending_clones.discard(pid)
            if pid == self.leader:
                self.leader_status, self.rusage = status, ru
                self.end_time = time.monotonic()
                return False
        return True

    def _reap_all(self) -> None:
        """Make sure nothing of the run is left. The leader of a thread group
        is reported last, so normally nothing is; but anything still known is
        our tracee or (the spawner being a child subreaper) our child, not yet
        reaped, so its id cannot belong to an unrelated process yet. No
        killpg() here: once the leader is reaped, the group id is free."""
        for tid in self.tids:
            try:
                os.kill(tid, signal.SIGKILL)
            except OSError:
                pass
        while self.tids:
            try:
                pid, status, ru = os.wait4(-1, WALL)
            except ChildProcessError:
                break
            if os.WIFSTOPPED(status):
                # Even a SIGKILLed tracee stops at PTRACE_EVENT_EXIT on
                # recent kernels, and stays there until continued.
                self._cont(pid)
                continue
            self.tids.discard(pid)
            if pid == self.leader and self.leader_status is None:
                self.leader_status, self.rusage = status, ru
                self.end_time = time.monotonic()
        self.tids.clear()
        while True:  # orphans adopted as subreaper, if any
            try:
                if os.wait4(-1, os.WNOHANG | WALL)[0] == 0:
                    return
            except ChildProcessError:
                return

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
            path = base + "/" + path
        # "self" in the program's paths is the program, not us.
        for alias in ("/proc/self", "/proc/thread-self"):
            if path == alias or path.startswith(alias + "/"):
                target = str(self.leader) if alias == "/proc/self" else f"{self.leader}/task/{tid}"
                path = "/proc/" + target + path[len(alias):]
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

    def _decide_signal(self, tid: int, name: str, regs: L.Regs) -> tuple:
        a0, a1 = _signed32(regs.arg(0)), _signed32(regs.arg(1))
        own = {
            "kill": a0 in (self.leader, 0, -self.leader),  # itself or its own group
            "tkill": a0 in self.tids,
            "tgkill": a0 == self.leader and a1 in self.tids,
            "rt_sigqueueinfo": a0 == self.leader,
            "rt_tgsigqueueinfo": a0 == self.leader and a1 in self.tids,
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

    # --- limits and killing ---------------------------------------------------

    def _cpu_now(self) -> int:
        try:
            self.last_cpu_ns = time.clock_gettime_ns(_cpu_clock(self.leader))
        except OSError:
            pass
        return self.last_cpu_ns

    def _watchdog(self) -> float:
        """Enforce the CPU and wall limits; return how long to sleep."""
        timeout = WATCHDOG_PERIOD
        if self.killed is not None:
            return timeout
        now = time.monotonic()
        if self.exec_time is not None and now - self.last_memory_sample > WATCHDOG_PERIOD:
            # For programs the kernel kills without an exit stop (RLIMIT_CPU's
            # SIGKILL): their VmPeak is then at most 50 ms old.
            self.last_memory_sample = now
            self._sample_memory(self.leader)
        if self.cpu_limit_ns is not None and self.exec_time is not None:
            left = self.cpu_limit_ns - (self._cpu_now() - self.exec_cpu_ns)
            if left < 0:
                self._kill(CPU_TIME)
                return timeout
            # The program is pinned to one CPU with all its threads, so its
            # CPU time cannot grow faster than the wall clock: sleeping for
            # the CPU time left cannot overshoot the limit.
            timeout = min(timeout, left / 1e9 + 0.0005)
        if self.wall_limit_s is not None:
            start = self.exec_time if self.exec_time is not None else self.fork_time
            left_s = start + self.wall_limit_s - now
            if left_s < 0:
                self._kill(WALL_TIME)
                return timeout
            timeout = min(timeout, left_s + 0.0005)
        return timeout

    def _sample_memory(self, tid: int) -> None:
        status = _proc_status(tid)
        if self.exec_time is not None:
            self.mem_peak_kib = max(self.mem_peak_kib, status.get("VmPeak", 0))
            self.rss_peak_kib = max(self.rss_peak_kib, status.get("VmHWM", 0))

    def _violate(self, name: str) -> None:
        if self.killed is None:
            self.violation = name
        self._kill(SYSCALL)

    def _kill(self, reason: str) -> None:
        if self.killed is None:
            self.killed = reason
            # Whether a SIGKILLed task still stops at PTRACE_EVENT_EXIT
            # depends on the kernel: read its memory while it surely can.
            self._sample_memory(self.leader)
            self._cpu_now()
        # The whole program at once, never one thread after another: SIGKILL
        # to the leader ends its thread group (and, were the leader the init
        # of a PID namespace of its own, everything in it), its process
        # group catches anything else it might have started. Both are ids
        # of our unreaped child, so they cannot name another process. Tasks
        # in a ptrace stop are woken by SIGKILL; nothing here waits for the
        # program to be quiet.
        for kill in (os.kill, os.killpg):
            try:
                kill(self.leader, signal.SIGKILL)
            except OSError:
                pass

    def _read_capture(self, fd: int) -> bool:
        """Read what is there; False at end of stream or when nothing is."""
        name = self.captures[fd]
        buf = self.captured[name]
        try:
            data = os.read(fd, 1 << 16)
        except BlockingIOError:
            return False
        if not data:
            del self.captures[fd]
            return False
        self.written[name] += len(data)
        keep = self.capture_limit
        if keep is not None and len(buf) + len(data) > keep:
            data = data[:keep - len(buf)]
            self.truncated = True
        buf += data
        if self.output_limit is not None and self.written[name] > self.output_limit:
            self._kill(OUTPUT)  # the stream is over the limit: OLE, like a file
        return True

    # --- the report -----------------------------------------------------------

    def _outcome(self, ctl: _socket.socket, stdio: list[int]) -> dict:
        """The fields of the run's ``Outcome`` (killed as a KillReason value)."""
        # What the program wrote just before it ended is still in the pipes;
        # every writer is gone now, so this ends (non-blocking all the same).
        for fd in list(self.captures):
            os.set_blocking(fd, False)
            while self._read_capture(fd):
                pass
        status = self.leader_status or 0
        end = self.end_time if self.end_time is not None else time.monotonic()
        start = self.exec_time if self.exec_time is not None else self.fork_time
        out: dict = {
            "exit_code": os.WEXITSTATUS(status) if os.WIFEXITED(status) else None,
            "signal": os.WTERMSIG(status) if os.WIFSIGNALED(status) else None,
            "cpu_time_ms": 0, "wall_time_ms": int((end - start) * 1000),
            "killed": None, "mem_peak_kib": None, "mem_resident_peak_kib": None,
            "syscalls": 0, "violation": None,
            "system_error": self.system_error, "output_truncated": self.truncated,
        }
        for i, name in ((1, "stdout"), (2, "stderr")):
            out[name] = bytes(self.captured[name]) if self.stdio_modes[i] == "capture" else None
        sig = out["signal"]
        if self.exec_time is None:
            # Why the child failed, from the socket it got the run on (every
            # copy of the child's end is closed now: no blocking here).
            ctl.setblocking(False)
            try:
                detail = ctl.recv(4096).decode(errors="replace")
            except OSError:
                detail = ""
            if (not detail and sig is not None and self.exec_allowed
                    and self.mem_limit_kib is not None):
                # The kernel killed it inside execve, past the point of no
                # return: the program's image does not fit in RLIMIT_AS.
                out["killed"] = MEMORY
            elif detail:
                out["system_error"] = f"cannot start {self.exe}: {detail}"
            else:
                out["system_error"] = f"the program could not be started (status {status:#x})"
            return out
        cpu_ns = 0
        if self.rusage is not None:
            ru = self.rusage
            cpu_ns = int(round((ru.ru_utime + ru.ru_stime) * 1e9)) - self.exec_cpu_ns
        cpu_ns = max(cpu_ns, 0)
        killed = self.killed
        if killed is None:
            # Limits broken without the engine having to step in: decided
            # after the fact, in this order.
            if self.mem_limit_kib is not None and self.mem_peak_kib > self.mem_limit_kib:
                killed = MEMORY
            elif self.cpu_limit_ns is not None and (
                    cpu_ns > self.cpu_limit_ns or sig == signal.SIGXCPU
                    or (sig == signal.SIGKILL and cpu_ns >= self.cpu_limit_ns)):
                killed = CPU_TIME
            elif self.wall_limit_s is not None and end - start > self.wall_limit_s:
                # Ended after its wall-clock limit before the watchdog came
                # round to it: over the limit all the same.
                killed = WALL_TIME
            elif self.output_limit is not None and (
                    sig == signal.SIGXFSZ or self._files_over_limit(stdio)):
                killed = OUTPUT
        out.update(cpu_time_ms=cpu_ns // 1_000_000, killed=killed,
                   mem_peak_kib=self.mem_peak_kib, mem_resident_peak_kib=self.rss_peak_kib,
                   syscalls=self.stops,
                   violation=self.violation if killed == SYSCALL else None)
        return out

    def _files_over_limit(self, stdio: list[int]) -> bool:
        limit = self.output_limit
        assert limit is not None
        for mode, fd in zip(self.stdio_modes[1:], stdio[1:]):
            if mode == "fd":
                try:
                    st = os.fstat(fd)
                except OSError:
                    continue
                if stat.S_ISREG(st.st_mode) and st.st_size > limit:
                    return True
        return False


_STUB_MAGIC = 0x53494F53
_STUB_DROP_UID, _STUB_LANDLOCK, _STUB_ADDRESS_SPACE, _STUB_FAKE_TSC = 1, 2, 4, 8
_U32 = struct.Struct("<I")
_U64_MASK = (1 << 64) - 1


def _pack_setup(setup: dict, program: bytes) -> bytes:
    """The run's set-up in the stub's binary layout (see execstub.c, main()),
    with its u32 length in front."""
    def string(value: str | bytes) -> bytes:
        data = os.fsencode(value) + b"\0"
        return _U32.pack(len(data)) + data

    flags = ((_STUB_DROP_UID if setup["drop_uid"] else 0)
             | (_STUB_LANDLOCK if setup["landlock"] else 0)
             | (_STUB_ADDRESS_SPACE if setup["address_space"] is not None else 0)
             | (_STUB_FAKE_TSC if setup["fake_tsc"] else 0))
    parts = [struct.pack("<IiIQI", _STUB_MAGIC, setup["cpu"], flags,
                         (setup["address_space"] or 0) & _U64_MASK, len(setup["rlimits"]))]
    for res, soft, hard in setup["rlimits"]:
        # RLIM_INFINITY is -1 in Python, all ones in the kernel
        parts.append(struct.pack("<IIQQ", res, 0, soft & _U64_MASK, hard & _U64_MASK))
    parts += [string(setup["cwd"]), string(setup["exe"]), _U32.pack(len(setup["argv"]))]
    parts += [string(a) for a in setup["argv"]]
    parts.append(_U32.pack(len(setup["env"])))
    parts += [string(e) for e in setup["env"]]
    parts += [_U32.pack(len(program)), program]
    body = b"".join(parts)
    return _U32.pack(len(body)) + body


def _rehearse(sp: Spawner) -> None:
    """Touch, in the warm child, what _become_program() will use, so that
    the copy-on-write faults of the fork (the first write to each page
    shared with the spawner: reference counts, the interpreter's inline
    caches) happen now rather than during the run."""
    L.string_array([b"x", b"y"])
    sp.seccomp_filter(NO_EXTRAS)
    resource.getrlimit(resource.RLIMIT_STACK)
    os.sched_getaffinity(0)
    fcntl.fcntl(3, fcntl.F_GETFD)
    os.strerror(errno.ENOENT)
    marshal.loads(marshal.dumps({"a": [b"x"], "b": (1, 2), "c": None, "d": True}))


def _become_program(sp: Spawner, ctl: _socket.socket, setup: dict, fds: list[int]) -> None:
    """In the warm child, once seized: set up the run ``setup`` (made by
    Run.execute) and exec the program. Never returns. ``fds``: the
    program's stdio, then the Landlock ruleset (if any).

    Any failure before execveat() is written to ``ctl`` (fd 3, close-on-exec:
    after a successful exec the spawner reads end-of-file there) and ends the
    child with status 127; the parent reports it as a system error."""
    try:
        # The CPU of the tracer (the warm child was forked unpinned).
        os.sched_setaffinity(0, {setup["cpu"]})
        # Move everything to fixed numbers via a high range first, so that no
        # dup2() overwrites a source still needed: 0-2 the program's stdio,
        # 3 our socket (kept there since the fork), 4 the ruleset.
        high = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 100) for fd in fds]
        for target, fd in zip((0, 1, 2, 4), high):
            os.dup2(fd, target, inheritable=target < 3)
        os.closerange(5 if setup["landlock"] else 4, 1 << 20)
        os.chdir(setup["cwd"])
        # Opened while still privileged: the program runs from this
        # descriptor (execveat), so the path to it need not be searchable by
        # the unprivileged uid.
        exe_fd = os.open(setup["exe"], os.O_PATH | os.O_CLOEXEC)
        if setup["drop_uid"]:
            uid = UID_BASE + os.getpid()
            os.setgroups([])
            os.setresgid(uid, uid, uid)
            os.setresuid(uid, uid, uid)
        for res, soft, hard in setup["rlimits"]:
            try:
                resource.setrlimit(res, (soft, hard))
            except (OSError, ValueError):
                if res != resource.RLIMIT_STACK:
                    raise
                # Cannot raise the hard limit: as much as it allows.
                hard = resource.getrlimit(res)[1]
                resource.setrlimit(res, (min(soft, hard), hard))
        L.prctl(L.PR_SET_NO_NEW_PRIVS, 1)  # required by seccomp and Landlock
        if setup["landlock"]:
            L.syscall("landlock_restrict_self", 4, 0)
            os.close(4)
        fprog = sp.seccomp_filter(setup["filter_key"])
        argv = L.string_array(setup["argv"])
        envp = L.string_array(setup["env"])
        if setup["address_space"] is not None:
            # Last, because it binds this Python child too (whose address
            # space may exceed the limit: then it must not allocate any more,
            # and from here on it only makes two calls). The tracer cannot set
            # it after exec instead: prlimit() on a process of another uid
            # needs CAP_SYS_RESOURCE, which containers often drop even for
            # root.
            resource.setrlimit(resource.RLIMIT_AS, (setup["address_space"],) * 2)
        if setup["fake_tsc"]:
            # fake_time: RDTSC/RDTSCP fault from here on (across the exec
            # too) and the tracer emulates them. Nothing below reads a clock.
            L.prctl(L.PR_SET_TSC, L.PR_TSC_SIGSEGV)
        L.seccomp_set_filter(fprog, spec_allow=True)
        # From here on every call goes through the filter: this execveat is
        # the one exec the tracer allows.
        L.syscall("execveat", exe_fd, b"", argv, envp, L.AT_EMPTY_PATH)
        raise OSError(errno.ENOEXEC, "execveat returned")
    except BaseException as e:
        try:
            if isinstance(e, OSError) and e.errno is not None:
                msg = f"{os.strerror(e.errno)}"
            else:
                msg = f"{type(e).__name__}: {e}"
            os.write(3, msg.encode(errors="replace"))
        finally:
            os._exit(127)


def main(fd: int, stub: str = "") -> None:
    """Entry point of the spawner process (``python -I -S -c ...``):
    ``fd`` is its socket to the worker, ``stub`` the compiled execstub.c
    (empty: none, warm children stay Python)."""
    os.set_inheritable(fd, False)  # passed to us inheritable; no program's
    sock = _socket.socket(fileno=fd)
    # The worker may be interrupted with ^C; the spawner must not die of it
    # mid-run (it ends when the worker closes the socket).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        Spawner(sock, stub or None).serve()
    except (EOFError, ConnectionError):
        pass
