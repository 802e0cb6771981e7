from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.support import make_plugin_distribution


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    """Factory: put a throwaway distribution with the given entry points and
    modules on ``sys.path`` for this test; the entry-point cache is cleared
    before and after."""
    from sio.workers import util

    made: list[str] = []

    def make(entry_points: dict[str, dict[str, str]], modules: dict[str, str],
             name: str = "sio_test_plugin") -> Path:
        root = make_plugin_distribution(tmp_path / f"site-{len(made)}", name,
                                        entry_points, modules)
        monkeypatch.syspath_prepend(str(root))
        made.extend(modules)
        util.clear_entry_point_cache()
        return root

    yield make
    for module in made:
        sys.modules.pop(module, None)
    util.clear_entry_point_cache()


# --------------------------------------------------------------------------
# Executors: test programs compiled once per session
# --------------------------------------------------------------------------

@pytest.fixture(scope="session")
def c_program(tmp_path_factory):
    """Factory: ``c_program(name, *flags) -> path`` compiles
    ``tests/sources/<name>.c`` with the system ``gcc`` (``-O2`` plus
    ``flags``) once per session and returns the absolute path of the
    binary. Skips (fails in CI) without gcc."""
    import shutil
    import subprocess

    from tests.support import SOURCES, missing

    out_dir = tmp_path_factory.mktemp("c_programs")
    built: dict[tuple[str, tuple[str, ...]], str] = {}

    def build(name: str, *flags: str) -> str:
        key = (name, flags)
        if key not in built:
            if shutil.which("gcc") is None:
                missing("gcc (the system C compiler)")
            target = out_dir / f"{name}-{len(built)}"
            subprocess.run(["gcc", "-O2", *flags, "-o", str(target), str(SOURCES / f"{name}.c")],
                           check=True, capture_output=True)
            built[key] = str(target)
        return built[key]

    return build


# --------------------------------------------------------------------------
# Filetracker (sio.workers.ft): a real server for the session, a DummyClient
# per test.
# --------------------------------------------------------------------------

@pytest.fixture(scope="session")
def filetracker_server(tmp_path_factory):
    """A real ``filetracker-server`` on 127.0.0.1 (a free port, a temporary
    storage directory), shared by the whole session.

    Yields a :class:`sio.workers.ft.FiletrackerServer`: ``.url`` (e.g.
    ``http://127.0.0.1:40123``), ``.dir``, ``.pid``, ``.log``. At the end it
    is stopped with its gunicorn workers, and the client cache of its URL
    (``~/.filetracker_cache/ft_cache_<md5>``) is removed, so that a later
    session on the same port never sees stale cached versions.
    """
    import shutil

    from sio.workers import ft
    from tests.support import free_port, missing

    try:
        ft._server_executable()
    except ft.ServerStartError as e:
        missing(str(e), required=True)
    root = tmp_path_factory.mktemp("filetracker")
    for attempt in range(3):
        try:  # another process may take the free port before the server does
            server = ft.start_server(str(root / f"store{attempt}"), "127.0.0.1", free_port())
            break
        except ft.ServerStartError:
            if attempt == 2:
                raise
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(ft.get_cache_dir(server.url), ignore_errors=True)


@pytest.fixture
def ft_dummy(tmp_path, monkeypatch):
    """An in-memory ``filetracker.client.dummy.DummyClient`` installed with
    :func:`sio.workers.ft.set_instance`, inside a fresh
    :class:`~sio.workers.util.TemporaryCwd` (as a job runs). Yields the
    client; ``FILETRACKER_DIR`` points into ``tmp_path`` (the client keeps
    its lock files there)."""
    from filetracker.client.dummy import DummyClient

    from sio.workers import ft
    from sio.workers.util import TemporaryCwd

    monkeypatch.setenv("FILETRACKER_DIR", str(tmp_path / "filetracker-dir"))
    client = DummyClient()
    with TemporaryCwd():
        ft.set_instance(client)
        try:
            yield client
        finally:
            ft.set_instance(None)


# --------------------------------------------------------------------------
# Sandboxes (sio.workers.sandbox)
# --------------------------------------------------------------------------

@pytest.fixture
def sandbox_env(tmp_path, monkeypatch):
    """Sandboxes under ``tmp_path/sandboxes``, no URL and no Filetracker
    source (tests add theirs); returns the base directory. Also sets the
    environment of subprocesses the same way (``os.environ``)."""
    from sio.workers import sandbox

    basedir = tmp_path / "sandboxes"
    monkeypatch.setenv("SIO_SANDBOXES_BASEDIR", str(basedir))
    monkeypatch.setenv("SIO_SANDBOXES_URL", "")
    monkeypatch.delenv("SIO_SANDBOXES_CHECK_INTERVAL", raising=False)
    # A Filetracker client in a subprocess is a local one in this empty store.
    monkeypatch.setenv("FILETRACKER_DIR", str(tmp_path / "ft-store"))
    monkeypatch.delenv("FILETRACKER_URL", raising=False)
    monkeypatch.delenv("FILETRACKER_PUBLIC_URL", raising=False)

    def no_filetracker():
        raise sandbox._SourceFailed("no Filetracker in this test")

    monkeypatch.setattr(sandbox, "_filetracker_client", no_filetracker)
    return basedir


@pytest.fixture(scope="session")
def _archive_server():
    from tests.sandbox_support import ArchiveServer, start_server

    state = ArchiveServer()
    server = start_server(state)
    yield state
    server.shutdown()
    server.server_close()


@pytest.fixture
def archive_server(_archive_server, sandbox_env, monkeypatch):
    """A real HTTP server on 127.0.0.1 (one per session, emptied for each
    test) serving sandbox archives with Last-Modified; SIO_SANDBOXES_URL
    points at it. ``put(name, data, mtime)``, ``requests``, ``gets(name)``."""
    _archive_server.reset()
    monkeypatch.setenv("SIO_SANDBOXES_URL", _archive_server.url)
    yield _archive_server
    _archive_server.reset()
