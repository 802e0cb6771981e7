"""SupervisedExecutor: the original's contract on top of the built-in
supervisor (the engine's own hostile corpus is in test_supervisor.py)."""

from __future__ import annotations

import os
import shutil

import pytest

from sio.workers.errors import UsageError
from sio.workers.executors import ExecError, ExecLimits, SupervisedExecutor
from sio.workers.file_runners import NoFileRunner, get_file_runner
from sio.workers.util import TemporaryCwd, tempcwd

pytestmark = pytest.mark.integration

RENV_KEYS = {"result_code", "result_string", "time_used", "mem_used", "num_syscalls",
             "return_code", "real_time_used", "real_time_killed"}


@pytest.fixture
def job_dir():
    with TemporaryCwd() as d:
        yield d


def run(command, **kw):
    kw.setdefault("ignore_errors", True)
    with SupervisedExecutor(allow_local_open=kw.pop("allow_local_open", False)) as ex:
        return ex(command, **kw)


def program_here(path: str) -> str:
    """A copy of a test program in the job directory, mode 0700 like the
    exec jobs save submissions."""
    dest = tempcwd(os.path.basename(path))
    shutil.copy(path, dest)
    os.chmod(dest, 0o700)
    return dest


def test_ok_run_and_renv(job_dir, c_program):
    renv = run([program_here(c_program("echo_streams")), "a b"], capture_output=True,
               time_limit=2000, mem_limit=65536)
    assert RENV_KEYS <= renv.keys()
    assert (renv["result_code"], renv["result_string"], renv["return_code"]) == ("OK", "ok", 0)
    assert renv["stdout"] == b"a b\n"
    assert 0 < renv["mem_used"] < 65536
    assert renv["num_syscalls"] > 0
    assert renv["real_time_killed"] is False


def test_stdin_and_stdout_files(job_dir, c_program):
    with open(tempcwd("in"), "wb") as f:
        f.write(b"hello\n")
    with open(tempcwd("in"), "rb") as stdin, open(tempcwd("out"), "ab") as stdout:
        renv = run([program_here(c_program("echo_streams"))], stdin=stdin, stdout=stdout)
    assert renv["result_code"] == "OK"
    assert open(tempcwd("out"), "rb").read() == b"hello\n"


@pytest.mark.parametrize("name, args, code, string", [
    ("sig_segv", [], "RE", "process exited due to signal 11"),
    ("sig_abort", [], "RE", "process exited due to signal 6"),
    ("exit_with", ["3"], "RE", "runtime error 3"),
    ("fork_child", [], "RV", "intercepted forbidden syscall"),
])
def test_verdicts(job_dir, c_program, name, args, code, string):
    renv = run([program_here(c_program(name)), *args])
    assert renv["result_code"] == code
    assert renv["result_string"].startswith(string)
    if name.startswith("sig_"):
        assert renv["exit_signal"] == int(string.rsplit(" ", 1)[1])
        assert renv["return_code"] == -1
    if name == "exit_with":
        assert renv["return_code"] == 3


def test_limits(job_dir, c_program):
    renv = run([program_here(c_program("busy_loop"))], time_limit=300)
    assert (renv["result_code"], renv["result_string"]) == ("TLE", "time limit exceeded")
    assert renv["time_used"] >= 300
    renv = run([program_here(c_program("sleep_forever"))], real_time_limit=500)
    assert (renv["result_code"], renv["result_string"]) == ("TLE", "real time limit exceeded")
    assert renv["real_time_killed"] is True
    renv = run([program_here(c_program("mem_30MiB_heap"))], mem_limit=20 * 1024)
    assert (renv["result_code"], renv["result_string"]) == ("MLE", "memory limit exceeded")
    renv = run([program_here(c_program("mem_30MiB_heap"))], mem_limit=40 * 1024)
    assert renv["result_code"] == "OK"
    assert 30 * 1024 <= renv["mem_used"] <= 40 * 1024
    renv = run([program_here(c_program("write_bytes")), "100000"], capture_output=True,
               output_limit=1000)
    assert (renv["result_code"], renv["result_string"]) == ("OLE", "output limit exceeded")
    with open(tempcwd("out"), "wb") as out:
        renv = run([program_here(c_program("write_bytes")), "100000"], stdout=out,
                   output_limit=1000)
    assert renv["result_code"] == "OLE"
    # RLIMIT_FSIZE is set one byte past the limit, so that the engine sees
    # after the run that the program tried to write more.
    assert os.path.getsize(tempcwd("out")) == 1001


def test_limits_from_environ_win(job_dir, c_program):
    renv = run([program_here(c_program("busy_loop"))], time_limit=60000,
               environ={"exec_time_limit": 200}, environ_prefix="exec_")
    assert renv["result_code"] == "TLE"


def test_default_and_derived_limits():
    ex = SupervisedExecutor()
    assert ex._real_time_limit_ms(ExecLimits(time_limit_ms=500)) == 64 * 500 + 1000
    assert ex._real_time_limit_ms(ExecLimits(time_limit_ms=500, real_time_limit_ms=700)) == 1700
    assert ex._real_time_limit_ms(ExecLimits(time_limit_ms=500, real_time_limit_ms=0)) is None
    assert ex._real_time_limit_ms(ExecLimits()) == 64 * 30000 + 1000


def test_raise_rule(job_dir, c_program):
    exe = program_here(c_program("exit_with"))
    with pytest.raises(ExecError, match="Reason: runtime error 3"):
        run([exe, "3"], ignore_errors=False)
    assert run([exe, "3"], ignore_errors=False, extra_ignore_errors=(3,))["result_code"] == "RE"
    assert run([exe, "3"], ignore_errors=False, ignore_return=True)["result_code"] == "OK"
    with pytest.raises(ExecError, match="intercepted forbidden syscall"):
        run([program_here(c_program("fork_child"))], ignore_errors=False,
            extra_ignore_errors=(0, 1, -1))


def test_local_open(job_dir, sup_programs):
    with open(tempcwd("data"), "w") as f:
        f.write("secret line\n")
    os.chmod(tempcwd("data"), 0o600)
    reader = program_here(sup_programs["hostile_open"])
    assert run([reader, "data"])["result_code"] == "RV"
    renv = run([reader, "data"], allow_local_open=True, capture_output=True)
    assert (renv["result_code"], renv["stdout"]) == ("OK", b"secret line\n")
    writer = program_here(sup_programs["hostile_write_file"])
    renv = run([writer, "data"], allow_local_open=True, capture_output=True)
    assert (renv["result_code"], renv["stdout"]) == ("RE", b"open failed\n")
    assert open(tempcwd("data")).read() == "secret line\n"


def test_fds_to_close_are_closed_once_the_program_runs(job_dir, c_program):
    # The program reads stdin to its end: it gets EOF only if this process's
    # copy of the write end is closed as soon as the program has started.
    r, w = os.pipe()
    renv = run([program_here(c_program("echo_streams"))], stdin=r, capture_output=True,
               real_time_limit=3000, fds_to_close=[r, w])
    assert renv["result_code"] == "OK"
    for fd in (r, w):
        with pytest.raises(OSError):
            os.fstat(fd)


def test_what_it_refuses(job_dir, c_program):
    with pytest.raises(UsageError, match="not a shell line"):
        run("echo hi")
    with pytest.raises(UsageError, match="pass_fds"):
        run([program_here(c_program("trivial"))], pass_fds=[0])


def test_file_runners(job_dir, c_program):
    ex = SupervisedExecutor()
    environ = {"exec_info": {"mode": "executable"}}
    with get_file_runner(ex, environ) as runner:
        exe = program_here(c_program("exit_with"))
        assert runner(os.path.basename(exe), ["0"], ignore_errors=True)["result_code"] == "OK"
    # a jar runs too, with the JVM's own runner (tests/integration/test_judge_java.py)
    assert type(get_file_runner(ex, {"exec_info": {"mode": "java"}})).__name__ == \
        "SupervisedJava"
    with pytest.raises(NoFileRunner, match="'dosbox'.*executable, java, python"):
        get_file_runner(ex, {"exec_info": {"mode": "dosbox"}})


def test_the_worker_environment_never_reaches_the_program(job_dir, sup_programs, monkeypatch):
    # What a deployment exports for the worker (a broker URL with its
    # password, the Filetracker URL) must not reach submissions.
    monkeypatch.setenv("FILETRACKER_URL", "http://secret-host:9999")
    monkeypatch.setenv("CELERY_BROKER_URL", "amqp://user:password@broker//")
    dump = program_here(sup_programs["hostile_env_dump"])
    renv = run([dump], capture_output=True)
    assert renv["result_code"] == "OK"
    seen = dict(line.split("=", 1) for line in renv["stdout"].decode().splitlines())
    assert seen == {"PATH": "/usr/local/bin:/usr/bin:/bin", "LC_ALL": "en_US.UTF-8",
                    "LANGUAGE": "en_US.UTF-8"}
    # What the caller passes explicitly is added, and only that.
    renv = run([dump], capture_output=True, env={"ONLINE_JUDGE": "1"})
    seen = dict(line.split("=", 1) for line in renv["stdout"].decode().splitlines())
    assert set(seen) == {"PATH", "LC_ALL", "LANGUAGE", "ONLINE_JUDGE"}
