"""Batches through the real sioworkersd: the daemon as a process, a real
``sio-celery-worker`` on RabbitMQ (the daemon's test cluster of
test_sioworkersd.py), ``sio-batch-map --daemon`` as users run it."""

from __future__ import annotations

import json
import subprocess
import time

import pytest

pytest.importorskip("sio.sioworkersd", reason="the daemon (sio.sioworkersd, branch "
                    "sioworkersd) is not installed here: batches have no daemon to run on")

from sio.workers import batch  # noqa: E402
from tests.integration.test_batch_map import SIO_BATCH_MAP, failing, ping_batch  # noqa: E402
from tests.integration.test_sioworkersd import cluster, jobs_dist, wait  # noqa: E402,F401

pytestmark = [pytest.mark.integration, pytest.mark.service("rabbitmq")]


def url(cluster) -> str:
    return f"http://127.0.0.1:{cluster.port}"


def kept_batch_groups(cluster) -> list[str]:
    return [g["group_id"] for g in cluster.rpc().list_groups()
            if g["group_id"].startswith("GROUP_batch_")]


def test_sio_batch_map_through_the_daemon(cluster, tmp_path):
    db = str(tmp_path / "batches.sqlite")
    environs = ping_batch(40, unknown=False)
    proc = subprocess.run([SIO_BATCH_MAP, "--db", db, "--daemon", url(cluster)],
                          input="".join(json.dumps(e) + "\n" for e in environs),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stderr  # the pings without 'ping' failed
    results = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [r["i"] for r in results] == list(range(40))
    for environ, result in zip(environs, results):
        if failing(environ):
            assert result["result"] == "FAILURE" and "ping" in result["exception"]
        else:
            assert result["pong"] == environ["ping"] and result["result"] == "SUCCESS"
    [s] = batch.list_batches(db=db)
    assert (s.state, s.failed, s.backend) == ("done", 4, url(cluster))
    assert [e.environ for e in batch.get_errors(s.id, db=db)] == [e for e in environs
                                                                 if failing(e)]
    assert kept_batch_groups(cluster) == []  # collected, then forgotten


def test_client_killed_the_daemon_goes_on_and_resume_collects(cluster, tmp_path):
    db = str(tmp_path / "batches.sqlite")
    environs = [{"job_type": "test-sleep", "sleep_ms": 150, "always": True, "n": n,
                 "log_file": str(tmp_path / f"run-{n}.log")} for n in range(12)]
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps(e) + "\n" for e in environs))
    client = subprocess.Popen([SIO_BATCH_MAP, "--db", db, "--daemon", url(cluster),
                               str(source)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait(lambda: batch.list_batches(db=db) and batch.list_batches(db=db)[0].finished >= 2,
             60, "two results")
        batch_id = batch.list_batches(db=db)[0].id
        # another process looks meanwhile
        partial = batch.get_results(batch_id, block=False, db=db)
        assert 2 <= sum(r is not None for _, r in partial) <= 12
        client.kill()
        client.wait()
    finally:
        if client.poll() is None:
            client.kill()
        client.communicate()
    time.sleep(0.5)  # the daemon keeps running the group meanwhile
    resumed = subprocess.run([SIO_BATCH_MAP, "--db", db, "--resume", batch_id],
                             capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    assert [json.loads(line)["n"] for line in resumed.stdout.splitlines()] == list(range(12))
    # Each job ran once: killing the client lost nothing in the daemon.
    assert all(len((tmp_path / f"run-{n}.log").read_text().splitlines()) == 1
               for n in range(12))
    assert batch.status(batch_id, db=db).state == "done"
    assert kept_batch_groups(cluster) == []


def test_results_stream_into_the_store_with_get_group_since(cluster, tmp_path, monkeypatch):
    from sio.workers._batch import daemon as daemon_backend
    from sio.workers._batch.store import Store

    calls = []
    real_call = daemon_backend.Daemon._call

    def spy(self, method, *args):
        answer = real_call(self, method, *args)
        if method == "get_group":
            calls.append((args, len(answer.get("results") or {}), answer.get("cursor")))
        return answer

    monkeypatch.setattr(daemon_backend.Daemon, "_call", spy)
    db = str(tmp_path / "batches.sqlite")
    environs = ping_batch(60, unknown=False)
    batch_id = batch.map_async(environs, daemon=url(cluster), db=db)
    with Store(db) as store:
        sync = daemon_backend.Sync(store, batch_id)
        while sync.step() is not None:
            time.sleep(0.01)
        assert store.counts(batch_id).complete
    # Every fetch asked only for what ended after the previous answer's
    # cursor, so no result came twice.
    since = [args[2] for args, _, _ in calls if len(args) == 3]
    assert since and since[0] == 0 and since == sorted(since)
    assert all(args[1] is True for args, _, _ in calls if len(args) == 3)
    assert sum(n for args, n, _ in calls if len(args) == 3) == 60
    pairs = batch.get_results(batch_id, db=db)
    assert [e["i"] for e, _ in pairs] == list(range(60))
    assert [r is None for _, r in pairs] == [i % 10 == 9 for i in range(60)]
    assert batch_id and not [g for g in kept_batch_groups(cluster) if batch_id in g]
