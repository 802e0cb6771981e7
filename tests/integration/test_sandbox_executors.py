"""SandboxExecutor and PRootExecutor running real programs from sandboxes
served by a real HTTP server."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from sio.workers.executors import PRootExecutor, SandboxExecutor
from sio.workers.file_runners import get_file_runner
from sio.workers.util import TemporaryCwd, tempcwd
from tests.sandbox_support import Link, busybox_tree, sandbox_archive
from tests.support import missing

pytestmark = pytest.mark.integration

TOOL = PRootExecutor.TOOL_SANDBOX


@pytest.fixture
def rootfs(archive_server):
    """Sandbox 'rootfs': a static busybox with a few applets, /tmp, and a
    file only the sandbox has (/etc/motd); served, not yet installed."""
    tree = busybox_tree()
    if not tree:
        missing("a static busybox (Debian package busybox-static)")
    archive_server.put("rootfs", sandbox_archive("rootfs", {**tree, "etc/motd": "sandboxed\n"}))
    return archive_server


@pytest.fixture
def system_proot():
    if shutil.which("proot") is None:
        missing("proot (Debian package proot)")


@pytest.fixture
def job():
    with TemporaryCwd() as path:
        yield Path(path)


def test_proot_sandbox_is_root_and_job_dir_is_tmp(rootfs, system_proot, job):
    (job / "in.txt").write_text("hello\n")
    with PRootExecutor("rootfs") as ex:
        renv = ex(["sh", "-c", "tr a-z A-Z < in.txt > out.txt; pwd; cat /etc/motd; ls /"],
                  capture_output=True)
        assert renv["return_code"] == 0
        assert renv["stdout"].decode().split("\n") == [
            "/tmp", "sandboxed", "bin", "etc", "tmp", ""]
        assert (job / "out.txt").read_text() == "HELLO\n"
        assert ex.path.endswith(os.path.join("no-fixup", "rootfs"))  # the pristine flavour
        assert ex.rpath == "/"
        assert ex.rcwd() == "/tmp" and ex.rcwd("a/b") == "/tmp/a/b"
        assert ex.tempcwd_to_rcwd(tempcwd("x")) == "/tmp/x"
    # No proot-sandbox anywhere: the system proot was used.
    assert ("GET", f"/{TOOL}.tar.gz") in rootfs.requests


def test_proot_cwd_return_codes_and_shell_lines(rootfs, system_proot, job):
    (job / "sub").mkdir()
    with PRootExecutor("rootfs") as ex:
        assert ex(["pwd"], cwd=tempcwd("sub"), capture_output=True)["stdout"] == b"/tmp/sub\n"
        assert ex("exit 3", ignore_errors=True)["return_code"] == 3
        assert ex(["no-such-program"], ignore_errors=True)["return_code"] == 127
        renv = ex("echo a b | wc -w", capture_output=True)
        assert renv["stdout"].strip() == b"2"


def test_proot_binds_and_options_apply_to_one_call(rootfs, system_proot, job, tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "data").write_text("bound\n")
    with PRootExecutor("rootfs") as ex:
        assert ex(["cat", "/data/data"], binds=[(str(shared), "/data", "ro")],
                  capture_output=True)["stdout"] == b"bound\n"
        assert ex(["cat", "/opt/data"], proot_options=["-b", f"{shared}:/opt"],
                  capture_output=True)["stdout"] == b"bound\n"
        # The next call has none of them (the original accumulated binds).
        renv = ex(["ls", "/"], capture_output=True)
        assert renv["stdout"].split() == [b"bin", b"etc", b"tmp"]


#: an absolute path no host has
SANDBOX_ONLY = "/sandbox-only/busybox"


@pytest.mark.parametrize("busybox", ["/bin/busybox", SANDBOX_ONLY])
def test_proot_runs_a_sandbox_whose_programs_are_absolute_links(archive_server, system_proot,
                                                                 job, busybox):
    """Trees built from Debian packages link with absolute targets
    (bin/sh -> /bin/dash): they install as they are and run under PRoot,
    where '/' is the sandbox. With SANDBOX_ONLY, looking for /bin/sh on the
    host instead would not find it, and the shell line could not run."""
    tree = busybox_tree(("sh", "cat", "echo", "wc", "readlink"))
    if not tree:
        missing("a static busybox (Debian package busybox-static)")
    assert busybox == "/bin/busybox" or not os.path.lexists(busybox)
    files = {busybox[1:]: tree.pop("bin/busybox"), "etc/motd": "sandboxed\n"}
    files.update({k: Link(busybox) if isinstance(v, Link) else v for k, v in tree.items()})
    archive_server.put("debianish", sandbox_archive("debianish", files))
    (job / "in.txt").write_text("a b c\n")
    with PRootExecutor("debianish") as ex:
        assert os.readlink(os.path.join(ex.path, "bin/sh")) == busybox  # kept
        renv = ex("readlink /bin/sh; wc -w < in.txt; cat /etc/motd", capture_output=True)
    assert renv["return_code"] == 0, renv
    assert renv["stdout"].decode().split("\n") == [busybox, "3", "sandboxed", ""]


def test_proot_runs_a_job_program_through_the_file_runner(rootfs, system_proot, job, c_program):
    exe = c_program("echo_streams", "-static")
    shutil.copy(exe, job / "exe")
    (job / "in").write_text("input\n")
    environ = {"exec_info": {"mode": "executable"}}
    with get_file_runner(PRootExecutor("rootfs"), environ) as runner:
        with open(job / "in") as stdin:
            renv = runner("exe", ["arg"], stdin=stdin, capture_output=True)
    assert renv["stdout"] == b"input\narg\n"


def test_proot_limits(rootfs, system_proot, job):
    with PRootExecutor("rootfs") as ex:
        renv = ex(["sh", "-c", "while :; do :; done"], time_limit=300, ignore_errors=True)
    assert renv["return_code"] != 0


def _tool_archive(busybox_at="bin/busybox", sh=Link("busybox")):
    """A proot tool sandbox made of the host's proot and its libraries,
    with a static /bin/sh (``sh``, a link to the busybox at ``busybox_at``)."""
    proot = shutil.which("proot")
    busybox = busybox_tree().get("bin/busybox")
    if proot is None or busybox is None:
        missing("proot and a static busybox")
    out = subprocess.run(["ldd", proot], capture_output=True, text=True).stdout
    libs = {f"lib/{Path(p).name}": Path(p).read_bytes()
            for p in re.findall(r"=> (/\S+)", out)}
    return sandbox_archive(TOOL, {"proot/proot": Path(proot).read_bytes(), **libs,
                                  busybox_at: busybox, "bin/sh": sh})


def test_proot_from_the_tool_sandbox_lends_its_shell(archive_server, job):
    tree = {k: v for k, v in busybox_tree().items() if k != "bin/sh"}  # no shell of its own
    archive_server.put("bare", sandbox_archive("bare", tree))
    archive_server.put(TOOL, _tool_archive())
    with PRootExecutor("bare") as ex:
        assert ex._tool is not None and ex._proot == "proot/proot"
        renv = ex("echo from the tool shell; ls /bin/sh", capture_output=True)
    assert renv["stdout"] == b"from the tool shell\n/bin/sh\n"


def test_proot_tool_sandbox_lends_a_shell_that_is_an_absolute_link(archive_server, job):
    # The host has no /sandbox-only: looked up on the host, the tool's
    # shell would not exist and the shell line could not run.
    assert not os.path.lexists(SANDBOX_ONLY)
    tree = {k: v for k, v in busybox_tree().items() if k != "bin/sh"}
    archive_server.put("bare", sandbox_archive("bare", tree))
    archive_server.put(TOOL, _tool_archive(SANDBOX_ONLY[1:], Link(SANDBOX_ONLY)))
    with PRootExecutor("bare") as ex:
        assert ex._tool is not None
        renv = ex("echo from the tool shell | wc -w", capture_output=True)
    assert renv["stdout"].strip() == b"4"


def test_proot_without_any_proot_says_so(rootfs, job, monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    from sio.workers.sandbox import SandboxError

    with pytest.raises(SandboxError, match="apt install proot"):
        with PRootExecutor("rootfs"):
            pass


# --------------------------------------------------------------------------
# SandboxExecutor
# --------------------------------------------------------------------------

HELLO = "#!/bin/sh\necho \"hello from $0 LD=$LD_LIBRARY_PATH\"\n"


def test_sandbox_executor_resolves_programs_in_the_sandbox(archive_server, job):
    archive_server.put("tools", sandbox_archive("tools", {"bin/hello": HELLO}))
    with SandboxExecutor("tools") as ex:
        root = ex.path
        assert ex.rpath == root
        expected = f"hello from {root}/bin/hello LD={root}/lib:{root}/usr/lib\n".encode()
        assert ex(["bin/hello"], capture_output=True)["stdout"] == expected
        assert ex(["hello"], use_path=True, capture_output=True)["stdout"] == expected
        assert ex("hello", capture_output=True)["stdout"] == expected  # on PATH
        assert ex(["/bin/echo", "abs"], capture_output=True)["stdout"] == b"abs\n"


def test_sandbox_executor_follows_absolute_directory_links_inside(archive_server, job):
    """bin -> /usr/bin and lib -> /usr/lib (merged /usr, absolute): the
    program and LD_LIBRARY_PATH are the sandbox's, not the host's
    /usr/bin/sio-hello (which does not exist) and /usr/lib."""
    assert not os.path.lexists("/usr/bin/sio-hello")
    archive_server.put("merged", sandbox_archive("merged", {
        "usr/bin/sio-hello": HELLO, "usr/lib/libx.so": "", "bin": Link("/usr/bin"),
        "lib": Link("/usr/lib")}))
    with SandboxExecutor("merged") as ex:
        root = ex.path
        expected = f"LD={root}/usr/lib:{root}/usr/lib\n".encode()
        renv = ex(["bin/sio-hello"], capture_output=True)
        assert renv["stdout"] == f"hello from {root}/usr/bin/sio-hello ".encode() + expected
        renv = ex("sio-hello", capture_output=True)  # on PATH
        assert renv["stdout"] == f"hello from {root}/usr/bin/sio-hello ".encode() + expected


def test_sandbox_executor_with_the_elf_loader_patch(archive_server, job):
    out = subprocess.run(["ldd", "/bin/echo"], capture_output=True, text=True).stdout
    loader = re.search(r"^\s*(/\S*ld-linux\S*)", out, re.M)
    libc = re.search(r"libc\.so\.6 => (\S+)", out)
    if not loader or not libc:
        missing("a dynamically linked /bin/echo", required=False)
    archive_server.put("old32", sandbox_archive("old32", {
        "lib/ld-linux.so.2": Path(loader.group(1)).read_bytes(),
        "lib/libc.so.6": Path(libc.group(1)).read_bytes(),
        "bin/echo": Path("/bin/echo").read_bytes(), "bin/hello": HELLO}))
    with SandboxExecutor("old32") as ex:
        assert ex(["bin/echo", "patched"], capture_output=True)["stdout"] == b"patched\n"
        # The patched programs find their libraries: no LD_LIBRARY_PATH.
        assert ex(["bin/hello"], capture_output=True)["stdout"].endswith(b"LD=\n")
