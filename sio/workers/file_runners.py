"""File runners: how to run a compiled file of some kind with some executor.

The kind is ``environ['exec_info']['mode']`` (written by the compile job):

``executable`` (the default)
    a native program: ``./<file> args...``; preferred file name ``exe``.
``java``
    a jar: ``java -Xmx<M>k -Xms<M>k -Xss<M>k -jar <file> args...`` (or
    ``-classpath <file> <main_class>`` when ``exec_info['main_class']`` is
    given), where ``M`` is the memory limit in KiB; preferred file name
    ``<main_class or 'a'>.jar``.
``python``
    a Python 3 program as a zip application (``__main__.py`` and the modules
    it imports): ``<python> -I <file> args...``, where ``<python>`` is
    :func:`python_interpreter`; preferred file name
    ``exec_info['preferred_filename']`` or ``a.pyz``.

Runners are found in an explicit registry keyed by (mode, executor class);
the class must match exactly, as in the original, because a subclass of an
executor (a sandbox, a supervisor) may not be able to run what its base
runs. Other modules register their executors with :func:`register_file_runner`.

Every runner first fetches ``environ['extra_execution_files']`` (a dict:
file name in the run directory -> Filetracker path or local path, see
:func:`sio.workers.ft.download`) into the run directory.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from sio.workers.errors import SioWorkersError, UsageError
from sio.workers.executors import (
    BaseExecutor,
    DetailedUnprotectedExecutor,
    ExecSandboxSupervisedExecutor,
    PRoot32BitExecutor,
    PRootExecutor,
    RealTimeSio2JailExecutor,
    Sio2JailExecutor,
    SupervisedExecutor,
    UnprotectedExecutor,
)
from sio.workers.util import tempcwd

__all__ = [
    "FileRunner",
    "Executable",
    "Java",
    "Python",
    "python_interpreter",
    "PYTHON_ENV",
    "NoFileRunner",
    "register_file_runner",
    "get_file_runner",
    "file_runner_modes",
    "fetch_extra_execution_files",
    "helper_program_kind",
    "helper_runner",
    "SupervisedScript",
    "read_shebang",
    "is_python_shebang",
    "SupervisedJava",
    "SupervisedPython",
    # The original's names (compatibility)
    "LanguageModeWrapper",
    "NoOp",
    "JavaSIO",
]


class NoFileRunner(SioWorkersError, SystemError):
    """No runner for this kind of file in this executor. A
    :class:`SystemError`, as in the original."""


class FileRunner:
    """Runs a file of one kind through an executor.

    A context manager that enters and leaves the executor, and a callable:
    ``runner(file, args, **options)`` takes the options of
    :meth:`~sio.workers.executors.BaseExecutor.__call__` and returns the
    executor's renv.
    """

    #: the ``exec_info['mode']`` this runner handles
    mode: ClassVar[str] = ""

    def __init__(self, executor: BaseExecutor, environ: Mapping[str, Any]) -> None:
        self.executor = executor
        self.environ = environ
        self.exec_info: Mapping[str, Any] = environ.get("exec_info") or {}

    def __enter__(self) -> FileRunner:
        self.executor.__enter__()
        return self

    def __exit__(self, *exc_info: Any) -> Any:
        return self.executor.__exit__(*exc_info)

    def preferred_filename(self) -> str:
        """The name the file to run should have in the run directory."""
        raise NotImplementedError

    def __call__(self, file: str, args: Sequence[Any] = (), **kwargs: Any) -> dict[str, Any]:
        extra = fetch_extra_execution_files(self.environ, kwargs.get("cwd") or tempcwd())
        if extra and isinstance(self.executor, SupervisedExecutor):
            # The program may read the files it was given, and only those.
            kwargs["read_paths"] = (*kwargs.get("read_paths", ()), *extra)
        return self._run(file, list(args), kwargs)

    def _run(self, file: str, args: list[Any], kwargs: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError


class Executable(FileRunner):
    """A native executable."""

    mode = "executable"

    def preferred_filename(self) -> str:
        return "exe"

    def _run(self, file: str, args: list[Any], kwargs: dict[str, Any]) -> dict[str, Any]:
        program = file if os.path.isabs(file) else "./" + file
        return self.executor([program, *args], **kwargs)


class Java(FileRunner):
    """A jar, run by the system ``java``.

    The memory limit ``M`` (KiB) is ``<environ_prefix>mem_limit`` of the
    ``environ`` option, else the ``mem_limit`` option. The JVM gets it as
    its heap (``-Xmx``/``-Xms``) and stack (``-Xss``) size, and the executor
    gets **no** address-space limit: a JVM reserves far more address space
    than it uses, so an RLIMIT_AS of ``M`` would stop it from starting. The
    job's environ is not changed (the original removed the key from it).
    """

    mode = "java"
    #: JVM options before the memory flags
    jvm_options: ClassVar[tuple[str, ...]] = ()
    #: the executor's ``mem_limit`` for "no address-space limit"
    no_memory_limit: ClassVar[int | None] = None

    def preferred_filename(self) -> str:
        return f"{self.exec_info.get('main_class') or 'a'}.jar"

    def _run(self, file: str, args: list[Any], kwargs: dict[str, Any]) -> dict[str, Any]:
        key = kwargs.get("environ_prefix", "") + "mem_limit"
        environ = kwargs.get("environ") or {}
        mem = environ.get(key)
        if mem is None:
            mem = kwargs.get("mem_limit")
        command = ["java", *self.jvm_options]
        if mem:
            command += [f"-Xmx{int(mem)}k", f"-Xms{int(mem)}k", f"-Xss{int(mem)}k"]
            # A copy without the key: the executor must not apply it as RLIMIT_AS.
            kwargs["environ"] = {k: v for k, v in environ.items() if k != key}
            kwargs["mem_limit"] = self.no_memory_limit
        main_class = self.exec_info.get("main_class")
        if main_class:
            command += ["-classpath", file, main_class]
        else:
            command += ["-jar", file]
        return self.executor([*command, *args], **kwargs)


#: The environment variable naming the Python 3 interpreter that runs (and
#: syntax-checks) Python submissions.
PYTHON_ENV = "SIO_PYTHON"


def python_interpreter() -> str:
    """The Python 3 interpreter for submissions: the worker's environment
    variable ``SIO_PYTHON`` (read on every call); by default the system's
    ``/usr/bin/python3``, or ``python3`` on ``PATH`` where there is none.

    Not the worker's own interpreter, nor a ``PATH`` lookup first: a worker
    in a virtual environment (or under a version manager's shims) must not
    give submissions its packages or a wrapper script.
    """
    configured = os.environ.get(PYTHON_ENV)
    if configured:
        return configured
    return _SYSTEM_PYTHON if os.access(_SYSTEM_PYTHON, os.X_OK) else "python3"


_SYSTEM_PYTHON = "/usr/bin/python3"


class Python(FileRunner):
    """A zip application made by the ``system-python`` compiler.

    ``-I`` (isolated mode): the interpreter ignores ``PYTHON*`` variables
    and the user's site directory; the zip itself is on ``sys.path``, so the
    program imports the modules compiled with it.
    """

    mode = "python"

    def preferred_filename(self) -> str:
        return str(self.exec_info.get("preferred_filename") or "a.pyz")

    def _run(self, file: str, args: list[Any], kwargs: dict[str, Any]) -> dict[str, Any]:
        return self.executor([python_interpreter(), "-I", file, *args], **kwargs)


class SupervisedJava(Java):
    """:class:`Java` under :class:`~sio.workers.executors.SupervisedExecutor`,
    with what the JVM needs beyond a native program and nothing more:

    * threads: up to :data:`JAVA_MAX_THREADS` (its JIT compilers, garbage
      collector and service threads, and the program's own), and up to
      :data:`JAVA_MAX_OPEN_FILES` descriptors;
    * reading its own ``/proc`` entry (it finds its home and limits there),
      the jar, and the JDK's home and configuration directory;
    * the system files it probes and can do without (cgroup, CPU and memory
      information) and the name-service socket glibc tries when the JVM
      looks up its user fail with EACCES instead of being rule violations;
      anything else stays forbidden (no process, no network, no writing);
    * ``-XX:-UsePerfData``: no performance-data file in ``/tmp``.

    The memory limit is the JVM's heap and stack size (``-Xmx``, ``-Xms``,
    ``-Xss``, as :class:`Java`), with no address-space limit (a JVM reserves
    gigabytes it never uses); ``mem_used`` is the peak resident memory. A
    heap that does not fit ends the program with ``OutOfMemoryError``: RE.

    Threads need Landlock (without it the supervisor allows one thread):
    on a machine without it this fails clearly (SupervisorUnavailable).
    """

    jvm_options = ("-XX:-UsePerfData",)
    no_memory_limit = 0  # the supervised executor's "no limit"

    def _run(self, file: str, args: list[Any], kwargs: dict[str, Any]) -> dict[str, Any]:
        import errno

        from sio.workers._engine.supervisor._client import probe
        from sio.workers._engine.supervisor.errors import SupervisorUnavailable

        caps = probe()
        if caps.usable and not caps.landlock_abi:
            raise SupervisorUnavailable(
                "Java cannot run under the supervisor on this machine: the JVM needs "
                "threads, which the supervisor allows only with Landlock (Linux >= 5.13 "
                "with Landlock enabled); use unsafe-exec or a machine that has it")
        changes = dict(kwargs.get("policy_changes") or {})
        changes.update(max_threads=JAVA_MAX_THREADS, max_open_files=JAVA_MAX_OPEN_FILES,
                       read_own_proc=True, quiet_denials=True,
                       refused_syscalls=(("socket", errno.EACCES),))
        kwargs["policy_changes"] = changes
        kwargs["read_paths"] = (*kwargs.get("read_paths", ()), file, *_java_home_paths())
        kwargs["resident_memory"] = True
        kwargs.setdefault("mem_limit", self.no_memory_limit)
        return super()._run(file, args, kwargs)


#: Most threads of a JVM under the supervisor (the main one included).
JAVA_MAX_THREADS = 64
#: Most descriptors of a JVM under the supervisor: it keeps its jars, the
#: modules image and some of its libraries open.
JAVA_MAX_OPEN_FILES = 128


def _java_home_paths() -> tuple[str, ...]:
    """The JDK home of the ``java`` on PATH and its ``conf`` directory
    (Debian keeps it in /etc), symbolic links resolved."""
    import shutil

    java = shutil.which("java")
    if java is None:
        return ()
    home = os.path.dirname(os.path.dirname(os.path.realpath(java)))
    paths = [home]
    conf = os.path.join(home, "conf")
    if os.path.exists(conf):
        paths.append(os.path.realpath(conf))
    return tuple(paths)


class SupervisedPython(Python):
    """:class:`Python` under :class:`~sio.workers.executors.SupervisedExecutor`:
    the program may read its own zip application (and nothing else of the
    job directory), the interpreter's standard library (below ``/usr/lib``,
    like every program's libraries) and the files the interpreter looks for
    beside itself at start-up (:func:`python_startup_paths`). Everything
    else is as for a C program: opening another file, writing one or
    starting a process is a rule violation. The environment gets
    ``HOME`` = :data:`PYTHON_HOME`."""

    def _run(self, file: str, args: list[Any], kwargs: dict[str, Any]) -> dict[str, Any]:
        kwargs["read_paths"] = (*kwargs.get("read_paths", ()), file,
                                *python_startup_paths(python_interpreter()))
        # Without HOME, the site module asks the name service for the
        # user's home (a socket to nscd: a rule violation). No home exists.
        kwargs["env"] = {"HOME": PYTHON_HOME, **(kwargs.get("env") or {})}
        return super()._run(file, args, kwargs)


#: ``HOME`` of Python programs under the supervisor (it does not exist).
PYTHON_HOME = "/nonexistent"


def python_startup_paths(interpreter: str) -> tuple[str, ...]:
    """The files CPython opens beside its executable while it finds its
    prefix (``getpath``): ``pyvenv.cfg`` in the executable's directory and
    the one above, ``<name>._pth`` and ``pybuilddir.txt`` in the executable's
    directory, for the name it was started by and the file that name links
    to. Usually none exists; they are listed so that looking for them is not
    a rule violation."""
    import shutil

    found = shutil.which(interpreter) or interpreter
    paths: list[str] = []
    for exe in dict.fromkeys((os.path.abspath(found), os.path.realpath(found))):
        here = os.path.dirname(exe)
        name = os.path.basename(exe)
        paths += [os.path.join(here, "pyvenv.cfg"),
                  os.path.join(os.path.dirname(here), "pyvenv.cfg"),
                  os.path.join(here, name + "._pth"),
                  os.path.join(here, "pybuilddir.txt")]
    return tuple(dict.fromkeys(paths))


# --------------------------------------------------------------------------
# Helper programs that come without an exec_info
# --------------------------------------------------------------------------

#: The longest ``#!`` line read (the kernel reads 256 bytes since Linux 5.1).
SHEBANG_LIMIT = 256


def read_shebang(path: str | os.PathLike[str]) -> list[str] | None:
    """The interpreter line of a script, as the kernel splits it: the
    interpreter and at most one argument (the rest of the line, stripped),
    or None when the file does not start with ``#!`` or names nothing."""
    with open(path, "rb") as f:
        head = f.read(SHEBANG_LIMIT)
    if not head.startswith(b"#!"):
        return None
    line = head[2:].split(b"\n", 1)[0].decode("utf-8", "surrogateescape").strip(" \t")
    interpreter, _, argument = line.replace("\t", " ").partition(" ")
    if not interpreter:
        return None
    argument = argument.strip()
    return [interpreter, argument] if argument else [interpreter]


def is_python_shebang(shebang: Sequence[str]) -> bool:
    """Whether an interpreter line (of :func:`read_shebang`) names Python:
    ``/usr/bin/python3``, ``/usr/bin/python3.12``, ``/usr/bin/env python3``,
    ``/usr/bin/env -S python3 -u`` and the like."""
    import re

    words = [shebang[0], *(shebang[1].split() if len(shebang) > 1 else ())]
    name = os.path.basename(words[0])
    if name == "env":
        name = next((w for w in words[1:] if not w.startswith("-")), "")
    return re.fullmatch(r"python(3(\.[0-9]+)?)?", name) is not None


def helper_program_kind(path: str | os.PathLike[str]) -> str:
    """The kind of a checker or interactor, which oioioi sends as a bare
    file (``chk_file``, ``interactor_file``) without the ``exec_info`` its
    compile job returned: decided from the file's first bytes.

    ``python``
        a zip application with a ``__main__.py`` and no ``#!`` line (what
        the ``system-python`` compiler makes of ``<short>chk.py``), or a
        script whose ``#!`` line names Python (:func:`is_python_shebang`);
    ``script``
        another ``#!`` script (a sinol package's ``<short>chk.sh``);
    ``executable``
        anything else (an ELF program; what the kernel cannot start fails
        as it did).
    """
    import zipfile

    with open(path, "rb") as f:
        head = f.read(4)
    if head == b"\x7fELF":
        return "executable"
    if head.startswith(b"#!"):
        shebang = read_shebang(path)
        if shebang is None:
            return "executable"
        return "python" if is_python_shebang(shebang) else "script"
    if head == b"PK\x03\x04" and zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as zf:
                if "__main__.py" in zf.namelist():
                    return "python"
        except (zipfile.BadZipFile, OSError):
            pass
    return "executable"


class SupervisedScript(FileRunner):
    """A ``#!`` script (not Python) under the supervisor: its interpreter
    runs with the script as an argument, as the kernel would start it
    (``<interpreter> [<argument>] ./<file> args...``), and may read the
    script. The supervisor starts a program from a close-on-exec descriptor
    (``execveat``), which the kernel cannot hand to an interpreter, so the
    script itself cannot be what it starts. Everything else is as for a
    native program: the interpreter starting another program (a command of
    a shell script) is a rule violation."""

    mode = "script"

    def preferred_filename(self) -> str:
        return "exe"

    def _run(self, file: str, args: list[Any], kwargs: dict[str, Any]) -> dict[str, Any]:
        shebang = read_shebang(os.path.join(kwargs.get("cwd") or tempcwd(), file))
        if shebang is None:
            raise UsageError(f"{file!r} is not a #! script")
        if not os.path.isabs(shebang[0]):
            # The kernel would look for it from the run directory: a file
            # of the job, not a system interpreter.
            raise NoFileRunner(f"{file!r} names the interpreter {shebang[0]!r} in its #! "
                               "line: under the supervisor it must be an absolute path")
        program = file if os.path.isabs(file) else "./" + file
        kwargs["read_paths"] = (*kwargs.get("read_paths", ()), file)
        return self.executor([*shebang, program, *args], **kwargs)


def helper_runner(executor: BaseExecutor, file: str) -> FileRunner:
    """The runner of a checker or interactor ``file`` (in the job
    directory) in ``executor``, by :func:`helper_program_kind`:

    * a Python zip application: as a ``python`` submission, the interpreter
      of :func:`python_interpreter` started with the file as its argument
      (under the supervisor with :class:`SupervisedPython`'s allowances);
    * under the built-in supervisor, a ``#!`` script: Python ones the same
      way (whatever interpreter the line names), others with
      :class:`SupervisedScript`;
    * anything else as ``./file`` (outside the supervisor a ``#!`` script
      is started by the kernel with the interpreter its line names, as the
      original did).

    :raises NoFileRunner: a zip application in an executor that cannot run
        Python (the original's ``exec-sandbox`` supervisor, PRoot).
    """
    path = os.path.join(tempcwd(), file)
    kind = helper_program_kind(path)
    supervised = type(executor) is SupervisedExecutor
    if kind == "python" and (supervised or read_shebang(path) is None):
        return get_file_runner(executor, {"exec_info": {"mode": "python"}})
    if kind == "script" and supervised:
        return SupervisedScript(executor, {})
    return get_file_runner(executor, {"exec_info": {"mode": "executable"}})


# --------------------------------------------------------------------------
# The registry
# --------------------------------------------------------------------------

_runners: dict[tuple[str, type[BaseExecutor]], type[FileRunner]] = {}


def register_file_runner(mode: str, executor_class: type[BaseExecutor],
                         runner_class: type[FileRunner]) -> None:
    """Let files of kind ``mode`` run in executors of exactly
    ``executor_class`` with ``runner_class`` (replacing any previous one)."""
    _runners[(mode, executor_class)] = runner_class


def file_runner_modes(executor_class: type[BaseExecutor]) -> list[str]:
    """The modes that executors of exactly ``executor_class`` can run."""
    return sorted(mode for mode, cls in _runners if cls is executor_class)


def get_file_runner(executor: BaseExecutor, environ: dict[str, Any]) -> FileRunner:
    """The runner for ``environ['exec_info']['mode']`` in ``executor``.

    Sets ``environ['exec_info']`` to ``{'mode': 'executable'}`` when absent.

    :raises NoFileRunner: (a :class:`SystemError`) no runner is registered
        for that mode and that executor class.
    """
    exec_info = environ.setdefault("exec_info", {"mode": "executable"})
    mode = exec_info.get("mode", "executable") if isinstance(exec_info, Mapping) else None
    runner = _runners.get((mode, type(executor))) if isinstance(mode, str) else None
    if runner is None:
        available = file_runner_modes(type(executor))
        raise NoFileRunner(
            f"No way of running file of kind {mode!r} in executor "
            f"{type(executor).__name__} (environ['exec_info'] = {exec_info!r}); it runs: "
            + (", ".join(available) if available else "nothing (no runner registered)"))
    return runner(executor, environ)


for _executor in (UnprotectedExecutor, DetailedUnprotectedExecutor, PRootExecutor,
                  PRoot32BitExecutor):
    register_file_runner("executable", _executor, Executable)
    register_file_runner("java", _executor, Java)
# Python runs with the machine's interpreter: not inside a PRoot sandbox,
# which has its own file system (and usually no Python).
for _executor in (UnprotectedExecutor, DetailedUnprotectedExecutor):
    register_file_runner("python", _executor, Python)
# Under the supervisor: native programs, Python and Java (each runtime with
# what it needs beyond a native program, see its runner). The latest
# original could not run Java in its supervised (sio2jail) jobs; the one
# before ran it in a JRE sandbox under its supervisor.
register_file_runner("executable", SupervisedExecutor, Executable)
register_file_runner("python", SupervisedExecutor, SupervisedPython)
register_file_runner("java", SupervisedExecutor, SupervisedJava)
# The original's exec-sandbox supervisor: native programs only (its Python
# and Java needs are unknown; the original ran Java there from another sandbox).
register_file_runner("executable", ExecSandboxSupervisedExecutor, Executable)
# The original's sio2jail executors: native programs only, as there.
# (Sio2JailExecutor refuses every call: no instruction counting here.)
register_file_runner("executable", Sio2JailExecutor, Executable)
register_file_runner("executable", RealTimeSio2JailExecutor, Executable)


# --------------------------------------------------------------------------
# The original's names
# --------------------------------------------------------------------------

class LanguageModeWrapper(FileRunner):
    """The original's base class of file runners, for runners written
    against it. A subclass sets :attr:`handled_exec_mode` and
    :attr:`handled_executors` and is registered (with
    :func:`register_file_runner`) for each of those executor classes when
    it is created, as in the original; it implements
    :meth:`preferred_filename` and ``__call__(file, args, **kwargs)`` (or
    :meth:`FileRunner._run`, which also gets ``extra_execution_files``
    fetched first).
    """

    #: the ``exec_info['mode']`` this runner handles (None: not registered)
    handled_exec_mode: ClassVar[str | None] = None
    #: the executor classes (exactly) it runs files in
    handled_executors: ClassVar[tuple[type[BaseExecutor], ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.handled_exec_mode:
            cls.mode = cls.handled_exec_mode
            for executor_class in cls.handled_executors:
                register_file_runner(cls.handled_exec_mode, executor_class, cls)


class NoOp(LanguageModeWrapper):
    """Runs the file as it is named (``file args...``, no ``./``), under
    ``exec_info['preferred_filename']`` (default ``exe``). Registered for no
    executor, as in the original: use it directly or subclass it."""

    handled_exec_mode = "executable"
    handled_executors = ()

    def preferred_filename(self) -> str:
        return str(self.exec_info.get("preferred_filename") or "exe")

    def _run(self, file: str, args: list[Any], kwargs: dict[str, Any]) -> dict[str, Any]:
        return self.executor([file, *args], **kwargs)


#: The original's name of the runner of jars under the supervised executor
#: (it ran them with a JRE sandbox under its supervisor); here
#: :class:`SupervisedJava`.
JavaSIO = SupervisedJava


# --------------------------------------------------------------------------
# Extra execution files
# --------------------------------------------------------------------------

def fetch_extra_execution_files(environ: Mapping[str, Any], directory: str) -> list[str]:
    """Download ``environ['extra_execution_files']`` into ``directory``.

    Environ keys read: ``extra_execution_files`` (dict: file name relative
    to the run directory -> name for :func:`sio.workers.ft.download`),
    ``use_filetracker``. Returns the paths written.

    :raises UsageError: the key is not a dict, or a file name would leave
        the directory.
    """
    files = environ.get("extra_execution_files")
    if not files:
        return []
    if not isinstance(files, Mapping):
        raise UsageError("environ['extra_execution_files'] must be a dict of file name -> "
                         f"file to download, not {files!r}")
    from sio.workers import ft  # lazy: only jobs with extra files need Filetracker

    written = []
    root = os.path.abspath(directory)
    for name, source in files.items():
        target = os.path.abspath(os.path.join(root, str(name)))
        if os.path.isabs(str(name)) or not target.startswith(root + os.sep):
            raise UsageError(f"environ['extra_execution_files'] names {name!r}: give a file "
                             "name relative to the run directory")
        one = {"extra_execution_file": source}
        if "use_filetracker" in environ:
            one["use_filetracker"] = environ["use_filetracker"]
        # Many runs of a problem read the same files: keep them in the cache.
        written.append(ft.download(one, "extra_execution_file", target, add_to_cache=True))
    return written
