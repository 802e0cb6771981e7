"""The compile job's policy without running a compiler: names, keys,
limits, default-<ext>, archives, output-only, the sandboxed families'
error path."""

from __future__ import annotations

import os
import zipfile

import pytest

from sio.compilers import common, job
from sio.compilers.common import (
    DEFAULT_COMPILERS_ENV,
    CompilationLimits,
    SandboxUnavailable,
    default_compiler_name,
    extra_args,
    extract_archive,
)
from sio.workers.errors import EntryPointNotFound, MissingEnvironKey, UsageError
from sio.workers.util import TemporaryCwd, entry_point_names, first_entry_point

#: every sio.compilers name of the original (both lines, aliases included)
ORIGINAL_NAMES = [
    "foo", "gcc4_8_2_c99", "g++4_8_2_cpp11", "fpc2_6_2", "java1_8",
    "system-gcc", "system-g++", "system-fpc", "system-java",
    "default-c", "default-cc", "default-cpp", "default-pas", "default-java",
    "c", "cc", "cpp", "pas", "java", "system-c", "system-cc", "system-cpp", "system-pas",
    "gcc12_2_0_c17", "gcc14_2_0_c17", "g++6_3_cpp14", "g++8_3_cpp17", "g++8_3_cpp17_amd64",
    "g++10_2_cpp17_amd64", "g++12_2_cpp20_amd64", "g++14_2_cpp23_amd64", "output-only",
]


@pytest.fixture(autouse=True)
def job_dir(monkeypatch):
    monkeypatch.delenv(DEFAULT_COMPILERS_ENV, raising=False)
    with TemporaryCwd() as path:
        yield path


def test_every_original_name_is_registered_and_loads():
    names = set(entry_point_names("sio.compilers"))
    assert set(ORIGINAL_NAMES) <= names
    assert {"system-python", "default-py", "python"} <= names
    for name in names:
        assert callable(first_entry_point("sio.compilers", name))
    assert "compile" in entry_point_names("sio.jobs")


def test_aliases_are_the_same_compilers():
    load = lambda name: first_entry_point("sio.compilers", name)  # noqa: E731
    assert load("system-c") is load("system-gcc")
    assert load("system-cc") is load("system-cpp") is load("system-g++")
    assert load("system-pas") is load("system-fpc")
    assert load("c") is load("default-c")
    assert load("cc") is load("cpp") is load("default-cpp") is load("default-cc")
    assert load("python") is load("default-py")


@pytest.mark.parametrize("environ, name", [
    ({"compiler": "g++14_2_cpp23_amd64.anything.else"}, "g++14_2_cpp23_amd64"),
    ({"compiler": "system-g++"}, "system-g++"),
    ({"source_file": "/submissions/c1/17.CPP@1700000000"}, "default-cpp"),
    ({"source_file": "prog.pas"}, "default-pas"),
    ({"compiler": "", "source_file": "x.py"}, "default-py"),
])
def test_compiler_name(environ, name):
    assert job.compiler_name(environ) == name


def test_compiler_name_errors():
    with pytest.raises(UsageError, match="no extension"):
        job.compiler_name({"source_file": "/submissions/17"})
    with pytest.raises(MissingEnvironKey, match="source_file"):
        job.compiler_name({})


def test_unknown_compiler_names_the_available_ones():
    with pytest.raises(EntryPointNotFound, match="system-g\\+\\+"):
        job.run({"source_file": "a.cbp", "out_file": "x"})


def test_limits_defaults_and_overrides():
    limits = CompilationLimits.from_environ({})
    assert (limits.time_limit_ms, limits.mem_limit_kib, limits.output_limit_bytes) == \
        (30000, 524288, 5120)
    assert limits.real_time_limit_ms is None and limits.result_size_limit_bytes is None
    assert limits.file_size_limit_bytes == 64 << 20
    limits = CompilationLimits.from_environ({
        "compilation_time_limit": 1000, "compilation_real_time_limit": "5000",
        "compilation_mem_limit": 65536.0, "compilation_output_limit": None,
        "compilation_result_size_limit": 10 << 20})
    assert (limits.time_limit_ms, limits.real_time_limit_ms, limits.mem_limit_kib) == \
        (1000, 5000, 65536)
    assert limits.output_limit_bytes is None
    assert limits.file_size_limit_bytes == (20 << 20) + (16 << 20)
    assert CompilationLimits.from_environ({}, mem_default=None).mem_limit_kib is None
    assert CompilationLimits.from_environ({"compilation_mem_limit": 0}).mem_limit_kib is None


@pytest.mark.parametrize("value", [-1, "ten", 1.5, True, [1]])
def test_bad_limit_names_the_key(value):
    with pytest.raises(UsageError, match="compilation_time_limit"):
        CompilationLimits.from_environ({"compilation_time_limit": value})


def test_extra_args_forms():
    assert extra_args({}, "c") == []
    assert extra_args({"extra_compilation_args": "-DX='a b' -O0"}, "c") == ["-DX=a b", "-O0"]
    assert extra_args({"extra_compilation_args": ["-Wall", 3]}, "c") == ["-Wall", "3"]
    by_lang = {"extra_compilation_args": {"cc": "-DCPP", "c": ["-DC"], "pas": "-Ci"}}
    assert extra_args(by_lang, "cpp") == ["-DCPP"]
    assert extra_args(by_lang, "c") == ["-DC"]
    assert extra_args(by_lang, "java") == []
    with pytest.raises(UsageError, match="extra_compilation_args"):
        extra_args({"extra_compilation_args": 5}, "c")


def test_file_name_forms():
    names = common._names
    assert names({"additional_sources": "/a.c"}, "additional_sources", "c") == ["/a.c"]
    assert names({"additional_sources": ("/a.c", "/b.c")}, "additional_sources", "c") == \
        ["/a.c", "/b.c"]
    value = {"additional_sources": {"cpp": "/a.cpp", "c": ["/b.c"]}}
    assert names(value, "additional_sources", "cpp") == ["/a.cpp"]
    assert names(value, "additional_sources", "pas") == []
    with pytest.raises(UsageError, match="additional_includes"):
        names({"additional_includes": 7}, "additional_includes", "c")


def test_default_compilers(monkeypatch):
    assert default_compiler_name("c") == "system-gcc"
    assert default_compiler_name("cc") == "system-g++"
    assert default_compiler_name("py") == "system-python"
    monkeypatch.setenv(DEFAULT_COMPILERS_ENV, " cpp=g++14_2_cpp23_amd64, pas = fpc2_6_2 ")
    assert default_compiler_name("cc") == "g++14_2_cpp23_amd64"
    assert default_compiler_name("pas") == "fpc2_6_2"
    assert default_compiler_name("c") == "system-gcc"
    resolved = first_entry_point("sio.compilers", "default-cpp").resolve()
    assert resolved is first_entry_point("sio.compilers", "g++14_2_cpp23_amd64")
    with pytest.raises(UsageError, match="no default compiler"):
        default_compiler_name("cbp")
    monkeypatch.setenv(DEFAULT_COMPILERS_ENV, "cpp=default-cpp")
    with pytest.raises(UsageError, match="another default alias"):
        default_compiler_name("cpp")
    monkeypatch.setenv(DEFAULT_COMPILERS_ENV, "cpp")
    with pytest.raises(UsageError, match=DEFAULT_COMPILERS_ENV):
        default_compiler_name("cpp")


@pytest.mark.parametrize("name, sandbox, lang", [
    ("g++14_2_cpp23_amd64", "compiler-gcc.14_2_0", "cpp"),
    ("gcc4_8_2_c99", "compiler-gcc.4_8_2", "c"),
    ("fpc2_6_2", "compiler-fpc.2_6_2", "pas"),
    ("java1_8", "compiler-java.1_8", "java"),
])
def test_sandboxed_compiler_without_its_sandbox_fails_naming_it(tmp_path, monkeypatch,
                                                                 name, sandbox, lang):
    # No sandbox can be installed here: no download URL, an empty store.
    monkeypatch.setenv("SIO_SANDBOXES_URL", "")
    monkeypatch.setenv("SIO_SANDBOXES_BASEDIR", str(tmp_path / "sandboxes"))
    monkeypatch.delenv("FILETRACKER_URL", raising=False)
    source = tmp_path / f"a.{lang}"
    source.write_text("int main() {}\n")
    environ = {"compiler": name, "source_file": str(source), "out_file": str(tmp_path / "o"),
               "use_filetracker": False, "problem_short_name": "a"}
    with pytest.raises(SandboxUnavailable) as info:
        job.run(environ)
    assert sandbox in str(info.value) and name in str(info.value)
    assert "result_code" not in environ
    # default-<ext> configured to a sandboxed compiler never falls back either
    monkeypatch.setenv(DEFAULT_COMPILERS_ENV, f"{lang}={name}")
    with pytest.raises(SandboxUnavailable):
        job.run({**environ, "compiler": None})


def test_output_only():
    environ = {"compiler": "output-only", "source_file": "/sub/ans.txt@3", "out_file": "/x",
               "other": [1]}
    result = job.run(environ)
    assert result == {"compiler": "output-only", "source_file": "/sub/ans.txt@3",
                      "out_file": "/sub/ans.txt@3", "other": [1], "result_code": "OK",
                      "compiler_output": "Compilation omitted (output provided).",
                      "exec_info": {"mode": "output-only"}}


def test_foo_template(tmp_path):
    source = tmp_path / "s.txt"
    source.write_text("12345")
    result = job.run({"compiler": "foo.2_0", "source_file": str(source),
                      "out_file": str(tmp_path / "out.sh"), "use_filetracker": False})
    assert result["result_code"] == "OK"
    assert (tmp_path / "out.sh").read_text() == "#!/bin/sh\necho 10\n"
    with pytest.raises(UsageError, match="foo.1_0"):
        job.run({"compiler": "foo.3_0", "source_file": str(source), "out_file": "x"})


def test_a_compiler_must_return_the_result_keys(plugin):
    plugin({"sio.compilers": {"lazy-compiler": "lazy_compiler:run"}},
           {"lazy_compiler": "def run(environ):\n    return environ\n"})
    with pytest.raises(job.CompilerContractError, match="result_code"):
        job.run({"compiler": "lazy-compiler", "source_file": "a.c"})


def test_archive_members_never_leave_the_directory_nor_overwrite(tmp_path, caplog):
    directory = tmp_path / "compile"
    directory.mkdir()
    (directory / "a.c").write_text("source")
    (directory / "file").write_text("a file")
    os.symlink(tmp_path, directory / "link")
    archive = tmp_path / "x.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("ok/inc.h", "fine")
        zf.writestr("ok/", "")
        zf.writestr("a.c", "overwritten")
        zf.writestr("../up.h", "up")
        zf.writestr("/etc/abs.h", "abs")
        zf.writestr("link/via-link.h", "via a symlink")
        zf.writestr("file/under-a-file.h", "x")
    written = extract_archive(str(archive), str(directory))
    assert written == [os.path.join("ok", "inc.h")]
    assert (directory / "a.c").read_text() == "source"
    assert not (tmp_path / "up.h").exists() and not (tmp_path / "via-link.h").exists()
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 5
    with pytest.raises(UsageError, match="not a zip"):
        extract_archive(str(directory / "a.c"), str(directory))


def test_python_file_runner_is_registered():
    from sio.workers.executors import DetailedUnprotectedExecutor, UnprotectedExecutor
    from sio.workers.file_runners import Python, file_runner_modes, get_file_runner

    for cls in (UnprotectedExecutor, DetailedUnprotectedExecutor):
        assert "python" in file_runner_modes(cls)
    runner = get_file_runner(UnprotectedExecutor(), {"exec_info": {"mode": "python"}})
    assert isinstance(runner, Python) and runner.preferred_filename() == "a.pyz"


def test_python_interpreter_setting(monkeypatch):
    from sio.workers.file_runners import python_interpreter

    monkeypatch.setenv("SIO_PYTHON", "/opt/py/bin/python3.12")
    assert python_interpreter() == "/opt/py/bin/python3.12"
    monkeypatch.delenv("SIO_PYTHON")
    assert python_interpreter() in ("/usr/bin/python3", "python3")


def test_sio_compile_usage(capsys):
    assert job.main([]) == 2
    assert "SOURCE and OUTPUT" in capsys.readouterr().err
    assert job.main(["--bogus", "a", "b"]) == 2
    assert job.main(["-h"]) == 0
    assert "usage: sio-compile" in capsys.readouterr().out
    assert job._cli_compiler("CPP") == "cpp"
    assert job._cli_compiler("g++14_2_cpp23_amd64") == "g++14_2_cpp23_amd64"
    assert job._cli_compiler("py") == "default-py"
    assert job._cli_compiler("System-G++") == "system-g++"


@pytest.mark.parametrize("absolute", [True, False])
def test_fpc_config_template_is_the_sandboxs_own(tmp_path, absolute):
    """fpc.cfg.in of a sandbox used as '/' (PRoot) is read there: an
    absolute link to it means the sandbox's file, not the host's one at
    that path."""
    from types import SimpleNamespace

    from sio.compilers.fpc import run_pas_fpc2_6_2

    host = tmp_path / "host"
    host.mkdir()
    (host / "fpc.cfg").write_text("host's\n")
    root = tmp_path / "sandbox"
    inner = root / str(host)[1:]
    inner.mkdir(parents=True)
    (inner / "fpc.cfg").write_text("-Fu__DIR__/units\n")
    (root / "fpc.cfg.in").symlink_to(f"{host}/fpc.cfg" if absolute else str(host)[1:] + "/fpc.cfg")
    out = tmp_path / "compile"
    out.mkdir()
    job = SimpleNamespace(path=lambda name: str(out / name))
    executor = SimpleNamespace(path=str(root), rpath="/")
    run_pas_fpc2_6_2.prepare(job, executor)
    assert (out / "fpc.cfg").read_text() == "-Fu/units\n"
