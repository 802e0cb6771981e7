"""Run one job: :func:`run` in-process, :func:`main` as ``sio-batch``.

A job is a callable registered under its ``job_type`` in the entry-point
group ``sio.jobs``; it takes the environ and returns it (or a new dict)
with its results.

Environ keys read by :func:`run`:

``job_type`` (str, required)
    name of the job in group ``sio.jobs``.
``filetracker_url`` (str, optional)
    Filetracker server for this job; a client for it is made once per URL
    and used by :mod:`sio.workers.ft` in this job's context.
``prefilters``, ``postfilters`` (list of str, optional)
    names in group ``sio.workers.filters``; each is called with the environ
    and returns the environ to go on with, before and after the job.

Keys written: ``worker`` (host name), ``result`` (``'SUCCESS'`` or
``'FAILURE'``), and on failure ``exception`` (message) and ``traceback``.
Every other key is left as the job leaves it.
"""

from __future__ import annotations

import logging
import os
import sys
TYPE_CHECKING = False  # as typing.TYPE_CHECKING, without importing typing (~2 ms)

from sio.workers.errors import EntryPointNotFound, Failure, MissingEnvironKey, UsageError
from sio.workers._cli import result_only_stdout
from sio.workers.util import TemporaryCwd, first_entry_point, json_dumps

logger = logging.getLogger(__name__)

if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any

    #: The environ: a JSON-able dict (see the module docstring for its keys).
    Environ = dict[str, Any]

JOBS_GROUP = "sio.jobs"
FILTERS_GROUP = "sio.workers.filters"

BEGIN_MARKER = "--- BEGIN ENVIRON ---"
END_MARKER = "--- END ENVIRON ---"


def get_job(job_type: str) -> Any:
    """The callable registered as ``job_type`` in group ``sio.jobs``.

    :raises EntryPointNotFound: naming the job types that exist.
    """
    return first_entry_point(JOBS_GROUP, job_type)


def _run_filters(key: str, environ: Environ) -> Environ:
    for name in environ.get(key, ()):
        environ = _checked(first_entry_point(FILTERS_GROUP, name)(environ), f"filter {name!r}")
    return environ


def _checked(environ: Any, what: str) -> Environ:
    if not isinstance(environ, dict):
        raise TypeError(f"{what} returned {type(environ).__name__}, not the environ dict")
    return environ


def _set_failure(environ: Environ, exc: BaseException) -> None:
    import traceback

    environ["result"] = "FAILURE"
    environ["exception"] = str(exc)
    environ["traceback"] = "".join(traceback.format_exception(exc))


def run(environ: Environ) -> Environ:
    """Run the job described by ``environ`` and return the resulting environ.

    The whole job runs in a fresh temporary directory (see
    :class:`~sio.workers.util.TemporaryCwd`), removed afterwards. The steps:
    Filetracker client for ``filetracker_url``, prefilters, ``worker``, the
    job, ``result = 'SUCCESS'``, postfilters. A :class:`~sio.workers.Failure`
    raised by any of them makes ``result = 'FAILURE'`` with ``exception`` and
    ``traceback``, and postfilters still run (a second ``Failure`` there is
    logged and ignored). Any other exception propagates.
    """
    with TemporaryCwd():
        try:
            url = environ.get("filetracker_url")
            if url:
                from sio.workers import ft

                ft.init_instance(url)
            environ = _run_filters("prefilters", environ)
            environ["worker"] = os.uname().nodename
            try:
                job_type = environ["job_type"]
            except KeyError:
                raise MissingEnvironKey("job_type", "sio.workers.runner") from None
            environ = _checked(get_job(job_type)(environ), f"job {job_type!r}")
            environ["result"] = "SUCCESS"
            environ = _run_filters("postfilters", environ)
        except Failure as e:
            logger.info("Job failed: %s", e)
            _set_failure(environ, e)
            try:
                environ = _run_filters("postfilters", environ)
            except Failure as e2:
                logger.error("A postfilter failed after a job failure: %s", e2)
    return environ


# --------------------------------------------------------------------------
# sio-batch
# --------------------------------------------------------------------------

USAGE = """\
usage: sio-batch [--debug] [JOB_TYPE]

Run one sioworkers job and print the resulting environ.

The environ (a JSON object) is read from the environment variable 'environ',
or from standard input when that variable is not set. A JSON string that
itself holds JSON is decoded a second time. JOB_TYPE, if given, overrides
environ['job_type'].

The environment variables 'prefilters' and 'postfilters' (whitespace-separated
names in entry-point group sio.workers.filters) are appended to the environ's
lists of the same names.

The result is printed to standard output between the lines
  --- BEGIN ENVIRON ---
  --- END ENVIRON ---
as one line of JSON. Exit status: 0 when the job finished (whatever its
verdict), 1 when it raised an exception (the environ is still printed, with
result FAILURE, exception and traceback), 2 on a usage error.

options:
  -h, --help  show this help and exit
  --debug     log at DEBUG level and let an unexpected exception end the
              program with its full traceback
"""


def _parse_environ(text: str, source: str) -> Environ:
    import json

    if not text.strip():
        raise UsageError(f"the environ from {source} is empty: give a JSON object, "
                         "e.g. environ='{\"job_type\": \"ping\", \"ping\": \"x\"}'")
    try:
        value = json.loads(text)
        if isinstance(value, str):
            # Some CI systems (Hudson) quote the JSON once more.
            value = json.loads(value)
    except json.JSONDecodeError as e:
        raise UsageError(f"the environ from {source} is not valid JSON ({e}): "
                         "give a JSON object such as {\"job_type\": \"ping\"}") from None
    if not isinstance(value, dict):
        raise UsageError(f"the environ from {source} is a JSON {type(value).__name__}, "
                         "not an object: give a JSON object such as {\"job_type\": \"ping\"}")
    return value


def _read_environ() -> Environ:
    text = os.environ.get("environ")
    if text is not None:
        return _parse_environ(text, "the environment variable 'environ'")
    if sys.stdin is None or sys.stdin.isatty():
        raise UsageError("no environ given: set the environment variable 'environ' to a "
                         "JSON object or pipe one to standard input (see sio-batch --help)")
    return _parse_environ(sys.stdin.read(), "standard input")


def _check_names(environ: Environ) -> None:
    """Resolve the job and filters before running, so that a typo is a
    usage error and not a failed job."""
    if "job_type" not in environ:
        raise UsageError("the environ has no 'job_type': add one or give it as the "
                         "argument, e.g. sio-batch ping")
    get_job(environ["job_type"])
    for key in ("prefilters", "postfilters"):
        names = environ.get(key, [])
        if not isinstance(names, list):
            raise UsageError(f"environ[{key!r}] must be a list of filter names")
        for name in names:
            first_entry_point(FILTERS_GROUP, name)


def _print_environ(environ: Environ) -> None:
    sys.stdout.write(f"{BEGIN_MARKER}\n{json_dumps(environ)}\n{END_MARKER}\n")
    sys.stdout.flush()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``sio-batch``; returns the exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    if "-h" in args or "--help" in args:
        sys.stdout.write(USAGE)
        return 0
    debug = "--debug" in args
    args = [a for a in args if a != "--debug"]
    try:
        options = [a for a in args if a.startswith("-")]
        if options:
            raise UsageError(f"unknown option {options[0]!r} (see sio-batch --help)")
        if len(args) > 1:
            raise UsageError("unexpected arguments " + ", ".join(map(repr, args[1:]))
                             + ": give at most one, the job type")
        environ = _read_environ()
        if args:
            environ["job_type"] = args[0]
        for key in ("prefilters", "postfilters"):
            extra = os.environ.get(key, "").split()
            if extra:
                environ[key] = list(environ.get(key, [])) + extra
        _check_names(environ)
    except (UsageError, EntryPointNotFound) as e:
        sys.stderr.write(f"sio-batch: error: {e}\n")
        return 2

    logging.basicConfig(
        format="%(asctime)-15s %(name)s %(levelname)s: %(message)s",
        level=logging.DEBUG if (debug or environ.get("debug")) else logging.INFO)
    logger.info("starting job %s", environ.get("job_type"))
    status = 0
    try:
        # Standard output carries only the result: anything a job or a
        # library prints on the way (the filetracker client announces the
        # protocol it settled on) goes to standard error.
        with result_only_stdout():
            environ = run(environ)
    except Exception as e:
        if debug:
            raise
        logger.error("job raised %s: %s", type(e).__name__, e)
        _set_failure(environ, e)
        status = 1
    logger.info("finished job %s: %s", environ.get("job_type"), environ.get("result"))
    _print_environ(environ)
    return status


if __name__ == "__main__":
    sys.exit(main())
