"""Output-only "compiler": the submission is the output itself.

Entry point: ``output-only``. Nothing is fetched, run or uploaded:
``result_code = 'OK'``, ``compiler_output = 'Compilation omitted (output
provided).'``, ``exec_info = {'mode': 'output-only'}`` and ``out_file =
source_file`` (the exec job then checks that file as the program's output).
"""

from __future__ import annotations

from typing import Any

from sio.workers.errors import MissingEnvironKey
from sio.workers.results import ResultCode

__all__ = ["run", "MESSAGE"]

#: ``compiler_output`` of an output-only submission
MESSAGE = "Compilation omitted (output provided)."


def run(environ: dict[str, Any]) -> dict[str, Any]:
    """Environ keys read: ``source_file``. Written: ``result_code``,
    ``compiler_output``, ``exec_info``, ``out_file``."""
    if "source_file" not in environ:
        raise MissingEnvironKey("source_file", "compiler 'output-only'")
    environ["result_code"] = ResultCode.OK.value
    environ["compiler_output"] = MESSAGE
    environ["exec_info"] = {"mode": "output-only"}
    environ["out_file"] = environ["source_file"]
    return environ
