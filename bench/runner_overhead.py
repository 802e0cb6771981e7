"""Cost of running a job: ``runner.run`` in-process and ``sio-batch``.

Figures, each as a ratio to a baseline measured in the same run (these
machines are noisy, so only ratios are comparable between runs):

1. ``runner.run({'job_type': 'ping'})`` median per call, against creating
   and deleting one temporary directory (the physical floor of a job that
   gets a fresh working directory). Target: <= 3x.
2. ``sio-batch`` ping wall time (median over runs of the installed console
   script), against ``python -c pass`` with the same interpreter, both with
   compiled bytecode (as installed by pip). Target: <= 2.5x. Also printed:
   the standard-library modules sio-batch needs (json, logging, tempfile,
   shutil, contextvars) imported alone, which is most of the difference, and
   sio-batch in the calling environment (which may forbid writing bytecode).

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
    base_env = dict(os.environ, environ=json.dumps(environ))
    # An installed sioworkers has compiled bytecode (pip compiles it). This
    # environment may set PYTHONDONTWRITEBYTECODE, and then an editable
    # checkout recompiles runner.py and util.py at every start (~0.5x of
    # the ratio here): measure both, with bytecode kept in a private
    # PYTHONPYCACHEPREFIX for the second (nothing is written to the tree).
    with tempfile.TemporaryDirectory(prefix="sio_bench_pyc_") as pyc:
        compiled_env = {k: v for k, v in base_env.items() if k != "PYTHONDONTWRITEBYTECODE"}
        compiled_env["PYTHONPYCACHEPREFIX"] = pyc
        commands = {
            "python -c pass": ([sys.executable, "-c", "pass"], compiled_env),
            "stdlib it imports": ([sys.executable, "-c", "import json, logging, tempfile, "
                                   "shutil, contextvars"], compiled_env),
            "sio-batch ping": ([script], compiled_env),
            "sio-batch ping, this env": ([script], base_env),
        }
        for cmd, env in commands.values():  # warm-up: fills the bytecode cache
            subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           check=True)
        times: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(30):
            for name, (cmd, env) in commands.items():
                t0 = time.perf_counter()
                subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, check=True)
                times[name].append(time.perf_counter() - t0)
    med = {name: statistics.median(t) for name, t in times.items()}
    b = med["python -c pass"]
    for name, value in med.items():
        print(f"{name + ':':<29}{value * 1e3:6.1f} ms  {value / b:5.2f}x python -c pass")
    print(f"ratio batch/python:   {med['sio-batch ping'] / b:8.2f}x   (target <= 2.5x; "
          f"{med['sio-batch ping, this env'] / b:.2f}x in this environment"
          f"{' with PYTHONDONTWRITEBYTECODE' if os.environ.get('PYTHONDONTWRITEBYTECODE') else ''})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
