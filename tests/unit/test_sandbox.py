"""sio.workers.sandbox without servers or processes: archives from file://
URLs and a stand-in Filetracker client."""

from __future__ import annotations

import errno
import os
import stat
import threading
import time
import uuid

import pytest

from sio.workers import sandbox
from sio.workers.errors import SioWorkersError, UsageError
from sio.workers.sandbox import NullSandbox, SandboxError, get_sandbox
from tests.sandbox_support import HardLink, Link, archive, sandbox_archive


@pytest.fixture
def store(tmp_path, sandbox_env, monkeypatch):
    """A directory served as SIO_SANDBOXES_URL=file://...; ``put(name, data,
    mtime)`` writes ``name.tar.gz`` there."""
    root = tmp_path / "store"
    root.mkdir()
    monkeypatch.setenv("SIO_SANDBOXES_URL", root.as_uri())

    class Store:
        path = root
        url = root.as_uri()

        def put(self, name, data, mtime=None):
            f = root / f"{name}.tar.gz"
            f.write_bytes(data)
            if mtime is not None:
                os.utime(f, (mtime, mtime))
            return f

    return Store()


def demo(version="v1", **extra):
    return sandbox_archive("demo", {"VERSION": version, "bin/tool": "#!/bin/sh\n", **extra})


def staging_entries(basedir, name="demo"):
    d = basedir / ".staging" / name
    return sorted(os.listdir(d)) if d.exists() else []


class FakeFiletracker:
    """Stands for a Filetracker client: the sandbox archives it holds."""

    def __init__(self, files=None):
        self.files = dict(files or {})  # path -> (data, version)
        self.calls = []

    def file_version(self, path):
        self.calls.append(("file_version", path))
        if path not in self.files:
            raise FileNotFoundError(path)
        return self.files[path][1]

    def get_file(self, path, dest, add_to_cache=True):
        self.calls.append(("get_file", path))
        if path not in self.files:
            raise FileNotFoundError(path)
        data, version = self.files[path]
        with open(dest, "wb") as f:
            f.write(data)
        return f"{path}@{version}"


# --------------------------------------------------------------------------
# Names, settings, registry
# --------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["", ".hidden", "a/b", "..", "a b", "x\0"])
def test_invalid_names_are_usage_errors(sandbox_env, name):
    with pytest.raises(UsageError, match="invalid sandbox name"):
        get_sandbox(name)


def test_unknown_flavor(sandbox_env):
    with pytest.raises(UsageError, match="unknown sandbox flavor 'shiny'"):
        get_sandbox("demo", "shiny")


def test_one_object_per_name_flavor_and_basedir(sandbox_env, tmp_path, monkeypatch):
    a = get_sandbox("demo")
    assert get_sandbox("demo") is a
    p = get_sandbox("demo", "pristine")
    assert p is not a and p.flavor == "pristine"
    assert a.path == str(sandbox_env / "demo")
    assert p.path == str(sandbox_env / "no-fixup" / "demo")
    # The base directory is a setting read when used: a new one, a new object.
    monkeypatch.setenv("SIO_SANDBOXES_BASEDIR", str(tmp_path / "other"))
    b = get_sandbox("demo")
    assert b is not a and b.path == str(tmp_path / "other" / "demo")


def test_constructing_downloads_nothing(sandbox_env):
    sb = get_sandbox("demo")
    assert not os.path.exists(sb.path)
    assert sb.installed_version is None


def test_defaults(monkeypatch):
    for var in ("SIO_SANDBOXES_BASEDIR", "SIO_SANDBOXES_URL", "SIO_SANDBOXES_CHECK_INTERVAL"):
        monkeypatch.delenv(var, raising=False)
    assert sandbox.sandboxes_basedir() == os.path.expanduser("~/.sio-sandboxes")
    assert sandbox.sandboxes_urls() == [sandbox.DEFAULT_SANDBOXES_URL]
    assert sandbox.check_interval_s() == 3600
    monkeypatch.setenv("SIO_SANDBOXES_URL", "")
    assert sandbox.sandboxes_urls() == []
    monkeypatch.setenv("SIO_SANDBOXES_URL", "http://a/x  file:///b")
    assert sandbox.sandboxes_urls() == ["http://a/x", "file:///b"]


@pytest.mark.parametrize("value", ["soon", "-5", "1.5"])
def test_bad_check_interval_names_the_variable(store, value, monkeypatch):
    store.put("demo", demo())
    get_sandbox("demo").prepare()
    monkeypatch.setenv("SIO_SANDBOXES_CHECK_INTERVAL", value)
    with pytest.raises(UsageError, match="SIO_SANDBOXES_CHECK_INTERVAL"):
        with get_sandbox("demo"):
            pass


def test_sandbox_error_is_a_sioworkers_error():
    assert issubclass(SandboxError, SioWorkersError)


def test_null_sandbox():
    ns = NullSandbox()
    assert not ns
    with ns as entered:
        assert entered is ns
    with pytest.raises(AssertionError):
        ns.path
    with pytest.raises(SandboxError):
        ns.path


# --------------------------------------------------------------------------
# Installing, markers, lookup order
# --------------------------------------------------------------------------

def test_install_from_file_url_with_markers(store, sandbox_env):
    store.put("demo", demo(), mtime=1_700_000_000)
    sb = get_sandbox("demo")
    with sb:
        assert open(os.path.join(sb.path, "VERSION")).read() == "v1"
        assert os.access(os.path.join(sb.path, "bin/tool"), os.X_OK)
    read = lambda m: open(os.path.join(sb.path, m)).read()  # noqa: E731
    assert read(".hash") == "1700000000\n"  # text, not bytes (Appendix A 10)
    assert sb.installed_version == "1700000000"
    assert sb.installed_from == f"URL {store.url}/demo.tar.gz"
    assert read(".fixups_applied").split() == ["elf_loader_patch"]
    assert read(".fixups_operative").strip() == ""  # no 32-bit loader: nothing patched
    assert abs(int(read(".last_check")) - time.time()) < 60
    assert not sb.has_fixup("elf_loader_patch")
    assert staging_entries(sandbox_env) == []


def test_entering_is_reentrant_and_exit_is_checked(store):
    store.put("demo", demo())
    sb = get_sandbox("demo")
    with sb:
        with sb:
            assert os.path.isdir(sb.path)
    with pytest.raises(SandboxError, match="exited more often"):
        sb.__exit__(None, None, None)


def test_filetracker_comes_first(store, monkeypatch):
    store.put("demo", demo("from-url"))
    ft = FakeFiletracker({"/sandboxes/demo.tar.gz": (demo("from-ft"), 42)})
    monkeypatch.setattr(sandbox, "_filetracker_client", lambda: ft)
    sb = get_sandbox("demo")
    with sb:
        assert open(os.path.join(sb.path, "VERSION")).read() == "from-ft"
    assert sb.installed_version == "42"
    assert sb.installed_from == "Filetracker /sandboxes/demo.tar.gz"


def test_falls_back_to_the_url_when_filetracker_lacks_it(store, monkeypatch):
    store.put("demo", demo("from-url"))
    monkeypatch.setattr(sandbox, "_filetracker_client", lambda: FakeFiletracker())
    with get_sandbox("demo") as sb:
        assert open(os.path.join(sb.path, "VERSION")).read() == "from-url"


def test_several_urls_are_tried_in_order(store, tmp_path, monkeypatch):
    store.put("demo", demo("second"))
    missing = (tmp_path / "nothing-here").as_uri()
    monkeypatch.setenv("SIO_SANDBOXES_URL", f"{missing} {store.url}")
    with get_sandbox("demo") as sb:
        assert open(os.path.join(sb.path, "VERSION")).read() == "second"


def test_when_every_source_fails_the_error_lists_each(store, tmp_path, monkeypatch):
    missing = (tmp_path / "nothing-here").as_uri()
    monkeypatch.setenv("SIO_SANDBOXES_URL", f"{missing} ftp://example.invalid/x")
    with pytest.raises(SandboxError) as e:
        get_sandbox("demo").prepare()
    msg = str(e.value)
    assert "'demo'" in msg
    assert "Filetracker /sandboxes/demo.tar.gz: no Filetracker in this test" in msg
    assert f"URL {missing}/demo.tar.gz:" in msg
    assert "URL ftp://example.invalid/x/demo.tar.gz: unsupported URL scheme" in msg
    assert [s for s, _ in e.value.failures] == [
        "Filetracker /sandboxes/demo.tar.gz", f"URL {missing}/demo.tar.gz",
        "URL ftp://example.invalid/x/demo.tar.gz"]
    assert not os.path.exists(get_sandbox("demo").path)


def test_no_sources_at_all_says_how_to_fix(sandbox_env):
    with pytest.raises(SandboxError, match="SIO_SANDBOXES_URL"):
        get_sandbox("demo").prepare()


def test_a_failed_install_leaves_nothing_behind(store, sandbox_env):
    # No archive anywhere: the entry fails, and the base directory is as
    # empty as before (no .staging, no demo.lock).
    with pytest.raises(SandboxError):
        get_sandbox("demo").prepare()
    assert os.listdir(sandbox_env) == []
    # A bad archive: extracted into staging, refused, all removed.
    store.put("demo", sandbox_archive("demo", {"up": Link("../..")}))
    with pytest.raises(SandboxError, match="points outside"):
        get_sandbox("demo").prepare()
    assert os.listdir(sandbox_env) == []
    # Then a good one installs, and only its tree and lock file stay.
    store.put("demo", demo())
    get_sandbox("demo").prepare()
    assert sorted(os.listdir(sandbox_env)) == ["demo", "demo.lock"]


def test_an_interrupted_install_leaves_nothing_behind(store, sandbox_env, monkeypatch):
    from sio.workers import sandbox as sandbox_module

    store.put("demo", demo())

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt  # Ctrl-C in the middle of the extraction

    monkeypatch.setattr(sandbox_module, "_extract", interrupted)
    with pytest.raises(KeyboardInterrupt):
        get_sandbox("demo").prepare()
    assert os.listdir(sandbox_env) == []


def test_a_removed_lock_file_is_never_relied_on(store, sandbox_env):
    # A process that waited for the lock while a failed installation removed
    # the file holds a lock on a dead file: it must lock the new one.
    import fcntl

    store.put("demo", demo())
    sb = get_sandbox("demo")
    sb.prepare()
    lock = sandbox_env / "demo.lock"
    sb._lock_fd()  # open: the descriptor of the file about to be removed
    os.unlink(lock)
    with sb:
        st, path_st = os.fstat(sb._fd), os.stat(lock)
        assert (st.st_dev, st.st_ino) == (path_st.st_dev, path_st.st_ino)
        other = os.open(lock, os.O_RDWR)
        try:  # the live file is the one locked: an exclusive lock must wait
            with pytest.raises(BlockingIOError):
                fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
        finally:
            os.close(other)


def test_a_failed_entry_releases_everything(store):
    sb = get_sandbox("demo")
    with pytest.raises(SandboxError):
        with sb:
            pass
    store.put("demo", demo())
    with sb:  # the lock was released and the counter restored
        pass
    assert sb._depth == 0


# --------------------------------------------------------------------------
# Versions and upgrades
# --------------------------------------------------------------------------

def backdate_check(sb):
    with open(os.path.join(sb.path, ".last_check"), "w") as f:
        f.write("0\n")


def test_no_check_within_the_interval(store):
    f = store.put("demo", demo(), mtime=1_700_000_000)
    sb = get_sandbox("demo")
    sb.prepare()
    f.unlink()  # any access to the source would now fail loudly
    with sb:
        assert open(os.path.join(sb.path, "VERSION")).read() == "v1"


def test_upgrade_when_the_version_changes(store):
    store.put("demo", demo("v1"), mtime=1_700_000_000)
    sb = get_sandbox("demo")
    sb.prepare()
    store.put("demo", demo("v2"), mtime=1_700_000_100)
    with sb:  # still within the interval: no check
        assert open(os.path.join(sb.path, "VERSION")).read() == "v1"
    backdate_check(sb)
    with sb:
        assert open(os.path.join(sb.path, "VERSION")).read() == "v2"
    assert sb.installed_version == "1700000100"


def test_same_version_is_not_downloaded_again(store, sandbox_env):
    store.put("demo", demo("v1"), mtime=1_700_000_000)
    sb = get_sandbox("demo")
    sb.prepare()
    inode = os.stat(sb.path).st_ino
    backdate_check(sb)
    with sb:
        pass
    assert os.stat(sb.path).st_ino == inode  # the same tree
    assert int(open(os.path.join(sb.path, ".last_check")).read()) > 0  # and checked


def test_interval_zero_checks_every_time(store, monkeypatch):
    monkeypatch.setenv("SIO_SANDBOXES_CHECK_INTERVAL", "0")
    store.put("demo", demo("v1"), mtime=1_700_000_000)
    sb = get_sandbox("demo")
    sb.prepare()
    store.put("demo", demo("v2"), mtime=1_700_000_100)
    with sb:
        assert open(os.path.join(sb.path, "VERSION")).read() == "v2"


def test_failed_upgrade_keeps_the_installed_copy(store, caplog):
    f = store.put("demo", demo("v1"), mtime=1_700_000_000)
    sb = get_sandbox("demo")
    sb.prepare()
    f.write_bytes(b"not an archive")
    os.utime(f, (1_700_000_100, 1_700_000_100))
    backdate_check(sb)
    with sb:
        assert open(os.path.join(sb.path, "VERSION")).read() == "v1"
    assert "keeping the installed copy" in caplog.text
    # A refresh (sio-get-sandbox) reports it instead.
    with pytest.raises(SandboxError, match="corrupt or truncated"):
        sb.prepare(refresh=True)
    assert open(os.path.join(sb.path, "VERSION")).read() == "v1"


def test_unreachable_source_keeps_the_installed_copy(store):
    f = store.put("demo", demo("v1"))
    sb = get_sandbox("demo")
    sb.prepare()
    f.unlink()
    backdate_check(sb)
    with sb:
        assert open(os.path.join(sb.path, "VERSION")).read() == "v1"


def test_missing_fixups_force_a_reinstall(store):
    store.put("demo", demo("v1"))
    sb = get_sandbox("demo")
    sb.prepare()
    os.unlink(os.path.join(sb.path, ".fixups_applied"))
    with open(os.path.join(sb.path, "VERSION"), "w") as f:
        f.write("damaged")
    with sb:
        assert open(os.path.join(sb.path, "VERSION")).read() == "v1"


def test_threads_share_one_installation(store, monkeypatch):
    store.put("demo", demo())
    fetches = []
    real = sandbox._URLSource.fetch

    def counting_fetch(self, dest, progress):
        fetches.append(self.url)
        time.sleep(0.2)  # let the other threads pile up behind this one
        return real(self, dest, progress)

    monkeypatch.setattr(sandbox._URLSource, "fetch", counting_fetch)
    sb = get_sandbox("demo")
    seen, errors = [], []

    def use():
        try:
            with sb:
                seen.append(open(os.path.join(sb.path, "VERSION")).read())
        except Exception as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=use) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and seen == ["v1"] * 8
    assert len(fetches) == 1


def test_stale_staging_is_removed(store, sandbox_env):
    store.put("demo", demo())
    leftover = sandbox_env / ".staging" / "demo" / "install-dead"
    (leftover / "tree" / "demo").mkdir(parents=True)
    with get_sandbox("demo"):
        pass
    assert staging_entries(sandbox_env) == []


# --------------------------------------------------------------------------
# Bad archives: nothing installed, the error names sandbox and source
# --------------------------------------------------------------------------

BAD_ARCHIVES = {
    "wrong top directory": (
        lambda: sandbox_archive("other", {"x": "1"}), "outside the top directory 'demo'"),
    "a second top-level entry": (
        lambda: archive({"demo": None, "demo/x": "1", "extra": "2"}),
        "'extra' is outside the top directory"),
    "top-level file": (lambda: archive({"demo": "file"}), "top-level 'demo' is not a directory"),
    "dot-dot": (lambda: archive({"demo": None, "demo/../escaped": "x"}), "escapes the sandbox"),
    "absolute path": (lambda: archive({"/tmp/demo-abs": "x"}), "absolute path"),
    # Absolute targets mean the sandbox's own '/' (see the tests below), so
    # 'etc -> /etc' is a link to itself there, as in a chroot: a loop.
    "absolute symlink to itself": (
        lambda: sandbox_archive("demo", {"etc": Link("/etc")}),
        "symbolic link 'demo/etc' ('/etc') is a loop: more than 40 links followed"),
    "loop of absolute symlinks": (
        lambda: sandbox_archive("demo", {"a": Link("/b"), "b": Link("/c/a"), "c": Link("/")}),
        "is a loop: more than 40 links followed"),
    "written through a loop": (
        lambda: archive({"demo": None, "demo/a": Link("/b"), "demo/b": Link("/a"),
                         "demo/a/x": "x"}),
        "'demo/a/x' is written through a loop of symbolic links"),
    "relative symlink out through an absolute one": (
        lambda: sandbox_archive("demo", {"usr/lib": None, "lib64": Link("/usr/lib"),
                                         "up": Link("lib64/../../..")}),
        "symbolic link 'demo/up' points outside the sandbox ('lib64/../../..')"),
    "symlink out": (
        lambda: sandbox_archive("demo", {"up": Link("../..")}), "points outside the sandbox"),
    "symlink to the parent via a link": (
        lambda: sandbox_archive("demo", {"t": Link("s/.."), "s": Link(".")}),
        "points outside the sandbox"),
    "write through a link": (
        lambda: archive({"demo": None, "demo/t": Link("s/.."), "demo/s": Link("."),
                         "demo/t/escaped": "x"}),
        "'demo/t/escaped' is written through a link out of the sandbox"),
    "hard link out": (
        lambda: sandbox_archive("demo", {"h": HardLink("/etc/passwd")}),
        "hard link 'demo/h' points outside"),
    "hard link with dot-dot": (
        lambda: archive({"demo": None, "demo/h": HardLink("demo/../demo-outside")}),
        "points outside"),
    "hard link to nothing": (
        lambda: sandbox_archive("demo", {"h": HardLink("demo/missing")}),
        "hard link 'demo/h' points to 'demo/missing', which is not a file extracted before it"),
    # Followed on the host (as os.link does) this would be the host's
    # /etc/passwd; inside the sandbox there is no such file.
    "hard link through an absolute symlink": (
        lambda: sandbox_archive("demo", {"e": Link("/etc"), "h": HardLink("demo/e/passwd")}),
        "which is not a file extracted before it"),
    "hard link to a directory": (
        lambda: sandbox_archive("demo", {"d/x": "x", "h": HardLink("demo/d")}),
        "which is not a file extracted before it"),
    "device file": (lambda: _special("demo/null", "CHRTYPE"), "device file"),
    "fifo": (lambda: _special("demo/pipe", "FIFOTYPE"), "FIFO"),
    "truncated": (lambda: demo(blob=os.urandom(200_000))[:-5000], "corrupt or truncated"),
    "not an archive": (lambda: b"<html>Not found</html>", "corrupt or truncated"),
    "no directory at all": (lambda: archive({}), "does not contain the directory 'demo'"),
}


def _special(name, kind):
    import io
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        d = tarfile.TarInfo("demo")
        d.type = tarfile.DIRTYPE
        tar.addfile(d)
        info = tarfile.TarInfo(name)
        info.type = getattr(tarfile, kind)
        tar.addfile(info)
    return buf.getvalue()


@pytest.mark.parametrize("case", sorted(BAD_ARCHIVES))
def test_bad_archive_installs_nothing(store, sandbox_env, tmp_path, case):
    make, reason = BAD_ARCHIVES[case]
    store.put("demo", make())
    sb = get_sandbox("demo")
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(SandboxError) as e:
        sb.prepare()
    msg = str(e.value)
    assert "sandbox 'demo'" in msg and f"URL {store.url}/demo.tar.gz" in msg
    assert reason in msg
    assert not os.path.lexists(sandbox_env / "demo")
    assert staging_entries(sandbox_env) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing escaped
    assert not os.path.lexists("/tmp/demo-abs")


def test_bad_upgrade_leaves_the_old_tree(store):
    store.put("demo", demo("v1"), mtime=1_700_000_000)
    sb = get_sandbox("demo")
    sb.prepare()
    store.put("demo", sandbox_archive("demo", {"up": Link("../..")}), mtime=1_700_000_100)
    with pytest.raises(SandboxError, match="points outside"):
        sb.prepare(refresh=True)
    assert open(os.path.join(sb.path, "VERSION")).read() == "v1"
    assert sb.installed_version == "1700000000"


def test_inner_symlinks_and_hard_links_are_fine(store):
    store.put("demo", sandbox_archive("demo", {
        "lib/libx.so.1": "lib", "lib/libx.so": Link("libx.so.1"),
        "usr/lib": Link("../lib"), "bin/twin": HardLink("demo/lib/libx.so.1"), "./dot": "d",
    }))
    with get_sandbox("demo") as sb:
        assert open(os.path.join(sb.path, "usr/lib/libx.so")).read() == "lib"
        assert open(os.path.join(sb.path, "bin/twin")).read() == "lib"


# --------------------------------------------------------------------------
# Absolute symbolic links: the sandbox's own '/' (chroot semantics)
# --------------------------------------------------------------------------

ABSOLUTE_LINKS = {
    "lib/real-ld": "LD", "lib64/ld.so": Link("/lib/real-ld"),
    "c/d": "D", "a": Link("/b"), "b": Link("/c/d"),  # a chain
    "usr/lib/libz.so.1": "Z", "usr/lib64": Link("/usr/lib"),  # a directory
    "etc/passwd": "sandbox's passwd\n", "x": Link("/../../etc/passwd"),
    "dangling": Link("/proc/self/mounts"),
    "usr/bin/cc": Link("/etc/alternatives/cc"), "etc/alternatives/cc": Link("/usr/bin/gcc-10"),
    "usr/bin/gcc-10": "gcc",
    # A relative link through an absolute one, staying inside.
    "zlib": Link("usr/lib64/libz.so.1"),
}


@pytest.mark.parametrize("flavor", [None, "pristine"])
def test_absolute_symlinks_are_kept_and_mean_the_sandbox_root(store, flavor):
    store.put("demo", sandbox_archive("demo", ABSOLUTE_LINKS))
    sb = get_sandbox("demo", flavor)
    with sb:
        for rel, entry in ABSOLUTE_LINKS.items():
            if isinstance(entry, Link):  # kept as they were, not rewritten
                assert os.readlink(os.path.join(sb.path, rel)) == entry.target, rel
        inside = lambda p: open(sandbox.resolve_in_sandbox(sb.path, p)).read()  # noqa: E731
        assert inside("lib64/ld.so") == "LD"
        assert inside("/a") == "D"
        assert inside("usr/lib64/libz.so.1") == "Z"
        assert inside("x") == "sandbox's passwd\n"
        assert inside("usr/bin/cc") == "gcc"
        assert inside("zlib") == "Z"
        assert sandbox.resolve_in_sandbox(sb.path, "/dangling") == \
            os.path.join(sb.path, "proc/self/mounts")


def test_resolve_in_sandbox(tmp_path):
    root = tmp_path / "root"
    (root / "usr/lib").mkdir(parents=True)
    (root / "lib").symlink_to("/usr/lib")
    (root / "up").symlink_to("../../../..")  # a chroot stops '..' at '/' too
    (root / "loop").symlink_to("/loop")
    r = str(root)
    resolve = sandbox.resolve_in_sandbox
    assert resolve(r, "/lib/x") == resolve(r, "lib/x") == f"{r}/usr/lib/x"
    assert resolve(r, "/lib/../..") == resolve(r, "/") == r
    assert resolve(r, "up/lib") == f"{r}/usr/lib"
    assert resolve(r, "missing/../lib") == f"{r}/usr/lib"
    with pytest.raises(OSError) as e:
        resolve(r, "loop/x")
    assert e.value.errno == errno.ELOOP


def test_writing_through_an_absolute_link_writes_into_the_sandbox(store, tmp_path):
    """Members below or at an absolute link are written where the link
    leads inside the sandbox: nothing is created or changed on the host
    (a plain tarfile extraction, as the original did, would write there)."""
    evil = f"sioworkers-evil-{uuid.uuid4().hex}"
    host_dir = tmp_path / "host-dir"
    host_dir.mkdir()
    host_file = tmp_path / "host-file"
    host_file.write_text("host\n")
    for path, mode in ((host_dir, 0o755), (host_file, 0o644)):
        path.chmod(mode)
        os.utime(path, (1_000_000_000, 1_000_000_000))
    before = {p: os.stat(p) for p in (host_dir, host_file)}
    store.put("demo", archive([
        ("demo", None),
        ("demo/lib64", Link("/tmp")), (f"demo/lib64/{evil}", "evil"),
        ("demo/hd", Link(str(host_dir))), ("demo/hd/sub/file", "below"),
        ("demo/hd", None),  # a directory over the link: not chmod-ed on the host
        ("demo/hf", Link(str(host_file))), ("demo/hf", "over"),  # a file over the link
    ], mode=0o700))
    with get_sandbox("demo") as sb:
        assert not os.path.lexists(f"/tmp/{evil}")
        assert open(os.path.join(sb.path, "tmp", evil)).read() == "evil"
        assert os.readlink(os.path.join(sb.path, "lib64")) == "/tmp"
        assert os.listdir(host_dir) == []
        assert host_file.read_text() == "host\n"
        for path, st in before.items():  # not even chmod-ed or touched
            now = os.stat(path)
            assert (now.st_mode, now.st_mtime, now.st_ino) == \
                (st.st_mode, st.st_mtime, st.st_ino), path
        assert open(os.path.join(sb.path, str(host_dir)[1:], "sub/file")).read() == "below"
        assert open(os.path.join(sb.path, str(host_file)[1:])).read() == "over"
        assert os.readlink(os.path.join(sb.path, "hf")) == str(host_file)


def test_hard_link_through_an_absolute_link_is_the_sandbox_file(store):
    store.put("demo", sandbox_archive("demo", {
        "etc/passwd": "sandbox's\n", "e": Link("/etc"), "h": HardLink("demo/e/passwd")}))
    with get_sandbox("demo") as sb:
        h = os.stat(os.path.join(sb.path, "h"))
        assert h.st_ino == os.stat(os.path.join(sb.path, "etc/passwd")).st_ino
        assert h.st_ino != os.stat("/etc/passwd").st_ino


def test_plain_tar_is_accepted(store):
    store.put("demo", sandbox_archive("demo", {"VERSION": "plain"}, compress=False))
    with get_sandbox("demo") as sb:
        assert open(os.path.join(sb.path, "VERSION")).read() == "plain"


def test_setuid_bits_are_dropped(store):
    store.put("demo", sandbox_archive("demo", {"bin/su": "x"}, mode=0o4755))
    with get_sandbox("demo") as sb:
        assert not os.stat(os.path.join(sb.path, "bin/su")).st_mode & 0o4000


# --------------------------------------------------------------------------
# The pristine flavour and the ELF loader fixup (without running anything)
# --------------------------------------------------------------------------

ELF = b"\x7fELF" + b"\0" * 60


def loader_sandbox():
    return sandbox_archive("demo", {
        "lib/ld-linux.so.2": ELF, "lib/libc.so.6": ELF, "bin/prog": ELF,
        "bin/script": "#!/bin/sh\n", "bin/obj.o": ELF, "skip/prog": ELF, "bin/skipped": ELF,
        ".elf_patcher_blacklist": "skip\n/bin/skipped\n",
    })


def test_elf_loader_patch(store):
    store.put("demo", loader_sandbox())
    sb = get_sandbox("demo")
    with sb:
        prog = os.path.join(sb.path, "bin/prog")
        script = open(prog).read()
        assert script.startswith("#!/bin/sh\n")
        assert f"{sb.path}/lib/ld-linux.so.2" in script
        assert f"--inhibit-rpath {sb.path}/bin/prog.old_elf_loader" in script
        assert os.access(prog, os.X_OK)
        assert open(prog + ".old_elf_loader", "rb").read() == ELF
        for untouched in ("lib/libc.so.6", "bin/obj.o", "skip/prog", "bin/skipped"):
            assert open(os.path.join(sb.path, untouched), "rb").read() == ELF, untouched
        assert open(os.path.join(sb.path, "bin/script")).read() == "#!/bin/sh\n"
        assert sb.has_fixup("elf_loader_patch")


def _snapshot(directory):
    return {p: (p.read_bytes(), os.stat(p).st_mtime_ns, os.stat(p).st_ino)
            for p in sorted(directory.rglob("*"))}


def test_elf_loader_patch_follows_absolute_links_inside_the_tree(store, tmp_path):
    """The loader, lib and the blacklist are absolute links (as in trees
    built from Debian packages) to paths the host has too, with other
    contents: the fixup uses the sandbox's files and leaves the host's."""
    host = tmp_path / "host"
    host.mkdir()
    (host / "ld.so").write_bytes(ELF + b"host's")
    (host / "blacklist").write_text("bin\n")  # would skip every program
    before = _snapshot(host)
    inner = str(host)[1:]
    store.put("demo", sandbox_archive("demo", {
        f"{inner}/ld.so": ELF, f"{inner}/blacklist": "skip\n",
        "usr/lib32/ld-linux.so.2": Link(f"{host}/ld.so"), "lib": Link("/usr/lib32"),
        ".elf_patcher_blacklist": Link(f"{host}/blacklist"),
        "bin/prog": ELF, "skip/prog": ELF,
    }))
    with get_sandbox("demo") as sb:
        script = open(os.path.join(sb.path, "bin/prog")).read()
        assert f"exec {sb.path}{host}/ld.so --library-path " \
               f"{sb.path}/usr/lib32:{sb.path}/usr/lib " in script
        assert open(os.path.join(sb.path, "bin/prog.old_elf_loader"), "rb").read() == ELF
        assert open(os.path.join(sb.path, "skip/prog"), "rb").read() == ELF  # its blacklist
        assert os.readlink(os.path.join(sb.path, "usr/lib32/ld-linux.so.2")) == f"{host}/ld.so"
        assert sb.has_fixup("elf_loader_patch")
    assert _snapshot(host) == before


def test_elf_loader_patch_ignores_a_loader_only_the_host_has(store, tmp_path):
    host = tmp_path / "host"
    host.mkdir()
    (host / "ld.so").write_bytes(ELF)
    before = _snapshot(host)
    store.put("demo", sandbox_archive("demo", {
        "lib/ld-linux.so.2": Link(f"{host}/ld.so"), "bin/prog": ELF}))
    with get_sandbox("demo") as sb:
        assert open(os.path.join(sb.path, "bin/prog"), "rb").read() == ELF
        assert not sb.has_fixup("elf_loader_patch")
    assert _snapshot(host) == before


def test_pristine_flavour_is_not_patched(store, sandbox_env):
    store.put("demo", loader_sandbox())
    sb = get_sandbox("demo", "pristine")
    with sb:
        assert sb.path == str(sandbox_env / "no-fixup" / "demo")
        assert open(os.path.join(sb.path, "bin/prog"), "rb").read() == ELF
        assert not sb.has_fixup("elf_loader_patch")
    assert open(os.path.join(sb.path, ".fixups_applied")).read().strip() == ""


def test_installed_sandboxes(store):
    store.put("demo", demo())
    store.put("tool", sandbox_archive("tool", {"x": "1"}))
    get_sandbox("demo").prepare()
    get_sandbox("tool", "pristine").prepare()
    assert [(s.name, s.flavor) for s in sandbox.installed_sandboxes()] == [
        ("demo", None), ("tool", "pristine")]
