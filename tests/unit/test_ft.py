"""sio.workers.ft with an in-memory DummyClient: modes, destinations,
environ rules, errors. No server, no processes."""

from __future__ import annotations

import os
import stat
import tempfile
import threading

import pytest
from filetracker.client.dummy import DummyClient

import sio.workers
from sio.workers import ft
from sio.workers.errors import MissingEnvironKey, UsageError
from sio.workers.util import TemporaryCwd, tempcwd


def put(client, name: str, data: bytes, tmp_path) -> str:
    src = tmp_path / "src"
    src.write_bytes(data)
    return client.put_file(name, str(src))


class Recording(DummyClient):
    """A DummyClient that remembers the keyword arguments it was given."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[str, str, dict]] = []

    def get_file(self, name, save_to, **kwargs):
        self.calls.append(("get", name, kwargs))
        return super().get_file(name, save_to, **kwargs)

    def put_file(self, name, filename, **kwargs):
        self.calls.append(("put", name, kwargs))
        return super().put_file(name, filename, **kwargs)


# -- download: destinations ------------------------------------------------

def test_download_to_a_relative_file_is_inside_the_job_directory(ft_dummy, tmp_path):
    put(ft_dummy, "/p/t.in", b"data", tmp_path)
    path = ft.download({"in_file": "/p/t.in"}, "in_file", "in")
    assert path == tempcwd("in")
    assert open(path, "rb").read() == b"data"


def test_download_dest_none_uses_the_base_name_without_version(ft_dummy, tmp_path):
    vname = put(ft_dummy, "/p/t.in", b"x", tmp_path)
    assert "@" in vname
    path = ft.download({"f": vname}, "f")
    assert path == tempcwd("t.in")
    assert open(path, "rb").read() == b"x"


def test_download_to_a_directory_creates_it(ft_dummy, tmp_path):
    put(ft_dummy, "/p/lib.h", b"h", tmp_path)
    path = ft.download({"f": "/p/lib.h"}, "f", "deep/er/")
    assert path == tempcwd("deep/er/lib.h")
    assert oct(os.stat(tempcwd("deep/er")).st_mode & 0o777) == "0o700"


def test_download_creates_parents_of_a_file_dest_and_keeps_absolute_dests(ft_dummy, tmp_path):
    put(ft_dummy, "/p/a", b"a", tmp_path)
    target = tmp_path / "abs" / "sub" / "a.txt"
    assert ft.download({"f": "/p/a"}, "f", str(target)) == str(target)
    assert target.read_bytes() == b"a"


def test_download_overwrites_and_leaves_no_temporary_files(ft_dummy, tmp_path):
    put(ft_dummy, "/p/a", b"new", tmp_path)
    with open(tempcwd("a"), "wb") as f:
        f.write(b"old")
    ft.download({"f": "/p/a"}, "f", "a")
    assert open(tempcwd("a"), "rb").read() == b"new"
    assert os.listdir(tempcwd()) == ["a"]


def test_skip_if_exists_does_not_read_the_environ_and_returns_the_resolved_path(ft_dummy):
    with open(tempcwd("out"), "wb") as f:
        f.write(b"mine")
    # The key is missing: with the file there nothing needs it.
    assert ft.download({}, "out_file", "out", skip_if_exists=True) == tempcwd("out")
    assert open(tempcwd("out"), "rb").read() == b"mine"


def test_skip_if_exists_with_a_directory_dest_checks_the_file(ft_dummy, tmp_path):
    put(ft_dummy, "/p/a", b"remote", tmp_path)
    os.mkdir(tempcwd("d"))
    path = ft.download({"f": "/p/a"}, "f", "d/", skip_if_exists=True)
    assert open(path, "rb").read() == b"remote"  # the directory existed, the file did not
    ft_dummy.put_file("/p/a", str(tmp_path / "src"))
    assert ft.download({"f": "/p/a"}, "f", "d/", skip_if_exists=True) == path


def test_add_to_cache_defaults_to_false_and_kwargs_are_passed(tmp_path, monkeypatch):
    monkeypatch.setenv("FILETRACKER_DIR", str(tmp_path / "ftdir"))
    client = Recording()
    put(client, "/p/a", b"a", tmp_path)
    with TemporaryCwd():
        ft.set_instance(client)
        try:
            ft.download({"f": "/p/a"}, "f", "a")
            ft.download({"f": "/p/a"}, "f", "b", add_to_cache=True, force_refresh=True)
            ft.upload({}, "g", "a", "/q/a", to_remote_store=False)
        finally:
            ft.set_instance(None)
    gets = [c for c in client.calls if c[0] != "put" or c[1] == "/q/a"]
    assert gets[0] == ("get", "/p/a", {"add_to_cache": False})
    assert gets[1] == ("get", "/p/a", {"add_to_cache": True, "force_refresh": True})
    assert gets[2] == ("put", "/q/a", {"to_remote_store": False})


def test_a_versioned_name_gets_that_version_or_a_newer_one(ft_dummy, tmp_path):
    old = put(ft_dummy, "/p/a@100", b"old", tmp_path)
    assert old == "/p/a@100"
    assert open(ft.download({"f": old}, "f", "1"), "rb").read() == b"old"
    put(ft_dummy, "/p/a@200", b"new", tmp_path)
    assert open(ft.download({"f": old}, "f", "2"), "rb").read() == b"new"


# -- upload ----------------------------------------------------------------

def test_upload_writes_the_versioned_name_back(ft_dummy, tmp_path):
    with open(tempcwd("out"), "wb") as f:
        f.write(b"result")
    env = {"out_file": "/eval/1-out"}
    name = ft.upload(env, "out_file", tempcwd("out"))
    assert name == env["out_file"]
    assert name.startswith("/eval/1-out@") and name.rsplit("@", 1)[1].isdigit()
    assert ft_dummy.get_stream(name)[0].read() == b"result"


def test_upload_dest_is_only_a_default_the_environ_wins(ft_dummy):
    with open(tempcwd("out"), "wb") as f:
        f.write(b"r")
    env = {"k": "/wanted"}
    assert ft.upload(env, "k", "out", "/ignored").startswith("/wanted@")
    env = {"k": None}
    assert ft.upload(env, "k", "out", "/dir/").startswith("/dir/out@")
    with pytest.raises(MissingEnvironKey, match="'k'"):
        ft.upload({}, "k", "out")


def test_upload_of_a_missing_source_names_it(ft_dummy):
    with pytest.raises(ft.MissingFile, match="nope"):
        ft.upload({}, "k", "nope", "/x")


# -- local paths -----------------------------------------------------------

@pytest.fixture
def original_cwd(tmp_path, monkeypatch):
    root = tmp_path / "start"
    root.mkdir()
    monkeypatch.setattr(sio.workers, "_original_cwd", str(root))
    return root


def test_local_mode_resolves_against_the_original_cwd(ft_dummy, original_cwd):
    (original_cwd / "in.txt").write_bytes(b"local")
    env = {"use_filetracker": False, "in_file": "in.txt", "out_file": "res/out.txt"}
    path = ft.download(env, "in_file", "in")
    assert open(path, "rb").read() == b"local"
    assert ft.upload(env, "out_file", "in") == "res/out.txt"
    assert (original_cwd / "res" / "out.txt").read_bytes() == b"local"
    assert ft_dummy.local_store.data == {}  # nothing went through Filetracker


def test_auto_mode_uses_filetracker_for_absolute_names_only(ft_dummy, original_cwd, tmp_path):
    put(ft_dummy, "/p/a", b"ft", tmp_path)
    (original_cwd / "a").write_bytes(b"disk")
    env = {"use_filetracker": "auto", "x": "/p/a", "y": "a"}
    assert open(ft.download(env, "x", "1"), "rb").read() == b"ft"
    assert open(ft.download(env, "y", "2"), "rb").read() == b"disk"


def test_local_download_of_the_same_file_is_a_no_op(ft_dummy, original_cwd):
    (original_cwd / "a").write_bytes(b"same")
    target = str(original_cwd / "a")
    assert ft.download({"use_filetracker": False, "f": "a"}, "f", target) == target
    assert (original_cwd / "a").read_bytes() == b"same"


def _ino(path) -> tuple[int, int]:
    st = os.stat(path)
    return st.st_dev, st.st_ino


def _leftovers() -> list[str]:
    return [n for n in os.listdir(tempcwd()) if n.endswith(".part")]


def test_local_add_to_cache_hard_links_a_file_everyone_may_read(ft_dummy, original_cwd):
    src = original_cwd / "t.in"
    src.write_bytes(b"test")
    os.chmod(src, 0o444)
    if _ino(original_cwd)[0] != _ino(tempcwd())[0]:
        pytest.skip("the test directory and the job directory are on different file systems")
    env = {"use_filetracker": False, "in_file": "t.in"}
    path = ft.download(env, "in_file", "in", add_to_cache=True)
    assert _ino(path) == _ino(src)
    assert os.stat(src).st_nlink == 2
    assert open(path, "rb").read() == b"test"
    assert stat.S_IMODE(os.stat(src).st_mode) == 0o444  # nothing changed it
    # Without add_to_cache, or with link_local=False: a copy of its own.
    for kwargs in ({}, {"add_to_cache": False}, {"add_to_cache": True, "link_local": False}):
        copy = ft.download(env, "in_file", "copy", **kwargs)
        assert _ino(copy) != _ino(src) and open(copy, "rb").read() == b"test"
        os.unlink(copy)
    # link_local=True links without add_to_cache too.
    assert _ino(ft.download(env, "in_file", "again", link_local=True)) == _ino(src)
    assert _leftovers() == []


def test_local_file_others_may_not_read_is_copied(ft_dummy, original_cwd):
    # A job may have to add o+r for a program under another uid: never on
    # the user's own private file.
    src = original_cwd / "secret.out"
    src.write_bytes(b"hint")
    os.chmod(src, 0o640)
    path = ft.download({"use_filetracker": False, "h": "secret.out"}, "h", "hint",
                       add_to_cache=True)
    assert _ino(path) != _ino(src)
    assert open(path, "rb").read() == b"hint"


@pytest.mark.parametrize("mode, linked", [(0o755, True), (0o705, True), (0o754, False),
                                          (0o644, False), (0o700, False)])
def test_local_file_is_linked_only_with_every_bit_of_link_mode(ft_dummy, original_cwd,
                                                                 mode, linked):
    # A program is linked only when running it adds nothing to its mode.
    if _ino(original_cwd)[0] != _ino(tempcwd())[0]:
        pytest.skip("the test directory and the job directory are on different file systems")
    src = original_cwd / "prog"
    src.write_bytes(b"\x7fELF")
    os.chmod(src, mode)
    path = ft.download({"use_filetracker": False, "p": "prog"}, "p", "prog",
                       link_local=True, link_mode=0o505)
    assert (_ino(path) == _ino(src)) == linked
    assert stat.S_IMODE(os.stat(src).st_mode) == mode


@pytest.mark.parametrize("errno_", [18, 1, 31])  # EXDEV, EPERM, EMLINK
def test_local_link_failure_falls_back_to_a_copy(ft_dummy, original_cwd, monkeypatch, errno_):
    src = original_cwd / "t.in"
    src.write_bytes(b"data")
    os.chmod(src, 0o644)
    tried = []

    def no_link(*args, **kwargs):
        tried.append(args)
        raise OSError(errno_, os.strerror(errno_))

    monkeypatch.setattr(os, "link", no_link)
    path = ft.download({"use_filetracker": False, "in_file": "t.in"}, "in_file", "in",
                       add_to_cache=True)
    assert tried
    assert open(path, "rb").read() == b"data"
    assert _ino(path) != _ino(src)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644
    assert _leftovers() == []


def test_local_link_to_another_file_system_is_a_copy(ft_dummy, original_cwd, monkeypatch):
    shm = "/dev/shm"
    if not os.path.isdir(shm) or not os.access(shm, os.W_OK) \
            or os.stat(shm).st_dev == os.stat(original_cwd).st_dev:
        pytest.skip("no writable /dev/shm on another file system than the tests")
    src = original_cwd / "t.in"
    src.write_bytes(b"far")
    os.chmod(src, 0o644)
    monkeypatch.setattr(tempfile, "tempdir", shm)
    with TemporaryCwd():
        path = ft.download({"use_filetracker": False, "in_file": "t.in"}, "in_file", "in",
                           add_to_cache=True)
        assert path.startswith(shm + "/")
        assert open(path, "rb").read() == b"far"
        assert os.stat(src).st_nlink == 1
        assert _leftovers() == []


def test_local_download_replaces_an_existing_dest(ft_dummy, original_cwd):
    src = original_cwd / "t.in"
    src.write_bytes(b"new")
    os.chmod(src, 0o644)
    with open(tempcwd("in"), "wb") as f:
        f.write(b"old")
    path = ft.download({"use_filetracker": False, "in_file": "t.in"}, "in_file", "in",
                       add_to_cache=True)
    assert open(path, "rb").read() == b"new"
    assert _ino(path) == _ino(src)
    assert _leftovers() == []


def test_a_bad_use_filetracker_string_is_a_usage_error(ft_dummy):
    with pytest.raises(UsageError, match="use_filetracker"):
        ft.download({"use_filetracker": "false", "f": "/a"}, "f")


# -- errors ----------------------------------------------------------------

def test_missing_key_names_the_key(ft_dummy):
    with pytest.raises(MissingEnvironKey, match="'in_file'") as e:
        ft.download({}, "in_file", "in")
    assert isinstance(e.value, KeyError)


def test_missing_file_names_key_and_name_and_leaves_nothing(ft_dummy, original_cwd):
    with pytest.raises(ft.MissingFile) as e:
        ft.download({"in_file": "/no/such"}, "in_file", "in")
    assert "'in_file'" in str(e.value) and "/no/such" in str(e.value)
    assert isinstance(e.value, FileNotFoundError)
    with pytest.raises(ft.MissingFile, match="'in_file'"):
        ft.download({"use_filetracker": False, "in_file": "gone"}, "in_file", "in")
    assert os.listdir(tempcwd()) == []


def test_a_relative_name_with_use_filetracker_true_is_a_usage_error(ft_dummy):
    with pytest.raises(ft.InvalidName, match="'rel/x'") as e:
        ft.download({"f": "rel/x"}, "f", "x")
    assert isinstance(e.value, UsageError)


def test_a_failing_transfer_leaves_no_partial_file_and_keeps_the_old_one(ft_dummy):
    class Broken(DummyClient):
        def get_file(self, name, save_to, **kwargs):
            with open(save_to, "wb") as f:
                f.write(b"half")
            raise ConnectionError("connection reset")

    with open(tempcwd("dest"), "wb") as f:
        f.write(b"old")
    ft.set_instance(Broken())
    with pytest.raises(ft.FiletrackerError, match="connection reset") as e:
        ft.download({"f": "/a"}, "f", "dest")
    assert "'f'" in str(e.value) and "'/a'" in str(e.value)
    assert open(tempcwd("dest"), "rb").read() == b"old"
    assert os.listdir(tempcwd()) == ["dest"]


# -- clients ---------------------------------------------------------------

def test_the_current_client_is_per_thread(ft_dummy):
    other = DummyClient()
    seen = []

    def worker():
        ft.set_instance(other)
        seen.append(ft.instance())

    t = threading.Thread(target=worker)
    t.start()
    t.join()
    assert seen == [other]
    assert ft.instance() is ft_dummy


def test_init_instance_makes_one_client_per_url(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    url = "http://127.0.0.1:1/x"
    clients = []

    def worker():
        clients.append(ft.init_instance(url))
        assert ft.instance() is clients[-1]

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(clients) == 8 and all(c is clients[0] for c in clients)
    assert ft.init_instance(url + "/") is clients[0]
    assert ft.init_instance("http://127.0.0.1:2") is not clients[0]
    cache = ft.get_cache_dir(url)
    assert cache == str(tmp_path / ".filetracker_cache" / ("ft_cache_" + ft.get_url_hash(url)))
    assert os.path.isdir(cache)
    ft.set_instance(None)


def test_init_instance_rejects_a_non_url():
    with pytest.raises(UsageError, match="filetracker_url"):
        ft.init_instance("127.0.0.1:9999")


def test_default_client_is_a_local_store_without_filetracker_url(tmp_path, monkeypatch):
    for var in ("FILETRACKER_URL", "FILETRACKER_PUBLIC_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("FILETRACKER_DIR", str(tmp_path / "store"))
    with TemporaryCwd():
        try:
            with open(tempcwd("f"), "wb") as f:
                f.write(b"kept")
            name = ft.upload({}, "k", "f", "/x/f")
            assert os.path.isdir(tmp_path / "store")
            assert open(ft.download({"k": name}, "k", "g"), "rb").read() == b"kept"
            assert "local Filetracker store" in ft._store_of(ft.instance())
        finally:
            ft.set_instance(None)


# -- launching -------------------------------------------------------------

def test_launch_does_nothing_without_a_public_url(monkeypatch):
    monkeypatch.delenv("FILETRACKER_PUBLIC_URL", raising=False)
    assert ft.launch_filetracker_server() is None


def test_launch_without_a_storage_dir_says_what_to_set(monkeypatch):
    from tests.support import free_port

    monkeypatch.setenv("FILETRACKER_PUBLIC_URL", f"http://127.0.0.1:{free_port()}")
    monkeypatch.delenv("FILETRACKER_DIR", raising=False)
    with pytest.raises(UsageError, match="FILETRACKER_DIR"):
        ft.launch_filetracker_server()


def test_cli_help_and_nothing_to_do(monkeypatch, capsys):
    with pytest.raises(SystemExit) as e:
        ft.main(["--help"])
    assert e.value.code == 0
    assert "FILETRACKER_LISTEN_PORT" in capsys.readouterr().out
    monkeypatch.delenv("FILETRACKER_PUBLIC_URL", raising=False)
    assert ft.main([]) == 0
    assert "nothing to do" in capsys.readouterr().out
