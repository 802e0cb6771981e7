"""Java with the system JDK (``javac`` and ``jar``).

Entry point: ``system-java``. The main class is
``environ['problem_short_name']`` (default: the source's base name without
its extension); the source is saved as ``<Class>.java``. The commands, run
in the compile directory::

    javac -J-Xss32M [-J-Xmx<M>k] <extra args> -d classes <Class>.java <additional sources>
    jar cfe <Class>.jar <Class> -C classes .

``M`` is ``compilation_mem_limit`` when given (Java compilers have no
default memory limit, and the limit becomes the JVM's heap size rather than
an address-space limit, which a JVM could not start under). The jar names
its main class, so both ``java -jar`` and ``java -classpath`` run it.
``exec_info = {'mode': 'java', 'main_class': <Class>, 'preferred_filename':
'<Class>.jar'}``. The sandboxed variant is in :mod:`sio.compilers.java`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from sio.compilers.common import CompileJob, Compiler, original_sandbox_name
from sio.workers.errors import UsageError
from sio.workers.executors import BaseExecutor

__all__ = ["Java", "run", "run_default", "JavaCompiler"]

_CLASSES = "classes"


class Java(Compiler):
    """``javac`` then ``jar``; mode ``java``."""

    mode = "java"
    mem_default = None

    def __init__(self, name: str, program: str = "javac", jar: str = "jar",
                 sandbox: str | None = None, binds: list[tuple[str, str, str]] | None = None
                 ) -> None:
        super().__init__(name, "java", program, flags=["-J-Xss32M"], sandbox=sandbox)
        self.jar = jar
        #: PRoot binds of the sandboxed variant
        self.binds = binds or []

    def class_name(self, environ: Mapping[str, Any]) -> str:
        name = environ.get("problem_short_name")
        if not name:
            base = os.path.basename(str(environ["source_file"])).split("@")[0]
            name = os.path.splitext(base)[0]
        name = str(name)
        if not name.isidentifier():
            raise UsageError(f"the Java class name {name!r} (environ['problem_short_name'] or "
                             "the source's name) is not a valid identifier")
        return name

    def source_name(self, environ: Mapping[str, Any]) -> str:
        return self.class_name(environ) + ".java"

    def result_name(self, job: CompileJob) -> str:
        return self.class_name(job.environ) + ".jar"

    def mem_limit_options(self, job: CompileJob) -> dict[str, Any]:
        return {"mem_limit": 0}

    def executor_options(self, job: CompileJob) -> dict[str, Any]:
        return {"binds": self.binds} if self.binds else {}

    def prepare(self, job: CompileJob, executor: BaseExecutor) -> None:
        os.makedirs(job.path(_CLASSES), exist_ok=True)

    def commands(self, job: CompileJob) -> list[list[str]]:
        memory = job.limits.mem_limit_kib
        heap = [f"-J-Xmx{memory}k"] if memory else []
        main = self.class_name(job.environ)
        return [
            [self.program, *self.flags, *heap, *job.extra_args, "-d", _CLASSES, job.source,
             *job.sources],
            [self.jar, "cfe", self.result_name(job), main, "-C", _CLASSES, "."],
        ]

    def exec_info(self, job: CompileJob) -> dict[str, Any]:
        main = self.class_name(job.environ)
        return {"mode": "java", "main_class": main, "preferred_filename": f"{main}.jar"}


#: ``system-java``
run = Java("system-java")
#: the original's other name of :data:`run`
run_default = run


class JavaCompiler(Java):
    """The original's Java compiler class: ``JavaCompiler(sandbox=None)``
    compiles with the system JDK, or with the one of sandbox
    ``compiler-<sandbox>`` (e.g. ``java.1_8``) through PRoot, with ``/proc``
    bound inside. The commands and ``exec_info`` are those of
    :data:`run`."""

    #: the original's sandbox name; None: the system JDK
    sandbox: str | None = None

    def __init__(self, sandbox: str | None = None) -> None:
        cls = type(self)
        full = original_sandbox_name(sandbox or cls.sandbox)
        super().__init__(cls.__name__, sandbox=full,
                         binds=[("/proc", "/proc", "rw")] if full else None)
