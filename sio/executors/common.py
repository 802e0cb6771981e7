"""Running a submission on one test: the body of the ``exec`` family of jobs.

:func:`run` is what ``exec``, ``cpu-exec`` and ``unsafe-exec`` do (they
differ only in the executor, see :mod:`sio.executors.selection`). The
helpers here are shared with the other judging jobs.

Environ keys :func:`run` reads:

``exe_file`` (required)
    the compiled program (a Filetracker path, or a local one, see
    :func:`sio.workers.ft.download`); with ``exec_info['mode'] ==
    'output-only'`` it is the submitted output itself.
``in_file`` (required)
    the test input; a zip archive holding exactly one file is unpacked and
    that file is used (anything else in a zip is an error).
``exec_info`` (dict, default ``{'mode': 'executable'}``, added when absent)
    how to run ``exe_file``, as the ``compile`` job wrote it:
    ``executable``, ``java``, ... or ``output-only``.
``exec_time_limit`` (ms), ``exec_real_time_limit`` (ms), ``exec_mem_limit`` (KiB), ``exec_output_limit`` (bytes)
    the limits; absent ones get the executor's defaults: for ``exec`` and
    ``cpu-exec`` 30000 ms of CPU time, 65536 KiB and 52428800 bytes of
    output, and a real-time limit of 2 × ``exec_time_limit`` + 1000 ms
    (an explicit ``exec_real_time_limit`` also gets the 1000 ms added);
    ``unsafe-exec`` has no limit that is not given, and its real-time limit
    is 2 × ``exec_time_limit``. ``0`` means no limit.
``extra_execution_files`` (dict, optional)
    file name in the run directory -> file to download there.
``extra_execution_args`` (list of str, optional)
    more arguments for the program; empty strings are skipped.
``fake_time`` (str, default ``off``)
    ``off``, ``zero`` or ``random``: the program's view of time (the
    time-stamp counter and the clock calls) is faked under the supervisor
    (``exec``, ``cpu-exec``), as the latest SIO2 does with sio2jail; see
    :doc:`supervisor` for exactly what. ``unsafe-exec`` ignores it.
``check_output`` (bool, default False)
    check the output when the program ended with ``OK``; see
    :func:`sio.executors.checker.run` for ``hint_file``, ``chk_file``,
    ``untrusted_checker``, ``checker_*`` limits and ``checker_format``.
``out_file`` (optional), ``upload_out`` (bool, default False)
    where to store the program's output; with ``upload_out`` false it is
    kept in the local Filetracker cache only.

Keys written:

``result_code``
    ``OK``, ``RE``, ``TLE``, ``MLE``, ``OLE``, ``RV``, ``SE`` from the run,
    then ``OK``/``WA`` from the check;
``result_string``
    the executor's message (``''`` when it has none) or the checker's
    comment (at most 1024 bytes); valid UTF-8;
``time_used`` (ms), ``mem_used`` (KiB), ``num_syscalls``
    0 when the executor does not measure them;
``result_percentage`` (``[numerator, denominator]``, always present)
    the checker's score in percent; ``[0, 1]`` when nothing was checked;
``out_file``
    replaced by the stored (versioned) name.

Every other key is returned unchanged (clients read ``exec_time_limit``
and ``exec_mem_limit`` back).
"""

from __future__ import annotations

import os
import shutil
import stat
import zipfile
from collections.abc import Mapping
from typing import Any

from sio.workers.errors import MissingEnvironKey, SioWorkersError
from sio.workers.executors import BaseExecutor
from sio.workers.file_runners import get_file_runner
from sio.workers.util import ensure_mode, replace_invalid_UTF, tempcwd

__all__ = [
    "BadInputArchive",
    "run",
    "is_output_only",
    "download",
    "fetch_input",
    "populate_environ",
    "upload_output",
    "OUTPUT_ONLY",
    "program_args",
]

Environ = dict[str, Any]

#: ``exec_info['mode']`` of an output-only submission.
OUTPUT_ONLY = "output-only"

#: The files of a run, in the job directory.
INPUT = "in"
OUTPUT = "out"

# Magic numbers a zip archive starts with (a local file header, or the end
# record of an empty archive): checked together with zipfile.is_zipfile so
# that a text input holding the end-record signature by chance stays text.
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")


class BadInputArchive(SioWorkersError, ValueError):
    """``in_file`` is a zip archive that does not hold exactly one file."""


def download(environ: dict[str, Any], key: str, dest: str, needed_by: str,
             **kwargs: Any) -> str:
    """Fetch ``environ[key]`` to ``dest`` in the job directory and return
    its absolute path (see :func:`sio.workers.ft.download`; ``kwargs`` go
    there).

    :raises MissingEnvironKey: the key is absent, naming ``needed_by``.
    """
    if not environ.get(key):
        raise MissingEnvironKey(key, needed_by)
    from sio.workers import ft  # lazy: importing filetracker is not free

    return ft.download(environ, key, dest, **kwargs)


#: what running a program may add to its mode (see download_program)
_PROGRAM_BITS = stat.S_IRUSR | stat.S_IXUSR | stat.S_IROTH | stat.S_IXOTH


def download_program(environ: dict[str, Any], key: str, dest: str, needed_by: str,
                     **kwargs: Any) -> str:
    """Like :func:`download`, for a program the job runs: a local file is
    hard-linked only when it has every bit running it may add already
    (``u+rx`` here, ``o+rx`` by the supervisor for a program under another
    uid), so that the user's file never changes mode; otherwise it is
    copied. The owner gets read and execute permission, added to the bits
    the file has (a file from the Filetracker cache may be a link shared
    with another job at this moment, whose supervisor may have just given
    it o+rx: those bits stay).
    """
    path = download(environ, key, dest, needed_by, link_local=True,
                    link_mode=_PROGRAM_BITS, **kwargs)
    ensure_mode(path, stat.S_IRUSR | stat.S_IXUSR)
    return path


def fetch_input(environ: dict[str, Any], needed_by: str, dest: str = INPUT) -> str:
    """Fetch ``environ['in_file']`` to ``dest`` (job directory) and unpack it
    when it is a zip archive; returns the path of the input.

    The archive's one file *replaces* ``dest``, so that a checker given
    ``dest`` sees the real input too (the original gave it the archive).

    :raises BadInputArchive: a zip without exactly one file in it.
    """
    path = download(environ, "in_file", dest, needed_by, add_to_cache=True)
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic not in _ZIP_MAGIC or not zipfile.is_zipfile(path):
        return path
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
            if len(members) != 1 or members[0].is_dir():
                names = [m.filename for m in members]
                raise BadInputArchive(
                    f"in_file {environ['in_file']!r} is a zip archive with {names!r} in it; "
                    "it must hold exactly one file (the test input)")
            # Written beside and renamed over the download: the downloaded
            # file may share its inode with the Filetracker cache, so it is
            # never written to.
            unpacked = path + ".unpacked"
            try:
                with archive.open(members[0]) as src, open(unpacked, "wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
                os.replace(unpacked, path)
            finally:
                if os.path.exists(unpacked):
                    os.unlink(unpacked)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, OSError) as e:
        if isinstance(e, BadInputArchive):
            raise
        raise BadInputArchive(f"in_file {environ['in_file']!r} looks like a zip archive "
                              f"but cannot be unpacked: {e}") from e
    return path


def is_output_only(environ: Mapping[str, Any]) -> bool:
    """Whether ``exec_info`` says the submission is its own output."""
    exec_info = environ.get("exec_info")
    return isinstance(exec_info, Mapping) and exec_info.get("mode") == OUTPUT_ONLY


def populate_environ(renv: Mapping[str, Any], environ: Environ) -> None:
    """Copy an executor's verdict into the environ: ``result_code``,
    ``result_string`` (``''`` when absent), ``time_used`` (ms),
    ``mem_used`` (KiB), ``num_syscalls`` (0 when absent), and
    ``result_percentage = [0, 1]`` (a check replaces it)."""
    environ["result_code"] = renv["result_code"]
    environ["result_string"] = renv.get("result_string") or ""
    for key in ("time_used", "mem_used", "num_syscalls"):
        environ[key] = renv.get(key) or 0
    environ["result_percentage"] = [0, 1]


def upload_output(environ: Environ, path: str) -> None:
    """Store ``path`` as ``environ['out_file']`` when that key is given:
    remotely only with ``upload_out``; the key becomes the versioned name."""
    if environ.get("out_file"):
        from sio.workers import ft

        ft.upload(environ, "out_file", path,
                  to_remote_store=bool(environ.get("upload_out", False)))


def program_args(environ: Mapping[str, Any]) -> list[str]:
    args = environ.get("extra_execution_args") or []
    if not isinstance(args, list):
        raise SioWorkersError(f"environ['extra_execution_args'] must be a list of strings, "
                              f"not {args!r}")
    # [""] is what a package writes to say "no arguments".
    return [str(a) for a in args if a != ""]


def run(environ: Environ, executor: BaseExecutor | None,
        use_sandboxes: bool = True) -> Environ:
    """Run ``exe_file`` on ``in_file`` in ``executor``, check the output if
    asked, store it if asked; returns ``environ`` with the results (see the
    module docs for every key).

    :param executor: the executor of the program; unused (may be None) for
        an output-only submission.
    :param use_sandboxes: how the checker runs (see
        :func:`sio.executors.checker.run`): True for the ``exec`` jobs,
        False for ``unsafe-exec``.
    :raises CheckerError: (a :class:`SystemError`) the checker is broken.
    """
    from sio.executors import checker

    output = tempcwd(OUTPUT)
    if is_output_only(environ):
        # The submitted file is the output: nothing runs.
        download(environ, "exe_file", OUTPUT, "an output-only submission")
        populate_environ({"result_code": "OK", "result_string": "ok"}, environ)
    else:
        if executor is None:
            raise SioWorkersError("sio.executors.common.run: no executor given for a "
                                  f"submission of kind {environ.get('exec_info')!r}")
        runner = get_file_runner(executor, environ)
        exe = runner.preferred_filename()
        download_program(environ, "exe_file", exe, "the exec jobs", add_to_cache=True)
        stdin_path = fetch_input(environ, "the exec jobs")
        with runner, open(stdin_path, "rb") as stdin, open(output, "ab") as stdout:
            # Opened for appending: a program cannot seek back and rewrite
            # what it already wrote (the checker reads the file as written).
            renv = runner(exe, program_args(environ), stdin=stdin, stdout=stdout,
                          ignore_errors=True, environ=environ, environ_prefix="exec_")
        populate_environ(renv, environ)

    if environ["result_code"] == "OK" and environ.get("check_output"):
        checker.run(environ, use_sandboxes=use_sandboxes)
    environ["result_string"] = replace_invalid_UTF(environ["result_string"])
    upload_output(environ, output)
    return environ
