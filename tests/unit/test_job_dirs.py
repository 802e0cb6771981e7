"""Reused job directories (:class:`sio.workers.util.TemporaryCwd`): every use
still gets a fresh, empty, private directory whose name is gone afterwards,
while the directory itself (its inode) is recycled."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import tempfile
import threading

import pytest

from sio.workers import util


@pytest.fixture
def tmpdir_(tmp_path, monkeypatch):
    """A private system temporary directory, and an empty pool before and
    after the test."""
    util.remove_idle_directories()
    base = tmp_path / "tmp"
    base.mkdir()
    monkeypatch.setenv("TMPDIR", str(base))
    monkeypatch.setattr(tempfile, "tempdir", None)  # gettempdir() reads TMPDIR again
    yield base
    util.remove_idle_directories()


def ino(path) -> int:
    return os.lstat(path).st_ino


def names(base) -> list[str]:
    return sorted(os.listdir(base))


def idle(base) -> list[str]:
    return [n for n in names(base) if n.startswith("sioworkers_idle_")]


def assert_fresh(path: str, base) -> None:
    assert os.path.dirname(path) == str(base)
    assert os.path.basename(path).startswith("sioworkers_")
    st = os.lstat(path)
    assert stat.S_ISDIR(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o700
    assert st.st_uid == os.geteuid()
    assert os.listdir(path) == []


def test_a_reused_dir_is_empty_private_and_renamed(tmpdir_):
    with util.TemporaryCwd() as first:
        assert_fresh(first, tmpdir_)
        inode = ino(first)
        with open(util.tempcwd("f"), "w") as f:
            f.write("x")
    assert not os.path.exists(first)  # the name a job saw is gone
    assert len(idle(tmpdir_)) == 1
    with util.TemporaryCwd() as second:
        assert second != first
        assert_fresh(second, tmpdir_)
        assert ino(second) == inode  # the same directory, recycled
        assert idle(tmpdir_) == []
    assert not os.path.exists(second)


def test_everything_a_job_leaves_is_cleaned(tmpdir_, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep").write_text("keep")
    os.chmod(outside / "keep", 0o644)
    with util.TemporaryCwd() as d:
        inode = ino(d)
        open(util.tempcwd("file"), "w").close()
        os.makedirs(util.tempcwd("a/b/c"))
        open(util.tempcwd("a/b/c/deep"), "w").close()
        os.mkdir(util.tempcwd("ro"))
        open(util.tempcwd("ro/inside"), "w").close()
        os.chmod(util.tempcwd("ro"), 0o500)
        os.mkdir(util.tempcwd("unlistable"))
        open(util.tempcwd("unlistable/inside"), "w").close()
        os.chmod(util.tempcwd("unlistable"), 0o300)
        os.mkdir(util.tempcwd("nothing"))
        open(util.tempcwd("nothing/inside"), "w").close()
        os.chmod(util.tempcwd("nothing"), 0)
        ro_file = util.tempcwd("ro_file")
        open(ro_file, "w").close()
        os.chmod(ro_file, 0o400)
        os.symlink(str(outside), util.tempcwd("link_to_dir"))
        os.symlink(str(outside / "keep"), util.tempcwd("link_to_file"))
        os.link(outside / "keep", util.tempcwd("hard_link"))
        os.mkfifo(util.tempcwd("fifo"))
        os.chmod(d, 0o500)  # the job made its own directory read-only
    assert not os.path.exists(d)
    with util.TemporaryCwd() as again:
        assert ino(again) == inode
        assert_fresh(again, tmpdir_)
    # Links were removed, never followed, and their targets left as they were.
    assert sorted(os.listdir(outside)) == ["keep"]
    assert (outside / "keep").read_text() == "keep"
    assert stat.S_IMODE(os.stat(outside / "keep").st_mode) == 0o644
    assert os.stat(outside / "keep").st_nlink == 1


def test_a_dir_opened_to_others_is_private_again(tmpdir_):
    # The supervisor adds o+x to a job directory for a program run under
    # another uid.
    with util.TemporaryCwd() as d:
        os.chmod(d, 0o711)
        inode = ino(d)
    with util.TemporaryCwd() as again:
        assert ino(again) == inode
        assert_fresh(again, tmpdir_)


def test_inner_directory_is_made_per_use_and_emptied(tmpdir_):
    with util.TemporaryCwd("inner") as inner:
        root = os.path.dirname(inner)
        inode = ino(root)
        assert os.listdir(root) == ["inner"]
        open(os.path.join(inner, "f"), "w").close()
    with util.TemporaryCwd() as again:
        assert ino(again) == inode
        assert_fresh(again, tmpdir_)
    with util.TemporaryCwd("inner") as inner:
        assert os.listdir(inner) == []


def test_nested_uses_get_distinct_dirs(tmpdir_):
    t = util.TemporaryCwd()
    with t as a, t as b, util.TemporaryCwd() as c:
        pass
    assert len(idle(tmpdir_)) == 3
    with t as a, t as b, util.TemporaryCwd() as c:
        assert len({a, b, c}) == 3
        assert len({ino(a), ino(b), ino(c)}) == 3
        for d in (a, b, c):
            assert_fresh(d, tmpdir_)
        open(os.path.join(b, "only_in_b"), "w").close()
        assert os.listdir(a) == os.listdir(c) == []
    assert idle(tmpdir_) and all(os.listdir(tmpdir_ / n) == [] for n in idle(tmpdir_))


def test_concurrent_threads_never_share_a_dir(tmpdir_):
    count = 6
    for _ in range(2):  # the second round takes dirs from the pool
        seen: list[tuple[str, int]] = []
        errors: list[BaseException] = []
        barrier = threading.Barrier(count)

        def work(i: int) -> None:
            try:
                with util.TemporaryCwd() as d:
                    barrier.wait(timeout=10)  # all are inside at once
                    assert os.listdir(d) == []
                    open(os.path.join(d, f"from-{i}"), "w").close()
                    seen.append((d, ino(d)))
                    barrier.wait(timeout=10)
                    assert os.listdir(d) == [f"from-{i}"]
            except BaseException as e:  # reported by the main thread
                errors.append(e)

        threads = [threading.Thread(target=work, args=(i,)) for i in range(count)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert len({d for d, _ in seen}) == count
        assert len({i for _, i in seen}) == count
    assert len(idle(tmpdir_)) <= count


def test_a_dir_written_after_the_job_is_not_reused(tmpdir_):
    with util.TemporaryCwd() as d:
        inode = ino(d)
    [name] = idle(tmpdir_)
    # A straggler of the finished job writes into its old directory.
    with open(tmpdir_ / name / "late", "w") as f:
        f.write("late")
    # Held open so that its inode number cannot be given to a new directory.
    fd = os.open(tmpdir_ / name, os.O_RDONLY | os.O_DIRECTORY)
    try:
        with util.TemporaryCwd() as again:
            assert_fresh(again, tmpdir_)
            assert ino(again) != inode
        assert os.fstat(fd).st_nlink == 0  # discarded, with its content
    finally:
        os.close(fd)
    assert not os.path.exists(tmpdir_ / name)


@pytest.mark.parametrize("change", ["mode", "replaced by a file", "removed"])
def test_a_changed_idle_dir_is_not_reused(tmpdir_, change):
    with util.TemporaryCwd() as d:
        inode = ino(d)
    [name] = idle(tmpdir_)
    path = tmpdir_ / name
    if change == "mode":
        os.chmod(path, 0o755)
    elif change == "replaced by a file":
        os.rmdir(path)
        path.write_text("not a dir")
    else:
        os.rmdir(path)
    fd = os.open(path, os.O_RDONLY) if change == "mode" else None  # keeps its inode number
    try:
        with util.TemporaryCwd() as again:
            assert_fresh(again, tmpdir_)
            if fd is not None:
                assert ino(again) != inode
    finally:
        if fd is not None:
            os.close(fd)
    if change == "replaced by a file":
        assert path.read_text() == "not a dir"  # not ours to remove: left alone
    else:
        assert not os.path.exists(path)


def test_a_new_tmpdir_is_honoured(tmpdir_, tmp_path, monkeypatch):
    with util.TemporaryCwd() as d:
        pass
    assert len(idle(tmpdir_)) == 1
    other = tmp_path / "other"
    other.mkdir()
    monkeypatch.setenv("TMPDIR", str(other))
    monkeypatch.setattr(tempfile, "tempdir", None)
    with util.TemporaryCwd() as d:
        assert_fresh(d, other)
    assert idle(tmpdir_) == []  # the directory of the old TMPDIR is removed
    assert len(idle(other)) == 1


def test_a_cleaning_error_propagates_and_nothing_is_pooled(tmpdir_, monkeypatch):
    real_unlink = os.unlink

    def unlink(path, *args, **kwargs):
        if os.path.basename(str(path)) == "stuck":
            raise PermissionError(1, "Operation not permitted", str(path))
        return real_unlink(path, *args, **kwargs)

    with pytest.raises(PermissionError, match="stuck"):
        with util.TemporaryCwd() as d:
            open(util.tempcwd("stuck"), "w").close()
            open(util.tempcwd("other"), "w").close()
            monkeypatch.setattr(os, "unlink", unlink)
    monkeypatch.undo()
    assert idle(tmpdir_) == []
    assert os.listdir(d) == ["stuck"]  # removal went as far as it could, as before
    util.rmtree(d)


def test_a_job_exception_is_kept(tmpdir_):
    with pytest.raises(ZeroDivisionError):
        with util.TemporaryCwd() as d:
            open(util.tempcwd("f"), "w").close()
            1 / 0
    assert not os.path.exists(d)
    assert len(idle(tmpdir_)) == 1


def test_the_pool_is_bounded(tmpdir_):
    with util.TemporaryCwd() as a, util.TemporaryCwd() as b, util.TemporaryCwd() as c, \
            util.TemporaryCwd() as d, util.TemporaryCwd() as e, util.TemporaryCwd() as f:
        pass
    assert len(idle(tmpdir_)) == util._POOL_MAX
    assert names(tmpdir_) == idle(tmpdir_)  # the others were removed


def test_a_forked_child_does_not_use_the_parents_dirs(tmpdir_):
    with util.TemporaryCwd(), util.TemporaryCwd():
        pass
    parent_idle = idle(tmpdir_)
    parent_inodes = {ino(tmpdir_ / n) for n in parent_idle}
    assert len(parent_inodes) == 2
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through the pipe
        code = 1
        try:
            os.close(r)
            report = {}
            with util.TemporaryCwd() as d:
                report["inode"] = ino(d)
            with util.TemporaryCwd() as d:
                report["again"] = ino(d)  # its own pool works
            util.remove_idle_directories()  # removes only its own
            report["parent_idle_left"] = sorted(n for n in parent_idle
                                                if os.path.isdir(tmpdir_ / n))
            os.write(w, json.dumps(report).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        report = json.loads(f.read() or b"{}")
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert report["inode"] not in parent_inodes
    assert report["again"] == report["inode"]
    assert report["parent_idle_left"] == parent_idle
    # The parent still has and reuses its own.
    assert idle(tmpdir_) == parent_idle
    with util.TemporaryCwd() as d:
        assert ino(d) in parent_inodes
        assert_fresh(d, tmpdir_)


def test_a_forked_child_leaving_the_parents_block_does_not_pool_it(tmpdir_):
    r, w = os.pipe()
    with util.TemporaryCwd() as d:
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child leaves the block, then reports
            code = 1
            try:
                os.close(r)
                os.write(w, json.dumps(idle(tmpdir_)).encode())
                code = 0
            finally:
                os._exit(code)
        os.close(w)
        with os.fdopen(r, "rb") as f:
            before = json.loads(f.read() or b"null")
        os.waitpid(pid, 0)
        assert before == []
    assert len(idle(tmpdir_)) == 1


def test_idle_dirs_are_removed_at_exit(tmpdir_):
    script = (
        "import os, tempfile\n"
        "from sio.workers import util\n"
        "with util.TemporaryCwd('inner'), util.TemporaryCwd():\n"
        "    open(util.tempcwd('f'), 'w').close()\n"
        "with util.TemporaryCwd():\n"
        "    pass\n"
        "print(len([n for n in os.listdir(tempfile.gettempdir()) if 'sioworkers' in n]))\n"
    )
    env = dict(os.environ, TMPDIR=str(tmpdir_))
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                         text=True, check=True)
    assert out.stdout.strip() == "2"  # kept while it ran
    assert out.stderr == ""
    assert [n for n in names(tmpdir_) if "sioworkers" in n] == []


def test_celery_pool_process_shutdown_removes_idle_dirs(tmpdir_):
    pytest.importorskip("celery")
    from celery.signals import worker_process_shutdown

    import sio.celery.job  # noqa: F401 - connects the handler

    with util.TemporaryCwd():
        pass
    assert len(idle(tmpdir_)) == 1
    worker_process_shutdown.send(sender="test", pid=os.getpid(), exitcode=0)
    assert names(tmpdir_) == []
