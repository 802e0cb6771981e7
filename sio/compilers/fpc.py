"""Free Pascal in a compiler sandbox.

``fpc2_6_2`` runs ``fpc`` of sandbox ``compiler-fpc.2_6_2`` through
:class:`~sio.workers.executors.PRootExecutor` with the flags of
:mod:`sio.compilers.system_fpc`; without the sandbox it fails with
:class:`~sio.compilers.common.SandboxUnavailable`. ``default-pas``/``pas``
is :data:`run_pas_default` (the system ``fpc`` unless
``SIO_DEFAULT_COMPILERS`` names another compiler).
"""

from __future__ import annotations

from sio.compilers.common import DefaultCompiler
from sio.compilers.system_fpc import FLAGS, FPC
from sio.compilers.system_fpc import FPCCompiler as _SystemFPCCompiler

__all__ = ["VARIANTS", "run_pas_fpc2_6_2", "run_pas_default", "FPCCompiler",
           "run_fpc2_6_2", "run_fpc_default"]

#: entry point -> sandbox
VARIANTS: dict[str, str] = {
    "fpc2_6_2": "compiler-fpc.2_6_2",
}

#: ``fpc2_6_2``
run_pas_fpc2_6_2 = FPC("fpc2_6_2", "pas", "fpc", flags=FLAGS,
                       sandbox=VARIANTS["fpc2_6_2"])
#: ``default-pas``, ``pas``
run_pas_default = DefaultCompiler("pas")


class FPCCompiler(_SystemFPCCompiler):
    """The original's sandboxed Free Pascal compiler class (see
    :class:`sio.compilers.system_fpc.FPCCompiler`):
    ``FPCCompiler.fpc2_6_2()`` compiles with ``fpc`` of sandbox
    ``compiler-fpc.2_6_2``."""

    sandbox = "fpc.2_6_2"

    @classmethod
    def fpc2_6_2(cls) -> FPCCompiler:
        return cls("fpc.2_6_2")


# The original's names of the entry points' targets.
run_fpc2_6_2 = run_pas_fpc2_6_2
run_fpc_default = run_pas_default
