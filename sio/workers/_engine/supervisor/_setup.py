"""The run's set-up: everything that makes the program's world before its
exec, in the spawner (Landlock ruleset, rlimits, the dropped uid's access
to its files) and in the warm child (stdio, view and chroot, uid,
rlimits, no_new_privs, Landlock, RLIMIT_AS, fake_time's TSC trap, seccomp,
execveat).

The C stub (``execstub.c``) does the child's steps itself, in the same
order; :func:`become_program` is the Python warm child's way, for machines
without the stub. Kept in one module so that the two sides of each step
(prepared here, applied there) are read together.
"""

from __future__ import annotations

import _signal as signal
import _socket
import ctypes
import errno
import fcntl
import marshal
import os
import resource
import stat

from sio.workers._engine.rlimits import apply_rlimits, program_rlimits
from sio.workers._engine.supervisor import _linux as L
from sio.workers._engine.supervisor._state import RunState

TYPE_CHECKING = False  # typing is not imported at run time (see _spawner)
if TYPE_CHECKING:
    from sio.workers._engine.supervisor._spawner import Spawner

#: Programs of a root spawner run as uid/gid UID_BASE + their pid: unique
#: among live processes, so RLIMIT_NPROC counts exactly one run's tasks and
#: no two runs share a uid. (pid_max <= 2^22 keeps it below 2^31.)
UID_BASE = 2_000_000_000

#: RLIMIT_NOFILE when the worker's policy does not say (Policy.max_open_files)
MAX_OPEN_FILES = 16
#: RLIMIT_SIGPENDING of a program under its own uid: queued signals and
#: POSIX timers, each a small kernel object
MAX_PENDING_SIGNALS = 256
#: the key of the default seccomp filter (see Spawner.seccomp_filter)
NO_EXTRAS: tuple = ((), (), False)


class RunSetup(RunState):
    """The spawner's side of a run's set-up."""

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
        last; RLIMIT_AS is not among them (see become_program). Those of
        every engine come from :mod:`sio.workers._engine.rlimits`."""
        lim = self.limits
        # Descriptors are what a program can park kernel memory behind (pipe
        # buffers, epoll watches, timerfds): few of them bound it.
        # (.get: a worker of an older version sends no such field.)
        files = self.policy.get("max_open_files", MAX_OPEN_FILES)
        more = [(resource.RLIMIT_NOFILE, files, files)]
        if self.drop_uid:
            # Counts the tasks of this run's own uid: the kernel's backstop
            # for the thread limit the tracer enforces.
            more.append((resource.RLIMIT_NPROC, self.max_threads, self.max_threads))
            # Queued signals and POSIX timers (kernel memory each) of this
            # run's own uid; only then is the count the run's alone.
            more.append((resource.RLIMIT_SIGPENDING, MAX_PENDING_SIGNALS, MAX_PENDING_SIGNALS))
        return program_rlimits(
            # Only a backstop: the watchdog kills at the limit.
            cpu_time_ms=lim["cpu_time_ms"],
            # One byte over the limit is how we see, after the run, that the
            # program tried to write more even if it ignored SIGXFSZ.
            file_size_bytes=None if self.output_limit is None else self.output_limit + 1,
            stack_kib=lim["stack_kib"], unlimited_stack=True, more=tuple(more))


def rehearse(sp: Spawner) -> None:
    """Touch, in the warm child, what become_program() will use, so that
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


def become_program(sp: Spawner, ctl: _socket.socket, setup: dict, fds: list[int]) -> None:
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
        # Opened while still privileged and before the chroot: the program
        # runs from this descriptor (execveat), so the path to it need not
        # be searchable by the unprivileged uid, nor exist in its view.
        exe_fd = os.open(setup["exe"], os.O_PATH | os.O_CLOEXEC)
        root = setup.get("root")
        if root:
            if setup["proc"]:
                _mount_own_proc(root, setup["landlock"])
            os.chroot(root)
        os.chdir(setup["cwd"])
        if setup["drop_uid"]:
            uid = setup["uid"]
            os.setgroups([])
            os.setresgid(uid, uid, uid)
            os.setresuid(uid, uid, uid)
        apply_rlimits(setup["rlimits"], stack_within_hard=True)
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


def leave_spawner(sock: _socket.socket) -> None:
    """In a child of the spawner (a warm child, or the init of the programs'
    PID namespace): keep nothing of the spawner's but ``sock``, as fd 3."""
    # A new session: its own process group (which Run._kill() kills as a
    # whole) and no controlling terminal (no terminal signals, no /dev/tty).
    # setsid() fails for a process that is already a group leader, so the
    # spawner must not setpgid() it.
    os.setsid()
    # Python ignores SIGPIPE and SIGXFSZ, and ignored signals survive exec:
    # the program must get the default actions (SIGXFSZ is how RLIMIT_FSIZE
    # ends it). SIGCHLD is blocked in the spawner.
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    signal.signal(signal.SIGXFSZ, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # ignored by main()
    signal.pthread_sigmask(signal.SIG_SETMASK, ())
    # None of the spawner's descriptors (the worker's socket, the signalfd,
    # cached rulesets, the previous run's ends) stays here: only 0-2
    # (replaced before exec) and our socket, as fd 3.
    fd = sock.detach()
    if fd != 3:
        os.dup2(fd, 3, inheritable=False)
    os.closerange(4, 1 << 20)


def _mount_own_proc(root: str, landlock: bool) -> None:
    """In the child, inside the run's PID namespace: a /proc of that
    namespace in the view, showing only the processes of our own uid
    (``hidepid=invisible``: not the init); with Landlock, our own entry is
    added to the ruleset (fd 4) as readable. Same as execstub.c."""
    L.mount("proc", root + "/proc", "proc", L.MS_NOSUID | L.MS_NODEV | L.MS_NOEXEC,
            "hidepid=invisible")
    if landlock:
        fd = os.open(f"{root}/proc/{os.getpid()}", os.O_PATH | os.O_CLOEXEC)
        try:
            rule = L.LandlockPathBeneath(L.LL_READ_FILE | L.LL_READ_DIR, fd)
            L.syscall("landlock_add_rule", 4, L.LANDLOCK_RULE_PATH_BENEATH,
                      ctypes.byref(rule), 0)
        finally:
            os.close(fd)
