"""Default Celery configuration of sioworkers (Celery 5 lowercase settings).

Loaded by :mod:`sio.celery.app` when ``CELERY_CONFIG_MODULE`` is not set.
A configuration module of your own can start from it::

    # celeryconfig.py  (new style)
    from sio.celery.default_config import *
    broker_url = "amqp://user:password@broker.example.org:5672//"

and old-style files written for sioworkers 1.x keep working::

    # celeryconfig.py  (old style)
    from sio.celery.default_config import *
    BROKER_URL = "amqp://user:password@broker.example.org:5672//"

(:class:`sio.celery.app.SioCelery` maps the legacy uppercase names to these
before Celery sees them; see :data:`sio.celery.app.LEGACY_KEYS`).

The module also defines the uppercase names of the original (1.x) with the
original's values (``CELERY_QUEUES``, ``CELERY_DEFAULT_QUEUE``,
``CELERY_RESULT_BACKEND``, ``CELERY_ACKS_LATE``, ``CELERY_SEND_EVENTS``,
``CELERY_IMPORTS``, ``CELERY_ROUTES``), so old files that star-import them
and extend them (``CELERY_IMPORTS = CELERY_IMPORTS + ['myjobs']``,
``CELERY_ROUTES.update(...)``) keep working. An uppercase name still at
its original value does not override the lowercase setting of the same
meaning, so a new-style file that changes ``task_acks_late`` after the star
import gets what it set (see :func:`sio.celery.app.translate_settings`).

The reliability settings make sure that a job is never lost when a worker
dies: the message is acknowledged only after the job has finished
(``task_acks_late``), a job whose pool process died is requeued
(``task_reject_on_worker_lost``), and a worker reserves one message per free
process at a time (``worker_prefetch_multiplier = 1``), so a dead worker takes
no queued jobs with it. Which brokers honour this is in ``docs/celery.rst``.
"""

from __future__ import annotations

__all__ = [
    "broker_url",
    "broker_connection_retry_on_startup",
    "task_queues",
    "task_default_queue",
    "task_default_exchange",
    "task_default_routing_key",
    "task_routes",
    "imports",
    "result_backend",
    "task_serializer",
    "result_serializer",
    "accept_content",
    "result_accept_content",
    "task_acks_late",
    "task_reject_on_worker_lost",
    "worker_prefetch_multiplier",
    "worker_send_task_events",
    "worker_cancel_long_running_tasks_on_connection_loss",
    # The original's names and values (see the module docs)
    "CELERY_QUEUES",
    "CELERY_DEFAULT_QUEUE",
    "CELERY_RESULT_BACKEND",
    "CELERY_ACKS_LATE",
    "CELERY_SEND_EVENTS",
    "CELERY_IMPORTS",
    "CELERY_ROUTES",
]

#: Used when neither ``CELERY_BROKER_URL`` nor a positional URL of
#: ``sio-celery-worker`` nor the configuration module gives one.
broker_url = "amqp://guest:guest@localhost:5672//"
#: Keep retrying a broker that is not up yet when the worker starts (also
#: silences Celery's warning that this default changes in Celery 6).
broker_connection_retry_on_startup = True

# The queue and exchange of the original: a direct exchange 'sioworkers'
# bound to queue 'sioworkers'. The dict form avoids importing kombu here.
task_queues = {
    "sioworkers": {"exchange": "sioworkers", "exchange_type": "direct",
                   "routing_key": "sioworkers"},
}
task_default_queue = "sioworkers"
task_default_exchange = "sioworkers"
task_default_routing_key = "sioworkers"
task_routes = {"sio.celery.job.sioworkers_job": {"queue": "sioworkers"}}
imports = ("sio.celery.job",)

#: Results travel back over the broker to the client that sent the job (the
#: Celery 5 replacement of the removed ``amqp`` backend).
result_backend = "rpc://"

# Environs are JSON-able; accepting pickle would let anyone who can publish
# to the broker run code on the workers.
task_serializer = "json"
result_serializer = "json"
accept_content = ["json"]
result_accept_content = ["json"]

task_acks_late = True
task_reject_on_worker_lost = True
worker_prefetch_multiplier = 1
worker_send_task_events = True
#: Without it a late-acknowledged job that outlives the broker connection can
#: never be acknowledged and runs twice; Celery 6 makes this the default.
worker_cancel_long_running_tasks_on_connection_loss = True

# --------------------------------------------------------------------------
# The original's uppercase names, with its values (Celery 3 names; mapped
# to the lowercase ones by sio.celery.app.translate_settings). 'amqp' is
# read as 'rpc://' there.
# --------------------------------------------------------------------------

CELERY_QUEUES = {"sioworkers": {"exchange": "sioworkers", "binding_key": "sioworkers"}}
CELERY_DEFAULT_QUEUE = "sioworkers"
CELERY_RESULT_BACKEND = "amqp"
CELERY_ACKS_LATE = True
CELERY_SEND_EVENTS = True
CELERY_IMPORTS = ["sio.celery.job"]
CELERY_ROUTES = {"sio.celery.job.sioworkers_job": {"queue": "sioworkers"}}
