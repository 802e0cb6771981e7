"""Free Pascal with the system ``fpc``.

Entry points: ``system-fpc`` (alias ``system-pas``). The command, run in
the compile directory::

    fpc a.pas -O2 -XS -Xt <extra args>

(``-XS -Xt``: link statically; the result is ``a``). Additional sources are
not put on the command line: ``fpc`` finds the units it uses in the
directory. The sandboxed variant is in :mod:`sio.compilers.fpc`.
"""

from __future__ import annotations

import os

from sio.compilers.common import CompileJob, Compiler, OriginalStyleCompiler
from sio.workers.executors import BaseExecutor

__all__ = ["FPC", "run", "FPCCompiler", "FLAGS"]

#: options of ``system-fpc`` (``-XS -Xt``: link statically)
FLAGS = ["-O2", "-XS", "-Xt"]


class FPC(Compiler):
    """``fpc``: one command, result ``a``, mode ``executable``.

    In a sandbox that has an ``fpc.cfg.in``, an ``fpc.cfg`` is written into
    the compile directory first, with ``__DIR__`` replaced by the sandbox's
    root as the compiler sees it (no trailing ``/``).
    """

    def result_name(self, job: CompileJob) -> str:
        return os.path.splitext(job.source)[0]

    def commands(self, job: CompileJob) -> list[list[str]]:
        return [[self.program, job.source, *self.flags, *job.extra_args]]

    def prepare(self, job: CompileJob, executor: BaseExecutor) -> None:
        host_root = getattr(executor, "path", None)
        if self.sandbox is None or host_root is None:
            return
        guest_root = str(getattr(executor, "rpath", host_root)).rstrip("/")
        if guest_root:
            template = os.path.join(host_root, "fpc.cfg.in")
        else:
            # The sandbox is the compiler's '/' (PRoot): an absolute link
            # there means a file of the sandbox, not of the host.
            from sio.workers.sandbox import resolve_in_sandbox

            template = resolve_in_sandbox(host_root, "fpc.cfg.in")
        if os.path.isfile(template):
            with open(template, encoding="utf-8", errors="surrogateescape") as f:
                text = f.read().replace("__DIR__", guest_root)
            with open(job.path("fpc.cfg"), "w", encoding="utf-8",
                      errors="surrogateescape") as f:
                f.write(text)


#: ``system-fpc``, ``system-pas``
run = FPC("system-fpc", "pas", "fpc", flags=FLAGS)


class FPCCompiler(OriginalStyleCompiler, FPC):
    """The original's Free Pascal compiler class, configured by attributes
    (see :class:`~sio.compilers.common.OriginalStyleCompiler`): ``options``
    (default those of ``system-fpc``), ``compiler`` (``fpc``),
    ``output_file`` (``a``) and ``sandbox`` (e.g. ``fpc.2_6_2`` for sandbox
    ``compiler-fpc.2_6_2``; None: the system ``fpc``).
    ``FPCCompiler(sandbox=None).compile(environ)`` runs ``<compiler> a.pas
    <options> <extra args>``."""

    lang = "pas"
    compiler = "fpc"
    options = list(FLAGS)
    output_file = "a"

    def commands(self, job: CompileJob) -> list[list[str]]:
        return [[self.compiler, job.source, *map(str, self.options), *job.extra_args]]
