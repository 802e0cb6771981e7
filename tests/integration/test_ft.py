"""sio.workers.ft against a real filetracker-server (the session fixture
``filetracker_server``), and sio-run-filetracker end to end."""

from __future__ import annotations

import hashlib
import http.client
import http.server
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from sio.workers import ft, runner
from sio.workers._engine.daemon import group_alive, stop_group
from sio.workers.util import TemporaryCwd, tempcwd
from tests.support import PYTHON, free_port, make_plugin_distribution

pytestmark = pytest.mark.integration

BIN = Path(sys.executable).parent


@pytest.fixture
def job(filetracker_server):
    """A job directory whose current client is the session server's."""
    with TemporaryCwd():
        ft.init_instance(filetracker_server.url)
        try:
            yield filetracker_server
        finally:
            ft.set_instance(None)


def write(name: str, data: bytes) -> str:
    path = tempcwd(name)
    with open(path, "wb") as f:
        f.write(data)
    return path


def read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def unique(name: str) -> str:
    return f"/it/{os.getpid()}-{time.monotonic_ns()}/{name}"


# -- round trips and versions ----------------------------------------------

def test_round_trip_writes_the_versioned_name(job):
    data = os.urandom(100_000)
    env = {"out_file": unique("bin")}
    name = ft.upload(env, "out_file", write("a.out", data))
    base, version = name.rsplit("@", 1)
    assert base == env["out_file"].rsplit("@", 1)[0] and int(version) > 1_600_000_000
    assert read(ft.download({"f": name}, "f", "back")) == data
    assert read(ft.download({"f": base}, "f", "back2")) == data


def test_versions_newer_wins_and_an_older_upload_is_ignored(job):
    name = unique("t.in")
    v200 = ft.upload({}, "k", write("a", b"two hundred"), f"{name}@200")
    assert v200 == f"{name}@200"
    # An older version never replaces a newer one; the environ tells which
    # version the server keeps.
    env = {}
    assert ft.upload(env, "k", write("b", b"one hundred"), f"{name}@100") == f"{name}@200"
    assert env["k"] == f"{name}@200"
    assert read(ft.download({"k": name}, "k", "c")) == b"two hundred"
    ft.upload({}, "k", write("d", b"three hundred"), f"{name}@300")
    # Asking for @200 when the server has @300: "that version or a newer one".
    assert read(ft.download({"k": f"{name}@200"}, "k", "e")) == b"three hundred"


def test_names_with_colons(job):
    name = unique("2024-01-01T10:00:00:a:b.out")
    vname = ft.upload({}, "k", write("x", b"colons"), name)
    assert vname.startswith(name + "@")
    assert read(ft.download({"k": vname}, "k", "y")) == b"colons"
    assert read(ft.download({"k": vname}, "k")) == b"colons"
    assert os.path.exists(tempcwd("2024-01-01T10:00:00:a:b.out"))


def test_cached_downloads_need_no_server(job, tmp_path):
    from filetracker.client import Client

    vname = ft.upload({}, "k", write("x", b"cache me"), unique("c"))
    ft.download({"k": vname}, "k", "1", add_to_cache=True)
    cache = ft.get_cache_dir(job.url)
    assert os.path.exists(os.path.join(cache, "files") + vname.rsplit("@", 1)[0])
    # The same cache with a server that is not there: a versioned name is
    # served from the cache.
    ft.set_instance(Client(remote_url=f"http://127.0.0.1:{free_port()}", cache_dir=cache))
    assert read(ft.download({"k": vname}, "k", "2")) == b"cache me"
    with pytest.raises(ft.FiletrackerError, match="127.0.0.1"):
        ft.download({"k": unique("not-cached")}, "k", "3")


def test_through_runner_run(filetracker_server, plugin):
    plugin({"sio.jobs": {"ft_reverse": "sio_test_ft_jobs:reverse"}},
           {"sio_test_ft_jobs": """
            from sio.workers import ft
            from sio.workers.util import tempcwd

            def reverse(environ):
                data = open(ft.download(environ, 'in_file', 'in'), 'rb').read()
                with open(tempcwd('out'), 'wb') as f:
                    f.write(data[::-1])
                ft.upload(environ, 'out_file', tempcwd('out'))
                return environ
            """})
    with TemporaryCwd():
        ft.init_instance(filetracker_server.url)
        in_file = ft.upload({}, "k", write("in", b"abc"), unique("in"))
        ft.set_instance(None)
    out_name = unique("out")
    env = runner.run({"job_type": "ft_reverse", "filetracker_url": filetracker_server.url,
                      "in_file": in_file, "out_file": out_name})
    assert env["result"] == "SUCCESS"
    assert env["out_file"].startswith(out_name + "@")
    with TemporaryCwd():
        ft.init_instance(filetracker_server.url)
        assert read(ft.download(env, "out_file", "o")) == b"cba"
        ft.set_instance(None)


def test_sio_batch_prints_only_the_result(filetracker_server, tmp_path):
    # The filetracker client prints the protocol it settles on; sio-batch
    # must keep standard output to the three lines of the result.
    root = make_plugin_distribution(tmp_path / "site", "sio_test_ft_batch",
                                    {"sio.jobs": {"ft_put": "sio_test_ft_batch_jobs:put"}},
                                    {"sio_test_ft_batch_jobs": """
        from sio.workers import ft
        from sio.workers.util import tempcwd

        def put(environ):
            with open(tempcwd('f'), 'w') as f:
                f.write('x')
            ft.upload(environ, 'out_file', tempcwd('f'))
            return environ
        """})
    env = dict(os.environ, PYTHONPATH=str(root),
               environ=json.dumps({"job_type": "ft_put", "out_file": unique("o"),
                                   "filetracker_url": filetracker_server.url}))
    p = subprocess.run([str(BIN / "sio-batch")], env=env, capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert len(lines) == 3, p.stdout
    assert "@" in json.loads(lines[1])["out_file"]


# -- errors ----------------------------------------------------------------

def test_missing_file_and_unreachable_server_name_url_path_and_key(job, tmp_path, monkeypatch):
    name = unique("absent")
    with pytest.raises(ft.MissingFile) as e:
        ft.download({"in_file": name}, "in_file", "in")
    for part in (job.url, name, "'in_file'"):
        assert part in str(e.value)
    assert os.listdir(tempcwd()) == []
    url = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("HOME", str(tmp_path))  # its cache dir: a failed upload still fills it
    ft.init_instance(url)
    with pytest.raises(ft.FiletrackerError) as e:
        ft.download({"in_file": "/a"}, "in_file", "in")
    assert url in str(e.value) and "'/a'" in str(e.value) and "'in_file'" in str(e.value)
    with pytest.raises(ft.FiletrackerError, match=url):
        ft.upload({}, "out_file", write("x", b""), "/a")
    assert os.listdir(tempcwd()) == ["x"]


# -- a URL with a path prefix ----------------------------------------------

class _PrefixProxy(http.server.ThreadingHTTPServer):
    """Serves ``/ft/<anything>`` by forwarding ``/<anything>`` to a server:
    what a reverse proxy in front of Filetracker does."""

    daemon_threads = True

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.split("//", 1)[1]
        super().__init__(("127.0.0.1", 0), _PrefixHandler)


class _PrefixHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _forward(self):
        if not self.path.startswith("/ft/"):
            self.send_error(404, "outside the /ft prefix")
            return
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        conn = http.client.HTTPConnection(self.server.upstream, timeout=30)
        headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
        conn.request(self.command, self.path[3:], body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        self.send_response(resp.status)
        for k, v in resp.getheaders():
            if k.lower() not in ("content-length", "transfer-encoding", "connection"):
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
        conn.close()

    do_GET = do_PUT = do_HEAD = do_DELETE = _forward


def test_url_with_a_path_prefix(job):
    # filetracker-server itself serves only at the root: the first path
    # component is its endpoint, so a prefix is an error naming the URL...
    with pytest.raises(ft.FiletrackerError) as e:
        ft.init_instance(job.url + "/ft")
        ft.upload({}, "k", write("x", b"p"), unique("p"))
    assert job.url + "/ft" in str(e.value)
    # ...but behind a proxy that serves it under /ft (as s3dedup or nginx
    # do), the prefix is kept in every request.
    proxy = _PrefixProxy(job.url)
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{proxy.server_address[1]}/ft"
        ft.init_instance(url)
        vname = ft.upload({}, "k", write("y", b"prefixed"), unique("p"))
        assert read(ft.download({"k": vname}, "k", "z")) == b"prefixed"
        assert read(ft.download({"k": vname.rsplit("@", 1)[0]}, "k", "z2")) == b"prefixed"
    finally:
        proxy.shutdown()
        proxy.server_close()
        shutil.rmtree(ft.get_cache_dir(url), ignore_errors=True)
        shutil.rmtree(ft.get_cache_dir(job.url + "/ft"), ignore_errors=True)


# -- concurrency -----------------------------------------------------------

class _Watcher(threading.Thread):
    """Reads ``path`` over and over while others replace it; records every
    content it saw that was not the expected one."""

    def __init__(self, path: str, data: bytes) -> None:
        super().__init__(daemon=True)
        self.path, self.data = path, data
        self.bad: list[int] = []
        self.reads = 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                with open(self.path, "rb") as f:
                    seen = f.read()
            except FileNotFoundError:
                continue
            self.reads += 1
            if seen != self.data:
                self.bad.append(len(seen))


@pytest.fixture(scope="module")
def big_file(filetracker_server):
    data = os.urandom(3 * 1024 * 1024)
    with TemporaryCwd():
        ft.init_instance(filetracker_server.url)
        name = ft.upload({}, "k", write("big", data), unique("big"))
        ft.set_instance(None)
    return name, data


def test_eight_threads_download_one_file(filetracker_server, big_file, tmp_path):
    name, data = big_file
    dest = str(tmp_path / "shared" / "big")
    errors: list[BaseException] = []
    results: list[bytes] = []

    def worker(i: int) -> None:
        try:
            with TemporaryCwd():
                ft.init_instance(filetracker_server.url)
                # Half use the cache (shared, locked), half go to the server.
                for _ in range(2):
                    path = ft.download({"k": name}, "k", dest, add_to_cache=i % 2 == 0)
                    results.append(read(ft.download({"k": name}, "k", "own")))
                assert path == dest
        except BaseException as e:  # reported by the main thread
            errors.append(e)

    watcher = _Watcher(dest, data)
    watcher.start()
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    watcher.stop.set()
    watcher.join()
    assert errors == []
    assert len(results) == 16 and all(r == data for r in results)
    assert watcher.bad == [], "a reader saw a partial file"
    assert read(dest) == data
    assert os.listdir(os.path.dirname(dest)) == ["big"]


CHILD = """
import hashlib
import sys
from sio.workers import ft
from sio.workers.util import TemporaryCwd
url, name, dest = sys.argv[1:]
with TemporaryCwd():
    ft.init_instance(url)
    for i in range(3):
        ft.download({'k': name}, 'k', dest, add_to_cache=True)
        path = ft.download({'k': name}, 'k', 'own', add_to_cache=i % 2 == 0)
        print(hashlib.sha256(open(path, 'rb').read()).hexdigest())
"""


def test_four_processes_download_one_file(filetracker_server, big_file, tmp_path):
    name, data = big_file
    dest = str(tmp_path / "shared" / "big")
    watcher = _Watcher(dest, data)
    watcher.start()
    procs = [subprocess.Popen([PYTHON, "-c", CHILD, filetracker_server.url, name, dest],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(4)]
    outputs = [p.communicate(timeout=120) for p in procs]
    watcher.stop.set()
    watcher.join()
    digest = hashlib.sha256(data).hexdigest()
    for p, (out, err) in zip(procs, outputs):
        assert p.returncode == 0, err
        assert out.split() == [digest] * 3
    assert watcher.bad == [], "a reader saw a partial file"
    assert read(dest) == data
    assert os.listdir(os.path.dirname(dest)) == ["big"]


# -- sio-run-filetracker ---------------------------------------------------

def run_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "sio-run-filetracker"), *args], env=env,
                          capture_output=True, text=True, timeout=120)


def test_sio_run_filetracker_end_to_end(tmp_path):
    if shutil.which("filetracker-server", path=str(BIN)) is None:
        from tests.support import missing

        missing("filetracker-server", required=True)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    store = tmp_path / "store"
    env = {k: v for k, v in os.environ.items() if not k.startswith("FILETRACKER_")}
    env.update(FILETRACKER_PUBLIC_URL=f"{url}  other words", FILETRACKER_DIR=str(store),
               BUILD_ID="ci-build-1")  # a CI variable: must not reach the server
    pid = None
    try:
        first = run_cli(env)
        assert first.returncode == 0, first.stderr
        pid = int((store / "filetracker-server.pid").read_text())
        assert f"pid {pid}" in first.stdout
        # It answers as soon as the command returns, and outlives it.
        with urllib.request.urlopen(url + "/version", timeout=10) as r:
            assert json.load(r)["protocol_versions"]
        assert os.getpgid(pid) == pid and os.getsid(pid) == pid
        environ = open(f"/proc/{pid}/environ", "rb").read().split(b"\0")
        assert not any(v.startswith(b"BUILD_ID=") for v in environ)
        second = run_cli(env)
        assert second.returncode == 0, second.stderr
        assert "nothing to do" in second.stdout
        assert int((store / "filetracker-server.pid").read_text()) == pid
        with TemporaryCwd():
            ft.init_instance(url)
            try:
                vname = ft.upload({}, "k", write("x", b"served"), "/e2e/x")
                assert read(ft.download({"k": vname}, "k", "y")) == b"served"
            finally:
                ft.set_instance(None)
    finally:
        if pid is not None:
            # By PID, as a user would; workers still booting can miss
            # SIGTERM, hence the short wait before SIGKILL.
            stop_group(pid, timeout_s=5)
        shutil.rmtree(ft.get_cache_dir(url), ignore_errors=True)
    assert not group_alive(pid)


def test_sio_run_filetracker_reports_a_server_that_cannot_start(tmp_path):
    # Something that is not HTTP holds the listen port: the server cannot
    # bind, and the error shows its log.
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        env = {k: v for k, v in os.environ.items() if not k.startswith("FILETRACKER_")}
        env.update(FILETRACKER_PUBLIC_URL=f"http://127.0.0.1:{free_port()}",
                   FILETRACKER_DIR=str(tmp_path / "store"),
                   FILETRACKER_LISTEN_PORT=str(busy.getsockname()[1]))
        p = run_cli(env, "--timeout", "60")
    assert p.returncode == 1
    assert "cannot start a Filetracker server" in p.stderr
    assert "the end of its log" in p.stderr and "filetracker-server.log" in p.stderr
    assert "Traceback" not in p.stderr.split("the end of its log")[0]


def test_importing_ft_does_not_import_filetracker():
    code = ("import sys, sio.workers.ft, sio.workers.runner; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('filetracker', 'requests', 'urllib3', 'argparse')))")
    out = subprocess.run([PYTHON, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
