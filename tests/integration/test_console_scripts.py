"""Every console script of the contract, as installed: ``--help`` works,
exits 0, prints its usage and does nothing else."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import free_port, port_open

pytestmark = pytest.mark.integration

SCRIPTS = ["sio-batch", "sio-celery-worker", "sio-run-filetracker", "sio-compile",
           "sio-get-sandbox"]


@pytest.mark.parametrize("script", SCRIPTS)
def test_help_exits_0_and_does_nothing_else(script, tmp_path):
    path = shutil.which(script) or str(Path(sys.executable).parent / script)
    port = free_port()
    env = {k: v for k, v in os.environ.items()
           if k not in ("environ", "CELERY_BROKER_URL", "CELERY_CONFIG_MODULE")}
    # Set, so that sio-run-filetracker would start a server if --help were ignored.
    env["FILETRACKER_PUBLIC_URL"] = f"http://127.0.0.1:{port}"
    env["FILETRACKER_LISTEN_PORT"] = str(port)
    p = subprocess.run([path, "--help"], cwd=tmp_path, env=env, capture_output=True,
                       text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert p.returncode == 0, p.stderr
    assert p.stdout.lower().startswith(f"usage: {script}"), p.stdout
    assert "Traceback" not in p.stderr
    assert list(tmp_path.iterdir()) == []
    assert not port_open("127.0.0.1", port)


def test_dev_alone_prints_its_usage_only(tmp_path):
    dev = Path(__file__).resolve().parents[2] / "dev"
    if not dev.exists():
        pytest.skip("not a source checkout (no ./dev)")
    p = subprocess.run([str(dev)], capture_output=True, text=True, timeout=60,
                       stdin=subprocess.DEVNULL)
    assert p.returncode == 0 and p.stderr == ""
    lines = p.stdout.splitlines()
    assert lines[0].startswith("Developer entry point of sioworkers")
    assert "  ./dev test    set up, then run the whole test suite, mypy and the docs build" in lines
    assert not any(line.startswith(("#", "set ")) for line in lines), p.stdout
    p = subprocess.run([str(dev), "frobnicate"], capture_output=True, text=True, timeout=60,
                       stdin=subprocess.DEVNULL)
    assert p.returncode == 2 and p.stdout == ""
    assert p.stderr.startswith("[dev] unknown command: frobnicate\nDeveloper entry point")
