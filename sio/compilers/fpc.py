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
from sio.compilers.system_fpc import FPC

__all__ = ["VARIANTS", "run_pas_fpc2_6_2", "run_pas_default"]

#: entry point -> sandbox
VARIANTS: dict[str, str] = {
    "fpc2_6_2": "compiler-fpc.2_6_2",
}

#: ``fpc2_6_2``
run_pas_fpc2_6_2 = FPC("fpc2_6_2", "pas", "fpc", flags=["-O2", "-XS", "-Xt"],
                       sandbox=VARIANTS["fpc2_6_2"])
#: ``default-pas``, ``pas``
run_pas_default = DefaultCompiler("pas")
