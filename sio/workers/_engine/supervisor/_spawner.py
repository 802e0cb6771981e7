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
(become_program): correct, ~0.7 ms slower per run. With the private view
(_view) the warm child is instead forked by the init of the spawner's PID
namespace for programs (the stub in its "init" mode, or Python), on a
socket the spawner sends it: see _start_init and _init_child.

A run, in order (details at each step below):

1. parent: pick a CPU and pin itself to it, prepare pipes and the Landlock
   ruleset, take the warm child (forking one now if there is none) and
   PTRACE_SEIZE it, then send it the run (parameters and descriptors);
2. child (the stub, or become_program): pin to the same CPU, stdio, open
   the program, with the view /proc and chroot, cwd, drop to a fresh uid
   (when root), rlimits, no_new_privs, Landlock, RLIMIT_AS, PR_SET_TSC
   (fake_time), seccomp, execveat;
3. parent: the event loop: seccomp TRACE stops (decisions), exec (start the
   clocks), exit events (VmPeak), the watchdog (CPU and wall time) and
   captured output;
4. reap the program and report; fork the next warm child.

The modules of the spawner, one concern each: this one (the spawner's
process lifecycle: warm children, the init of the programs' PID namespace,
the request loop), :mod:`._namespaces` and :mod:`._view` (namespaces and
the private view), :mod:`._run` (one run, its event loop and report),
:mod:`._setup` (the run's set-up, in the spawner and the child),
:mod:`._decisions` (syscall decisions at tracer stops, fake_time),
:mod:`._watchdog` (deadlines, kill), :mod:`._stubproto` (the set-up
message to the C stub), :mod:`._wire` (messages with the worker),
:mod:`._linux` and :mod:`.bpf` (the kernel's interfaces).
"""

from __future__ import annotations

# Only built-in and C modules (and this package's small ones): every module
# the spawner loads makes each fork of it slower (the page tables of its heap
# are copied, then torn down again at exec). `_signal`/`_socket` instead of
# `signal`/`socket` avoids loading enum; no dataclasses, pickle or typing.
# (tests/unit/test_supervisor_rules.py holds every module of it to this.)
import _signal as signal
import _socket
import ctypes
import errno
import fcntl
import os
import select
import stat
import struct

from sio.workers._engine.supervisor import _linux as L
from sio.workers._engine.supervisor import _wire, bpf
from sio.workers._engine.supervisor._checks import probe_here
from sio.workers._engine.supervisor._namespaces import enter_namespaces, make_view
from sio.workers._engine.supervisor._run import ClientGone, Run
from sio.workers._engine.supervisor._setup import (
    NO_EXTRAS,
    become_program,
    leave_spawner,
    rehearse,
)
from sio.workers._engine.supervisor._stubproto import STUB_FAILED, STUB_READY
from sio.workers._engine.supervisor._view import View
from sio.workers._engine.supervisor.paths import SYSTEM_READ_PATHS

#: seconds: how often an idle spawner checks that its worker is alive
IDLE_CHECK = 0.5


class Spawner:
    """The spawner's state across runs."""

    def __init__(self, sock: _socket.socket, stub: str | None = None,
                 view: bool = True) -> None:
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
        namespaces, problems = enter_namespaces()
        #: the programs' private filesystem view, or None (see _view)
        self.view: View | None = None
        #: the init of the programs' PID namespace: (pid, its socket), or None
        self.init: tuple[int, _socket.socket] | None = None
        if view:
            self.view, why = make_view(namespaces)
        else:
            why = "the private view is turned off (SIO_SUPERVISOR_ISOLATION=no-view)"
        if why is not None:
            problems += (why,)
        self.caps: dict = probe_here(namespaces, problems, view=self.view is not None)
        self.usable = self.caps["machine"] == "x86_64" and self.caps["seccomp"] and \
            self.caps["ptrace"]
        self.landlock_abi: int = self.caps["landlock_abi"]
        # The always-allowed paths as named and where they really are
        # (resolved once): with the view, the tracer compares the paths a
        # program names without resolving them.
        self.system_roots = tuple(dict.fromkeys(
            [p for p in SYSTEM_READ_PATHS if os.path.exists(p)]
            + [os.path.realpath(p) for p in SYSTEM_READ_PATHS if os.path.exists(p)]))
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
        #: the warm child: (pid, our end of its socket, whether it runs the
        #: stub); with the view, the pid is that of the init of the run's PID
        #: namespace, whose child waits for the run
        self.warm: tuple[int, _socket.socket, bool] | None = None
        if self.usable:
            # Built before any warm child is forked, so that children inherit
            # it instead of each building its own.
            self.seccomp_filter(NO_EXTRAS)
        if self.view is not None and not self.caps["root"]:
            # In a user namespace, a process that is not uid 0 there loses
            # its capabilities at execve: the stub could not chroot. Python
            # children keep them until the program's own exec.
            self.stub = None
        if self.view is not None:
            try:
                self._start_init()
            except OSError as e:
                self.view.close()
                self.view = None
                self._filters.clear()  # built for programs in the view
                if self.usable:
                    self.seccomp_filter(NO_EXTRAS)
                self.caps["view"] = False
                self.caps["problems"].append(f"cannot create a PID namespace ({e.strerror})")

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
            self._drop_init()
            if self.view is not None:
                self.view.close()

    def serve_one(self, request: dict, fds: list[int]) -> bool:
        """Run one request and answer it; False when the worker has gone."""
        try:
            answer: dict = {"outcome": Run(self, request, fds).execute()}
        except ClientGone:
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
        us ends, and any thread of the worker may have started its spawner.
        getppid() stays meaningful with the private view: the spawner never
        leaves the worker's PID namespace (only the init and the programs
        are in a new one, where an init's getppid() would be 0); the init
        and its children learn of the spawner's end by end of stream."""
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
        if self.view is not None:
            try:
                # The program learns nothing of its pid in its namespace;
                # its "ready" byte carries the pid as we see it.
                ours.setsockopt(_socket.SOL_SOCKET, _socket.SO_PASSCRED, 1)
                self._fork_in_namespace(theirs)
            except BaseException:
                ours.close()
                raise
            finally:
                theirs.close()
            self.warm = (0, ours, self.stub is not None)  # pid: see _ready
            return
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

    # --- the init of the programs' PID namespace (with the view) -----------------

    def _fork_in_namespace(self, theirs: _socket.socket) -> None:
        """Have the init of the programs' PID namespace fork the next run's
        child, with ``theirs`` as its socket (see _init_child)."""
        deaths = 0
        for _ in range(3):
            if self.init is None:
                self._start_init()
            assert self.init is not None
            try:
                _wire.send_bytes(self.init[1], b"F", [theirs.fileno()])
                return
            except OSError:
                self._drop_init()  # it died: another one
                deaths += 1
                if deaths == 2 and self.stub is not None:
                    # A stub init that dies before it takes its first child
                    # (a crashing stub: how soon depends on the load) does
                    # not start here. As take_warm decides for warm children
                    # after two failures: a Python init from now on.
                    self.stub = None
        raise OSError(errno.EAGAIN, "the init of the programs' PID namespace keeps dying")

    def _start_init(self) -> None:
        """Start the init (pid 1) of a new PID namespace for this spawner's
        programs. Programs are its children, never the init itself: an init
        ignores the signals it has no handler for (SIGABRT, SIGPIPE,
        SIGXCPU...). One namespace serves the spawner's runs one after the
        other: creating one per run costs ~0.5 ms (the kernel mounts an
        internal /proc for each), and a run is alone in it all the same (the
        previous program is gone, and a program cannot fork)."""
        ours, theirs = _socket.socketpair(_socket.AF_UNIX,
                                          _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC)
        r, w = os.pipe2(os.O_CLOEXEC)
        try:
            # Through a middle child, which enters the new namespace (for
            # its children: unshare cannot be undone, and a spawner in a
            # user namespace could not go back), forks the init, says its
            # pid and exits; the init is then ours, as a child subreaper's.
            middle = os.fork()
            if middle == 0:
                try:
                    os.close(r)
                    L.unshare(L.CLONE_NEWPID)
                    pid = os.fork()
                    if pid == 0:
                        os.close(w)
                        self._init_child(theirs)  # never returns
                    os.write(w, struct.pack("<i", pid))
                    os._exit(0)
                except BaseException as e:
                    code = e.errno if isinstance(e, OSError) and e.errno else errno.EPERM
                    os.write(w, struct.pack("<i", -code))
                    os._exit(1)
            os.close(w)
            w = -1
            answer = os.read(r, 4)
            os.waitpid(middle, 0)
        finally:
            os.close(r)
            if w >= 0:
                os.close(w)
            theirs.close()
        pid = struct.unpack("<i", answer)[0] if len(answer) == 4 else -errno.EAGAIN
        if pid < 0:
            ours.close()
            raise OSError(-pid, os.strerror(-pid))
        self.init = (pid, ours)

    def _drop_init(self) -> None:
        """End the init (and so its namespace: the kernel kills all in it)."""
        if self.init is None:
            return
        pid, sock = self.init
        self.init = None
        sock.close()
        try:
            # Still our unreaped child, so the pid cannot be anyone else's.
            os.kill(pid, signal.SIGKILL)
            status = os.waitpid(pid, 0)[1]
        except OSError:
            return
        if os.WIFEXITED(status) and os.WEXITSTATUS(status) == STUB_FAILED:
            self.stub = None  # the stub cannot be executed here: Python from now on

    def init_reaped(self, pid: int) -> bool:
        """Whether ``pid``, just reaped by a run's loop, was the init (which
        then is gone; the next prefork starts another)."""
        if self.init is None or pid != self.init[0]:
            return False
        self.init[1].close()
        self.init = None
        return True

    def _init_child(self, sock: _socket.socket) -> None:
        """In the init: drop what the program must not have, then fork a
        child for each descriptor the spawner sends, which becomes the next
        run's warm child with that descriptor as its socket. Exits at end of
        stream. With the stub, the stub does this (execstub.c, init_main).
        Never returns."""
        try:
            leave_spawner(sock)
            if self.stub is not None:
                os.set_inheritable(3, True)
                try:
                    os.execve(self.stub, [b"sio-execstub", b"init"], {})
                except OSError:
                    os._exit(STUB_FAILED)
            # Children are reaped by the kernel (after their tracer has
            # seen them end): an init that never waits.
            signal.signal(signal.SIGCHLD, signal.SIG_IGN)
            ctl = _socket.socket(fileno=3)
            while True:
                data, fds = _wire.recv_bytes(ctl, 1)
                if not data:
                    os._exit(0)
                if os.fork() == 0:
                    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                    os.dup2(fds[0], 3, inheritable=False)
                    os.closerange(4, 1 << 20)
                    # Its own session and process group, which Run._kill kills.
                    os.setsid()
                    break
                for fd in fds:
                    os.close(fd)
        except BaseException:
            os._exit(127)
        self._program_child()

    def take_warm(self) -> tuple[int, _socket.socket, bool]:
        """The warm child for this run, alive and waiting (forked now if
        there is none, or if it died meanwhile): (its pid, its socket,
        whether it runs the stub)."""
        stub_failures = 0
        for _ in range(3):
            self.prefork()
            assert self.warm is not None
            pid, ctl, stub = self.warm
            program = self._ready(pid, ctl, stub)
            if program is not None:
                self.warm = None
                return program, ctl, stub
            if self.view is not None:
                # Not our child: it exits at end of stream, if still there.
                self.warm = None
                ctl.close()
                if stub:
                    stub_failures += 1
                    if stub_failures == 2 or self.init is None:
                        # The stub (the init, or its children) does not
                        # start: a Python init and children from now on.
                        self.stub = None
                        self._drop_init()
                continue
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

    def _ready(self, pid: int, ctl: _socket.socket, stub: bool) -> int | None:
        """The pid of the waiting child that becomes the program, or None
        when it is gone."""
        if self.view is not None:
            # The init's child, whichever kind, says it is ready; the kernel
            # gives its pid (as we see it) with the byte.
            try:
                data, ancillary, _, _ = ctl.recvmsg(1, _socket.CMSG_SPACE(12))
            except OSError:
                return None
            for level, kind, payload in ancillary:
                if (data == STUB_READY and level == _socket.SOL_SOCKET
                        and kind == _socket.SCM_CREDENTIALS):
                    return struct.unpack_from("<i", payload)[0]
            return None
        if stub:
            # The stub says so as soon as it runs. It must not be seized
            # before: the tracer would take its own exec for the program's.
            try:
                return pid if ctl.recv(1) == STUB_READY else None
            except OSError:
                return None
        try:
            return pid if os.waitpid(pid, os.WNOHANG)[0] == 0 else None
        except ChildProcessError:
            return None

    def drop_warm(self) -> None:
        """End the warm child (at exit): nothing of ours may outlive us."""
        if self.warm is None:
            return
        pid, ctl, _ = self.warm
        self.warm = None
        ctl.close()  # a child of the init exits at end of stream
        if self.view is not None:
            return
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
            leave_spawner(ctl)
        except BaseException:
            os._exit(127)
        self._program_child()

    def _program_child(self) -> None:
        """In a warm child whose socket is fd 3 (and nothing else of ours
        open but 0-2): wait for the run and become its program, as the stub
        or in Python. Never returns."""
        try:
            if self.stub is not None:
                # Become the stub now, between runs: the run's set-up and
                # exec then cost what they cost in C from a tiny process.
                os.set_inheritable(3, True)
                try:
                    os.execve(self.stub, [b"sio-execstub"], {})
                except OSError:
                    os._exit(STUB_FAILED)
            ctl = _socket.socket(fileno=3)
            rehearse(self)
            if self.view is not None:
                ctl.send(STUB_READY)  # see Spawner._ready
            msg = _wire.recv(ctl)
        except BaseException:
            os._exit(127)
        if msg is None:  # the spawner has gone
            os._exit(0)
        become_program(self, ctl, *msg)

    def seccomp_filter(self, key: tuple) -> L.SockFprog:
        """The filter for ``key`` = (extra allowed calls, (name, errno) pairs of
        extra refused ones), built once."""
        if key not in self._filters:
            extra, refused, fake_time = key
            self._filters[key] = L.make_fprog(bpf.build_filter(
                extra, dict(refused), fake_time, path_queries_traced=self.view is None))
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


def main(fd: int, stub: str = "", view: bool = True) -> None:
    """Entry point of the spawner process (``python -I -S -c ...``):
    ``fd`` is its socket to the worker, ``stub`` the compiled execstub.c
    (empty: none, warm children stay Python), ``view``: whether to give
    programs the private view where possible."""
    os.set_inheritable(fd, False)  # passed to us inheritable; no program's
    sock = _socket.socket(fileno=fd)
    # The worker may be interrupted with ^C; the spawner must not die of it
    # mid-run (it ends when the worker closes the socket).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        Spawner(sock, stub or None, view).serve()
    except (EOFError, ConnectionError):
        pass

