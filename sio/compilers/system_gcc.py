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
"""

from __future__ import annotations

from sio.compilers.common import CompileJob, Compiler

__all__ = ["GCC", "run_gcc", "run_gplusplus"]


class GCC(Compiler):
    """``gcc``/``g++``: one command, result ``a.out``, mode ``executable``."""

    def commands(self, job: CompileJob) -> list[list[str]]:
        return [[self.program, *self.flags, *job.extra_args, job.source, *job.sources,
                 "-o", self.result_name(job), *self.libs]]


#: ``system-gcc``, ``system-c``
run_gcc = GCC("system-gcc", "c", "gcc", flags=["-std=gnu17", "-O2", "-s"], libs=["-lm"])
#: ``system-g++``, ``system-cc``, ``system-cpp``
run_gplusplus = GCC("system-g++", "cpp", "g++", flags=["-std=c++20", "-O2", "-s"],
                    libs=["-lm"])
