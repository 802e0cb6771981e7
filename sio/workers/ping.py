"""The ``ping`` job: a self-test of the whole path from client to worker.

Environ keys:

``ping`` (any JSON value, required)
    echoed back.

Writes ``pong``: the same value.
"""

from __future__ import annotations

from sio.workers.errors import MissingEnvironKey

TYPE_CHECKING = False
if TYPE_CHECKING:
    from sio.workers.runner import Environ


def run(environ: Environ) -> Environ:
    try:
        environ["pong"] = environ["ping"]
    except KeyError:
        raise MissingEnvironKey("ping", "the ping job") from None
    return environ
