"""Python checkers and interactors end to end (issue 13 item 6).

oioioi sends a problem's checker (``chk_file``) and interactor
(``interactor_file``) as bare files: the ``exec_info`` of their compile job
is dropped (``sinolpack/package.py``), and with makefiles a package gives its
own ``<short>chk.e`` or ``<short>chk.sh``. A Python checker therefore
reaches the worker as the zip application that ``default-py`` /
``system-python`` made of ``<short>chk.py``, or as a ``#!`` script. Both
must run, as an untrusted checker under the supervisor with the same
outcomes as a C checker doing the same (tests/sources/python_checker.py and
its C twin judge_checker_hostile.c).
"""

from __future__ import annotations

import os
import re

import pytest

from sio.executors.checker import CheckerError
from sio.executors.interactive_common import InteractorError
from sio.workers import runner
from tests.integration.test_judge_exec import run_job
from tests.integration.test_judge_pipeline import compile_submission
from tests.support import SOURCES

pytestmark = pytest.mark.integration

SUPERVISED = ["exec", "cpu-exec"]


@pytest.fixture(scope="module")
def sum_exe(c_program):
    return c_program("judge_sum")


@pytest.fixture(scope="module")
def checkers(ft_store, c_program, tmp_path_factory):
    """Filetracker names of the checkers: ``pyz`` (python_checker.py compiled
    by ``default-py``, as oioioi's package upload does), ``shebang`` (the
    source with ``#!/usr/bin/env python3``) and ``c`` (the C twin of its
    hostile cases)."""
    compiled = compile_submission(ft_store, "python_checker.py", "py", "default-py")
    assert compiled["result_code"] == "OK", compiled.get("compiler_output")
    script = tmp_path_factory.mktemp("py_checker") / "chk.py"
    script.write_text("#!/usr/bin/env python3\n" + (SOURCES / "python_checker.py").read_text())
    os.chmod(script, 0o755)
    return {"pyz": compiled["out_file"], "shebang": ft_store.put("chk.e", path=str(script)),
            "c": ft_store.put("chk.e", path=c_program("judge_checker_hostile"))}


def check(ft_store, sum_exe, chk_file, hint, job_type="exec", untrusted=True):
    """An exec job of judge_sum on "40 2" (it prints 42), checked by
    ``chk_file`` against ``hint``."""
    env = {"job_type": job_type, "filetracker_url": ft_store.url,
           "exe_file": ft_store.put("exe", path=sum_exe), "exec_info": {"mode": "executable"},
           "in_file": ft_store.put("1a.in", "40 2\n"), "hint_file": ft_store.put("1a.out", hint),
           "chk_file": chk_file, "untrusted_checker": untrusted, "check_output": True,
           "exec_time_limit": 2000, "exec_mem_limit": 65536}
    return run_job(env)


def outcome(ft_store, sum_exe, chk_file, hint, job_type="exec"):
    """What the job gives: (code, comment, score), or ("broken", the
    executor's verdict) when the checker is broken (CheckerError)."""
    try:
        result = check(ft_store, sum_exe, chk_file, hint, job_type)
    except CheckerError as e:
        verdict = re.search(r"\(([A-Z]+: [^)]*)\)", str(e))
        return ("broken", verdict[1] if verdict else str(e))
    return (result["result_code"], result["result_string"], result["result_percentage"])


@pytest.mark.parametrize("job_type, untrusted", [
    ("exec", True), ("cpu-exec", True), ("exec", False), ("unsafe-exec", True)])
@pytest.mark.parametrize("form", ["pyz", "shebang"])
@pytest.mark.parametrize("hint, expected", [
    ("42\n", ("OK", "ok", [100, 1])),  # no comment: the executor's string stays
    ("43\n", ("WA", "expected 43, got 42", [0, 1])),
    ("PART\n", ("OK", "half right", [50, 1])),
])
def test_python_checker_verdicts(ft_store, sum_exe, checkers, form, job_type, untrusted,
                                 hint, expected):
    result = check(ft_store, sum_exe, checkers[form], hint, job_type, untrusted)
    assert (result["result_code"], result["result_string"],
            result["result_percentage"]) == expected, result


@pytest.mark.parametrize("job_type", SUPERVISED)
@pytest.mark.parametrize("form", ["pyz", "shebang"])
@pytest.mark.parametrize("hint, expected", [
    # Opening a file outside the job directory and writing one are refused
    # (the checker sees an error: its own verdict is what it prints).
    ("READ\n", ("WA", re.compile(r"open failed: E[A-Z]+"), [0, 1])),
    ("WRITE\n", ("WA", re.compile(r"open failed: E[A-Z]+"), [0, 1])),
    # Starting a process is a rule violation: the checker is broken.
    ("FORK\n", ("broken", re.compile(r"RV: intercepted forbidden syscall clone"))),
])
def test_hostile_python_checker_as_a_c_checker(ft_store, sum_exe, checkers, form, job_type,
                                               hint, expected):
    c = outcome(ft_store, sum_exe, checkers["c"], hint, job_type)
    py = outcome(ft_store, sum_exe, checkers[form], hint, job_type)
    assert py == c
    assert len(py) == len(expected)
    for got, want in zip(py, expected):
        assert want.fullmatch(got) if isinstance(want, re.Pattern) else got == want, py


@pytest.mark.parametrize("job_type", SUPERVISED)
def test_a_shell_checker_under_the_supervisor(ft_store, sum_exe, tmp_path, job_type):
    # A #! script that is not Python (a sinol package's chk.sh): its
    # interpreter runs it, reading the three files is fine, a command it
    # starts is a rule violation (the checker is broken), as for C.
    def script(name, body):
        path = tmp_path / name
        path.write_text("#!/bin/sh\n" + body)
        os.chmod(path, 0o755)
        return ft_store.put("chk.sh", path=str(path))

    builtins = script("ok.sh", 'read line < "$3"\necho OK\necho "hint $line"\n')
    assert outcome(ft_store, sum_exe, builtins, "7\n", job_type) == ("OK", "hint 7", [100, 1])
    cat = script("cat.sh", 'echo OK\ncat "$3"\n')
    broken = outcome(ft_store, sum_exe, cat, "7\n", job_type)
    assert broken[0] == "broken" and broken[1].startswith("RV: intercepted forbidden syscall")


# --------------------------------------------------------------------------
# Interactors
# --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def interactors(ft_store, c_program):
    compiled = compile_submission(ft_store, "python_interactor.py", "py", "default-py")
    assert compiled["result_code"] == "OK", compiled.get("compiler_output")
    return {"pyz": compiled["out_file"],
            "c": ft_store.put("soc", path=c_program("judge_interactor"))}


def interact(ft_store, interactor, exe, test, n, job_type):
    env = {"job_type": job_type, "filetracker_url": ft_store.url,
           "exe_file": ft_store.put("exe", path=exe), "interactor_file": interactor,
           "in_file": ft_store.put("1a.in", test), "num_processes": n,
           "exec_time_limit": 1000, "exec_mem_limit": 65536,
           "exec_info": {"mode": "executable"}}
    try:
        result = run_job(env)
    except InteractorError:
        return ("broken",)
    return (result["result_code"], result["result_string"], result["result_percentage"])


@pytest.mark.parametrize("job_type", ["interactive-exec", "cpu-interactive-exec",
                                      "unsafe-interactive-exec"])
@pytest.mark.parametrize("variant, test, n, expected", [
    (None, "1000 0 0\n", 1, ("OK", "", [100, 1])),
    (None, "1000 0 0\n", 2, ("OK", "", [100, 1])),
    ("WRONG", "1000 0 0\n", 2, ("WA", "wrong answer from process 0", [0, 1])),
    (None, "1000 0 3\n", 1, ("OK", "partial", [1, 3])),
    (None, "1000 0 1\n", 1, ("broken",)),
])
def test_python_interactor_as_a_c_interactor(ft_store, c_program, interactors, job_type,
                                             variant, test, n, expected):
    exe = c_program("judge_solution", *([f"-D{variant}"] if variant else []))
    c = interact(ft_store, interactors["c"], exe, test, n, job_type)
    py = interact(ft_store, interactors["pyz"], exe, test, n, job_type)
    assert py == c == expected


def test_a_script_naming_a_relative_interpreter_is_refused(ft_store, sum_exe, tmp_path):
    # The kernel would start "./sh" of the job directory: not under the
    # supervisor, which runs only a system interpreter named by its path.
    from sio.workers.file_runners import NoFileRunner

    path = tmp_path / "chk.sh"
    path.write_text("#!sh\necho OK\n")
    os.chmod(path, 0o755)
    with pytest.raises(NoFileRunner, match="absolute path"):
        check(ft_store, sum_exe, ft_store.put("chk.sh", path=str(path)), "7\n")
