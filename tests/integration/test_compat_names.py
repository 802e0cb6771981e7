"""The original's public names with real programs: a deployment's
CStyleCompiler subclass compiles, RealTimeSio2JailExecutor runs a program
under the supervisor, execute_command and ulimit run commands (the list of
names is tests/unit/test_compat_names.py)."""

from __future__ import annotations

import os

import pytest

from sio.compilers.system_gcc import CStyleCompiler
from sio.workers.executors import RealTimeSio2JailExecutor, execute_command, ulimit
from sio.workers.file_runners import get_file_runner
from sio.workers.util import TemporaryCwd
from tests.integration.test_compile import need, run_result

pytestmark = pytest.mark.integration

SOURCE = """#include <math.h>
#include <stdio.h>
int main(void) { printf("%d %d\\n", ANSWER, (int)sqrt((double)ANSWER * ANSWER)); return 0; }
"""


def test_a_cstyle_compiler_subclass_compiles(tmp_path, monkeypatch):
    # A deployment's own compiler, as written against the original: its own
    # program name (a wrapper on PATH that logs its calls) and options.
    need("c")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "calls"
    wrapper = bin_dir / "my-cc"
    wrapper.write_text(f'#!/bin/sh\necho "$@" >> {log}\nexec gcc "$@"\n')
    wrapper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")

    class MyCompiler(CStyleCompiler):
        lang = "c"
        compiler = "my-cc"
        options = ["-std=gnu11", "-O1", "-DANSWER=42", "-lm"]

    source = tmp_path / "answer.c"
    source.write_text(SOURCE)
    environ = {"source_file": str(source), "out_file": str(tmp_path / "answer.e"),
               "use_filetracker": False, "extra_compilation_args": ["-Wall"]}
    with TemporaryCwd():
        result = MyCompiler().compile(environ)
    assert (result["result_code"], result["exec_info"]) == ("OK", {"mode": "executable"})
    assert log.read_text().split() == ["-std=gnu11", "-O1", "-DANSWER=42", "-Wall", "a.c",
                                       "-o", "a.out", "-lm"]
    renv, output = run_result(result)
    assert (renv["result_code"], output) == ("OK", b"42 42\n")


def test_real_time_sio2jail_executor_runs_under_the_supervisor(c_program):
    exe = c_program("trivial")
    with TemporaryCwd(), RealTimeSio2JailExecutor() as executor:
        runner = get_file_runner(executor, {})
        renv = runner(exe, [], time_limit=1000)
    assert (renv["result_code"], renv["return_code"]) == ("OK", 0)
    assert "mem_used" in renv and "num_syscalls" in renv


def test_execute_command_and_ulimit():
    with TemporaryCwd():
        assert execute_command(["echo", "2"], capture_output=True)["stdout"] == b"2\n"
        renv = execute_command(ulimit(["sh", "-c", "ulimit -t; ulimit -v"], mem_limit=65536,
                                      time_limit=1500), capture_output=True)
        assert renv["stdout"] == b"2\n65536\n"
        assert execute_command(["sh", "-c", "exit 3"], ignore_errors=True)["return_code"] == 3


@pytest.mark.parametrize("mem_limit_kib", [1, 256])
def test_tiny_memory_limit_under_unsafe_exec_is_a_runtime_error(ft_store, c_program,
                                                               mem_limit_kib):
    # Kept on purpose: the original crashed here (bash could not start under
    # 'ulimit -v', so its time report was missing: RuntimeError); the
    # program cannot be loaded in so little memory, which is the
    # submission's verdict.
    from tests.integration.test_judge_exec import exec_env, run_job

    result = run_job(exec_env(ft_store, c_program("trivial"), exec_mem_limit=mem_limit_kib))
    assert result["result_code"] == "RE"
    assert result["result_string"].startswith("program exited")
