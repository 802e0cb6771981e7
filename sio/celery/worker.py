"""``sio-celery-worker [celery worker options] [broker-url]``.

Runs a Celery worker of :data:`sio.celery.app.app`, serving the task
``sio.celery.job.sioworkers_job`` on queue ``sioworkers``. Every option of
``celery worker`` passes through (``-c``, ``-Q``, ``-l``, ``--help``, ...).

Environment variables (read when the command runs):

``CELERY_BROKER_URL``
    the broker, unless a positional URL is given (default
    ``amqp://guest:guest@localhost:5672//`` from the configuration).
``CELERY_CONFIG_MODULE``
    the configuration module (default ``sio.celery.default_config``).
``FILETRACKER_URL``
    when unset, it is set to ``http://<broker host>:9999`` (Filetracker's
    default port on the broker's machine, ``127.0.0.1`` for brokers without a
    host, such as ``filesystem://``), as the original documented.

SIGTERM is a warm shutdown: running jobs finish, then the worker exits 0.

For ``sioworkersd`` the worker also takes ``--available-ram-mb`` and
``--can-run-cpu-exec`` and consumes a direct queue of its own
(:mod:`sio.celery.advertise`).
"""

from __future__ import annotations

import os
import sys
import urllib.parse
from collections.abc import Sequence

from sio.workers.errors import UsageError

#: Filetracker's default port (the one ``sio-run-filetracker`` uses).
DEFAULT_FILETRACKER_PORT = 9999

USAGE_PREFIX = "Usage: sio-celery-worker [celery worker options] [broker-url]\n"

HELP = USAGE_PREFIX + """
  Run a Celery worker serving sioworkers jobs (task
  sio.celery.job.sioworkers_job, queue 'sioworkers').

  broker-url   the broker (any scheme://...; e.g. amqp://user:pw@host//,
               redis://host:6379/0, filesystem:///var/spool/sio); it wins over
               CELERY_BROKER_URL and the configuration module
               (CELERY_CONFIG_MODULE, default sio.celery.default_config).
               Default: amqp://guest:guest@localhost:5672//
  FILETRACKER_URL, when unset, becomes http://<broker host>:9999.

  The options of 'celery worker' follow.

"""


def split_argv(args: Sequence[str]) -> tuple[str | None, list[str]]:
    """Take the broker URL out of the command line.

    The broker URL is the one argument containing ``://``: every kombu URL
    has one (``amqp://``, ``redis://``, ``filesystem://``, ``sqla+sqlite:///x``)
    and no value of a worker option does, so ``-c 2 amqp://host`` is split
    right (a positional-argument parser would take the ``2``).
    ``--opt=value`` arguments are never URLs, even when the value has
    ``://`` (e.g. ``--logfile=file:///x``).

    :raises UsageError: for two URLs.
    """
    urls = [a for a in args if "://" in a and not a.startswith("-")]
    if len(urls) > 1:
        raise UsageError("more than one broker URL: " + ", ".join(map(repr, urls))
                         + " (give at most one, as the last argument)")
    rest = [a for a in args if a not in urls]
    return (urls[0] if urls else None), rest


def default_filetracker_url(broker_url: str | None) -> str:
    """``http://<host of the broker URL>:9999``; ``127.0.0.1`` when the URL
    has no host."""
    host = None
    if broker_url:
        try:
            host = urllib.parse.urlsplit(broker_url).hostname
        except ValueError:
            host = None
    host = host or "127.0.0.1"
    if ":" in host:  # an IPv6 address goes in brackets in a URL
        host = f"[{host}]"
    return f"http://{host}:{DEFAULT_FILETRACKER_PORT}"


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``sio-celery-worker``; returns the exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        url, rest = split_argv(args)
    except UsageError as e:
        sys.stderr.write(f"{USAGE_PREFIX}sio-celery-worker: error: {e}\n")
        return 2
    if url:
        os.environ["CELERY_BROKER_URL"] = url

    import click

    from sio.celery import advertise
    from sio.celery.app import app
    import sio.celery.job  # noqa: F401  (registers the task even without 'imports')

    # --available-ram-mb, --can-run-cpu-exec and the direct queue of sioworkersd.
    advertise.install(app)

    if "FILETRACKER_URL" not in os.environ:
        os.environ["FILETRACKER_URL"] = default_filetracker_url(app.conf.broker_url)
    if "--help" in rest:
        sys.stdout.write(HELP)
        sys.stdout.flush()
    try:
        # Celery's own 'celery worker' command, run in-process: every option
        # and --help come from Celery. (worker_main() would drop the status.)
        status = app.start(["worker", *rest])
    except click.ClickException as e:
        e.show()
        return e.exit_code
    except click.exceptions.Abort:
        return 1
    return status or 0


if __name__ == "__main__":
    sys.exit(main())
