"""sioworkersd against sending the same jobs straight to Celery, in one run.

One ``sio-celery-worker -c 2`` on RabbitMQ (127.0.0.1:5672) serves both:

* **throughput**: 500 ``ping`` jobs in 5 groups through the daemon
  (``run_group`` of each group, until the 5 POSTs have reached a receiver in
  this process) against the same 500 jobs through
  :func:`sio.celery.run_many`; printed as jobs/s of each and the ratio
  daemon/run_many (target >= 0.8), the median of alternating rounds;
* **latency**: ``sync_run_group`` of one ping against ``run_many`` of one
  ping (medians of 30 each, alternating); printed as milliseconds and the
  ratio;
* **scheduling cost**: one decision of :class:`sio.sioworkersd.scheduler.Scheduler`
  with 100 000 queued jobs over 100 contests (two priority levels, so that
  the weighted draw runs over 50 contests) and 20 workers, in-process;
  printed in microseconds (target <= 1 ms).

The daemon keeps its store in SQLite (WAL) in a temporary directory.
Run: ``.venv/bin/python bench/sioworkersd.py``
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import xmlrpc.client
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

# The bench/ directory is on sys.path when this file runs.
from celery_throughput import client, port_open

BIN = Path(sys.executable).parent
WORKER = shutil.which("sio-celery-worker") or str(BIN / "sio-celery-worker")
DAEMON = shutil.which("sioworkersd") or str(BIN / "sioworkersd")
BROKER = "amqp://guest:guest@127.0.0.1:5672//"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Receiver:
    """Counts the POSTed groups by group id."""

    def __init__(self) -> None:
        self.got: set[str] = set()
        self.cv = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                start = body.index(b"\r\n\r\n") + 4
                env = json.loads(body[start:body.rindex(b"\r\n--")])
                with receiver.cv:
                    receiver.got.add(env["group_id"])
                    receiver.cv.notify_all()
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"OK")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait_all(self, ids: list[str], timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        with self.cv:
            while not set(ids) <= self.got:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("groups not returned")
                self.cv.wait(left)


def via_daemon(rpc, receiver: Receiver, n: int, groups: int) -> float:
    per = n // groups
    start = time.perf_counter()
    ids = [rpc.run_group(json.dumps({
        "workers_jobs": {f"p{i}": {"job_type": "ping", "ping": i} for i in range(per)},
        "return_url": receiver.url, "contest_id": g})) for g in range(groups)]
    receiver.wait_all(ids)
    return n / (time.perf_counter() - start)


def via_run_many(app, queue: str, n: int) -> float:
    from sio.celery import run_many

    start = time.perf_counter()
    results = run_many([{"job_type": "ping", "ping": i} for i in range(n)], app=app,
                       queue=queue, timeout=300)
    elapsed = time.perf_counter() - start
    assert [r["pong"] for r in results] == list(range(n))
    return n / elapsed


def latency_sync(rpc) -> float:
    start = time.perf_counter()
    ans = rpc.sync_run_group(json.dumps({"workers_jobs": {"a": {"job_type": "ping",
                                                                "ping": 1}}}))
    assert ans["workers_jobs.results"]["a"]["pong"] == 1
    return time.perf_counter() - start


def latency_run_many(app, queue: str) -> float:
    from sio.celery import run_many

    start = time.perf_counter()
    (r,) = run_many([{"job_type": "ping", "ping": 1}], app=app, queue=queue, timeout=60)
    assert r["pong"] == 1
    return time.perf_counter() - start


def scheduling_cost(jobs: int = 100_000, contests: int = 100, workers: int = 20,
                    decisions: int = 2000) -> float:
    """Seconds per decision (a job assigned), with ``jobs`` queued."""
    from sio.sioworkersd.scheduler import Job, Scheduler

    rng = random.Random(1)
    s = Scheduler(seed=1)
    for c in range(contests):
        s.set_contest(c, c % 2, rng.randrange(1, 10))
    for i in range(jobs):
        s.add(Job(f"t{i}", rng.randrange(contests), rng.choice((100, 200, 300)),
                  rng.choice((64.0, 256.0, 512.0)), exclusive=rng.random() < 0.1))
    for w in range(workers):
        s.set_worker(f"w{w}", 4, 4096, w % 2 == 0)
    # Keep the queue near full: each assigned job ends and a new one comes.
    total = 0.0
    done = 0
    extra = jobs
    while done < decisions:
        start = time.perf_counter()
        step = s.schedule_once()
        total += time.perf_counter() - start
        if isinstance(step, tuple):
            done += 1
            s.finished(step[0].task_id)
            extra += 1
            s.add(Job(f"t{extra}", rng.randrange(contests), 100, 64.0))
        elif step is None:
            raise RuntimeError("the scheduler stopped with free workers")
    return total / decisions


def main() -> int:
    print("scheduling: one decision, 100 000 queued jobs over 100 contests, 20 workers")
    cost = scheduling_cost()
    print(f"  {cost * 1e6:.1f} us per decision (target <= 1000 us)")
    if not port_open(5672):
        print("RabbitMQ at 127.0.0.1:5672 does not answer: the daemon figures are skipped")
        return 0
    session = uuid.uuid4().hex[:8]
    queue = f"sio-bench-sioworkersd-{session}"
    name = f"bench-{session}"
    with tempfile.TemporaryDirectory(prefix="sio-bench-sioworkersd-") as tmp:
        work = Path(tmp)
        env = {k: v for k, v in os.environ.items() if k != "CELERY_BROKER_URL"}
        worker = subprocess.Popen(
            [WORKER, "-c", "2", "-l", "WARNING", "-Q", queue, "-n", f"{queue}@%h",
             "--without-mingle", "--without-gossip", BROKER], cwd=work, env=env,
            stdout=open(work / "worker.log", "wb"), stderr=subprocess.STDOUT,
            start_new_session=True)
        port = free_port()
        daemon = subprocess.Popen(
            [DAEMON, "--rpc-listen", "127.0.0.1", "--rpc-port", str(port), "--database",
             str(work / "db.sqlite3"), "--broker", BROKER, "--queue", queue, "--name", name,
             "--log-level", "WARNING"], cwd=work, env=env,
            stdout=open(work / "daemon.log", "wb"), stderr=subprocess.STDOUT,
            start_new_session=True)
        receiver = Receiver()
        app = client(BROKER)
        try:
            deadline = time.monotonic() + 60
            while not port_open(port):
                if time.monotonic() > deadline or daemon.poll() is not None:
                    raise RuntimeError((work / "daemon.log").read_text())
                time.sleep(0.1)
            rpc = xmlrpc.client.ServerProxy(f"http://127.0.0.1:{port}/", allow_none=True)
            while not rpc.get_workers():
                if time.monotonic() > deadline:
                    raise RuntimeError("the daemon sees no worker")
                time.sleep(0.2)
            # Warm-up of both paths.
            via_daemon(rpc, receiver, 20, 2)
            via_run_many(app, queue, 20)
            n, groups, rounds = 500, 5, 10
            ratios, d_rates, c_rates = [], [], []
            for i in range(rounds):
                if i % 2:
                    c_rates.append(via_run_many(app, queue, n))
                    d_rates.append(via_daemon(rpc, receiver, n, groups))
                else:
                    d_rates.append(via_daemon(rpc, receiver, n, groups))
                    c_rates.append(via_run_many(app, queue, n))
                ratios.append(d_rates[-1] / c_rates[-1])
            print(f"throughput: {n} pings in {groups} groups x {rounds} rounds, "
                  "sio-celery-worker -c 2, RabbitMQ")
            print(f"  daemon {statistics.median(d_rates):7.1f} jobs/s, run_many "
                  f"{statistics.median(c_rates):7.1f} jobs/s, ratio "
                  f"{statistics.median(ratios):.2f} (target >= 0.8; rounds: "
                  f"{' '.join(f'{r:.2f}' for r in ratios)})")
            sync, direct = [], []
            for i in range(30):
                if i % 2:
                    direct.append(latency_run_many(app, queue))
                    sync.append(latency_sync(rpc))
                else:
                    sync.append(latency_sync(rpc))
                    direct.append(latency_run_many(app, queue))
            s_med, d_med = statistics.median(sync), statistics.median(direct)
            print(f"latency of one ping: sync_run_group {s_med * 1000:.1f} ms, run_many "
                  f"{d_med * 1000:.1f} ms, ratio {s_med / d_med:.2f}")
        finally:
            receiver.server.shutdown()
            for proc in (daemon, worker):
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
            from kombu import Connection

            with Connection(BROKER) as conn:
                for q in (queue, f"sioworkersd.{name}.results"):
                    conn.default_channel.queue_delete(q)
                conn.default_channel.exchange_delete(queue)
            app.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
