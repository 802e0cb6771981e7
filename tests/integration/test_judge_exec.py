"""The exec family of jobs end to end, as oioioi sends them (clients.md §1.3
(b) (d) (e) (f) and §4): real programs, a real Filetracker server, through
:func:`sio.workers.runner.run`.

``exec`` and ``cpu-exec`` need the built-in supervisor; until this tree has
it they must fail with a clear error, which is tested. Everything else goes
through ``unsafe-exec``, which shares the code path (``common.run``).
"""

from __future__ import annotations

import copy
import io
import json
import os
import shutil
import stat
import tempfile
import time
import zipfile

import pytest

from sio.executors.common import BadInputArchive
from sio.executors.selection import ExecutorUnavailable
from sio.workers import executors, runner
from sio.workers.errors import SioWorkersError

pytestmark = pytest.mark.integration



def exec_env(ft_store, exe: str, test_in: str | bytes = "2 3\n", hint: str | bytes | None = "5\n",
             job_type: str = "unsafe-exec", **keys):
    """An exec job as oioioi's run_tests builds it, with test identity keys
    and unknown nested keys that must come back unchanged."""
    env = {
        "job_type": job_type,
        "filetracker_url": ft_store.url,
        "id": 17, "name": "1a", "kind": "NORMAL", "group": "1", "max_score": 10,
        "order": 0, "to_judge": True, "task_priority": 100,
        "recipe": [["run_tests", "oioioi.programs.handlers.run_tests", {"kind": "NORMAL"}]],
        "extra_args": {"nested": {"list": [1, 2, {"x": None}]}},
        "exe_file": ft_store.put("exe", path=exe),
        "exec_info": {"mode": "executable"},
        "in_file": ft_store.put("1a.in", test_in),
        "exec_time_limit": 2000,
        "exec_mem_limit": 262144,
        "check_output": True,
        "checker_format": "english_abbreviated",
        "untrusted_checker": False,
    }
    if hint is not None:
        env["hint_file"] = ft_store.put("1a.out", hint)
    env.update(keys)
    return env


def run_job(env):
    """Run the job and check what every result must satisfy: the input keys
    echoed unchanged (except out_file, replaced by its stored name), the
    result keys present with the right types, JSON-able."""
    sent = copy.deepcopy(env)
    result = runner.run(env)
    for key, value in sent.items():
        if key != "out_file":
            assert result[key] == value, key
    assert result["result"] == "SUCCESS"
    assert result["result_code"] in ("OK", "WA", "RE", "TLE", "MLE", "OLE", "RV", "SE")
    assert isinstance(result["result_string"], str)
    num, den = result["result_percentage"]
    assert isinstance(num, int) and isinstance(den, int) and den > 0
    for key in ("time_used", "mem_used", "num_syscalls"):
        assert isinstance(result[key], int)
    json.dumps(result)
    return result


@pytest.fixture(scope="module")
def sum_c(c_program):
    return c_program("judge_sum")


@pytest.fixture(scope="module")
def checker(c_program):
    return c_program("judge_checker")


# --------------------------------------------------------------------------
# Verdicts of the program
# --------------------------------------------------------------------------

def test_ok_c_default_comparison_echoes_limits_and_identity(ft_store, sum_c):
    result = run_job(exec_env(ft_store, sum_c))
    assert result["result_code"] == "OK"
    assert result["result_percentage"] == [100, 1]
    assert result["exec_time_limit"] == 2000 and result["exec_mem_limit"] == 262144
    assert 0 <= result["time_used"] < 2000


def test_ok_cpp(ft_store, cxx_program):
    result = run_job(exec_env(ft_store, cxx_program("judge_sum"), "40 2\n", "42\n"))
    assert (result["result_code"], result["result_percentage"]) == ("OK", [100, 1])


def test_ok_java_jar(ft_store, java_jar):
    jar = java_jar("judge_sum", "sum")
    env = exec_env(ft_store, jar, "40 2\n", "42\n", exec_time_limit=10000,
                   exec_info={"mode": "java", "main_class": "sum",
                              "preferred_filename": "sum.jar"})
    result = run_job(env)
    assert (result["result_code"], result["result_percentage"]) == ("OK", [100, 1]), result


def test_wrong_answer_default_comparison(ft_store, c_program):
    result = run_job(exec_env(ft_store, c_program("judge_sum", "-DWRONG")))
    assert (result["result_code"], result["result_percentage"]) == ("WA", [0, 1])


def test_unsafe_comparison_ignores_amounts_of_whitespace(ft_store, c_program):
    result = run_job(exec_env(ft_store, c_program("judge_sum", "-DSPACES")))
    assert result["result_code"] == "OK"


def test_time_limit_cpu(ft_store, c_program):
    start = time.monotonic()
    result = run_job(exec_env(ft_store, c_program("busy_loop"), exec_time_limit=300))
    assert result["result_code"] == "TLE"
    assert result["result_string"] == "time limit exceeded"
    assert result["time_used"] >= 280
    assert result["result_percentage"] == [0, 1]
    assert time.monotonic() - start < 10


def test_time_limit_sleeping_program_hits_real_time_guard(ft_store, c_program):
    start = time.monotonic()
    result = run_job(exec_env(ft_store, c_program("sleep_forever"), exec_time_limit=300))
    assert (result["result_code"], result["result_string"]) == \
        ("TLE", "real time limit exceeded")
    assert time.monotonic() - start < 10


def test_memory_limit_unsafe_is_runtime_error(ft_store, c_program):
    # unsafe-exec limits the address space: the allocation fails and the
    # program ends as it chooses (this one with status 3). MLE needs exec.
    result = run_job(exec_env(ft_store, c_program("mem_30MiB_heap"), exec_mem_limit=16384))
    assert (result["result_code"], result["result_string"]) == \
        ("RE", "program exited with code 3")


def test_runtime_error_signal_and_code(ft_store, c_program):
    result = run_job(exec_env(ft_store, c_program("sig_segv")))
    assert (result["result_code"], result["result_string"]) == \
        ("RE", "program exited due to signal 11")
    result = run_job(exec_env(ft_store, c_program("exit_with"), extra_execution_args=["1"]))
    assert (result["result_code"], result["result_string"]) == \
        ("RE", "program exited with code 1")


def test_output_limit(ft_store, c_program):
    env = exec_env(ft_store, c_program("write_bytes"), extra_execution_args=["100000"],
                   exec_output_limit=1000, out_file=ft_store.name("ole.out"), upload_out=True)
    result = run_job(env)
    assert (result["result_code"], result["result_string"]) == ("OLE", "output limit exceeded")
    assert len(ft_store.get(result["out_file"])) == 1000


def test_missing_program_is_a_job_failure_never_a_verdict(ft_store, sum_c):
    env = exec_env(ft_store, sum_c, exe_file=ft_store.name("no-such-exe") + "@1")
    with pytest.raises(SioWorkersError):
        runner.run(env)


# --------------------------------------------------------------------------
# Checkers
# --------------------------------------------------------------------------

@pytest.mark.parametrize("answer, code, string, percentage", [
    ("OK\nhalf right\n50\n", "OK", "half right", [50, 1]),
    ("OK\n\n1/3\n", "OK", "ok", [1, 3]),
    ("OK\nfloat\n12.5", "OK", "float", [25, 2]),
    ("OK\nbonus\n150\n", "OK", "bonus", [150, 1]),
    ("OK\n", "OK", "ok", [100, 1]),
    ("WRONG\nexpected 5\n", "WA", "expected 5", [0, 1]),
    ("", "WA", "", [0, 1]),
])
def test_custom_checker_protocol(ft_store, sum_c, checker, answer, code, string, percentage):
    result = run_job(exec_env(ft_store, sum_c, hint=answer,
                              chk_file=ft_store.put("chk", path=checker)))
    assert (result["result_code"], result["result_string"], result["result_percentage"]) == \
        (code, string, percentage)


def test_custom_checker_sees_output_and_unpacked_input(ft_store, sum_c, checker):
    chk = ft_store.put("chk", path=checker)
    result = run_job(exec_env(ft_store, sum_c, hint="OUT\n", chk_file=chk))
    assert (result["result_code"], result["result_string"]) == ("OK", "5")
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("1a.in", "20 22\n")
    result = run_job(exec_env(ft_store, sum_c, archive.getvalue(), hint="IN\n", chk_file=chk))
    assert (result["result_code"], result["result_string"]) == ("OK", "20 22")


def test_checker_exit_status_2_is_a_system_error(ft_store, sum_c, checker):
    env = exec_env(ft_store, sum_c, hint="EXIT 2", chk_file=ft_store.put("chk", path=checker))
    with pytest.raises(SystemError) as info:
        runner.run(env)
    assert "checker says: broken" in str(info.value)
    assert "checker complains on stderr" in str(info.value)
    assert "code 2" in str(info.value)


def test_checker_exit_status_1_is_its_answer(ft_store, sum_c, checker):
    env = exec_env(ft_store, sum_c, hint="EXIT 1", chk_file=ft_store.put("chk", path=checker))
    result = run_job(env)
    assert (result["result_code"], result["result_string"]) == ("WA", "")


def test_checker_invalid_score_is_a_system_error(ft_store, sum_c, checker):
    env = exec_env(ft_store, sum_c, hint="OK\n\n50 points\n",
                   chk_file=ft_store.put("chk", path=checker))
    with pytest.raises(SystemError, match="Invalid checker output"):
        runner.run(env)


def test_checker_huge_comment_is_cut(ft_store, sum_c, checker):
    env = exec_env(ft_store, sum_c, hint="HUGE 3000000",
                   chk_file=ft_store.put("chk", path=checker))
    result = run_job(env)
    assert result["result_code"] == "OK"
    assert result["result_percentage"] == [50, 1]
    assert len(result["result_string"].encode()) == 1024
    assert result["result_string"].endswith("[...]")


def test_checker_flooding_output_is_read_and_dropped(ft_store, sum_c, checker):
    env = exec_env(ft_store, sum_c, hint="FLOOD 60000000",
                   chk_file=ft_store.put("chk", path=checker))
    result = run_job(env)
    assert (result["result_code"], result["result_percentage"]) == ("WA", [0, 1])
    assert len(result["result_string"]) == 0


def test_checker_not_run_when_program_failed(ft_store, c_program, checker):
    env = exec_env(ft_store, c_program("sig_segv"), hint="EXIT 2",
                   chk_file=ft_store.put("chk", path=checker))
    result = run_job(env)  # a checker run would raise
    assert (result["result_code"], result["result_percentage"]) == ("RE", [0, 1])


def test_non_utf8_output(ft_store, c_program, checker):
    exe = c_program("judge_sum", "-DNON_UTF8")
    result = run_job(exec_env(ft_store, exe))
    assert result["result_code"] == "WA"
    result = run_job(exec_env(ft_store, exe, hint="OUT\n",
                              chk_file=ft_store.put("chk", path=checker)))
    assert result["result_code"] == "OK"
    assert result["result_string"] == "\ufffd\ufffd\ufffd 5"


# --------------------------------------------------------------------------
# Files: zipped input, extra files, outputs
# --------------------------------------------------------------------------

def test_zipped_input_with_one_file(ft_store, sum_c):
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("1a.in", "100 23\n")
    result = run_job(exec_env(ft_store, sum_c, archive.getvalue(), "123\n"))
    assert result["result_code"] == "OK"


def test_zipped_input_with_two_files_fails_the_job(ft_store, sum_c):
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("1a.in", "1 2\n")
        z.writestr("1b.in", "3 4\n")
    with pytest.raises(BadInputArchive, match="exactly one file"):
        runner.run(exec_env(ft_store, sum_c, archive.getvalue()))


def test_extra_execution_files_and_args(ft_store, c_program):
    env = exec_env(ft_store, c_program("judge_files"), "", "hello --fast\n",
                   extra_execution_files={"dict.txt": ft_store.put("dict.txt", "hello world\n")},
                   extra_execution_args=["--fast"])
    result = run_job(env)
    assert result["result_code"] == "OK", result


def test_upload_out_outgen(ft_store, sum_c):
    # outgen (clients.md §1.3 (g)): no check_output, the output uploaded
    out_file = ft_store.name("1a.out")
    env = exec_env(ft_store, sum_c, "20 22\n", None, out_file=out_file, upload_out=True)
    del env["check_output"]
    result = run_job(env)
    assert result["result_code"] == "OK"
    assert result["result_percentage"] == [0, 1]
    assert result["out_file"].startswith(out_file + "@")
    assert ft_store.get(result["out_file"]) == b"42\n"


def test_test_run_without_checking(ft_store, c_program):
    out_file = ft_store.name("testrun-out")
    env = exec_env(ft_store, c_program("judge_sum", "-DWRONG"), "1 1\n", None,
                   check_output=False, out_file=out_file, upload_out=True)
    result = run_job(env)
    assert result["result_code"] == "OK"
    assert ft_store.get(result["out_file"]) == b"3\n"


def test_local_paths_without_filetracker(tmp_path, sum_c):
    (tmp_path / "t.in").write_text("2 2\n")
    (tmp_path / "t.out").write_text("4\n")
    env = {"job_type": "unsafe-exec", "use_filetracker": False, "exe_file": sum_c,
           "in_file": str(tmp_path / "t.in"), "hint_file": str(tmp_path / "t.out"),
           "check_output": True, "out_file": str(tmp_path / "res.out"), "upload_out": True}
    result = run_job(env)
    assert result["result_code"] == "OK"
    assert (tmp_path / "res.out").read_bytes() == b"4\n"


# --------------------------------------------------------------------------
# Local files: tests hard-linked, programs copied, the user's files untouched
# --------------------------------------------------------------------------

@pytest.fixture
def fetched(monkeypatch):
    """``{environ key: (st_dev, st_ino, mode)}`` of each file as the job
    downloaded it (seen by wrapping sio.workers.ft.download)."""
    from sio.workers import ft

    seen: dict[str, tuple[int, int, int]] = {}
    real = ft.download

    def spy(environ, key, *args, **kwargs):
        path = real(environ, key, *args, **kwargs)
        st = os.stat(path)
        seen[key] = (st.st_dev, st.st_ino, stat.S_IMODE(st.st_mode))
        return path

    monkeypatch.setattr(ft, "download", spy)
    return seen


def identity(path) -> tuple[int, int]:
    st = os.stat(path)
    return st.st_dev, st.st_ino


def snapshot(*paths) -> dict:
    return {str(p): (p.read_bytes(), stat.S_IMODE(os.stat(p).st_mode), os.stat(p).st_nlink)
            for p in paths}


def same_fs_as_jobs(path) -> bool:
    return os.stat(path).st_dev == os.stat(tempfile.gettempdir()).st_dev


@pytest.mark.parametrize("exe_mode", [0o750, 0o755])
@pytest.mark.parametrize("job_type", ["unsafe-exec", "exec"])
def test_local_tests_are_linked_and_the_users_files_left_untouched(tmp_path, sum_c, fetched,
                                                                   job_type, exe_mode):
    exe, t_in, t_out = tmp_path / "sum", tmp_path / "t.in", tmp_path / "t.out"
    shutil.copy(sum_c, exe)
    # 0750: no o+rx, which the supervisor gives to the program: a copy then.
    # 0755 (what a compiler makes): running it adds nothing, it is linked.
    os.chmod(exe, exe_mode)
    t_in.write_text("2 2\n")
    os.chmod(t_in, 0o644)
    t_out.write_text("4\n")
    os.chmod(t_out, 0o444)
    before = snapshot(exe, t_in, t_out)
    env = {"job_type": job_type, "use_filetracker": False, "exe_file": str(exe),
           "in_file": str(t_in), "hint_file": str(t_out), "check_output": True,
           "exec_info": {"mode": "executable"}, "exec_time_limit": 2000,
           "exec_mem_limit": 65536}
    for _ in range(2):  # the second job runs in a reused directory
        result = run_job(dict(env))
        assert (result["result_code"], result["result_percentage"]) == ("OK", [100, 1])
        if same_fs_as_jobs(tmp_path):
            assert fetched["in_file"][:2] == identity(t_in)
            assert fetched["hint_file"][:2] == identity(t_out)
        exe_linked = fetched["exe_file"][:2] == identity(exe)
        assert exe_linked == (exe_mode == 0o755 and same_fs_as_jobs(tmp_path))
        assert snapshot(exe, t_in, t_out) == before  # content, mode, no link left


@pytest.mark.parametrize("test_mode", [0o600, 0o644], ids=["private", "world-readable"])
def test_local_files_and_an_untrusted_checker(tmp_path, sum_c, checker, fetched, test_mode):
    # The untrusted checker runs supervised and may read every file of the
    # job directory: the supervisor adds o+r to them. A test file others may
    # not read is therefore copied, never linked, and the user's files keep
    # their modes either way.
    exe, chk, t_in, t_out = (tmp_path / n for n in ("sum", "chk", "t.in", "t.out"))
    shutil.copy(sum_c, exe)
    shutil.copy(checker, chk)
    os.chmod(chk, 0o700)
    t_in.write_text("20 22\n")
    t_out.write_text("IN\n")  # the checker answers OK with the first line of 'in'
    for p in (t_in, t_out):
        os.chmod(p, test_mode)
    before = snapshot(exe, chk, t_in, t_out)
    env = {"job_type": "exec", "use_filetracker": False, "exe_file": str(exe),
           "in_file": str(t_in), "hint_file": str(t_out), "chk_file": str(chk),
           "untrusted_checker": True, "check_output": True,
           "exec_info": {"mode": "executable"}}
    result = run_job(env)
    assert (result["result_code"], result["result_string"]) == ("OK", "20 22")
    linked = fetched["in_file"][:2] == identity(t_in)
    assert linked == (test_mode == 0o644 and same_fs_as_jobs(tmp_path))
    assert fetched["chk_file"][:2] != identity(chk)
    assert snapshot(exe, chk, t_in, t_out) == before


def test_a_local_zipped_input_is_unpacked_beside_the_link(tmp_path, sum_c, checker, fetched):
    archive = tmp_path / "t.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("t.in", "20 22\n")
    os.chmod(archive, 0o644)
    (tmp_path / "t.out").write_text("IN\n")
    before = snapshot(archive)
    env = {"job_type": "unsafe-exec", "use_filetracker": False, "exe_file": sum_c,
           "in_file": str(archive), "hint_file": str(tmp_path / "t.out"),
           "chk_file": checker, "check_output": True, "exec_info": {"mode": "executable"}}
    result = run_job(env)
    assert (result["result_code"], result["result_string"]) == ("OK", "20 22")
    if same_fs_as_jobs(tmp_path):
        assert fetched["in_file"][:2] == identity(archive)
    assert snapshot(archive) == before  # the unpacked file replaced the link


# --------------------------------------------------------------------------
# Output-only and the supervised job types
# --------------------------------------------------------------------------

@pytest.mark.parametrize("job_type", ["exec", "cpu-exec", "unsafe-exec"])
def test_output_only(ft_store, job_type):
    def env(answer, **keys):
        return exec_env(ft_store, "/dev/null", None, "1 2 3\n4\n", job_type=job_type,
                        exe_file=ft_store.put("ans.txt", answer),
                        exec_info={"mode": "output-only"}, **keys)

    result = run_job(env("1 2 3\n4\n"))
    assert (result["result_code"], result["result_percentage"]) == ("OK", [100, 1])
    result = run_job(env("1 2 3\n5\n"))
    assert (result["result_code"], result["result_percentage"]) == ("WA", [0, 1])
    if job_type != "unsafe-exec":  # oicompare's messages
        assert result["result_string"] == 'WRONG: line 2: expected "4", got "5"'
        result = run_job(env("1 2 3\n5\n", checker_format="polish_terse"))
        assert result["result_string"] == "BŁĄD"


@pytest.mark.parametrize("job_type", ["exec", "cpu-exec"])
def test_supervised_jobs_refuse_to_run_unsupervised(ft_store, sum_c, job_type, monkeypatch):
    monkeypatch.delattr(executors, "SupervisedExecutor")
    with pytest.raises(ExecutorUnavailable, match="supervised executor is not available"):
        runner.run(exec_env(ft_store, sum_c, job_type=job_type))


@pytest.mark.parametrize("job_type", ["exec", "cpu-exec"])
def test_supervised_jobs(ft_store, sum_c, c_program, job_type):
    result = run_job(exec_env(ft_store, sum_c, job_type=job_type))
    assert (result["result_code"], result["result_percentage"]) == ("OK", [100, 1])
    result = run_job(exec_env(ft_store, c_program("judge_sum", "-DWRONG"), job_type=job_type))
    assert result["result_code"] == "WA"
    assert result["result_string"] == 'WRONG: line 1: expected "5", got "6"'
    result = run_job(exec_env(ft_store, c_program("fork_child"), job_type=job_type))
    assert result["result_code"] == "RV"


# clients.md §4 scenarios 7 to 10 with the supervised job: the verdict
# strings are the supervisor's (as the original supervisor and sio2jail
# wrote them), the limits are echoed, the checker never runs.
@pytest.mark.parametrize("program, args, keys, code, string", [
    ("busy_loop", [], {"exec_time_limit": 300}, "TLE", "time limit exceeded"),
    # No exec_real_time_limit, as oioioi sends it: the judging jobs' guard
    # (2 x the time limit + 1 s) stops a sleeping program.
    ("sleep_forever", [], {"exec_time_limit": 300}, "TLE", "real time limit exceeded"),
    ("mem_30MiB_heap", [], {"exec_mem_limit": 16384}, "MLE", "memory limit exceeded"),
    ("sig_segv", [], {}, "RE", "process exited due to signal 11"),
    ("exit_with", ["1"], {}, "RE", "runtime error 1"),
    ("hostile_fork", [], {}, "RV", "intercepted forbidden syscall"),
    ("hostile_output_flood", [], {"exec_output_limit": 100000}, "OLE",
     "output limit exceeded"),
])
def test_supervised_job_verdicts(ft_store, c_program, checker, program, args, keys, code,
                                 string):
    env = exec_env(ft_store, c_program(program), job_type="exec", extra_execution_args=args,
                   hint="EXIT 2", chk_file=ft_store.put("chk", path=checker), **keys)
    start = time.monotonic()
    result = run_job(env)  # a checker run would raise
    assert (result["result_code"], result["result_percentage"]) == (code, [0, 1]), result
    assert result["result_string"].startswith(string), result["result_string"]
    if code == "TLE" and program == "busy_loop":
        assert result["time_used"] >= 280
    if program == "sleep_forever":  # killed by the guard at 2 x 300 + 1000 ms
        assert time.monotonic() - start >= 1.5
    assert time.monotonic() - start < 20
