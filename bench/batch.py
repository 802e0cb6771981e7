"""Throughput of batches (sio.workers.batch), as ratios to baselines
measured in the same run (these machines are noisy).

1. Local mode: 2000 ping jobs through ``batch.map(..., jobs=2)`` (worker
   processes started, every result stored in a fresh store file), against
   2000 calls of ``runner.run`` in a loop in this process. Below 1x means
   the pool beats the loop; a ping takes ~0.1 ms, so the pool's own costs
   (two workers forked, jobs and answers through pipes in bunches, results
   stored a bunch a transaction) weigh heavily: it is the worst case for
   it. Medians of interleaved rounds.
2. Daemon mode: the same jobs through ``sioworkersd`` against
   ``sio.celery.run_many`` on the same workers (target >= 0.8x, as a
   throughput ratio); needs the daemon (``sio.sioworkersd``) and RabbitMQ,
   else it says why it is skipped.

Run: ``.venv/bin/python bench/batch.py [jobs]`` (default 2000).
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sio.workers import batch, runner  # noqa: E402

ROUNDS = 3


def environs(n: int) -> list[dict]:
    return [{"job_type": "ping", "ping": str(i)} for i in range(n)]


def loop(n: int) -> float:
    t0 = time.perf_counter()
    for environ in environs(n):
        runner.run(environ)
    return time.perf_counter() - t0


def local(n: int, jobs: int, folder: str) -> float:
    db = os.path.join(folder, f"b{time.monotonic_ns()}.sqlite")
    t0 = time.perf_counter()
    results = batch.map(environs(n), jobs=jobs, db=db)
    took = time.perf_counter() - t0
    assert all(r is not None and r["result"] == "SUCCESS" for r in results)
    return took


def daemon_mode(n: int) -> None:
    try:
        import sio.sioworkersd  # noqa: F401
    except ImportError:
        print("daemon mode: skipped: sio.sioworkersd is not installed here (the daemon's "
              "branch is not merged)")
        return
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from batch_daemon import run  # noqa: E402

    run(n)


def main() -> int:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    runner.run({"job_type": "ping", "ping": "warm"})  # the entry-point cache, as a worker's
    loops, pools = [], []
    with tempfile.TemporaryDirectory(prefix="bench_batch_") as folder:
        for _ in range(ROUNDS):
            loops.append(loop(n))
            pools.append(local(n, 2, folder))
    t_loop, t_pool = statistics.median(loops), statistics.median(pools)
    print(f"{n} pings, runner.run in a loop:   {t_loop:7.3f} s  ({n / t_loop:7.0f} jobs/s)")
    print(f"{n} pings, batch.map, 2 processes: {t_pool:7.3f} s  ({n / t_pool:7.0f} jobs/s)")
    print(f"local mode, time ratio batch/loop: {t_pool / t_loop:7.2f}x")
    daemon_mode(n)
    return 0


if __name__ == "__main__":
    sys.exit(main())
