"""What a ``sio-celery-worker`` tells ``sioworkersd`` about itself, and the
queue on which the daemon sends it jobs.

:func:`install` adds to the worker's command line

``--available-ram-mb MIB``
    the RAM the daemon may plan jobs into (default: the machine's total
    RAM minus 128 MiB, as the original's worker image computes it);
``--can-run-cpu-exec``
    the worker may run exclusive (CPU-timed) jobs, each alone;

and, in the worker, a *direct queue* ``sioworkersd.<node name>`` bound to
the direct exchange :data:`DIRECT_EXCHANGE`: the daemon decides where a job
runs and sends it there. The queue is auto-deleted when the worker goes, so
jobs of a dead worker do not wait for a worker of the same name: the daemon
runs them elsewhere.

The daemon asks every worker with the remote-control command
:data:`INFO_COMMAND` (``celery inspect sioworkers_info`` works too): the
reply has ``concurrency``, ``available_ram_mb``, ``can_run_cpu_exec``,
``queues`` (the queues it consumes), ``direct_queue`` and ``active`` (ids of
the tasks it holds).
"""

from __future__ import annotations

import os
from typing import Any

#: The exchange of the workers' direct queues.
DIRECT_EXCHANGE = "sioworkersd"
#: The remote-control command that answers :func:`worker_info`.
INFO_COMMAND = "sioworkers_info"
#: Subtracted from the machine's RAM for the default ``--available-ram-mb``
#: (the worker itself and the system).
RESERVED_RAM_MB = 128


def direct_queue_name(nodename: str) -> str:
    return f"sioworkersd.{nodename}"


def default_available_ram_mb() -> int:
    """The machine's total RAM minus :data:`RESERVED_RAM_MB` (MiB)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    total = int(line.split()[1]) // 1024
                    break
            else:
                raise OSError("no MemTotal")
    except (OSError, ValueError):
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20
    return max(1, total - RESERVED_RAM_MB)


def direct_queue(nodename: str) -> Any:
    from kombu import Exchange, Queue

    # Not durable and auto-deleted: see the module's docstring.
    return Queue(direct_queue_name(nodename), Exchange(DIRECT_EXCHANGE, "direct"),
                 routing_key=direct_queue_name(nodename), durable=False, auto_delete=True)


def install(app: Any) -> None:
    """Add the options, the direct queue and :data:`INFO_COMMAND` to the
    workers of ``app`` (call before the worker starts; once is enough)."""
    if getattr(app, "_sio_advertise_installed", False):
        return
    app._sio_advertise_installed = True
    import click
    from celery import bootsteps
    from celery.worker.control import inspect_command

    app.user_options["worker"].add(click.Option(
        ["--available-ram-mb"], type=click.IntRange(min=1), default=None,
        help="RAM (MiB) sioworkersd may plan jobs into [default: total RAM - 128 MiB]"))
    app.user_options["worker"].add(click.Option(
        ["--can-run-cpu-exec"], is_flag=True, default=False,
        help="let sioworkersd send exclusive (CPU-timed) jobs, each run alone"))

    class Advertise(bootsteps.Step):
        """Keeps the options on the worker and adds its direct queue."""

        def __init__(self, worker: Any, available_ram_mb: int | None = None,
                     can_run_cpu_exec: bool = False, **options: Any) -> None:
            worker.sio_available_ram_mb = available_ram_mb or default_available_ram_mb()
            worker.sio_can_run_cpu_exec = bool(can_run_cpu_exec)
            worker.app.amqp.queues.select_add(direct_queue(worker.hostname))
            super().__init__(worker, **options)

    app.steps["worker"].add(Advertise)

    @inspect_command(name=INFO_COMMAND)
    def sioworkers_info(state: Any) -> dict[str, Any]:
        from celery.worker import state as worker_state

        worker = state.consumer.controller
        return {
            "concurrency": worker.concurrency,
            "available_ram_mb": getattr(worker, "sio_available_ram_mb",
                                        default_available_ram_mb()),
            "can_run_cpu_exec": getattr(worker, "sio_can_run_cpu_exec", False),
            "queues": sorted(state.consumer.app.amqp.queues.consume_from),
            "direct_queue": direct_queue_name(worker.hostname),
            # Every task the worker holds: waiting for a process or running.
            "active": sorted(worker_state.requests),
        }
