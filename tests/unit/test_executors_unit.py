"""The pure parts of executors, results, file runners and the engine."""

from __future__ import annotations

import resource
import sys
import types

import pytest

from sio.workers import file_runners
from sio.workers._engine import process
from sio.workers._engine.types import KillReason, Limits, Outcome
from sio.workers.errors import UsageError
from sio.workers.executors import (
    BaseExecutor,
    DetailedUnprotectedExecutor,
    ExecLimits,
    ExecRequest,
    UnprotectedExecutor,
    _direct_argv,
    noquote,
    return_code,
    shellquote,
)
from sio.workers.results import ResultCode


# --------------------------------------------------------------------------
# Quoting
# --------------------------------------------------------------------------

def test_shellquote_quotes_each_argument():
    assert shellquote(["echo", "a b", "it's", "$X"]) == "'echo' 'a b' 'it'\\''s' '$X'"


def test_shellquote_noquote_and_nested_lists():
    assert shellquote(["prog", noquote("<"), "in"]) == "'prog' < 'in'"
    assert shellquote(["sh", "-c", ["echo", "x y"]]) == "'sh' '-c' ''\\''echo'\\'' '\\''x y'\\'''"
    assert shellquote("echo $HOME") == "echo $HOME"


def test_direct_argv_only_without_shell_syntax():
    assert _direct_argv(["prog", "a b", 3]) == ["prog", "a b", "3"]
    assert _direct_argv(["sh", "-c", ["echo", "x"]]) == ["sh", "-c", "'echo' 'x'"]
    assert _direct_argv(["prog", noquote(">"), "out"]) is None


# --------------------------------------------------------------------------
# Limits
# --------------------------------------------------------------------------

def test_limits_from_arguments():
    limits = ExecLimits.build(time_limit=1000, mem_limit=65536, output_limit=10)
    assert limits == ExecLimits(time_limit_ms=1000, real_time_limit_ms=None,
                                mem_limit_kib=65536, output_limit_bytes=10)


def test_environ_overrides_arguments_with_prefix():
    environ = {"exec_time_limit": 500, "exec_mem_limit": "1024", "time_limit": 1,
               "exec_output_limit": None}
    limits = ExecLimits.build(environ, "exec_", time_limit=1000, real_time_limit=7,
                              output_limit=99)
    assert limits == ExecLimits(time_limit_ms=500, real_time_limit_ms=7,
                                mem_limit_kib=1024, output_limit_bytes=99)


@pytest.mark.parametrize("value", [-1, "abc", 1.5, True, [1]])
def test_bad_limit_names_the_key(value):
    with pytest.raises(UsageError, match="'checker_time_limit'"):
        ExecLimits.build({"checker_time_limit": value}, "checker_")
    with pytest.raises(UsageError, match="argument mem_limit"):
        ExecLimits.build(mem_limit=value)


def request(**limits):
    return ExecRequest(command=["x"], env={}, cwd="/", limits=ExecLimits(**limits))


def test_unprotected_engine_limits():
    ex = UnprotectedExecutor()
    assert ex._engine_limits(request(time_limit_ms=1000, mem_limit_kib=2048,
                                     output_limit_bytes=5)) == \
        Limits(cpu_time_ms=1000, wall_time_ms=2000, address_space_kib=2048, stack_kib=2048,
               capture_bytes=5)
    assert ex._engine_limits(request(time_limit_ms=1000, real_time_limit_ms=1500)) \
        .wall_time_ms == 1500
    # 0 means "no limit": no default real-time limit either
    assert ex._engine_limits(request(time_limit_ms=1000, real_time_limit_ms=0)) \
        .wall_time_ms is None
    assert ex._engine_limits(request(time_limit_ms=0, mem_limit_kib=0)) == Limits()


# --------------------------------------------------------------------------
# Verdicts
# --------------------------------------------------------------------------

def outcome(**kwargs):
    base = dict(exit_code=None, signal=None, cpu_time_ms=10, wall_time_ms=10)
    base.update(kwargs)
    return Outcome(**base)


@pytest.mark.parametrize("result, limit, code, message", [
    (outcome(exit_code=0), 1000, "OK", "ok"),
    (outcome(exit_code=0, cpu_time_ms=950), 1000, "TLE", "time limit exceeded"),
    (outcome(exit_code=0, cpu_time_ms=949), 1000, "OK", "ok"),
    (outcome(signal=9, cpu_time_ms=1010, killed=KillReason.CPU_TIME), 1000, "TLE",
     "time limit exceeded"),
    (outcome(signal=9, killed=KillReason.WALL_TIME), 1000, "TLE", "real time limit exceeded"),
    (outcome(signal=11), None, "RE", "program exited due to signal 11"),
    (outcome(exit_code=3), None, "RE", "program exited with code 3"),
])
def test_detailed_verdicts(result, limit, code, message):
    renv = DetailedUnprotectedExecutor()._renv(request(time_limit_ms=limit), result)
    assert (renv["result_code"], renv["result_string"]) == (code, message)
    assert type(renv["result_code"]) is str


@pytest.mark.parametrize("status, signal", [(141, 13), (137, 9), (255, 127), (129, 1)])
def test_detailed_reads_a_status_above_128_as_a_signal(status, signal):
    # The original ran programs through a shell: status 128 + N was signal N
    # (oioioi's interactors 'return 128 + 13' to be judged as killed by
    # SIGPIPE).
    renv = DetailedUnprotectedExecutor()._renv(request(), outcome(exit_code=status))
    assert (renv["result_code"], renv["result_string"], renv["exit_signal"],
            renv["return_code"]) == \
        ("RE", f"program exited due to signal {signal}", signal, status)


def test_detailed_status_128_and_below_is_an_exit_code():
    renv = DetailedUnprotectedExecutor()._renv(request(), outcome(exit_code=128))
    assert (renv["result_string"], "exit_signal" in renv) == \
        ("program exited with code 128", False)


def test_supervised_reports_a_status_above_128_as_it_is():
    from sio.workers.executors import SupervisedExecutor

    renv = SupervisedExecutor()._renv(request(), outcome(exit_code=141))
    assert renv["result_code"] == "RE" and renv["return_code"] == 141
    assert "exit_signal" not in renv and "signal" not in renv["result_string"]


def test_return_code_of_a_signal_is_128_plus_it():
    assert return_code(outcome(exit_code=0)) == 0
    assert return_code(outcome(exit_code=5)) == 5
    assert return_code(outcome(signal=11)) == 139


def test_result_codes_are_strings():
    assert [c.value for c in ResultCode] == ["OK", "WA", "RE", "TLE", "MLE", "OLE", "RV",
                                             "SE", "CE"]
    assert ResultCode.TLE == "TLE" and str(ResultCode.TLE) == "TLE"


# --------------------------------------------------------------------------
# File runners
# --------------------------------------------------------------------------

class RecordingExecutor(BaseExecutor):
    def __init__(self):
        self.calls = []

    def __call__(self, command, **kwargs):
        self.calls.append((command, kwargs))
        return {"return_code": 0}


def test_unknown_mode_or_executor_is_a_clear_system_error():
    with pytest.raises(SystemError, match="'brainfuck'.*UnprotectedExecutor.*executable, java"):
        file_runners.get_file_runner(UnprotectedExecutor(), {"exec_info": {"mode": "brainfuck"}})
    with pytest.raises(file_runners.NoFileRunner, match="RecordingExecutor.*nothing"):
        file_runners.get_file_runner(RecordingExecutor(), {})


def test_registry_and_executable_command(monkeypatch):
    monkeypatch.setattr(file_runners, "_runners", dict(file_runners._runners))
    file_runners.register_file_runner("executable", RecordingExecutor, file_runners.Executable)
    ex = RecordingExecutor()
    environ = {}
    runner = file_runners.get_file_runner(ex, environ)
    assert environ == {"exec_info": {"mode": "executable"}}
    runner("exe", ["a"], cwd="/nonexistent", time_limit=5)
    runner("/abs/prog", [], cwd="/nonexistent")
    assert ex.calls == [(["./exe", "a"], {"cwd": "/nonexistent", "time_limit": 5}),
                        (["/abs/prog"], {"cwd": "/nonexistent"})]


def test_java_heap_and_stack_from_the_memory_limit():
    ex = RecordingExecutor()
    job = {"exec_info": {"mode": "java"}, "exec_mem_limit": 65536, "other": 1}
    java = file_runners.Java(ex, job)
    assert java.preferred_filename() == "a.jar"
    java("a.jar", ["x"], environ=job, environ_prefix="exec_", cwd="/nonexistent")
    command, kwargs = ex.calls[-1]
    assert command == ["java", "-Xmx65536k", "-Xms65536k", "-Xss65536k", "-jar", "a.jar", "x"]
    assert kwargs["environ"] == {"exec_info": {"mode": "java"}, "other": 1}
    assert kwargs["mem_limit"] is None
    assert job["exec_mem_limit"] == 65536  # not popped from the job's environ

    job = {"exec_info": {"mode": "java", "main_class": "Main"}}
    java = file_runners.Java(ex, job)
    assert java.preferred_filename() == "Main.jar"
    java("Main.jar", [], mem_limit=1024, cwd="/nonexistent")
    assert ex.calls[-1][0] == ["java", "-Xmx1024k", "-Xms1024k", "-Xss1024k",
                               "-classpath", "Main.jar", "Main"]
    java("Main.jar", [], cwd="/nonexistent")
    assert ex.calls[-1][0] == ["java", "-classpath", "Main.jar", "Main"]


def test_extra_execution_files_go_through_ft_download(monkeypatch, tmp_path):
    # A stand-in for sio.workers.ft, checking the documented contract
    # ft.download(environ, key, dest, **kwargs) -> path.
    calls = []

    def download(environ, key, dest=None, skip_if_exists=False, **kwargs):
        calls.append((dict(environ), key, dest, kwargs))
        return dest

    monkeypatch.setitem(sys.modules, "sio.workers.ft", types.SimpleNamespace(download=download))
    import sio.workers

    monkeypatch.setattr(sio.workers, "ft", sys.modules["sio.workers.ft"], raising=False)
    environ = {"extra_execution_files": {"lib.txt": "/problems/1/lib.txt"},
               "use_filetracker": "auto"}
    paths = file_runners.fetch_extra_execution_files(environ, str(tmp_path))
    assert paths == [str(tmp_path / "lib.txt")]
    assert calls == [({"extra_execution_file": "/problems/1/lib.txt", "use_filetracker": "auto"},
                      "extra_execution_file", str(tmp_path / "lib.txt"), {"add_to_cache": True})]
    with pytest.raises(UsageError, match="relative to the run directory"):
        file_runners.fetch_extra_execution_files(
            {"extra_execution_files": {"../escape": "/x"}}, str(tmp_path))
    with pytest.raises(UsageError, match="must be a dict"):
        file_runners.fetch_extra_execution_files({"extra_execution_files": ["x"]},
                                                 str(tmp_path))
    assert file_runners.fetch_extra_execution_files({}, str(tmp_path)) == []


# --------------------------------------------------------------------------
# The engine's limit translation
# --------------------------------------------------------------------------

def test_rlimits_and_wrapper_argv():
    rl = process._rlimits(Limits(cpu_time_ms=2500, address_space_kib=10, output_bytes=7))
    assert rl == {resource.RLIMIT_CORE: (resource.RLIMIT_CORE, 0, 0),
                  resource.RLIMIT_AS: (resource.RLIMIT_AS, 10240, 10240),
                  resource.RLIMIT_CPU: (resource.RLIMIT_CPU, 4, 5),
                  resource.RLIMIT_FSIZE: (resource.RLIMIT_FSIZE, 7, 7)}
    assert process._wrapper_argv("/w", rl, "/bin/prog", ["a"]) == \
        ["/w", "10240", "4", "5", "7", "-", "0", "--", "/bin/prog", "a"]


# --------------------------------------------------------------------------
# Checkers and interactors sent without an exec_info
# --------------------------------------------------------------------------

@pytest.mark.parametrize("line, expected", [
    (b"#!/usr/bin/python3\n", ["/usr/bin/python3"]),
    (b"#! /usr/bin/env  python3 \r\n", ["/usr/bin/env", "python3"]),
    (b"#!/usr/bin/env -S python3 -u\n", ["/usr/bin/env", "-S python3 -u"]),
    (b"#!/bin/sh", ["/bin/sh"]),
    (b"#!\n", None),
    (b"\x7fELF", None),
    (b"", None),
])
def test_read_shebang(tmp_path, line, expected):
    path = tmp_path / "chk"
    path.write_bytes(line)
    assert file_runners.read_shebang(path) == expected


@pytest.mark.parametrize("shebang, python", [
    (["/usr/bin/python3"], True), (["/usr/local/bin/python3.12"], True),
    (["/usr/bin/python"], True), (["/usr/bin/env", "python3"], True),
    (["/usr/bin/env", "-S python3 -u"], True), (["/bin/sh"], False),
    (["/usr/bin/env", "bash"], False), (["/usr/bin/pythonista"], False),
    (["/usr/bin/python3-config"], False),
])
def test_is_python_shebang(shebang, python):
    assert file_runners.is_python_shebang(shebang) is python


def test_helper_program_kind(tmp_path):
    import zipfile

    def kind(name, data):
        (tmp_path / name).write_bytes(data)
        return file_runners.helper_program_kind(tmp_path / name)

    assert kind("elf", b"\x7fELF\x02\x01\x01" + bytes(64)) == "executable"
    assert kind("py", b"#!/usr/bin/env python3\nprint('OK')\n") == "python"
    assert kind("sh", b"#!/bin/sh\necho OK\n") == "script"
    assert kind("text", b"print('OK')\n") == "executable"  # what the kernel cannot start
    with zipfile.ZipFile(tmp_path / "app", "w") as zf:
        zf.writestr("__main__.py", "print('OK')\n")
    assert file_runners.helper_program_kind(tmp_path / "app") == "python"
    with zipfile.ZipFile(tmp_path / "data", "w") as zf:
        zf.writestr("other.py", "")
    assert file_runners.helper_program_kind(tmp_path / "data") == "executable"
    assert kind("broken-zip", b"PK\x03\x04 not really") == "executable"
