from __future__ import annotations

import pytest

from sio.workers import util
from sio.workers.errors import EntryPointNotFound

GROUP = "sio.test.group"


def test_found_and_cached(plugin, monkeypatch):
    plugin({GROUP: {"hello": "hello_mod:f"}}, {"hello_mod": "def f(): return 'hi'\n"})
    f = util.first_entry_point(GROUP, "hello")
    assert f() == "hi"

    import importlib.metadata

    def boom(**kw):
        raise AssertionError("rescanned")

    monkeypatch.setattr(importlib.metadata, "entry_points", boom)
    assert util.first_entry_point(GROUP, "hello") is f


def test_miss_names_group_available_and_closest(plugin):
    plugin({GROUP: {"compile": "m1:f", "ping": "m1:f"}}, {"m1": "def f(): pass\n"})
    with pytest.raises(EntryPointNotFound) as e:
        util.first_entry_point(GROUP, "compil")
    msg = str(e.value)
    assert "'compil'" in msg and GROUP in msg
    assert "did you mean 'compile'?" in msg
    assert "available: compile, ping" in msg
    assert isinstance(e.value, RuntimeError)  # the original raised RuntimeError


def test_miss_in_empty_group():
    with pytest.raises(EntryPointNotFound, match=r"available: none"):
        util.first_entry_point("sio.test.empty", "x")


def test_import_failure_is_reported_in_the_error(plugin):
    plugin({GROUP: {"bad": "bad_mod:f"}}, {"bad_mod": "import no_such_module_xyz\n"})
    with pytest.raises(EntryPointNotFound) as e:
        util.first_entry_point(GROUP, "bad")
    assert "bad_mod:f failed to import" in str(e.value)
    assert "no_such_module_xyz" in str(e.value)


def test_first_loadable_of_duplicates_wins(plugin):
    plugin({GROUP: {"dup": "broken_mod:f"}}, {"broken_mod": "raise ImportError('nope')\n"},
           name="first")
    plugin({GROUP: {"dup": "good_mod:f"}}, {"good_mod": "def f(): return 'good'\n"},
           name="second")
    assert util.first_entry_point(GROUP, "dup")() == "good"


def test_without_name_returns_first_loadable(plugin):
    plugin({GROUP: {"a": "any_mod:f"}}, {"any_mod": "def f(): return 1\n"})
    assert util.first_entry_point(GROUP)() == 1


def test_names(plugin):
    plugin({GROUP: {"b": "m2:f", "a": "m2:f"}}, {"m2": "def f(): pass\n"})
    assert util.entry_point_names(GROUP) == ["a", "b"]


def test_builtin_jobs_are_registered():
    assert "ping" in util.entry_point_names("sio.jobs")


class TestIndex:
    """The on-disk index of entry points that spares sio-batch the import of
    importlib.metadata: it must never give a stale answer."""

    PROBE = ("import sys; from sio.workers.util import first_entry_point as f; "
             "print(f('sio.test.group', sys.argv[1])(), 'importlib.metadata' in sys.modules)")

    def probe(self, tmp_path, site, name):
        import os
        import subprocess
        import sys

        env = dict(os.environ, XDG_CACHE_HOME=str(tmp_path / "cache"),
                   PYTHONPATH=str(site))
        p = subprocess.run([sys.executable, "-c", self.PROBE, name], env=env,
                           capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, p.stderr
        value, scanned = p.stdout.split()
        return value, scanned == "True"

    def site(self, tmp_path, entries):
        from tests.support import make_plugin_distribution

        mods = {"idx_mod": "def a(): return 'A'\ndef b(): return 'B'\n"}
        return make_plugin_distribution(tmp_path / "site", "idx", {GROUP: entries}, mods)

    def test_second_start_reads_the_index(self, tmp_path):
        site = self.site(tmp_path, {"x": "idx_mod:a"})
        assert self.probe(tmp_path, site, "x") == ("A", True)
        assert self.probe(tmp_path, site, "x") == ("A", False)

    def test_changed_entry_points_are_seen(self, tmp_path):
        site = self.site(tmp_path, {"x": "idx_mod:a"})
        self.probe(tmp_path, site, "x")
        ep_file = site / "idx-1.0.dist-info" / "entry_points.txt"
        ep_file.write_text(f"[{GROUP}]\nx = idx_mod:b\n")
        assert self.probe(tmp_path, site, "x") == ("B", True)

    def test_new_distribution_is_seen(self, tmp_path):
        from tests.support import make_plugin_distribution

        site = self.site(tmp_path, {"x": "idx_mod:a"})
        self.probe(tmp_path, site, "x")
        make_plugin_distribution(site, "other", {GROUP: {"y": "idx_mod:b"}}, {})
        assert self.probe(tmp_path, site, "y") == ("B", True)

    def test_corrupt_index_falls_back(self, tmp_path):
        site = self.site(tmp_path, {"x": "idx_mod:a"})
        self.probe(tmp_path, site, "x")
        for f in (tmp_path / "cache" / "sioworkers").iterdir():
            f.write_text("{not json")
        assert self.probe(tmp_path, site, "x") == ("A", True)

    def test_name_missing_from_a_valid_index_is_looked_up_again(self, plugin, monkeypatch, tmp_path):
        monkeypatch.setattr(util, "_fingerprint", lambda: ["constant"])
        monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
        plugin({GROUP: {"late": "late_mod:f"}}, {"late_mod": "def f(): return 'late'\n"})
        util._write_index(["constant"], {})
        assert util.first_entry_point(GROUP, "late")() == "late"
