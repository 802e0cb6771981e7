"""Sandboxes from a real HTTP server on 127.0.0.1, used by real processes,
and ``sio-get-sandbox`` as users run it."""

from __future__ import annotations

import functools
import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from sio.workers import sandbox as sandbox_module
from sio.workers.sandbox import SandboxError, get_sandbox
from tests.sandbox_support import sandbox_archive
from tests.support import missing

pytestmark = pytest.mark.integration

GET_SANDBOX = shutil.which("sio-get-sandbox") or str(Path(sys.executable).parent / "sio-get-sandbox")

T0 = 1_700_000_000  # a Last-Modified time


@functools.lru_cache(maxsize=None)
def demo(version, nfiles=20, size=100):
    """Sandbox 'demo': VERSION and data/NNNN files all holding ``version``
    (padded to ``size`` bytes), so a reader can tell a partial tree."""
    body = version.ljust(size, ".")
    return sandbox_archive("demo", {"VERSION": version, "COUNT": str(nfiles),
                                    **{f"data/{i:05}": body for i in range(nfiles)}})


# Run in subprocesses: enter the sandbox, check the whole tree is one
# version, optionally wait for a line on stdin while inside, check again.
USER = r"""
import json, os, sys
from sio.workers.sandbox import get_sandbox

def look(path):
    version = open(os.path.join(path, "VERSION")).read()
    count = int(open(os.path.join(path, "COUNT")).read())
    names = sorted(os.listdir(os.path.join(path, "data")))
    whole = len(names) == count and all(
        open(os.path.join(path, "data", n)).read().rstrip(".") == version for n in names)
    return {"version": version, "whole": whole}

sb = get_sandbox("demo")
with sb:
    report = {"first": look(sb.path)}
    if "--hold" in sys.argv:
        print("inside", flush=True)
        sys.stdin.readline()
        report["again"] = look(sb.path)
print(json.dumps(report), flush=True)
"""


@pytest.fixture
def user_script(tmp_path):
    path = tmp_path / "user.py"
    path.write_text(USER)
    return path


def start_user(script, *args):
    return subprocess.Popen([sys.executable, str(script), *args], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(proc, timeout=120):
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err
    return json.loads(out.strip().splitlines()[-1])


def installed(server, *args):
    """Sandbox 'demo' installed from ``server`` as ``demo(*args)`` at T0."""
    server.put("demo", demo(*args), mtime=T0)
    sb = get_sandbox("demo")
    sb.prepare()
    return sb


def backdate_check(sb):
    with open(os.path.join(sb.path, ".last_check"), "w") as f:
        f.write("0\n")


def test_install_from_http_with_last_modified(archive_server):
    archive_server.put("demo", demo("v1"), mtime=T0)
    sb = get_sandbox("demo")
    with sb:
        assert open(os.path.join(sb.path, "VERSION")).read() == "v1"
    assert sb.installed_version == str(T0)
    assert sb.installed_from == f"URL {archive_server.url}/demo.tar.gz"
    assert archive_server.gets("demo") == 1


def test_no_network_within_the_check_interval(archive_server, user_script):
    installed(archive_server, "v1")
    archive_server.requests.clear()
    # Other processes and this one, entering again and again.
    for _ in range(2):
        assert finish(start_user(user_script))["first"] == {"version": "v1", "whole": True}
    with get_sandbox("demo"):
        pass
    assert archive_server.requests == []


def test_after_the_interval_only_the_version_is_asked(archive_server):
    sb = installed(archive_server, "v1")
    backdate_check(sb)
    archive_server.requests.clear()
    with sb:
        pass
    assert archive_server.requests == [("HEAD", "/demo.tar.gz")]
    archive_server.requests.clear()
    with sb:  # checked just now
        pass
    assert archive_server.requests == []


def test_upgrade_when_last_modified_changes(archive_server):
    sb = installed(archive_server, "v1")
    archive_server.put("demo", demo("v2"), mtime=T0 + 60)
    backdate_check(sb)
    with sb:
        assert open(os.path.join(sb.path, "VERSION")).read() == "v2"
    assert sb.installed_version == str(T0 + 60)
    assert archive_server.gets("demo") == 2


def test_truncated_http_download(archive_server, sandbox_env):
    data = demo("v1", nfiles=50, size=5000)
    archive_server.put("demo", data, mtime=T0, cut_at=len(data) // 2)
    with pytest.raises(SandboxError) as e:
        get_sandbox("demo").prepare()
    assert f"URL {archive_server.url}/demo.tar.gz" in str(e.value)
    assert "truncated download" in str(e.value) or "interrupted" in str(e.value)
    assert not os.path.exists(sandbox_env / "demo")
    assert not os.path.exists(sandbox_env / ".staging")


def test_http_404_is_listed(archive_server):
    with pytest.raises(SandboxError, match=r"URL http://127\.0\.0\.1:\d+/demo\.tar\.gz: HTTP 404"):
        get_sandbox("demo").prepare()


def test_four_processes_enter_during_an_upgrade(archive_server, user_script):
    """One process is inside v1 when v2 appears; four more enter. The upgrade
    waits for the first to leave (its tree stays whole), exactly one of the
    four downloads and installs v2, and all four see the whole of v2."""
    sb = installed(archive_server, "v1", 200)
    holder = start_user(user_script, "--hold")
    assert holder.stdout.readline().strip() == "inside"

    archive_server.put("demo", demo("v2", nfiles=200, size=1000), mtime=T0 + 60)
    archive_server.delay_per_chunk_s = 0.3  # a slow download: the others pile up
    archive_server.requests.clear()
    backdate_check(sb)
    users = [start_user(user_script) for _ in range(4)]
    time.sleep(1.5)
    # Nobody may replace the tree while the holder is inside it.
    assert archive_server.gets("demo") == 0
    assert all(u.poll() is None for u in users)

    holder.stdin.write("go\n")
    holder.stdin.flush()
    held = finish(holder)
    assert held == {"first": {"version": "v1", "whole": True},
                    "again": {"version": "v1", "whole": True}}
    reports = [finish(u) for u in users]
    assert reports == [{"first": {"version": "v2", "whole": True}}] * 4
    assert archive_server.gets("demo") == 1
    assert not os.path.exists(os.path.join(sb.basedir, ".staging"))


def test_process_killed_mid_extraction(archive_server, user_script, sandbox_env):
    sb = installed(archive_server, "v1")
    # Many files: extraction takes long enough to be caught in the middle.
    archive_server.put("demo", demo("v2", nfiles=3000, size=10), mtime=T0 + 60)
    backdate_check(sb)
    victim = start_user(user_script)
    pattern = str(sandbox_env / ".staging" / "demo" / "*" / "tree" / "demo" / "data" / "*")
    deadline = time.monotonic() + 60
    while not glob.glob(pattern):
        assert victim.poll() is None, "finished before it could be killed: " + \
            victim.stderr.read()
        assert time.monotonic() < deadline, "the extraction never started"
        time.sleep(0.001)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert victim.returncode == -signal.SIGKILL
    # The old tree is untouched and whole...
    assert open(os.path.join(sb.path, "VERSION")).read() == "v1"
    assert len(os.listdir(os.path.join(sb.path, "data"))) == 20
    assert glob.glob(pattern)  # (the half-extracted tree is still in staging)
    # ...and the next user gets the whole new one; the debris is gone.
    assert finish(start_user(user_script))["first"] == {"version": "v2", "whole": True}
    assert not os.path.exists(sandbox_env / ".staging")


def test_process_killed_mid_first_install(archive_server, user_script, sandbox_env):
    archive_server.put("demo", demo("v1", nfiles=3000, size=10), mtime=T0)
    victim = start_user(user_script)
    pattern = str(sandbox_env / ".staging" / "demo" / "*" / "tree" / "demo" / "data" / "*")
    deadline = time.monotonic() + 60
    while not glob.glob(pattern):
        assert victim.poll() is None, victim.stderr.read()
        assert time.monotonic() < deadline
        time.sleep(0.001)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert not os.path.exists(sandbox_env / "demo")  # never a partial tree in place
    assert finish(start_user(user_script))["first"] == {"version": "v1", "whole": True}


# --------------------------------------------------------------------------
# The ELF loader fixup, run for real with the host's loader
# --------------------------------------------------------------------------

def _host_loader_and_libc():
    import re

    out = subprocess.run(["ldd", "/bin/echo"], capture_output=True, text=True).stdout
    loader = re.search(r"^\s*(/\S*ld-linux\S*)", out, re.M)
    libc = re.search(r"libc\.so\.6 => (\S+)", out)
    if not loader or not libc:
        missing("a dynamically linked /bin/echo with ld-linux and libc.so.6", required=False)
    return Path(loader.group(1)).read_bytes(), Path(libc.group(1)).read_bytes()


def test_elf_loader_patch_runs_programs_with_the_sandbox_loader(archive_server):
    loader, libc = _host_loader_and_libc()
    archive_server.put("demo", sandbox_archive("demo", {
        # The host's loader under the 32-bit name is enough to trigger and
        # exercise the fixup.
        "lib/ld-linux.so.2": loader, "lib/libc.so.6": libc,
        "bin/echo": Path("/bin/echo").read_bytes(),
    }))
    with get_sandbox("demo") as sb:
        echo = os.path.join(sb.path, "bin/echo")
        assert open(echo, "rb").read(2) == b"#!"
        out = subprocess.run([echo, "hello", "it's me"], capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        assert out.stdout == "hello it's me\n"
        assert sb.has_fixup("elf_loader_patch")


# --------------------------------------------------------------------------
# sio-get-sandbox
# --------------------------------------------------------------------------

def get_sandbox_cli(*args):
    return subprocess.run([GET_SANDBOX, *args], capture_output=True, text=True, timeout=120)


def test_cli_installs_lists_and_reports(archive_server, sandbox_env):
    archive_server.put("demo", demo("v1"), mtime=T0)
    # Incompressible and over 1 MiB: a download worth a progress line.
    archive_server.put("big", sandbox_archive("big", {"blob": os.urandom(3 << 20)}), mtime=T0)
    p = get_sandbox_cli("demo", "big")
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines() == [str(sandbox_env / "demo"), str(sandbox_env / "big")]
    assert "downloading big:" in p.stderr and "(100%)" in p.stderr
    assert "downloading demo" not in p.stderr

    p = get_sandbox_cli("--list")
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert [line.split("\t")[0] for line in lines] == ["big", "demo"]
    assert f"{T0} (2023-11-14 22:13:20 UTC)" in lines[1]
    assert f"URL {archive_server.url}/demo.tar.gz" in lines[1]

    # python -m prints the path too.
    p = subprocess.run([sys.executable, "-m", "sio.workers.sandbox", "demo"],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0 and p.stdout.strip() == str(sandbox_env / "demo"), p.stderr


def test_cli_checks_for_a_newer_version_now(archive_server):
    archive_server.put("demo", demo("v1"), mtime=T0)
    assert get_sandbox_cli("demo").returncode == 0
    archive_server.put("demo", demo("v2"), mtime=T0 + 60)
    p = get_sandbox_cli("demo")
    assert p.returncode == 0, p.stderr
    assert open(os.path.join(p.stdout.strip(), "VERSION")).read() == "v2"


def test_cli_errors(archive_server, sandbox_env):
    # Nothing installed: --list says where it looked, in one line.
    p = get_sandbox_cli("--list")
    assert p.returncode == 0 and p.stdout == ""
    assert p.stderr == f"sio-get-sandbox: no sandboxes installed in {sandbox_env} " \
                       "(SIO_SANDBOXES_BASEDIR)\n"

    p = get_sandbox_cli("nowhere")
    assert p.returncode == 1
    assert p.stderr.startswith("sio-get-sandbox: error: cannot install sandbox 'nowhere': ")
    assert f"URL {archive_server.url}/nowhere.tar.gz: HTTP 404" in p.stderr
    assert "Traceback" not in p.stderr
    assert os.listdir(sandbox_env) == []  # nor a lock file, nor .staging

    p = get_sandbox_cli()
    assert p.returncode == 2 and "give sandbox names" in p.stderr
    p = get_sandbox_cli("--frobnicate")
    assert p.returncode == 2
    p = get_sandbox_cli("../etc")
    assert p.returncode == 2 and "invalid sandbox name" in p.stderr
    p = get_sandbox_cli("--help")
    assert p.returncode == 0 and "SIO_SANDBOXES_URL" in p.stdout


def test_cli_pristine(archive_server, sandbox_env):
    archive_server.put("demo", demo("v1"))
    p = get_sandbox_cli("--pristine", "demo")
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == str(sandbox_env / "no-fixup" / "demo")
    assert "demo (pristine)" in get_sandbox_cli("--list").stdout


# --------------------------------------------------------------------------
# From a real Filetracker server
# --------------------------------------------------------------------------

_real_filetracker_client = sandbox_module._filetracker_client


@pytest.fixture
def ft_sandboxes(filetracker_server, archive_server, monkeypatch, tmp_path):
    """The real Filetracker server is the first source (through
    sio.workers.ft, as jobs use it), the HTTP server the second.
    ``put(name, data, version)`` uploads ``/sandboxes/<name>.tar.gz``;
    names are unique per test (the server lives for the whole session)."""
    from filetracker.client import Client

    from sio.workers import ft

    monkeypatch.setattr(sandbox_module, "_filetracker_client", _real_filetracker_client)
    monkeypatch.setenv("FILETRACKER_URL", filetracker_server.url)
    ft.init_instance(filetracker_server.url)
    uploader = Client(remote_url=filetracker_server.url, cache_dir=None)

    class Store:
        name = "ft-" + uuid.uuid4().hex[:10]

        def put(self, data, version):
            path = tmp_path / f"upload-{version}.tar.gz"
            path.write_bytes(data)
            uploader.put_file(f"/sandboxes/{self.name}.tar.gz@{version}", str(path))

    yield Store()
    ft.set_instance(None)


def named(name, version):
    return sandbox_archive(name, {"VERSION": version})


def test_filetracker_first_then_url(ft_sandboxes, archive_server):
    name = ft_sandboxes.name
    archive_server.put(name, named(name, "from-url"), mtime=T0)
    sb = get_sandbox(name)
    sb.prepare()  # not in Filetracker yet: the URL
    assert open(os.path.join(sb.path, "VERSION")).read() == "from-url"
    assert sb.installed_from.startswith("URL ")

    ft_sandboxes.put(named(name, "from-ft"), T0 + 100)
    backdate_check(sb)
    archive_server.requests.clear()
    with sb:  # Filetracker answers the version check first, and differs
        assert open(os.path.join(sb.path, "VERSION")).read() == "from-ft"
    assert sb.installed_version == str(T0 + 100)
    assert sb.installed_from == f"Filetracker /sandboxes/{name}.tar.gz"
    assert archive_server.requests == []


def test_filetracker_version_check(ft_sandboxes):
    name = ft_sandboxes.name
    ft_sandboxes.put(named(name, "v1"), T0)
    sb = get_sandbox(name)
    sb.prepare()
    inode = os.stat(sb.path).st_ino
    # The same version is not fetched again (the original compared bytes
    # with str and re-downloaded after every interval).
    backdate_check(sb)
    with sb:
        pass
    assert os.stat(sb.path).st_ino == inode
    ft_sandboxes.put(named(name, "v2"), T0 + 100)
    with sb:  # within the interval
        assert open(os.path.join(sb.path, "VERSION")).read() == "v1"
    backdate_check(sb)
    with sb:
        assert open(os.path.join(sb.path, "VERSION")).read() == "v2"


def test_bad_archive_in_filetracker_falls_back_and_names_it(ft_sandboxes, archive_server):
    name = ft_sandboxes.name
    ft_sandboxes.put(b"\x1f\x8b garbage", T0)
    with pytest.raises(SandboxError) as e:
        get_sandbox(name).prepare()
    assert f"Filetracker /sandboxes/{name}.tar.gz: corrupt or truncated archive" in str(e.value)
    assert f"URL {archive_server.url}/{name}.tar.gz: HTTP 404" in str(e.value)
    archive_server.put(name, named(name, "from-url"))
    with get_sandbox(name) as sb:
        assert open(os.path.join(sb.path, "VERSION")).read() == "from-url"


def test_cli_installs_from_filetracker(ft_sandboxes):
    # In a fresh process the client comes from FILETRACKER_URL (ft.instance()).
    name = ft_sandboxes.name
    ft_sandboxes.put(named(name, "v1"), T0)
    p = get_sandbox_cli(name)
    assert p.returncode == 0, p.stderr
    # Only the path: what the filetracker client prints goes to stderr.
    assert len(p.stdout.splitlines()) == 1, p.stdout
    assert open(os.path.join(p.stdout.strip(), "VERSION")).read() == "v1"
    assert f"Filetracker /sandboxes/{name}.tar.gz" in get_sandbox_cli("--list").stdout
