"""Compile then judge, as oioioi does for a submission (clients.md §4
scenarios 1, 2, 14, 15, 16): the ``compile`` job's ``out_file`` and
``exec_info`` go unchanged into the exec job, on a real Filetracker server."""

from __future__ import annotations

import pytest

from sio.workers import runner
from tests.integration.test_judge_exec import run_job
from tests.support import SOURCES

pytestmark = pytest.mark.integration


def compile_submission(ft_store, source, language: str, compiler: str, **keys):
    """Run a compile job of ``source`` (a name in tests/sources or a path)."""
    env = {"job_type": "compile", "filetracker_url": ft_store.url,
           "source_file": ft_store.put(f"17.{language}", path=str(SOURCES / source)),
           "language": language, "compiler": compiler, "problem_short_name": "sum",
           "out_file": ft_store.name("urn:uuid:1-exe"),
           "compilation_result_size_limit": 10 * 1024 * 1024, **keys}
    return runner.run(env)


def judge(ft_store, compiled, test_in, hint, **keys):
    env = {"job_type": "unsafe-exec", "filetracker_url": ft_store.url,
           "exe_file": compiled["out_file"], "exec_info": compiled["exec_info"],
           "in_file": ft_store.put("1a.in", test_in), "hint_file": ft_store.put("1a.out", hint),
           "exec_time_limit": 10000, "exec_mem_limit": 262144, "check_output": True, **keys}
    return run_job(env)


@pytest.mark.parametrize("source, language, compiler", [
    ("judge_sum.c", "c", "system-gcc"),
    ("judge_sum.cpp", "cpp", "system-g++"),
    ("judge_sum.java", "java", "system-java"),
    ("judge_sum.py", "py", "system-python"),
])
def test_compile_then_judge(ft_store, source, language, compiler):
    compiled = compile_submission(ft_store, source, language, compiler)
    assert compiled["result_code"] == "OK", compiled.get("compiler_output")
    result = judge(ft_store, compiled, "40 2\n", "42\n")
    assert (result["result_code"], result["result_percentage"]) == ("OK", [100, 1]), result
    result = judge(ft_store, compiled, "40 2\n", "43\n")
    assert (result["result_code"], result["result_percentage"]) == ("WA", [0, 1])


def test_compilation_error_upstream_sends_no_exec(ft_store, tmp_path):
    # A CE is a verdict of the compile job: no binary, so the contest
    # system sends no exec job; one sent anyway fails, never gives a verdict.
    bad = tmp_path / "bad.c"
    bad.write_text("int main(void) { return missing; }\n")
    compiled = compile_submission(ft_store, bad, "c", "system-gcc")
    assert compiled["result_code"] == "CE"
    assert "missing" in compiled["compiler_output"]
    with pytest.raises(Exception):
        judge(ft_store, compiled, "1 2\n", "3\n")


def test_output_only_through_compile(ft_store, tmp_path):
    answer = tmp_path / "ans.txt"
    answer.write_text("42\n")
    compiled = compile_submission(ft_store, answer, "txt", "output-only")
    assert compiled["result_code"] == "OK"
    assert compiled["exec_info"] == {"mode": "output-only"}
    for job_type in ("exec", "unsafe-exec"):
        result = judge(ft_store, compiled, "", "42\n", job_type=job_type)
        assert (result["result_code"], result["result_percentage"]) == ("OK", [100, 1])
        result = judge(ft_store, compiled, "", "41\n", job_type=job_type)
        assert result["result_code"] == "WA"


def test_unknown_compiler_fails_the_job_and_the_next_job_runs(ft_store):
    # clients.md §4 scenario 4 (oioioi#7): no hang and no made-up verdict,
    # an error that names what exists; the worker goes on serving.
    from sio.workers.errors import EntryPointNotFound

    with pytest.raises(EntryPointNotFound) as info:
        compile_submission(ft_store, "judge_sum.c", "cbp", "default-cbp")
    message = str(info.value)
    assert "'default-cbp'" in message and "sio.compilers" in message
    assert "system-g++" in message
    compiled = compile_submission(ft_store, "judge_sum.c", "c", "system-gcc")
    assert compiled["result_code"] == "OK"
    assert compiled["exec_info"] == {"mode": "executable"}
