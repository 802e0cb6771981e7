"""``inwer``: run a problem's input verifier on one test input.

Environ keys read:

``exe_file`` (required)
    the compiled verifier.
``in_file`` (required)
    the test input, given to the verifier as its standard input (a zip
    holding one file is unpacked, as in the exec jobs).
``in_file_name`` (optional)
    the test's file name (e.g. ``abc1a.in``), given as the verifier's
    first argument.
``use_sandboxes`` (bool, default False)
    run the verifier under the supervisor instead of unprotected (see
    :mod:`sio.executors.selection`).
``inwer_time_limit`` (ms, default 300000), ``inwer_real_time_limit`` (ms, default twice the time limit; with ``use_sandboxes`` twice the time limit + 1000, and 1000 ms are added to a given one too), ``inwer_mem_limit`` (KiB, default 262144), ``inwer_output_limit`` (bytes of its output kept in ``stdout``, default 10240)
    the verifier's limits.

Keys written (the executor's verdict):

``result_code``, ``result_string``
    ``OK`` when it exited with status 0, else ``RE``, ``TLE``, ... A
    verifier accepts an input by exiting with 0 and printing a first line
    that starts with ``OK``;
``stdout``
    its standard output and error as a list of lines (str, invalid UTF-8
    replaced);
``time_used`` (ms), ``mem_used`` (KiB), ``num_syscalls``, ``return_code``, ``real_time_used`` (ms), ...
    as the executor reports them.

Unlike the original, which returned only the executor's result, the whole
environ is returned with these keys merged in, like every other job.
"""

from __future__ import annotations

import logging
from typing import Any

from sio.executors import common
from sio.executors.ingen import decode_lines
from sio.executors.selection import executor_for

logger = logging.getLogger(__name__)

__all__ = ["run", "DEFAULT_INWER_TIME_LIMIT", "DEFAULT_INWER_MEM_LIMIT",
           "DEFAULT_INWER_OUTPUT_LIMIT"]

#: Time limit of the verifier (ms).
DEFAULT_INWER_TIME_LIMIT = 300000
#: Memory limit of the verifier (KiB).
DEFAULT_INWER_MEM_LIMIT = 262144
#: How much of its output is kept in ``stdout`` (bytes).
DEFAULT_INWER_OUTPUT_LIMIT = 10240


def run(environ: dict[str, Any]) -> dict[str, Any]:
    """Job ``inwer`` (see the module docs for its keys)."""
    role = "sandboxed-inwer" if environ.get("use_sandboxes", False) else "inwer"
    executor = executor_for(role)
    program = common.download_program(environ, "exe_file", "inwer", "the inwer job")
    stdin_path = common.fetch_input(environ, "the inwer job")
    args = [str(environ["in_file_name"])] if environ.get("in_file_name") else []
    with executor, open(stdin_path, "rb") as stdin:
        renv = executor([executor.tempcwd_to_rcwd(program), *args], stdin=stdin,
                        capture_output=True, split_lines=True, forward_stderr=True,
                        ignore_errors=True, time_limit=DEFAULT_INWER_TIME_LIMIT,
                        mem_limit=DEFAULT_INWER_MEM_LIMIT,
                        output_limit=DEFAULT_INWER_OUTPUT_LIMIT,
                        environ=environ, environ_prefix="inwer_")
    renv["stdout"] = decode_lines(renv.get("stdout"))
    first = renv["stdout"][0] if renv["stdout"] else ""
    if renv.get("result_code") != "OK" or not first.startswith("OK"):
        logger.error("inwer %r rejected %r (%s: %s); its output: %s", environ["exe_file"],
                     environ.get("in_file_name") or environ["in_file"],
                     renv.get("result_code"), renv.get("result_string"),
                     "\n".join(renv["stdout"]))
    environ.update(renv)
    return environ
