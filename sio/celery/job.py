"""The Celery task of sioworkers: ``sio.celery.job.sioworkers_job``.

It is a :func:`celery.shared_task`, so it registers itself with every Celery
app in the process: the one of :mod:`sio.celery.app` (``sio-celery-worker``)
and a host application's own app alike. A host application only needs to
``import sio.celery.job`` (or list it in its ``imports`` setting) and can
then send jobs by name::

    app.send_task("sio.celery.job.sioworkers_job", args=[environ], queue="sioworkers")
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import tempfile
from typing import Any

from celery import current_task, shared_task
from celery.signals import worker_process_shutdown

from sio.workers import runner, util
from sio.workers.errors import SioWorkersError

log = logging.getLogger(__name__)

#: The task name the original used; clients send jobs by this name.
TASK_NAME = "sio.celery.job.sioworkers_job"


class PoisonJobError(SioWorkersError, RuntimeError):
    """A job's runs ended the pool process running them (a signal, an exit)
    ``max_runs`` times; the job fails instead of being run again."""


def _starts_file(task_id: str) -> str:
    # The temporary directory of the worker's machine: it outlives the pool
    # process (which is what a poison job kills), and a counter left behind
    # by a worker that died as a whole is a few bytes.
    directory = os.path.join(tempfile.gettempdir(), f"sio-celery-starts-{os.getuid()}")
    os.makedirs(directory, mode=0o700, exist_ok=True)
    return os.path.join(directory, hashlib.sha1(task_id.encode()).hexdigest())


def _count_start(task_id: str, max_runs: int) -> str | None:
    """Count one more start of ``task_id``, a message delivered again (the
    first delivery's run is counted here too: it ended its process, or the
    message would not be back). Return the counter's path, to be removed
    when the run ends: a counter stays only when runs end their process.

    :raises PoisonJobError: ``max_runs`` runs already happened."""
    try:
        path = _starts_file(task_id)
        try:
            with open(path) as f:
                starts = int(f.read().strip() or 1)
        except FileNotFoundError:
            starts = 1
        if starts >= max_runs:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)  # a later reuse of the id starts again
            raise PoisonJobError(
                f"the job ended the worker process running it {starts} times on "
                f"{os.uname().nodename} (killed by a signal, or it exited); not run again")
        # Written whole or not at all: the process may die at any moment.
        with open(path + ".new", "w") as f:
            f.write(str(starts + 1))
        os.replace(path + ".new", path)
        return path
    except (OSError, ValueError) as e:
        # A counter that cannot be kept must not fail the job.
        log.warning("cannot count the starts of %s: %s", task_id, e)
        return None


def _redelivery() -> str | None:
    """The Celery id of the task being run when its message was delivered
    again (RabbitMQ's ``redelivered``), else None."""
    request = current_task.request if current_task else None
    if request is None or not request.id:
        return None
    return request.id if (request.delivery_info or {}).get("redelivered") else None


@shared_task(name=TASK_NAME, serializer="json", acks_late=True, reject_on_worker_lost=True)
def sioworkers_job(environ: dict[str, Any], max_runs: int | None = None) -> dict[str, Any]:
    """Run one job on the worker: :func:`sio.workers.runner.run` of
    ``environ``, whose result environ is the task's result.

    A job that reports a :class:`~sio.workers.errors.Failure` returns an
    environ with ``result = 'FAILURE'`` (task state SUCCESS); any other
    exception propagates, and the client sees task state FAILURE with the
    exception and its traceback. The task is acknowledged only when it has
    finished, so a worker that dies mid-job does not lose it.

    When only the *pool process* running the job dies (the job kills it,
    or the kernel's OOM killer does), Celery gives the message back to the
    same worker, which would run it again for ever. With ``max_runs`` (what
    ``sioworkersd`` sends: ``--max-job-tries`` + 1) the runs of each task id
    delivered again (``redelivered``) are counted in a file of the worker's
    temporary directory, and a delivery after ``max_runs`` runs that each
    ended their process fails with :class:`PoisonJobError` instead of
    running. Without it (the
    default, :func:`sio.celery.client.run_many`), nothing is counted.
    """
    counter = None
    if max_runs is not None:
        # Only a message given back is counted: a first delivery costs nothing.
        task_id = _redelivery()
        if task_id is not None:
            counter = _count_start(task_id, max_runs)
    try:
        return runner.run(environ)
    finally:
        if counter is not None:
            try:
                os.unlink(counter)
            except OSError:
                pass


@worker_process_shutdown.connect(weak=False)
def _remove_idle_job_directories(**_: Any) -> None:
    # A pool process ends with os._exit, which skips atexit: the job
    # directories it kept for reuse would stay in the temporary directory.
    util.remove_idle_directories()
