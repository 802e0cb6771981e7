"""Throughput of sioworkers jobs on Celery, against a bare Celery task.

For each broker (RabbitMQ at 127.0.0.1:5672, Redis at 127.0.0.1:6379, a
``filesystem://`` directory), one ``sio-celery-worker -c 2`` process with the
default configuration (late acks, prefetch 1, ``rpc://`` results) serves both

* ``sio.celery.job.sioworkers_job`` running ``ping`` jobs, sent and collected
  with :func:`sio.celery.run_many`, and
* the baseline: a bare Celery task that returns its argument (the same
  environs), sent with ``send_task`` and collected with
  ``ResultSet.join_native``,

in alternating rounds in the same run. Both tasks are served by the same
worker process, so every worker setting (late acks, prefetch, result backend,
JSON, task events) is the same for both, and both tasks set the same task
options. Printed: jobs/s of each, and the ratio ping/baseline (target >= 0.9
on RabbitMQ). A broker that does not answer is reported and skipped.

On ``filesystem://`` the worker polls the folder every 0.1 s and takes a job
only when a process is free (prefetch 1), so throughput depends on whether a
job has ended before the worker's next look: a job that takes 1 ms longer
can cost a whole polling interval. Its ratio says little about the CPU time
of a job; RabbitMQ's and Redis's do.

Run: ``.venv/bin/python bench/celery_throughput.py``
"""

from __future__ import annotations

import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

BIN = Path(sys.executable).parent
WORKER = shutil.which("sio-celery-worker") or str(BIN / "sio-celery-worker")
NOOP = "sio_bench.noop"

NOOP_MODULE = f'''
from celery import shared_task


@shared_task(name="{NOOP}", serializer="json", acks_late=True, reject_on_worker_lost=True)
def noop(environ):
    return environ
'''

CONFIG_MODULE = '''
from sio.celery.default_config import *

imports = ("sio.celery.job", "sio_bench_noop")
'''


def port_open(port: int) -> bool:
    import socket

    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def start_worker(cwd: Path, broker: str, queue: str) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "CELERY_BROKER_URL"}
    env.update(CELERY_CONFIG_MODULE="sio_bench_config", PYTHONPATH=str(cwd))
    log = cwd / f"{queue}.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [WORKER, "-c", "2", "-l", "WARNING", "-Q", queue, "-n", f"{queue}@%h",
             "--without-mingle", "--without-gossip", "--without-heartbeat", broker],
            cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    return proc


def stop_worker(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def client(broker: str):
    from sio.celery import default_config
    from sio.celery.app import SioCelery

    config = {k: getattr(default_config, k) for k in default_config.__all__}
    config["broker_url"] = broker
    app = SioCelery("bench-client", set_as_current=False)
    app.config_from_object(config)
    return app


def rate_ping(app, queue: str, n: int) -> float:
    from sio.celery import run_many

    environs = [{"job_type": "ping", "ping": i} for i in range(n)]
    start = time.perf_counter()
    results = run_many(environs, app=app, queue=queue, timeout=300)
    elapsed = time.perf_counter() - start
    assert [r["pong"] for r in results] == list(range(n)), "wrong ping results"
    return n / elapsed


def rate_noop(app, queue: str, n: int) -> float:
    # The same environs as rate_ping's, so that the messages are alike.
    environs = [{"job_type": "ping", "ping": i} for i in range(n)]
    start = time.perf_counter()
    results = [app.send_task(NOOP, args=[environ], queue=queue) for environ in environs]
    values = app.ResultSet(results).join_native(timeout=300)
    elapsed = time.perf_counter() - start
    assert [v["ping"] for v in values] == list(range(n)), "wrong no-op results"
    return n / elapsed


def measure(name: str, broker: str, workdir: Path, n: int, rounds: int) -> None:
    queue = f"sio-bench-{name}-{uuid.uuid4().hex[:8]}"
    proc = start_worker(workdir, broker, queue)
    app = client(broker)
    try:
        # Warm-up, which also waits for the worker to be ready.
        rate_ping(app, queue, 10)
        rate_noop(app, queue, 10)
        # Alternate the two in every round and take the median of the
        # per-round ratios: the machine is shared and its load drifts.
        noop, ping, ratios = [], [], []
        for i in range(rounds):
            # Which goes first alternates, so a drift favours neither.
            if i % 2:
                ping.append(rate_ping(app, queue, n))
                noop.append(rate_noop(app, queue, n))
            else:
                noop.append(rate_noop(app, queue, n))
                ping.append(rate_ping(app, queue, n))
            ratios.append(ping[-1] / noop[-1])
        print(f"{name:<12} {n:>5} jobs x {rounds}: bare Celery task "
              f"{statistics.median(noop):7.1f} jobs/s, sioworkers ping "
              f"{statistics.median(ping):7.1f} jobs/s, ratio {statistics.median(ratios):.2f} "
              f"(rounds: {' '.join(f'{r:.2f}' for r in ratios)})")
    finally:
        stop_worker(proc)
        app.close()
        if not broker.startswith("filesystem"):
            from kombu import Connection

            with Connection(broker) as conn:
                conn.default_channel.queue_delete(queue)
                conn.default_channel.exchange_delete(queue)
                if broker.startswith("redis"):  # binding tables kombu leaves
                    conn.default_channel.client.delete(f"_kombu.binding.{queue}",
                                                       f"_kombu.binding_permanent.{queue}")


def main() -> int:
    print("sio-celery-worker -c 2, default configuration (acks late, prefetch 1, rpc:// results);")
    print("ratio = ping (sio.celery.run_many) / bare no-op task, same worker, same run")
    with tempfile.TemporaryDirectory(prefix="sio-bench-celery-") as tmp:
        workdir = Path(tmp)
        (workdir / "sio_bench_noop.py").write_text(NOOP_MODULE)
        (workdir / "sio_bench_config.py").write_text(CONFIG_MODULE)
        brokers = [
            ("rabbitmq", "amqp://guest:guest@127.0.0.1:5672//", 5672, 500, 10),
            ("redis", "redis://127.0.0.1:6379/0", 6379, 500, 10),
            # Polls every 0.1 s (our default for filesystem://): fewer jobs.
            ("filesystem", f"filesystem://{workdir}/fs", None, 100, 2),
        ]
        for name, broker, port, n, rounds in brokers:
            if port is not None and not port_open(port):
                print(f"{name:<12} skipped: nothing answers on 127.0.0.1:{port}")
                continue
            measure(name, broker, workdir, n, rounds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
