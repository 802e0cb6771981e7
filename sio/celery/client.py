"""Sending jobs to Celery workers from the client side: :func:`run_many`.

Like sheepdog's ``map``: a list of environs in, the list of result environs
out, in the same order, with a per-job failure instead of one exception for
the whole batch.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from celery import Celery

Environ = dict[str, Any]

#: ``on_progress(done, total, failed)``: jobs finished so far (failed ones
#: included), jobs sent, and how many of the finished ones failed.
ProgressCallback = Callable[[int, int, int], None]


def _failed(environ: Environ, exception: str, traceback: str) -> Environ:
    # A deep copy: the caller's environ stays as it was sent.
    result = copy.deepcopy(environ)
    result.update(result="FAILURE", exception=exception, traceback=traceback)
    return result


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def run_many(environs: Iterable[Environ], *, timeout: float | None = None,
             on_progress: ProgressCallback | None = None, app: Celery | None = None,
             queue: str | None = None,
             options: Mapping[str, Any] | None = None) -> list[Environ]:
    """Run every environ as a ``sio.celery.job.sioworkers_job`` on the
    workers and return the result environs in the order given.

    :param environs: the jobs (JSON-able dicts, see :mod:`sio.workers.runner`).
    :param timeout: seconds to wait for all the results, from when the last
        job was sent; ``None`` waits as long as it takes. Jobs without a
        result by then come back failed (they are not revoked and may still
        run).
    :param on_progress: called as ``on_progress(done, total, failed)`` once
        when all jobs are sent (``done = 0``) and after every result.
    :param app: the Celery app to send through (default
        :data:`sio.celery.app.app`); its result backend must be reachable
        from this process (the default ``rpc://`` is).
    :param queue: the queue to send to (default: the app's route for the
        task, ``sioworkers`` in the default configuration).
    :param options: more keyword arguments of
        :meth:`celery.Celery.send_task` (e.g. ``time_limit``, ``priority``).

    A job comes back as the environ the worker returned (its ``result`` is
    ``SUCCESS``, or ``FAILURE`` when the job reported a
    :class:`~sio.workers.errors.Failure`). A job whose task failed (it
    raised) or that did not finish within ``timeout`` comes back as a copy of
    the environ sent, with ``result = 'FAILURE'``, ``exception`` (``"Type:
    message"``) and ``traceback`` (the worker's, when there is one).
    Problems of the client itself (no broker) raise.
    """
    from celery.exceptions import TimeoutError as CeleryTimeout

    from sio.celery.job import TASK_NAME

    if app is None:
        from sio.celery.app import app as default_app

        app = default_app
    sent = list(environs)
    kwargs = dict(options or {})
    if queue is not None:
        kwargs["queue"] = queue
    results = [app.send_task(TASK_NAME, args=[environ], **kwargs) for environ in sent]
    index = {r.id: i for i, r in enumerate(results)}
    out: list[Environ | None] = [None] * len(sent)
    failed = 0

    def collect(task_id: str, value: Any) -> None:
        nonlocal failed
        i = index[task_id]
        if isinstance(value, BaseException):
            failed += 1
            out[i] = _failed(sent[i], _describe(value), results[i].traceback or "")
        elif isinstance(value, dict):
            out[i] = value
        else:
            failed += 1
            out[i] = _failed(sent[i], f"the task returned {type(value).__name__}, "
                             "not an environ dict", "")
        if on_progress is not None:
            on_progress(len(sent) - out.count(None), len(sent), failed)

    if on_progress is not None:
        on_progress(0, len(sent), 0)
    if sent:
        group = app.ResultSet(results)
        start = time.monotonic()
        try:
            if group.supports_native_join:
                # Results in the order they arrive, so progress is live.
                group.join_native(timeout=timeout, propagate=False, callback=collect)
            else:
                group.join(timeout=timeout, propagate=False, callback=collect)
        except CeleryTimeout:
            waited = time.monotonic() - start
            for i, environ in enumerate(sent):
                if out[i] is None:
                    out[i] = _failed(environ, f"TimeoutError: no result within {timeout} s "
                                     f"(waited {waited:.1f} s; task id {results[i].id})", "")
    return [environ for environ in out if environ is not None]
