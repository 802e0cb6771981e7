from __future__ import annotations

import os
import sys
import types

import pytest

from sio.workers import Failure, runner
from sio.workers.errors import EntryPointNotFound, MissingEnvironKey

JOBS = """
import os
from sio.workers import Failure
from sio.workers.util import tempcwd

def record(environ):
    environ.setdefault('trace', []).append('job')
    environ['job_dir'] = tempcwd()
    environ['job_dir_existed'] = os.path.isdir(tempcwd())
    open(tempcwd('scratch'), 'w').close()
    return environ

def fail(environ):
    environ.setdefault('trace', []).append('job')
    raise Failure('the job gave up')

def crash(environ):
    raise ZeroDivisionError('crash')

def new_dict(environ):
    return {'fresh': True}

def not_a_dict(environ):
    return None

def pre(environ):
    environ.setdefault('trace', []).append('pre')
    return environ

def post(environ):
    environ.setdefault('trace', []).append('post:' + environ.get('result', '-'))
    return environ

def post_fail(environ):
    environ.setdefault('trace', []).append('post_fail')
    raise Failure('postfilter failed')
"""


@pytest.fixture
def jobs(plugin):
    plugin({"sio.jobs": {n: f"sio_test_jobs:{n}" for n in
                         ("record", "fail", "crash", "new_dict", "not_a_dict")},
            "sio.workers.filters": {n: f"sio_test_jobs:{n}" for n in ("pre", "post", "post_fail")}},
           {"sio_test_jobs": JOBS})


def test_ping():
    env = runner.run({"job_type": "ping", "ping": "e1"})
    assert env["pong"] == "e1"
    assert env["result"] == "SUCCESS"
    assert env["worker"] == os.uname().nodename


def test_ping_without_ping_key_names_it():
    with pytest.raises(MissingEnvironKey, match="'ping'"):
        runner.run({"job_type": "ping"})


def test_unknown_keys_survive_untouched():
    nested = {"a": [1, {"b": [None, 2.5, "ż"]}], "c": {}}
    env = runner.run({"job_type": "ping", "ping": 1, "extra": nested, "contest": "c1"})
    assert env["extra"] == {"a": [1, {"b": [None, 2.5, "ż"]}], "c": {}}
    assert env["contest"] == "c1"


def test_job_runs_in_fresh_temp_dir_removed_after(jobs):
    cwd = os.getcwd()
    env = runner.run({"job_type": "record"})
    assert env["job_dir_existed"]
    assert not os.path.exists(env["job_dir"])
    assert os.getcwd() == cwd
    env2 = runner.run({"job_type": "record"})
    assert env2["job_dir"] != env["job_dir"]


def test_filters_order_and_result(jobs):
    env = runner.run({"job_type": "record", "prefilters": ["pre"], "postfilters": ["post"]})
    assert env["trace"] == ["pre", "job", "post:SUCCESS"]
    assert env["result"] == "SUCCESS"


def test_failure_sets_result_and_postfilters_still_run(jobs):
    env = runner.run({"job_type": "fail", "postfilters": ["post"], "keep": 1})
    assert env["result"] == "FAILURE"
    assert env["exception"] == "the job gave up"
    assert "Failure: the job gave up" in env["traceback"]
    assert env["trace"] == ["job", "post:FAILURE"]
    assert env["keep"] == 1


def test_failure_in_postfilter_after_failure_is_swallowed(jobs):
    env = runner.run({"job_type": "fail", "postfilters": ["post_fail"]})
    assert env["result"] == "FAILURE"
    assert env["exception"] == "the job gave up"
    assert env["trace"] == ["job", "post_fail"]


def test_failure_in_postfilter_after_success_is_a_failure(jobs):
    env = runner.run({"job_type": "record", "postfilters": ["post_fail"]})
    assert env["result"] == "FAILURE"
    assert env["exception"] == "postfilter failed"


def test_other_exceptions_propagate(jobs):
    with pytest.raises(ZeroDivisionError):
        runner.run({"job_type": "crash"})


def test_job_return_value_replaces_environ(jobs):
    env = runner.run({"job_type": "new_dict", "old": 1})
    assert env == {"fresh": True, "result": "SUCCESS"}


def test_job_returning_non_dict_is_an_error(jobs):
    with pytest.raises(TypeError, match="job 'not_a_dict' returned NoneType"):
        runner.run({"job_type": "not_a_dict"})


def test_unknown_job_type():
    with pytest.raises(EntryPointNotFound, match="did you mean 'ping'"):
        runner.run({"job_type": "pong"})


def test_missing_job_type():
    with pytest.raises(MissingEnvironKey, match="job_type"):
        runner.run({})


def test_unknown_filter(jobs):
    with pytest.raises(EntryPointNotFound, match="sio.workers.filters"):
        runner.run({"job_type": "record", "prefilters": ["nope"]})


def test_filetracker_url_initialises_a_client_for_the_job(monkeypatch):
    calls = []
    fake = types.ModuleType("sio.workers.ft")
    fake.init_instance = calls.append
    monkeypatch.setitem(sys.modules, "sio.workers.ft", fake)
    import sio.workers

    monkeypatch.setattr(sio.workers, "ft", fake, raising=False)
    runner.run({"job_type": "ping", "ping": 1, "filetracker_url": "http://127.0.0.1:1/"})
    runner.run({"job_type": "ping", "ping": 1, "filetracker_url": ""})
    assert calls == ["http://127.0.0.1:1/"]


def test_failure_is_importable_from_package():
    from sio.workers.errors import SioWorkersError

    assert issubclass(Failure, SioWorkersError)
