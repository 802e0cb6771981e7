"""The ``ping`` job: a self-test of the whole path from client to worker.

Environ keys:

``ping`` (any JSON value, required)
    echoed back.

Writes ``pong``: the same value.
"""

from __future__ import annotations

from typing import Any

from sio.workers.errors import MissingEnvironKey


def run(environ: dict[str, Any]) -> dict[str, Any]:
    try:
        environ["pong"] = environ["ping"]
    except KeyError:
        raise MissingEnvironKey("ping", "the ping job") from None
    return environ
