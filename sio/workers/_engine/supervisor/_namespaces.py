"""The spawner's namespaces and the programs' private view made in them.

The spawner enters new mount/net/IPC/UTS (and, unprivileged, user)
namespaces once, at start-up, so that every program inherits them at no
per-run cost; the view (:mod:`._view`) is built in its mount namespace.
Apart from the spawner's process lifecycle because what is possible here
depends on the machine, and the capability probe reports what is missing.
"""

from __future__ import annotations

import os

from sio.workers._engine.supervisor import _linux as L
from sio.workers._engine.supervisor._view import View


def enter_namespaces() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Put the spawner itself into new mount/net/IPC/UTS namespaces (plus a
    user namespace when not root, which the others need), so that every
    program it starts inherits them at no per-run cost. Creating a network
    namespace per run costs ~1.2 ms here; sharing one empty namespace between
    this spawner's programs is as good, since they cannot create sockets or
    IPC objects. The mount namespace is the spawner's own, where it builds
    the programs' view (see make_view); the PID namespaces are per run."""
    names = ["mnt", "net", "ipc", "uts"]
    flags = L.CLONE_NEWNS | L.CLONE_NEWNET | L.CLONE_NEWIPC | L.CLONE_NEWUTS
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
        if flags & L.CLONE_NEWNS:
            # Without a mount namespace the others may still be possible.
            names.remove("mnt")
            outer = _enter_namespaces_without_mnt(flags & ~L.CLONE_NEWNS, names)
            return outer[0], (f"cannot create a mount namespace ({e.strerror})", *outer[1])
        return (), (f"cannot create {'/'.join(names)} namespaces ({e.strerror})",)
    return tuple(names), ()


def _enter_namespaces_without_mnt(flags: int, names: list[str]
                                  ) -> tuple[tuple[str, ...], tuple[str, ...]]:
    uid, gid = os.geteuid(), os.getegid()
    try:
        L.unshare(flags)
        if flags & L.CLONE_NEWUSER:
            for name, text in (("setgroups", "deny"), ("uid_map", f"{uid} {uid} 1"),
                               ("gid_map", f"{gid} {gid} 1")):
                with open(f"/proc/self/{name}", "w") as f:
                    f.write(text)
    except OSError as e:
        return (), (f"cannot create {'/'.join(names)} namespaces ({e.strerror})",)
    return tuple(names), ()


def make_view(namespaces: tuple[str, ...]) -> tuple[View | None, str | None]:
    """The programs' private view (see _view), or None and why not."""
    if "mnt" not in namespaces:
        return None, "no mount namespace"
    try:
        # Our mounts must not reach the host; the host's new mounts (job
        # directories on a new file system) still reach us.
        L.mount(None, "/", None, L.MS_REC | L.MS_SLAVE)
    except OSError as e:
        return None, f"cannot set up mount propagation ({e.strerror})"
    try:
        return View.create(), None
    except OSError as e:
        return None, f"cannot create the private view ({e.strerror})"
