"""GCC: C and C++ with the system ``gcc`` / ``g++``.

Entry points: ``system-gcc`` (alias ``system-c``) and ``system-g++``
(aliases ``system-cc``, ``system-cpp``). The command, run in the compile
directory::

    gcc -std=gnu17 -O2 -s <extra args> a.c <additional sources> -o a.out -lm
    g++ -std=c++20 -O2 -s <extra args> a.cpp <additional sources> -o a.out -lm

The flags are those of the original's latest line (``-O2 -s -lm``; C++
``-std=c++20``), with C's language version made explicit (``gnu17``, the
default of GCC 8 to 14). Libraries come after the sources so that they
link whatever a source needs. Nothing is linked statically (the system
may lack static libraries). The sandboxed variants are in
:mod:`sio.compilers.gcc`.

:class:`CStyleCompiler`, :class:`CCompiler` and :class:`CPPCompiler` are the
original's classes, for compilers written against them: a subclass sets
``lang``, ``compiler`` (the program) and ``options``, and
``MyCompiler().compile(environ)`` (or ``MyCompiler('gcc.12_2_0')`` for the
sandbox ``compiler-gcc.12_2_0``) compiles with them.
"""

from __future__ import annotations

from sio.compilers.common import CompileJob, Compiler, OriginalStyleCompiler

__all__ = ["GCC", "run_gcc", "run_gplusplus", "CStyleCompiler", "CCompiler", "CPPCompiler"]

#: options of ``system-gcc`` and ``system-g++`` (libraries go after the sources)
C_FLAGS = ["-std=gnu17", "-O2", "-s"]
CPP_FLAGS = ["-std=c++20", "-O2", "-s"]
LIBS = ["-lm"]


class GCC(Compiler):
    """``gcc``/``g++``: one command, result ``a.out``, mode ``executable``."""

    def commands(self, job: CompileJob) -> list[list[str]]:
        return [[self.program, *self.flags, *job.extra_args, job.source, *job.sources,
                 "-o", self.result_name(job), *self.libs]]


#: ``system-gcc``, ``system-c``
run_gcc = GCC("system-gcc", "c", "gcc", flags=C_FLAGS, libs=LIBS)
#: ``system-g++``, ``system-cc``, ``system-cpp``
run_gplusplus = GCC("system-g++", "cpp", "g++", flags=CPP_FLAGS, libs=LIBS)


class CStyleCompiler(OriginalStyleCompiler, GCC):
    """The original's base of gcc-like compilers, configured by class (or
    instance) attributes instead of constructor data (see
    :class:`~sio.compilers.common.OriginalStyleCompiler`):

    ``lang``
        the source extension (``c``, ``cpp``);
    ``compiler``
        the program (``gcc``, ``g++-14``, ...);
    ``options``
        its options; ``-l<lib>`` options are put after the sources (so
        they link whatever a source needs), the others before;
    ``output_file``
        the result (``a.out``);
    ``sandbox``
        ``None`` (the system toolchain) or the original's sandbox name,
        e.g. ``gcc.4_8_2`` for sandbox ``compiler-gcc.4_8_2`` (run through
        :class:`~sio.workers.executors.PRootExecutor`).

    ``CStyleCompiler(sandbox=None)`` builds one; ``compile(environ)`` runs
    it (see :mod:`sio.compilers.common` for the environ keys). The
    attributes are read when compiling, so ``obj.options = [...]`` after
    construction works, as in the original. The command is
    ``<compiler> <options> <extra args> a.<lang> <additional sources> -o
    <output_file> <-l options>``, run in the compile directory.

    The original's private hooks (``_make_cmdline``, ``_run_in_executor``,
    ``_execute``, ``_postprocess``) are not called; override
    :meth:`commands` and the other hooks of
    :class:`~sio.compilers.common.Compiler` instead.
    """

    lang = "c"
    compiler = "gcc"
    output_file = "a.out"

    def commands(self, job: CompileJob) -> list[list[str]]:
        options = [str(o) for o in self.options]
        libs = [o for o in options if o.startswith("-l")]
        flags = [o for o in options if not o.startswith("-l")]
        return [[self.compiler, *flags, *job.extra_args, job.source, *job.sources,
                 "-o", self.result_name(job), *libs]]


class CCompiler(CStyleCompiler):
    """The original's C compiler: the system ``gcc`` with the options of
    ``system-gcc``."""

    lang = "c"
    compiler = "gcc"
    options = [*C_FLAGS, *LIBS]


class CPPCompiler(CStyleCompiler):
    """The original's C++ compiler: the system ``g++`` with the options of
    ``system-g++``."""

    lang = "cpp"
    compiler = "g++"
    options = [*CPP_FLAGS, *LIBS]
