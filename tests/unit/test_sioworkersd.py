"""sioworkersd without processes: the rules, the scheduler, the SQLite store,
the POST body."""

from __future__ import annotations

import email.parser
import email.policy
import json
import random
import xmlrpc.client

import pytest

from sio.sioworkersd import policy
from sio.sioworkersd.scheduler import Job, Scheduler


# -- policy -------------------------------------------------------------------

@pytest.mark.parametrize("job, mib", [
    ({"job_type": "exec"}, 64),
    ({"job_type": "cpu-exec", "exec_mem_limit": 768 * 1024}, 768),
    ({"job_type": "exec", "check_output": True}, 256),
    ({"job_type": "exec", "exec_mem_limit": 768 * 1024, "check_output": True,
      "checker_mem_limit": 896 * 1024}, 896),
    ({"job_type": "ingen"}, 256), ({"job_type": "inwer"}, 256), ({"job_type": "compile"}, 512),
    ({"job_type": "ping"}, 1), ({"job_type": "something"}, 256),
    ({"job_type": "compile", "compile_mem_limit": 1024 * 1024}, 1024),
    ({"job_type": "exec", "exec_mem_limit": 66000}, 66000 / 1024),
])
def test_ram_estimates_are_the_originals(job, mib):
    assert policy.required_ram_mb(job) == pytest.approx(mib)


@pytest.mark.parametrize("env, message", [
    (5, "must be an object"),
    ({}, "no 'workers_jobs'"),
    ({"workers_jobs": {"a": 1}}, "job 'a' must be an object"),
    ({"workers_jobs": {"a": {}}}, "job 'a' has no 'job_type'"),
    ({"workers_jobs": {}, "contest_priority": "1"}, "contest_priority must be an integer"),
    ({"workers_jobs": {}, "contest_weight": 0}, "contest_weight must be at least 1"),
    ({"workers_jobs": {"a": {"job_type": "x", "task_priority": True}}}, "task_priority of job"),
    ({"workers_jobs": {}, "group_id": "x"}, "starting with 'GROUP_'"),
    ({"workers_jobs": {}, "contest_id": [1]}, "contest_id must be a string, a number or null"),
])
def test_bad_groups_are_refused_with_a_message(env, message):
    with pytest.raises(policy.GroupError, match=message):
        policy.validate_group(env)


def test_ram_rejection_message_and_strict_comparison():
    env = {"workers_jobs": {"a": {"job_type": "exec", "exec_mem_limit": 2048 * 1024}}}
    assert policy.ram_rejection(env, 2048) is None
    env["workers_jobs"]["a"]["exec_mem_limit"] += 1024
    assert policy.ram_rejection(env, 2048) == ("One of the tasks requires 2049 MiB of RAM, "
                                               "exceeding the limit of 2048 MiB")


def test_finished_group_echoes_keys_and_reports_failures():
    env = policy.prepare_group({"workers_jobs": {"a": {"job_type": "ping", "task_id": "old"},
                                                 "b": {"job_type": "x"}},
                                "x": 1, "contest_id": 3}, "GROUP_g")
    assert env["workers_jobs"]["a"]["task_id"] != "old"
    assert env["workers_jobs"]["a"]["contest_uid"] == [None, 3]
    out = policy.finished_group(env, {"a": {"pong": 1}},
                                {"b": {"message": "Boom", "traceback": "tb"}})
    assert out["x"] == 1 and out["group_id"] == "GROUP_g"
    assert out["workers_jobs.results"] == {"a": {"pong": 1}}
    assert out["workers_jobs"]["b"]["error"] == {"message": "Boom", "traceback": "tb"}
    assert out["error"]["message"].startswith("Some tasks in a group failed.\n\n")
    assert "Boom" in out["error"]["message"] and "error" not in env["workers_jobs"]["b"]


def test_return_delays_grow_and_never_end():
    delays = [policy.return_delay(k, 10, 3600) for k in range(1, 8)]
    assert delays == [10, 100, 1000, 3600, 3600, 3600, 3600]
    assert policy.return_delay(10**6, 10, 3600) == 3600


def test_post_body_is_one_multipart_field_data():
    from sio.sioworkersd.returning import encode

    env = {"a": "zażółć", "n": [1, None]}
    body, content_type = encode(env)
    msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body)
    parts = list(msg.iter_parts())
    assert len(parts) == 1 and parts[0].get_param("name", header="content-disposition") == "data"
    data = parts[0].get_payload(decode=True)
    assert data.isascii() and json.loads(data) == env


def test_arguments_may_be_json_strings_or_structs():
    from sio.sioworkersd.rpc import decode_argument

    assert decode_argument('{"a": 1}') == {"a": 1}
    assert decode_argument({"a": 1}) == {"a": 1}
    assert decode_argument("not json") == "not json"


# -- scheduler ----------------------------------------------------------------

def job(task_id, contest="c", prio=0, ram=1.0, exclusive=False) -> Job:
    return Job(task_id, contest, prio, ram, exclusive)


def started(s: Scheduler) -> list[tuple[str, str]]:
    return [(j.task_id, w) for j, w in s.schedule()]


def test_contest_priority_then_task_priority_then_fifo():
    s = Scheduler(seed=0)
    s.set_contest("low", 0, 1)
    s.set_contest("high", 5, 1)
    for j in (job("l1", "low", 300), job("h1", "high", 100), job("h2", "high", 200),
              job("h3", "high", 200)):
        s.add(j)
    s.set_worker("w", 1, 1000, False)
    order = []
    for _ in range(4):
        (task_id, _w), = started(s)
        order.append(task_id)
        s.finished(task_id)
    assert order == ["h2", "h3", "h1", "l1"]
    assert started(s) == []


def test_weighted_draw_is_repeatable_and_follows_the_weights():
    def draws(seed):
        s = Scheduler(seed=seed)
        s.set_contest("light", 0, 2)
        s.set_contest("heavy", 0, 8)
        for i in range(500):
            s.add(job(f"l{i}", "light"))
            s.add(job(f"h{i}", "heavy"))
        s.set_worker("w", 1, 1000, False)
        out = []
        for _ in range(200):
            (task_id, _w), = started(s)
            out.append(task_id[0])
            s.finished(task_id)
        return out

    first = draws(7)
    assert first == draws(7)
    assert first.count("h") > 2 * first.count("l")


def test_concurrency_and_ram_are_respected():
    s = Scheduler()
    s.set_worker("small", 2, 100, False)
    for i in range(3):
        s.add(job(f"j{i}", ram=60))
    assert started(s) == [("j0", "small")]  # 2 x 60 MiB do not fit 100
    s.set_worker("big", 2, 1000, False)
    assert sorted(w for _, w in started(s)) == ["big", "big"]
    assert s.workers["big"].used_ram_mb == 120


def test_exclusive_jobs_run_alone_on_workers_that_allow_them():
    s = Scheduler()
    s.set_worker("plain", 4, 1000, False)
    s.set_worker("cpu", 4, 1000, True)
    s.add(job("x", exclusive=True))
    s.add(job("a"))
    s.add(job("b"))
    got = dict(started(s))
    assert got == {"x": "cpu", "a": "plain", "b": "plain"}
    s.add(job("c"))
    assert started(s) == [("c", "plain")]  # not next to the exclusive job
    assert s.workers["cpu"].running_exclusive


def test_waiting_exclusive_jobs_do_not_starve():
    s = Scheduler()
    s.set_worker("cpu", 2, 1000, True)
    s.add(job("a"))
    assert started(s) == [("a", "cpu")]
    s.add(job("x", exclusive=True))
    s.add(job("b"))
    assert started(s) == []  # b would keep the worker busy for ever
    s.finished("a")
    assert started(s) == [("x", "cpu")]
    s.finished("x")
    assert started(s) == [("b", "cpu")]


def test_an_exclusive_job_reserves_a_worker_big_enough():
    s = Scheduler()
    s.set_worker("big", 2, 4000, True)
    s.add(job("a"))
    assert started(s) == [("a", "big")]
    s.set_worker("small", 1, 1000, True)  # empty: the least loaded
    s.add(job("x", ram=3000, exclusive=True))
    s.add(job("c"))
    s.add(job("d"))
    # Only "big" can hold x: it is the one kept free of new shared jobs.
    assert started(s) == [("c", "small")]
    s.finished("a")
    assert started(s) == [("x", "big")]


def test_a_job_no_worker_can_hold_is_set_aside_and_comes_back():
    s = Scheduler()
    s.set_worker("w", 1, 100, False)
    s.add(job("huge", ram=500))
    s.add(job("x", exclusive=True))
    s.add(job("small"))
    assert started(s) == [("small", "w")]
    assert {j.task_id for j in s.unplaceable()} == {"huge", "x"}
    s.set_worker("big", 1, 1000, True)
    assert {t for t, _ in started(s)} == {"huge"}
    s.finished("huge")
    assert started(s) == [("x", "big")]
    assert s.unplaceable() == []


def test_a_lost_worker_gives_back_its_jobs():
    s = Scheduler()
    s.set_worker("w", 2, 100, False)
    s.add(job("a"))
    s.add(job("b"))
    started(s)
    assert sorted(j.task_id for j in s.remove_worker("w")) == ["a", "b"]
    assert s.finished("a") is None and s.workers == {}


def test_random_operations_keep_every_rule():
    rng = random.Random(3)
    s = Scheduler(seed=3)
    pending: set[str] = set()
    running: dict[str, Job] = {}
    for i in range(3000):
        op = rng.random()
        if op < 0.45:
            j = job(f"t{i}", contest=rng.randrange(4), prio=rng.randrange(3),
                    ram=rng.choice([1, 64, 256, 900]), exclusive=rng.random() < 0.2)
            s.set_contest(j.contest, rng.randrange(2), rng.randrange(1, 4))
            s.add(j)
            pending.add(j.task_id)
        elif op < 0.85 and running:
            task_id = rng.choice(sorted(running))
            s.finished(task_id)
            del running[task_id]
        elif op < 0.92:
            # A worker (re)joins; each name always offers the same.
            n = rng.randrange(4)
            s.set_worker(f"w{n}", n % 3 + 1, 512 * (1 + n % 2), n >= 2)
        elif s.workers:
            for j in s.remove_worker(rng.choice(sorted(s.workers))):
                del running[j.task_id]
                s.add(j)
        for j, w in s.schedule():
            pending.discard(j.task_id)
            running[j.task_id] = j
        for w in s.workers.values():
            assert len(w.running) <= w.concurrency
            assert w.used_ram_mb <= w.ram_mb + 1e-6
            if w.running_exclusive:
                assert len(w.running) == 1 and w.can_run_exclusive
    # Enough workers at the end: everything runs.
    s.set_worker("last", 4, 4096, True)
    while len(s) or running:
        for task_id in list(running):
            s.finished(task_id)
            del running[task_id]
        for j, w in s.schedule():
            pending.discard(j.task_id)
            running[j.task_id] = j
    assert not pending


# -- store ----------------------------------------------------------------------

def test_sqlite_store_round_trip(tmp_path):
    from sio.sioworkersd.store import open_store

    path = str(tmp_path / "s.sqlite3")
    store = open_store(path)
    env = {"workers_jobs": {"a": {"task_id": "t1"}}, "return_url": "http://x/"}
    store.add_group("GROUP_1", "return", env, [("t1", "a")])
    store.job_done("t1", "done", {"pong": 1})
    store.close()
    store = open_store(path)  # a restart
    (row,) = store.groups()
    assert (row.id, row.kind, row.state, row.env) == ("GROUP_1", "return", "judging", env)
    (j,) = store.jobs("GROUP_1")
    assert (j.name, j.state, j.result) == ("a", "done", {"pong": 1})
    store.group_done("GROUP_1", {"final": True})
    store.return_failed("GROUP_1", 2, 123.0, "refused")
    row = store.group("GROUP_1")
    assert (row.state, row.env, row.tries, row.next_try, row.last_error) == (
        "done", {"final": True}, 2, 123.0, "refused")
    assert store.jobs("GROUP_1") == []
    assert store.delete_group("GROUP_1") and store.group("GROUP_1") is None
    store.close()


# -- the daemon's bookkeeping, with a transport that only records ----------------

class RecordingTransport:
    def __init__(self):
        self.sent: list[tuple[str, str]] = []  # (Celery id, worker)
        self.revoked: list[str] = []

    def send(self, env, cid, worker):
        self.sent.append((cid, worker))

    def revoke(self, cid):
        self.revoked.append(cid)


@pytest.fixture
def daemon(tmp_path):
    from sio.sioworkersd.daemon import Daemon, Settings
    from sio.sioworkersd.store import open_store

    d = Daemon(open_store(str(tmp_path / "d.sqlite3")), RecordingTransport(),
               Settings(poll_interval_s=0.01, max_job_tries=1, job_timeout_s=60))
    yield d
    d.store.close()


WORKER = {"concurrency": 2, "available_ram_mb": 1000, "can_run_cpu_exec": False, "active": []}


def test_a_job_its_worker_does_not_hold_runs_again_then_fails(daemon):
    import time

    gid = daemon.submit({"workers_jobs": {"a": {"job_type": "ping"}}}, "keep").id
    daemon.on_poll({"w": WORKER})
    (cid, worker), = daemon.transport.sent
    assert cid.endswith("#1") and worker == "w"
    daemon.on_poll({"w": {**WORKER, "active": [cid]}})
    time.sleep(0.6)  # past the grace of a job just sent
    daemon.on_poll({"w": {**WORKER, "active": [cid]}})  # held: fine
    daemon.on_poll({"w": WORKER})
    assert len(daemon.transport.sent) == 1  # one poll without it is not enough
    daemon.on_poll({"w": WORKER})
    assert daemon.transport.sent[1][0].endswith("#2")  # the same task_id, sent again
    time.sleep(0.6)
    daemon.on_poll({"w": WORKER})
    daemon.on_poll({"w": WORKER})
    status = daemon.group_status(gid, True)
    assert (status["state"], status["failed"]) == ("done", 1)
    assert "lost 2 times" in status["results"]["a"]["error"]["message"]


def test_a_job_over_its_time_limit_fails_and_is_revoked(daemon):
    daemon.settings.job_timeout_s = 0.0
    g = daemon.submit({"workers_jobs": {"a": {"job_type": "ping"}, "b": {"job_type": "ping"}}},
                      "sync")
    daemon.on_poll({"w": WORKER})  # sends both
    daemon.on_result(daemon.transport.sent[0][0], "SUCCESS", {"pong": 1}, None)
    daemon.on_poll({"w": WORKER})
    assert daemon.transport.revoked == [daemon.transport.sent[1][0]]
    assert g.done.is_set() and "TimeoutError" in g.final["error"]["message"]
    assert len(g.final["workers_jobs.results"]) == 1


def test_results_survive_a_restart_and_only_unfinished_jobs_run_again(tmp_path):
    from sio.sioworkersd.daemon import Daemon, Settings
    from sio.sioworkersd.store import open_store

    path = str(tmp_path / "r.sqlite3")
    first = Daemon(open_store(path), RecordingTransport(), Settings())
    g = first.submit({"workers_jobs": {"a": {"job_type": "ping"}, "b": {"job_type": "ping"}},
                      "return_url": "http://127.0.0.1:9/"}, "return")
    first.on_poll({"w": WORKER})
    done_cid = first.transport.sent[0][0]
    first.on_result(done_cid, "SUCCESS", {"pong": "a"}, None)
    first.store.close()  # a crash: nothing else is written
    second = Daemon(open_store(path), RecordingTransport(), Settings())
    second.restore()
    second.on_poll({"w": WORKER})
    (cid, _), = second.transport.sent
    assert cid.split("#")[0] != done_cid.split("#")[0]
    second.on_result(cid, "SUCCESS", {"pong": "b"}, None)
    row = second.store.group(g.id)
    assert row.state == "done" and len(row.env["workers_jobs.results"]) == 2
    second.store.close()


def test_prefetched_jobs_of_a_vanished_worker_are_not_blamed(daemon):
    import time

    daemon.settings.worker_timeout_s = 0.0
    daemon.submit({"workers_jobs": {"a": {"job_type": "ping"}, "b": {"job_type": "ping"}}},
                  "keep")
    daemon.on_poll({"w": {**WORKER, "concurrency": 1}})
    # -c 1 and one job of prefetch: both are sent, the second waits in its queue.
    first, second = [cid.split("#")[0] for cid, _ in daemon.transport.sent]
    assert [w for _, w in daemon.transport.sent] == ["w", "w"]
    time.sleep(0.01)
    daemon.on_poll({})  # w is silent: gone
    assert (daemon.tries[first], daemon.tries[second]) == (1, 0)
    assert len(daemon.scheduler) == 2 and daemon.scheduler.workers == {}


def test_command_line_options_reach_the_settings():
    from sio.sioworkersd.main import parser, settings_from

    settings = settings_from(parser().parse_args([
        "--max-task-ram", "100", "--exclusive-job-types", "cpu-exec, x", "--seed", "4",
        "--prefetch", "0", "--worker-port", "7888"]))
    assert settings.max_task_ram_mb == 100.0  # a number (the original kept a string)
    assert settings.exclusive_job_types == {"cpu-exec", "x"}
    assert (settings.seed, settings.prefetch) == (4, 0)


def test_help_and_bad_options(capsys):
    from sio.sioworkersd.main import main

    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0 and "--rpc-port" in capsys.readouterr().out
    with pytest.raises(SystemExit) as e:
        main(["--job-timeout", "0"])
    assert e.value.code == 2 and "--job-timeout must be positive" in capsys.readouterr().err


def test_a_broker_that_refuses_a_send_loses_no_job(daemon):
    sent = daemon.transport.sent

    def refuse(env, cid, worker):
        raise ConnectionError("broker away")

    daemon.transport.send = refuse
    daemon.submit({"workers_jobs": {n: {"job_type": "ping"} for n in "abc"}}, "keep")
    daemon.on_poll({"w": WORKER})
    assert daemon.running == {} and len(daemon.scheduler) == 3
    assert all(not w.running for w in daemon.scheduler.workers.values())
    del daemon.transport.send  # the broker is back
    daemon.on_poll({"w": WORKER})
    assert len(sent) == 3  # -c 2 and one of prefetch


def test_worker_advertisement_defaults():
    from sio.celery import advertise

    assert advertise.default_available_ram_mb() >= 1
    q = advertise.direct_queue("w1@host")
    assert (q.name, q.routing_key, q.exchange.name) == (
        "sioworkersd.w1@host", "sioworkersd.w1@host", advertise.DIRECT_EXCHANGE)
    assert q.auto_delete and not q.durable  # gone with its worker


def test_an_answer_xmlrpc_cannot_carry_is_a_clear_fault(daemon):
    import xmlrpc.client

    from sio.sioworkersd.rpc import RPCServer

    server = RPCServer(("127.0.0.1", 0), daemon)
    try:
        with pytest.raises(xmlrpc.client.Fault) as e:
            server._dispatch("sync_run_group", [{"workers_jobs": {}, "big": 2**40}])
        assert e.value.faultCode == 8002
        assert e.value.faultString == "Can't serialize output: int exceeds XML-RPC limits"
    finally:
        server.server_close()


def test_runs_of_a_job_that_ends_its_process_are_counted_until_the_limit(
        tmp_path, monkeypatch):
    import os
    import tempfile

    from sio.celery import job

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    # Delivered again twice: the first run and this one; then a third run.
    counter = job._count_start("t#1", 3)
    assert open(counter).read() == "2"
    assert job._count_start("t#1", 3) == counter and open(counter).read() == "3"
    with pytest.raises(job.PoisonJobError, match="3 times"):
        job._count_start("t#1", 3)
    assert not os.path.exists(counter)  # a later reuse of the id starts again
    with pytest.raises(job.PoisonJobError, match="1 times"):
        job._count_start("t#2", 1)  # --max-job-tries 0: one run only
    assert job._count_start("t#3", 2) != counter  # counted per Celery id
    # A first delivery counts nothing; a run delivered again that ends, even
    # with an exception, removes its counter.
    seen = []
    real = job._count_start
    monkeypatch.setattr(job, "_count_start", lambda *a: seen.append(real(*a)) or seen[-1])
    ran = job.sioworkers_job.apply(args=[{"job_type": "ping", "ping": 1}],
                                   kwargs={"max_runs": 2}, task_id="t#4")
    assert ran.get()["pong"] == 1 and seen == []
    monkeypatch.setattr(job, "_redelivery", lambda: "t#5")
    ran = job.sioworkers_job.apply(args=[{"job_type": "ping", "ping": 1}],
                                   kwargs={"max_runs": 2}, task_id="t#5")
    assert ran.get()["pong"] == 1
    monkeypatch.setattr(job, "_redelivery", lambda: "t#6")
    failed = job.sioworkers_job.apply(args=[{"job_type": "no-such-type"}],
                                      kwargs={"max_runs": 2}, task_id="t#6")
    assert failed.failed()
    assert len(seen) == 2 and not any(os.path.exists(p) for p in seen)
    assert os.listdir(os.path.dirname(counter)) == [os.path.basename(job._starts_file("t#3"))]


def test_jobs_are_sent_with_the_run_limit():
    from sio.sioworkersd.transport import CeleryTransport

    class App:
        def send_task(self, name, **kw):
            self.sent = kw

    app = App()
    CeleryTransport(app, "d", "q", max_runs=4).send({"job_type": "ping"}, "t#1", "w")
    assert app.sent["kwargs"] == {"max_runs": 4} and app.sent["task_id"] == "t#1"
    from sio.sioworkersd.main import parser

    assert parser().parse_args([]).max_job_tries + 1 == 4


def test_a_rejected_group_s_jobs_have_ids_but_no_contest_uid(daemon):
    g = daemon.submit({"workers_jobs": {"t": {"job_type": "exec", "exec_mem_limit": 3 << 20}},
                       "contest_id": "c"}, "sync")
    job = g.final["workers_jobs"]["t"]
    assert g.final["error"]["message"].startswith("One of the tasks requires 3072 MiB")
    assert job["group_id"] == g.id and job["task_id"].startswith("urn:uuid:")
    assert "contest_uid" not in job and "workers_jobs.results" not in g.final


def test_an_incoming_group_id_is_replaced_whatever_it_is(daemon):
    g = daemon.submit({"workers_jobs": {}, "group_id": "from an old round"}, "sync")
    assert g.final["group_id"].startswith("GROUP_urn:uuid:")
    old = "GROUP_urn:uuid:00000000-0000-0000-0000-000000000000"
    g = daemon.submit({"workers_jobs": {"a": {"job_type": "ping", "group_id": old}},
                       "group_id": old, "return_url": "http://127.0.0.1:9/"}, "return")
    assert g.id != old and g.env["workers_jobs"]["a"]["group_id"] == g.id


def test_an_accepted_group_is_committed_before_the_answer(daemon, tmp_path):
    import sqlite3

    g = daemon.submit({"workers_jobs": {"a": {"job_type": "ping"}},
                       "return_url": "http://127.0.0.1:9/"}, "return")
    other = sqlite3.connect(str(tmp_path / "d.sqlite3"))
    try:
        assert other.execute("SELECT kind, state FROM sioworkersd_groups WHERE id = ?",
                             (g.id,)).fetchall() == [("return", "judging")]
        assert other.execute("SELECT count(*) FROM sioworkersd_jobs").fetchone() == (1,)
    finally:
        other.close()


def test_forget_worker_as_oioioi_calls_it(daemon):
    from sio.sioworkersd.rpc import API

    api = API(daemon)
    daemon.submit({"workers_jobs": {"a": {"job_type": "ping"}}}, "keep")
    daemon.on_poll({"1e5": WORKER})  # a name that is also valid JSON
    (cid, _), = daemon.transport.sent
    task_id = cid.split("#")[0]
    assert api.forget_worker("nobody") is False
    assert api.forget_worker("1e5") is True
    assert api.get_workers() == [] and daemon.tries[task_id] == 0  # not blamed
    assert len(daemon.scheduler) == 1  # queued again, with the same task_id
    daemon.on_poll({"1e5": WORKER})  # still alive: back at its next answer
    assert [w["name"] for w in api.get_workers()] == ["1e5"]
    assert daemon.transport.sent[-1][0] == f"{task_id}#2"
    assert api.forget_worker('"1e5"') is True  # a JSON string is unquoted


def test_faults_of_the_calls(daemon):
    import xmlrpc.client

    from sio.sioworkersd.rpc import RPCServer

    server = RPCServer(("127.0.0.1", 0), daemon)
    try:
        for method, params, code, text in [
                ("forget_worker", [], 8002, "wrong arguments"),
                ("get_workers", [1], 8002, "wrong arguments"),
                ("get_queue", [1], 8002, "wrong arguments"),
                ("run_group", ['"5"'], 8002, "must be an object"),
                ("system.listMethods", [], 8001, "procedure system.listMethods not found")]:
            with pytest.raises(xmlrpc.client.Fault) as e:
                server._dispatch(method, params)
            assert (e.value.faultCode, text in e.value.faultString) == (code, True), method
        assert isinstance(server._dispatch("get_queue", []), str)
    finally:
        server.server_close()


def test_a_post_succeeds_only_with_200_and_has_a_time_out():
    import socket
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    from sio.sioworkersd.returning import ReturnError, post

    statuses = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers["Content-Length"]))
            status = statuses.pop(0)
            self.send_response(status)
            if status == 302:
                self.send_header("Location", "/elsewhere")
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"OK")

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/path?q=1"
    try:
        for status in (201, 204, 302, 404, 500):
            statuses.append(status)
            with pytest.raises(ReturnError, match=str(status)):
                post(url, {"a": 1})
        statuses.append(200)
        post(url, {"a": 1})
    finally:
        server.shutdown()
        server.server_close()
    silent = socket.create_server(("127.0.0.1", 0))  # accepts, never answers
    try:
        with pytest.raises(ReturnError, match="timed out"):
            post(f"http://127.0.0.1:{silent.getsockname()[1]}/", {"a": 1}, timeout=0.2)
    finally:
        silent.close()


def test_only_top_level_arguments_are_decoded_and_nested_keys_are_echoed(daemon):
    from sio.sioworkersd.rpc import API

    nested = {"s": '{"a": 1}', "deep": [{"x": None, "y": "[1]"}], "z": "null"}
    ans = API(daemon).sync_run_group(json.dumps({
        "workers_jobs": {}, "n": nested, "workers_jobs.extra_args": {"k": "5"}}))
    assert ans["n"] == nested and ans["workers_jobs.extra_args"] == {"k": "5"}


# -- get_group's since (an extension for batches) ---------------------------------------

def _ended(daemon, gid, since):
    return sorted(daemon.group_status(gid, True, since)["results"])


def test_get_group_since_gives_only_the_results_after_the_cursor(tmp_path):
    from sio.sioworkersd.daemon import Daemon, Settings
    from sio.sioworkersd.rpc import RPCServer
    from sio.sioworkersd.store import open_store

    path = str(tmp_path / "s.sqlite3")
    first = Daemon(open_store(path), RecordingTransport(), Settings())
    jobs = {name: {"job_type": "ping"} for name in "abc"}
    gid = first.submit({"group_id": "GROUP_since", "workers_jobs": jobs}, "keep").id
    first.on_poll({"w": {**WORKER, "concurrency": 3}})
    names = first.groups[gid].names  # task_id -> job name
    cids = {names[cid.split("#")[0]]: cid for cid, _ in first.transport.sent}
    status = first.group_status(gid, True, 0)
    assert (status["cursor"], status["results"]) == (0, {})
    first.on_result(cids["b"], "SUCCESS", {"pong": "b"}, None)
    status = first.group_status(gid, True, 0)
    assert (status["cursor"], status["results"]) == (1, {"b": {"pong": "b"}})
    first.on_result(cids["a"], "FAILURE", {"exc_type": "E", "exc_message": ["x"]}, "tb")
    status = first.group_status(gid, True, 1)
    assert status["cursor"] == 2 and list(status["results"]) == ["a"]
    assert status["results"]["a"]["error"]["message"] == "E: x"
    assert _ended(first, gid, 2) == []
    assert _ended(first, gid, None) == ["a", "b"]  # no since: every result, as before
    first.store.close()  # a crash: the cursors of stored results survive it
    second = Daemon(open_store(path), RecordingTransport(), Settings())
    second.restore()
    assert second.group_status(gid, False)["cursor"] == 2
    assert _ended(second, gid, 1) == ["a"]
    second.on_poll({"w": WORKER})
    (cid, _), = second.transport.sent
    second.on_result(cid, "SUCCESS", {"pong": "c"}, None)
    # Done: the order is still known from the store.
    status = second.group_status(gid, True, 2)
    assert (status["state"], status["cursor"], list(status["results"])) == ("done", 3, ["c"])
    assert _ended(second, gid, 1) == ["a", "c"]
    assert _ended(second, gid, 3) == [] and _ended(second, gid, 0) == ["a", "b", "c"]
    server = RPCServer(("127.0.0.1", 0), second)
    try:
        assert list(server._dispatch("get_group", [gid, True, 2])["results"]) == ["c"]
        for bad in (-1, "1", True):
            with pytest.raises(xmlrpc.client.Fault) as e:
                server._dispatch("get_group", [gid, True, bad])
            assert e.value.faultCode == 8002 and "since must be a cursor" in e.value.faultString
    finally:
        server.server_close()
    assert second.forget_group(gid) and second.store.jobs(gid) == []
    second.store.close()


def test_a_store_without_seq_gets_the_column(tmp_path):
    import sqlite3

    from sio.sioworkersd.store import open_store

    path = str(tmp_path / "old.sqlite3")
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE sioworkersd_jobs (task_id TEXT PRIMARY KEY, group_id TEXT NOT NULL, "
               "name TEXT NOT NULL, state TEXT NOT NULL, result TEXT, "
               "tries INTEGER NOT NULL DEFAULT 0)")
    db.execute("INSERT INTO sioworkersd_jobs VALUES ('t1', 'GROUP_1', 'a', 'done', '{}', 0)")
    db.commit()
    db.close()
    store = open_store(path)
    (j,) = store.jobs("GROUP_1")
    assert (j.name, j.result, j.seq) == ("a", {}, None)
    store.job_done("t1", "done", {"pong": 1}, 1)
    assert store.jobs("GROUP_1")[0].seq == 1 and store.ended_since("GROUP_1", 0) == ["a"]
    store.close()
