"""Building the engine's C helpers (sio.workers._engine.build): a preferred
compiler is tried first, and anything that does not work falls back to CC."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from sio.workers._engine import build

pytestmark = pytest.mark.integration

SOURCE = """
int main(void) {
#ifdef PREFERRED
    return 7;
#else
    return 3;
#endif
}
"""


@pytest.mark.parametrize("preferred,status", [
    ([("gcc", ["-O2", "-DPREFERRED"])], 7),
    ([("no-such-compiler-here", ["-O2", "-DPREFERRED"])], 3),  # not installed
    ([("gcc", ["-O2", "-DPREFERRED", "--no-such-flag"])], 3),  # does not build
])
def test_a_preferred_compiler_is_tried_first(tmp_path, monkeypatch, preferred, status):
    if shutil.which("gcc") is None:
        pytest.skip("no gcc")
    monkeypatch.setenv("SIO_ENGINE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("CC", "gcc")
    source = tmp_path / "helper.c"
    source.write_text(SOURCE)
    path = build.find_or_build("helper", str(source), (["-O2"],), "nothing", preferred=preferred)
    assert path is not None
    assert subprocess.run([path]).returncode == status
