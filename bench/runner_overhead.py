"""Cost of running a job: ``runner.run`` in-process and ``sio-batch``.

Figures, each as a ratio to a baseline measured in the same run (these
machines are noisy, so only ratios are comparable between runs):

1. ``runner.run({'job_type': 'ping'})`` median per call, against creating
   and deleting one temporary directory (the physical floor of a job that
   gets a fresh working directory). Target: <= 3x.
2. ``sio-batch`` ping wall time (median over runs of the installed console
   script), against ``python -c pass`` with the same interpreter.
   Target: <= 2.5x.

Run: ``.venv/bin/python bench/runner_overhead.py``
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def median_seconds(fn, repeat: int, inner: int) -> float:
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(inner):
            fn()
        samples.append((time.perf_counter() - t0) / inner)
    return statistics.median(samples)


def tempdir_floor() -> None:
    shutil.rmtree(tempfile.mkdtemp(prefix="sioworkers_"))


def main() -> int:
    from sio.workers import runner

    environ = {"job_type": "ping", "ping": "x"}
    runner.run(dict(environ))  # warm the entry-point cache, as a worker is
    interleaved_floor, interleaved_run = [], []
    for _ in range(15):  # interleave so both see the same machine load
        interleaved_floor.append(median_seconds(tempdir_floor, 1, 200))
        interleaved_run.append(median_seconds(lambda: runner.run(dict(environ)), 1, 200))
    floor = statistics.median(interleaved_floor)
    run = statistics.median(interleaved_run)
    print(f"tempdir floor:        {floor * 1e6:8.1f} us")
    print(f"runner.run(ping):     {run * 1e6:8.1f} us")
    print(f"ratio run/floor:      {run / floor:8.2f}x   (target <= 3x)")

    script = shutil.which("sio-batch") or str(Path(sys.executable).parent / "sio-batch")
    env = dict(os.environ, environ=json.dumps(environ))
    bare_cmd = [sys.executable, "-c", "pass"]
    batch_cmd = [script]
    bare, batch = [], []
    for _ in range(30):
        for cmd, out in ((bare_cmd, bare), (batch_cmd, batch)):
            t0 = time.perf_counter()
            subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           check=True)
            out.append(time.perf_counter() - t0)
    b, s = statistics.median(bare), statistics.median(batch)
    print(f"python -c pass:       {b * 1e3:8.1f} ms")
    print(f"sio-batch ping:       {s * 1e3:8.1f} ms")
    print(f"ratio batch/python:   {s / b:8.2f}x   (target <= 2.5x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
