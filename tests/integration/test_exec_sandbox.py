"""The original exec-sandbox supervisor binary, driven by
:class:`~sio.workers.executors.ExecSandboxSupervisedExecutor` and chosen by
the jobs with ``SIO_SUPERVISOR=exec-sandbox``.

The real binary cannot be had here, so each test installs (from a real HTTP
server, through the usual sandbox lookup) an ``exec-sandbox`` whose
``bin/supervisor`` is ``tests/sources/fake_exec_sandbox_supervisor.py``: it
speaks the same protocol (options, limits in the environment, the two-line
report on the ``-f`` descriptor) and runs the program under rlimits.
"""

from __future__ import annotations

import json
import os
import sys

import pytest

from sio.executors.selection import ExecutorUnavailable
from sio.workers import runner
from sio.workers.executors import ExecError, ExecSandboxSupervisedExecutor
from sio.workers.sandbox import SandboxError
from sio.workers.util import TemporaryCwd
from tests.sandbox_support import sandbox_archive
from tests.support import SOURCES

pytestmark = pytest.mark.integration

FAKE = (SOURCES / "fake_exec_sandbox_supervisor.py").read_text()


def fake_exec_sandbox(supervisor: str | None = None) -> bytes:
    script = supervisor if supervisor is not None else f"#!{sys.executable} -IS\n{FAKE}"
    return sandbox_archive("exec-sandbox", {"bin/supervisor": script})


@pytest.fixture
def exec_sandbox(archive_server, tmp_path, monkeypatch):
    """The fake exec-sandbox is served; the supervisor logs each call to a
    file. Yields a function returning the logged calls."""
    archive_server.put("exec-sandbox", fake_exec_sandbox())
    log = tmp_path / "supervisor.log"
    monkeypatch.setenv("FAKE_SUPERVISOR_LOG", str(log))
    for key in ("FAKE_SUPERVISOR_REPORT", "FAKE_SUPERVISOR_EXIT", "FAKE_SUPERVISOR_HANG",
                "HARD_LIMIT", "SIO_SUPERVISOR"):
        monkeypatch.delenv(key, raising=False)

    def calls():
        return [json.loads(line) for line in log.read_text().splitlines()] \
            if log.exists() else []

    return calls


@pytest.fixture
def run(exec_sandbox):
    """``run(command, executor=None, **options)`` in a fresh job directory;
    ignore_errors by default."""
    def call(command, executor=None, **options):
        options.setdefault("ignore_errors", True)
        with TemporaryCwd() as cwd, (executor or ExecSandboxSupervisedExecutor()) as ex:
            renv = ex(command, **options)
            leftovers = [n for n in os.listdir(cwd) if n.startswith(".supervisor-report")]
            assert leftovers == []  # the report file never stays behind
            return renv

    return call


def test_ok_run_reports_the_supervisors_figures(run, c_program, exec_sandbox):
    renv = run([c_program("exit_with"), "0"], time_limit=2000)
    assert renv["result_code"] == "OK"
    assert renv["result_string"] == "ok"
    assert renv["return_code"] == 0
    assert renv["supervisor_return_code"] == 0
    assert renv["mem_used"] > 0  # the fake reports ru_maxrss
    assert renv["num_syscalls"] == 0
    assert "exit_signal" not in renv
    (call,) = exec_sandbox()
    assert call["options"][:2] == ["-q", "-f"] and "-l" not in call["options"]
    assert "-R" not in call["options"]
    assert call["program"] == [c_program("exit_with"), "0"]


def test_captured_output_passes_through_the_supervisor(run):
    renv = run(["/bin/echo", "hello"], capture_output=True)
    assert renv["result_code"] == "OK"
    assert renv["stdout"] == b"hello\n"


def test_limits_go_to_the_environment(run, c_program, exec_sandbox):
    run([c_program("exit_with")], time_limit=1500, mem_limit=32768, output_limit=1000)
    run([c_program("exit_with")], time_limit=1500, real_time_limit=4200)
    run([c_program("exit_with")])
    run([c_program("exit_with")], real_time_limit=0)
    limits = [c["limits"] for c in exec_sandbox()]
    # real time: 64 x 1500 + 1000 ms -> 97 s; 4200 + 1000 ms -> 6 s (up)
    assert limits[0] == {"TIME_LIMIT": "1500", "MEM_LIMIT": "32768", "OUT_LIMIT": "1000",
                         "HARD_LIMIT": "97"}
    assert limits[1]["HARD_LIMIT"] == "6"
    # defaults: 30000 ms, 65536 KiB, 50 MiB, 64 x 30 s + 1 s
    assert limits[2] == {"TIME_LIMIT": "30000", "MEM_LIMIT": "65536",
                         "OUT_LIMIT": "52428800", "HARD_LIMIT": "1921"}
    assert limits[3]["HARD_LIMIT"] is None  # explicitly no wall-time limit


def test_limits_from_the_environ_with_a_prefix(run, c_program, exec_sandbox):
    environ = {"exec_time_limit": 700, "exec_mem_limit": 131072}
    run([c_program("exit_with")], environ=environ, environ_prefix="exec_",
        executor=ExecSandboxSupervisedExecutor(real_time_limit_multiplier=2))
    (call,) = exec_sandbox()
    assert call["limits"]["TIME_LIMIT"] == "700"
    assert call["limits"]["MEM_LIMIT"] == "131072"
    assert call["limits"]["HARD_LIMIT"] == "3"  # 2 x 700 + 1000 ms


def test_local_open_and_ignore_return_become_options(run, c_program, exec_sandbox):
    renv = run([c_program("exit_with"), "3"], ignore_return=True,
               executor=ExecSandboxSupervisedExecutor(allow_local_open=True))
    assert renv["result_code"] == "OK"
    options = exec_sandbox()[0]["options"]
    assert "-l" in options and "-R" in options


def test_runtime_error_by_signal(run, c_program):
    renv = run([c_program("sig_segv")])
    assert renv["result_code"] == "RE"
    assert renv["result_string"] == "process exited due to signal 11"
    assert renv["exit_signal"] == 11
    assert renv["return_code"] == -1


def test_runtime_error_by_exit_status(run, c_program):
    renv = run([c_program("exit_with"), "3"])
    assert renv["result_code"] == "RE"
    assert renv["result_string"] == "runtime error 3"
    assert renv["return_code"] == 3


def test_a_real_time_limit_exceeded_as_the_supervisor_reports_it(run):
    renv = run(["/bin/sleep", "30"], real_time_limit=500)  # HARD_LIMIT 2 s
    assert renv["result_code"] == "TLE"
    assert renv["result_string"] == "real time limit exceeded"
    assert renv["real_time_killed"] is False  # the supervisor stopped it, not the guard


def test_time_limit_exceeded(run, c_program):
    renv = run([c_program("busy_loop")], time_limit=100)
    assert renv["result_code"] == "TLE"
    assert renv["time_used"] > 100


def test_output_limit_exceeded(run, c_program, tmp_path):
    with open(tmp_path / "out", "wb") as out:
        renv = run([c_program("hostile_output_flood")], stdout=out, output_limit=10000,
                   time_limit=5000)
    assert renv["result_code"] == "OLE"
    assert (tmp_path / "out").stat().st_size <= 10000


@pytest.mark.parametrize("code, verdict", [(120, "OLE"), (121, "RV"), (124, "MLE"),
                                           (125, "TLE"), (100, "RE"), (0, "OK")])
def test_codes_of_the_report(run, monkeypatch, code, verdict):
    monkeypatch.setenv("FAKE_SUPERVISOR_REPORT",
                       f"__RESULT__ {code} 123 0 4567 89\nwhat the supervisor said\n")
    renv = run(["/bin/true"])
    assert renv["result_code"] == verdict
    assert renv["result_string"] == "what the supervisor said"
    assert (renv["time_used"], renv["mem_used"], renv["num_syscalls"]) == (123, 4567, 89)
    assert renv["return_code"] == (0 if verdict == "OK" else -1)


def test_a_verdict_other_than_ok_raises_unless_ignored(run, c_program):
    with pytest.raises(ExecError, match="runtime error 3"):
        run([c_program("exit_with"), "3"], ignore_errors=False)
    # RE with an exit status the caller expects is not an error
    renv = run([c_program("exit_with"), "3"], ignore_errors=False, extra_ignore_errors=(3,))
    assert renv["result_code"] == "RE"


@pytest.mark.parametrize("report, why", [
    ("", "wrote no report"),
    ("__RESULT__ 0 12\nok\n", "fewer than six words"),
    ("__RESULT__ zero 1 0 2 3\nok\n", "where a number should be"),
    ("__RESULT__ 0 1 0 2 3", "no result string"),
])
def test_a_missing_or_garbled_report_is_a_system_error(run, monkeypatch, report, why):
    monkeypatch.setenv("FAKE_SUPERVISOR_REPORT", report)
    renv = run(["/bin/true"])
    assert renv["result_code"] == "SE"
    assert why in renv["result_string"]
    assert (renv["time_used"], renv["mem_used"], renv["num_syscalls"]) == (0, 0, 0)
    assert renv["return_code"] == -1


def test_a_supervisor_failing_is_a_system_error(run, monkeypatch):
    monkeypatch.setenv("FAKE_SUPERVISOR_REPORT", "__RESULT__ 0 1 0 2 3\nok\n")
    monkeypatch.setenv("FAKE_SUPERVISOR_EXIT", "3")
    renv = run(["/bin/true"])
    assert renv["result_code"] == "SE"
    assert renv["result_string"] == "Supervisor returned code 3"
    assert renv["supervisor_return_code"] == 3
    with pytest.raises(ExecError, match="Supervisor returned code 3"):
        run(["/bin/true"], ignore_errors=False)
    # ... unless the caller accepts that status of the supervisor
    assert run(["/bin/true"], extra_ignore_errors=(3,))["result_code"] == "OK"


def test_a_hanging_supervisor_is_killed_by_the_outer_guard(run, monkeypatch):
    monkeypatch.setenv("FAKE_SUPERVISOR_HANG", "1")
    renv = run(["/bin/true"], real_time_limit=500)  # HARD_LIMIT 2 s, guard 4 s
    assert renv["result_code"] == "SE"
    assert renv["result_string"] == "Supervisor exceeded realtime limit"
    assert renv["real_time_killed"] is True
    assert 3500 <= renv["real_time_used"] < 30000


def test_a_shell_line_is_refused(run):
    from sio.workers.errors import UsageError

    with pytest.raises(UsageError, match="not a shell line"):
        run("echo hi")


def test_no_sandbox_is_a_clear_sandbox_error(sandbox_env):
    with TemporaryCwd(), pytest.raises(SandboxError, match="needs sandbox 'exec-sandbox'"):
        with ExecSandboxSupervisedExecutor():
            pass


def test_a_sandbox_without_the_supervisor_is_a_clear_sandbox_error(archive_server):
    archive_server.put("exec-sandbox", sandbox_archive("exec-sandbox", {"bin/compare": "x"}))
    with TemporaryCwd(), pytest.raises(SandboxError, match="no executable bin/supervisor"):
        with ExecSandboxSupervisedExecutor():
            pass


# --------------------------------------------------------------------------
# The exec job with SIO_SUPERVISOR=exec-sandbox
# --------------------------------------------------------------------------

def exec_job(tmp_path, exe, **keys):
    (tmp_path / "in").write_text("2 3\n")
    (tmp_path / "hint").write_text("5\n")
    return {"job_type": "exec", "use_filetracker": False, "exe_file": exe,
            "in_file": str(tmp_path / "in"), "hint_file": str(tmp_path / "hint"),
            "out_file": str(tmp_path / "out"), "exec_time_limit": 2000,
            "exec_mem_limit": 262144, "check_output": True, **keys}


def test_exec_job_under_the_exec_sandbox_supervisor(exec_sandbox, monkeypatch, tmp_path,
                                                     c_program):
    monkeypatch.setenv("SIO_SUPERVISOR", "exec-sandbox")
    result = runner.run(exec_job(tmp_path, c_program("judge_sum")))
    assert result["result"] == "SUCCESS", result.get("traceback")
    assert result["result_code"] == "OK"
    assert (tmp_path / "out").read_text() == "5\n"
    (call,) = exec_sandbox()
    assert call["program"] == ["./exe"]
    # the judging jobs' real-time guard: 2 x 2000 + 1000 ms
    assert call["limits"] == {"TIME_LIMIT": "2000", "MEM_LIMIT": "262144",
                              "OUT_LIMIT": "52428800", "HARD_LIMIT": "5"}

    result = runner.run(exec_job(tmp_path, c_program("sig_segv")))
    assert result["result_code"] == "RE"
    assert result["result_string"] == "process exited due to signal 11"


def test_exec_job_without_the_exec_sandbox_fails_clearly(sandbox_env, monkeypatch, tmp_path,
                                                         c_program):
    monkeypatch.setenv("SIO_SUPERVISOR", "exec-sandbox")
    # never the built-in supervisor instead: the operator asked for this one
    with pytest.raises(SandboxError, match="needs sandbox 'exec-sandbox'"):
        runner.run(exec_job(tmp_path, c_program("judge_sum")))


def test_an_unknown_supervisor_setting_fails_clearly(monkeypatch, tmp_path, c_program):
    monkeypatch.setenv("SIO_SUPERVISOR", "ptrace-magic")
    with pytest.raises(ExecutorUnavailable, match="SIO_SUPERVISOR='ptrace-magic'"):
        runner.run(exec_job(tmp_path, c_program("judge_sum")))
