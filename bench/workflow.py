"""The run workflow of a 50-test package against the same work as SIO2 jobs.

A sinol package (a sum problem, 50 tests in 10 groups, no checker) is written
to a temporary directory, and sio3pack (1.0.0.dev5, with the Lua scripts of
``tests/sources/workflows``) gives its "Run solution" workflow for the model
solution. Both ways do the same work:

* **jobs** (the baseline): one ``compile`` job (``system-g++``) and 50
  ``exec`` jobs with ``check_output`` (the supervisor, the default checker),
  each through :func:`sio.workers.runner.run`, files as local paths;
* **workflow**: one ``workflow`` job running that workflow: compile in the
  workflow's namespace, 50 runs, 50 ``checkers:oicompare`` runs, 50 + 10 + 1
  Lua grading scripts.

The two are interleaved (5 rounds); the best round of each is printed, and
the ratio workflow / jobs (target <= 1.3).

Needs root and cgroup v1 (the workflow's resource groups), g++, sio3pack.

Run: ``.venv/bin/python bench/workflow.py [TESTS]``
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sio.workers import runner  # noqa: E402

ROUNDS = 5


class _Patch:
    def setattr(self, obj: object, name: str, value: object) -> None:
        setattr(obj, name, value)


def main() -> int:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 50
    try:
        import sio3pack  # noqa: F401
    except ImportError:
        print("sio3pack is needed (pip install sio3pack==1.0.0.dev5)")
        return 0
    if os.geteuid() != 0 or shutil.which("g++") is None:
        print("root and g++ are needed")
        return 0
    from tests import workflow_support as ws

    ws.use_our_lua(_Patch())
    work = tempfile.mkdtemp(prefix="sio_bench_workflow_")
    try:
        tests = {f"{1 + i // 5}{'abcde'[i % 5]}": (f"{i * 7919} {i * 104729}\n",
                                                  f"{i * 7919 + i * 104729}\n")
                 for i in range(count)}
        pkg = ws.write_package(Path(work), "sum", solutions={"": ws.SUM_MODEL}, tests=tests)
        workflow = ws.run_workflow_json(pkg, "sum.cpp")
        source = str(pkg / "prog" / "sum.cpp")
        files = [(str(pkg / "in" / f"sum{t}.in"), str(pkg / "out" / f"sum{t}.out"))
                 for t in tests]

        def jobs() -> None:
            exe = os.path.join(work, "sum.e")
            env = runner.run({"job_type": "compile", "source_file": source, "out_file": exe,
                              "compiler": "system-g++", "use_filetracker": False,
                              "extra_compilation_args": ["-std=c++20", "-O3"]})
            assert env["result_code"] == "OK", env
            for test_in, test_out in files:
                env = runner.run({"job_type": "exec", "exe_file": exe, "in_file": test_in,
                                  "hint_file": test_out, "check_output": True,
                                  "exec_time_limit": 1000, "exec_mem_limit": 65536,
                                  "exec_info": env.get("exec_info", {"mode": "executable"}),
                                  "use_filetracker": False})
                assert env["result_code"] == "OK", env

        def flow() -> None:
            env = runner.run({"job_type": "workflow", "workflow": workflow,
                              "use_filetracker": False})
            assert env["workflow_registers"][1]["status"] == "OK", env
            assert env["workflow_registers"][1]["score"] == 100, env

        ways = {"compile + exec jobs": jobs, "workflow job": flow}
        best = {name: float("inf") for name in ways}
        for way in ways.values():
            way()  # warm up: helpers built, caches, imports
        for _ in range(ROUNDS):
            for name, way in ways.items():
                start = time.perf_counter()
                way()
                best[name] = min(best[name], time.perf_counter() - start)
        base = best["compile + exec jobs"]
        print(f"{count} tests, best of {ROUNDS} rounds")
        for name, seconds in best.items():
            print(f"  {name:22s} {seconds * 1000:8.1f} ms   {seconds / base:5.2f}x jobs")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
