"""The one table of executors of the judging jobs, and pure helpers of the
judging jobs (no processes)."""

from __future__ import annotations

import pytest

from sio.executors import common, selection
from sio.executors.interactive_common import InteractorError, _decide, _solution_renv
from sio.workers import executors
from sio.workers.executors import DetailedUnprotectedExecutor, UnprotectedExecutor


def test_every_job_type_has_an_executor():
    for role in ("exec", "cpu-exec", "unsafe-exec", "interactive-exec",
                 "cpu-interactive-exec", "unsafe-interactive-exec", "interactor", "checker",
                 "untrusted-checker", "inwer", "sandboxed-inwer", "ingen", "sandboxed-ingen",
                 "sio2jail-exec", "sio2jail-interactive-exec"):
        assert role in selection.EXECUTORS


def test_unsafe_roles_are_unprotected():
    assert type(selection.executor_for("unsafe-exec")) is DetailedUnprotectedExecutor
    assert type(selection.executor_for("checker")) is UnprotectedExecutor
    assert type(selection.executor_for("ingen")) is UnprotectedExecutor


@pytest.mark.parametrize("role", ["exec", "cpu-exec", "interactive-exec", "untrusted-checker",
                                  "sandboxed-inwer"])
def test_supervised_roles_never_fall_back_to_unprotected(role, monkeypatch):
    monkeypatch.delattr(executors, "SupervisedExecutor", raising=False)
    with pytest.raises(selection.ExecutorUnavailable,
                       match="the supervised executor is not available"):
        selection.executor_for(role)


@pytest.mark.parametrize("available", [False, True])
def test_instruction_counted_roles_always_refuse(available, monkeypatch):
    # Whether or not the machine has the counter, nothing counts instructions
    # yet: never CPU time under the sio2jail name.
    from sio.workers._engine import perf

    probe = perf.CounterProbe("hardware counter of instructions", available,
                              "" if available else "the CPU does not provide it")
    monkeypatch.setattr(perf, "instruction_counter", lambda: probe)
    with pytest.raises(selection.InstructionCountingUnavailable) as info:
        selection.executor_for("sio2jail-exec")
    message = str(info.value)
    if available:
        assert "this machine has the hardware counter of instructions, but sioworkers' " \
            "supervisor does not count instructions yet" in message
    else:
        assert "this machine does not have it: the CPU does not provide it" in message
    assert "Use job type 'exec' or 'cpu-exec' instead" in message


def test_output_only_detection():
    assert common.is_output_only({"exec_info": {"mode": "output-only"}})
    assert not common.is_output_only({"exec_info": {"mode": "executable"}})
    assert not common.is_output_only({})


def test_program_args_skip_empty_strings():
    assert common.program_args({"extra_execution_args": ["", "--fast"]}) == ["--fast"]
    assert common.program_args({}) == []


OK = {"result_code": "OK", "time_used": 10, "mem_used": 5}


def test_interactive_decision_rules():
    env = {"interactor_file": "soc", "in_file": "in"}
    assert _decide(env, OK, OK, [b"OK", b"fine", b"50"]) == ("OK", "fine", [50, 1])
    assert _decide(env, OK, OK, [b"WRONG", b"", b""]) == ("WA", "", [0, 1])
    died = {"result_code": "RE", "exit_signal": 11, "result_string": "signal 11"}
    with pytest.raises(InteractorError):  # rule 2: the interactor crashed
        _decide(env, OK, died, [b"", b"", b""])
    tle = {"result_code": "TLE", "result_string": "time limit exceeded"}
    assert _decide(env, tle, OK, [b"", b"", b""])[:2] == ("TLE", "time limit exceeded")
    sigpipe = {"result_code": "RE", "exit_signal": 13}
    assert _decide(env, OK, sigpipe, [b"", b"", b""])[:2] == \
        ("WA", "solution exited prematurely")
    killed = {"result_code": "TLE", "real_time_killed": True}
    assert _decide(env, sigpipe, killed, [b"", b"", b""])[0] == "TLE"
    with pytest.raises(InteractorError, match="Unexpected"):
        _decide(env, OK, OK, [b"", b"", b""])
    with pytest.raises(InteractorError, match="Invalid checker output"):
        _decide(env, OK, OK, [b"OK", b"", b"abc"])


def test_solution_renv_is_first_failure_or_maximum():
    assert _solution_renv([OK, {"result_code": "RE"}, {"result_code": "TLE"}]) == \
        {"result_code": "RE"}
    merged = _solution_renv([OK, {"result_code": "OK", "time_used": 30, "mem_used": 1}])
    assert (merged["time_used"], merged["mem_used"]) == (30, 5)


def test_judging_jobs_guard_sleeping_programs_at_twice_the_time_limit():
    from sio.workers.executors import ExecLimits, SupervisedExecutor

    executor = selection.executor_for("exec")
    assert executor._real_time_limit_ms(ExecLimits(time_limit_ms=10000)) == 21000
    assert executor._real_time_limit_ms(ExecLimits(time_limit_ms=10000,
                                                   real_time_limit_ms=5000)) == 6000
    # the executor's own default stays the original's 64 x
    assert SupervisedExecutor()._real_time_limit_ms(ExecLimits(time_limit_ms=10000)) == 641000
