"""Judging one submission on 50 small tests, end to end.

Each way judges the same C submission (``tests/sources/judge_sum.c``) on
the same 50 tests:

* **bare**: ``subprocess.run`` of the binary on the test input, output to a
  file, then ``cmp`` of that file with the expected output (two process
  spawns per test, nothing else): the baseline;
* **unsafe-exec**: :func:`sio.workers.runner.run` of an ``unsafe-exec`` job
  with ``check_output`` per test (job directory, files fetched as local
  paths, run under limits, native ``diff -b`` comparison, result environ);
* **unsafe-exec + Filetracker**: the same with every file on a real local
  Filetracker server (skipped when none can be started);
* **exec**: the same as ``unsafe-exec`` with the ``exec`` job (the
  supervisor, native oicompare comparison), when this installation has the
  supervised executor.

The passes are interleaved (5 rounds) and the best round of each is
printed, in ms per test and as a ratio to the bare baseline measured in the
same run. Target: <= 2x.

Run: ``.venv/bin/python bench/judge_problem.py [TESTS]``
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from sio.workers import executors, runner

SOURCE = Path(__file__).resolve().parent.parent / "tests" / "sources" / "judge_sum.c"
ROUNDS = 5


def bare(exe: str, tests: list[tuple[str, str]], work: str) -> None:
    out = os.path.join(work, "bare.out")
    for test_in, test_out in tests:
        with open(test_in, "rb") as stdin, open(out, "wb") as stdout:
            subprocess.run([exe], stdin=stdin, stdout=stdout, check=True)
        subprocess.run(["cmp", "-s", out, test_out], check=True)


def judged(job_type: str, exe: str, tests: list[tuple[str, str]], **keys) -> None:
    for test_in, test_out in tests:
        env = {"job_type": job_type, "exe_file": exe, "in_file": test_in,
               "hint_file": test_out, "check_output": True, "exec_time_limit": 1000,
               "exec_mem_limit": 65536, "exec_info": {"mode": "executable"}, **keys}
        result = runner.run(env)
        if result["result_code"] != "OK":
            raise SystemExit(f"{job_type} judged {test_in}: {result['result_code']} "
                             f"{result['result_string']}")


def main() -> int:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 50
    if shutil.which("gcc") is None or shutil.which("cmp") is None:
        print("gcc and cmp are needed")
        return 0
    work = tempfile.mkdtemp(prefix="sio_bench_judge_")
    server = None
    try:
        exe = os.path.join(work, "sum")
        subprocess.run(["gcc", "-O2", "-o", exe, str(SOURCE)], check=True)
        tests = []
        for i in range(count):
            test_in, test_out = os.path.join(work, f"{i}.in"), os.path.join(work, f"{i}.out")
            Path(test_in).write_text(f"{i * 7919} {i * 104729}\n")
            Path(test_out).write_text(f"{i * 7919 + i * 104729}\n")
            tests.append((test_in, test_out))

        ways: dict[str, Callable[[], None]] = {
            "bare run + cmp": lambda: bare(exe, tests, work),
            "unsafe-exec": lambda: judged("unsafe-exec", exe, tests, use_filetracker=False),
        }
        server, ft_tests, ft_exe = _filetracker(work, exe, tests)
        if server is not None:
            ways["unsafe-exec + Filetracker"] = lambda: judged(
                "unsafe-exec", ft_exe, ft_tests, filetracker_url=server.url)
        if hasattr(executors, "SupervisedExecutor"):
            ways["exec"] = lambda: judged("exec", exe, tests, use_filetracker=False)
        else:
            print("exec: skipped (no supervised executor in this installation)")

        best = {name: float("inf") for name in ways}
        for name, way in ways.items():
            way()  # warm up: caches, the limitexec wrapper, imports
        for _ in range(ROUNDS):
            for name, way in ways.items():
                start = time.perf_counter()
                way()
                best[name] = min(best[name], time.perf_counter() - start)
        base = best["bare run + cmp"]
        print(f"{count} tests, best of {ROUNDS} rounds")
        for name, seconds in best.items():
            print(f"  {name:28s} {seconds * 1000 / count:7.2f} ms/test   "
                  f"{seconds / base:5.2f}x bare")
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(work, ignore_errors=True)
    return 0


def _filetracker(work: str, exe: str, tests: list[tuple[str, str]]):
    """A local Filetracker server holding the binary and the tests, or
    (None, ...) when none can be started."""
    from sio.workers import ft

    try:
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        server = ft.start_server(os.path.join(work, "ft-store"), "127.0.0.1", port)
    except Exception as e:  # no filetracker-server installed, ...
        print(f"unsafe-exec + Filetracker: skipped ({e})")
        return None, [], ""
    from filetracker.client import Client

    client = Client(remote_url=server.url, cache_dir=os.path.join(work, "ft-cache"))
    ft_exe = client.put_file("/bench/sum", exe)
    ft_tests = [(client.put_file(f"/bench/{i}.in", a), client.put_file(f"/bench/{i}.out", b))
                for i, (a, b) in enumerate(tests)]
    return server, ft_tests, ft_exe


if __name__ == "__main__":
    sys.exit(main())
