"""Getting job files in and out: Filetracker or plain local paths.

Every job moves its files through :func:`download` and :func:`upload`. A file
is named by a value in the environ (``environ[key]``):

* a **Filetracker name** (``/problems/1/t.in``, possibly versioned:
  ``/problems/1/t.in@1700000000``) is fetched from or stored on the current
  Filetracker client (:func:`instance`);
* a **local path** is copied (or hard-linked: see :func:`download`); a
  relative one is taken relative to the directory the process started in
  (:data:`sio.workers._original_cwd`).

Which one is decided by the environ key ``use_filetracker``:

``use_filetracker`` (bool or ``'auto'``, default ``True``)
    ``True``: every name is a Filetracker name; ``False``: every name is a
    local path; ``'auto'``: names starting with ``/`` are Filetracker names,
    the others local paths (what ``sio-compile`` uses).

The current client is context-local (each thread, and each asyncio task,
has its own): :func:`init_instance` (called by
:func:`sio.workers.runner.run` for ``environ['filetracker_url']``) makes one
per URL, with its own cache directory, and :func:`set_instance` installs any
client, e.g. ``filetracker.client.dummy.DummyClient`` in tests.

Settings (environment variables, read when used):

``FILETRACKER_URL``, ``FILETRACKER_DIR``
    the server and the local store of the default client (see
    :func:`instance`); ``FILETRACKER_DIR`` is also the storage directory of a
    server started by :func:`launch_filetracker_server`.
``FILETRACKER_PUBLIC_URL``, ``FILETRACKER_LISTEN_ADDR``, ``FILETRACKER_LISTEN_PORT``
    see :func:`launch_filetracker_server`.

The ``filetracker`` package (and ``requests`` with it) is imported only when
a client is first needed: ``sio-batch`` imports this module for every job.
"""

from __future__ import annotations

import contextlib
import contextvars
import fcntl
import logging
import os
import shutil
import stat
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from sio.workers.errors import MissingEnvironKey, SioWorkersError, UsageError
from sio.workers.util import mkdir, tempcwd

if TYPE_CHECKING:
    import subprocess

    from filetracker.client import Client

logger = logging.getLogger(__name__)

__all__ = [
    "download",
    "upload",
    "instance",
    "init_instance",
    "set_instance",
    "get_cache_dir",
    "launch_filetracker_server",
    "start_server",
    "FiletrackerServer",
    "FiletrackerError",
    "MissingFile",
    "InvalidName",
    "UnwritableDestination",
    "check_upload",
    "ServerStartError",
    "main",
]

Environ = dict[str, Any]

#: Port of a server started for a URL that names none (filetracker's default).
DEFAULT_PORT = 9999

# Variables set by Hudson/Jenkins: with them in its environment a daemon is
# killed when the build that started it ends.
_CI_VARIABLES = ("HUDSON_SERVER_COOKIE", "BUILD_NUMBER", "BUILD_ID", "BUILD_TAG", "JOB_NAME")


# --------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------

class FiletrackerError(SioWorkersError):
    """A file could not be moved to or from Filetracker or a local path
    (server unreachable, I/O error, ...). The message names the store (URL
    or directory), the file name and the environ key."""


class MissingFile(FiletrackerError, FileNotFoundError):
    """The file to download (or the local file to upload) does not exist."""


class InvalidName(FiletrackerError, UsageError):
    """A name in the environ is not a valid Filetracker name (it must start
    with ``/``, have no ``..`` and at most one ``@<int version>`` suffix)."""


class UnwritableDestination(FiletrackerError, UsageError):
    """A local path to upload to cannot be written: it is a directory, a
    parent of it is a file, or its directory is not writable."""


class ServerStartError(FiletrackerError):
    """A Filetracker server could not be started; the message ends with the
    tail of its log."""


# --------------------------------------------------------------------------
# Clients
# --------------------------------------------------------------------------

# Context-local, like the job directory of sio.workers.util.TemporaryCwd:
# each thread starts with none, so concurrent jobs never share a "current"
# client by accident.
_current: contextvars.ContextVar[Client | None] = contextvars.ContextVar(
    "sio_workers_ft_client", default=None)

# Clients are shared per URL (and per (URL, dir) for default clients): making
# one is cheap, but each holds a lock directory and a negotiated protocol.
_clients_lock = threading.Lock()
_clients: dict[Any, Client] = {}

#: The original's public names of the two above: the lock that guards
#: making clients and the clients made so far (keyed by URL here, by the
#: URL's hash in the original). For code that inspected them; not a place
#: to add clients (use :func:`init_instance`).
lock = _clients_lock
ft_clients = _clients


def _normalize_url(url: str, what: str) -> str:
    from urllib.parse import urlsplit

    url = url.strip().rstrip("/")
    if urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).hostname:
        raise UsageError(f"{what} = {url!r} is not a Filetracker URL: give one such as "
                         f"http://127.0.0.1:{DEFAULT_PORT}")
    return url


def get_url_hash(url: str) -> str:
    """MD5 (hex) of the normalised ``url``: names its cache directory."""
    import hashlib

    return hashlib.md5(_normalize_url(url, "the URL").encode()).hexdigest()


def get_cache_dir(url: str) -> str:
    """The cache directory of the client for ``url``:
    ``~/.filetracker_cache/ft_cache_<md5 of url>`` (as in the original, so
    caches survive an upgrade). Trailing slashes of ``url`` do not count."""
    return os.path.join(os.path.expanduser("~"), ".filetracker_cache",
                        "ft_cache_" + get_url_hash(url))


def init_instance(url: str) -> Client:
    """Make the client for the Filetracker server at ``url`` the current one
    (in this thread / context) and return it.

    One ``filetracker.client.Client`` is made per URL and process, with the
    cache directory :func:`get_cache_dir`; later calls reuse it. Thread-safe.

    :raises UsageError: ``url`` is not an ``http(s)://`` URL.
    """
    url = _normalize_url(url, "filetracker_url")
    with _clients_lock:
        client = _clients.get(url)
        if client is None:
            from filetracker.client import Client

            client = Client(remote_url=url, cache_dir=get_cache_dir(url))
            _clients[url] = client
    _current.set(client)
    return client


def set_instance(client: Client | None) -> None:
    """Make ``client`` the current client of this thread / context (any
    object with the ``filetracker.client.Client`` methods ``get_file``,
    ``put_file`` and ``file_version``); ``None`` forgets it."""
    _current.set(client)


def instance() -> Client:
    """The current client.

    If this context has none, the default one is made current: first
    :func:`launch_filetracker_server` (which does nothing unless
    ``FILETRACKER_PUBLIC_URL`` is set), then ``filetracker.client.Client()``,
    which reads ``FILETRACKER_URL`` (the server; unset: a purely local store)
    and ``FILETRACKER_DIR`` (its local store / cache; default
    ``~/.filetracker-store``). It is made once per process for each value of
    these two variables.
    """
    client = _current.get()
    if client is None:
        key = ("default", os.environ.get("FILETRACKER_URL"), os.environ.get("FILETRACKER_DIR"))
        with _clients_lock:
            client = _clients.get(key)
            if client is None:
                launch_filetracker_server()
                from filetracker.client import Client

                client = Client()
                _clients[key] = client
        _current.set(client)
    return client


def _store_of(client: Any) -> str:
    """Where ``client`` keeps files, for error messages."""
    url = getattr(getattr(client, "remote_store", None), "base_url", None)
    if url:
        return f"Filetracker at {url}"
    local_dir = getattr(getattr(client, "local_store", None), "dir", None)
    if local_dir:
        return f"the local Filetracker store {os.path.dirname(local_dir)}"
    return f"Filetracker client {type(client).__name__}"


def _looks_missing(exc: BaseException) -> bool:
    # filetracker reports a missing file differently per store: HTTP 404
    # from a server, "File not available/found" locally, KeyError in the
    # in-memory DummyClient.
    text = str(exc)
    return (isinstance(exc, (KeyError, FileNotFoundError)) or text.startswith("HTTP/404")
            or "not available" in text or "not found" in text.lower())


def _wrap(exc: Exception, what: str, client: Any) -> FiletrackerError:
    first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    message = f"{what} ({_store_of(client)}): {first_line}"
    if isinstance(exc, ValueError):
        return InvalidName(message + " (with use_filetracker True every name must be an "
                           "absolute Filetracker name; use 'auto' or False for local paths)")
    if _looks_missing(exc):
        return MissingFile(message)
    return FiletrackerError(message)


def _split_version(name: str) -> tuple[str, int | None]:
    base, sep, version = name.rpartition("@")
    if sep and version.isdigit() and "/" not in version:
        return base, int(version)
    return name, None


def _get_file(client: Any, name: str, path: str, kwargs: dict[str, Any]) -> None:
    """``client.get_file``, but "that version or a newer one": oioioi puts
    versioned names in the environ, and a file re-uploaded since then has a
    newer version on the server, which is what should be judged."""
    try:
        client.get_file(name, path, **kwargs)
        return
    except Exception:
        base, version = _split_version(name)
        if version is None:
            raise
        try:
            newest = client.file_version(base)
        except Exception:
            newest = None
        if not newest or newest <= version:
            raise
    logger.info("Filetracker has %s@%s, newer than the requested %s; using it",
                base, newest, name)
    client.get_file(base, path, **kwargs)


# --------------------------------------------------------------------------
# download / upload
# --------------------------------------------------------------------------

def _use_filetracker(name: str, environ: Environ) -> bool:
    mode = environ.get("use_filetracker", True)
    if mode == "auto":
        return name.startswith("/")
    if isinstance(mode, str):
        raise UsageError(f"environ['use_filetracker'] = {mode!r}: give true, false or 'auto'")
    return bool(mode)


def _name_in(environ: Environ, key: str) -> str | None:
    value = environ.get(key)
    if value is not None and not isinstance(value, str):
        raise UsageError(f"environ[{key!r}] = {value!r} is not a file name (a string)")
    return value


def _local_path(name: str) -> str:
    import sio.workers

    return os.path.join(sio.workers._original_cwd, name)


@contextlib.contextmanager
def _staged(dest: str) -> Iterator[str]:
    """Yield a fresh temporary name next to ``dest``; once the block
    succeeds, rename it to ``dest``. The rename is atomic within one file
    system, so whoever looks at ``dest`` (another thread or process fetching
    the same file) sees the old file or the complete new one, never a
    partial one; on any error the temporary file is removed."""
    parent, base = os.path.split(dest)
    mkdir(parent)
    # A name that does not exist yet rather than a mkstemp file:
    # filetracker's local store does not overwrite an existing file that it
    # thinks is fresh. Random bytes make it unique across threads, processes
    # and machines sharing the directory.
    tmp = os.path.join(parent, f".{base}.{os.urandom(6).hex()}.part")
    try:
        yield tmp
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _copy(source: str, dest: str, what: str, *, link: bool = False,
          link_mode: int = stat.S_IROTH) -> None:
    """Put the local file ``source`` at ``dest``: a copy, or with ``link`` a
    hard link when one can be made and ``source`` has every bit of
    ``link_mode`` (see :func:`download`)."""
    try:
        st = os.stat(source)
    except OSError:
        st = None
    if st is None or not stat.S_ISREG(st.st_mode):
        raise MissingFile(f"{what}: no such file {source!r}")
    if os.path.exists(dest) and os.path.samefile(source, dest):
        return
    # Only a file everyone may read already is linked: a job may have to let
    # a program under another uid read its files (the supervisor adds o+r),
    # and on a shared inode that would widen who can read the user's file.
    linked = link and st.st_mode & (link_mode | stat.S_IROTH) == link_mode | stat.S_IROTH
    with _staged(dest) as tmp:
        if linked:
            try:
                os.link(source, tmp)
            except OSError:
                # Another file system (EXDEV), protected_hardlinks (EPERM),
                # too many links, a file system without links, ...
                linked = False
        if not linked:
            shutil.copy(source, tmp)
    if linked and os.path.lexists(tmp):
        # dest became a link to the same inode meanwhile (a concurrent
        # download of the same file): rename() then leaves both names.
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def download(environ: Environ, key: str, dest: str | None = None,
             skip_if_exists: bool = False, *, link_local: bool | None = None,
             link_mode: int = stat.S_IROTH,
             **kwargs: Any) -> str:
    """Fetch the file named by ``environ[key]`` and return its absolute path.

    :param dest: where to put it: a file name; a directory, with a trailing
        ``/`` (the file keeps its base name there); or ``None`` (the base
        name in the job directory). A relative ``dest`` is inside the job's
        temporary directory (:func:`~sio.workers.util.tempcwd`). Missing
        parent directories are created (mode 0700). The version suffix
        ``@<n>`` of a Filetracker name is not part of the base name.
    :param skip_if_exists: do nothing if the destination exists already (for
        a file ``dest`` the environ is then not even read).
    :param kwargs: passed to the client's ``get_file``; ``add_to_cache``
        defaults to ``False`` (pass ``True`` for files many jobs read: tests,
        checkers, binaries).
    :param link_local: whether a local file (``use_filetracker`` false) may
        be hard-linked rather than copied; ``None`` (the default): when
        ``add_to_cache`` is true. Pass ``False`` for a file whose mode the
        job changes, such as a program it makes executable: on a link that
        would change the user's own file. No effect on Filetracker files.
    :param link_mode: permission bits a local file must have already to be
        linked (always including ``o+r``): a job that adds bits to the file
        passes them here, so that a link is only made when that changes
        nothing (:func:`sio.executors.common.download_program` asks for
        ``u+rx,o+rx``, which a compiled program usually has).

    Environ keys read: ``key`` (the name), ``use_filetracker`` (see the
    module). Nothing is written.

    The file arrives under a temporary name in the destination directory
    and is renamed into place: no partial file is ever at ``dest``, also
    when several threads or processes fetch the same file at once. A
    versioned name ``path@v`` gets version ``v`` or, if the server has one,
    a newer version.

    **The file at** ``dest`` **may share its inode** with another file: with
    Filetracker and a cache, the client hard-links cached files (also
    without ``add_to_cache``, once the file is in the cache); a local file is
    hard-linked to its source when ``link_local`` (by default
    ``add_to_cache``) is true, the source is readable by everyone (mode
    ``o+r``) and on the same file system; otherwise it is copied. So a job
    never writes to a downloaded file in place (it writes a new file and
    renames it over, as :func:`sio.executors.common.fetch_input` does) and
    never takes permission bits away from it (it adds the ones it needs with
    :func:`sio.workers.util.ensure_mode`): another job, or the user, may be
    using the same inode.

    :raises MissingEnvironKey: ``key`` is not in the environ.
    :raises MissingFile: no such file in the store / on disk.
    :raises InvalidName: not a valid Filetracker name.
    :raises FiletrackerError: anything else (server unreachable, ...).
    """
    if dest and skip_if_exists and not dest.endswith("/"):
        path = tempcwd(dest)
        if os.path.exists(path):
            return path
    source = _name_in(environ, key)
    if source is None:
        raise MissingEnvironKey(key, "sio.workers.ft.download")
    via_ft = _use_filetracker(source, environ)
    if dest is None or dest.endswith("/"):
        base = os.path.basename(_split_version(source)[0] if via_ft else source)
        dest = (dest or "") + base
    dest = tempcwd(dest)
    if skip_if_exists and os.path.exists(dest):
        return dest
    kwargs.setdefault("add_to_cache", False)
    if not via_ft:
        link = bool(kwargs["add_to_cache"]) if link_local is None else link_local
        _copy(_local_path(source), dest, f"cannot get environ[{key!r}] = {source!r}",
              link=link, link_mode=link_mode)
        return dest
    client = instance()
    try:
        with _staged(dest) as tmp:
            _get_file(client, source, tmp, kwargs)
    except SioWorkersError:
        raise
    except Exception as e:
        raise _wrap(e, f"cannot download environ[{key!r}] = {source!r} to {dest!r}",
                    client) from e
    return dest


def upload(environ: Environ, key: str, source: str, dest: str | None = None,
           **kwargs: Any) -> str:
    """Store the file ``source`` and record its name in ``environ[key]``.

    :param source: the file to store; a relative path is inside the job's
        temporary directory.
    :param dest: the name to store it under, used **only when**
        ``environ[key]`` is missing or ``None`` (the environ is the caller's
        request of where results go, so it wins; a job's ``dest`` is a
        default). A trailing ``/`` means "in that directory, with the base
        name of ``source``".
    :param kwargs: passed to the client's ``put_file`` (e.g.
        ``to_remote_store=False``).

    Environ keys read: ``key``, ``use_filetracker``. Written: ``key``, set to
    the name the file now has: for Filetracker the **versioned** name
    ``path@version`` the server returned (if the server already had a newer
    version, that one: an older upload never replaces a newer file); for a
    local path, the path as given (a relative one is relative to
    :data:`sio.workers._original_cwd`, its parents are created, and it is
    replaced atomically). Returns the same value.

    :raises MissingEnvironKey: neither ``environ[key]`` nor ``dest`` given.
    :raises MissingFile: ``source`` does not exist.
    :raises InvalidName, FiletrackerError: as for :func:`download`.
    """
    name = _name_in(environ, key)
    if name is None:
        if dest is None:
            raise MissingEnvironKey(key, "sio.workers.ft.upload (and no dest was given)")
        name = dest + os.path.basename(source) if dest.endswith("/") else dest
    source = tempcwd(source)
    what = f"cannot upload {source!r} as environ[{key!r}] = {name!r}"
    if not _use_filetracker(name, environ):
        _copy(source, _local_path(name), what)
    else:
        if not os.path.isfile(source):
            raise MissingFile(f"{what}: no such file {source!r}")
        client = instance()
        try:
            name = client.put_file(name, source, **kwargs)
        except Exception as e:
            raise _wrap(e, what, client) from e
    environ[key] = name
    return name


def check_upload(environ: Environ, key: str, needed_by: str = "") -> str:
    """Check, before doing the work whose result goes there, that
    :func:`upload` can store a file under the name ``environ[key]``; return
    the name.

    A local path must not be a directory (nor end with ``/``), and its
    nearest existing ancestor must be a writable directory (missing parents
    are created by :func:`upload`). A Filetracker name must be a valid name
    of a file (absolute, no ``..``, no trailing ``/``, at most a version
    suffix). Whether the server is up is not checked.

    Environ keys read: ``key``, ``use_filetracker``.

    :raises MissingEnvironKey: no ``environ[key]`` (``needed_by`` says what
        needs it).
    :raises InvalidName: not a valid Filetracker name.
    :raises UnwritableDestination: the local path cannot be written.
    """
    name = _name_in(environ, key)
    if name is None:
        raise MissingEnvironKey(key, needed_by)
    what = f"environ[{key!r}] = {name!r}"
    if _use_filetracker(name, environ):
        from filetracker.utils import check_name

        try:
            check_name(name)
            if name.endswith("/"):
                raise ValueError("a directory, not a file name")
        except ValueError as e:
            raise InvalidName(f"{what} is not a valid Filetracker file name ({e}); "
                              "give an absolute name such as /results/prog.e") from None
        return name
    path = _local_path(name)
    if name.endswith("/") or os.path.isdir(path):
        raise UnwritableDestination(f"{what} is a directory: give a file name")
    ancestor = os.path.dirname(os.path.abspath(path))
    while not os.path.lexists(ancestor):
        ancestor = os.path.dirname(ancestor)
    if not os.path.isdir(ancestor):
        raise UnwritableDestination(f"cannot write {what}: {ancestor!r} is not a directory")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise UnwritableDestination(f"cannot write {what}: the directory {ancestor!r} "
                                    "is not writable")
    return name


# --------------------------------------------------------------------------
# Starting a server
# --------------------------------------------------------------------------

class FiletrackerServer:
    """A ``filetracker-server`` started by :func:`start_server`.

    Attributes: ``pid`` (its process id, also the id of its process group,
    where its gunicorn master and workers are), ``url`` (where it answers,
    e.g. ``http://127.0.0.1:9999``), ``dir`` (its storage directory), ``log``
    (its log file: its standard output and error).
    """

    def __init__(self, pid: int, url: str, dir: str, log: str,
                 proc: subprocess.Popen[bytes] | None = None) -> None:
        self.pid = pid
        self.url = url
        self.dir = dir
        self.log = log
        self._proc = proc

    def __repr__(self) -> str:
        return f"FiletrackerServer(pid={self.pid}, url={self.url!r}, dir={self.dir!r})"

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop the server and its workers: SIGTERM to its process group,
        SIGKILL after ``timeout_s`` (a gunicorn worker that is still booting
        misses SIGTERM, and its master would wait 30 s for it; the server
        recovers its database at the next start)."""
        from sio.workers._engine.daemon import stop_group

        stop_group(self.pid, timeout_s=timeout_s, proc=self._proc)


def _answers(url: str, timeout_s: float = 2.0) -> bool:
    """Whether an HTTP server answers at ``url`` (any status counts: a
    Filetracker behind a proxy may answer a probe with an error page)."""
    import http.client
    import urllib.error
    import urllib.request

    # No proxies: a proxy would answer for a server that is not there.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url + "/version", timeout=timeout_s):
            return True
    except urllib.error.HTTPError:
        return True
    except (OSError, http.client.HTTPException):
        return False


def _log_tail(path: str, lines: int = 20) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(max(0, os.path.getsize(path) - 16384))
            text = f.read().decode("utf-8", "replace")
    except OSError as e:
        return f"(cannot read the log {path}: {e})"
    return "\n".join(text.splitlines()[-lines:]) or "(the log is empty)"


def _server_executable() -> str:
    found = shutil.which("filetracker-server")
    if found is None:
        # Not on PATH (an unactivated virtualenv): look beside our Python.
        beside = os.path.join(os.path.dirname(sys.executable), "filetracker-server")
        if os.access(beside, os.X_OK):
            found = beside
    if found is None:
        raise ServerStartError("cannot start a Filetracker server: no 'filetracker-server' "
                               "program; install it with: pip install 'filetracker[server]'")
    return found


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def start_server(storage_dir: str, listen_addr: str = "127.0.0.1", port: int = DEFAULT_PORT,
                 *, timeout_s: float = 60.0, log: str | None = None) -> FiletrackerServer:
    """Start ``filetracker-server`` in the background and return once it
    answers HTTP requests.

    It runs in its own session (so it outlives the caller and its terminal)
    with ``storage_dir`` (created if missing) as its storage, listening on
    ``listen_addr:port``. Its output goes to ``log`` (default
    ``<storage_dir>/filetracker-server.log``, appended to). The Hudson/Jenkins
    variables that would get it killed at the end of a CI build are removed
    from its environment.

    :raises ServerStartError: it exited or did not answer within
        ``timeout_s`` seconds (it is then stopped); the message ends with
        the tail of its log.
    """
    from sio.workers._engine.daemon import spawn_detached, stop_group

    exe = _server_executable()
    storage_dir = os.path.abspath(storage_dir)
    mkdir(storage_dir)
    log = log or os.path.join(storage_dir, "filetracker-server.log")
    env = {k: v for k, v in os.environ.items() if k not in _CI_VARIABLES}
    # filetracker-server runs 'gunicorn' from PATH: the one installed beside it.
    env["PATH"] = os.pathsep.join([os.path.dirname(exe), env.get("PATH", os.defpath)])
    argv = [exe, "--no-daemon", "-l", listen_addr, "-p", str(port), "-d", storage_dir]
    # Probe where it listens; a wildcard address is reachable on loopback.
    probe_host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(listen_addr,
                                                                             listen_addr)
    url = f"http://{_url_host(probe_host)}:{port}"
    logger.info("Starting filetracker-server at %s:%s, storage %s, log %s",
                listen_addr, port, storage_dir, log)
    proc = spawn_detached(argv, env=env, log_path=log)
    deadline = time.monotonic() + timeout_s
    delay = 0.02
    while True:
        if proc.poll() is not None:
            problem = f"it exited with status {proc.returncode}"
            break
        if _answers(url, timeout_s=1.0):
            return FiletrackerServer(pid=proc.pid, url=url, dir=storage_dir, log=log, proc=proc)
        if time.monotonic() > deadline:
            stop_group(proc.pid, proc=proc)
            problem = f"it did not answer at {url} within {timeout_s:g} s (stopped it)"
            break
        time.sleep(delay)
        delay = min(delay * 1.5, 0.25)
    raise ServerStartError(f"cannot start a Filetracker server ({' '.join(argv)}): {problem}; "
                           f"the end of its log {log}:\n{_log_tail(log)}")


def launch_filetracker_server(timeout_s: float = 60.0) -> FiletrackerServer | None:
    """Start a Filetracker server if one is wanted and none answers.

    Does nothing (returns ``None``) unless ``FILETRACKER_PUBLIC_URL`` is set
    (its first whitespace-separated word is the URL clients use), or when
    something answers HTTP there already. Otherwise starts
    ``filetracker-server`` with :func:`start_server` and returns once it
    answers (polling, up to ``timeout_s`` seconds); it keeps running after
    this process ends.

    Settings:

    ``FILETRACKER_PUBLIC_URL``
        the URL; without it nothing happens.
    ``FILETRACKER_DIR`` (required to start one)
        the server's storage directory (created if missing); its log is
        ``$FILETRACKER_DIR/filetracker-server.log``.
    ``FILETRACKER_LISTEN_ADDR`` (default: the host of the URL)
        the address to listen on, e.g. ``0.0.0.0`` for every interface.
    ``FILETRACKER_LISTEN_PORT`` (default: the port of the URL, else 9999)
        the port to listen on (e.g. when a proxy serves the public URL).

    Idempotent, also when called at once from several processes: a lock
    file in ``FILETRACKER_DIR`` lets one start the server while the others
    wait and then see it answer.

    :raises UsageError: a setting is missing or malformed.
    :raises ServerStartError: the server did not come up; with its log tail.
    """
    words = os.environ.get("FILETRACKER_PUBLIC_URL", "").split()
    if not words:
        return None
    url = _normalize_url(words[0], "FILETRACKER_PUBLIC_URL")
    if _answers(url):
        logger.debug("Filetracker answers at %s", url)
        return None
    storage_dir = os.environ.get("FILETRACKER_DIR")
    if not storage_dir:
        raise UsageError(f"no Filetracker answers at FILETRACKER_PUBLIC_URL={url} and "
                         "FILETRACKER_DIR is not set: set it to the directory where the "
                         "server should keep its files")
    from urllib.parse import urlsplit

    parsed = urlsplit(url)
    listen_addr = os.environ.get("FILETRACKER_LISTEN_ADDR") or parsed.hostname or ""
    port_text = os.environ.get("FILETRACKER_LISTEN_PORT") or str(parsed.port or DEFAULT_PORT)
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise UsageError(f"FILETRACKER_LISTEN_PORT = {port_text!r} is not a port number")
    mkdir(storage_dir)
    with open(os.path.join(storage_dir, "filetracker-server.lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _answers(url):  # started by whoever held the lock before us
            return None
        logger.info("No Filetracker at %s, launching one", url)
        server = start_server(storage_dir, listen_addr, int(port_text), timeout_s=timeout_s)
        with open(os.path.join(storage_dir, "filetracker-server.pid"), "w") as f:
            f.write(f"{server.pid}\n")
        return server


# --------------------------------------------------------------------------
# sio-run-filetracker
# --------------------------------------------------------------------------

_DESCRIPTION = """\
Start a Filetracker server in the background if FILETRACKER_PUBLIC_URL is set
and nothing answers there; return once it answers. The server keeps running
after this command ends; its process id is printed and written to
$FILETRACKER_DIR/filetracker-server.pid (stop it with: kill -TERM -<pid>, which
also stops its workers).
"""

_EPILOG = """\
environment variables:
  FILETRACKER_PUBLIC_URL   the server's URL (first word); unset: do nothing
  FILETRACKER_DIR          storage directory (required to start a server)
  FILETRACKER_LISTEN_ADDR  address to listen on (default: the URL's host)
  FILETRACKER_LISTEN_PORT  port to listen on (default: the URL's port, or 9999)

exit status: 0 running (started now or before) or nothing to do; 1 the server
did not start; 2 a usage error.
"""


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``sio-run-filetracker``; returns the exit status."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="sio-run-filetracker", description=_DESCRIPTION, epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--timeout", type=float, default=60.0, metavar="SECONDS",
                        help="how long to wait for the server to answer (default: 60)")
    parser.add_argument("--debug", action="store_true",
                        help="log at DEBUG level and show the traceback of an error")
    args = parser.parse_args(argv)
    logging.basicConfig(format="%(asctime)-15s %(name)s %(levelname)s: %(message)s",
                        level=logging.DEBUG if args.debug else logging.WARNING)
    from sio.workers._cli import result_only_stdout

    try:
        with result_only_stdout():
            server = launch_filetracker_server(timeout_s=args.timeout)
    except SioWorkersError as e:
        if args.debug:
            raise
        sys.stderr.write(f"sio-run-filetracker: error: {e}\n")
        return 2 if isinstance(e, UsageError) else 1
    url = os.environ.get("FILETRACKER_PUBLIC_URL", "").split()
    if server is not None:
        print(f"started filetracker-server (pid {server.pid}) listening at {server.url}, "
              f"storage {server.dir}, log {server.log}")
    elif url:
        print(f"a Filetracker server answers at {url[0]}: nothing to do")
    else:
        print("FILETRACKER_PUBLIC_URL is not set: nothing to do")
    return 0


if __name__ == "__main__":
    sys.exit(main())
