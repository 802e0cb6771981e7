"""The Celery task of sioworkers: ``sio.celery.job.sioworkers_job``.

It is a :func:`celery.shared_task`, so it registers itself with every Celery
app in the process: the one of :mod:`sio.celery.app` (``sio-celery-worker``)
and a host application's own app alike. A host application only needs to
``import sio.celery.job`` (or list it in its ``imports`` setting) and can
then send jobs by name::

    app.send_task("sio.celery.job.sioworkers_job", args=[environ], queue="sioworkers")
"""

from __future__ import annotations

from typing import Any

from celery import shared_task
from celery.signals import worker_process_shutdown

from sio.workers import runner, util

#: The task name the original used; clients send jobs by this name.
TASK_NAME = "sio.celery.job.sioworkers_job"


@shared_task(name=TASK_NAME, serializer="json", acks_late=True, reject_on_worker_lost=True)
def sioworkers_job(environ: dict[str, Any]) -> dict[str, Any]:
    """Run one job on the worker: :func:`sio.workers.runner.run` of
    ``environ``, whose result environ is the task's result.

    A job that reports a :class:`~sio.workers.errors.Failure` returns an
    environ with ``result = 'FAILURE'`` (task state SUCCESS); any other
    exception propagates, and the client sees task state FAILURE with the
    exception and its traceback. The task is acknowledged only when it has
    finished, so a worker that dies mid-job does not lose it.
    """
    return runner.run(environ)


@worker_process_shutdown.connect(weak=False)
def _remove_idle_job_directories(**_: Any) -> None:
    # A pool process ends with os._exit, which skips atexit: the job
    # directories it kept for reuse would stay in the temporary directory.
    util.remove_idle_directories()
