"""Batches in local mode (sio.workers.batch, sio-batch-map): real worker
processes, a real store file, the installed console script."""

from __future__ import annotations

import json
import os
import pty
import select
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from sio.workers import batch

pytestmark = pytest.mark.integration

SIO_BATCH_MAP = shutil.which("sio-batch-map") or str(Path(sys.executable).parent / "sio-batch-map")

#: A job that logs each run (one line per run, appended) and takes a while,
#: so that a batch of them can be watched, interrupted and resumed.
SLOW_JOB = """
import os, time

def run(environ):
    if environ.get('die'):
        os.kill(os.getpid(), 9)  # takes its worker process with it
    time.sleep(environ.get('sleep_ms', 0) / 1000)
    with open(environ['log'], 'a') as f:
        f.write('%d\\n' % environ['n'])
    environ['twice'] = environ['n'] * 2
    return environ
"""


@pytest.fixture
def slow_job(plugin, monkeypatch):
    """Job type ``slow`` for this process and the worker processes it starts."""
    root = plugin({"sio.jobs": {"slow": "sio_test_slow:run"}}, {"sio_test_slow": SLOW_JOB})
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        p for p in (str(root), os.environ.get("PYTHONPATH")) if p))
    return "slow"


@pytest.fixture
def db(tmp_path):
    return str(tmp_path / "batches.sqlite")


def ping_batch(n, unknown=True):
    """``n`` environs: pings, every 10th without its 'ping' key (the job
    raises) and every 25th of an unknown job type (with ``unknown``)."""
    out = []
    for i in range(n):
        if unknown and i % 25 == 24:
            out.append({"job_type": "no-such-job", "i": i})
        elif i % 10 == 9:
            out.append({"job_type": "ping", "i": i})
        else:
            out.append({"job_type": "ping", "ping": str(i), "i": i})
    return out


def failing(environ):
    return environ["job_type"] != "ping" or "ping" not in environ


def test_local_mode_1000_pings_ordered_with_errors(db):
    environs = ping_batch(1000)
    batch_id = batch.map_async(environs, jobs=2, db=db)
    pairs = batch.get_results(batch_id, db=db)

    assert [e for e, _ in pairs] == environs
    for environ, result in pairs:
        if failing(environ):
            assert result is None
        else:
            assert result["pong"] == environ["ping"] and result["result"] == "SUCCESS"
            assert result["i"] == environ["i"]
    errors = batch.get_errors(batch_id, db=db)
    assert [e.environ for e in errors] == [e for e in environs if failing(e)]
    by_type = {e.environ["job_type"]: e for e in errors}
    assert by_type["ping"].exception.startswith("MissingEnvironKey: ")
    assert "Traceback" in by_type["ping"].traceback
    assert "no-such-job" in by_type["no-such-job"].exception
    s = batch.status(batch_id, db=db)
    assert (s.state, s.total, s.failed, s.done) == ("done", 1000, len(errors), 1000 - len(errors))
    assert batch_id in [b.id for b in batch.list_batches(db=db)]
    # map: the same, as a list with None for the failures
    assert batch.map(environs[:30], jobs=2, db=db) == [r for _, r in pairs[:30]]


def test_a_job_that_kills_its_worker_fails_alone(slow_job, db, tmp_path):
    log = str(tmp_path / "runs.log")
    environs = [{"job_type": slow_job, "n": n, "log": log, "die": n == 2} for n in range(6)]
    results = batch.map(environs, jobs=1, db=db)
    assert [r and r["twice"] for r in results] == [0, 2, None, 6, 8, 10]
    [error] = batch.get_errors(db=db, batch_id=only_batch(db).id)
    assert error.environ["n"] == 2
    assert error.exception == "the worker process running this job was killed by signal 9"


def wait_for(predicate, timeout=30.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def only_batch(db):
    batches = batch.list_batches(db=db) if os.path.exists(db) else []
    return batches[0] if batches else None


def test_killed_mid_batch_resume_runs_no_finished_item_twice(slow_job, db, tmp_path):
    log = tmp_path / "runs.log"
    environs = [{"job_type": slow_job, "n": n, "sleep_ms": 30, "log": str(log)} for n in range(60)]
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps(e) + "\n" for e in environs))
    first = subprocess.Popen([SIO_BATCH_MAP, "--db", db, "-j", "2", str(source)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: (b := only_batch(db)) is not None and b.finished >= 10)
        # Another process (this one) looks while the batch runs.
        batch_id = only_batch(db).id
        assert batch.status(batch_id, db=db).state == "running"
        partial = batch.get_results(batch_id, block=False, db=db)
        assert len(partial) == 60
        assert 10 <= sum(r is not None for _, r in partial) < 60
        assert all(r is None or r["twice"] == e["n"] * 2 for e, r in partial)
        first.kill()
        first.wait()
    finally:
        if first.poll() is None:
            first.kill()
        first.communicate()
    finished_before = {e["n"] for e, r in batch.get_results(batch_id, block=False, db=db)
                       if r is not None}
    assert batch.status(batch_id, db=db).state == "interrupted"
    with pytest.raises(batch.BatchInterrupted, match=f"--resume {batch_id}"):
        batch.get_results(batch_id, block=True, db=db)

    resumed = subprocess.run([SIO_BATCH_MAP, "--db", db, "--resume", batch_id],
                             capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    lines = [json.loads(line) for line in resumed.stdout.splitlines()]
    assert [r["n"] for r in lines] == list(range(60))
    assert all(r["twice"] == r["n"] * 2 and r["result"] == "SUCCESS" for r in lines)
    runs = Counter(int(line) for line in log.read_text().split())
    assert set(runs) == set(range(60))
    assert all(runs[n] == 1 for n in finished_before)
    # Only the jobs running when the process was killed ran again.
    assert sum(runs.values()) - 60 <= 4


def test_ctrl_c_stops_and_says_how_to_resume(slow_job, db, tmp_path):
    log = tmp_path / "runs.log"
    environs = [{"job_type": slow_job, "n": n, "sleep_ms": 50, "log": str(log)} for n in range(40)]
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps(e) + "\n" for e in environs))
    with open(source) as stdin:  # standard input, not a FILE argument
        proc = subprocess.Popen([SIO_BATCH_MAP, "--db", db, "-j", "2"], stdin=stdin,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for(lambda: (b := only_batch(db)) is not None and b.finished >= 4)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    batch_id = only_batch(db).id
    assert proc.returncode == 130, err
    assert f"--db {db} --resume {batch_id}" in err
    s = batch.status(batch_id, db=db)
    assert s.state == "interrupted" and 4 <= s.finished < 40 and s.running == 0
    # What was printed is the finished prefix, in order.
    assert [json.loads(line)["n"] for line in out.splitlines()] == list(range(len(out.splitlines())))
    batch.resume(batch_id, db=db)
    results = batch.get_result_environs(batch_id, db=db)
    assert [r["n"] for r in results] == list(range(40))
    # Stopping waited for the running jobs: nothing ran twice.
    assert sorted(int(line) for line in log.read_text().split()) == list(range(40))


def test_bad_input_lines_are_reported_before_anything_runs(db):
    text = "\n".join([
        '{"job_type": "ping", "ping": "a"}',
        '[1, 2]',
        '',
        'not json',
        '{"ping": "no job type"}',
        '{"job_type": "no-such-job"}',
    ]) + "\n"
    proc = subprocess.run([SIO_BATCH_MAP, "--db", db], input=text, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stdout == ""
    err = proc.stderr
    assert "nothing was run" in err
    for number, words in [(2, "a JSON list, not an object"), (4, "not valid JSON"),
                          (5, "no 'job_type'"), (6, "no entry point 'no-such-job'")]:
        assert f"<stdin>:{number}: {words}" in err
    assert "<stdin>:1:" not in err
    assert only_batch(db) is None
    # an unknown batch id is a usage error too
    proc = subprocess.run([SIO_BATCH_MAP, "--db", db, "--status", "nope"], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 2 and "no batch 'nope'" in proc.stderr
    proc = subprocess.run([SIO_BATCH_MAP, "--db", db, "--resume", "x", "more.jsonl"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "--resume takes no FILE" in proc.stderr


def test_progress_in_a_pipe_and_errors_listing(db):
    environs = ping_batch(50, unknown=False)  # sio-batch-map refuses unknown job types
    proc = subprocess.run([SIO_BATCH_MAP, "--db", db, "-j", "2"],
                          input="".join(json.dumps(e) + "\n" for e in environs),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1  # some failed
    results = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [r["i"] for r in results] == list(range(50))
    assert [r["result"] == "FAILURE" for r in results] == [failing(e) for e in environs]
    assert "\r" not in proc.stderr
    n_failed = sum(map(failing, environs))
    assert f"50/50 done, {n_failed} failed, 0 running" in proc.stderr
    batch_id = only_batch(db).id
    assert f"--errors {batch_id}" in proc.stderr

    errors = subprocess.run([SIO_BATCH_MAP, "--db", db, "--errors", batch_id],
                            capture_output=True, text=True, timeout=60)
    listed = [json.loads(line) for line in errors.stdout.splitlines()]
    assert [e["index"] for e in listed] == [i for i, e in enumerate(environs) if failing(e)]
    assert all(e["exception"] and e["traceback"] for e in listed)


def test_progress_bar_on_a_terminal(slow_job, db, tmp_path):
    environs = [{"job_type": slow_job, "n": n, "sleep_ms": 40, "log": str(tmp_path / "log")}
                for n in range(20)]
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps(e) + "\n" for e in environs))
    master, slave = pty.openpty()
    proc = subprocess.Popen([SIO_BATCH_MAP, "--db", db, "-j", "2", str(source)],
                            stdout=subprocess.PIPE, stderr=slave, text=True)
    os.close(slave)
    seen = b""
    while True:
        ready, _, _ = select.select([master], [], [], 60)
        assert ready, "no output on the terminal"
        try:
            chunk = os.read(master, 4096)
        except OSError:  # EIO: the other end is closed
            break
        if not chunk:
            break
        seen += chunk
    out, _ = proc.communicate(timeout=60)
    os.close(master)
    assert proc.returncode == 0
    assert len(out.splitlines()) == 20
    text = seen.decode()
    redraws = text.count("\r[")
    assert redraws >= 3, text  # redrawn in place while it runs
    final = text.rstrip().split("\r")[-1]
    assert final.startswith("[" + "#" * 24 + "] 20/20 done, 0 failed, 0 running, ")
    assert "/s, 0:00 left" in final


def test_help_and_the_default_store(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "SIO_BATCH_DB"}
    env["XDG_DATA_HOME"] = str(tmp_path / "data")
    p = subprocess.run([SIO_BATCH_MAP, "--help"], env=env, capture_output=True, text=True,
                       timeout=60, stdin=subprocess.DEVNULL)
    assert p.returncode == 0 and p.stdout.startswith("usage: sio-batch-map")
    assert not (tmp_path / "data").exists()
    p = subprocess.run([SIO_BATCH_MAP, "-q"], env=env, input='{"job_type": "ping", "ping": "x"}',
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and json.loads(p.stdout)["pong"] == "x"
    assert (tmp_path / "data" / "sioworkers" / "batches.sqlite").exists()
    assert p.stderr.startswith("sio-batch-map: batch ")  # and no progress (-q)
    assert len(p.stderr.splitlines()) == 1


def test_detached_batch_outlives_its_command_and_is_followed(slow_job, db, tmp_path):
    log = tmp_path / "runs.log"
    environs = [{"job_type": slow_job, "n": n, "sleep_ms": 30, "log": str(log)} for n in range(30)]
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps(e) + "\n" for e in environs))
    started = subprocess.run([SIO_BATCH_MAP, "--db", db, "-j", "2", "--detach", str(source)],
                             capture_output=True, text=True, timeout=60)
    assert started.returncode == 0, started.stderr
    batch_id = started.stdout.strip()
    assert f"--resume {batch_id}" in started.stderr
    assert batch.status(batch_id, db=db).state in ("running", "done")
    followed = subprocess.run([SIO_BATCH_MAP, "--db", db, "--resume", batch_id],
                              capture_output=True, text=True, timeout=120)
    assert followed.returncode == 0, followed.stderr
    assert [json.loads(line)["twice"] for line in followed.stdout.splitlines()] == \
        [2 * n for n in range(30)]
    assert sorted(int(line) for line in log.read_text().split()) == list(range(30))
    assert os.path.exists(os.path.join(os.path.dirname(db), f"batch-{batch_id}.log"))
    # the same from Python
    batch_id = batch.map_async([{"job_type": "ping", "ping": str(i)} for i in range(5)],
                               detach=True, jobs=1, db=db)
    assert [r["pong"] for _, r in batch.get_results(batch_id, db=db)] == list("01234")
