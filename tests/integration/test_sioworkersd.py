"""sioworkersd end to end: the daemon as a process, real ``sio-celery-worker``
processes on RabbitMQ, a receiver that follows oioioi's
(``start_receive_from_workers``) and an XML-RPC client that sends groups as
oioioi's ``SioworkersdBackend`` does (a JSON string, ``allow_none``).

One daemon and its workers are shared by the module; the queue, the daemon's
name (its results queue) and the databases are unique to the session. Delays
are short through the daemon's options (polls every 0.3 s, a worker silent
for 3 s is gone, POST retries after 0.3 s and then every second).
"""

from __future__ import annotations

import email.parser
import email.policy
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
import xmlrpc.client
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.integration.test_celery import RABBITMQ, SESSION, Worker, delete_queue, need
from tests.support import SOURCES, free_port, make_plugin_distribution, port_open

pytestmark = [pytest.mark.integration, pytest.mark.service("rabbitmq")]

BIN = Path(sys.executable).parent
SIOWORKERSD = shutil.which("sioworkersd") or str(BIN / "sioworkersd")
POSTGRES_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"

TEST_JOBS = '''
import os
import signal
import time


def sleep(environ):
    """Append "<tag> <pid>" to environ['log_file']; the first start of the
    job (the file was empty before) sleeps environ['sleep_ms'] ms, a start
    after a re-run returns at once."""
    with open(environ["log_file"], "a") as f:
        first = f.tell() == 0
        f.write(f"{environ.get('tag', '')} {os.getpid()}\\n")
    if first or environ.get("always"):
        time.sleep(environ["sleep_ms"] / 1000)
    environ["slept"] = True
    return environ


def boom(environ):
    raise RuntimeError("boom: " + str(environ.get("boom")))


def kill_pool_process(environ):
    """A poison job: kills only the pool process running it."""
    with open(environ["log_file"], "a") as f:
        f.write(f"{os.getpid()}\\n")
    os.kill(os.getpid(), signal.SIGKILL)


def kill_worker(environ):
    """A poison job: kills the whole worker (its process group)."""
    with open(environ["log_file"], "a") as f:
        f.write(f"{os.getpid()}\\n")
    os.killpg(os.getpgid(0), signal.SIGKILL)
'''

#: Jobs of this size (KiB; 2000 MiB) fit only the "big" workers.
BIG_KIB = 2000 * 1024


# --------------------------------------------------------------------------
# The receiver (oioioi's start_receive_from_workers) and the client
# --------------------------------------------------------------------------

class Receiver:
    """oioioi's receiver: GET -> 404; a POST without the multipart field
    ``data`` -> 404; else the JSON loses ``workers_jobs`` (KeyError if
    absent) and ``workers_jobs.extra_args``, must have
    ``workers_jobs.results`` or ``error`` (else no answer: the socket is
    closed), and the answer is 200 ``OK``. Keeps what it received."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.received: list[dict] = []
        self.raw: list[dict] = []
        self.cv = threading.Condition()
        self.server: ThreadingHTTPServer | None = None

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_error(404)

            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
                    b"Content-Type: " + self.headers["Content-Type"].encode() + b"\r\n\r\n" + body)
                fields = {part.get_param("name", header="content-disposition"):
                          part.get_payload(decode=True) for part in msg.iter_parts()}
                if "data" not in fields:
                    self.send_error(404)
                    return
                env = json.loads(fields["data"])
                raw = dict(env)
                try:
                    del env["workers_jobs"]
                    env.pop("workers_jobs.extra_args", None)
                    assert "workers_jobs.results" in env or "error" in env
                except (KeyError, AssertionError):
                    self.close_connection = True  # oioioi: the handler raises
                    return
                with receiver.cv:
                    receiver.received.append(env)
                    receiver.raw.append(raw)
                    receiver.cv.notify_all()
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"OK")

            def log_message(self, *args):
                pass

        ThreadingHTTPServer.allow_reuse_address = True
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def wait_for(self, group_id: str, timeout: float = 60) -> dict:
        deadline = time.monotonic() + timeout
        with self.cv:
            while True:
                for env in self.received:
                    if env.get("group_id") == group_id:
                        return env
                left = deadline - time.monotonic()
                assert left > 0, f"group {group_id} not received within {timeout} s"
                self.cv.wait(left)

    def count(self, group_id: str) -> int:
        with self.cv:
            return sum(1 for env in self.received if env.get("group_id") == group_id)


def wait(predicate, timeout: float, what: str, step: float = 0.05):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"not within {timeout} s: {what}"
        time.sleep(step)


# --------------------------------------------------------------------------
# The daemon and its workers
# --------------------------------------------------------------------------

class Cluster:
    def __init__(self, root: Path, jobs_dist: Path) -> None:
        self.root = root
        self.jobs_dist = jobs_dist
        self.queue = f"sio-test-sioworkersd-{SESSION}"
        self.name = f"test-{SESSION}"
        self.sqlite = str(root / "sioworkersd.sqlite3")
        self.workers: list[Worker] = []
        self.daemon: subprocess.Popen | None = None
        self.port = 0
        self.log = root / "daemon.log"

    # workers
    def start_workers(self, *arg_lists: list[str]) -> list[Worker]:
        """Start workers in parallel (one per argument list) and wait until
        the daemon uses them."""
        made = [Worker(self.root, self.queue, args=args, jobs_dist=self.jobs_dist,
                       env={"CELERY_BROKER_URL": RABBITMQ}) for args in arg_lists]
        for w in made:
            with open(w.log, "ab") as log:
                w.proc = subprocess.Popen(w.argv, cwd=w.cwd, env=w.env, stdout=log,
                                          stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                          start_new_session=True)
        for w in made:
            w.wait_for_log("ready.", 90)
        self.workers += made
        names = {w.text().split(" ready.")[0].rsplit(" ", 1)[-1] for w in made}
        wait(lambda: names <= {x["name"] for x in self.rpc().get_workers()}, 30,
             f"the daemon sees {names}")
        return made

    def worker_name(self, w: Worker) -> str:
        return w.text().split(" ready.")[0].rsplit(" ", 1)[-1]

    # the daemon
    def start_daemon(self, database: str | None = None, *extra: str) -> None:
        self.port = self.port or free_port()
        argv = [SIOWORKERSD, "--rpc-listen", "127.0.0.1", "--rpc-port", str(self.port),
                "--database", database or self.sqlite, "--broker", RABBITMQ,
                "--queue", self.queue, "--name", self.name, "--seed", "1",
                "--poll-interval", "0.3", "--worker-timeout", "3",
                "--return-retry-delay", "0.3", "--return-max-delay", "1",
                "--max-job-tries", "1", "--exclusive-job-types", "cpu-exec,test-excl", *extra]
        with open(self.log, "ab") as log:
            self.daemon = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                           stdin=subprocess.DEVNULL, start_new_session=True)
        wait(lambda: port_open("127.0.0.1", self.port, 0.2) or self.daemon.poll() is not None,
             30, "the daemon listens")
        assert self.daemon.poll() is None, self.log.read_text()

    def kill_daemon(self) -> None:
        os.killpg(self.daemon.pid, signal.SIGKILL)
        self.daemon.wait(30)

    def stop_daemon(self) -> int:
        self.daemon.send_signal(signal.SIGTERM)
        return self.daemon.wait(30)

    def rpc(self) -> xmlrpc.client.ServerProxy:
        # As oioioi: allow_none, no time-out.
        return xmlrpc.client.ServerProxy(f"http://127.0.0.1:{self.port}/", allow_none=True)

    def close(self) -> None:
        if self.daemon is not None and self.daemon.poll() is None:
            self.stop_daemon()
        for w in self.workers:
            if w.proc is not None and w.proc.poll() is None:
                w.stop()
            w.kill()
        delete_queue(RABBITMQ, self.queue)
        delete_queue(RABBITMQ, f"sioworkersd.{self.name}.results")


@pytest.fixture(scope="module")
def jobs_dist(tmp_path_factory) -> Path:
    return make_plugin_distribution(
        tmp_path_factory.mktemp("sioworkersd-jobs"), "sio_sioworkersd_test_jobs",
        {"sio.jobs": {"test-sleep": "sio_sioworkersd_test_jobs:sleep",
                      "test-excl": "sio_sioworkersd_test_jobs:sleep",
                      "test-boom": "sio_sioworkersd_test_jobs:boom",
                      "test-kill-worker": "sio_sioworkersd_test_jobs:kill_worker",
                      "test-kill-pool": "sio_sioworkersd_test_jobs:kill_pool_process"}},
        {"sio_sioworkersd_test_jobs": TEST_JOBS})


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, jobs_dist):
    """The daemon (SQLite) and one worker (-c 2, 1000 MiB, may run exclusive
    jobs); the fault tests add more."""
    need("rabbitmq", 5672)
    c = Cluster(tmp_path_factory.mktemp("sioworkersd"), jobs_dist)
    try:
        c.start_daemon()
        c.start_workers(["--available-ram-mb", "1000", "--can-run-cpu-exec"])
        yield c
    finally:
        c.close()


@pytest.fixture(scope="module")
def receiver():
    r = Receiver()
    r.start()
    yield r
    r.stop()


def group(receiver: Receiver, jobs: dict, **keys) -> str:
    """A group as oioioi's evalmgr sends it: the evaluation environ with
    ``saved_environ_id``, ``return_url`` and the jobs."""
    env = {"workers_jobs": jobs, "workers_jobs.extra_args": {}, "return_url": receiver.url,
           "saved_environ_id": uuid.uuid4().hex, "submission_id": 7, **keys}
    return json.dumps(env)


def sleep_job(tmp: Path, tag: str, ms: int = 0, **keys) -> dict:
    return {"job_type": "test-sleep", "sleep_ms": ms, "tag": tag,
            "log_file": str(tmp / f"{tag}-{uuid.uuid4().hex[:6]}.log"), **keys}


# --------------------------------------------------------------------------
# The API as oioioi uses it
# --------------------------------------------------------------------------

def test_run_group_of_pings_is_posted_back(cluster, receiver):
    rpc = cluster.rpc()
    jobs = {f"p{i}": {"job_type": "ping", "ping": f"v{i}", "task_priority": 100}
            for i in range(5)}
    gid = rpc.run_group(group(receiver, jobs, contest_id="c1", oioioi_instance="site"))
    assert gid.startswith("GROUP_urn:uuid:")
    env = receiver.wait_for(gid)
    assert env["submission_id"] == 7 and env["return_url"] == receiver.url
    assert "error" not in env
    results = env["workers_jobs.results"]
    assert sorted(results) == sorted(jobs)
    for name, result in results.items():
        assert result["result"] == "SUCCESS" and result["pong"] == jobs[name]["ping"]
        assert result["group_id"] == gid and result["task_id"].startswith("urn:uuid:")
        assert result["contest_uid"] == ["site", "c1"]
        assert result["worker"] == os.uname().nodename  # the machine, as the original
    raw = receiver.raw[-1]
    assert raw["workers_jobs"]["p0"]["task_id"] == results["p0"]["task_id"]
    assert raw["workers_jobs.extra_args"] == {}


def test_a_struct_works_as_well_as_json(cluster):
    ans = cluster.rpc().sync_run_group({"workers_jobs": {"a": {"job_type": "ping", "ping": 1}}})
    assert ans["workers_jobs.results"]["a"]["pong"] == 1


def test_sync_run_group_and_an_empty_group(cluster):
    rpc = cluster.rpc()
    # As oioioi's run_jobs (package unpacking): no contest_id, no return_url.
    ans = rpc.sync_run_group(json.dumps({
        "workers_jobs": {"dummy_name": {"job_type": "ping", "ping": "x"}},
        "workers_jobs.extra_args": {}, "oioioi_instance": "site", "contest_priority": 10,
        "contest_weight": 1000}))
    assert "error" not in ans
    assert ans["workers_jobs.results"]["dummy_name"]["pong"] == "x"
    empty = rpc.sync_run_group(json.dumps({"workers_jobs": {}, "k": [1, None]}))
    assert empty["workers_jobs.results"] == {} and empty["k"] == [1, None]
    assert empty["group_id"].startswith("GROUP_")


def test_a_failing_job_gives_error_and_the_others_finish(cluster, receiver):
    rpc = cluster.rpc()
    jobs = {"ok": {"job_type": "ping", "ping": 1}, "bad": {"job_type": "test-boom", "boom": 5}}
    gid = rpc.run_group(group(receiver, jobs))
    env = receiver.wait_for(gid)
    assert list(env["workers_jobs.results"]) == ["ok"]
    assert env["error"]["message"].startswith("Some tasks in a group failed.")
    assert "boom: 5" in env["error"]["message"]
    assert "RuntimeError" in receiver.raw[-1]["workers_jobs"]["bad"]["error"]["traceback"]
    # sync_run_group answers the same environ (the original: a bare Fault 8002).
    ans = rpc.sync_run_group(json.dumps({"workers_jobs": jobs}))
    assert "boom: 5" in ans["error"]["message"] and "ok" in ans["workers_jobs.results"]


def test_ram_cap_rejection(cluster, receiver):
    rpc = cluster.rpc()
    huge = {"job_type": "exec", "exec_mem_limit": 64 * 1024 * 1024}
    gid = rpc.run_group(group(receiver, {"t": huge}))
    env = receiver.wait_for(gid)
    assert env["error"] == {"message": "One of the tasks requires 65536 MiB of RAM, exceeding "
                                       "the limit of 2048 MiB", "traceback": "NoneType: None\n"}
    ans = rpc.sync_run_group(json.dumps({"workers_jobs": {"t": huge}}))
    assert ans["error"]["message"].startswith("One of the tasks requires 65536 MiB")


def test_faults_and_the_xmlrpc_transport(cluster):
    import urllib.request

    rpc = cluster.rpc()
    with pytest.raises(xmlrpc.client.Fault) as e:
        rpc.no_such_call()
    assert e.value.faultCode == 8001 and "no_such_call" in e.value.faultString
    with pytest.raises(xmlrpc.client.Fault) as e:
        rpc.run_group(json.dumps({"return_url": "http://x/"}))
    assert e.value.faultCode == 8002 and "workers_jobs" in e.value.faultString
    with pytest.raises(xmlrpc.client.Fault) as e:
        rpc.sync_run_group(json.dumps({"workers_jobs": {}, "contest_priority": "high"}))
    assert "contest_priority must be an integer" in e.value.faultString
    with pytest.raises(xmlrpc.client.Fault) as e:
        rpc.get_group("GROUP_nothing")
    assert "no group 'GROUP_nothing'" in e.value.faultString
    # Any path; GET is refused with 405.
    other = xmlrpc.client.ServerProxy(f"http://127.0.0.1:{cluster.port}/RPC2/x", allow_none=True)
    assert isinstance(other.get_queue(), str)
    with pytest.raises(urllib.request.HTTPError) as http:
        urllib.request.urlopen(f"http://127.0.0.1:{cluster.port}/")
    assert http.value.code == 405 and http.value.headers["Allow"] == "POST"


def test_compile_and_exec_group_with_filetracker(cluster, receiver, ft_store):
    rpc = cluster.rpc()
    source = (SOURCES / "judge_sum.c").read_text()
    compiled = rpc.sync_run_group(json.dumps({"workers_jobs": {"dummy_name": {
        "job_type": "compile", "filetracker_url": ft_store.url,
        "source_file": ft_store.put("s.c", source), "language": "c",
        "compiler": "system-gcc", "out_file": ft_store.name("s-exe"),
        "task_priority": 200}}}))
    exe = compiled["workers_jobs.results"]["dummy_name"]
    assert exe["result_code"] == "OK", exe
    test_in, hint = ft_store.put("1a.in", "2 3\n"), ft_store.put("1a.out", "5\n")
    jobs = {name: {"job_type": "exec", "filetracker_url": ft_store.url,
                   "exe_file": exe["out_file"], "exec_info": exe["exec_info"],
                   "in_file": test_in, "hint_file": hint, "check_output": True,
                   "exec_time_limit": 2000, "exec_mem_limit": 65536, "task_priority": 100}
            for name in ("1a", "1b")}
    env = receiver.wait_for(rpc.run_group(group(receiver, jobs)), 120)
    assert {r["result_code"] for r in env["workers_jobs.results"].values()} == {"OK"}


def test_get_workers_while_jobs_run_and_get_queue(cluster, tmp_path):
    rpc = cluster.rpc()
    gid = rpc.run_group(json.dumps({"workers_jobs": {
        "s": sleep_job(tmp_path, "s", 1500, always=True)}}))
    running = wait(lambda: [w for w in rpc.get_workers() if w["tasks"]], 30, "a task runs")
    w = running[0]
    assert set(w) == {"name", "info", "tasks", "is_running_cpu_exec"}
    assert w["info"]["available_ram_mb"] == 1000 and w["info"]["concurrency"] == 2
    assert w["info"]["can_run_cpu_exec"] is True and w["is_running_cpu_exec"] is False
    assert w["tasks"][0].startswith("urn:uuid:")
    queue = rpc.get_queue()
    assert "running jobs: 1" in queue
    status = rpc.get_group(gid)
    assert (status["state"], status["running"], status["total"]) == ("running", 1, 1)
    assert rpc.forget_group(gid) is True
    assert gid not in [g["group_id"] for g in rpc.list_groups()]


def test_kept_groups_for_batches(cluster):
    rpc = cluster.rpc()
    gid = f"GROUP_batch-{uuid.uuid4().hex}"
    jobs = {"a": {"job_type": "ping", "ping": 1}, "b": {"job_type": "test-boom"}}
    assert rpc.run_group(json.dumps({"workers_jobs": jobs, "group_id": gid})) == gid
    done = wait(lambda: (s := rpc.get_group(gid, True))["state"] == "done" and s, 30, "done")
    assert (done["total"], done["finished"], done["failed"], done["queued"]) == (2, 2, 1, 0)
    assert done["results"]["a"]["pong"] == 1
    assert "RuntimeError" in done["results"]["b"]["error"]["message"]
    # The same id again runs nothing.
    assert rpc.run_group(json.dumps({"workers_jobs": jobs, "group_id": gid})) == gid
    assert rpc.get_group(gid)["finished"] == 2
    assert gid in [g["group_id"] for g in rpc.list_groups()]
    assert rpc.forget_group(gid) is True
    with pytest.raises(xmlrpc.client.Fault):
        rpc.get_group(gid)


# --------------------------------------------------------------------------
# Scheduling
# --------------------------------------------------------------------------

def test_priorities_and_exclusive_jobs(cluster, tmp_path):
    """While an exclusive job holds the worker alone, jobs of two contests
    queue up; they then start two at a time (-c 2) in the documented order:
    the higher contest priority first, then the higher task priority, then
    FIFO."""
    rpc = cluster.rpc()
    order = tmp_path / "order.log"
    excl = rpc.run_group(json.dumps({"workers_jobs": {"x": {
        "job_type": "test-excl", "sleep_ms": 1200, "tag": "excl", "log_file": str(order),
        "always": True}}}))
    wait(lambda: order.exists() and order.read_text(), 30, "the exclusive job started")
    # A shared job does not join the running exclusive one.
    def job(tag, prio):
        return {"job_type": "test-sleep", "sleep_ms": 300, "always": True, "tag": tag,
                "log_file": str(order), "task_priority": prio}
    low = rpc.run_group(json.dumps({"workers_jobs": {
        "l1": job("low-100", 100), "l2": job("low-300", 300), "l3": job("low-300b", 300)},
        "oioioi_instance": "t", "contest_id": "low", "contest_priority": 0}))
    high = rpc.run_group(json.dumps({"workers_jobs": {
        "h1": job("high-100", 100), "h2": job("high-200", 200)},
        "oioioi_instance": "t", "contest_id": "high", "contest_priority": 5}))
    workers = rpc.get_workers()
    assert [len(w["tasks"]) for w in workers] == [1] and workers[0]["is_running_cpu_exec"]
    for gid in (excl, low, high):
        wait(lambda: rpc.get_group(gid)["state"] == "done", 60, f"{gid} done")
    tags = [line.split()[0] for line in order.read_text().splitlines()]
    assert tags[0] == "excl"
    pairs = [set(tags[i:i + 2]) for i in range(1, len(tags), 2)]
    assert pairs == [{"high-200", "high-100"}, {"low-300", "low-300b"}, {"low-100"}], tags
    for gid in (excl, low, high):
        rpc.forget_group(gid)


def test_a_job_that_fits_no_worker_is_reported(cluster):
    rpc = cluster.rpc()
    gid = rpc.run_group(json.dumps({"workers_jobs": {
        "big": {"job_type": "ingen", "ingen_mem_limit": 1500 * 1024},  # the worker has 1000
        "small": {"job_type": "ping", "ping": 1}}}))
    wait(lambda: rpc.get_group(gid)["finished"] == 1, 30, "the small job ran")
    queue = rpc.get_queue()
    assert "fits no connected worker" in queue and "1500 MiB" in queue
    assert rpc.get_group(gid)["queued"] == 1
    rpc.forget_group(gid)
    assert "fits no connected worker" not in rpc.get_queue()


# --------------------------------------------------------------------------
# Faults
# --------------------------------------------------------------------------

def test_a_job_that_kills_its_pool_process_fails_after_the_limit(cluster, receiver, tmp_path):
    """Only the pool process dies: Celery gives the job back to the same
    worker, unseen by the daemon; the worker fails it on the delivery after
    --max-job-tries + 1 (here 2) runs, and the worker stays in service."""
    rpc = cluster.rpc()
    before = [w["name"] for w in rpc.get_workers()]
    log = tmp_path / "pool.log"
    gid = rpc.run_group(group(receiver, {
        "poison": {"job_type": "test-kill-pool", "log_file": str(log)},
        "fine": {"job_type": "ping", "ping": 1}}))
    env = receiver.wait_for(gid, 60)
    assert list(env["workers_jobs.results"]) == ["fine"]
    message = env["error"]["message"]
    assert "PoisonJobError" in message and "2 times" in message, message
    pids = log.read_text().split()
    assert len(pids) == 2 and pids[0] != pids[1]  # two runs, two pool processes
    assert [w["name"] for w in rpc.get_workers()] == before
    ans = rpc.sync_run_group(json.dumps({"workers_jobs": {"a": {"job_type": "ping", "ping": 2}}}))
    assert ans["workers_jobs.results"]["a"]["pong"] == 2


def test_receiver_down_for_a_while_and_a_restart_in_between(cluster, receiver):
    rpc = cluster.rpc()
    receiver.stop()
    try:
        gid = rpc.run_group(group(receiver, {"p": {"job_type": "ping", "ping": 3}}))
        wait(lambda: "failed tries" in rpc.get_queue(), 30, "a failed POST is reported")
        # The group waiting to be returned survives a crash of the daemon.
        cluster.kill_daemon()
        cluster.start_daemon()
        rpc = cluster.rpc()
        wait(lambda: "failed tries" in rpc.get_queue(), 30, "a failed POST after the restart")
    finally:
        receiver.start()
    assert receiver.wait_for(gid, 30)["workers_jobs.results"]["p"]["pong"] == 3
    wait(lambda: "failed tries" not in rpc.get_queue(), 10, "the group leaves the queue")


@pytest.fixture(scope="module")
def postgres_url():
    """A database of this session on the machine's PostgreSQL, dropped at
    the end."""
    psycopg = pytest.importorskip("psycopg")
    need("postgresql", 5432)
    name = f"sio_test_{SESSION.replace('-', '_')}"
    with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def test_postgresql_store_round_trip_and_reconnect(postgres_url):
    import psycopg

    from sio.sioworkersd.store import open_store

    store = open_store(postgres_url)
    try:
        env = {"workers_jobs": {"a": {"task_id": "t1"}}, "n": 2**40}
        gid = f"GROUP_{uuid.uuid4().hex}"
        store.add_group(gid, "keep", env, [(f"t-{gid}", "a")])
        store.job_done(f"t-{gid}", "done", {"pong": 1})
        (job,) = store.jobs(gid)
        assert (job.state, job.result, store.group(gid).env) == ("done", {"pong": 1}, env)
        # The server drops the connection (a restart): one call fails, the
        # next connects again.
        with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                          "WHERE datname = %s AND pid <> pg_backend_pid()",
                          (postgres_url.rsplit("/", 1)[1],))
        with pytest.raises(psycopg.OperationalError):
            store.group(gid)
        store.group_done(gid, {"final": 1})
        assert store.group(gid).env == {"final": 1} and store.jobs(gid) == []
        assert store.delete_group(gid)
    finally:
        store.close()


@pytest.mark.parametrize("store", ["sqlite", "postgresql"])
def test_daemon_killed_mid_group_finishes_after_restart(cluster, receiver, tmp_path, store,
                                                        request):
    database = request.getfixturevalue("postgres_url") if store == "postgresql" else None
    if database:
        assert cluster.stop_daemon() == 0
        cluster.start_daemon(database)
    try:
        rpc = cluster.rpc()
        jobs = {"slow": sleep_job(tmp_path, "slow", 1500),
                **{f"p{i}": {"job_type": "ping", "ping": i} for i in range(3)}}
        gid = rpc.run_group(group(receiver, jobs))
        wait(lambda: Path(jobs["slow"]["log_file"]).exists(), 30, "the slow job started")
        cluster.kill_daemon()
        cluster.start_daemon(database)
        env = receiver.wait_for(gid, 60)
        assert sorted(env["workers_jobs.results"]) == ["p0", "p1", "p2", "slow"]
        assert env["workers_jobs.results"]["slow"]["slept"] is True
        assert "error" not in env
    finally:
        if database:
            assert cluster.stop_daemon() == 0
            cluster.start_daemon()


def test_sigterm_stops_gracefully_and_loses_nothing(cluster, receiver, tmp_path):
    """SIGTERM while a group's job runs and a sync_run_group call waits: the
    daemon exits 0 at once, the waiting caller gets a Fault (not a hang),
    and after a restart the group is finished and POSTed."""
    rpc = cluster.rpc()
    jobs = {"slow": sleep_job(tmp_path, "slow", 1500), "p": {"job_type": "ping", "ping": 1}}
    gid = rpc.run_group(group(receiver, jobs))
    sync_job = sleep_job(tmp_path, "sync", 3000)
    outcome: dict = {}

    def call():
        try:
            outcome["ans"] = cluster.rpc().sync_run_group(json.dumps({"workers_jobs": {
                "s": sync_job}}))
        except Exception as e:
            outcome["exc"] = e

    caller = threading.Thread(target=call, daemon=True)
    caller.start()
    wait(lambda: all(Path(j["log_file"]).exists() for j in (jobs["slow"], sync_job)), 30,
         "both jobs started")
    started = time.monotonic()
    assert cluster.stop_daemon() == 0
    assert time.monotonic() - started < 10
    caller.join(10)
    assert isinstance(outcome.get("exc"), xmlrpc.client.Fault), outcome
    assert "stopped" in outcome["exc"].faultString
    cluster.start_daemon()
    env = receiver.wait_for(gid, 60)
    assert sorted(env["workers_jobs.results"]) == ["p", "slow"] and "error" not in env


@pytest.fixture(scope="module")
def big_workers(cluster):
    """Three workers that alone can hold BIG jobs (3000 MiB, -c 1); the
    tests below kill them."""
    return cluster.start_workers(*[["-c", "1", "--available-ram-mb", "3000"]] * 3)


def test_worker_killed_mid_job_runs_again_elsewhere(cluster, receiver, big_workers, tmp_path):
    rpc = cluster.rpc()
    job = sleep_job(tmp_path, "big", 30_000, **{"test-sleep_mem_limit": BIG_KIB})
    gid = rpc.run_group(group(receiver, {"big": job}))
    names = {cluster.worker_name(w): w for w in big_workers}
    log = Path(job["log_file"])
    wait(lambda: log.exists() and log.read_text(), 30, "the job started")
    holder = wait(lambda: [w["name"] for w in rpc.get_workers() if w["tasks"]
                           and w["name"] in names], 30, "the job runs on a big worker")[0]
    names[holder].kill()
    env = receiver.wait_for(gid, 60)
    result = env["workers_jobs.results"]["big"]
    assert result["slept"] is True and "error" not in env
    # Two starts, in two processes: the killed one and the re-run.
    starts = Path(job["log_file"]).read_text().splitlines()
    assert len(starts) == 2 and starts[0].split()[1] != starts[1].split()[1]
    assert holder not in [w["name"] for w in rpc.get_workers()]


def test_poison_job_fails_after_the_limit(cluster, receiver, big_workers, tmp_path):
    rpc = cluster.rpc()
    log = tmp_path / "poison.log"
    gid = rpc.run_group(group(receiver, {
        "poison": {"job_type": "test-kill-worker", "log_file": str(log),
                   "test-kill-worker_mem_limit": BIG_KIB},
        "fine": {"job_type": "ping", "ping": 1}}))
    env = receiver.wait_for(gid, 60)
    assert list(env["workers_jobs.results"]) == ["fine"]
    assert "lost 2 times" in env["error"]["message"]
    assert len(log.read_text().split()) == 2  # --max-job-tries 1: run, then once more
