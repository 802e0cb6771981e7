"""sio-batch (runner.main) in-process: framing, inputs, exit codes."""

from __future__ import annotations

import io
import json
import os

import pytest

from sio.workers import runner

BEGIN, END = "--- BEGIN ENVIRON ---", "--- END ENVIRON ---"

JOBS = """
def crash(environ):
    environ['partial'] = True
    raise ValueError('broken job')

def binary(environ):
    environ['out'] = b'\\xc5\\xbc\\xff'
    environ['tup'] = (1, 2)
    return environ

def tag(environ):
    environ.setdefault('tags', []).append('tag')
    return environ
"""


class FakeStdin(io.StringIO):
    def __init__(self, text="", tty=False):
        super().__init__(text)
        self._tty = tty

    def isatty(self):
        return self._tty


@pytest.fixture
def batch(monkeypatch, capsys):
    monkeypatch.delenv("environ", raising=False)
    monkeypatch.delenv("prefilters", raising=False)
    monkeypatch.delenv("postfilters", raising=False)
    monkeypatch.setattr("sys.stdin", FakeStdin(tty=True))

    def call(*argv, environ=None, stdin=None):
        if environ is not None:
            monkeypatch.setenv("environ", environ if isinstance(environ, str) else json.dumps(environ))
        if stdin is not None:
            monkeypatch.setattr("sys.stdin", FakeStdin(stdin))
        code = runner.main(list(argv))
        out, err = capsys.readouterr()
        return code, out, err

    return call


def parse(out):
    lines = out.splitlines()
    assert lines[0] == BEGIN and lines[2] == END and len(lines) == 3
    return json.loads(lines[1])


def test_exact_framing(batch, caplog):
    caplog.set_level("INFO")
    code, out, err = batch(environ={"job_type": "ping", "ping": "x"})
    assert code == 0
    assert out == f"{BEGIN}\n{out.splitlines()[1]}\n{END}\n"
    env = parse(out)
    assert env == {"job_type": "ping", "ping": "x", "pong": "x", "result": "SUCCESS",
                   "worker": os.uname().nodename}
    assert "starting job ping" in caplog.text and "finished job ping: SUCCESS" in caplog.text


def test_argument_overrides_job_type(batch):
    code, out, _ = batch("ping", environ={"ping": "x", "job_type": "other"})
    assert code == 0 and parse(out)["pong"] == "x"


def test_double_encoded_json(batch):
    code, out, _ = batch(environ=json.dumps(json.dumps({"job_type": "ping", "ping": 3})))
    assert code == 0 and parse(out)["pong"] == 3


def test_environ_from_stdin(batch):
    code, out, _ = batch(stdin='{"job_type": "ping", "ping": [1]}')
    assert code == 0 and parse(out)["pong"] == [1]


@pytest.mark.parametrize("args, kw, message", [
    ((), {}, "no environ given"),
    ((), {"environ": "{nope"}, "not valid JSON"),
    ((), {"environ": "[1, 2]"}, "JSON list, not an object"),
    ((), {"environ": "   "}, "is empty"),
    ((), {"stdin": ""}, "from standard input is empty"),
    ((), {"environ": {"ping": 1}}, "no 'job_type'"),
    (("pnig",), {"environ": {"ping": 1}}, "did you mean 'ping'"),
    (("ping", "extra"), {"environ": {"ping": 1}}, "unexpected arguments 'extra'"),
    (("--bogus",), {"environ": {"ping": 1}}, "unknown option '--bogus'"),
    ((), {"environ": {"job_type": "ping", "prefilters": ["nope"]}}, "sio.workers.filters"),
    ((), {"environ": {"job_type": "ping", "prefilters": "nope"}}, "must be a list"),
])
def test_usage_errors_are_one_line_and_exit_2(batch, args, kw, message):
    code, out, err = batch(*args, **kw)
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1 and err.startswith("sio-batch: error: ")
    assert message in err
    assert "Traceback" not in err


def test_help(batch):
    code, out, _ = batch("--help")
    assert code == 0 and "usage: sio-batch" in out and BEGIN in out


def test_job_exception_prints_failure_and_exits_1(batch, plugin):
    plugin({"sio.jobs": {"crash": "sio_batch_jobs:crash"}}, {"sio_batch_jobs": JOBS})
    code, out, err = batch(environ={"job_type": "crash", "keep": {"a": 1}})
    assert code == 1
    env = parse(out)
    assert env["result"] == "FAILURE"
    assert env["exception"] == "broken job"
    assert "ValueError: broken job" in env["traceback"]
    assert env["keep"] == {"a": 1} and env["partial"] is True


def test_debug_reraises(batch, plugin):
    plugin({"sio.jobs": {"crash": "sio_batch_jobs:crash"}}, {"sio_batch_jobs": JOBS})
    with pytest.raises(ValueError, match="broken job"):
        batch("--debug", environ={"job_type": "crash"})


def test_bytes_and_non_ascii_never_crash(batch, plugin):
    plugin({"sio.jobs": {"binary": "sio_batch_jobs:binary"}}, {"sio_batch_jobs": JOBS})
    code, out, _ = batch(environ={"job_type": "binary", "name": "zażółć"})
    assert code == 0
    env = parse(out)
    assert env["out"] == "ż\ufffd" and env["tup"] == [1, 2] and env["name"] == "zażółć"


def test_filter_env_vars_are_appended(batch, plugin, monkeypatch):
    plugin({"sio.workers.filters": {"tag": "sio_batch_jobs:tag"}}, {"sio_batch_jobs": JOBS})
    monkeypatch.setenv("prefilters", "tag  tag")
    monkeypatch.setenv("postfilters", "tag")
    code, out, _ = batch(environ={"job_type": "ping", "ping": 1, "prefilters": ["tag"]})
    env = parse(out)
    assert code == 0
    assert env["prefilters"] == ["tag", "tag", "tag"] and env["postfilters"] == ["tag"]
    assert env["tags"] == ["tag"] * 4
