"""The private filesystem view of supervised runs (the spawner's side).

A spawner that can create a mount namespace builds, once, a small root of its
own: a tmpfs holding read-only bind mounts of the system trees programs and
their runtimes need (``/usr``, and ``/bin``, ``/lib``... as on the host:
symbolic links into ``/usr`` or bind mounts), the few ``/etc`` files the
dynamic loader and libc read, and ``/dev/null``, ``/dev/zero`` and
``/dev/urandom``. Nothing else of the host is there: no ``/tmp``, ``/home``,
``/root``, ``/var``, ``/srv``, no other job's directory, no Filetracker cache,
no sandbox. The spawner itself keeps the host's tree (it reaches job
directories by their paths); each program is chrooted into the view, in a PID
namespace of its own, by its child set-up (``execstub.c`` or
``_setup.become_program``).

Per run, only what must change: a read-only bind mount of the run's job
directory at its own path (so that paths given to the program mean the same
in its world), of the program file and of the run's other read paths when
they are not in the view already, and a ``/proc`` of the run's PID namespace
when the program may read its own ``/proc`` entry (mounted by the child, which
is inside that namespace, and unmounted after the run). The binds stay until
a run needs other ones (unmounting costs ~0.2 ms, an RCU grace period): the
next run of the same job directory (the same inodes) reuses them, any other
run has them replaced before its program starts. No program runs between
runs of a spawner, so nothing sees a stale bind.

Only the system trees are shared between runs of a spawner, and they are
read-only. The program cannot create, rename or remove anything (seccomp
forbids those calls; Landlock forbids writing), so the view is the same for
every run.
"""

from __future__ import annotations

import os

from sio.workers._engine.supervisor import _linux as L
from sio.workers._engine.supervisor.paths import SYSTEM_READ_PATHS

#: Top-level system trees of the view: bound read-only, or, where the host
#: has a symbolic link (merged /usr), the same link.
TREES = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
#: Single files of the host in the view, read-only (those that exist).
FILES = tuple(p for p in SYSTEM_READ_PATHS if p.startswith("/etc/"))
#: Devices: (path, writable)
DEVICES = (("/dev/null", True), ("/dev/zero", True), ("/dev/urandom", False))
_RO = L.MS_RDONLY | L.MS_NOSUID | L.MS_NODEV
#: mount flags of a source a bind's remount keeps (statvfs f_flag values are
#: the MS_ ones): nodev, noexec, noatime, nodiratime, relatime
_KEPT = L.MS_NODEV | L.MS_NOEXEC | 1024 | 2048 | (1 << 21)


def _mount_point() -> str:
    """The directory the view is mounted on: one per user, shared by every
    spawner (each mounts over it in its own namespace, where the tmpfs
    hides it; the host sees an empty directory), so that spawners that are
    killed leave nothing behind. Ours only if we own it and nobody else may
    write it; otherwise a fresh one for this spawner."""
    shared = f"/tmp/.sio-supervisor-view-{os.geteuid()}"
    try:
        os.mkdir(shared, 0o700)
    except FileExistsError:
        pass
    st = os.lstat(shared)
    if (os.path.isdir(shared) and not os.path.islink(shared)
            and st.st_uid == os.geteuid() and not st.st_mode & 0o022):
        return shared
    fresh = f"/tmp/.sio-supervisor-view-{os.getpid()}-{os.urandom(4).hex()}"
    os.mkdir(fresh, 0o700)
    return fresh


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root + "/")


class View:
    """The view root of one spawner (in the spawner's private mount
    namespace, which must exist before :meth:`create` is called)."""

    def __init__(self, root: str) -> None:
        #: where the view is mounted in the spawner's namespace
        self.root = root
        #: paths of the host that exist in the view whatever the run
        self.covered: tuple[str, ...] = ()
        #: the binds in place: (what they show, what to undo), or None
        self.current: tuple[tuple, list[str]] | None = None

    @classmethod
    def create(cls) -> View:
        """Build the view (raises OSError when the kernel refuses)."""
        root = _mount_point()
        view = cls(root)
        try:
            L.mount("tmpfs", root, "tmpfs", L.MS_NOSUID | L.MS_NODEV,
                    "mode=755,size=1m,nr_inodes=4096")
            view._populate()
        except BaseException:
            view.close()
            raise
        return view

    def _populate(self) -> None:
        covered = []
        for tree in TREES:
            target = self.root + tree
            if os.path.islink(tree):
                os.symlink(os.readlink(tree), target)
                covered.append(tree)
            elif os.path.isdir(tree):
                os.mkdir(target, 0o755)
                self._bind(tree, target, writable=False)
                covered.append(tree)
        os.mkdir(self.root + "/etc", 0o755)
        for path in FILES:
            if os.path.exists(path):
                self._bind(path, self._node(path, directory=False), writable=False)
                covered.append(path)
        os.mkdir(self.root + "/dev", 0o755)
        for path, writable in DEVICES:
            self._bind(path, self._node(path, directory=False), writable=writable)
        os.mkdir(self.root + "/proc", 0o555)
        self.covered = tuple(covered)

    def _node(self, path: str, directory: bool) -> str:
        target = self.root + path
        if directory:
            os.mkdir(target, 0o755)
        else:
            os.close(os.open(target, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_CLOEXEC,
                             0o644))
        return target

    @staticmethod
    def _bind(source: str, target: str, writable: bool) -> None:
        L.mount(source, target, None, L.MS_BIND)
        # A bind mount takes the flags of its source; read-only needs a
        # remount of the new mount alone, which must keep the source's
        # flags (in a user namespace they are locked: dropping one is EPERM).
        kept = os.statvfs(target).f_flag & _KEPT
        flags = L.MS_REMOUNT | L.MS_BIND | L.MS_NOSUID | kept | (0 if writable else _RO)
        L.mount(None, target, None, flags)

    def has(self, path: str) -> bool:
        """Whether host ``path`` (absolute) is in the view whatever the run."""
        return any(_inside(path, c) for c in self.covered)

    # --- per run --------------------------------------------------------------

    @staticmethod
    def _identity(paths: list[str]) -> tuple:
        out: list[tuple[str, int | None, int | None]] = []
        for path in paths:
            try:
                st = os.stat(path)
                out.append((path, st.st_dev, st.st_ino))
            except OSError:
                out.append((path, None, None))
        return tuple(out)

    def bind_run(self, cwd: str, paths: list[str]) -> None:
        """Make the view show, read-only, the job directory ``cwd`` and each
        of ``paths`` that exists and is neither in the view nor below
        ``cwd``, at their own paths, and nothing else of a run (on failure,
        raises with no run's bind in place)."""
        key = self._identity([cwd, *sorted(set(paths))])
        if self.current is not None:
            if self.current[0] == key:
                return  # the same files as the last run: already there
            self.unbind_run()
        self.current = (key, self._bind_all(cwd, paths))

    def _bind_all(self, cwd: str, paths: list[str]) -> list[str]:
        made: list[str] = []  # "+path": created node, "=path": mount
        try:
            done: list[str] = []
            for path in [cwd, *sorted(set(paths), key=len)]:
                if (not os.path.exists(path) or self.has(path)
                        or any(_inside(path, d) for d in done)):
                    continue
                done.append(path)
                directory = os.path.isdir(path)
                parent = os.path.dirname(path)
                missing = []
                while not os.path.lexists(self.root + parent):
                    missing.append(parent)
                    parent = os.path.dirname(parent)
                for d in reversed(missing):
                    os.mkdir(self.root + d, 0o755)
                    made.append("+" + d)
                self._node(path, directory)
                made.append("+" + path)
                self._bind(path, self.root + path, writable=False)
                made.append("=" + path)
        except BaseException:
            self._undo(made)
            raise
        return made

    def unmount_proc(self) -> None:
        """Remove the run's ``/proc`` (if the child mounted one)."""
        try:
            L.umount(self.root + "/proc")
        except OSError:
            pass  # the child failed before mounting it

    def unbind_run(self) -> None:
        """Remove the binds of :meth:`bind_run`."""
        if self.current is not None:
            made, self.current = self.current[1], None
            self._undo(made)

    def _undo(self, made: list[str]) -> None:
        for entry in reversed(made):
            target = self.root + entry[1:]
            try:
                if entry[0] == "=":
                    L.umount(target)
                elif os.path.isdir(target) and not os.path.islink(target):
                    os.rmdir(target)
                else:
                    os.unlink(target)
            except OSError:
                pass

    def close(self) -> None:
        """Unmount the view (at the spawner's exit; the mount point stays
        for the next spawner)."""
        try:
            L.umount(self.root)
        except OSError:
            pass
