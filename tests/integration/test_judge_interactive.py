"""Interactive jobs end to end (clients.md §1.3 (c), §4 scenario 17):
real interactor and solutions talking through pipes, a real Filetracker
server, :func:`sio.workers.runner.run`.

The interactor (tests/sources/judge_interactor.c) reads ``x payload mode``
from the test; the solution variants are one source compiled with -D flags.
Every test also asserts the job ends well within its wall-clock bounds:
neither side can hang it.
"""

from __future__ import annotations

import os
import time

import pytest

from sio.executors.interactive_common import InteractorError
from sio.executors.selection import ExecutorUnavailable
from sio.workers import executors, runner
from tests.integration.test_judge_exec import run_job

pytestmark = pytest.mark.integration



@pytest.fixture(scope="module")
def interactor(c_program):
    return c_program("judge_interactor")


@pytest.fixture(scope="module")
def solution(c_program):
    def build(variant: str | None = None) -> str:
        return c_program("judge_solution", *([f"-D{variant}"] if variant else []))
    return build


def interactive_env(ft_store, interactor, exe, test="1000 0 0\n", n=1,
                    job_type="unsafe-interactive-exec", **keys):
    env = {
        "job_type": job_type,
        "filetracker_url": ft_store.url,
        "name": "1a", "max_score": 10, "extra_args": {"deep": [{"a": 1}]},
        "exe_file": ft_store.put("exe", path=exe),
        "interactor_file": ft_store.put("soc", path=interactor),
        "in_file": ft_store.put("1a.in", test),
        "num_processes": n,
        "exec_time_limit": 1000,
        "exec_mem_limit": 65536,
        "exec_info": {"mode": "executable"},
    }
    env.update(keys)
    return env


def open_pipes() -> set[str]:
    """This process's pipe descriptors (the Filetracker client may keep a
    connection or a lock file open between jobs: not a leak)."""
    pipes = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}").startswith("pipe:"):
                pipes.add(fd)
        except OSError:
            pass
    return pipes


@pytest.fixture
def no_fd_leak():
    before = open_pipes()
    yield
    assert open_pipes() - before == set()


@pytest.mark.parametrize("n", [1, 3])
def test_correct(ft_store, interactor, solution, n, no_fd_leak):
    result = run_job(interactive_env(ft_store, interactor, solution(), n=n))
    assert (result["result_code"], result["result_percentage"]) == ("OK", [100, 1])
    assert result["result_string"] == ""


def test_partial_score_from_interactor(ft_store, interactor, solution):
    result = run_job(interactive_env(ft_store, interactor, solution(), "7 0 3\n", n=3))
    assert (result["result_code"], result["result_string"], result["result_percentage"]) == \
        ("OK", "partial", [1, 3])


@pytest.mark.parametrize("n", [1, 3])
def test_wrong(ft_store, interactor, solution, n):
    result = run_job(interactive_env(ft_store, interactor, solution("WRONG"), n=n))
    assert (result["result_code"], result["result_string"], result["result_percentage"]) == \
        ("WA", "wrong answer from process 0", [0, 1])


@pytest.mark.parametrize("n", [1, 3])
def test_solution_exits_prematurely(ft_store, interactor, solution, n, no_fd_leak):
    result = run_job(interactive_env(ft_store, interactor, solution("QUIT"), n=n))
    assert (result["result_code"], result["result_string"]) == \
        ("WA", "solution exited prematurely")


@pytest.mark.parametrize("n", [1, 3])
def test_solution_dies(ft_store, interactor, solution, n):
    result = run_job(interactive_env(ft_store, interactor, solution("DIE"), n=n))
    assert (result["result_code"], result["result_string"]) == \
        ("RE", "program exited with code 3")


@pytest.mark.parametrize("n", [1, 3])
def test_solution_never_reads(ft_store, interactor, solution, n, no_fd_leak):
    # The interactor blocks writing 1 MB the solution never reads: the
    # solution's wall-clock limit (2 x 300 ms) ends it, the interactor gets
    # SIGPIPE, the verdict is the solution's.
    start = time.monotonic()
    result = run_job(interactive_env(ft_store, interactor, solution("NOREAD"),
                                     "1 1000000 0\n", n=n, exec_time_limit=300))
    assert (result["result_code"], result["result_string"]) == \
        ("TLE", "real time limit exceeded")
    assert time.monotonic() - start < 10


def test_solution_floods_a_sleeping_interactor(ft_store, interactor, solution, no_fd_leak):
    # Neither reads the other: the solution blocks writing, the interactor
    # sleeps; the interactor's wall-clock limit (2 x 2 x 300 ms) ends it all.
    start = time.monotonic()
    result = run_job(interactive_env(ft_store, interactor, solution("FLOOD"), "1 0 2\n",
                                     exec_time_limit=300))
    assert result["result_code"] == "TLE"
    assert time.monotonic() - start < 10


def test_interactor_sleeps(ft_store, interactor, solution):
    # The solutions wait for a query until their wall-clock limit (600 ms),
    # before the interactor's (1200 ms): theirs is the verdict.
    start = time.monotonic()
    result = run_job(interactive_env(ft_store, interactor, solution(), "1 0 2\n", n=3,
                                     exec_time_limit=300))
    assert (result["result_code"], result["result_string"]) == \
        ("TLE", "real time limit exceeded")
    assert time.monotonic() - start < 10


def test_interactor_real_time_limit(ft_store, interactor, solution):
    # The solutions end at once (status 0), the interactor sleeps until its
    # wall-clock limit: TLE, either side may be the cause.
    start = time.monotonic()
    result = run_job(interactive_env(ft_store, interactor, solution("QUIT"), "1 0 2\n", n=3,
                                     exec_time_limit=300))
    assert (result["result_code"], result["result_string"]) == \
        ("TLE", "interactor time limit exceeded (user's solution or interactor can be the "
                "cause)")
    assert time.monotonic() - start < 10


@pytest.mark.parametrize("n", [1, 3])
def test_interactor_dies(ft_store, interactor, solution, n, no_fd_leak):
    env = interactive_env(ft_store, interactor, solution(), "1 0 1\n", n=n)
    with pytest.raises(SystemError) as info:
        runner.run(env)
    assert isinstance(info.value, InteractorError)
    assert "signal 6" in str(info.value)


@pytest.mark.parametrize("variant, verdict", [
    ("EXIT1", ("RE", "program exited with code 1")),
    ("QUIT", ("WA", "solution exited prematurely")),
])
def test_interactor_returning_128_plus_sigpipe(ft_store, interactor, solution, variant,
                                               verdict):
    # oioioi's interactors 'return 128 + 13' when the solution's pipe
    # closes: read as SIGPIPE, as the original's shell did, so the verdict
    # is the solution's own, or "exited prematurely" (not InteractorError).
    result = run_job(interactive_env(ft_store, interactor, solution(variant), "1 0 4\n"))
    assert (result["result_code"], result["result_string"]) == verdict


def test_interactor_limits_from_environ(ft_store, interactor, solution):
    # interactor_time_limit overrides the default of 2 x exec_time_limit
    start = time.monotonic()
    result = run_job(interactive_env(ft_store, interactor, solution("QUIT"), "1 0 2\n",
                                     exec_time_limit=5000, interactor_time_limit=200))
    assert result["result_code"] == "TLE"
    assert result["result_string"].startswith("interactor time limit exceeded")
    assert time.monotonic() - start < 5


def test_output_stored(ft_store, interactor, solution):
    out_file = ft_store.name("1a.out")
    result = run_job(interactive_env(ft_store, interactor, solution(), "5 0 3\n",
                                     out_file=out_file, upload_out=True))
    assert ft_store.get(result["out_file"]) == b"OK\npartial\n1/3\n"


def test_exec_time_limit_is_required(ft_store, interactor, solution):
    env = interactive_env(ft_store, interactor, solution())
    del env["exec_time_limit"]
    with pytest.raises(KeyError, match="exec_time_limit"):
        runner.run(env)


@pytest.mark.parametrize("job_type", ["interactive-exec", "cpu-interactive-exec"])
def test_supervised_interactive_jobs_refuse_to_run_unsupervised(ft_store, interactor,
                                                                solution, job_type,
                                                                monkeypatch):
    monkeypatch.delattr(executors, "SupervisedExecutor")
    with pytest.raises(ExecutorUnavailable):
        runner.run(interactive_env(ft_store, interactor, solution(), job_type=job_type))


@pytest.mark.parametrize("job_type", ["interactive-exec", "cpu-interactive-exec"])
def test_supervised_interactive_jobs(ft_store, interactor, solution, job_type):
    result = run_job(interactive_env(ft_store, interactor, solution(), n=3, job_type=job_type))
    assert result["result_code"] == "OK"
    result = run_job(interactive_env(ft_store, interactor, solution("QUIT"), n=3,
                                     job_type=job_type))
    assert (result["result_code"], result["result_string"]) == \
        ("WA", "solution exited prematurely")
