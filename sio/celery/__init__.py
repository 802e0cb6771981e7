"""Running sioworkers jobs on Celery workers.

* :mod:`sio.celery.job`: the task ``sio.celery.job.sioworkers_job``;
* :mod:`sio.celery.default_config`: the default configuration;
* :mod:`sio.celery.app`: the app ``sio-celery-worker`` runs;
* :mod:`sio.celery.worker`: ``sio-celery-worker``;
* :func:`run_many` (from :mod:`sio.celery.client`): send environs, collect
  the results in order.

Importing this package imports neither Celery nor any configuration.
"""

from __future__ import annotations

from typing import Any

__all__ = ["run_many"]


def __getattr__(name: str) -> Any:
    # Lazy, so that 'import sio.celery.job' in a host application does not
    # pull in the client or the app module.
    if name == "run_many":
        from sio.celery.client import run_many

        return run_many
    raise AttributeError(f"module 'sio.celery' has no attribute {name!r}")
