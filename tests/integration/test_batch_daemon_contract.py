"""The daemon backend of batches against a test double of the daemon's
group calls (``run_group`` without ``return_url``, ``get_group``,
``list_groups``, ``forget_group``; see sio.workers._batch.daemon).

:class:`FakeDaemon` is a small in-process XML-RPC server that keeps to that
contract and runs the jobs with :func:`sio.workers.runner.run` in a thread;
it stands in for ``sioworkersd`` only to pin the client's side of the
contract. The real daemon with real Celery workers is exercised in
test_batch_daemon.py (where the daemon is installed).
"""

from __future__ import annotations

import json
import subprocess
import threading
import traceback
from collections import Counter
from xmlrpc.server import SimpleXMLRPCRequestHandler, SimpleXMLRPCServer

import pytest

from sio.workers import batch, runner
from tests.integration.test_batch_map import SIO_BATCH_MAP, failing, ping_batch
from tests.support import free_port

pytestmark = pytest.mark.integration


class _QuietHandler(SimpleXMLRPCRequestHandler):
    def log_message(self, *args):
        pass


class FakeDaemon:
    """The group calls of the contract. ``paused`` holds the jobs back;
    ``runs`` counts how often each (group, job key) ran."""

    def __init__(self, port: int) -> None:
        self.groups: dict[str, dict] = {}
        self.runs: Counter = Counter()
        self.queue: list[tuple[str, str]] = []
        self.lock = threading.Condition()
        self.paused = threading.Event()
        self.server = SimpleXMLRPCServer(("127.0.0.1", port), _QuietHandler, allow_none=True,
                                         logRequests=False)
        for name in ("run_group", "get_group", "list_groups", "forget_group"):
            self.server.register_function(getattr(self, name), name)
        self.url = f"http://127.0.0.1:{port}"
        self.threads = [threading.Thread(target=self.server.serve_forever, daemon=True),
                        threading.Thread(target=self._work, daemon=True)]
        for t in self.threads:
            t.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        with self.lock:
            self.queue.append(("", ""))  # ends the worker thread
            self.lock.notify_all()

    # -- the contract -------------------------------------------------------

    def run_group(self, env):
        if isinstance(env, str):
            env = json.loads(env)
        assert "return_url" not in env
        gid = env["group_id"]
        assert gid.startswith("GROUP_")
        with self.lock:
            if gid in self.groups:
                return gid  # idempotent: nothing runs again
            self.groups[gid] = {"jobs": dict(env["workers_jobs"]), "results": {}, "running": 0}
            self.queue.extend((gid, key) for key in env["workers_jobs"])
            self.lock.notify_all()
        return gid

    def _struct(self, gid, include_results):
        g = self.groups[gid]
        failed = sum("error" in r for r in g["results"].values())
        total = len(g["jobs"])
        queued = total - len(g["results"]) - g["running"]
        s = {"group_id": gid, "total": total, "queued": queued, "running": g["running"],
             "finished": len(g["results"]), "failed": failed,  # finished counts the failed
             "state": "done" if len(g["results"]) == total else
                      ("running" if g["running"] or g["results"] else "queued")}
        if include_results:
            s["results"] = dict(g["results"])
        return s

    def get_group(self, gid, include_results):
        with self.lock:
            if gid not in self.groups:
                raise ValueError(f"no group {gid!r} is kept")
            return self._struct(gid, include_results)

    def list_groups(self):
        with self.lock:
            return [self._struct(gid, False) for gid in self.groups]

    def forget_group(self, gid):
        with self.lock:
            self.groups.pop(gid)
        return True

    # -- running jobs ---------------------------------------------------------

    def _work(self):
        while True:
            with self.lock:
                while not self.queue or self.paused.is_set():
                    self.lock.wait(0.05)
                gid, key = self.queue.pop(0)
                if not gid:
                    return
                if gid not in self.groups:
                    continue
                env = dict(self.groups[gid]["jobs"][key], group_id=gid)
                self.groups[gid]["running"] += 1
            self.runs[gid, key] += 1
            try:
                result = runner.run(env)
            except Exception as e:
                result = dict(env, error={"message": f"{type(e).__name__}: {e}",
                                          "traceback": traceback.format_exc()})
            with self.lock:
                if gid in self.groups:
                    self.groups[gid]["running"] -= 1
                    self.groups[gid]["results"][key] = result


@pytest.fixture
def fake_daemon():
    daemon = FakeDaemon(free_port())
    yield daemon
    daemon.close()


@pytest.fixture
def db(tmp_path):
    return str(tmp_path / "batches.sqlite")


def test_map_through_the_daemon_orders_results_and_forgets_the_group(fake_daemon, db):
    environs = ping_batch(60)
    results = batch.map(environs, daemon=fake_daemon.url, db=db)
    assert len(results) == 60
    for environ, result in zip(environs, results):
        if failing(environ):
            assert result is None
        else:
            assert result["pong"] == environ["ping"] and result["i"] == environ["i"]
    batch_id = batch.list_batches(db=db)[0].id
    errors = batch.get_errors(batch_id, db=db)
    assert [e.environ for e in errors] == [e for e in environs if failing(e)]
    assert all(e.exception and "Traceback" in e.traceback for e in errors)
    assert batch.status(batch_id, db=db).state == "done"
    assert fake_daemon.groups == {}  # collected, then forgotten
    assert set(fake_daemon.runs.values()) == {1}


def test_partial_results_and_resume_never_run_a_job_twice(fake_daemon, db):
    fake_daemon.paused.set()
    environs = [{"job_type": "ping", "ping": str(i)} for i in range(10)]
    batch_id = batch.map_async(environs, daemon=fake_daemon.url, db=db)
    gid = f"GROUP_batch_{batch_id}"
    assert list(fake_daemon.groups) == [gid]
    pairs = batch.get_results(batch_id, block=False, db=db)
    assert [e for e, _ in pairs] == environs and all(r is None for _, r in pairs)
    assert batch.status(batch_id, db=db).state == "running"
    batch.resume(batch_id, db=db)  # run_group again: the daemon holds it, nothing is added
    fake_daemon.paused.clear()
    results = [r for _, r in batch.get_results(batch_id, block=True, db=db)]
    assert [r["pong"] for r in results] == [str(i) for i in range(10)]
    assert sorted(fake_daemon.runs.values()) == [1] * 10


def test_a_batch_the_daemon_never_got_is_sent_on_resume(db):
    port = free_port()
    environs = [{"job_type": "ping", "ping": str(i)} for i in range(5)]
    with pytest.raises(batch.DaemonError, match=f"cannot reach sioworkersd at http://127.0.0.1:{port}"):
        batch.map_async(environs, daemon=f"http://127.0.0.1:{port}", db=db)
    [s] = batch.list_batches(db=db)
    assert s.state == "interrupted" and s.pending == 5
    daemon = FakeDaemon(port)
    try:
        results = [r for _, r in batch.get_results(s.id, db=db)]
        assert [r["pong"] for r in results] == [str(i) for i in range(5)]
        assert sorted(daemon.runs.values()) == [1] * 5
    finally:
        daemon.close()


def test_sio_batch_map_daemon_mode(fake_daemon, db):
    environs = ping_batch(30, unknown=False)
    proc = subprocess.run([SIO_BATCH_MAP, "--db", db, "--daemon", fake_daemon.url],
                          input="".join(json.dumps(e) + "\n" for e in environs),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1, proc.stderr
    results = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [r["i"] for r in results] == list(range(30))
    assert [r["result"] == "FAILURE" for r in results] == [failing(e) for e in environs]
    assert all(r["exception"] for r in results if r["result"] == "FAILURE")
    assert "30/30 done, 3 failed" in proc.stderr
    # a daemon that is not there: a usage error naming it
    proc = subprocess.run([SIO_BATCH_MAP, "--db", db, "--daemon", f"http://127.0.0.1:{free_port()}"],
                          input='{"job_type": "ping", "ping": "x"}\n', capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 2 and "cannot reach sioworkersd" in proc.stderr
