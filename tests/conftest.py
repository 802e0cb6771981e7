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
# Output comparators: the C canonical form and the pure-Python fallback
# --------------------------------------------------------------------------

@pytest.fixture(params=["native", "python"])
def comparator_impl(request, monkeypatch):
    """Run the test with the comparators' C helper (built with the system C
    compiler, skipped -- failed in CI -- without one) and with the
    pure-Python canonical form that replaces it where it cannot be built."""
    from sio.executors import _compare

    if request.param == "native":
        if _compare.native_helper() is None:
            from tests.support import missing

            missing("a C compiler to build the comparators' helper (sio/executors/_compare.c)")
    else:
        monkeypatch.setattr(_compare, "_native", [None])
    return request.param


# --------------------------------------------------------------------------
# Executors: test programs compiled once per session
# --------------------------------------------------------------------------

def _compile_once_factory(out_dir: Path, compiler: str, suffix: str, what: str):
    """``build(name, *flags) -> path``: compiles ``tests/sources/<name><suffix>``
    with ``compiler -O2 flags`` into ``out_dir`` once per (name, flags).
    Skips (fails in CI) when the compiler is missing."""
    import shutil
    import subprocess

    from tests.support import SOURCES, missing

    built: dict[tuple[str, tuple[str, ...]], str] = {}

    def build(name: str, *flags: str) -> str:
        key = (name, flags)
        if key not in built:
            if shutil.which(compiler) is None:
                missing(f"{compiler} ({what})")
            target = out_dir / f"{name}-{len(built)}"
            subprocess.run([compiler, "-O2", *flags, "-o", str(target),
                            str(SOURCES / f"{name}{suffix}")], check=True, capture_output=True)
            built[key] = str(target)
        return built[key]

    return build


@pytest.fixture(scope="session")
def c_program(tmp_path_factory):
    """Factory: ``c_program(name, *flags) -> path`` compiles
    ``tests/sources/<name>.c`` with the system ``gcc`` (``-O2`` plus
    ``flags``) once per session and returns the absolute path of the
    binary. Skips (fails in CI) without gcc."""
    return _compile_once_factory(tmp_path_factory.mktemp("c_programs"), "gcc", ".c",
                                 "the system C compiler")


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
# Judging jobs (exec family, ingen, inwer, interactive): C++ and Java test
# programs, and a Filetracker store to put test files in.
# --------------------------------------------------------------------------

@pytest.fixture(scope="session")
def cxx_program(tmp_path_factory):
    """Factory: ``cxx_program(name, *flags) -> path`` compiles
    ``tests/sources/<name>.cpp`` with the system ``g++ -O2`` once per
    session. Skips (fails in CI) without g++."""
    return _compile_once_factory(tmp_path_factory.mktemp("cxx_programs"), "g++", ".cpp",
                                 "the system C++ compiler")


@pytest.fixture(scope="session")
def java_jar(tmp_path_factory):
    """Factory: ``java_jar(name, main_class) -> path`` compiles
    ``tests/sources/<name>.java`` with ``javac`` into a jar once per
    session. Skips (fails in CI) without a JDK."""
    import shutil
    import subprocess

    from tests.support import SOURCES, missing

    built: dict[str, str] = {}

    def build(name: str, main_class: str) -> str:
        if name not in built:
            if shutil.which("javac") is None or shutil.which("jar") is None \
                    or shutil.which("java") is None:
                missing("javac, jar and java (a JDK)")
            work = tmp_path_factory.mktemp(f"java_{name}")
            subprocess.run(["javac", "-d", str(work), str(SOURCES / f"{name}.java")],
                           check=True, capture_output=True)
            jar = work / f"{main_class}.jar"
            subprocess.run(["jar", "cf", str(jar), "-C", str(work), f"{main_class}.class"],
                           check=True, capture_output=True)
            built[name] = str(jar)
        return built[name]

    return build


class FiletrackerStore:
    """Puts files on a Filetracker server and reads them back, as a contest
    system does around its jobs. Names are under a per-session prefix."""

    def __init__(self, url: str, cache_dir: str) -> None:
        import uuid

        from filetracker.client import Client

        self.url = url
        self.client = Client(remote_url=url, cache_dir=cache_dir)
        self.prefix = f"/judge-tests/{uuid.uuid4().hex[:8]}"
        self._tmp = cache_dir
        self._count = 0

    def put(self, name: str, data: bytes | str | None = None, *, path: str | None = None) -> str:
        """Store ``data`` (or the file ``path``) as ``<prefix>/<n>/<name>``
        (``n`` new each time) and return the versioned name."""
        import os

        self._count += 1
        if path is None:
            path = os.path.join(self._tmp, f"upload-{self._count}")
            with open(path, "wb") as f:
                f.write(data.encode() if isinstance(data, str) else (data or b""))
        # A counter in the name: every test gets files of its own.
        return self.client.put_file(f"{self.prefix}/{self._count}/{name}", path)

    def name(self, name: str) -> str:
        """A new unversioned name under the prefix (for results to be stored at)."""
        self._count += 1
        return f"{self.prefix}/{self._count}/{name}"

    def get(self, name: str) -> bytes:
        import os

        self._count += 1
        path = os.path.join(self._tmp, f"download-{self._count}")
        self.client.get_file(name, path, add_to_cache=False)
        with open(path, "rb") as f:
            return f.read()


@pytest.fixture(scope="session")
def ft_store(filetracker_server, tmp_path_factory):
    """A :class:`FiletrackerStore` on the session's real Filetracker server."""
    return FiletrackerStore(filetracker_server.url, str(tmp_path_factory.mktemp("ft_store")))


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
# --- supervised engine (issue 5): test programs compiled once per session ---

@pytest.fixture(scope="session")
def sup_programs(tmp_path_factory):
    """The C programs ``tests/sources/{hostile,sup}_*.c``, compiled once per
    session with gcc (static, like SIO2's compilers; ``<name>.dyn`` is a
    dynamically linked build). Returns a dict ``name -> path``."""
    import shutil
    import subprocess
    from concurrent.futures import ThreadPoolExecutor

    from tests.support import SOURCES, missing

    gcc = shutil.which("gcc")
    if gcc is None:
        missing("gcc (apt install gcc)")
    out = tmp_path_factory.mktemp("sup-programs")
    jobs = []
    for src in sorted(SOURCES.glob("hostile_*.c")) + sorted(SOURCES.glob("sup_*.c")):
        jobs.append((src.stem, [gcc, "-O2", "-static", "-pthread", "-o", str(out / src.stem),
                                str(src)]))
    for name in ("sup_behave", "hostile_open", "hostile_threads", "sup_fake_time"):
        jobs.append((name + ".dyn", [gcc, "-O2", "-pthread", "-o", str(out / (name + ".dyn")),
                                     str(SOURCES / (name + ".c"))]))

    def build(job):
        name, cmd = job
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode:
            raise RuntimeError(f"cannot compile {name}: {done.stderr}")
        return name

    with ThreadPoolExecutor(max_workers=4) as pool:
        names = list(pool.map(build, jobs))
    return {name: str(out / name) for name in names}
