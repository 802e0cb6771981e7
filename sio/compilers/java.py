"""Java in a compiler sandbox.

``java1_8`` runs ``javac`` and ``jar`` of sandbox ``compiler-java.1_8``
through :class:`~sio.workers.executors.PRootExecutor` (with ``/proc`` bound
inside, which the JVM needs), with the commands of
:mod:`sio.compilers.system_java`; without the sandbox it fails with
:class:`~sio.compilers.common.SandboxUnavailable`. ``default-java``/``java``
is :data:`run_java_default` (the system JDK unless
``SIO_DEFAULT_COMPILERS`` names another compiler).
"""

from __future__ import annotations

from sio.compilers.common import DefaultCompiler
from sio.compilers.system_java import Java
from sio.compilers.system_java import JavaCompiler as _SystemJavaCompiler

__all__ = ["VARIANTS", "run_java1_8", "run_java_default", "JavaCompiler"]

#: entry point -> sandbox
VARIANTS: dict[str, str] = {
    "java1_8": "compiler-java.1_8",
}

#: ``java1_8``
run_java1_8 = Java("java1_8", sandbox=VARIANTS["java1_8"], binds=[("/proc", "/proc", "rw")])
#: ``default-java``, ``java``
run_java_default = DefaultCompiler("java")


class JavaCompiler(_SystemJavaCompiler):
    """The original's sandboxed Java compiler class: ``JavaCompiler()``
    compiles with the JDK of sandbox ``compiler-java.1_8`` (see
    :class:`sio.compilers.system_java.JavaCompiler`)."""

    sandbox = "java.1_8"
