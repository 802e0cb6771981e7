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
