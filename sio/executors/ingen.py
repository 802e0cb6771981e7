"""``ingen``: run a problem's input generator and collect the tests it writes.

Environ keys read:

``exe_file`` (required)
    the compiled generator; it runs in an empty job directory and writes
    the test inputs there.
``re_string`` (required)
    a Python regular expression; the files whose names it matches at the
    start (:func:`re.match`; anchor the end with ``$``) are collected.
``collected_files_path`` (required)
    the Filetracker directory the collected files are uploaded to.
``use_sandboxes`` (bool, default False)
    run the generator in ``PRootExecutor('null-sandbox')`` instead of
    unprotected (see :mod:`sio.executors.selection`).
``ingen_time_limit`` (ms, default 600000), ``ingen_real_time_limit`` (ms, default twice the time limit, three times with ``use_sandboxes``), ``ingen_mem_limit`` (KiB, default 262144), ``ingen_output_limit`` (bytes of its output kept in ``stdout``, default 10240)
    the generator's limits.

Keys written:

``return_code``
    the generator's exit status (128 + N when killed by signal N); files
    are collected only when it is 0 (a client treats anything else as
    "ingen failed");
``stdout``
    its standard output and error, as a list of lines (str, invalid UTF-8
    replaced; split on ``\\n``, so a final newline gives a last ``''``);
``collected_files`` (only when ``return_code`` is 0)
    file name -> the versioned Filetracker path it was uploaded to;
``real_time_used`` (ms), ``real_time_killed`` (bool)
    from the executor.

Unlike the original, which returned only the executor's result, the whole
environ is returned with these keys merged in, like every other job.
"""

from __future__ import annotations

import logging
import os
import re
from typing import Any

from sio.executors import common
from sio.executors.selection import executor_for
from sio.workers.errors import MissingEnvironKey, UsageError
from sio.workers.util import tempcwd

logger = logging.getLogger(__name__)

__all__ = ["run", "DEFAULT_INGEN_TIME_LIMIT", "DEFAULT_INGEN_MEM_LIMIT",
           "DEFAULT_INGEN_OUTPUT_LIMIT", "decode_lines"]

#: Time limit of the generator (ms).
DEFAULT_INGEN_TIME_LIMIT = 600000
#: Memory limit of the generator (KiB).
DEFAULT_INGEN_MEM_LIMIT = 262144
#: How much of its output is kept in ``stdout`` (bytes).
DEFAULT_INGEN_OUTPUT_LIMIT = 10240

_NAME = "ingen"


def decode_lines(lines: list[bytes] | bytes | None) -> list[str]:
    """Captured output lines as JSON-able text (invalid UTF-8 replaced)."""
    if lines is None:
        return []
    if isinstance(lines, bytes):
        lines = lines.split(b"\n")
    return [line.decode("utf-8", "replace") for line in lines]


def run(environ: dict[str, Any]) -> dict[str, Any]:
    """Job ``ingen`` (see the module docs for its keys)."""
    for key in ("re_string", "collected_files_path"):
        if not environ.get(key):
            raise MissingEnvironKey(key, "the ingen job")
    try:
        pattern = re.compile(environ["re_string"])
    except (re.error, TypeError) as e:
        raise UsageError(f"environ['re_string'] is not a valid regular expression "
                         f"({environ['re_string']!r}: {e})") from None
    role = "sandboxed-ingen" if environ.get("use_sandboxes", False) else "ingen"
    executor = executor_for(role)
    program = common.download_program(environ, "exe_file", _NAME, "the ingen job")
    with executor:
        renv = executor([executor.tempcwd_to_rcwd(program)], capture_output=True,
                        split_lines=True, forward_stderr=True, ignore_errors=True,
                        time_limit=DEFAULT_INGEN_TIME_LIMIT, mem_limit=DEFAULT_INGEN_MEM_LIMIT,
                        output_limit=DEFAULT_INGEN_OUTPUT_LIMIT,
                        environ=environ, environ_prefix="ingen_")
    renv["stdout"] = decode_lines(renv.get("stdout"))
    if renv["return_code"] == 0:
        renv["collected_files"] = _collect(environ, pattern)
    else:
        logger.error("ingen %r failed with return code %s; its output: %s",
                     environ["exe_file"], renv["return_code"], "\n".join(renv["stdout"]))
    environ.update(renv)
    return environ


def _collect(environ: dict[str, Any], pattern: re.Pattern[str]) -> dict[str, str]:
    from sio.workers import ft

    directory = environ["collected_files_path"].rstrip("/")
    collected = {}
    for name in sorted(os.listdir(tempcwd())):
        path = tempcwd(name)
        if name == _NAME or not pattern.match(name) or not os.path.isfile(path):
            continue
        one = {"use_filetracker": environ["use_filetracker"]} \
            if "use_filetracker" in environ else {}
        collected[name] = ft.upload(one, "collected_file", path, dest=f"{directory}/{name}")
    logger.info("ingen collected %d files into %s", len(collected), directory)
    return collected
