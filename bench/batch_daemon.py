"""The daemon part of bench/batch.py: a batch through ``sioworkersd`` as a
throughput ratio to :func:`sio.celery.run_many` on the same worker.

One ``sio-celery-worker -c 2`` on RabbitMQ (127.0.0.1:5672) consumes a
queue of its own; ``sioworkersd`` (a fresh SQLite store) schedules onto it;
``run_many`` sends straight to the same queue. Five alternating rounds, median of
the per-round ratios (target >= 0.8).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
import xmlrpc.client
from pathlib import Path

from sio.workers import batch

BIN = Path(sys.executable).parent
WORKER = shutil.which("sio-celery-worker") or str(BIN / "sio-celery-worker")
DAEMON = shutil.which("sioworkersd") or str(BIN / "sioworkersd")
RABBITMQ = "amqp://guest:guest@127.0.0.1:5672//"
ROUNDS = 5


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"not within {timeout} s: {what}")
        time.sleep(0.1)


def _stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _client():
    from sio.celery import default_config
    from sio.celery.app import SioCelery

    config = {k: getattr(default_config, k) for k in default_config.__all__}
    config["broker_url"] = RABBITMQ
    app = SioCelery("bench-batch-client", set_as_current=False)
    app.config_from_object(config)
    return app


def _environs(n: int) -> list[dict]:
    return [{"job_type": "ping", "ping": str(i)} for i in range(n)]


def run(n: int) -> None:
    if not _port_open(5672):
        print("daemon mode: skipped: RabbitMQ does not answer at 127.0.0.1:5672")
        return
    from kombu import Connection

    from sio.celery import run_many

    tag = uuid.uuid4().hex[:8]
    queue, name = f"sio-bench-batch-{tag}", f"bench-batch-{tag}"
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="bench_batch_daemon_") as folder:
        env = {k: v for k, v in os.environ.items()
               if k not in ("CELERY_BROKER_URL", "CELERY_CONFIG_MODULE")}
        with open(os.path.join(folder, "worker.log"), "wb") as log:
            worker = subprocess.Popen(
                [WORKER, "-c", "2", "-l", "WARNING", "-Q", queue, "-n", f"{name}@%h",
                 "--without-mingle", "--without-gossip", RABBITMQ],
                env=env, cwd=folder, stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True)
        with open(os.path.join(folder, "daemon.log"), "wb") as log:
            daemon = subprocess.Popen(
                [DAEMON, "--rpc-listen", "127.0.0.1", "--rpc-port", str(port), "--database",
                 os.path.join(folder, "d.sqlite3"), "--broker", RABBITMQ, "--queue", queue,
                 "--name", name, "-l", "WARNING"],
                env=env, cwd=folder, stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True)
        app = _client()
        try:
            _wait(lambda: _port_open(port), 30, "the daemon listens")
            rpc = xmlrpc.client.ServerProxy(url, allow_none=True)
            _wait(lambda: rpc.get_workers(), 90, "the daemon sees the worker")
            db = os.path.join(folder, "batches.sqlite")
            # warm-up of both paths
            run_many(_environs(10), app=app, queue=queue, timeout=300)
            batch.map(_environs(10), daemon=url, db=db)
            ratios, via_daemon, direct = [], [], []
            for i in range(ROUNDS):
                times = {}
                for what in (("daemon", "run_many") if i % 2 else ("run_many", "daemon")):
                    t0 = time.perf_counter()
                    if what == "daemon":
                        results = batch.map(_environs(n), daemon=url, db=db)
                    else:
                        results = run_many(_environs(n), app=app, queue=queue, timeout=600)
                    times[what] = time.perf_counter() - t0
                    assert [r and r["pong"] for r in results] == [str(j) for j in range(n)]
                via_daemon.append(n / times["daemon"])
                direct.append(n / times["run_many"])
                ratios.append(times["run_many"] / times["daemon"])
            print(f"{n} pings, run_many on one worker -c 2: {statistics.median(direct):7.0f} jobs/s")
            print(f"{n} pings, batch through sioworkersd:  {statistics.median(via_daemon):7.0f} "
                  "jobs/s")
            print(f"daemon mode, throughput ratio batch/run_many: {statistics.median(ratios):.2f}x "
                  f"(rounds: {', '.join(f'{r:.2f}' for r in ratios)}; target >= 0.8x)")
        finally:
            _stop(daemon)
            _stop(worker)
            app.close()
            with Connection(RABBITMQ, connect_timeout=5) as conn:
                for q in (queue, f"sioworkersd.{name}.results"):
                    try:
                        conn.default_channel.queue_delete(q)
                    except Exception:  # noqa: BLE001 - best effort on a shared broker
                        pass
