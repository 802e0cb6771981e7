"""The daemon's side of Celery: :class:`CeleryTransport`.

* **Sending**: a job goes as the task ``sio.celery.job.sioworkers_job`` to the
  direct queue of the worker the scheduler chose
  (:func:`sio.celery.advertise.direct_queue`), with ``reply_to`` = the
  daemon's results queue.
* **Results**: the workers' ``rpc://`` result backend (the default
  configuration) publishes each task's state to ``reply_to``. The results
  queue is durable and named after the daemon (``sioworkersd.<name>.results``),
  so results that arrive while the daemon is down wait for it; a result is
  acknowledged only after the daemon has stored it.
* **Workers**: the remote-control command
  :data:`sio.celery.advertise.INFO_COMMAND`, broadcast every poll: the
  workers that answer and consume the daemon's queue are the live ones.

The Celery task id of a job is ``<task_id>#<attempt>``: a job run again after
its worker vanished has the same ``task_id`` and a new Celery id.

A job that kills only the pool process running it is given back to the same
worker by Celery itself (``acks_late``, ``reject_on_worker_lost``), unseen by
the daemon: each job is sent with ``max_runs``, and the worker fails it with
:class:`sio.celery.job.PoisonJobError` after that many such runs.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable
from typing import Any

from sio.celery.advertise import DIRECT_EXCHANGE, INFO_COMMAND, direct_queue
from sio.celery.job import TASK_NAME

log = logging.getLogger(__name__)

#: ``on_result(celery_id, state, result, traceback)``
ResultCallback = Callable[[str, str, Any, str | None], None]


def celery_id(task_id: str, attempt: int) -> str:
    return f"{task_id}#{attempt}"


def split_celery_id(cid: str) -> tuple[str, int]:
    task_id, _, attempt = cid.rpartition("#")
    try:
        return task_id, int(attempt)
    except ValueError:
        return cid, 0


def make_app(broker_url: str | None = None) -> Any:
    """A Celery app for the daemon: the workers' configuration
    (``CELERY_CONFIG_MODULE`` or the default one), ``broker_url`` when
    given, and no result backend of its own (results come to the results
    queue)."""
    from sio.celery.app import SioCelery

    app = SioCelery("sioworkersd", set_as_current=False)
    app.conf.result_backend = "disabled"
    if broker_url:
        app.conf.broker_url = broker_url
    return app


class CeleryTransport:
    def __init__(self, app: Any, name: str, queue: str, max_runs: int | None = None) -> None:
        """``name``: the daemon's name (its results queue); ``queue``: the
        Celery queue a worker must consume to be used (``sioworkers``);
        ``max_runs``: runs of a job on one worker that may end its pool
        process (``--max-job-tries`` + 1; None: no limit)."""
        from kombu import Exchange, Queue

        self.app = app
        self.queue = queue
        self.max_runs = max_runs
        self.results_queue = Queue(f"sioworkersd.{name}.results", routing_key=
                                   f"sioworkersd.{name}.results", durable=True,
                                   auto_delete=False)
        self._exchange = Exchange(DIRECT_EXCHANGE, "direct")

    def send(self, env: dict[str, Any], cid: str, worker: str) -> None:
        """Send one job to ``worker``'s direct queue (raises on broker
        errors). A worker that is gone has no queue: the message is dropped
        by the broker and the job comes back when the worker is declared
        gone."""
        kwargs = {} if self.max_runs is None else {"max_runs": self.max_runs}
        self.app.send_task(TASK_NAME, args=[env], kwargs=kwargs, task_id=cid,
                           queue=direct_queue(worker),
                           reply_to=self.results_queue.name, declare=[self._exchange])

    def revoke(self, cid: str) -> None:
        """Stop a job (its time-out): the worker kills the process running it."""
        try:
            self.app.control.revoke(cid, terminate=True, signal="SIGKILL")
        except Exception as e:  # the job has already failed for the daemon
            log.warning("could not revoke %s: %s", cid, e)

    def poll_workers(self, timeout: float) -> dict[str, dict[str, Any]]:
        """The live workers that consume :attr:`queue`: node name -> info."""
        replies = self.app.control.broadcast(INFO_COMMAND, reply=True, timeout=timeout)
        workers = {}
        for reply in replies or ():
            for node, info in reply.items():
                # Other workers on the broker answer with an error, or serve
                # other queues.
                if isinstance(info, dict) and self.queue in info.get("queues", ()):
                    workers[node] = info
        return workers

    def consume_results(self, on_result: ResultCallback, stop: threading.Event) -> None:
        """Deliver results until ``stop`` is set; reconnects after broker
        errors. A result is acknowledged after ``on_result`` returns."""
        from kombu import Connection

        def handle(body: Any, message: Any) -> None:
            cid = message.properties.get("correlation_id") or body.get("task_id")
            state = body.get("status")
            if state in ("SUCCESS", "FAILURE", "REVOKED"):
                on_result(cid, state, body.get("result"), body.get("traceback"))
            message.ack()

        while not stop.is_set():
            try:
                with Connection(self.app.conf.broker_url, connect_timeout=5) as conn:
                    with conn.Consumer(self.results_queue, callbacks=[handle],
                                       accept=["json"], prefetch_count=200):
                        while not stop.is_set():
                            try:
                                conn.drain_events(timeout=0.5)
                            except socket.timeout:
                                pass
            except Exception as e:
                if stop.is_set():
                    return
                log.warning("results queue: %s: %s; reconnecting", type(e).__name__, e)
                stop.wait(1.0)

    def delete_results_queue(self) -> None:
        """Remove the results queue from the broker (tests, a retired daemon)."""
        from kombu import Connection

        with Connection(self.app.conf.broker_url, connect_timeout=5) as conn:
            conn.default_channel.queue_delete(self.results_queue.name)

    def close(self) -> None:
        self.app.close()

