"""Sandboxes: named trees of prepared software, fetched once and shared.

A sandbox ``NAME`` is a ``NAME.tar.gz`` archive whose only top-level
directory is ``NAME`` (a compiler tree, a tool such as ``proot``). It is
extracted once per machine under the sandboxes directory and then used by
every process and thread there::

    from sio.workers.sandbox import get_sandbox

    with get_sandbox("proot-sandbox") as sb:
        run([os.path.join(sb.path, "proot", "proot"), ...])

Settings (environment variables, read each time they are needed):

``SIO_SANDBOXES_BASEDIR``
    where sandboxes are extracted; default ``~/.sio-sandboxes``. The
    ``pristine`` flavour lives in its ``no-fixup`` subdirectory.
``SIO_SANDBOXES_URL``
    base URL(s) (``http://``, ``https://``, ``file://``; several separated
    by white space are tried in order) holding ``NAME.tar.gz``; default
    :data:`DEFAULT_SANDBOXES_URL`; an empty value disables URLs.
``SIO_SANDBOXES_CHECK_INTERVAL``
    seconds between checks that an installed sandbox is still the newest
    version; default 3600. Within the interval no network is used.

Lookup order of an archive: Filetracker ``/sandboxes/NAME.tar.gz`` (the
client of :func:`sio.workers.ft.instance`), then each URL. A source that
fails (unreachable, missing file, corrupt or hostile archive) is logged and
the next one is tried; when all fail, :class:`SandboxError` lists every
source and why it failed.

Concurrency and crash safety (see ``docs/sandboxes.rst``):

* While a process is inside ``with sandbox:`` it holds a *shared*
  :func:`fcntl.flock` on ``BASEDIR/NAME.lock``; installing or upgrading
  needs the *exclusive* lock, so it waits until no process uses the old
  tree, and exactly one process installs while the others wait and then use
  its result. Threads of one process share the object (one per name and
  flavour) and its lock; a per-object thread lock serialises entry.
* The archive is downloaded into a private staging directory
  ``BASEDIR/.staging/NAME/*``, checked member by member while it is
  extracted there, fixed up, and only then renamed to ``BASEDIR/NAME`` (the
  old tree is first renamed aside into the staging directory and removed
  afterwards). A process killed at any point leaves either the old
  complete tree, the new complete tree, or no tree (which the next user
  installs); never a partial one. Stale staging directories are removed by
  the next process that gets the exclusive lock.
* An installation that fails or is interrupted (an exception, ``Ctrl-C``)
  leaves nothing behind: its staging directories go, and so does the lock
  file when no tree is installed and nobody else holds it. (Whoever takes a
  lock checks that the file it locked is still the one at that path, so a
  lock file removed meanwhile is never relied on.)

Symbolic links with absolute targets (``bin/sh -> /bin/dash``, as in trees
built from Debian packages) are kept and mean paths of the sandbox, as when
it is the root file system: extraction writes through them into the tree,
and host-side code that reads a sandbox's files resolves its paths with
:func:`resolve_in_sandbox` (never following such a link onto the host).
"""

from __future__ import annotations

import copy
import errno
import fcntl
import logging
import os
import posixpath
import shlex
import stat
import sys
import tarfile
import tempfile
import threading
import time
import weakref
import zlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any, ClassVar

from sio.workers._cli import result_only_stdout
from sio.workers.errors import SioWorkersError, UsageError
from sio.workers.util import rmtree

logger = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_SANDBOXES_URL",
    "SandboxError",
    "Sandbox",
    "PristineSandbox",
    "NullSandbox",
    "get_sandbox",
    "installed_sandboxes",
    "resolve_in_sandbox",
    "MAX_LINK_HOPS",
    "main",
]

#: Download server of the original SIO2 sandboxes, tried last when
#: ``SIO_SANDBOXES_URL`` is not set. Nothing here requires it.
DEFAULT_SANDBOXES_URL = "http://downloads.sio2project.mimuw.edu.pl/sandboxes"
DEFAULT_BASEDIR = "~/.sio-sandboxes"
DEFAULT_CHECK_INTERVAL_S = 3600
#: Socket timeout (seconds) for connecting to and reading from a URL.
URL_TIMEOUT_S = 60
#: Filetracker path of sandbox ``NAME``'s archive.
FILETRACKER_PATH = "/sandboxes/{name}.tar.gz"

ELF_LOADER_PATCH = "elf_loader_patch"

#: ``progress(done_bytes, total_bytes_or_None)``, called while downloading.
ProgressCallback = Callable[[int, "int | None"], None]

_HASH = ".hash"
_LAST_CHECK = ".last_check"
_SOURCE = ".source"
_FIXUPS_APPLIED = ".fixups_applied"
_FIXUPS_OPERATIVE = ".fixups_operative"
_ELF_BLACKLIST = ".elf_patcher_blacklist"
_UNPATCHED_SUFFIX = ".old_elf_loader"
_STAGING = ".staging"


class SandboxError(SioWorkersError):
    """A sandbox cannot be installed or used: no source has it, a download
    failed, or an archive is corrupt or unsafe.

    :attr:`failures` holds one ``(source, reason)`` pair per source tried
    when installation failed.
    """

    def __init__(self, message: str, failures: Sequence[tuple[str, str]] = ()) -> None:
        super().__init__(message)
        self.failures = list(failures)


class NoSandboxPath(SandboxError, AssertionError):
    """:attr:`NullSandbox.path` was used (an :class:`AssertionError` as in
    the original)."""


class _SourceFailed(Exception):
    """One source could not provide the archive or its version (internal:
    collected into a :class:`SandboxError`)."""


# --------------------------------------------------------------------------
# Settings (read when used)
# --------------------------------------------------------------------------

def sandboxes_basedir() -> str:
    """``SIO_SANDBOXES_BASEDIR`` (default ``~/.sio-sandboxes``), absolute."""
    return os.path.abspath(os.path.expanduser(
        os.environ.get("SIO_SANDBOXES_BASEDIR") or DEFAULT_BASEDIR))


def sandboxes_urls() -> list[str]:
    """The base URLs from ``SIO_SANDBOXES_URL``: white-space separated; unset
    means :data:`DEFAULT_SANDBOXES_URL`, empty means none."""
    value = os.environ.get("SIO_SANDBOXES_URL")
    return [DEFAULT_SANDBOXES_URL] if value is None else value.split()


def check_interval_s() -> int:
    """``SIO_SANDBOXES_CHECK_INTERVAL`` in seconds (default 3600)."""
    value = os.environ.get("SIO_SANDBOXES_CHECK_INTERVAL", "").strip()
    if not value:
        return DEFAULT_CHECK_INTERVAL_S
    try:
        seconds = int(value)
        if seconds < 0:
            raise ValueError
    except ValueError:
        raise UsageError(f"SIO_SANDBOXES_CHECK_INTERVAL={value!r} is not a whole number of "
                         "seconds >= 0 (default 3600)") from None
    return seconds


def _check_name(name: str) -> None:
    # The name becomes a file name and a path component on servers: keep it
    # to one harmless component.
    if (not isinstance(name, str) or not name or name.startswith(".") or "/" in name
            or "\0" in name or any(c.isspace() for c in name)):
        raise UsageError(f"invalid sandbox name {name!r}: it must be one path component, "
                         "not starting with '.', without spaces (e.g. 'proot-sandbox')")


# --------------------------------------------------------------------------
# Sources
# --------------------------------------------------------------------------

def _why(e: BaseException) -> str:
    # Some libraries end their messages with a newline: keep errors one line.
    return f"{type(e).__name__}: {' '.join(str(e).split())}"


def _filetracker_client() -> Any:
    """The Filetracker client sandboxes are fetched with (a seam for tests)."""
    try:
        from sio.workers import ft
    except ImportError as e:
        raise _SourceFailed(f"sio.workers.ft cannot be imported ({e})") from e
    try:
        return ft.instance()
    except Exception as e:
        raise _SourceFailed(f"no Filetracker client: {_why(e)}") from e


class _FiletrackerSource:
    def __init__(self, name: str) -> None:
        self.path = FILETRACKER_PATH.format(name=name)

    def __str__(self) -> str:
        return f"Filetracker {self.path}"

    def version(self) -> str:
        client = _filetracker_client()
        try:
            version = client.file_version(self.path)
        except Exception as e:
            raise _SourceFailed(_why(e)) from e
        if not version:
            raise _SourceFailed("the server returned no version")
        return str(version)

    def fetch(self, dest: str, progress: ProgressCallback | None) -> str | None:
        client = _filetracker_client()
        try:
            vname = client.get_file(self.path, dest, add_to_cache=False)
        except Exception as e:
            raise _SourceFailed(_why(e)) from e
        _, _, version = str(vname).rpartition("@")
        if progress is not None:
            size = os.path.getsize(dest)
            progress(size, size)
        return version if version.isdigit() else self.version()


class _URLSource:
    def __init__(self, base: str, name: str) -> None:
        self.url = base.rstrip("/") + f"/{name}.tar.gz"

    def __str__(self) -> str:
        return f"URL {self.url}"

    def _open(self, method: str) -> Any:
        import urllib.error
        import urllib.request

        scheme = self.url.partition(":")[0].lower()
        if scheme not in ("http", "https", "file"):
            raise _SourceFailed("unsupported URL scheme (use http://, https:// or file://)")
        try:
            return urllib.request.urlopen(urllib.request.Request(self.url, method=method),
                                          timeout=URL_TIMEOUT_S)
        except urllib.error.HTTPError as e:
            raise _SourceFailed(f"HTTP {e.code} {e.reason}") from e
        except urllib.error.URLError as e:
            raise _SourceFailed(str(e.reason)) from e
        except (OSError, ValueError) as e:  # timeouts, bad URLs
            raise _SourceFailed(_why(e)) from e

    @staticmethod
    def _version(response: Any) -> str | None:
        # The version of a URL is its Last-Modified time (file:// URLs get
        # one from the file's mtime); no header means "unknown".
        from email.utils import parsedate_to_datetime

        value = response.headers.get("Last-Modified")
        if not value:
            return None
        try:
            return str(int(parsedate_to_datetime(value).timestamp()))
        except (TypeError, ValueError):
            return None

    def version(self) -> str | None:
        with self._open("HEAD") as response:
            return self._version(response)

    def fetch(self, dest: str, progress: ProgressCallback | None) -> str | None:
        with self._open("GET") as response:
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            done = 0
            try:
                with open(dest, "wb") as f:
                    while chunk := response.read(1 << 16):
                        f.write(chunk)
                        done += len(chunk)
                        if progress is not None:
                            progress(done, total)
            except OSError as e:  # a connection reset or timeout mid-way
                raise _SourceFailed(f"download interrupted after {done} bytes: {e}") from e
            if total is not None and done != total:
                raise _SourceFailed(f"truncated download: {done} of {total} bytes")
            return self._version(response)


def _sources(name: str) -> list[Any]:
    return [_FiletrackerSource(name), *(_URLSource(u, name) for u in sandboxes_urls())]


# --------------------------------------------------------------------------
# Paths inside a sandbox (chroot semantics)
# --------------------------------------------------------------------------

#: Symbolic links followed while resolving one path inside a sandbox before
#: it counts as a loop (the Linux kernel's own limit).
MAX_LINK_HOPS = 40


class _Escape(Exception):
    """A relative link's target climbs above the sandbox root (internal)."""


class _Loop(Exception):
    """More than :data:`MAX_LINK_HOPS` links followed (internal)."""


def _resolve(root: str, start: Sequence[str], path: str, *, follow_last: bool = True,
             strict: bool = True) -> list[str]:
    """The components, below ``root``, of where ``path`` leads when the tree
    ``root`` is ``/`` (a chroot): every symbolic link met is followed inside
    the tree, an absolute target starting again at ``root``.

    A relative ``path`` starts at the directory ``start`` (components below
    ``root``, themselves without links). ``..`` at the root stays there when
    it comes from an absolute path or link target, as in a chroot; from a
    relative one it raises :class:`_Escape` when ``strict`` (the archive
    checks: a relative link must stay inside on the host too). The last
    component is followed only with ``follow_last``. Components that do not
    exist are kept as they are.

    Nothing outside ``root`` is looked at: only ``os.lstat`` and
    ``os.readlink`` of paths whose directories are real directories of the
    tree (the result has no link in it, but for an unfollowed last one).
    """
    absolute = path.startswith("/")
    done = [] if absolute else list(start)
    # A stack: the next component is last. Each one carries whether '..'
    # stops at the root (it came from an absolute path).
    todo = [(c, absolute or not strict) for c in reversed(path.split("/")) if c not in ("", ".")]
    hops = 0
    while todo:
        comp, clamp = todo.pop()
        if comp == "..":
            if done:
                done.pop()
            elif not clamp:
                raise _Escape()
            continue
        here = os.path.join(root, *done, comp)
        try:
            is_link = stat.S_ISLNK(os.lstat(here).st_mode)
        except (FileNotFoundError, NotADirectoryError):
            is_link = False  # not there (yet): the rest is taken as written
        if not is_link or (not todo and not follow_last):
            done.append(comp)
            continue
        hops += 1
        if hops > MAX_LINK_HOPS:
            raise _Loop()
        target = os.readlink(here)
        if target.startswith("/"):
            done = []
        todo.extend((c, target.startswith("/") or not strict)
                    for c in reversed(target.split("/")) if c not in ("", "."))
    return done


def resolve_in_sandbox(root: str, path: str) -> str:
    """The host path of ``path`` as a program sees it when the sandbox tree
    ``root`` is its root directory (as under :class:`PRootExecutor
    <sio.workers.executors.PRootExecutor>`).

    ``path`` is absolute or relative to the sandbox's ``/``. Symbolic links
    on the way, the last one included, are followed inside the tree: an
    absolute target such as ``/lib/x86_64-linux-gnu/ld-2.31.so`` means
    ``root/lib/x86_64-linux-gnu/ld-2.31.so``, never the host's file, and
    ``..`` stops at ``root``. Use it before the host reads, runs or binds a
    file of a sandbox (``os.path.join(root, path)`` would follow such links
    on the host). The result may not exist.

    :raises OSError: ``ELOOP`` after :data:`MAX_LINK_HOPS` links (an
        installed sandbox has no loops: they are refused).
    """
    try:
        return os.path.join(root, *_resolve(root, (), path, strict=False))
    except _Loop:
        raise OSError(errno.ELOOP, os.strerror(errno.ELOOP),
                      os.path.join(root, path.lstrip("/"))) from None


# --------------------------------------------------------------------------
# Archive extraction
# --------------------------------------------------------------------------

def _extract(archive: str, dest: str, name: str) -> None:
    """Extract ``archive`` into the empty directory ``dest``, which then holds
    ``dest/name``. Raises :class:`_SourceFailed` saying what is wrong with the
    archive; the caller removes ``dest`` in every case."""
    root = os.path.join(os.path.realpath(dest), name)
    # Since 3.11.4 the stdlib 'data' filter also refuses unsafe members and
    # drops setuid bits; our own checks below give the precise messages and
    # cover older interpreters.
    kwargs: dict[str, Any] = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
    seen_root = False
    try:
        # A single pass over the stream: members are checked and extracted
        # one by one, so a corrupt tail is found while extracting (nothing
        # outside 'dest' exists yet) without decompressing twice.
        with tarfile.open(archive, "r:*") as tar:
            for member in tar:
                parts = _member_parts(member, name)
                if not parts:  # the archive's own "./" entry
                    continue
                if len(parts) == 1:
                    if not member.isdir():
                        raise _SourceFailed(f"top-level {member.name!r} is not a directory")
                    seen_root = True
                _check_kind(member)
                _extract_member(tar, member, parts[1:], dest, root, kwargs)
    except _SourceFailed:
        raise
    except tarfile.FilterError as e:
        raise _SourceFailed(f"unsafe archive member: {e}") from e
    except (tarfile.TarError, EOFError, zlib.error) as e:
        raise _SourceFailed(f"corrupt or truncated archive: {_why(e)}") from e
    except OSError as e:
        raise _SourceFailed(f"cannot extract the archive: {e}") from e
    if not seen_root and not os.path.isdir(root):
        raise _SourceFailed(f"the archive does not contain the directory {name!r}")
    # A link checked when it was made could be redirected by a later member
    # (e.g. 'a -> b/..' extracted before 'b -> .', or a loop 'a -> /b',
    # 'b -> /a'): check the final tree too, inside the tree only.
    try:
        for dirpath, _, filenames in _walk(root):
            rel_dir = os.path.relpath(dirpath, root)
            start = [] if rel_dir == "." else rel_dir.split(os.sep)
            for entry in filenames:
                path = os.path.join(dirpath, entry)
                if os.path.islink(path):
                    _check_symlink(os.path.relpath(path, dest), os.readlink(path), start, root)
    except OSError as e:
        raise _SourceFailed(f"cannot check the extracted tree: {e}") from e


def _walk(top: str) -> Iterator[tuple[str, list[str], list[str]]]:
    """Like :func:`os.walk` (top-down, ``dirnames`` may be pruned), but a
    symbolic link is always among the files, whatever it points to:
    ``os.walk`` stats a link's target to sort it, which for an absolute
    link of a sandbox is a file of the host. Errors are raised."""
    stack = [top]
    while stack:
        path = stack.pop()
        dirs: list[str] = []
        files: list[str] = []
        with os.scandir(path) as entries:
            for entry in entries:
                (dirs if entry.is_dir(follow_symlinks=False) else files).append(entry.name)
        yield path, dirs, files
        stack.extend(os.path.join(path, d) for d in reversed(dirs))


def _member_parts(member: tarfile.TarInfo, name: str) -> list[str]:
    if member.name.startswith("/"):
        raise _SourceFailed(f"member {member.name!r} has an absolute path")
    parts = [p for p in member.name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise _SourceFailed(f"member {member.name!r} escapes the sandbox ('..')")
    if not parts:
        if not member.isdir():
            raise _SourceFailed(f"member {member.name!r} has no name")
        return parts
    if parts[0] != name:
        raise _SourceFailed(f"member {member.name!r} is outside the top directory {name!r} "
                            f"(the archive must hold exactly one directory, {name!r})")
    return parts


def _check_kind(member: tarfile.TarInfo) -> None:
    if not (member.isreg() or member.isdir() or member.issym() or member.islnk()):
        kind = ("device file" if member.ischr() or member.isblk()
                else "FIFO" if member.isfifo() else "special file")
        raise _SourceFailed(f"member {member.name!r} is a {kind}")


def _check_symlink(name: str, target: str, start: Sequence[str], root: str) -> None:
    """Refuse symbolic link ``name`` (as named in the archive) with
    ``target`` in directory ``start`` of the tree when, followed inside the
    sandbox, it climbs out of it (relative links only: an absolute one
    means the sandbox's own ``/``) or loops."""
    try:
        _resolve(root, start, target)
    except _Escape:
        raise _SourceFailed(f"symbolic link {name!r} points outside the sandbox "
                            f"({target!r})") from None
    except _Loop:
        raise _SourceFailed(f"symbolic link {name!r} ({target!r}) is a loop: more than "
                            f"{MAX_LINK_HOPS} links followed") from None


def _extract_member(tar: tarfile.TarFile, member: tarfile.TarInfo, rel: list[str], dest: str,
                    root: str, kwargs: dict[str, Any]) -> None:
    """Extract ``member`` (``rel``: its components below the top directory)
    where its name leads inside the sandbox.

    Links already extracted on the way are followed inside the tree (chroot
    semantics), so the member is written at a path with no link in it and
    the host's file system is never written through a link: a directory
    member over a link, a file over a link (as :mod:`tarfile` writes through
    links), a member below a link to a directory all land in the tree.
    """
    name = posixpath.basename(root)
    try:
        if member.issym():
            # A symbolic link replaces what is at its own name: only the
            # directories leading to it are followed.
            where = _resolve(root, (), "/".join(rel[:-1])) + rel[-1:]
        else:
            where = _resolve(root, (), "/".join(rel))
    except _Escape:
        raise _SourceFailed(f"member {member.name!r} is written through a link out of "
                            "the sandbox") from None
    except _Loop:
        raise _SourceFailed(f"member {member.name!r} is written through a loop of "
                            "symbolic links") from None
    if member.issym():
        _check_symlink(member.name, member.linkname, where[:-1], root)
        # Made here rather than by tarfile, whose 'data' filter refuses
        # every absolute target; like it, no owner, mode or time is set.
        path = os.path.join(root, *where)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        if os.path.lexists(path):
            os.unlink(path)  # as tarfile does (a directory is not removed: an error)
        os.symlink(member.linkname, path)
        return
    placed = copy.copy(member)
    placed.name = "/".join([name, *where])
    if member.islnk():
        placed.linkname = "/".join([name, *_hard_link_target(member, name, root)])
    tar.extract(placed, dest, set_attrs=True, **kwargs)


def _hard_link_target(member: tarfile.TarInfo, name: str, root: str) -> list[str]:
    """Where hard link ``member`` leads, below the top directory.

    A tar hard link names another member of the archive (``NAME/...``),
    extracted before it. :func:`os.link` follows a symbolic link there, so
    the name is resolved inside the sandbox, and the result must be a
    regular file of the tree.
    """
    parts = [p for p in member.linkname.split("/") if p not in ("", ".")]
    if member.linkname.startswith("/") or ".." in parts or not parts or parts[0] != name:
        raise _SourceFailed(f"hard link {member.name!r} points outside the sandbox "
                            f"({member.linkname!r})")
    try:
        target = _resolve(root, (), "/".join(parts[1:]))
    except _Escape:
        raise _SourceFailed(f"hard link {member.name!r} points outside the sandbox "
                            f"({member.linkname!r})") from None
    except _Loop:
        raise _SourceFailed(f"hard link {member.name!r} ({member.linkname!r}) goes through "
                            "a loop of symbolic links") from None
    try:
        is_file = stat.S_ISREG(os.lstat(os.path.join(root, *target)).st_mode)
    except (FileNotFoundError, NotADirectoryError):
        is_file = False
    if not is_file:
        raise _SourceFailed(f"hard link {member.name!r} points to {member.linkname!r}, which "
                            "is not a file extracted before it")
    return target


# --------------------------------------------------------------------------
# Fixups
# --------------------------------------------------------------------------

def _unpatched_name(path: str) -> str:
    """Where :func:`_patch_elf_loader` keeps the original of ``path``."""
    return path + _UNPATCHED_SUFFIX


def _patch_elf_loader(tree: str, final_path: str) -> bool:
    """The ``elf_loader_patch`` fixup of a sandbox with a 32-bit loader.

    For a tree with ``lib/ld-linux.so.2``, every executable ELF file (not a
    library, object file or symbolic link, and not listed in
    ``.elf_patcher_blacklist``) is renamed to ``<file>.old_elf_loader`` and
    replaced by a ``/bin/sh`` script that runs it through the sandbox's own
    loader with the sandbox's ``lib`` and ``usr/lib``, so it does not need
    the host's 32-bit libraries. ``tree`` is where the tree is now;
    ``final_path`` where it will be used (the scripts name that).
    Returns whether anything applies (the fixup is "operative").

    Links in the tree mean what they mean with the tree as ``/``: the
    loader, ``lib``, ``usr/lib`` and the blacklist are looked up with
    :func:`resolve_in_sandbox`, and the scripts name the loader and library
    directories they lead to, so an absolute link such as
    ``lib/ld-linux.so.2 -> /lib/i386-linux-gnu/ld-2.31.so`` never makes them
    read or run the host's file. The walk does not follow links.
    """
    def final(rel: str) -> str:
        # Where 'rel' (a path of the sandbox) leads, in the tree's final place.
        inside = os.path.relpath(resolve_in_sandbox(tree, rel), tree)
        return final_path if inside == "." else os.path.join(final_path, inside)

    loader = resolve_in_sandbox(tree, "lib/ld-linux.so.2")
    if not os.path.exists(loader):
        logger.debug("Not patching sandbox %s: no lib/ld-linux.so.2", final_path)
        return False
    blacklist: set[str] = set()
    try:
        with open(resolve_in_sandbox(tree, _ELF_BLACKLIST), encoding="utf-8") as listed:
            blacklist = {os.path.normpath(line.strip().strip("/"))
                         for line in listed if line.strip()}
    except (FileNotFoundError, NotADirectoryError):
        pass
    final_loader = final("lib/ld-linux.so.2")
    libpath = f"{final('lib')}:{final('usr/lib')}"
    for dirpath, dirnames, filenames in _walk(tree):
        rel_dir = os.path.relpath(dirpath, tree)
        dirnames[:] = [d for d in dirnames
                       if os.path.normpath(os.path.join(rel_dir, d)) not in blacklist]
        for fname in filenames:
            rel = os.path.normpath(os.path.join(rel_dir, fname))
            path = os.path.join(dirpath, fname)
            if (rel in blacklist or fname.endswith(_UNPATCHED_SUFFIX) or fname.endswith(".so")
                    or ".so." in fname or fname.endswith(".o")
                    or os.path.lexists(_unpatched_name(path))):
                continue
            st = os.lstat(path)
            if not stat.S_ISREG(st.st_mode) or not st.st_mode & 0o111:
                continue
            with open(path, "rb") as program:
                if program.read(4) != b"\x7fELF":  # bytes: the original compared to str
                    continue
            original = _unpatched_name(os.path.join(final_path, rel))
            os.rename(path, _unpatched_name(path))
            with open(path, "w", encoding="utf-8") as f:
                f.write("#!/bin/sh\n# elf_loader_patch (sioworkers): run with the sandbox's "
                        "loader and libraries\n"
                        f"exec {shlex.quote(final_loader)} --library-path "
                        f"{shlex.quote(libpath)} --inhibit-rpath {shlex.quote(original)} "
                        f"{shlex.quote(original)} \"$@\"\n")
            os.chmod(path, stat.S_IMODE(st.st_mode))
    return True


_FIXUPS: dict[str, Callable[[str, str], bool]] = {ELF_LOADER_PATCH: _patch_elf_loader}


# --------------------------------------------------------------------------
# Sandbox
# --------------------------------------------------------------------------

def _read_marker(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read().strip()
    except (FileNotFoundError, NotADirectoryError):
        return None


def _write_marker(path: str, text: str) -> None:
    # Write beside and rename: other processes may read it at any moment.
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=os.path.basename(path) + ".")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text + "\n")
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


class _Plan:
    """Why a sandbox must be (re)installed."""

    def __init__(self, reason: str, *, required: bool) -> None:
        self.reason = reason
        #: no usable copy exists: a failed installation is an error
        self.required = required


class Sandbox:
    """Sandbox ``name``, extracted under :func:`sandboxes_basedir`.

    Get instances with :func:`get_sandbox` (one per name, flavour and base
    directory in a process: several objects for one sandbox in one process
    would lock each other out). Constructing one downloads nothing;
    entering it (``with sandbox:``) installs or upgrades it when needed and
    holds it until the matching exit. Entering is re-entrant and
    thread-safe.
    """

    #: fixups every installed copy must have had applied
    required_fixups: ClassVar[frozenset[str]] = frozenset({ELF_LOADER_PATCH})
    flavor: ClassVar[str | None] = None
    _subdir: ClassVar[str] = ""

    def __init__(self, name: str, basedir: str | None = None) -> None:
        _check_name(name)
        self.name = name
        root = basedir if basedir is not None else sandboxes_basedir()
        #: directory holding this sandbox, its lock file and its staging area
        self.basedir = os.path.join(root, self._subdir) if self._subdir else root
        #: the installed tree (valid while the sandbox is entered)
        self.path = os.path.join(self.basedir, name)
        self._lock_path = os.path.join(self.basedir, name + ".lock")
        self._staging = os.path.join(self.basedir, _STAGING, name)
        self._tlock = threading.Lock()
        self._depth = 0
        self._fd: int | None = None
        self._pid = os.getpid()
        self._operative: frozenset[str] | None = None
        os.makedirs(self.basedir, mode=0o700, exist_ok=True)

    def __repr__(self) -> str:
        flavor = f" ({self.flavor})" if self.flavor else ""
        return f"<{type(self).__name__} {self.name!r}{flavor} at {self.path}>"

    # -- public --------------------------------------------------------------

    def __enter__(self) -> Sandbox:
        self._enter(refresh=False, progress=None)
        return self

    def __exit__(self, *exc_info: object) -> None:
        with self._tlock:
            if self._depth <= 0:
                raise SandboxError(f"{self!r} exited more often than entered")
            self._depth -= 1
            if self._depth == 0 and self._fd is not None:
                fcntl.flock(self._fd, fcntl.LOCK_UN)

    def prepare(self, *, refresh: bool = False,
                progress: ProgressCallback | None = None) -> str:
        """Install or upgrade the sandbox if needed, and return its path.

        :param refresh: check the version now, whatever
            ``SIO_SANDBOXES_CHECK_INTERVAL`` says, and raise when an upgrade
            fails (normally the installed copy is kept, with a warning).
        :param progress: called as ``progress(done_bytes, total_bytes)``
            while downloading (``total_bytes`` is None when unknown).
        :raises SandboxError: when no usable copy can be had.
        """
        self._enter(refresh=refresh, progress=progress)
        self.__exit__(None, None, None)
        return self.path

    def has_fixup(self, name: str) -> bool:
        """Whether fixup ``name`` did something to the installed tree
        (``.fixups_operative``)."""
        if self._operative is None:
            text = _read_marker(os.path.join(self.path, _FIXUPS_OPERATIVE)) or ""
            self._operative = frozenset(text.split())
        return name in self._operative

    @property
    def installed_version(self) -> str | None:
        """The version installed (``.hash``: a Filetracker version or a URL's
        Last-Modified as Unix time), ``""`` when the source gave none, None
        when not installed."""
        return _read_marker(os.path.join(self.path, _HASH))

    @property
    def installed_from(self) -> str | None:
        """The source the installed copy came from (``.source``)."""
        return _read_marker(os.path.join(self.path, _SOURCE))

    # -- locking ---------------------------------------------------------------

    def _lock(self, operation: int) -> int:
        """``flock(operation)`` on the lock file; its descriptor.

        A failed installation removes the lock file (under the exclusive
        lock): whoever was waiting for it then holds a lock on a file that
        is no longer there, which excludes nobody. So, once locked, check
        that the path still names the file we locked, and start again with
        the new file when it does not.
        """
        while True:
            fd = self._lock_fd()
            fcntl.flock(fd, operation)
            try:
                st, current = os.fstat(fd), os.stat(self._lock_path)
                same = (st.st_dev, st.st_ino) == (current.st_dev, current.st_ino)
            except FileNotFoundError:
                same = False
            if same:
                return fd
            os.close(fd)  # releases the lock on the removed file
            self._fd = None

    def _lock_fd(self) -> int:
        if self._fd is not None and self._pid != os.getpid():
            # A forked child shares the parent's open file description, so
            # unlocking it would unlock the parent: use a fresh one instead.
            os.close(self._fd)
            self._fd, self._depth = None, 0
        if self._fd is None:
            self._fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            self._pid = os.getpid()
        return self._fd

    def _enter(self, *, refresh: bool, progress: ProgressCallback | None) -> None:
        with self._tlock:
            # Already entered in this process: the tree stays as it is (an
            # upgrade would pull it from under our own feet).
            if self._depth == 0:
                self._operative = None  # another process may have upgraded it
                self._acquire(refresh, progress)
            self._depth += 1

    def _acquire(self, refresh: bool, progress: ProgressCallback | None) -> None:
        try:
            try:
                self._lock(fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                pass
            else:
                # Nobody uses or installs it right now: a good moment to
                # clear what a killed installer left behind.
                self._clean_staging()
            fd = self._lock(fcntl.LOCK_SH)
            plan = self._check(refresh)
            if plan is not None:
                # flock cannot upgrade atomically: others may install while
                # we wait, so decide again once the lock is ours.
                fcntl.flock(fd, fcntl.LOCK_UN)
                self._lock(fcntl.LOCK_EX)
                plan = self._check(refresh)
                if plan is not None:
                    self._clean_staging()
                    self._install(plan, strict=refresh, progress=progress)
                self._lock(fcntl.LOCK_SH)
        except BaseException:
            self._release_after_failure()
            raise

    def _release_after_failure(self) -> None:
        """Unlock after a failed entry; when nothing is installed and nobody
        else holds the lock, remove the staging directories and the lock
        file as well: a failed or interrupted installation leaves nothing."""
        fd = self._fd
        if fd is None:
            return
        try:
            # (Converting a shared lock we hold to exclusive: fails at once
            # when another process holds it too.)
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fcntl.flock(fd, fcntl.LOCK_UN)
            return
        try:
            if os.path.lexists(self.path):
                return  # an installed tree stays usable, with its lock file
            self._clean_staging()
            self._drop_staging_dirs()
            st, current = os.fstat(fd), os.stat(self._lock_path)
            if (st.st_dev, st.st_ino) == (current.st_dev, current.st_ino):
                os.unlink(self._lock_path)
        except OSError as e:
            logger.warning("Cannot remove what the failed installation of sandbox %r "
                           "left in %s: %s", self.name, self.basedir, e)
        finally:
            # Closing releases the lock; the next entry opens the file anew.
            os.close(fd)
            self._fd = None

    def __del__(self) -> None:
        fd = getattr(self, "_fd", None)
        if fd is not None and getattr(self, "_pid", None) == os.getpid():
            try:
                os.close(fd)  # releases the flock
            except OSError:
                pass

    # -- checking ----------------------------------------------------------------

    def _check(self, refresh: bool) -> _Plan | None:
        """What to do, under at least a shared lock: None = use as is."""
        if not os.path.isdir(self.path):
            return _Plan("not installed", required=True)
        applied = set((_read_marker(os.path.join(self.path, _FIXUPS_APPLIED)) or "").split())
        if not self.required_fixups <= applied:
            return _Plan("installed without fixups "
                         + ", ".join(sorted(self.required_fixups - applied)), required=True)
        last = _read_marker(os.path.join(self.path, _LAST_CHECK)) or ""
        if not refresh and last.isdigit() and int(last) + check_interval_s() > time.time():
            return None
        installed = self.installed_version
        failures = []
        for source in _sources(self.name):
            try:
                version = source.version()
            except _SourceFailed as e:
                failures.append(f"{source}: {e}")
                continue
            if version is None:
                failures.append(f"{source}: no version (Last-Modified) given")
                continue
            if version != installed:
                return _Plan(f"version {installed or 'unknown'} installed, {version} "
                             f"available from {source}", required=False)
            break
        else:
            logger.warning("Cannot check whether sandbox %r is up to date, keeping the "
                           "installed copy: %s", self.name, "; ".join(failures))
        self._mark_checked()
        return None

    def _mark_checked(self) -> None:
        try:
            _write_marker(os.path.join(self.path, _LAST_CHECK), str(int(time.time())))
        except OSError as e:
            logger.warning("Cannot record the check time of sandbox %r: %s", self.name, e)

    # -- installing ---------------------------------------------------------------

    def _clean_staging(self) -> None:
        # Only called under the exclusive lock: nothing in here is in use.
        if os.path.isdir(self._staging):
            for entry in os.listdir(self._staging):
                logger.info("Removing %s left by an interrupted installation",
                            os.path.join(self._staging, entry))
                rmtree(os.path.join(self._staging, entry))

    def _install(self, plan: _Plan, *, strict: bool,
                 progress: ProgressCallback | None) -> None:
        logger.info("Installing sandbox %r into %s (%s)", self.name, self.path, plan.reason)
        failures: list[tuple[str, str]] = []
        for source in _sources(self.name):
            try:
                self._install_from(source, progress)
                self._operative = None
                return
            except _SourceFailed as e:
                # Not a warning yet: a later source may do, and if none does
                # the error lists this.
                logger.info("Sandbox %r not installed from %s: %s", self.name, source, e)
                failures.append((str(source), str(e)))
        tried = "; ".join(f"{s}: {r}" for s, r in failures) or "no sources are configured"
        message = f"cannot install sandbox {self.name!r}: {tried}"
        if not failures or not any(s.startswith("URL") for s, _ in failures):
            message += " (set SIO_SANDBOXES_URL to a URL that holds it, or upload it to " \
                       f"Filetracker as {FILETRACKER_PATH.format(name=self.name)})"
        if plan.required or strict:
            raise SandboxError(message, failures)
        logger.warning("%s; keeping the installed copy", message)
        self._mark_checked()

    def _drop_staging_dirs(self) -> None:
        """Remove ``.staging/NAME`` and ``.staging`` when they are empty."""
        for directory in (self._staging, os.path.dirname(self._staging)):
            try:
                os.rmdir(directory)
            except OSError:
                return  # not empty (another sandbox installing), or gone

    def _install_from(self, source: Any, progress: ProgressCallback | None) -> None:
        for attempt in range(3):
            try:
                os.makedirs(self._staging, mode=0o700, exist_ok=True)
                work = tempfile.mkdtemp(dir=self._staging, prefix="install-")
                break
            except FileNotFoundError:
                # Another sandbox's installer removed the empty .staging
                # between our two mkdirs: create it again.
                if attempt == 2:
                    raise
        try:
            archive = os.path.join(work, "archive")
            version = source.fetch(archive, progress)
            tree_dir = os.path.join(work, "tree")
            os.mkdir(tree_dir)
            _extract(archive, tree_dir, self.name)
            os.unlink(archive)  # free the space before the tree is doubled
            tree = os.path.join(tree_dir, self.name)
            try:
                operative = [f for f in sorted(self.required_fixups)
                             if _FIXUPS[f](tree, self.path)]
            except OSError as e:
                raise _SourceFailed(f"cannot apply fixups: {e}") from e
            _write_marker(os.path.join(tree, _FIXUPS_APPLIED),
                          "\n".join(sorted(self.required_fixups)))
            _write_marker(os.path.join(tree, _FIXUPS_OPERATIVE), "\n".join(operative))
            _write_marker(os.path.join(tree, _HASH), version or "")
            _write_marker(os.path.join(tree, _SOURCE), str(source))
            _write_marker(os.path.join(tree, _LAST_CHECK), str(int(time.time())))
            # The swap: two renames within one file system. Killed between
            # them, the sandbox is just absent and is installed again.
            if os.path.lexists(self.path):
                os.rename(self.path, os.path.join(work, "old"))
            os.rename(tree, self.path)
            logger.info("Installed sandbox %r version %s from %s", self.name,
                        version or "unknown", source)
        finally:
            rmtree(work)
            self._drop_staging_dirs()


class PristineSandbox(Sandbox):
    """The ``pristine`` flavour: no fixups (executables are never patched),
    kept apart in ``BASEDIR/no-fixup``; used as a chroot."""

    required_fixups: ClassVar[frozenset[str]] = frozenset()
    flavor: ClassVar[str | None] = "pristine"
    _subdir: ClassVar[str] = "no-fixup"


class NullSandbox:
    """Stands for "no sandbox": a context manager that does nothing and is
    false; its :attr:`path` raises :class:`NoSandboxPath`."""

    name = None

    def __enter__(self) -> NullSandbox:
        return self

    def __exit__(self, *exc_info: object) -> None:
        return None

    def __bool__(self) -> bool:
        return False

    @property
    def path(self) -> str:
        raise NoSandboxPath("NullSandbox has no path")

    def has_fixup(self, name: str) -> bool:
        return False


_FLAVORS: dict[str | None, type[Sandbox]] = {None: Sandbox, "pristine": PristineSandbox}
_registry: weakref.WeakValueDictionary[tuple[str | None, str, str], Sandbox] = \
    weakref.WeakValueDictionary()
_registry_lock = threading.Lock()


def get_sandbox(name: str, flavor: str | None = None) -> Sandbox:
    """The sandbox ``name`` in ``flavor`` (None, or ``'pristine'`` for the
    copy without fixups): one object per process while it is referenced.

    Nothing is downloaded until it is entered. Reads
    ``SIO_SANDBOXES_BASEDIR`` now; the other settings when entered.

    :raises UsageError: for an invalid name or an unknown flavour.
    """
    try:
        cls = _FLAVORS[flavor]
    except KeyError:
        raise UsageError(f"unknown sandbox flavor {flavor!r} (known: None, 'pristine')") from None
    _check_name(name)
    basedir = sandboxes_basedir()
    key = (flavor, basedir, name)
    with _registry_lock:
        sandbox = _registry.get(key)
        if sandbox is None:
            sandbox = cls(name, basedir)
            _registry[key] = sandbox
        return sandbox


def installed_sandboxes() -> list[Sandbox]:
    """Every sandbox installed under ``SIO_SANDBOXES_BASEDIR``, both flavours,
    sorted by flavour and name."""
    found = []
    for flavor, cls in _FLAVORS.items():
        base = os.path.join(sandboxes_basedir(), cls._subdir)
        try:
            names = sorted(os.listdir(base))
        except FileNotFoundError:
            continue
        for entry in names:
            if (not entry.startswith(".") and entry != PristineSandbox._subdir
                    and os.path.isfile(os.path.join(base, entry, _FIXUPS_APPLIED))):
                found.append(get_sandbox(entry, flavor))
    return found


# --------------------------------------------------------------------------
# sio-get-sandbox
# --------------------------------------------------------------------------

USAGE_EPILOG = """\
Each NAME is installed (or upgraded when a newer version is available) under
SIO_SANDBOXES_BASEDIR (default ~/.sio-sandboxes) and its path is printed.
Archives are looked up in Filetracker as /sandboxes/NAME.tar.gz, then at
SIO_SANDBOXES_URL/NAME.tar.gz.

exit status: 0 all installed, 1 a sandbox could not be installed, 2 usage error
"""


class _Progress:
    """Download progress on standard error, at most twice a second."""

    def __init__(self, name: str, stream: Any = None) -> None:
        self.name = name
        self.stream = stream or sys.stderr
        self.last = 0.0
        self.shown = False

    def __call__(self, done: int, total: int | None) -> None:
        now = time.monotonic()
        finished = total is not None and done >= total
        if (total is not None and total < (1 << 20)) or (now - self.last < 0.5 and not finished):
            return  # small downloads are not worth a progress line
        self.last = now
        mib = done / (1 << 20)
        text = (f"{mib:.1f} of {total / (1 << 20):.1f} MiB ({100 * done // total}%)"
                if total else f"{mib:.1f} MiB")
        end = "\n" if finished else ("\r" if self.stream.isatty() else "\n")
        self.stream.write(f"sio-get-sandbox: downloading {self.name}: {text}{end}")
        self.stream.flush()
        self.shown = True


def _format_version(version: str | None) -> str:
    if not version:
        return "unknown"
    if version.isdigit() and 10**9 <= int(version) < 10**10:  # looks like Unix time
        stamp = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(int(version)))
        return f"{version} ({stamp})"
    return version


def main(argv: Sequence[str] | None = None) -> int:
    """``sio-get-sandbox``: install the named sandboxes, or list them."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="sio-get-sandbox", description="Install sioworkers sandboxes.",
        epilog=USAGE_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", metavar="NAME", help="sandboxes to install")
    parser.add_argument("--list", action="store_true",
                        help="list the installed sandboxes with their versions")
    parser.add_argument("--pristine", action="store_true",
                        help="the pristine flavour (no fixups), as used for chroots")
    parser.add_argument("--debug", action="store_true",
                        help="log at DEBUG level and show tracebacks")
    args = parser.parse_args(argv)
    if not args.names and not args.list:
        parser.print_usage(sys.stderr)
        print("sio-get-sandbox: error: give sandbox names to install, or --list",
              file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.WARNING,
                        format="sio-get-sandbox: %(levelname)s: %(message)s")
    flavor = "pristine" if args.pristine else None
    try:
        if args.list:
            found = installed_sandboxes()
            for sb in found:
                label = sb.name + (f" ({sb.flavor})" if sb.flavor else "")
                print(f"{label}\t{_format_version(sb.installed_version)}\t"
                      f"{sb.installed_from or 'unknown source'}\t{sb.path}")
            if not found:
                # On standard error: standard output lists sandboxes only.
                print(f"sio-get-sandbox: no sandboxes installed in {sandboxes_basedir()} "
                      "(SIO_SANDBOXES_BASEDIR)", file=sys.stderr)
        for name in args.names:
            sandbox = get_sandbox(name, flavor)
            # Standard output is for the paths only (the filetracker client
            # prints protocol notes there).
            with result_only_stdout():
                path = sandbox.prepare(refresh=True, progress=_Progress(name))
            print(path, flush=True)
    except UsageError as e:
        print(f"sio-get-sandbox: error: {e}", file=sys.stderr)
        return 2
    except (SandboxError, OSError) as e:
        if args.debug:
            raise
        print(f"sio-get-sandbox: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())


# The original's module constants SANDBOXES_BASEDIR, SANDBOXES_URL and
# CHECK_INTERVAL, which it read once at import. Here settings are read when
# used, so these names give the current value of each setting when looked
# up (PEP 562), from the same functions the sandboxes use.
_LEGACY_SETTINGS: dict[str, Callable[[], Any]] = {
    "SANDBOXES_BASEDIR": lambda: sandboxes_basedir(),
    "SANDBOXES_URL": lambda: " ".join(sandboxes_urls()),
    "CHECK_INTERVAL": lambda: check_interval_s(),
}


def __getattr__(name: str) -> Any:
    """``SANDBOXES_BASEDIR`` (str, absolute), ``SANDBOXES_URL`` (str, the
    base URLs separated by spaces, empty for none) and ``CHECK_INTERVAL``
    (int, seconds): the original's names of the settings
    ``SIO_SANDBOXES_BASEDIR``, ``SIO_SANDBOXES_URL`` and
    ``SIO_SANDBOXES_CHECK_INTERVAL``, read now."""
    setting = _LEGACY_SETTINGS.get(name)
    if setting is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return setting()
