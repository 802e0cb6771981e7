"""The exec-sandbox supervisor protocol without running anything: the
report parser, the limits given to the binary, and the worker setting that
chooses it."""

from __future__ import annotations

import pytest

from sio.executors import selection
from sio.workers.executors import (
    ExecLimits,
    ExecRequest,
    ExecSandboxSupervisedExecutor,
    SupervisedExecutor,
    SupervisorReportError,
    parse_supervisor_report,
)
from sio.workers.file_runners import file_runner_modes


@pytest.mark.parametrize("code, verdict, return_code", [
    (0, "OK", 0), (120, "OLE", -1), (121, "RV", -1), (124, "MLE", -1), (125, "TLE", -1),
    (100, "RE", -1), (11, "RE", -1), (203, "RE", 3), (201, "RE", 1),
])
def test_codes(code, verdict, return_code):
    report = parse_supervisor_report(f"__RESULT__ {code} 10 0 20 30\nsomething\n".encode())
    assert report.result_code == verdict
    assert report.return_code == return_code


def test_fields_of_a_report():
    report = parse_supervisor_report(b"TAG 0 1234 999 5678 42\nok\n")
    assert (report.code, report.time_used_ms, report.mem_used_kib, report.num_syscalls) == \
        (0, 1234, 5678, 42)
    assert report.result_string == "ok"
    assert report.exit_signal is None


def test_exit_signal_from_the_result_string():
    report = parse_supervisor_report(b"__RESULT__ 11 5 0 100 3\n"
                                     b"process exited due to signal 11\n")
    assert report.result_code == "RE"
    assert report.exit_signal == 11
    odd = parse_supervisor_report(b"__RESULT__ 11 5 0 100 3\nprocess exited due to signal x\n")
    assert odd.exit_signal is None


def test_result_string_is_utf8_and_may_be_empty():
    assert parse_supervisor_report("x 0 1 0 2 3\nzażółć\r\n".encode()).result_string == \
        "zażółć"
    assert parse_supervisor_report(b"x 0 1 0 2 3\n").result_string == ""


@pytest.mark.parametrize("data, why", [
    (b"", "wrote no report"),
    (b"  \n", "wrote no report"),
    (b"__RESULT__ 0 1 0 2 3", "no result string"),
    (b"__RESULT__ 0 1 0 2\nok\n", "fewer than six words"),
    (b"__RESULT__ 0 -1 0 2 3\nok\n", "'-1' where a number"),
    (b"__RESULT__ 0 1.5 0 2 3\nok\n", "'1.5' where a number"),
    (b"__RESULT__ \xd9\xa1 1 0 2 3\nok\n", "where a number"),  # an Arabic-Indic digit
    (b"__RESULT__ 0 1 0 2 3\n\xff\n", "not UTF-8"),
])
def test_garbled_reports(data, why):
    with pytest.raises(SupervisorReportError, match=why):
        parse_supervisor_report(data)


def request(**limits):
    return ExecRequest(command=["./exe"], env={"PATH": "/bin", "HARD_LIMIT": "999"}, cwd="/",
                       limits=ExecLimits(**limits))


def test_limits_for_the_binary(sandbox_env):
    executor = ExecSandboxSupervisedExecutor()
    env = executor._supervisor_env(request(time_limit_ms=1000))
    assert (env["TIME_LIMIT"], env["MEM_LIMIT"], env["OUT_LIMIT"], env["HARD_LIMIT"]) == \
        ("1000", "65536", "52428800", "65")  # 64 x 1 s + 1 s
    assert env["PATH"] == "/bin"
    # 0 is the default (the binary cannot say "no limit"), as in the original
    env = executor._supervisor_env(request(time_limit_ms=0, mem_limit_kib=0,
                                           output_limit_bytes=0, real_time_limit_ms=2500))
    assert (env["TIME_LIMIT"], env["MEM_LIMIT"], env["OUT_LIMIT"], env["HARD_LIMIT"]) == \
        ("30000", "65536", "52428800", "4")  # 2.5 s + 1 s, rounded up
    # no wall-time limit: none passed, not even the worker's own HARD_LIMIT
    assert "HARD_LIMIT" not in executor._supervisor_env(request(real_time_limit_ms=0))


def test_only_native_programs_run_under_the_binary():
    assert file_runner_modes(ExecSandboxSupervisedExecutor) == ["executable"]


def test_supervisor_setting(sandbox_env, monkeypatch):
    monkeypatch.delenv("SIO_SUPERVISOR", raising=False)
    assert type(selection.executor_for("exec")) is SupervisedExecutor
    monkeypatch.setenv("SIO_SUPERVISOR", "builtin")
    assert type(selection.executor_for("cpu-exec")) is SupervisedExecutor
    monkeypatch.setenv("SIO_SUPERVISOR", "exec-sandbox")
    for role in ("exec", "cpu-exec", "interactive-exec", "cpu-interactive-exec",
                 "untrusted-checker", "sandboxed-inwer"):
        executor = selection.executor_for(role)
        assert type(executor) is ExecSandboxSupervisedExecutor
        assert executor.allow_local_open == (role == "untrusted-checker")
        assert executor.REAL_TIME_LIMIT_MULTIPLIER == selection.JUDGING_REAL_TIME_MULTIPLIER
    # the trusted roles are not affected
    assert type(selection.executor_for("unsafe-exec")).__name__ == "DetailedUnprotectedExecutor"
    monkeypatch.setenv("SIO_SUPERVISOR", "sio2jail")
    with pytest.raises(selection.ExecutorUnavailable,
                       match="SIO_SUPERVISOR='sio2jail'.*'builtin' or 'exec-sandbox'"):
        selection.executor_for("exec")
