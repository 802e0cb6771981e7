"""Small helpers shared by every part of sioworkers.

* entry points: :func:`first_entry_point`, :func:`entry_point_names`,
  :func:`clear_entry_point_cache` (one cached resolver over
  :mod:`importlib.metadata`);
* the job's temporary directory: :class:`TemporaryCwd`, :func:`tempcwd`
  (context-local; the process working directory is never changed),
  :func:`remove_idle_directories`;
* time conversions: :func:`s2ms`, :func:`ms2s`, :func:`ceil_ms2s`;
* files: :func:`path_join_abs`, :class:`Writable`, :func:`rmtree`,
  :func:`ensure_mode`, :func:`mkdir`, :func:`is_exe`;
* text: :func:`replace_invalid_UTF`, :func:`decode_fields`, :func:`json_dumps`;
* :func:`null_ctx_manager`, :class:`PerfTimer`.

Heavy modules (``importlib.metadata``, ``difflib``) are imported only when
first needed: ``sio-batch`` imports this module on every job.
"""

from __future__ import annotations

import atexit
import contextvars
import functools
import json
import logging
import math
import os
import shutil
import stat
import sys
import tempfile
import threading
import time
TYPE_CHECKING = False  # as typing.TYPE_CHECKING, without importing typing (~2 ms)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from typing import Any, TypeVar

    _F = TypeVar("_F", bound=Callable[..., Any])

from sio.workers.errors import EntryPointNotFound, NoTemporaryCwd

logger = logging.getLogger(__name__)

__all__ = [
    "first_entry_point",
    "entry_point_names",
    "clear_entry_point_cache",
    "TemporaryCwd",
    "tempcwd",
    "remove_idle_directories",
    "s2ms",
    "ms2s",
    "ceil_ms2s",
    "path_join_abs",
    "Writable",
    "rmtree",
    "ensure_mode",
    "mkdir",
    "is_exe",
    "replace_invalid_UTF",
    "decode_fields",
    "json_dumps",
    "CompatibleJSONEncoder",
    "null_ctx_manager",
    "PerfTimer",
    "ClassInitMeta",
    "ClassInitBase",
    "RegisteredSubclassesBase",
]


# --------------------------------------------------------------------------
# Entry points
# --------------------------------------------------------------------------

_ep_lock = threading.Lock()
_ep_groups: dict[str, tuple[_Entry, ...]] = {}
_ep_loaded: dict[tuple[str, str | None], Any] = {}


class _Entry:
    """One entry point: its name and ``module:attr`` value.

    Loading is done here rather than by :class:`importlib.metadata.EntryPoint`
    so that entries read from the on-disk index need no
    :mod:`importlib.metadata` import.
    """

    __slots__ = ("name", "value")

    def __init__(self, name: str, value: str) -> None:
        self.name = name
        self.value = value

    def load(self) -> Any:
        import importlib

        module, _, attrs = self.value.partition(":")
        obj = importlib.import_module(module.strip())
        for attr in filter(None, attrs.split("[")[0].strip().split(".")):
            obj = getattr(obj, attr)
        return obj


# --- The entry-point index ---------------------------------------------------
#
# Every job start (sio-batch, a Celery worker's first job) needs the entry
# points. Importing importlib.metadata and reading every installed
# distribution's metadata costs more than the rest of sio-batch's start-up, so
# what importlib.metadata found is kept in a small JSON file, together with a
# fingerprint of what it read: the sys.path entries, their modification times
# and those of every entry_points.txt in them. Installing, removing or
# editing a distribution changes the fingerprint, and then importlib.metadata
# (the source of truth) is asked again. A name missing from a valid index is
# also looked up again before it is reported missing.


def _index_path() -> str:
    import zlib  # already loaded by shutil; hashlib would cost a library load

    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    # One index per interpreter and sys.path: a console script (its bin
    # directory first on the path) and 'python -c' (the cwd first) would
    # otherwise overwrite each other's index on every start.
    key = "\0".join([sys.executable, *sys.path]).encode("utf-8", "surrogateescape")
    tag = f"{zlib.crc32(key):08x}"
    return os.path.join(base, "sioworkers", f"entry-points-{tag}.json")


def _fingerprint() -> list[Any]:
    # The names of the distributions on sys.path and the stat of their
    # entry_points.txt: adding, removing or editing one changes it. Directory
    # mtimes are not used: sys.path[0] is often a busy directory (the cwd).
    parts: list[Any] = []
    for entry in sys.path:
        try:
            st = os.stat(entry or ".")
        except OSError:
            parts.append([entry, None])
            continue
        if not stat.S_ISDIR(st.st_mode):  # a zip archive on the path
            parts.append([entry, st.st_mtime_ns, st.st_size])
            continue
        parts.append([entry])
        try:
            with os.scandir(entry or ".") as it:
                names = sorted(d.name for d in it
                               if d.name.endswith((".dist-info", ".egg-info")))
        except OSError:
            parts.append([entry, "unreadable"])
            continue
        for name in names:
            try:
                ep = os.stat(os.path.join(entry or ".", name, "entry_points.txt"))
                parts.append([name, ep.st_mtime_ns, ep.st_size])
            except OSError:
                parts.append([name])
    return parts


def _read_index(fingerprint: list[Any]) -> dict[str, list[list[str]]] | None:
    try:
        with open(_index_path(), encoding="utf-8") as f:
            data = json.load(f)
        if data.get("fingerprint") == fingerprint:
            return data["groups"]
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return None


def _write_index(fingerprint: list[Any], groups: dict[str, list[list[str]]]) -> None:
    path = _index_path()
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".entry-points-")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump({"fingerprint": fingerprint, "groups": groups}, f)
        os.replace(tmp, path)  # atomic: readers see the old or the new index
    except OSError as e:
        logger.debug("Cannot write the entry-point index %s: %s", path, e)


def _scan_all_groups() -> dict[str, list[list[str]]]:
    from importlib.metadata import entry_points

    groups: dict[str, list[list[str]]] = {}
    found: Any = entry_points()
    if isinstance(found, dict):
        # Python 3.11 returns the dict-like SelectableGroups, whose own
        # methods warn; the plain dict view of its values does not.
        found = [ep for eps in dict.values(found) for ep in eps]
    for ep in found:
        groups.setdefault(ep.group, []).append([ep.name, ep.value])
    return groups


_ep_index: dict[str, list[list[str]]] | None = None


def _group_entries(group: str, *, fresh: bool = False) -> tuple[_Entry, ...]:
    global _ep_index
    entries = None if fresh else _ep_groups.get(group)
    if entries is None:
        if _ep_index is None or fresh:
            fingerprint = _fingerprint()
            index = None if fresh else _read_index(fingerprint)
            if index is None:
                index = _scan_all_groups()
                _write_index(fingerprint, index)
            _ep_index = index
        entries = tuple(_Entry(n, v) for n, v in _ep_index.get(group, ()))
        _ep_groups[group] = entries
    return entries


def entry_point_names(group: str) -> list[str]:
    """Sorted, distinct names registered in entry-point group ``group``."""
    with _ep_lock:
        return sorted({ep.name for ep in _group_entries(group)})


def clear_entry_point_cache() -> None:
    """Forget what was scanned and loaded, e.g. after installing a plugin
    distribution into the running interpreter."""
    global _ep_index
    with _ep_lock:
        _ep_groups.clear()
        _ep_loaded.clear()
        _ep_index = None
    try:
        import importlib

        importlib.invalidate_caches()
    except Exception:  # pragma: no cover - best effort only
        pass


def first_entry_point(group: str, name: str | None = None) -> Any:
    """Load the entry point ``name`` of ``group`` and return the object.

    Several distributions may register the same name: they are tried in
    the order :mod:`importlib.metadata` lists them and the first that
    imports wins. With ``name=None`` the first loadable entry of the group
    is returned, whatever its name.

    Results are cached for the life of the process (see
    :func:`clear_entry_point_cache`).

    :raises EntryPointNotFound: (a :class:`RuntimeError`) when nothing
        loads; the message names the group, the name, the names that are
        available, the closest one, and why each candidate failed to import.
    """
    key = (group, name)
    try:
        return _ep_loaded[key]
    except KeyError:
        pass
    with _ep_lock:
        if key in _ep_loaded:
            return _ep_loaded[key]
        failures: list[str] = []
        entries = _group_entries(group)
        candidates = [ep for ep in entries if name is None or ep.name == name]
        if not candidates:
            # The index may miss a change its fingerprint cannot see: ask
            # importlib.metadata before calling the name missing.
            entries = _group_entries(group, fresh=True)
            candidates = [ep for ep in entries if name is None or ep.name == name]
        for ep in candidates:
            try:
                obj = ep.load()
            except Exception as e:  # an import error of a plugin, any kind
                logger.warning("Cannot load entry point %s:%s (%s): %s: %s",
                               group, ep.name, ep.value, type(e).__name__, e)
                failures.append(f"{ep.value} failed to import: {type(e).__name__}: {e}")
                continue
            _ep_loaded[key] = obj
            return obj
        available = sorted({ep.name for ep in entries})
    raise EntryPointNotFound(group, name or "", _not_found_message(group, name, available, failures))


def _not_found_message(group: str, name: str | None, available: list[str],
                       failures: list[str]) -> str:
    what = f"{name!r}" if name is not None else "any entry"
    if failures:
        msg = f"entry point {what} in group {group!r} could not be loaded: " + "; ".join(failures)
    else:
        msg = f"no entry point {what} in group {group!r}"
        if name is not None:
            import difflib

            close = difflib.get_close_matches(name, available, n=1, cutoff=0.5)
            if close:
                msg += f"; did you mean {close[0]!r}?"
        msg += " (available: " + (", ".join(available) if available else "none") + ")"
    return msg


# --------------------------------------------------------------------------
# The job's temporary directory
# --------------------------------------------------------------------------

# Context-local rather than thread-local: every thread starts with an empty
# context, so threads get their own directory as before, and asyncio tasks
# are isolated too.
_tmpdir: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "sio_workers_tmpdir", default=None)

# --- Reused job directories ---------------------------------------------------
#
# Creating an inode costs ~0.4 ms on the ext4 /tmp of the machines we run on
# (mkdir as much as a file), which is a large part of a small judging job.
# So the root of a finished job directory is emptied, renamed to an idle
# name and kept for a next job, which renames it to a fresh random name:
# the name a job saw never exists after the job, and no job sees another's
# files. A rename or an emptiness check costs ~10 us.
#
# The pool belongs to one process: a forked child starts with an empty one
# (its parent keeps and removes its own directories), and every entry is
# checked again when taken (still our empty 0700 directory in the current
# temporary directory), since a straggler of a finished job, or anything
# else running as our uid, may have changed it since.

#: Idle directories kept at most per process; more concurrent jobs than this
#: pay the creation of their directories as before.
_POOL_MAX = 4
_pool_lock = threading.Lock()
_pool: list[str] = []
_pool_pid = os.getpid()


def _forget_pool_in_child() -> None:
    # The parent's directories are its own: neither reused nor removed
    # here. The lock may have been held by another thread at fork time.
    global _pool_lock, _pool, _pool_pid
    _pool_lock = threading.Lock()
    _pool = []
    _pool_pid = os.getpid()


os.register_at_fork(after_in_child=_forget_pool_in_child)


def remove_idle_directories() -> None:
    """Remove the idle job directories :class:`TemporaryCwd` keeps for reuse
    in this process.

    Registered with :mod:`atexit`. A process that ends without running
    ``atexit`` handlers (:func:`os._exit`, as Celery's pool processes do)
    should call it before: ``sio.celery.job`` does so for Celery's pool
    processes. Later uses of :class:`TemporaryCwd` work as before.
    """
    with _pool_lock:
        if _pool_pid != os.getpid():
            return
        idle = _pool[:]
        _pool.clear()
    for path in idle:
        try:
            rmtree(path)
        except OSError as e:  # at exit: say it, do not stop the other clean-ups
            logger.debug("Cannot remove the idle job directory %s: %s", path, e)


atexit.register(remove_idle_directories)


def _fresh_name(parent: str, prefix: str) -> str:
    return os.path.join(parent, prefix + os.urandom(5).hex())


def _reusable(path: str) -> bool:
    """Whether the idle ``path`` is still what it was when pooled: our own
    directory (not a symlink), mode 0700, empty."""
    try:
        st = os.lstat(path)
        if (not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid()
                or stat.S_IMODE(st.st_mode) != 0o700):
            return False
        with os.scandir(path) as it:
            return next(it, None) is None
    except OSError:
        return False


def _take_dir() -> str:
    """A fresh, empty, private job directory: a renamed idle one when the
    pool has one in the current temporary directory, else a new one."""
    parent = os.path.abspath(tempfile.gettempdir())
    while True:
        stale: list[str] = []
        idle = None
        with _pool_lock:
            if _pool_pid == os.getpid():
                while _pool:
                    candidate = _pool.pop()
                    if os.path.dirname(candidate) == parent:
                        idle = candidate
                        break
                    stale.append(candidate)  # TMPDIR changed since it was pooled
        for path in stale:
            _discard(path)
        if idle is None:
            return tempfile.mkdtemp(prefix="sioworkers_")
        if _reusable(idle):
            fresh = _fresh_name(parent, "sioworkers_")
            try:
                if not os.path.lexists(fresh):  # rename would replace an empty directory
                    os.rename(idle, fresh)
                    return fresh
            except OSError:
                pass
        _discard(idle)


def _discard(path: str) -> None:
    """Remove the idle directory ``path`` that cannot be reused; something
    else now at its name (it was not a directory) is left alone."""
    try:
        if stat.S_ISDIR(os.lstat(path).st_mode):
            rmtree(path)
    except FileNotFoundError:
        pass
    except OSError as e:
        # Not the job's directory any more (it was idle): nothing to report
        # to a job, but worth a line.
        logger.warning("Cannot remove the idle job directory %s: %s", path, e)


def _empty(root: str) -> bool:
    """Remove everything inside ``root`` and make its mode 0700 again (the
    supervisor adds o+x to job directories). False when ``root`` is not our
    own directory any more; other failures raise."""
    st = os.lstat(root)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid():
        return False
    if stat.S_IMODE(st.st_mode) != 0o700:
        # First: a job that made its directory read-only would make the
        # removals below fail.
        os.chmod(root, 0o700)
    with os.scandir(root) as it:
        entries = list(it)
    for entry in entries:
        if entry.is_dir(follow_symlinks=False):
            rmtree(entry.path)  # copes with read-only and unlistable subdirectories
        else:
            # Files are only unlinked, never opened or chmod'ed: they may be
            # hard links to a cache or a user's file.
            os.unlink(entry.path)
    return True


def _return_dir(root: str) -> None:
    """Done with the job directory ``root``: pool it emptied and renamed, or
    remove it as :func:`rmtree` does (whose errors propagate, as they always
    did)."""
    try:
        if _empty(root):
            # Absolute, as _take_dir compares it with the temporary directory
            # (mkdtemp returns a relative path for a relative tempfile.tempdir).
            idle = _fresh_name(os.path.dirname(os.path.abspath(root)), "sioworkers_idle_")
            if not os.path.lexists(idle):
                os.rename(root, idle)
                with _pool_lock:
                    if _pool_pid == os.getpid() and len(_pool) < _POOL_MAX:
                        _pool.append(idle)
                        return
                root = idle
    except OSError:
        pass  # removed below, which says what is wrong if it cannot be
    rmtree(root)


class TemporaryCwd:
    """Give the enclosed code a fresh temporary directory as its "cwd".

    On entry an empty private directory (mode 0700) named ``sioworkers_*`` in
    the system temporary directory (:func:`tempfile.gettempdir`, i.e.
    ``TMPDIR``) becomes what :func:`tempcwd` returns in this context; on exit
    everything in it is removed, the name disappears, and the previous
    directory is restored, so uses nest. The process working directory is
    never changed: code passes ``cwd=tempcwd()`` to the processes it starts.

    Directories are reused: on exit the directory is emptied and kept, under
    another name, for a next use in this process (at most a few are kept;
    they are removed at interpreter exit). A reused directory gets a new
    random name and is checked to be still empty, ours and mode 0700, else
    it is discarded. Concurrent and nested uses never share one, and a
    forked child never uses its parent's.

    :param inner_directory: if given, a subdirectory of that name is made
        and used instead (the whole tree is still removed on exit).
    """

    def __init__(self, inner_directory: str | None = None) -> None:
        self.inner_directory = inner_directory
        self._stack: list[tuple[str, contextvars.Token[str | None], int]] = []

    def __enter__(self) -> str:
        root = _take_dir()
        path = root
        if self.inner_directory:
            path = os.path.join(root, self.inner_directory)
            try:
                os.makedirs(path)
            except BaseException:
                rmtree(root)
                raise
        logger.debug("Using temporary directory %s", path)
        self._stack.append((root, _tmpdir.set(path), os.getpid()))
        return path

    def __exit__(self, *exc_info: object) -> None:
        root, token, pid = self._stack.pop()
        _tmpdir.reset(token)
        if pid != os.getpid():
            # A forked child leaving its parent's block: removed as before,
            # never pooled in the child.
            rmtree(root)
        else:
            _return_dir(root)


def tempcwd(path: str | None = None) -> str:
    """The current job directory, or ``path`` inside it.

    An absolute ``path`` is returned unchanged.

    :raises NoTemporaryCwd: when no :class:`TemporaryCwd` is active in
        this context (thread).
    """
    if path is not None and os.path.isabs(path):
        return path
    base = _tmpdir.get()
    if base is None:
        raise NoTemporaryCwd(
            "tempcwd() used outside a job directory: run the code inside "
            "'with sio.workers.util.TemporaryCwd():' (runner.run does that for jobs)")
    return base if path is None else os.path.join(base, path)


# --------------------------------------------------------------------------
# Time
# --------------------------------------------------------------------------

def s2ms(seconds: float) -> int:
    """Seconds to whole milliseconds, truncating: ``s2ms(1.95) == 1950``.

    Rounded to a microsecond first so that binary floating point does not
    lose a millisecond (``4.35 * 1000 == 4349.999...``).
    """
    return int(round(seconds * 1000, 3))


def ms2s(milliseconds: float) -> float:
    """Milliseconds to seconds."""
    return milliseconds / 1000.0


def ceil_ms2s(milliseconds: float) -> int:
    """The smallest whole number of seconds that is at least
    ``milliseconds``: ``ceil_ms2s(1000) == 1``, ``ceil_ms2s(1001) == 2``."""
    if isinstance(milliseconds, int):
        return -(-milliseconds // 1000)
    return math.ceil(milliseconds / 1000.0)


class PerfTimer:
    """Wall-clock seconds since creation, from a monotonic clock."""

    def __init__(self) -> None:
        self.start_time = time.monotonic()

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.start_time


# --------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------

def path_join_abs(base: str, subpath: str) -> str:
    """Join ``subpath`` to ``base`` as if it were relative:
    ``path_join_abs('/usr', '/bin/sh') == '/usr/bin/sh'``."""
    return os.path.join(base, subpath.strip(os.sep))


class Writable:
    """Context manager that makes ``fname`` writable by its owner for the
    duration, and restores the mode afterwards if it had to change it."""

    def __init__(self, fname: str) -> None:
        self.fname = fname
        self._old_mode: int | None = None

    def __enter__(self) -> Writable:
        mode = stat.S_IMODE(os.stat(self.fname).st_mode)
        if not mode & stat.S_IWUSR:
            os.chmod(self.fname, mode | stat.S_IWUSR)
            self._old_mode = mode
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._old_mode is not None:
            os.chmod(self.fname, self._old_mode)
            self._old_mode = None


def rmtree(path: str) -> None:
    """Remove a tree, also when some of its directories are read-only.

    Programs under test and extracted sandboxes leave directories without
    the write (or search) bit; on such an error the parent and the entry are
    given back their owner permissions and the operation is retried once.
    A missing ``path`` is not an error.
    """

    def retry(func: Callable[..., Any], failed: str, _exc: object) -> None:
        parent = os.path.dirname(failed) or "."
        for p in (parent, failed):
            try:
                st = os.lstat(p)
                if stat.S_ISDIR(st.st_mode):
                    os.chmod(p, stat.S_IMODE(st.st_mode) | stat.S_IRWXU)
            except OSError:
                pass
        if func is os.open or func is os.scandir or func is os.listdir:
            # Could not list it: now that it is readable, remove it whole.
            shutil.rmtree(failed)
        else:
            func(failed)

    if not os.path.lexists(path):
        return
    if sys.version_info >= (3, 12):
        shutil.rmtree(path, onexc=retry)
    else:
        shutil.rmtree(path, onerror=lambda f, p, e: retry(f, p, e))


def ensure_mode(path: str, bits: int) -> None:
    """Give ``path`` the permission ``bits`` (e.g. ``stat.S_IRUSR |
    stat.S_IXUSR``) that it lacks, never taking any away.

    For files a job fetched: such a file may be a hard link shared with the
    Filetracker cache or a local source (see :func:`sio.workers.ft.download`),
    and so with other jobs running at the same time, whose supervisor may have
    just added bits to it (o+rx for a program run under another uid). Setting
    a whole mode (``chmod 0700``) would take those away under that other job.
    Two changes made at the same moment can still overwrite each other
    (:func:`os.chmod` sets a whole mode): ours is checked and made again.
    """
    for _ in range(10):
        mode = stat.S_IMODE(os.stat(path).st_mode)
        if mode & bits == bits:
            return
        os.chmod(path, mode | bits)


def mkdir(name: str, mode: int = 0o700) -> None:
    """Create a directory and its parents; an existing one is fine."""
    os.makedirs(name, mode=mode, exist_ok=True)


def is_exe(path: str) -> bool:
    """Whether ``path`` is a regular file we may execute."""
    return os.path.isfile(path) and os.access(path, os.X_OK)


# --------------------------------------------------------------------------
# Text
# --------------------------------------------------------------------------

def replace_invalid_UTF(text: str | bytes) -> str:  # noqa: N802 (contract name)
    """Return valid UTF-8 text: invalid bytes and lone surrogates become
    replacement characters (``U+FFFD``, or ``?`` for surrogates)."""
    if isinstance(text, bytes):
        return text.decode("utf-8", errors="replace")
    return text.encode("utf-8", errors="replace").decode("utf-8")


def decode_fields(fields: Iterable[str]) -> Callable[[_F], _F]:
    """Decorator: after the function returns a dict, turn each of ``fields``
    that holds bytes into ``str`` (UTF-8, invalid bytes replaced)."""
    fields = tuple(fields)

    def decorator(func: _F) -> _F:
        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            result = func(*args, **kwargs)
            for field in fields:
                value = result.get(field)
                if isinstance(value, (bytes, bytearray)):
                    result[field] = bytes(value).decode("utf-8", errors="replace")
            return result

        return wrapper  # type: ignore[return-value]

    return decorator


class CompatibleJSONEncoder(json.JSONEncoder):
    """JSON encoder for environs: ``bytes`` become text (UTF-8, invalid
    bytes replaced), sets and tuples become lists, and anything else that
    JSON cannot hold becomes its ``str()`` rather than losing the result."""

    def default(self, o: Any) -> Any:
        if isinstance(o, (bytes, bytearray)):
            return bytes(o).decode("utf-8", errors="replace")
        if isinstance(o, (set, frozenset)):
            return sorted(o, key=str)
        return str(o)


def json_dumps(obj: Any, **kwargs: Any) -> str:
    """:func:`json.dumps` with :class:`CompatibleJSONEncoder`."""
    kwargs.setdefault("cls", CompatibleJSONEncoder)
    return json.dumps(obj, **kwargs)


# --------------------------------------------------------------------------
# Misc
# --------------------------------------------------------------------------

class _NullContext:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc_info: object) -> None:
        return None


def null_ctx_manager() -> _NullContext:
    """A context manager that does nothing (reusable and re-entrant)."""
    return _NullContext()


# --------------------------------------------------------------------------
# The original's class-registration helpers (kept for code written against
# it; sioworkers itself uses explicit registries, see file_runners)
# --------------------------------------------------------------------------

class ClassInitMeta(type):
    """Metaclass that calls ``cls.__classinit__()`` (a class method, when the
    class or a base defines one) right after a class is created, as the
    original's did. New code can use :meth:`object.__init_subclass__`."""

    def __init__(cls, name: str, bases: tuple[type, ...], namespace: dict[str, Any]) -> None:
        super().__init__(name, bases, namespace)
        classinit = getattr(cls, "__classinit__", None)
        if classinit is not None:
            classinit()


class ClassInitBase(metaclass=ClassInitMeta):
    """Base class whose subclasses get ``__classinit__`` called when they are
    created (see :class:`ClassInitMeta`)."""

    __slots__ = ()


class RegisteredSubclassesBase(ClassInitBase):
    """Base class that keeps a registry of its subclasses, as the original's.

    Every class of the hierarchy has its own ``subclasses`` list; a new class
    is appended to the list of each ancestor (itself excluded) and passed to
    their ``register_subclass(subclass)`` hook. A class with ``abstract =
    True`` in its own body is not registered (its subclasses are).
    """

    __slots__ = ()

    #: the registered subclasses of this class (each class has its own list)
    subclasses: list[type] = []
    #: set to True in a class body to keep that class out of the registries
    abstract: bool = True

    @classmethod
    def __classinit__(cls) -> None:
        cls.subclasses = []
        if cls.__dict__.get("abstract", False):
            return
        for base in cls.__mro__[1:]:
            if isinstance(base, type) and issubclass(base, RegisteredSubclassesBase):
                base.subclasses.append(cls)
                base.register_subclass(cls)

    @classmethod
    def register_subclass(cls, subclass: type) -> None:
        """Called on every ancestor when ``subclass`` is created; override to
        index it (the default does nothing more than the list)."""
