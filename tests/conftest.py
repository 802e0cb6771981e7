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


# --- supervised engine (issue 5): test programs compiled once per session ---

@pytest.fixture(scope="session")
def sup_programs(tmp_path_factory):
    """The C programs ``tests/sources/{hostile,sup}_*.c``, compiled once per
    session with gcc (static, like SIO2's compilers; ``<name>.dyn`` is a
    dynamically linked build). Returns a dict ``name -> path``."""
    import shutil
    import subprocess
    from concurrent.futures import ThreadPoolExecutor

    from tests.support import SOURCES, missing

    gcc = shutil.which("gcc")
    if gcc is None:
        missing("gcc (apt install gcc)")
    out = tmp_path_factory.mktemp("sup-programs")
    jobs = []
    for src in sorted(SOURCES.glob("hostile_*.c")) + sorted(SOURCES.glob("sup_*.c")):
        jobs.append((src.stem, [gcc, "-O2", "-static", "-pthread", "-o", str(out / src.stem),
                                str(src)]))
    for name in ("sup_behave", "hostile_open", "hostile_threads"):
        jobs.append((name + ".dyn", [gcc, "-O2", "-pthread", "-o", str(out / (name + ".dyn")),
                                     str(SOURCES / (name + ".c"))]))

    def build(job):
        name, cmd = job
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode:
            raise RuntimeError(f"cannot compile {name}: {done.stderr}")
        return name

    with ThreadPoolExecutor(max_workers=4) as pool:
        names = list(pool.map(build, jobs))
    return {name: str(out / name) for name in names}
