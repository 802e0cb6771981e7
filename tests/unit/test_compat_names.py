"""Every public module-level name of the original sioworkers (1.3 and
1.5.9; ../shared/reference/public-names.md) is defined here and does what
the original's did; the few left out are listed in docs/differences.rst
with the reason. Behaviour that needs real programs is in
tests/integration/test_compat_names.py."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from tests.unit.test_celery_config import OLD_DEFAULTS, config_module, loaded_conf  # noqa: F401

#: (module, name, kind) of every public module-level name of the original.
ORIGINAL_NAMES = [
    ("sio.celery.default_config", "CELERY_ACKS_LATE", "constant"),
    ("sio.celery.default_config", "CELERY_DEFAULT_QUEUE", "constant"),
    ("sio.celery.default_config", "CELERY_IMPORTS", "constant"),
    ("sio.celery.default_config", "CELERY_QUEUES", "constant"),
    ("sio.celery.default_config", "CELERY_RESULT_BACKEND", "constant"),
    ("sio.celery.default_config", "CELERY_ROUTES", "constant"),
    ("sio.celery.default_config", "CELERY_SEND_EVENTS", "constant"),
    ("sio.celery.job", "sioworkers_job", "function"),
    ("sio.celery.worker", "main", "function"),
    ("sio.compilers.common", "Compiler", "class"),
    ("sio.compilers.common", "DEFAULT_COMPILER_MEM_LIMIT", "constant"),
    ("sio.compilers.common", "DEFAULT_COMPILER_OUTPUT_LIMIT", "constant"),
    ("sio.compilers.common", "DEFAULT_COMPILER_TIME_LIMIT", "constant"),
    ("sio.compilers.fpc", "FPCCompiler", "class"),
    ("sio.compilers.fpc", "run_fpc2_6_2", "function"),
    ("sio.compilers.fpc", "run_fpc_default", "function"),
    ("sio.compilers.fpc", "run_pas_default", "constant"),
    ("sio.compilers.fpc", "run_pas_fpc2_6_2", "constant"),
    ("sio.compilers.gcc", "CCompiler", "class"),
    ("sio.compilers.gcc", "CPPCompiler", "class"),
    ("sio.compilers.gcc", "run_c_default", "constant"),
    ("sio.compilers.gcc", "run_c_gcc12_2_0_c17", "constant"),
    ("sio.compilers.gcc", "run_c_gcc14_2_0_c17", "constant"),
    ("sio.compilers.gcc", "run_c_gcc4_8_2_c99", "constant"),
    ("sio.compilers.gcc", "run_cpp_default", "constant"),
    ("sio.compilers.gcc", "run_cpp_gcc10_2_cpp17_amd64", "constant"),
    ("sio.compilers.gcc", "run_cpp_gcc12_2_cpp20_amd64", "constant"),
    ("sio.compilers.gcc", "run_cpp_gcc14_2_cpp23_amd64", "constant"),
    ("sio.compilers.gcc", "run_cpp_gcc4_8_2_cpp11", "constant"),
    ("sio.compilers.gcc", "run_cpp_gcc6_3_cpp14", "constant"),
    ("sio.compilers.gcc", "run_cpp_gcc8_3_cpp17", "constant"),
    ("sio.compilers.gcc", "run_cpp_gcc8_3_cpp17_amd64", "constant"),
    ("sio.compilers.gcc", "run_gcc", "function"),
    ("sio.compilers.gcc", "run_gcc4_8_2_c99", "function"),
    ("sio.compilers.gcc", "run_gcc_default", "function"),
    ("sio.compilers.gcc", "run_gplusplus", "function"),
    ("sio.compilers.gcc", "run_gplusplus4_8_2_cpp11", "function"),
    ("sio.compilers.gcc", "run_gplusplus_default", "function"),
    ("sio.compilers.java", "JavaCompiler", "class"),
    ("sio.compilers.java", "run_java1_8", "constant"),
    ("sio.compilers.java", "run_java_default", "constant"),
    ("sio.compilers.job", "main", "function"),
    ("sio.compilers.job", "run", "function"),
    ("sio.compilers.output", "run", "function"),
    ("sio.compilers.system_fpc", "FPCCompiler", "class"),
    ("sio.compilers.system_fpc", "run", "function"),
    ("sio.compilers.system_gcc", "CCompiler", "class"),
    ("sio.compilers.system_gcc", "CPPCompiler", "class"),
    ("sio.compilers.system_gcc", "CStyleCompiler", "class"),
    ("sio.compilers.system_gcc", "run_gcc", "function"),
    ("sio.compilers.system_gcc", "run_gplusplus", "function"),
    ("sio.compilers.system_java", "JavaCompiler", "class"),
    ("sio.compilers.system_java", "run", "function"),
    ("sio.compilers.system_java", "run_default", "constant"),
    ("sio.compilers.template", "run", "function"),
    ("sio.compilers.template", "run_default", "function"),
    ("sio.executors.checker", "CheckerError", "class"),
    ("sio.executors.checker", "DEFAULT_CHECKER_MEM_LIMIT", "constant"),
    ("sio.executors.checker", "DEFAULT_CHECKER_TIME_LIMIT", "constant"),
    ("sio.executors.checker", "RESULT_STRING_LENGTH_LIMIT", "constant"),
    ("sio.executors.checker", "output_to_fraction", "function"),
    ("sio.executors.checker", "run", "function"),
    ("sio.executors.common", "run", "function"),
    ("sio.executors.executor", "interactive_run", "function"),
    ("sio.executors.executor", "run", "function"),
    ("sio.executors.ingen", "DEFAULT_INGEN_MEM_LIMIT", "constant"),
    ("sio.executors.ingen", "DEFAULT_INGEN_OUTPUT_LIMIT", "constant"),
    ("sio.executors.ingen", "DEFAULT_INGEN_TIME_LIMIT", "constant"),
    ("sio.executors.ingen", "run", "function"),
    ("sio.executors.interactive_common", "DEFAULT_INTERACTOR_MEM_LIMIT", "constant"),
    ("sio.executors.interactive_common", "InteractorError", "class"),
    ("sio.executors.interactive_common", "Pipes", "class"),
    ("sio.executors.interactive_common", "RESULT_STRING_LENGTH_LIMIT", "constant"),
    ("sio.executors.interactive_common", "run", "function"),
    ("sio.executors.inwer", "DEFAULT_INWER_MEM_LIMIT", "constant"),
    ("sio.executors.inwer", "DEFAULT_INWER_OUTPUT_LIMIT", "constant"),
    ("sio.executors.inwer", "DEFAULT_INWER_TIME_LIMIT", "constant"),
    ("sio.executors.inwer", "run", "function"),
    ("sio.executors.sio2jail_exec", "interactive_run", "function"),
    ("sio.executors.sio2jail_exec", "run", "function"),
    ("sio.executors.unsafe_exec", "interactive_run", "function"),
    ("sio.executors.unsafe_exec", "run", "function"),
    ("sio.workers", "Failure", "class"),
    ("sio.workers.elf_loader_patch", "EXT", "constant"),
    ("sio.workers.execute", "execute", "function"),
    ("sio.workers.executors", "BaseExecutor", "class"),
    ("sio.workers.executors", "CompoundSandboxExecutor", "class"),
    ("sio.workers.executors", "DetailedUnprotectedExecutor", "class"),
    ("sio.workers.executors", "ExecError", "class"),
    ("sio.workers.executors", "PRoot32BitExecutor", "class"),
    ("sio.workers.executors", "PRootExecutor", "class"),
    ("sio.workers.executors", "RealTimeSio2JailExecutor", "class"),
    ("sio.workers.executors", "SandboxExecutor", "class"),
    ("sio.workers.executors", "Sio2JailExecutor", "class"),
    ("sio.workers.executors", "SupervisedExecutor", "class"),
    ("sio.workers.executors", "TIME_OUTPUT_RE", "constant"),
    ("sio.workers.executors", "UnprotectedExecutor", "class"),
    ("sio.workers.executors", "execute_command", "function"),
    ("sio.workers.executors", "noquote", "class"),
    ("sio.workers.executors", "shellquote", "function"),
    ("sio.workers.executors", "ulimit", "function"),
    ("sio.workers.file_runners", "Executable", "class"),
    ("sio.workers.file_runners", "Java", "class"),
    ("sio.workers.file_runners", "JavaSIO", "class"),
    ("sio.workers.file_runners", "LanguageModeWrapper", "class"),
    ("sio.workers.file_runners", "NoOp", "class"),
    ("sio.workers.file_runners", "get_file_runner", "function"),
    ("sio.workers.ft", "download", "function"),
    ("sio.workers.ft", "ft_clients", "constant"),
    ("sio.workers.ft", "get_cache_dir", "function"),
    ("sio.workers.ft", "get_url_hash", "function"),
    ("sio.workers.ft", "init_instance", "function"),
    ("sio.workers.ft", "instance", "function"),
    ("sio.workers.ft", "launch_filetracker_server", "function"),
    ("sio.workers.ft", "lock", "constant"),
    ("sio.workers.ft", "set_instance", "function"),
    ("sio.workers.ft", "upload", "function"),
    ("sio.workers.ping", "run", "function"),
    ("sio.workers.runner", "main", "function"),
    ("sio.workers.runner", "run", "function"),
    ("sio.workers.sandbox", "CHECK_INTERVAL", "constant"),
    ("sio.workers.sandbox", "NullSandbox", "class"),
    ("sio.workers.sandbox", "PristineSandbox", "class"),
    ("sio.workers.sandbox", "SANDBOXES_BASEDIR", "constant"),
    ("sio.workers.sandbox", "SANDBOXES_URL", "constant"),
    ("sio.workers.sandbox", "Sandbox", "class"),
    ("sio.workers.sandbox", "SandboxError", "class"),
    ("sio.workers.sandbox", "get_sandbox", "function"),
    ("sio.workers.util", "ClassInitBase", "class"),
    ("sio.workers.util", "ClassInitMeta", "class"),
    ("sio.workers.util", "CompatibleJSONEncoder", "class"),
    ("sio.workers.util", "PerfTimer", "class"),
    ("sio.workers.util", "RegisteredSubclassesBase", "class"),
    ("sio.workers.util", "TemporaryCwd", "class"),
    ("sio.workers.util", "Writable", "class"),
    ("sio.workers.util", "ceil_ms2s", "function"),
    ("sio.workers.util", "decode_fields", "function"),
    ("sio.workers.util", "first_entry_point", "function"),
    ("sio.workers.util", "is_exe", "function"),
    ("sio.workers.util", "json_dumps", "function"),
    ("sio.workers.util", "mkdir", "function"),
    ("sio.workers.util", "ms2s", "function"),
    ("sio.workers.util", "null_ctx_manager", "function"),
    ("sio.workers.util", "path_join_abs", "function"),
    ("sio.workers.util", "replace_invalid_UTF", "function"),
    ("sio.workers.util", "rmtree", "function"),
    ("sio.workers.util", "s2ms", "function"),
    ("sio.workers.util", "tempcwd", "function"),
    ("sio.workers.util", "threadlocal_dir", "constant"),
]

#: Names only the original's implementation needed, left out on purpose
#: (each is listed in docs/differences.rst with the reason).
LEFT_OUT = {
    ("sio.workers.util", "threadlocal_dir"),
}

DOCS = Path(__file__).resolve().parents[2] / "docs" / "differences.rst"


def test_the_list_is_the_whole_list():
    assert len(ORIGINAL_NAMES) == 149
    assert len(set((m, n) for m, n, _ in ORIGINAL_NAMES)) == 149
    assert LEFT_OUT <= {(m, n) for m, n, _ in ORIGINAL_NAMES}
    assert len(ORIGINAL_NAMES) - len(LEFT_OUT) >= 140


@pytest.mark.parametrize("module, name, kind",
                         [row for row in ORIGINAL_NAMES if row[:2] not in LEFT_OUT],
                         ids=lambda v: v)
def test_defined(module, name, kind):
    value = getattr(importlib.import_module(module), name)
    if kind == "class":
        assert isinstance(value, type)
    elif kind == "function":
        assert callable(value)


@pytest.mark.parametrize("module, name", sorted(LEFT_OUT))
def test_left_out_names_are_documented(module, name):
    assert not hasattr(importlib.import_module(module), name)
    assert f"``{name}``" in DOCS.read_text()


# --------------------------------------------------------------------------
# What the important ones do
# --------------------------------------------------------------------------

def test_compiler_defaults_have_the_original_values():
    from sio.compilers import common

    assert (common.DEFAULT_COMPILER_TIME_LIMIT, common.DEFAULT_COMPILER_MEM_LIMIT,
            common.DEFAULT_COMPILER_OUTPUT_LIMIT) == (30000, 512 * 1024, 5 * 1024)


def test_compiler_classes_are_built_the_original_way():
    from sio.compilers import fpc, gcc, java, system_fpc, system_gcc, system_java

    c = gcc.CCompiler.get_instance("gcc.12_2_0", "c17")
    assert (c.sandbox, c.compiler, c.options) == \
        ("compiler-gcc.12_2_0", "gcc", ["-std=c17", "-static", "-O3", "-s", "-lm"])
    cpp = gcc.CPPCompiler.get_instance("gcc.14_2_0", "c++23")
    assert (cpp.sandbox, cpp.compiler, cpp.options) == \
        ("compiler-gcc.14_2_0", "g++", ["-std=c++23", "-static", "-O3", "-s"])
    assert issubclass(gcc.CCompiler, system_gcc.CStyleCompiler)
    assert system_gcc.CCompiler().sandbox is None
    assert fpc.FPCCompiler.fpc2_6_2().sandbox == "compiler-fpc.2_6_2"
    assert system_fpc.FPCCompiler().sandbox is None
    assert java.JavaCompiler().sandbox == "compiler-java.1_8"
    assert system_java.JavaCompiler().sandbox is None
    assert system_java.run_default is system_java.run
    assert gcc.run_gcc_default is gcc.run_c_default
    assert gcc.run_gplusplus4_8_2_cpp11 is gcc.run_cpp_gcc4_8_2_cpp11
    assert fpc.run_fpc2_6_2 is fpc.run_pas_fpc2_6_2


def test_cstyle_subclass_command_line():
    from sio.compilers.common import CompilationLimits, CompileJob
    from sio.compilers.system_gcc import CStyleCompiler

    class MyCompiler(CStyleCompiler):
        lang = "cpp"
        compiler = "g++-99"
        options = ["-std=c++23", "-O2", "-lm"]

    job = CompileJob(environ={}, directory="/x", limits=CompilationLimits(), source="a.cpp",
                     sources=["lib.cpp"], extra_args=["-DX"])
    compiler = MyCompiler()
    assert compiler.commands(job) == [["g++-99", "-std=c++23", "-O2", "-DX", "a.cpp", "lib.cpp",
                                       "-o", "a.out", "-lm"]]
    compiler.options = ["-O3"]  # attributes are read when compiling, as in the original
    assert compiler.commands(job)[0][1] == "-O3"


def test_sio2jail_executor_is_built_and_fails_clearly_when_called():
    from sio.workers.executors import (
        InstructionCountingUnavailable,
        RealTimeSio2JailExecutor,
        Sio2JailExecutor,
        SupervisedExecutor,
        instruction_counter_probe,
    )
    from sio.workers.util import TemporaryCwd

    executor = Sio2JailExecutor()
    assert isinstance(executor, SupervisedExecutor)
    assert issubclass(RealTimeSio2JailExecutor, Sio2JailExecutor)
    with TemporaryCwd(), executor, pytest.raises(InstructionCountingUnavailable) as info:
        executor(["/bin/true"])
    message = str(info.value)
    assert "counted instructions" in message and "RealTimeSio2JailExecutor" in message
    if not instruction_counter_probe().available:  # as on the development machines
        assert "this machine does not have it" in message


def test_sio2jail_job_error_is_the_executor_error_too():
    from sio.executors.selection import InstructionCountingUnavailable, ExecutorUnavailable
    from sio.workers import executors

    assert issubclass(InstructionCountingUnavailable, executors.InstructionCountingUnavailable)
    assert issubclass(InstructionCountingUnavailable, ExecutorUnavailable)


def test_compound_and_proot32_executors():
    from sio.workers.executors import CompoundSandboxExecutor, PRoot32BitExecutor, PRootExecutor

    assert issubclass(PRootExecutor, CompoundSandboxExecutor)
    assert PRoot32BitExecutor.TOOL_SANDBOX == "proot-sandbox"
    assert PRoot32BitExecutor("null-sandbox").rcwd("x") == "/tmp/x"


def test_ulimit_and_time_output_re():
    from sio.workers.executors import TIME_OUTPUT_RE, noquote, shellquote, ulimit

    line = shellquote(ulimit(["./exe", "a b"], mem_limit=65536, time_limit=1500))
    assert line == ("ulimit -t 2 && ulimit -Ss unlimited && ulimit -v 65536 && "
                    "'./exe' 'a b'")
    assert ulimit(["x"]) == ["x"]
    assert all(isinstance(p, noquote) for p in ulimit(["x"], time_limit=1)[:-1])
    match = TIME_OUTPUT_RE.search("real 0m0.1s\nuser\t0m1.25s\nsys 0m0s\n")
    assert match is not None and match.groups() == ("0", "1.25")


def test_file_runner_names():
    from sio.workers import file_runners
    from sio.workers.executors import DetailedUnprotectedExecutor, RealTimeSio2JailExecutor

    class Echo(file_runners.LanguageModeWrapper):
        handled_exec_mode = "test-echo"
        handled_executors = (DetailedUnprotectedExecutor,)

        def preferred_filename(self):
            return "echo.txt"

    try:
        runner = file_runners.get_file_runner(DetailedUnprotectedExecutor(),
                                              {"exec_info": {"mode": "test-echo"}})
        assert isinstance(runner, Echo)
    finally:
        file_runners._runners.pop(("test-echo", DetailedUnprotectedExecutor))
    noop = file_runners.NoOp(None, {"exec_info": {"mode": "executable",
                                                  "preferred_filename": "prog"}})
    assert noop.preferred_filename() == "prog"
    assert file_runners.JavaSIO is file_runners.SupervisedJava
    assert type(file_runners.get_file_runner(RealTimeSio2JailExecutor(), {})) is \
        file_runners.Executable


def test_registered_subclasses_base():
    from sio.workers.util import ClassInitBase, RegisteredSubclassesBase

    seen = []

    class Base(RegisteredSubclassesBase):
        abstract = True

        @classmethod
        def register_subclass(cls, subclass):
            seen.append((cls.__name__, subclass.__name__))

    class A(Base):
        pass

    class B(A):
        pass

    assert Base.subclasses == [A, B] and A.subclasses == [B] and B.subclasses == []
    assert ("Base", "A") in seen and ("A", "B") in seen and ("Base", "B") in seen

    class C(ClassInitBase):
        @classmethod
        def __classinit__(cls):
            cls.made = True

    assert C.made


def test_ft_lock_and_clients_are_the_real_ones():
    from sio.workers import ft

    assert ft.lock is ft._clients_lock and ft.ft_clients is ft._clients


def test_sandbox_settings_by_their_old_names(monkeypatch, tmp_path):
    from sio.workers import sandbox

    monkeypatch.setenv("SIO_SANDBOXES_BASEDIR", str(tmp_path))
    monkeypatch.setenv("SIO_SANDBOXES_URL", "")
    monkeypatch.setenv("SIO_SANDBOXES_CHECK_INTERVAL", "60")
    assert (sandbox.SANDBOXES_BASEDIR, sandbox.SANDBOXES_URL, sandbox.CHECK_INTERVAL) == \
        (str(tmp_path), "", 60)
    monkeypatch.delenv("SIO_SANDBOXES_URL")
    assert sandbox.SANDBOXES_URL == sandbox.DEFAULT_SANDBOXES_URL
    with pytest.raises(AttributeError):
        sandbox.NO_SUCH_NAME  # noqa: B018


def test_elf_loader_patch_ext():
    from sio.workers.elf_loader_patch import EXT

    assert EXT == ".old_elf_loader"


def test_interactive_names():
    import os

    from sio.executors import interactive_common

    assert interactive_common.RESULT_STRING_LENGTH_LIMIT == 1024
    pipes = interactive_common.Pipes.open()
    try:
        os.write(pipes.w_interactor, b"q")
        assert os.read(pipes.r_solution, 1) == b"q"
        os.write(pipes.w_solution, b"a")
        assert os.read(pipes.r_interactor, 1) == b"a"
    finally:
        for fd in (pipes.r_interactor, pipes.w_interactor, pipes.r_solution, pipes.w_solution):
            os.close(fd)


# --------------------------------------------------------------------------
# The Celery-era default configuration
# --------------------------------------------------------------------------

def test_default_config_uppercase_names_have_the_original_values():
    from sio.celery import default_config

    original: dict = {}
    exec(OLD_DEFAULTS, original)  # the original's default_config, as data
    for name in [n for n in original if n.isupper()]:
        assert getattr(default_config, name) == original[name], name
        assert name in default_config.__all__  # star-imported by old files


def test_old_config_files_extend_the_uppercase_defaults(config_module):
    config_module(
        "from sio.celery.default_config import *\n"
        "BROKER_URL = 'amqp://u:p@broker.example:5672//'\n"
        "CELERY_IMPORTS = CELERY_IMPORTS + ['my_jobs']\n"
        "CELERY_ROUTES = dict(CELERY_ROUTES, **{'my_jobs.job': {'queue': 'mine'}})\n")
    conf = loaded_conf()
    assert list(conf.imports) == ["sio.celery.job", "my_jobs"]
    assert conf.task_routes["my_jobs.job"] == {"queue": "mine"}
    assert conf.task_routes["sio.celery.job.sioworkers_job"] == {"queue": "sioworkers"}
    assert conf.result_backend == "rpc://" and conf.task_acks_late is True


def test_new_style_settings_after_the_star_import_win(config_module):
    config_module("from sio.celery.default_config import *\n"
                  "task_acks_late = False\n"
                  "task_default_queue = 'other'\n")
    conf = loaded_conf()
    assert conf.task_acks_late is False
    assert conf.task_default_queue == "other"
    # the defaults' own queues: the lowercase form (CELERY_QUEUES, untouched,
    # does not override it)
    assert conf.task_queues["sioworkers"] == {"exchange": "sioworkers",
                                              "exchange_type": "direct",
                                              "routing_key": "sioworkers"}
