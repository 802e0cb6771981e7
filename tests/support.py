"""Helpers shared by the tests (importable as ``tests.support``)."""

from __future__ import annotations

import os
import socket
import sys
import textwrap
from pathlib import Path

import pytest

#: Set by .ci/run: a missing required service or tool fails instead of skipping.
REQUIRE = os.environ.get("SIO_TEST_REQUIRE", "") not in ("", "0", "false", "no")

SOURCES = Path(__file__).parent / "sources"


def missing(what: str, *, required: bool = True) -> None:
    """Skip the test because ``what`` is missing; in CI (SIO_TEST_REQUIRE=1)
    fail instead when it is something CI must provide (``required``).

    Kernel features that some machines lack (``required=False``) always skip.
    """
    if required and REQUIRE:
        pytest.fail(f"required for CI but missing: {what}", pytrace=False)
    pytest.skip(what)


def port_open(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_plugin_distribution(root: Path, name: str, entry_points: dict[str, dict[str, str]],
                             modules: dict[str, str]) -> Path:
    """Write an installed-looking distribution into ``root``: its modules and
    a ``<name>-1.0.dist-info`` with METADATA and entry_points.txt, so that
    :mod:`importlib.metadata` finds it once ``root`` is on ``sys.path``."""
    root.mkdir(parents=True, exist_ok=True)
    for module, source in modules.items():
        path = root / (module.replace(".", "/") + ".py")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source))
    info = root / f"{name}-1.0.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    lines = []
    for group, entries in entry_points.items():
        lines.append(f"[{group}]")
        lines += [f"{k} = {v}" for k, v in entries.items()]
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n")
    return root


PYTHON = sys.executable
