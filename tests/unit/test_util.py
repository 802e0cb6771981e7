from __future__ import annotations

import json
import os
import stat
import threading

import pytest

from sio.workers import util
from sio.workers.errors import NoTemporaryCwd


@pytest.mark.parametrize("s, ms", [(1.95, 1950), (0, 0), (4.35, 4350), (1.9999, 1999), (2, 2000)])
def test_s2ms_truncates_without_float_error(s, ms):
    assert util.s2ms(s) == ms
    assert isinstance(util.s2ms(s), int)


def test_ms2s_and_ceil_ms2s():
    assert util.ms2s(1500) == 1.5
    assert [util.ceil_ms2s(x) for x in (0, 1, 999, 1000, 1001, 2500.5)] == [0, 1, 1, 1, 2, 3]


def test_path_join_abs_treats_subpath_as_relative():
    assert util.path_join_abs("/usr", "/bin/sh") == "/usr/bin/sh"
    assert util.path_join_abs("/usr/", "bin/") == "/usr/bin"
    assert util.path_join_abs("/a", "b/c") == "/a/b/c"


def test_writable_restores_read_only_mode(tmp_path):
    f = tmp_path / "f"
    f.write_text("x")
    f.chmod(0o444)
    with util.Writable(str(f)):
        assert stat.S_IMODE(f.stat().st_mode) == 0o644
        f.write_text("y")
    assert stat.S_IMODE(f.stat().st_mode) == 0o444
    assert f.read_text() == "y"


def test_writable_leaves_writable_file_alone(tmp_path, monkeypatch):
    f = tmp_path / "f"
    f.write_text("x")
    f.chmod(0o640)
    calls = []
    monkeypatch.setattr(os, "chmod", lambda *a: calls.append(a))
    with util.Writable(str(f)):
        pass
    assert calls == []


@pytest.mark.parametrize("mode, bits, expected", [
    (0o600, stat.S_IRUSR | stat.S_IXUSR, 0o700),
    (0o755, stat.S_IRUSR | stat.S_IXUSR, 0o755),  # o+rx of another job stays
    (0o044, stat.S_IRUSR | stat.S_IXUSR, 0o544),
    (0o000, stat.S_IRWXU, 0o700),
    (0o4705, stat.S_IRUSR, 0o4705),
    (0o640, stat.S_IROTH, 0o644),
])
def test_ensure_mode_only_adds_bits(tmp_path, mode, bits, expected):
    f = tmp_path / "f"
    f.write_text("x")
    os.chmod(f, mode)
    util.ensure_mode(str(f), bits)
    assert stat.S_IMODE(os.stat(f).st_mode) == expected


def test_ensure_mode_never_removes_bits_and_skips_chmod_when_set(tmp_path, monkeypatch):
    f = tmp_path / "f"
    f.write_text("x")
    for mode in range(0o1000):
        os.chmod(f, mode)
        util.ensure_mode(str(f), stat.S_IRUSR | stat.S_IXUSR)
        got = stat.S_IMODE(os.stat(f).st_mode)
        assert got & mode == mode and got == mode | 0o500
    calls = []
    monkeypatch.setattr(os, "chmod", lambda *a, **k: calls.append(a))
    util.ensure_mode(str(f), stat.S_IRUSR | stat.S_IXUSR)
    assert calls == []  # already there: the mode is not even written


def test_ensure_mode_makes_its_change_again_when_overwritten(tmp_path, monkeypatch):
    # Another job's chmod, computed from the mode before ours, lands just
    # after ours and takes our bit away: it is added again.
    f = tmp_path / "f"
    f.write_text("x")
    os.chmod(f, 0o600)
    real_chmod = os.chmod
    calls = []

    def racing_chmod(path, mode, *args, **kwargs):
        calls.append(mode)
        real_chmod(path, mode, *args, **kwargs)
        if len(calls) == 1:
            real_chmod(path, 0o600 | stat.S_IROTH | stat.S_IXOTH)

    monkeypatch.setattr(os, "chmod", racing_chmod)
    util.ensure_mode(str(f), stat.S_IRUSR | stat.S_IXUSR)
    assert stat.S_IMODE(os.stat(f).st_mode) == 0o705
    assert len(calls) == 2


def test_rmtree_removes_read_only_and_unlistable_dirs(tmp_path):
    top = tmp_path / "t"
    (top / "a" / "b").mkdir(parents=True)
    (top / "a" / "b" / "f").write_text("x")
    (top / "c").mkdir()
    (top / "c" / "g").write_text("y")
    (top / "a" / "b").chmod(0o500)
    (top / "a").chmod(0o500)
    (top / "c").chmod(0)
    util.rmtree(str(top))
    assert not top.exists()


def test_rmtree_of_missing_path_is_fine(tmp_path):
    util.rmtree(str(tmp_path / "nope"))


def test_replace_invalid_utf():
    assert util.replace_invalid_UTF(b"ok \xff") == "ok \ufffd"
    assert util.replace_invalid_UTF("a\udcffb") == "a?b"
    assert util.replace_invalid_UTF("zażółć") == "zażółć"


def test_decode_fields_decodes_bytes_only():
    @util.decode_fields(["a", "b", "c"])
    def f():
        return {"a": b"x\xff", "b": "s", "d": b"kept"}

    assert f() == {"a": "x\ufffd", "b": "s", "d": b"kept"}


def test_null_ctx_manager_is_reentrant():
    cm = util.null_ctx_manager()
    with cm:
        with cm:
            pass


def test_json_dumps_handles_bytes_tuples_and_unknown_objects():
    out = json.loads(util.json_dumps({"b": b"\xc5\xbc\xff", "t": (1, 2), "s": {2, 1}, "o": object}))
    assert out["b"] == "ż\ufffd"
    assert out["t"] == [1, 2]
    assert out["s"] == [1, 2]
    assert "object" in out["o"]


def test_perf_timer():
    t = util.PerfTimer()
    assert 0 <= t.elapsed < 5


def test_mkdir_and_is_exe(tmp_path):
    d = tmp_path / "x" / "y"
    util.mkdir(str(d))
    util.mkdir(str(d))
    assert d.is_dir()
    f = d / "p"
    f.write_text("#!/bin/sh\n")
    assert not util.is_exe(str(f))
    f.chmod(0o700)
    assert util.is_exe(str(f))
    assert not util.is_exe(str(d))


class TestTemporaryCwd:
    def test_tempcwd_outside_is_a_clear_error(self):
        with pytest.raises(NoTemporaryCwd, match="TemporaryCwd"):
            util.tempcwd()

    def test_dir_exists_inside_and_is_removed_after(self):
        cwd = os.getcwd()
        with util.TemporaryCwd() as d:
            assert util.tempcwd() == d
            assert os.path.isdir(d)
            assert os.path.basename(d).startswith("sioworkers_")
            assert util.tempcwd("x/y") == os.path.join(d, "x/y")
            assert util.tempcwd("/abs") == "/abs"
            open(util.tempcwd("f"), "w").close()
            os.mkdir(util.tempcwd("ro"))
            os.chmod(util.tempcwd("ro"), 0o500)
            assert os.getcwd() == cwd  # never changes the process cwd
        assert not os.path.exists(d)
        with pytest.raises(NoTemporaryCwd):
            util.tempcwd()

    def test_nesting_restores_the_outer_dir(self):
        with util.TemporaryCwd() as outer:
            with util.TemporaryCwd("inner") as inner:
                assert os.path.basename(inner) == "inner"
                assert util.tempcwd() == inner
            assert not os.path.exists(inner)
            assert util.tempcwd() == outer

    def test_same_object_can_nest_itself(self):
        t = util.TemporaryCwd()
        with t as a:
            with t as b:
                assert a != b
            assert util.tempcwd() == a

    def test_removed_after_an_exception(self):
        with pytest.raises(ZeroDivisionError):
            with util.TemporaryCwd() as d:
                1 / 0
        assert not os.path.exists(d)

    def test_each_thread_has_its_own(self):
        seen: dict[int, str | None] = {}
        barrier = threading.Barrier(4)

        def work(i):
            try:
                util.tempcwd()
                seen[i] = "leaked"
            except NoTemporaryCwd:
                pass
            with util.TemporaryCwd() as d:
                barrier.wait()
                assert util.tempcwd() == d
                seen[i] = d

        with util.TemporaryCwd() as main_dir:
            threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            assert util.tempcwd() == main_dir
        assert len(set(seen.values())) == 4
        assert main_dir not in seen.values()
