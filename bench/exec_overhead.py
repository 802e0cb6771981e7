"""Per-run cost of the unprotected executors.

A trivial static C program (``tests/sources/trivial.c``) is run 300 times
each way, the ways interleaved so that noise hits them alike; the median per
run is printed with its ratio to a bare ``subprocess.run`` of the same binary
(streams on /dev/null) measured in the same run. Target: <= 2x for both
executors.

For context the run also times ``run_process`` alone and the way the
original sioworkers ran programs (``sh -c 'ulimit ...; prog'`` in a new
process group, resp. ``bash -c 'time prog'``); the reference measured about
2.8 ms and 4.1 ms for those where a bare spawn costs 0.55 ms.

Run: ``.venv/bin/python bench/exec_overhead.py [RUNS]``
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
from pathlib import Path

from sio.workers._engine.process import limitexec_path, run_process
from sio.workers._engine.types import Limits
from sio.workers.executors import DetailedUnprotectedExecutor, UnprotectedExecutor
from sio.workers.util import TemporaryCwd

SOURCE = Path(__file__).resolve().parent.parent / "tests" / "sources" / "trivial.c"
DEVNULL = subprocess.DEVNULL


def main() -> int:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 300
    if shutil.which("gcc") is None:
        print("gcc is needed to build the test program")
        return 0
    build = tempfile.mkdtemp(prefix="sio_bench_")
    try:
        prog = os.path.join(build, "trivial")
        subprocess.run(["gcc", "-O2", "-static", "-o", prog, str(SOURCE)], check=True)
        print(f"limitexec wrapper: {limitexec_path() or 'unavailable (preexec_fn fallback)'}")
        with TemporaryCwd():
            measure(prog, runs)
    finally:
        shutil.rmtree(build)
    return 0


def measure(prog: str, runs: int) -> None:
    unprotected = UnprotectedExecutor()
    detailed = DetailedUnprotectedExecutor()
    env = dict(os.environ)
    limits = dict(time_limit=1000, mem_limit=65536)
    ulimit_line = f"ulimit -t 1 && ulimit -Ss unlimited && ulimit -v 65536 && {prog}"
    ways: dict[str, Callable[[], object]] = {
        "bare subprocess.run": lambda: subprocess.run(
            [prog], stdin=DEVNULL, stdout=DEVNULL, stderr=DEVNULL),
        "run_process, no limits": lambda: run_process([prog], cwd=build_cwd(), env=env),
        "run_process, limits": lambda: run_process(
            [prog], cwd=build_cwd(), env=env,
            limits=Limits(cpu_time_ms=1000, wall_time_ms=2000, address_space_kib=65536)),
        "UnprotectedExecutor, no limits": lambda: unprotected([prog]),
        "UnprotectedExecutor, TL 1 s + 64 MiB": lambda: unprotected([prog], **limits),
        "DetailedUnprotectedExecutor, no limits": lambda: detailed([prog]),
        "DetailedUnprotectedExecutor, TL 1 s + 64 MiB": lambda: detailed([prog], **limits),
        "original style: sh -c 'ulimit ..; prog'": lambda: subprocess.run(
            ulimit_line, shell=True, stdin=DEVNULL, stdout=DEVNULL, stderr=DEVNULL,
            preexec_fn=os.setpgrp),
        "original style: bash -c 'time prog'": lambda: subprocess.run(
            ["bash", "-c", f"time {prog}"], stdin=DEVNULL, stdout=DEVNULL,
            stderr=subprocess.PIPE, preexec_fn=os.setpgrp),
    }
    samples: dict[str, list[float]] = {name: [] for name in ways}
    for fn in ways.values():  # warm-up (builds the wrapper if needed)
        fn()
    for _ in range(runs):
        for name, fn in ways.items():
            t0 = time.perf_counter()
            fn()
            samples[name].append(time.perf_counter() - t0)
    base = statistics.median(samples["bare subprocess.run"])
    print(f"{'way':46s} {'median':>9s} {'ratio':>7s}   ({runs} runs each)")
    for name, values in samples.items():
        median = statistics.median(values)
        print(f"{name:46s} {median * 1000:7.3f}ms {median / base:6.2f}x")


def build_cwd() -> str:
    from sio.workers.util import tempcwd

    return tempcwd()


if __name__ == "__main__":
    sys.exit(main())
