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
