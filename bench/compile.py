"""Cost of the compile job over running the compiler directly.

A small C++ program is compiled RUNS times each way, the ways interleaved so
that noise hits them alike:

* baseline: ``g++`` run directly (``subprocess.run``) with exactly the flags
  of ``system-g++`` (``-std=c++20 -O2 -s a.cpp -o a.out -lm``), messages
  captured, in a fresh temporary directory;
* the compile job (:func:`sio.compilers.job.run`, ``compiler =
  system-g++``) with local files: the source copied in, the compiler under
  the default limits, the binary copied out.

Prints the median wall time of each and the ratio (target: <= 1.1x), plus
the same for ``runner.run`` (the whole job as ``sio-batch`` runs it).

Run: ``.venv/bin/python bench/compile.py [RUNS]``
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable

SOURCE = """\
#include <algorithm>
#include <cstdio>
#include <vector>
int main() {
    int n;
    if (std::scanf("%d", &n) != 1) return 1;
    std::vector<long long> v(n);
    for (auto &x : v) std::scanf("%lld", &x);
    std::sort(v.begin(), v.end());
    long long s = 0;
    for (auto x : v) s += x;
    std::printf("%lld\\n", s);
}
"""


def main() -> int:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 15
    if shutil.which("g++") is None:
        print("g++ is needed for this benchmark")
        return 0
    from sio.compilers.job import run
    from sio.workers import runner

    work = tempfile.mkdtemp(prefix="sio_bench_compile_")
    try:
        source = os.path.join(work, "prog.cpp")
        with open(source, "w") as f:
            f.write(SOURCE)

        def direct() -> None:
            d = tempfile.mkdtemp(prefix="sio_bench_direct_")
            try:
                shutil.copy(source, os.path.join(d, "a.cpp"))
                result = subprocess.run(
                    ["g++", "-std=c++20", "-O2", "-s", "a.cpp", "-o", "a.out", "-lm"],
                    cwd=d, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT)
                assert result.returncode == 0, result.stdout
                shutil.copy(os.path.join(d, "a.out"), os.path.join(work, "direct.out"))
            finally:
                shutil.rmtree(d)

        def job() -> None:
            env = run({"source_file": source, "out_file": os.path.join(work, "job.out"),
                       "compiler": "system-g++", "use_filetracker": False})
            assert env["result_code"] == "OK", env["compiler_output"]

        def batch() -> None:
            env = runner.run({"job_type": "compile", "source_file": source,
                              "out_file": os.path.join(work, "batch.out"),
                              "compiler": "system-g++", "use_filetracker": False})
            assert env["result_code"] == "OK", env["compiler_output"]

        ways: dict[str, Callable[[], None]] = {
            "g++ directly (baseline)": direct,
            "compile job (job.run)": job,
            "compile job (runner.run)": batch,
        }
        for fn in ways.values():  # warm-up: page cache, the engine's wrapper
            fn()
        samples: dict[str, list[float]] = {name: [] for name in ways}
        for _ in range(runs):
            for name, fn in ways.items():
                t0 = time.perf_counter()
                fn()
                samples[name].append(time.perf_counter() - t0)
    finally:
        shutil.rmtree(work)
    base = statistics.median(samples["g++ directly (baseline)"])
    print(f"{'way':28s} {'median':>10s} {'ratio':>7s}   ({runs} runs each)")
    for name, values in samples.items():
        median = statistics.median(values)
        print(f"{name:28s} {median * 1000:8.1f}ms {median / base:6.3f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
