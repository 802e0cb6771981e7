"""``sioworkersd``: the daemon's command line.

``sioworkersd [--rpc-port 7889] [--database sioworkersd.sqlite3] [--broker URL] ...``

It serves the XML-RPC API (:mod:`sio.sioworkersd.rpc`) and schedules the jobs
on the ``sio-celery-worker`` processes that consume ``--queue`` on the broker.
SIGTERM or SIGINT stops it gracefully: no new calls, POSTs in flight finish,
the store is closed; everything unfinished continues at the next start.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence
from typing import Any

from sio.sioworkersd import policy, returning
from sio.sioworkersd.daemon import Settings

DEFAULT_DATABASE = "sioworkersd.sqlite3"


def parser() -> argparse.ArgumentParser:
    d = Settings()
    p = argparse.ArgumentParser(
        prog="sioworkersd",
        description="The daemon oioioi talks to (XML-RPC on --rpc-port), running the jobs "
                    "on sio-celery-worker processes through the broker.")
    a = p.add_argument
    a("--rpc-listen", "-r", default="", metavar="ADDR",
      help="address of the XML-RPC server [default: every interface]")
    a("--rpc-port", type=int, default=7889, metavar="PORT", help="[default: %(default)s]")
    a("--database", default=DEFAULT_DATABASE, metavar="PATH_OR_URL",
      help="the store: a SQLite file, or a postgresql:// URL [default: %(default)s]")
    a("--broker", default=None, metavar="URL",
      help="the Celery broker [default: $CELERY_BROKER_URL, else the configuration module's]")
    a("--queue", default="sioworkers", metavar="NAME",
      help="use the workers that consume this Celery queue [default: %(default)s]")
    a("--name", default="sioworkersd", metavar="NAME",
      help="this daemon's name on the broker (its results queue is "
           "sioworkersd.NAME.results); one per daemon [default: %(default)s]")
    a("--max-task-ram", type=float, default=d.max_task_ram_mb, metavar="MIB",
      help="reject a group with a job estimated above this [default: %(default)g]")
    a("--job-timeout", type=float, default=d.job_timeout_s, metavar="S",
      help="a job running longer fails [default: %(default)g]")
    a("--max-job-tries", type=int, default=d.max_job_tries, metavar="N",
      help="run a job again at most N times after its worker vanished [default: %(default)s]")
    a("--worker-timeout", type=float, default=d.worker_timeout_s, metavar="S",
      help="a worker silent for this long is gone [default: %(default)g]")
    a("--poll-interval", type=float, default=d.poll_interval_s, metavar="S",
      help="how often the workers are asked [default: %(default)g]")
    a("--return-retry-delay", type=float, default=d.return_first_delay_s, metavar="S",
      help="wait after the first failed POST; each next wait is 10 times longer "
           "[default: %(default)g]")
    a("--return-max-delay", type=float, default=d.return_longest_delay_s, metavar="S",
      help="the longest wait between POSTs; there is no last try [default: %(default)g]")
    a("--return-timeout", type=float, default=returning.DEFAULT_RETURN_TIMEOUT_S, metavar="S",
      help="time-out of a POST's connection and answer [default: %(default)g]")
    a("--exclusive-job-types", default=",".join(sorted(policy.DEFAULT_EXCLUSIVE_JOB_TYPES)),
      metavar="TYPES", help="comma-separated job types run alone on a worker started with "
                            "--can-run-cpu-exec [default: %(default)s]")
    a("--prefetch", type=int, default=d.prefetch, metavar="N",
      help="shared jobs sent to a worker beyond its concurrency (they wait in its queue, "
           "hiding the time a result takes to reach the daemon) [default: %(default)s]")
    a("--seed", type=int, default=None,
      help="seed of the weighted choice between contests (repeatable order; tests)")
    a("--log-level", "-l", default="INFO", help="[default: %(default)s]")
    # The original's worker port: its workers do not exist here.
    a("--worker-listen", "-w", default=None, help=argparse.SUPPRESS)
    a("--worker-port", default=None, help=argparse.SUPPRESS)
    return p


def settings_from(args: argparse.Namespace) -> Settings:
    return Settings(
        max_task_ram_mb=args.max_task_ram, job_timeout_s=args.job_timeout,
        max_job_tries=args.max_job_tries, worker_timeout_s=args.worker_timeout,
        poll_interval_s=args.poll_interval, return_first_delay_s=args.return_retry_delay,
        return_longest_delay_s=args.return_max_delay, return_timeout_s=args.return_timeout,
        exclusive_job_types=frozenset(t.strip() for t in args.exclusive_job_types.split(",")
                                      if t.strip()),
        seed=args.seed, prefetch=args.prefetch)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``sioworkersd``; returns the exit status."""
    p = parser()
    args = p.parse_args(argv)
    for name, value in (("--max-task-ram", args.max_task_ram), ("--job-timeout", args.job_timeout),
                        ("--worker-timeout", args.worker_timeout),
                        ("--poll-interval", args.poll_interval),
                        ("--return-retry-delay", args.return_retry_delay),
                        ("--return-timeout", args.return_timeout)):
        if value <= 0:
            p.error(f"{name} must be positive, not {value:g}")
    if args.max_job_tries < 0 or args.prefetch < 0:
        p.error("--max-job-tries and --prefetch must be 0 or more")
    logging.basicConfig(level=args.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    log = logging.getLogger("sioworkersd")
    if args.worker_listen is not None or args.worker_port is not None:
        log.warning("--worker-listen/--worker-port are ignored: workers are "
                    "sio-celery-worker processes on the broker")

    from sio.sioworkersd.daemon import Daemon
    from sio.sioworkersd.rpc import RPCServer
    from sio.sioworkersd.store import open_store
    from sio.sioworkersd.transport import CeleryTransport, make_app

    try:
        store = open_store(args.database)
    except Exception as e:
        log.error("cannot open the database %s: %s: %s", args.database, type(e).__name__, e)
        return 1
    transport = CeleryTransport(make_app(args.broker or os.environ.get("CELERY_BROKER_URL")),
                                args.name, args.queue, max_runs=args.max_job_tries + 1)
    daemon = Daemon(store, transport, settings_from(args))
    try:
        server = RPCServer((args.rpc_listen, args.rpc_port), daemon)
    except OSError as e:
        log.error("cannot listen on %s:%s: %s", args.rpc_listen or "*", args.rpc_port, e)
        store.close()
        return 1
    daemon.start()

    def stop(signum: int, frame: Any) -> None:
        log.info("signal %d: stopping", signum)
        # shutdown() waits for serve_forever, which runs in this thread.
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log.info("sioworkersd: XML-RPC on %s:%d, store %s, broker %s, queue %s",
             args.rpc_listen or "*", server.server_address[1], args.database,
             transport.app.connection().as_uri(), args.queue)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
        daemon.stop()
        transport.close()
        log.info("sioworkersd stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
