"""Helpers for the workflow tests: small sinol packages, and workflows asked
from ``sio3pack`` (importable as ``tests.workflow_support``)."""

from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path
from typing import Any

from tests.support import SOURCES

LUA = SOURCES / "workflows"

SUM_MODEL = r"""
#include <cstdio>
int main() { long long a, b; if (scanf("%lld %lld", &a, &b) != 2) return 1;
             printf("%lld\n", a + b); }
"""
SOLUTIONS = {
    # model
    "": SUM_MODEL,
    # wrong: off by one on big inputs only
    "b1": r"""
#include <cstdio>
int main() { long long a, b; scanf("%lld %lld", &a, &b);
             printf("%lld\n", a + b + (a > 50 ? 1 : 0)); }
""",
    # slow: never ends
    "s1": r"""
#include <cstdio>
int main() { long long a, b; scanf("%lld %lld", &a, &b); volatile long long x = 0;
             for (;;) x++; }
""",
    # crashing
    "b2": r"""
#include <cstdio>
#include <cstdlib>
int main() { long long a, b; scanf("%lld %lld", &a, &b); abort(); }
""",
}
#: test id -> (input, expected output)
SUM_TESTS = {"0": ("1 2\n", "3\n"), "1a": ("2 3\n", "5\n"), "1b": ("10 20\n", "30\n"),
             "2a": ("60 40\n", "100\n")}

CHECKER = r"""
// sinol checker: chk IN USER_OUT EXPECTED; prints OK/WRONG, comment, points
#include <cstdio>
int main(int argc, char **argv) {
    FILE *u = fopen(argv[2], "r"), *e = fopen(argv[3], "r");
    long long x, y;
    if (!u || fscanf(u, "%lld", &x) != 1) { printf("WRONG\nno number\n0\n"); return 0; }
    fscanf(e, "%lld", &y);
    if (x == y) printf("OK\nthe right sum\n100\n");
    else printf("WRONG\nexpected %lld, got %lld\n0\n", y, x);
    return 0;
}
"""


def write_package(root: Path, name: str = "sum", *, checker: bool = False,
                  solutions: dict[str, str] | None = None, config: str | None = None,
                  tests: dict[str, tuple[str, str]] | None = None,
                  extra_prog: dict[str, str] | None = None) -> Path:
    """A sinol package ``root/name`` (the directory name is the task id)."""
    pkg = root / name
    for d in ("in", "out", "prog", "doc"):
        (pkg / d).mkdir(parents=True, exist_ok=True)
    for tid, (inp, out) in (SUM_TESTS if tests is None else tests).items():
        (pkg / "in" / f"{name}{tid}.in").write_text(inp)
        (pkg / "out" / f"{name}{tid}.out").write_text(out)
    for suffix, source in (SOLUTIONS if solutions is None else solutions).items():
        (pkg / "prog" / f"{name}{suffix}.cpp").write_text(source)
    if checker:
        (pkg / "prog" / f"{name}chk.cpp").write_text(CHECKER)
    for fname, source in (extra_prog or {}).items():
        (pkg / "prog" / fname).write_text(source)
    (pkg / "config.yml").write_text(textwrap.dedent(config or f"""\
        title: Sum
        sinol_task_id: {name}
        time_limit: 1000
        memory_limit: 65536
        """))
    return pkg


def _get_script(name: str, templates: dict[str, str] | None = None) -> str:
    if name in ("verify_outgen", "verify_inwer"):
        name = "verify"
    script = (LUA / f"{name}.lua").read_text()
    for key, value in (templates or {}).items():
        script = script.replace(key, value)
    return script


def use_our_lua(monkeypatch: Any) -> None:
    """sio3pack 1.0.0.dev5 ships no Lua scripts: give it ours."""
    import sio3pack.lua

    monkeypatch.setattr(sio3pack.lua, "get_script", _get_script)


def load(pkg: Path) -> Any:
    import sio3pack
    from sio3pack.packages.package.configuration import SIO3PackConfig

    # A fresh configuration per package object: sio3pack accumulates
    # compiler flags in the shared one.
    return sio3pack.from_file(str(pkg.resolve()), SIO3PackConfig.detect())


def dump(wf: Any) -> dict[str, Any]:
    return json.loads(json.dumps(wf.to_json(to_int_regs=True)))


def run_workflow_json(pkg: Path, solution: str, tests: list[str] | None = None) -> dict[str, Any]:
    """The "Run solution" workflow of ``prog/<solution>`` (on ``tests``, by id)."""
    package = load(pkg)
    program = next(s for s in package.model_solutions
                   if os.path.basename(_path_of(s)) == solution)
    chosen = None if tests is None else [t for t in package.tests if t.test_id in tests]
    op = package.get_run_operation(_file_of(program), chosen)
    return dump(next(iter(op.get_workflow())))


def _file_of(solution: Any) -> Any:
    return solution["file"] if isinstance(solution, dict) else solution


def _path_of(solution: Any) -> str:
    return _file_of(solution).path
