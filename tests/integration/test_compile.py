"""The compile job with the real system compilers: compile, then run the
result with the executors and file runners; hostile sources; sio-compile."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import zipfile

import pytest

from sio.compilers.common import SIZE_LIMIT_MESSAGE, CompilerNotInstalled
from sio.compilers.job import run
from sio.workers.executors import DetailedUnprotectedExecutor
from sio.workers.file_runners import get_file_runner
from sio.workers.util import TemporaryCwd
from tests.support import SOURCES, missing

pytestmark = pytest.mark.integration

TOOLS = {"c": "gcc", "cpp": "g++", "pas": "fpc", "java": "javac", "py": "python3"}

HELLO = {
    "c": '#include <stdio.h>\nint main(void) { puts("hello c"); return 0; }\n',
    "cpp": '#include <iostream>\nint main() { std::cout << "hello cpp" << std::endl; }\n',
    "pas": "program hello;\nbegin\n  writeln('hello pas');\nend.\n",
    "java": 'public class hello {\n  public static void main(String[] a) {\n'
            '    System.out.println("hello java");\n  }\n}\n',
    "py": 'import sys\nprint("hello py", *sys.argv[1:])\n',
}

BROKEN = {
    "c": "int main(void) { return x; }\n",
    "cpp": "int main() { undeclared(); }\n",
    "pas": "program broken;\nbegin\n  writeln(x);\nend.\n",
    "java": "public class hello { void f() { int x = ; } }\n",
    "py": "def f(:\n    pass\n",
}

#: (main source, {file: text} of additional sources, {file: text} of includes)
LIBRARY = {
    "c": ('#include <stdio.h>\n#include "lib.h"\nint main(void) { printf("%d\\n", twice(21)); }\n',
          {"lib.c": '#include "lib.h"\nint twice(int x) { return 2 * x; }\n'},
          {"lib.h": "int twice(int x);\n"}),
    "cpp": ('#include <cstdio>\n#include "lib.h"\nint main() { std::printf("%d\\n", twice(21)); }\n',
            {"lib.cpp": '#include "lib.h"\nint twice(int x) { return 2 * x; }\n'},
            {"lib.h": "int twice(int x);\n"}),
    "pas": ("program main;\nuses lib;\nbegin\n  writeln(twice(21));\nend.\n",
            {"lib.pas": "unit lib;\ninterface\nfunction twice(x: longint): longint;\n"
                        "implementation\nfunction twice(x: longint): longint;\n"
                        "begin\n  twice := 2 * x;\nend;\nend.\n"},
            {}),
    "java": ("public class hello {\n  public static void main(String[] a) {\n"
             "    System.out.println(Lib.twice(21));\n  }\n}\n",
             {"Lib.java": "public class Lib { static int twice(int x) { return 2 * x; } }\n"},
             {}),
    "py": ("import lib\nprint(lib.twice(21))\n",
           {"lib.py": "def twice(x):\n    return 2 * x\n"},
           {}),
}


def need(lang: str) -> None:
    tool = TOOLS[lang]
    if shutil.which(tool) is None and not (lang == "py" and os.path.exists("/usr/bin/python3")):
        missing(f"{tool} (the system compiler for .{lang})")


def write(directory, files: dict[str, str]) -> list[str]:
    paths = []
    for name, text in files.items():
        path = directory / name
        path.write_text(text)
        paths.append(str(path))
    return paths


def compile_job(tmp_path, source: str, lang: str, name: str = "hello", **keys):
    """Compile the text ``source`` (saved as <name>.<lang>) with local files;
    return the result environ."""
    src = tmp_path / f"{name}.{lang}"
    src.write_text(source)
    environ = {"source_file": str(src), "out_file": str(tmp_path / f"{name}-{lang}.out"),
               "use_filetracker": False, **keys}
    return run(environ)


def run_result(environ, args=(), **options) -> tuple[dict, bytes]:
    """Run what a compile job produced, as an exec job would: the file under
    its preferred name, through a file runner. Returns (renv, output)."""
    with TemporaryCwd() as directory:
        with DetailedUnprotectedExecutor() as executor:
            runner = get_file_runner(executor, environ)
            target = os.path.join(directory, runner.preferred_filename())
            shutil.copy(environ["out_file"], target)
            os.chmod(target, 0o755)
            with open(os.path.join(directory, "out"), "w+b") as out, runner:
                renv = runner(runner.preferred_filename(), list(args), stdout=out,
                              time_limit=10000, ignore_errors=True, **options)
                out.seek(0)
                return renv, out.read()


def descendants() -> set[int]:
    """Every live process below this one (its whole tree)."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    stat = f.read()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[1].split()
            if fields[0] != "Z":
                parents[int(entry)] = int(fields[1])
    tree: set[int] = set()
    frontier = {os.getpid()}
    while frontier:
        frontier = {pid for pid, ppid in parents.items() if ppid in frontier} - tree
        tree |= frontier
    return tree


# --------------------------------------------------------------------------
# Every language: hello world, libraries, compilation errors
# --------------------------------------------------------------------------

@pytest.mark.parametrize("lang", sorted(HELLO))
def test_hello_world_compiles_and_runs(tmp_path, lang):
    need(lang)
    environ = compile_job(tmp_path, HELLO[lang], lang, unknown_key={"nested": [1, {"x": None}]})
    assert environ["result_code"] == "OK", environ["compiler_output"]
    assert isinstance(environ["compiler_output"], str)
    assert environ["unknown_key"] == {"nested": [1, {"x": None}]}
    assert environ["out_file"] == str(tmp_path / f"hello-{lang}.out")
    expected_mode = {"java": "java", "py": "python"}.get(lang, "executable")
    assert environ["exec_info"]["mode"] == expected_mode
    if lang == "java":
        assert environ["exec_info"] == {"mode": "java", "main_class": "hello",
                                        "preferred_filename": "hello.jar"}
    renv, output = run_result(environ, mem_limit=262144)
    assert renv["result_code"] == "OK", renv
    assert output.decode().startswith(f"hello {lang}")


@pytest.mark.parametrize("lang", sorted(LIBRARY))
def test_library_as_lists(tmp_path, lang):
    need(lang)
    main, sources, includes = LIBRARY[lang]
    environ = compile_job(tmp_path, main, lang,
                          additional_sources=write(tmp_path, sources),
                          additional_includes=write(tmp_path, includes))
    assert environ["result_code"] == "OK", environ["compiler_output"]
    renv, output = run_result(environ)
    assert (renv["result_code"], output) == ("OK", b"42\n")


@pytest.mark.parametrize("lang", ["c", "cpp"])
def test_library_as_dicts_by_language(tmp_path, lang):
    need(lang)
    main, sources, includes = LIBRARY[lang]
    (tmp_path / "other.h").write_text("#error the include of another language\n")
    [source] = write(tmp_path, sources)
    [include] = write(tmp_path, includes)
    environ = compile_job(
        tmp_path, main.replace('"lib.h"', '"lib.h"\n#include <stdlib.h>'), lang,
        # a single name, a list, and a key of another language that must be ignored
        additional_sources={lang: source, "pas": str(tmp_path / "nowhere.pas")},
        additional_includes={lang: [include], "java": [str(tmp_path / "other.h")]})
    assert environ["result_code"] == "OK", environ["compiler_output"]
    assert run_result(environ)[1] == b"42\n"


@pytest.mark.parametrize("lang", sorted(BROKEN))
def test_compilation_error(tmp_path, lang):
    need(lang)
    environ = compile_job(tmp_path, BROKEN[lang], lang)
    assert environ["result_code"] == "CE"
    assert environ["compiler_output"].strip()
    assert "exec_info" not in environ
    assert not os.path.exists(environ["out_file"])


def test_java_class_name_from_problem_short_name(tmp_path):
    need("java")
    source = HELLO["java"].replace("class hello", "class sum")
    environ = compile_job(tmp_path, source, "java", name="17", problem_short_name="sum")
    assert environ["result_code"] == "OK", environ["compiler_output"]
    assert environ["exec_info"]["main_class"] == "sum"
    with zipfile.ZipFile(environ["out_file"]) as jar:
        assert "sum.class" in jar.namelist()
    # A source whose public class is not the problem's: javac refuses it.
    environ = compile_job(tmp_path, HELLO["java"], "java", name="18", problem_short_name="sum")
    assert environ["result_code"] == "CE"
    assert "hello" in environ["compiler_output"]


def test_java_memory_limit_is_the_heap(tmp_path):
    need("java")
    environ = compile_job(tmp_path, HELLO["java"], "java", compilation_mem_limit=262144)
    assert environ["result_code"] == "OK", environ["compiler_output"]


def test_python_is_only_checked_not_run(tmp_path):
    need("py")
    started = time.monotonic()
    environ = compile_job(tmp_path, "while True:\n    pass\n", "py",
                          compilation_time_limit=5000)
    assert environ["result_code"] == "OK"
    assert time.monotonic() - started < 5


# --------------------------------------------------------------------------
# Keys
# --------------------------------------------------------------------------

VALUE_C = '#include <stdio.h>\nint main(void) { printf("%d\\n", VALUE); return 0; }\n'


@pytest.mark.parametrize("args", ["-DVALUE=7 -Wall", ["-DVALUE=7", "-Wall"],
                                  {"c": ["-DVALUE=7"], "cpp": ["-DVALUE=8"]}],
                         ids=["str", "list", "dict"])
def test_extra_compilation_args(tmp_path, args):
    need("c")
    environ = compile_job(tmp_path, VALUE_C, "c", extra_compilation_args=args)
    assert environ["result_code"] == "OK", environ["compiler_output"]
    assert run_result(environ)[1] == b"7\n"


def test_werror_turns_a_warning_into_ce(tmp_path):
    need("cpp")
    source = "int main() { int unused; return 0; }\n"
    assert compile_job(tmp_path, source, "cpp")["result_code"] == "OK"
    environ = compile_job(tmp_path, source, "cpp", compiler="default-cpp",
                          extra_compilation_args=["-Wall", "-Wno-unused-result", "-Werror"])
    assert environ["result_code"] == "CE"
    assert "unused" in environ["compiler_output"]


def test_extra_files_are_saved_under_their_base_name(tmp_path):
    need("c")
    (tmp_path / "h.txt").write_text("#define VALUE 5\n")
    environ = compile_job(tmp_path, '#include "value.h"\n' + VALUE_C, "c",
                          extra_files={"sub/dir/value.h": str(tmp_path / "h.txt")})
    assert environ["result_code"] == "OK", environ["compiler_output"]
    assert run_result(environ)[1] == b"5\n"


def test_additional_archive_is_extracted_safely(tmp_path, caplog):
    need("c")
    archive = tmp_path / "prog.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("inc/value.h", "#define VALUE 9\n")
        zf.writestr("../escaped.h", "bad\n")
        zf.writestr("inc/../../escaped2.h", "bad\n")
        zf.writestr("/abs.h", "bad\n")
        # would overwrite the source: skipped, the source wins
        zf.writestr("a.c", "int main(void) { return 3; }\n")
    environ = compile_job(tmp_path, '#include "inc/value.h"\n' + VALUE_C, "c",
                          additional_archive=str(archive))
    assert environ["result_code"] == "OK", environ["compiler_output"]
    assert run_result(environ)[1] == b"9\n"
    skipped = " ".join(r.getMessage() for r in caplog.records if r.levelname == "WARNING")
    for name in ("../escaped.h", "inc/../../escaped2.h", "a.c"):
        assert repr(name) in skipped
    assert not (tmp_path / "escaped.h").exists()


def test_result_size_limit(tmp_path):
    need("c")
    environ = compile_job(tmp_path, HELLO["c"], "c", compilation_result_size_limit=1000)
    assert environ["result_code"] == "CE"
    assert environ["compiler_output"] == SIZE_LIMIT_MESSAGE
    assert not os.path.exists(environ["out_file"])
    environ = compile_job(tmp_path, HELLO["c"], "c", compilation_result_size_limit=10 << 20)
    assert environ["result_code"] == "OK"


def test_compiler_output_is_text_with_invalid_utf8_replaced(tmp_path):
    need("c")
    src = tmp_path / "bad.c"
    src.write_bytes(b'#error "caf\xc3\xa9 \xff\xfe"\nint main(void) { return 0; }\n')
    environ = run({"source_file": str(src), "out_file": str(tmp_path / "x"),
                   "use_filetracker": False})
    assert environ["result_code"] == "CE"
    assert "caf\u00e9 \ufffd\ufffd" in environ["compiler_output"]
    json.dumps(environ)


def test_missing_compiler_is_an_exception_not_ce(tmp_path, monkeypatch):
    need("c")
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(CompilerNotInstalled, match="'gcc'"):
        compile_job(tmp_path, HELLO["c"], "c")
    monkeypatch.setenv("SIO_PYTHON", str(tmp_path / "python9"))
    with pytest.raises(CompilerNotInstalled, match="python9"):
        compile_job(tmp_path, HELLO["py"], "py")


# --------------------------------------------------------------------------
# Hostile sources
# --------------------------------------------------------------------------

HOSTILE = ["compile_huge_binary.c", "compile_self_include.c", "compile_dev_random.c",
           "compile_endless_warnings.c", "compile_template_recursion.cpp"]


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_source_is_ce_within_limits(tmp_path, name):
    need("cpp" if name.endswith(".cpp") else "c")
    source = SOURCES / name
    before = descendants()
    started = time.monotonic()
    environ = run({"source_file": str(source), "out_file": str(tmp_path / "out"),
                   "use_filetracker": False, "compilation_time_limit": 3000,
                   "compilation_mem_limit": 262144, "compilation_output_limit": 2000,
                   "compilation_result_size_limit": 10 << 20})
    elapsed = time.monotonic() - started
    assert environ["result_code"] == "CE", environ["compiler_output"]
    # the output limit, plus at most one line saying which limit stopped it
    assert len(environ["compiler_output"].encode()) <= 2000 + 100
    assert elapsed < 20  # 3 s CPU, 6 s wall: generous for a loaded machine
    assert not os.path.exists(tmp_path / "out")
    assert descendants() <= before, "a compiler process was left running"


def test_huge_binary_is_stopped_without_a_result_size_limit(tmp_path):
    need("c")
    environ = run({"source_file": str(SOURCES / "compile_huge_binary.c"),
                   "out_file": str(tmp_path / "out"), "use_filetracker": False})
    assert environ["result_code"] == "CE"
    assert "File size limit exceeded" in environ["compiler_output"]


def test_output_limit_none_keeps_everything(tmp_path):
    need("c")
    source = "".join(f"#warning number {i}\n" for i in range(200)) + HELLO["c"]
    environ = compile_job(tmp_path, source, "c", compilation_output_limit=None)
    assert environ["result_code"] == "OK"
    assert "number 199" in environ["compiler_output"]
    environ = compile_job(tmp_path, source, "c")
    assert len(environ["compiler_output"]) == 5120


# --------------------------------------------------------------------------
# sio-compile
# --------------------------------------------------------------------------

def sio_compile(*args, cwd):
    script = os.path.join(os.path.dirname(sys.executable), "sio-compile")
    return subprocess.run([script, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120)


def framed_environ(stdout: str) -> dict:
    lines = stdout.splitlines()
    start = lines.index("--- BEGIN ENVIRON ---")
    assert lines[start + 2] == "--- END ENVIRON ---"
    return json.loads(lines[start + 1])


def test_sio_compile_end_to_end(tmp_path):
    need("c")
    (tmp_path / "prog.c").write_text(VALUE_C)
    result = sio_compile("prog.c", "bin/prog", "c", "-DVALUE=4", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    environ = framed_environ(result.stdout)
    assert environ["result_code"] == "OK"
    assert environ["compiler"] == "c"
    assert environ["extra_compilation_args"] == ["-DVALUE=4"]
    # only the output appeared in the working directory
    assert sorted(os.listdir(tmp_path)) == ["bin", "prog.c"]
    out = subprocess.run([str(tmp_path / "bin" / "prog")], capture_output=True)
    assert out.stdout == b"4\n"


def test_sio_compile_ce_usage_and_help(tmp_path):
    need("c")
    (tmp_path / "bad.c").write_text(BROKEN["c"])
    result = sio_compile("bad.c", "bad", cwd=tmp_path)
    assert result.returncode == 1
    assert framed_environ(result.stdout)["result_code"] == "CE"
    assert sorted(os.listdir(tmp_path)) == ["bad.c"]
    result = sio_compile("bad.c", cwd=tmp_path)
    assert result.returncode == 2 and "SOURCE and OUTPUT" in result.stderr
    result = sio_compile("bad.c", "bad", "no-such-compiler", cwd=tmp_path)
    assert result.returncode == 2 and "no-such-compiler" in result.stderr
    result = sio_compile("missing.c", "x", cwd=tmp_path)
    assert result.returncode == 2 and "missing.c" in result.stderr
    result = sio_compile("--help", cwd=tmp_path)
    assert result.returncode == 0 and "usage: sio-compile" in result.stdout


def test_sio_compile_local_files_by_absolute_paths_from_a_fresh_directory(tmp_path):
    # A new user's first try: absolute paths, run from an empty directory,
    # with FILETRACKER_URL set (it must not turn absolute paths into
    # Filetracker names: only --filetracker does).
    need("c")
    fresh, src = tmp_path / "fresh", tmp_path / "src"
    fresh.mkdir()
    src.mkdir()
    (src / "prog.c").write_text(VALUE_C)
    out = tmp_path / "out" / "bin" / "prog"
    env = {**os.environ, "FILETRACKER_URL": "http://127.0.0.1:9"}
    result = subprocess.run([os.path.join(os.path.dirname(sys.executable), "sio-compile"),
                             str(src / "prog.c"), str(out), "c", "-DVALUE=6"], cwd=fresh,
                            env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert framed_environ(result.stdout)["out_file"] == str(out)
    assert subprocess.run([str(out)], capture_output=True).stdout == b"6\n"
    assert list(fresh.iterdir()) == []


def test_sio_compile_errors_name_the_key_and_come_before_compiling(tmp_path):
    need("c")
    (tmp_path / "bad.c").write_text(BROKEN["c"])  # would be a CE (status 1)
    (tmp_path / "a-file").write_text("")
    (tmp_path / "a-dir").mkdir()
    cases = [
        (["missing.c", "x"], "environ['source_file'] = 'missing.c'"),
        ([str(tmp_path / "missing.c"), "x"], f"environ['source_file'] = '{tmp_path}/missing.c'"),
        (["bad.c", "a-dir"], "environ['out_file'] = 'a-dir' is a directory"),
        (["bad.c", "out/"], "environ['out_file'] = 'out/' is a directory"),
        (["bad.c", str(tmp_path / "a-file" / "x")], f"'{tmp_path}/a-file' is not a directory"),
    ]
    for args, message in cases:
        result = sio_compile(*args, cwd=tmp_path)
        assert result.returncode == 2, (args, result.stderr)
        assert result.stderr.startswith("sio-compile: error: ") and message in result.stderr, \
            result.stderr
        assert "environ['file']" not in result.stderr and "Traceback" not in result.stderr
        assert result.stdout == ""
    assert sorted(os.listdir(tmp_path)) == ["a-dir", "a-file", "bad.c"]


def test_compile_job_without_out_file_fails_before_compiling(tmp_path):
    from sio.workers.errors import MissingEnvironKey
    from sio.workers.runner import run

    need("c")
    (tmp_path / "prog.c").write_text(HELLO["c"])
    with pytest.raises(MissingEnvironKey, match="out_file"):
        run({"job_type": "compile", "source_file": str(tmp_path / "prog.c"),
             "compiler": "system-gcc", "use_filetracker": False})


def test_sio_compile_with_filetracker_keeps_stdout_clean(tmp_path, filetracker_server):
    # The filetracker client prints "Settled for protocol version 2" when it
    # first talks to a server: standard error, never among the result.
    need("c")
    (tmp_path / "prog.c").write_text(VALUE_C)
    name = f"/sio-compile-it/{os.getpid()}/prog"
    result = sio_compile("--filetracker", filetracker_server.url, "prog.c", name, "c",
                         "-DVALUE=5", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 3 and lines[0] == "--- BEGIN ENVIRON ---", result.stdout
    stored = framed_environ(result.stdout)["out_file"]
    assert stored.startswith(name + "@")
    assert sorted(os.listdir(tmp_path)) == ["prog.c"]
    # A directory is not a file name: one line, no finalizer noise.
    result = sio_compile(f"--filetracker={filetracker_server.url}", "prog.c", "/dir/",
                         cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert "environ['out_file'] = '/dir/' is not a valid Filetracker file name" in result.stderr
    assert "Exception ignored" not in result.stderr and result.stdout == ""


# --------------------------------------------------------------------------
# Through runner.run with a real Filetracker server
# --------------------------------------------------------------------------

@pytest.fixture
def ft_job(filetracker_server):
    """Upload helper for the session server: ``put(name, text) -> versioned
    name``; uses a job directory and client of its own."""
    from sio.workers import ft

    def put(name: str, text: str | bytes) -> str:
        data = text.encode() if isinstance(text, str) else text
        with TemporaryCwd() as directory:
            ft.init_instance(filetracker_server.url)
            try:
                path = os.path.join(directory, "f")
                with open(path, "wb") as f:
                    f.write(data)
                return ft.upload({}, "f", path, f"/compile-it/{os.getpid()}/{name}")
            finally:
                ft.set_instance(None)

    return put


def ft_get(server, name: str) -> bytes:
    from sio.workers import ft

    with TemporaryCwd():
        ft.init_instance(server.url)
        try:
            with open(ft.download({"f": name}, "f", "got"), "rb") as f:
                return f.read()
        finally:
            ft.set_instance(None)


def test_compile_job_with_filetracker(filetracker_server, ft_job, tmp_path):
    """oioioi's scenario 1: a versioned source, an out_file with colons, the
    versioned result written back, the library from extra_files."""
    from sio.workers import runner

    need("cpp")
    main, sources, includes = LIBRARY["cpp"]
    archive = tmp_path / "prog.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("lib.h", includes["lib.h"])
    environ = {
        "job_type": "compile",
        "filetracker_url": filetracker_server.url,
        "compiler": "system-g++",
        "language": "cpp",
        "source_file": ft_job("17.cpp", main),
        "out_file": f"/eval/c1/17/urn:uuid:{os.getpid()}-exe",
        "additional_archive": ft_job("prog.zip", archive.read_bytes()),
        "extra_files": {"lib.cpp": ft_job("lib.cpp", sources["lib.cpp"])},
        "additional_sources": [],
        "compilation_result_size_limit": 10 * 1024 * 1024,
        "recipe": [["compile", "x", {}]],
    }
    # lib.cpp comes as an extra file; it still has to be linked
    environ["extra_compilation_args"] = ["lib.cpp"]
    result = runner.run(environ)
    assert result["result"] == "SUCCESS"
    assert result["result_code"] == "OK", result["compiler_output"]
    base, _, version = result["out_file"].rpartition("@")
    assert base == f"/eval/c1/17/urn:uuid:{os.getpid()}-exe" and version.isdigit()
    assert result["recipe"] == [["compile", "x", {}]]
    binary = tmp_path / "exe"
    binary.write_bytes(ft_get(filetracker_server, result["out_file"]))
    binary.chmod(0o755)
    assert subprocess.run([str(binary)], capture_output=True).stdout == b"42\n"


def test_compile_job_with_filetracker_ce_and_output_only(filetracker_server, ft_job):
    from sio.workers import runner

    need("c")
    result = runner.run({"job_type": "compile", "filetracker_url": filetracker_server.url,
                         "source_file": ft_job("bad.c", BROKEN["c"]),
                         "out_file": "/eval/bad-exe"})
    assert (result["result"], result["result_code"]) == ("SUCCESS", "CE")
    assert "x" in result["compiler_output"]
    assert result["out_file"] == "/eval/bad-exe"
    source = ft_job("ans.txt", "42\n")
    result = runner.run({"job_type": "compile", "filetracker_url": filetracker_server.url,
                         "compiler": "output-only", "source_file": source,
                         "out_file": "/eval/ans-exe"})
    assert result["result_code"] == "OK"
    assert result["out_file"] == source
    assert result["exec_info"] == {"mode": "output-only"}


# --------------------------------------------------------------------------
# A compiler sandbox (a fake one: a static busybox and a g++ script)
# --------------------------------------------------------------------------

FAKE_GPP = """#!/bin/sh
echo "args: $*"
cat /etc/compiler-id
echo "cwd: $(pwd)"
echo 'int main' > a.out
"""


def test_sandboxed_compiler_runs_inside_its_sandbox(archive_server, tmp_path):
    from tests.sandbox_support import busybox_tree, sandbox_archive

    if shutil.which("proot") is None:
        missing("proot (Debian package proot)")
    tree = busybox_tree(applets=("sh", "cat", "echo", "pwd"))
    if not tree:
        missing("a static busybox (Debian package busybox-static)")
    archive_server.put("compiler-gcc.14_2_0", sandbox_archive("compiler-gcc.14_2_0", {
        **tree, "usr/bin/g++": FAKE_GPP, "etc/compiler-id": "g++ 14 of the sandbox\n"}))
    environ = compile_job(tmp_path, HELLO["cpp"], "cpp", compiler="g++14_2_cpp23_amd64",
                          extra_compilation_args="-DX")
    assert environ["result_code"] == "OK", environ["compiler_output"]
    lines = environ["compiler_output"].splitlines()
    assert lines == ["args: -std=c++23 -static -O3 -s -DX a.cpp -o a.out",
                     "g++ 14 of the sandbox", "cwd: /tmp/compile"]
    with open(environ["out_file"]) as f:
        assert f.read() == "int main\n"
