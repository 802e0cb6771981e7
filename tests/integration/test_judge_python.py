"""Python submissions end to end under the supervisor (``exec`` and
``cpu-exec``): compiled with ``system-python``, run by the supervised
Python runner, with the same guarantees as a C program (issue 13 item 6)."""

from __future__ import annotations

import pytest

from tests.integration.test_judge_exec import run_job
from tests.integration.test_judge_pipeline import compile_submission

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def python_program(ft_store):
    compiled = compile_submission(ft_store, "python_behave.py", "py", "system-python")
    assert compiled["result_code"] == "OK", compiled.get("compiler_output")
    return compiled


def judge(ft_store, compiled, job_type, *args, **keys):
    env = {"job_type": job_type, "filetracker_url": ft_store.url,
           "exe_file": compiled["out_file"], "exec_info": compiled["exec_info"],
           "in_file": ft_store.put("1a.in", "40 2\n"), "hint_file": ft_store.put("1a.out", "42\n"),
           "exec_time_limit": 2000, "exec_mem_limit": 65536, "check_output": True,
           "extra_execution_args": list(args), **keys}
    return run_job(env)


@pytest.mark.parametrize("job_type", ["exec", "cpu-exec"])
@pytest.mark.parametrize("args, keys, code, string", [
    ((), {}, "OK", ""),
    (("wrong",), {}, "WA", ""),
    (("loop",), {"exec_time_limit": 300}, "TLE", "time limit exceeded"),
    (("memory",), {}, "MLE", "memory limit exceeded"),
    (("raise",), {}, "RE", "runtime error 1"),
    # The same verdicts as a C program doing it (test_supervisor.py).
    (("read",), {}, "RV", "intercepted forbidden syscall openat"),
    (("write",), {}, "RV", "intercepted forbidden syscall openat"),
    (("fork",), {}, "RV", "intercepted forbidden syscall clone"),
])
def test_python_verdicts(ft_store, python_program, job_type, args, keys, code, string):
    result = judge(ft_store, python_program, job_type, *args, **keys)
    assert result["result_code"] == code, result
    assert result["result_string"].startswith(string), result["result_string"]
