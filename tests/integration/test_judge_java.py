"""Java submissions under the supervisor (``exec`` and ``cpu-exec``), end to
end as oioioi sends them (clients.md §4 scenario 14: "exec runs the jar
inside the sandbox"): a real jar, a real Filetracker server, the built-in
supervisor. What the JVM may do beyond a native program (threads, its own
/proc entry, quiet refusals of what it probes) must not open anything else:
no reading the expected output, no other files, no network, no processes,
no writing."""

from __future__ import annotations

import os

import pytest

from sio.workers._engine.supervisor import probe
from tests.integration.test_judge_exec import exec_env, run_job
from tests.support import missing

pytestmark = pytest.mark.integration

JAVA_INFO = {"mode": "java", "main_class": "behave", "preferred_filename": "behave.jar"}


@pytest.fixture(scope="module", autouse=True)
def java_under_the_supervisor():
    caps = probe()
    if not caps.usable:
        missing(f"supervised execution: {caps.describe()}", required=False)
    if not caps.landlock_abi:
        missing("Landlock (the JVM's threads need it under the supervisor)", required=False)


@pytest.fixture
def behave(java_jar):
    return java_jar("judge_java_behave", "behave")


def judge(ft_store, jar, what: str, hint: str = "42\n", job_type: str = "exec", **keys):
    env = exec_env(ft_store, jar, f"{what}\n", hint, job_type=job_type,
                   exec_info=dict(JAVA_INFO), exec_time_limit=keys.pop("exec_time_limit", 10000),
                   **keys)
    return run_job(env)


@pytest.mark.parametrize("job_type", ["exec", "cpu-exec"])
def test_java_ok_and_wrong_answer(ft_store, java_jar, job_type):
    jar = java_jar("judge_sum", "sum")
    info = {"mode": "java", "main_class": "sum", "preferred_filename": "sum.jar"}
    ok = run_job(exec_env(ft_store, jar, "40 2\n", "42\n", job_type=job_type,
                          exec_time_limit=10000, exec_info=dict(info)))
    assert (ok["result_code"], ok["result_percentage"]) == ("OK", [100, 1]), ok
    # CPU time of all the JVM's threads, and its resident memory (not the
    # gigabytes of address space it reserves)
    assert 0 < ok["time_used"] < 10000
    assert 1024 < ok["mem_used"] < 262144
    wa = run_job(exec_env(ft_store, jar, "40 2\n", "43\n", job_type=job_type,
                          exec_time_limit=10000, exec_info=dict(info)))
    assert (wa["result_code"], wa["result_percentage"]) == ("WA", [0, 1])


def test_java_threads_of_its_own_are_allowed(ft_store, behave):
    result = judge(ft_store, behave, "threads")
    assert result["result_code"] == "OK", result


def test_java_too_many_threads_is_rv(ft_store, behave):
    result = judge(ft_store, behave, "many-threads")
    assert (result["result_code"], result["result_string"]) == (
        "RV", "intercepted forbidden syscall clone"), result


def test_java_time_limit(ft_store, behave):
    result = judge(ft_store, behave, "loop", exec_time_limit=1000)
    assert result["result_code"] == "TLE", result


def test_java_exception_is_re(ft_store, behave):
    result = judge(ft_store, behave, "throw")
    assert (result["result_code"], result["result_string"]) == ("RE", "runtime error 1")


def test_java_heap_over_the_memory_limit_is_re(ft_store, behave):
    # -Xmx is the memory limit; the JVM ends the program with
    # OutOfMemoryError, as the original's Java runner did.
    result = judge(ft_store, behave, "heap", exec_mem_limit=65536)
    assert (result["result_code"], result["result_string"]) == ("RE", "runtime error 1")
    assert result["mem_used"] < 65536 + 65536  # the heap stayed within -Xmx


@pytest.mark.parametrize("what", ["read-local", "read-passwd", "socket"])
def test_java_cannot_read_the_job_directory_other_files_or_the_network(ft_store, behave,
                                                                      what):
    # The JVM's probes fail quietly (EACCES), so these are exceptions in the
    # program (RE), not rule violations; what matters is that they fail.
    result = judge(ft_store, behave, what)
    assert (result["result_code"], result["result_string"]) == ("RE", "runtime error 1"), result
    if what == "read-local":
        # the file is there: unconfined, the program reads it
        result = judge(ft_store, behave, what, job_type="unsafe-exec")
        assert result["result_code"] == "OK", result


def test_java_cannot_write_files(ft_store, behave):
    target = "/tmp/sio-java-was-here"  # the path the program tries
    assert not os.path.exists(target)
    result = judge(ft_store, behave, "write")
    assert result["result_code"] == "RE", result
    assert not os.path.exists(target)


def test_java_cannot_start_processes(ft_store, behave):
    result = judge(ft_store, behave, "exec")
    assert result["result_code"] == "RV", result
    assert result["result_string"].startswith("intercepted forbidden syscall "), result


def test_java_under_unsafe_exec_still_runs_unconfined(ft_store, behave):
    result = judge(ft_store, behave, "ok", job_type="unsafe-exec")
    assert result["result_code"] == "OK", result


def test_compile_then_exec_a_java_submission(ft_store):
    # clients.md §4 scenario 14: oioioi compiles with a Java compiler and
    # sends the compile job's exec_info with an ordinary exec job.
    from tests.integration.test_judge_pipeline import compile_submission
    from tests.integration.test_judge_pipeline import judge as judge_compiled

    compiled = compile_submission(ft_store, "judge_sum.java", "java", "system-java")
    assert compiled["result_code"] == "OK", compiled.get("compiler_output")
    assert compiled["exec_info"]["mode"] == "java"
    result = judge_compiled(ft_store, compiled, "40 2\n", "42\n", job_type="exec")
    assert (result["result_code"], result["result_percentage"]) == ("OK", [100, 1]), result
    result = judge_compiled(ft_store, compiled, "40 2\n", "43\n", job_type="exec")
    assert result["result_code"] == "WA"
