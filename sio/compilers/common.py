"""The shared compiler machinery: one :class:`Compiler` base, its limits,
file fetching, and the ``default-<ext>`` resolution.

A compiler is a callable ``compiler(environ) -> environ`` registered in the
entry-point group ``sio.compilers``. Compilers here are instances of
:class:`Compiler` subclasses: each family module (``system_gcc``,
``system_fpc``, ``system_java``, ``system_python``, ``gcc``, ``fpc``,
``java``, ``output``) holds one subclass and declares its variants as data.

Environ keys read by :meth:`Compiler.compile` (units in brackets):

``source_file``
    the source: a Filetracker path or a local path (see ``use_filetracker``).
``out_file``
    where the result goes (required for ``OK``); replaced by the name it
    was stored under (Filetracker: the versioned ``path@version``).
``compilation_time_limit`` [ms]
    CPU time of the compiler and everything it starts; default 30000.
``compilation_real_time_limit`` [ms]
    wall time; default twice the time limit (three times under PRoot).
``compilation_mem_limit`` [KiB]
    address space of each compiler process; default 524288 (512 MiB).
    Java compilers have no default; a given limit becomes the JVM's heap
    size (``-J-Xmx``) rather than an address-space limit.
``compilation_output_limit`` [bytes]
    how much of the compiler's messages is kept; default 5120; ``None`` or
    0 keeps everything.
``compilation_result_size_limit`` [bytes]
    the largest result accepted; a bigger one is ``CE`` with
    ``compiler_output = "Compiled file size limit exceeded."``.
``compilation_file_size_limit`` [bytes]
    (ours) the largest file a compiler process may write
    (``RLIMIT_FSIZE``), so that a source whose binary would be huge fails
    early instead of filling the disk; default :data:`DEFAULT_FILE_SIZE_LIMIT`
    (64 MiB), or twice ``compilation_result_size_limit`` plus 16 MiB when
    that is given.
``additional_includes``, ``additional_sources``
    a name, a list of names, or a dict language -> name(s); each file is
    saved under its base name beside the source. Additional sources are
    also given to the compiler (C, C++, Java; Pascal and Python find them
    themselves).
``additional_archive``
    a zip file extracted beside the source. A member that would land
    outside the directory or overwrite a file already there is skipped
    with a warning.
``extra_files``
    dict target name -> file; each saved as ``basename(target)``.
``extra_compilation_args``
    a string (split like a shell line), a list, or a dict language ->
    string/list; added after the built-in options.
``problem_short_name``
    Java: the main class (and file) name.
``use_filetracker``
    ``True`` / ``False`` / ``'auto'`` (see :mod:`sio.workers.ft`).

Keys written: ``result_code`` (``OK`` or ``CE``), ``compiler_output``
(str: the compiler's messages, truncated to the output limit, invalid
UTF-8 replaced), ``exec_info`` (how to run the result, see
:mod:`sio.workers.file_runners`) and ``out_file``. Every other key is
left untouched.

The "language" of a compiler (:attr:`Compiler.lang`) is the source file
extension it takes: ``c``, ``cpp``, ``pas``, ``java``, ``py``. Dicts by
language may also use ``cc``, ``c++`` or ``cxx`` for C++ and ``p`` for
Pascal.
"""

from __future__ import annotations

import logging
import os
import shlex
import shutil
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from sio.workers.errors import SioWorkersError, UsageError
from sio.workers.executors import BaseExecutor, ExecRequest, UnprotectedExecutor
from sio.workers.results import ResultCode
from sio.workers.util import replace_invalid_UTF, tempcwd

logger = logging.getLogger(__name__)

__all__ = [
    "CompilerError",
    "CompilerNotInstalled",
    "SandboxUnavailable",
    "CompilationLimits",
    "fetch_file",
    "extract_archive",
    "extra_args",
    "compiler_executor_class",
    "CompileJob",
    "Compiler",
    "DefaultCompiler",
    "default_compiler_name",
    "DEFAULT_COMPILERS_ENV",
    "SYSTEM_COMPILERS",
    "DEFAULT_TIME_LIMIT",
    "DEFAULT_MEM_LIMIT",
    "DEFAULT_OUTPUT_LIMIT",
    "DEFAULT_FILE_SIZE_LIMIT",
    "SIZE_LIMIT_MESSAGE",
    "original_sandbox_name",
    "OriginalStyleCompiler",
    "DEFAULT_COMPILER_TIME_LIMIT",
    "DEFAULT_COMPILER_MEM_LIMIT",
    "DEFAULT_COMPILER_OUTPUT_LIMIT",
]

#: ``compilation_time_limit`` default, ms
DEFAULT_TIME_LIMIT = 30000
#: ``compilation_mem_limit`` default, KiB (512 MiB)
DEFAULT_MEM_LIMIT = 524288
#: ``compilation_output_limit`` default, bytes
DEFAULT_OUTPUT_LIMIT = 5120
#: ``compilation_file_size_limit`` default without a result size limit,
#: bytes (64 MiB)
DEFAULT_FILE_SIZE_LIMIT = 64 * 1024 * 1024
#: ``compiler_output`` of a result bigger than ``compilation_result_size_limit``
SIZE_LIMIT_MESSAGE = "Compiled file size limit exceeded."

#: The original's names of the three defaults above (ms, KiB, bytes).
DEFAULT_COMPILER_TIME_LIMIT = DEFAULT_TIME_LIMIT
DEFAULT_COMPILER_MEM_LIMIT = DEFAULT_MEM_LIMIT
DEFAULT_COMPILER_OUTPUT_LIMIT = DEFAULT_OUTPUT_LIMIT


def original_sandbox_name(sandbox: str | None) -> str | None:
    """The sandbox of a compiler built the original's way,
    ``SomeCompiler(sandbox)``: the original named the compiler's sandbox
    ``compiler-<sandbox>`` (``gcc.4_8_2`` -> ``compiler-gcc.4_8_2``); no
    name means the system toolchain."""
    return f"compiler-{sandbox}" if sandbox else None

#: The environment variable that names the compiler behind ``default-<ext>``
#: (see :func:`default_compiler_name`).
DEFAULT_COMPILERS_ENV = "SIO_DEFAULT_COMPILERS"

#: What ``default-<lang>`` means when :data:`DEFAULT_COMPILERS_ENV` says nothing.
SYSTEM_COMPILERS: dict[str, str] = {
    "c": "system-gcc",
    "cpp": "system-g++",
    "pas": "system-fpc",
    "java": "system-java",
    "py": "system-python",
}

# Other spellings of a language in dicts by language and default-<ext>.
_LANG_ALIASES = {"cc": "cpp", "c++": "cpp", "cxx": "cpp", "p": "pas", "python": "py"}


def _lang(name: str) -> str:
    name = name.lower()
    return _LANG_ALIASES.get(name, name)


class CompilerError(SioWorkersError):
    """A compiler could not do its work (not the submission's fault)."""


class CompilerNotInstalled(CompilerError, FileNotFoundError):
    """The compiler program is not installed on this machine."""


class SandboxUnavailable(CompilerError, RuntimeError):
    """A sandboxed compiler's sandbox cannot be used here. The message names
    the sandbox; nothing falls back to another compiler."""

    def __init__(self, compiler: str, sandbox: str, reason: str) -> None:
        self.compiler = compiler
        self.sandbox = sandbox
        super().__init__(f"compiler {compiler!r} needs sandbox {sandbox!r}, which is not "
                         f"available: {reason}. Install the sandbox (see sio-get-sandbox) or "
                         "use a system-* compiler")


# --------------------------------------------------------------------------
# Limits
# --------------------------------------------------------------------------

def _int_key(environ: Mapping[str, Any], key: str, default: int | None) -> int | None:
    """``environ[key]`` as a non-negative int; absent -> ``default``;
    ``None`` or 0 -> no limit (``None``)."""
    if key not in environ:
        return default
    value = environ[key]
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise UsageError(f"environ[{key!r}] must be a whole number, not {value!r}")
    try:
        number = int(value)
    except ValueError:
        raise UsageError(f"environ[{key!r}] must be a whole number, not {value!r}") from None
    if number < 0 or (isinstance(value, float) and number != value):
        raise UsageError(f"environ[{key!r}] must be a non-negative whole number, "
                         f"not {value!r}")
    return number or None


@dataclass(frozen=True)
class CompilationLimits:
    """The limits of one compilation; ``None`` = no limit."""

    time_limit_ms: int | None = DEFAULT_TIME_LIMIT
    #: None: the executor's default (a multiple of the time limit)
    real_time_limit_ms: int | None = None
    mem_limit_kib: int | None = DEFAULT_MEM_LIMIT
    output_limit_bytes: int | None = DEFAULT_OUTPUT_LIMIT
    result_size_limit_bytes: int | None = None
    file_size_limit_bytes: int | None = DEFAULT_FILE_SIZE_LIMIT

    @classmethod
    def from_environ(cls, environ: Mapping[str, Any],
                     mem_default: int | None = DEFAULT_MEM_LIMIT) -> CompilationLimits:
        """Read the ``compilation_*`` keys (see the module docs)."""
        result_size = _int_key(environ, "compilation_result_size_limit", None)
        file_size_default = DEFAULT_FILE_SIZE_LIMIT
        if result_size is not None:
            # Intermediate files (objects with symbols) can be bigger than
            # the stripped result, hence the margin.
            file_size_default = 2 * result_size + 16 * 1024 * 1024
        return cls(
            time_limit_ms=_int_key(environ, "compilation_time_limit", DEFAULT_TIME_LIMIT),
            real_time_limit_ms=_int_key(environ, "compilation_real_time_limit", None),
            mem_limit_kib=_int_key(environ, "compilation_mem_limit", mem_default),
            output_limit_bytes=_int_key(environ, "compilation_output_limit",
                                        DEFAULT_OUTPUT_LIMIT),
            result_size_limit_bytes=result_size,
            file_size_limit_bytes=_int_key(environ, "compilation_file_size_limit",
                                           file_size_default),
        )


class _CompilerLimitsMixin:
    """Mixed into an executor class for compilers: adds RLIMIT_FSIZE (call
    option ``file_size_limit``, bytes) and the engine's kill reason
    (``renv['killed']``)."""

    def _engine_limits(self, request: ExecRequest) -> Any:
        import dataclasses

        limits = super()._engine_limits(request)  # type: ignore[misc]
        size = request.options.get("file_size_limit")
        if size:
            # RLIMIT_FSIZE for the files it writes; the captured messages
            # keep their own limit (capture_bytes, None = this size too).
            limits = dataclasses.replace(limits, output_bytes=int(size))
        return limits

    def _renv(self, request: ExecRequest, outcome: Any) -> dict[str, Any]:
        renv: dict[str, Any] = super()._renv(request, outcome)  # type: ignore[misc]
        renv["killed"] = outcome.killed.value if outcome.killed is not None else None
        return renv


_limited_classes: dict[type, type] = {}


def compiler_executor_class(base: type[BaseExecutor]) -> type[BaseExecutor]:
    """``base`` with the compiler limits of :class:`_CompilerLimitsMixin`
    (one class per base, made once)."""
    cls = _limited_classes.get(base)
    if cls is None:
        cls = type(f"Compiler{base.__name__}", (_CompilerLimitsMixin, base), {})
        _limited_classes[base] = cls
    return cls


# --------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------

def fetch_file(environ: Mapping[str, Any], name: Any, dest: str, what: str,
               key: str = "file") -> str:
    """Download one file ``name`` (Filetracker or local, as the job's
    ``use_filetracker`` says) to ``dest`` (a trailing ``/``: keep the base
    name) and return its path. ``key``: the environ key ``name`` comes from,
    which an error names (``cannot get environ['source_file'] = ...``)."""
    from sio.workers import ft  # lazy: only jobs that fetch files need Filetracker

    if not isinstance(name, str) or not name:
        raise UsageError(f"{what} must be a file name, not {name!r}")
    one = {key: name}
    if "use_filetracker" in environ:
        one["use_filetracker"] = environ["use_filetracker"]
    return ft.download(one, key, dest)


def _by_language(environ: Mapping[str, Any], key: str, lang: str) -> Any:
    value = environ.get(key)
    if isinstance(value, Mapping):
        for k, v in value.items():
            if _lang(str(k)) == lang:
                return v
        return None
    return value


def _names(environ: Mapping[str, Any], key: str, lang: str) -> list[str]:
    """The file names under ``key``: a name, a list, or a dict by language."""
    value = _by_language(environ, key, lang)
    if value is None or value == "":
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, (list, tuple)):
        return list(value)
    raise UsageError(f"environ[{key!r}] must be a file name, a list of them, or a dict "
                     f"language -> name(s), not {value!r}")


def extra_args(environ: Mapping[str, Any], lang: str) -> list[str]:
    """``extra_compilation_args`` for language ``lang`` as a list."""
    value = _by_language(environ, "extra_compilation_args", lang)
    if value is None:
        return []
    if isinstance(value, str):
        return shlex.split(value)
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value]
    raise UsageError("environ['extra_compilation_args'] must be a string, a list or a dict "
                     f"language -> string/list, not {value!r}")


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root + os.sep)


def extract_archive(archive: str, directory: str) -> list[str]:
    """Extract the zip ``archive`` into ``directory``; return the relative
    names written.

    A member is skipped, with a warning, when its path is absolute, would
    resolve outside ``directory`` (``..``, a symbolic link on the way) or
    names something that exists already (the source, includes and extra
    files come first and win). Files are created with ``O_EXCL``, so
    nothing existing is ever overwritten.
    """
    import zipfile

    root = os.path.realpath(directory)
    written = []
    try:
        zf = zipfile.ZipFile(archive)
    except zipfile.BadZipFile as e:
        raise UsageError(f"environ['additional_archive'] is not a zip file: {e}") from None
    with zf:
        for info in zf.infolist():
            name = info.filename
            target = os.path.realpath(os.path.join(root, name))
            if os.path.isabs(name) or not _inside(target, root) or target == root:
                logger.warning("additional_archive: skipping %r: outside the compile "
                               "directory", name)
                continue
            if info.is_dir():
                if os.path.lexists(target) and not os.path.isdir(target):
                    logger.warning("additional_archive: skipping directory %r: a file of "
                                   "that name exists", name)
                else:
                    os.makedirs(target, exist_ok=True)
                continue
            parent = os.path.dirname(target)
            try:
                os.makedirs(parent, exist_ok=True)
                fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW,
                             0o644)
            except FileExistsError:
                logger.warning("additional_archive: skipping %r: it would overwrite an "
                               "existing file", name)
                continue
            except (NotADirectoryError, IsADirectoryError, FileNotFoundError):
                logger.warning("additional_archive: skipping %r: its directory is a file", name)
                continue
            try:
                with os.fdopen(fd, "wb") as out, zf.open(info) as src:
                    shutil.copyfileobj(src, out)
            except BaseException:
                os.unlink(target)
                raise
            written.append(os.path.relpath(target, root))
    return written


# --------------------------------------------------------------------------
# The compiler base
# --------------------------------------------------------------------------

@dataclass
class CompileJob:
    """The state of one compilation, passed to the :class:`Compiler` hooks."""

    environ: dict[str, Any]
    #: the compile directory (absolute; the commands run in it)
    directory: str
    limits: CompilationLimits
    #: the source's file name in ``directory``
    source: str
    #: additional sources (file names in ``directory``) for the command line
    sources: list[str] = field(default_factory=list)
    #: extra compilation arguments for this language
    extra_args: list[str] = field(default_factory=list)
    #: the messages of each step
    outputs: list[bytes] = field(default_factory=list)

    def path(self, name: str) -> str:
        return os.path.join(self.directory, name)


class Compiler:
    """A compiler: ``compiler(environ) -> environ`` (see the module docs for
    the keys).

    A subclass describes one family; an instance is one variant, made from
    data: its entry-point ``name``, the language, the program, the flags and
    (for sandboxed variants) the sandbox. Hooks to override: :meth:`commands`,
    :meth:`source_name`, :meth:`result_name`, :meth:`exec_info`,
    :meth:`prepare`, :meth:`finish`, :meth:`executor`.
    """

    #: ``exec_info['mode']`` of the result
    mode: ClassVar[str] = "executable"
    #: the default memory limit (KiB); None = none
    mem_default: ClassVar[int | None] = DEFAULT_MEM_LIMIT

    def __init__(self, name: str, lang: str, program: str, flags: Sequence[str] = (),
                 libs: Sequence[str] = (), sandbox: str | None = None) -> None:
        #: the entry-point name (for messages)
        self.name = name
        #: the source extension: c, cpp, pas, java, py
        self.lang = lang
        #: the compiler program (looked up on PATH, or in the sandbox)
        self.program = program
        #: options before the extra arguments
        self.flags = list(flags)
        #: options after the sources (libraries)
        self.libs = list(libs)
        #: the compiler sandbox (None: the system toolchain)
        self.sandbox = sandbox

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"

    def __call__(self, environ: dict[str, Any]) -> dict[str, Any]:
        return self.compile(environ)

    # -- hooks -------------------------------------------------------------

    def source_name(self, environ: Mapping[str, Any]) -> str:
        """The source's file name in the compile directory."""
        return f"a.{self.lang}"

    def result_name(self, job: CompileJob) -> str:
        """The file the compilation produces, in the compile directory."""
        return "a.out"

    def exec_info(self, job: CompileJob) -> dict[str, Any]:
        """``exec_info`` of a successful compilation."""
        return {"mode": self.mode}

    def commands(self, job: CompileJob) -> list[list[str]]:
        """The commands to run, in order (the next runs only when the
        previous succeeded). Paths are relative to the compile directory."""
        raise NotImplementedError

    def prepare(self, job: CompileJob, executor: BaseExecutor) -> None:
        """Called after the files are in place, before the commands."""

    def finish(self, job: CompileJob) -> str | None:
        """Called after the commands succeeded; return a message for a CE
        (the result is then not uploaded) or None."""
        return None

    def mem_limit_options(self, job: CompileJob) -> dict[str, Any]:
        """Executor options that apply the memory limit (KiB)."""
        return {"mem_limit": job.limits.mem_limit_kib or 0}

    def executor(self) -> BaseExecutor:
        """The executor the commands run in (entered by the caller)."""
        if self.sandbox is not None:
            return self._sandbox_executor(self.sandbox)
        return compiler_executor_class(UnprotectedExecutor)()

    def executor_options(self, job: CompileJob) -> dict[str, Any]:
        """More options for each executor call (e.g. PRoot binds)."""
        return {}

    # -- the compilation ---------------------------------------------------

    def compile(self, environ: dict[str, Any]) -> dict[str, Any]:
        """Compile ``environ['source_file']``; see the module docs."""
        from sio.workers import ft

        if "source_file" not in environ:
            from sio.workers.errors import MissingEnvironKey

            raise MissingEnvironKey("source_file", f"compiler {self.name!r}")
        # Before the compilation, not after it: a missing or unwritable
        # destination is the caller's mistake, and it should cost nothing.
        ft.check_upload(environ, "out_file", f"compiler {self.name!r}")
        limits = CompilationLimits.from_environ(environ, self.mem_default)
        directory = tempcwd("compile")
        os.makedirs(directory, exist_ok=True)
        job = CompileJob(environ=environ, directory=directory, limits=limits,
                         source=self.source_name(environ),
                         extra_args=extra_args(environ, self.lang))
        self._fetch_files(job)
        with self.executor() as executor:
            self.prepare(job, executor)
            ok, note = self._run_commands(job, executor)
        message = None
        if ok:
            message = self._check_result(job)
        output = replace_invalid_UTF(self._joined_output(job))
        if note:
            output = (output + "\n" if output and not output.endswith("\n") else output) + note
        if not ok or message is not None:
            environ["result_code"] = ResultCode.CE.value
            environ["compiler_output"] = message if message is not None else output
            return environ
        ft.upload(environ, "out_file", job.path(self.result_name(job)))
        environ["result_code"] = ResultCode.OK.value
        environ["compiler_output"] = output
        environ["exec_info"] = self.exec_info(job)
        return environ

    def _fetch_files(self, job: CompileJob) -> None:
        env = job.environ
        where = job.directory + "/"
        fetch_file(env, env["source_file"], job.path(job.source), "environ['source_file']",
                   "source_file")
        for name in _names(env, "additional_includes", self.lang):
            fetch_file(env, name, where, "an additional include", "additional_includes")
        for name in _names(env, "additional_sources", self.lang):
            job.sources.append(os.path.basename(fetch_file(env, name, where,
                                                       "an additional source",
                                                       "additional_sources")))
        extra_files = env.get("extra_files") or {}
        if not isinstance(extra_files, Mapping):
            raise UsageError("environ['extra_files'] must be a dict: target name -> file, "
                             f"not {extra_files!r}")
        for target, name in extra_files.items():
            base = os.path.basename(str(target))
            if not base or base in (".", ".."):
                raise UsageError(f"environ['extra_files'] has a bad target name {target!r}")
            fetch_file(env, name, job.path(base), f"environ['extra_files'][{target!r}]",
                       "extra_files")
        archive = env.get("additional_archive")
        if archive:
            # Outside the compile directory: the archive is not part of it.
            path = fetch_file(env, archive, tempcwd("additional_archive.zip"),
                          "environ['additional_archive']", "additional_archive")
            try:
                extract_archive(path, job.directory)
            finally:
                os.unlink(path)

    def _run_commands(self, job: CompileJob,
                      executor: BaseExecutor) -> tuple[bool, str | None]:
        limits = job.limits
        options = dict(
            cwd=job.directory, capture_output=True, forward_stderr=True, ignore_errors=True,
            time_limit=limits.time_limit_ms or 0,
            output_limit=limits.output_limit_bytes or 0,
            file_size_limit=limits.file_size_limit_bytes,
            **self.mem_limit_options(job),
            **self.executor_options(job),
        )
        if limits.real_time_limit_ms is not None:
            options["real_time_limit"] = limits.real_time_limit_ms
        for command in self.commands(job):
            self._check_installed(command[0])
            renv = executor(command, **options)
            job.outputs.append(renv.get("stdout") or b"")
            if renv["return_code"] != 0:
                return False, self._kill_note(renv, limits)
        return True, None

    def _kill_note(self, renv: Mapping[str, Any], limits: CompilationLimits) -> str | None:
        killed = renv.get("killed")
        if killed == "cpu_time" or (killed is None and renv.get("return_code") == 128 + 24):
            return f"Compilation time limit exceeded ({limits.time_limit_ms} ms)."
        if killed == "wall_time" or renv.get("real_time_killed"):
            return "Compilation real time limit exceeded."
        if killed == "output":
            return (f"Compilation stopped: a file would exceed "
                    f"{limits.file_size_limit_bytes} bytes.")
        return None

    def _check_installed(self, program: str) -> None:
        if self.sandbox is not None:
            return  # the sandbox has it, or entering it failed already
        if shutil.which(program) is None:
            raise CompilerNotInstalled(
                f"compiler {self.name!r} needs {program!r}, which is not installed on this "
                f"worker (not found on PATH={os.environ.get('PATH', '')!r})")

    def _joined_output(self, job: CompileJob) -> bytes:
        output = b"".join(job.outputs)
        limit = job.limits.output_limit_bytes
        return output[:limit] if limit else output

    def _check_result(self, job: CompileJob) -> str | None:
        message = self.finish(job)
        if message is not None:
            return message
        result = job.path(self.result_name(job))
        if not os.path.isfile(result):
            return f"The compiler did not produce {self.result_name(job)}."
        limit = job.limits.result_size_limit_bytes
        if limit is not None and os.path.getsize(result) > limit:
            return SIZE_LIMIT_MESSAGE
        return None

    def _sandbox_executor(self, sandbox: str) -> BaseExecutor:
        """A PRoot executor chrooted into ``sandbox``, or
        :class:`SandboxUnavailable`."""
        import importlib

        # Looked up at run time: the sandbox layer is optional for the
        # system compilers, and its absence must name the sandbox.
        try:
            importlib.import_module("sio.workers.sandbox")
        except ImportError as e:
            raise SandboxUnavailable(self.name, sandbox,
                                     f"this sioworkers has no sandbox support ({e})") from e
        executors = importlib.import_module("sio.workers.executors")
        proot = getattr(executors, "PRootExecutor", None)
        if proot is None:
            raise SandboxUnavailable(self.name, sandbox, "this sioworkers has no PRootExecutor")
        executor_class: Any = compiler_executor_class(proot)
        try:
            return _EnteredCheck(self.name, sandbox, executor_class(sandbox))
        except Exception as e:
            raise SandboxUnavailable(self.name, sandbox, f"{type(e).__name__}: {e}") from e


class OriginalStyleCompiler(Compiler):
    """A compiler built the original's way, ``SomeCompiler(sandbox=None)``,
    and configured by class (or instance) attributes, read when compiling:
    ``lang``, ``compiler`` (the program), ``options``, ``output_file`` (the
    result) and ``sandbox`` (the original's name, see
    :func:`original_sandbox_name`; None: the system toolchain). The base of
    the original's compiler classes (``CStyleCompiler``, ``FPCCompiler``),
    mixed before a family class that says how to use them."""

    lang: str = ""
    #: the compiler program
    compiler: str = ""
    #: its options
    options: list[str] = []
    #: the result's file name in the compile directory
    output_file: str = ""
    #: the original's sandbox name (``gcc.4_8_2``); None: the system toolchain
    sandbox: str | None = None

    def __init__(self, sandbox: str | None = None) -> None:
        cls = type(self)
        super().__init__(cls.__name__, cls.lang, cls.compiler,
                         sandbox=original_sandbox_name(sandbox or cls.sandbox))

    def result_name(self, job: CompileJob) -> str:
        return self.output_file


class _EnteredCheck(BaseExecutor):
    """Wraps a sandboxed executor so that failing to enter it (the sandbox
    cannot be installed) is a :class:`SandboxUnavailable` naming it."""

    def __init__(self, compiler: str, sandbox: str, inner: BaseExecutor) -> None:
        self.compiler = compiler
        self.sandbox = sandbox
        self.inner = inner

    def __enter__(self) -> BaseExecutor:
        try:
            return self.inner.__enter__()
        except Exception as e:  # whatever stops the sandbox from being installed
            raise SandboxUnavailable(self.compiler, self.sandbox,
                                     f"{type(e).__name__}: {e}") from e

    def __exit__(self, *exc_info: object) -> None:
        self.inner.__exit__(*exc_info)


# --------------------------------------------------------------------------
# default-<ext>
# --------------------------------------------------------------------------

def _configured_defaults() -> dict[str, str]:
    text = os.environ.get(DEFAULT_COMPILERS_ENV, "")
    result = {}
    for item in text.replace(";", ",").split(","):
        item = item.strip()
        if not item:
            continue
        lang, sep, name = item.partition("=")
        if not sep or not lang.strip() or not name.strip():
            raise UsageError(f"{DEFAULT_COMPILERS_ENV}={text!r}: give comma-separated "
                             "<ext>=<compiler> pairs, e.g. 'cpp=g++14_2_cpp23_amd64,c=system-gcc'")
        result[_lang(lang.strip())] = name.strip()
    return result


def default_compiler_name(lang: str) -> str:
    """The compiler ``default-<lang>`` stands for.

    The worker's environment variable :data:`SIO_DEFAULT_COMPILERS
    <DEFAULT_COMPILERS_ENV>` (comma-separated ``<ext>=<compiler>`` pairs,
    e.g. ``cpp=g++14_2_cpp23_amd64,c=gcc14_2_0_c17``, read on every call)
    chooses a compiler per language; a language it does not name uses the
    system toolchain (:data:`SYSTEM_COMPILERS`).

    :raises UsageError: unknown language, or a configured name that is
        itself a ``default-*`` alias.
    """
    lang = _lang(lang)
    name = _configured_defaults().get(lang) or SYSTEM_COMPILERS.get(lang)
    if name is None:
        raise UsageError(f"no default compiler for files '.{lang}' (known: "
                         + ", ".join(sorted(SYSTEM_COMPILERS)) + f"); set "
                         f"environ['compiler'] or {DEFAULT_COMPILERS_ENV}")
    if name.startswith("default-") or name in _ALIAS_NAMES:
        raise UsageError(f"{DEFAULT_COMPILERS_ENV} maps {lang!r} to {name!r}, another "
                         "default alias: name a real compiler")
    return name


#: deprecated aliases that resolve like default-<ext>
_ALIAS_NAMES = frozenset({"c", "cc", "cpp", "pas", "java", "python"})


class DefaultCompiler:
    """The compiler registered as ``default-<lang>`` (and the deprecated
    short aliases): calls whatever :func:`default_compiler_name` names."""

    def __init__(self, lang: str) -> None:
        self.lang = lang

    def __repr__(self) -> str:
        return f"<DefaultCompiler default-{self.lang}>"

    def resolve(self) -> Any:
        from sio.workers.util import first_entry_point

        return first_entry_point("sio.compilers", default_compiler_name(self.lang))

    def __call__(self, environ: dict[str, Any]) -> dict[str, Any]:
        compiler = self.resolve()
        logger.debug("default-%s is %r", self.lang, compiler)
        result: dict[str, Any] = compiler(environ)
        return result


def iter_files(directory: str, suffix: str) -> Iterator[str]:
    """Relative paths of the files under ``directory`` ending in ``suffix``,
    sorted."""
    for root, dirs, files in os.walk(directory):
        dirs.sort()
        for name in sorted(files):
            if name.endswith(suffix):
                yield os.path.relpath(os.path.join(root, name), directory)
