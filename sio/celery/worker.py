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

Exit status: 0 after a shutdown asked for (SIGTERM, SIGINT, a remote
shutdown); 1 when the worker cannot start or stops on an unrecoverable error
(a refused login or virtual host, an unknown transport, a broker that goes
away for good...): then the last line on standard error says why, in one
line, after Celery's log; 2 for a usage error. A service manager sees a
failed start as a failure, as with Celery's own ``celery worker``.

For ``sioworkersd`` the worker also takes ``--available-ram-mb`` and
``--can-run-cpu-exec`` and consumes a direct queue of its own
(:mod:`sio.celery.advertise`).
"""

from __future__ import annotations

import logging
import os
import sys
import urllib.parse
from collections.abc import Sequence
from typing import Any

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


class _FatalErrors(logging.Handler):
    """Remembers the exception of Celery's "Unrecoverable error" log record:
    the worker logs it and stops, and only the exit status is left."""

    def __init__(self) -> None:
        super().__init__(logging.CRITICAL)
        self.error: BaseException | None = None

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info and record.exc_info[1] is not None:
            self.error = record.exc_info[1]


def _one_line(e: BaseException) -> str:
    text = str(e.args[0] if isinstance(e, KeyError) and e.args else e).strip()
    first = text.splitlines()[0] if text else ""
    return f"{type(e).__name__}: {first}" if first else type(e).__name__


def check_transport(broker_url: str | None) -> None:
    """Fail early, in one line, for a broker URL whose transport kombu does
    not know (Celery would end in a traceback).

    :raises UsageError: naming the known transports.
    """
    from kombu.transport import TRANSPORT_ALIASES, resolve_transport

    scheme = (broker_url or "amqp://").split("://", 1)[0]
    # "sqla+sqlite://": the transport is before the '+'.
    transport = scheme.split("+", 1)[0]
    try:
        resolve_transport(transport)
    except (KeyError, ImportError) as e:
        known = ", ".join(sorted(TRANSPORT_ALIASES))
        raise UsageError(f"broker URL {broker_url!r}: unknown transport {transport!r} "
                         f"({_one_line(e)}); known: {known}") from None


class BrokerRefused(Exception):
    """The broker answers and refuses this worker (login, virtual host):
    retrying cannot help."""


def _refusals() -> tuple[type[BaseException], ...]:
    """Errors of a broker that answered and said no, for good."""
    refusals: list[type[BaseException]] = []
    try:
        from amqp.exceptions import AccessRefused, InvalidPath, NotAllowed
    except ImportError:
        pass
    else:
        # 403 bad login or permissions, 402 bad virtual host path, 530 no
        # such virtual host. (Celery retries a 530 for ever.)
        refusals += [AccessRefused, InvalidPath, NotAllowed]
    try:
        from redis.exceptions import AuthenticationError
    except ImportError:
        pass
    else:
        refusals.append(AuthenticationError)
    return tuple(refusals)


def check_broker(app: Any, timeout_s: float = 10.0) -> None:
    """Connect to the broker once before the worker starts.

    A broker that is down or unreachable is left to Celery, which retries
    (``broker_connection_retry_on_startup``, ``broker_connection_max_retries``):
    it may be starting too. Only a refusal ends the start at once.

    :raises BrokerRefused: the broker refused the login or virtual host.
    """
    refusals = _refusals()
    connection = app.connection_for_read(connect_timeout=timeout_s)
    try:
        connection.connect()
    except refusals as e:
        raise BrokerRefused(f"{connection.as_uri()} refused the connection: "
                            f"{_one_line(e)}") from e
    except Exception:
        pass
    finally:
        connection.release()


def _tell(message: str) -> None:
    """One line on the real standard error: Celery's worker redirects
    ``sys.stderr`` into its log, where the line would be a warning."""
    stream = sys.__stderr__ or sys.stderr
    stream.write(f"sio-celery-worker: error: {message}\n")
    stream.flush()


def _run_worker(app: object, args: list[str]) -> int:
    """``celery worker ARGS`` in-process; its exit status. (``app.start()``
    drops the status and ``worker_main()`` exits: Celery's command is
    called the way ``app.start()`` calls it, keeping what it returns.)"""
    from celery.bin.celery import celery

    celery.params[0].default = app  # the --app option, as app.start() sets it
    try:
        status = celery.main(args=args, standalone_mode=False)
    finally:
        celery.params[0].default = None
    return status if isinstance(status, int) else 0


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
    else:
        try:
            check_transport(app.conf.broker_url)
            check_broker(app)
        except (UsageError, BrokerRefused) as e:
            sys.stderr.write(f"sio-celery-worker: error: {e}\n")
            return 1
    import celery.worker.worker

    fatal = _FatalErrors()
    # The module's own logger object: Celery re-parents its loggers, so
    # logging.getLogger() of the same name may be another object.
    worker_logger = celery.worker.worker.logger
    worker_logger.addHandler(fatal)
    try:
        # Celery's own 'celery worker' command, run in-process: every option
        # and --help come from Celery.
        status = _run_worker(app, ["worker", *rest])
    except click.ClickException as e:
        e.show()
        return e.exit_code
    except click.exceptions.Abort:
        return 1
    except Exception as e:
        # Anything Celery lets through while starting: the log has the
        # details, the user gets one line and a failure status.
        logging.getLogger(__name__).debug("the worker failed", exc_info=True)
        _tell(f"the worker could not start: {_one_line(e)}")
        return 1
    finally:
        worker_logger.removeHandler(fatal)
    if status == 0 and fatal.error is not None:
        status = 1  # (Celery versions that exit 0 after an unrecoverable error)
    if status != 0:
        reason = (_one_line(fatal.error) if fatal.error is not None
                  else f"Celery's worker exited with status {status}")
        _tell(f"the worker stopped: {reason}")
    return status


if __name__ == "__main__":
    sys.exit(main())
