"""The Celery app of sioworkers: :data:`app`, an instance of :class:`SioCelery`.

``sio-celery-worker`` runs it, and ``celery -A sio.celery.app worker`` works
too. Its configuration module is read when the configuration is first used
(not when this module is imported):

``CELERY_CONFIG_MODULE`` (environment variable, default ``sio.celery.default_config``)
    the dotted name of the configuration module. Both Celery 5 lowercase
    settings and the uppercase names of Celery 3 (``BROKER_URL``,
    ``CELERY_RESULT_BACKEND``, ...) are accepted; see :class:`SioCelery`.
``CELERY_BROKER_URL`` (environment variable, optional)
    overrides ``broker_url`` of the module (Celery's own rule).

A host application with its own Celery app does not need this module: it
imports :mod:`sio.celery.job`, whose task registers with every app.
"""

from __future__ import annotations

import os
import urllib.parse
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from celery import Celery

DEFAULT_CONFIG_MODULE = "sio.celery.default_config"

#: Legacy (Celery 3 / sioworkers 1.x) setting names and their Celery 5
#: names. Other legacy names Celery knows are mapped too (through Celery's own
#: table); these are the ones the original's documentation and default
#: configuration used.
LEGACY_KEYS: dict[str, str] = {
    "BROKER_URL": "broker_url",
    "BROKER_TRANSPORT_OPTIONS": "broker_transport_options",
    "CELERY_QUEUES": "task_queues",
    "CELERY_DEFAULT_QUEUE": "task_default_queue",
    "CELERY_DEFAULT_EXCHANGE": "task_default_exchange",
    "CELERY_DEFAULT_ROUTING_KEY": "task_default_routing_key",
    "CELERY_RESULT_BACKEND": "result_backend",
    "CELERY_ACKS_LATE": "task_acks_late",
    "CELERY_SEND_EVENTS": "worker_send_task_events",
    "CELERY_IMPORTS": "imports",
    "CELERY_ROUTES": "task_routes",
    "CELERY_REJECT_ON_WORKER_LOST": "task_reject_on_worker_lost",
    "CELERYD_PREFETCH_MULTIPLIER": "worker_prefetch_multiplier",
    "CELERY_TASK_SERIALIZER": "task_serializer",
    "CELERY_RESULT_SERIALIZER": "result_serializer",
    "CELERY_ACCEPT_CONTENT": "accept_content",
}

#: Polling interval (seconds) given to the ``filesystem://`` transport when
#: the configuration sets none: kombu's default of 1 s caps a worker at about
#: (processes / 1 s) jobs per second because of the one-message prefetch.
FILESYSTEM_POLLING_INTERVAL = 0.1


def _original_defaults() -> dict[str, Any]:
    """A copy of the uppercase names of :mod:`sio.celery.default_config`
    (taken once, before any configuration file can change them in place)."""
    import copy

    from sio.celery import default_config

    return {name: copy.deepcopy(getattr(default_config, name))
            for name in default_config.__all__ if name.isupper()}


_ORIGINAL_DEFAULTS = _original_defaults()


def _legacy_table() -> dict[str, str]:
    table = dict(LEGACY_KEYS)
    try:
        # Celery's private table of every old name; used only to widen ours.
        from celery.app.defaults import _TO_NEW_KEY
    except ImportError:  # pragma: no cover - a future Celery without it
        return table
    return {**_TO_NEW_KEY, **table}


def translate_settings(source: Mapping[str, Any]) -> dict[str, Any]:
    """Celery 5 settings from a configuration mapping that may use the
    legacy uppercase names.

    * every known legacy name becomes its lowercase name; when both are
      present the legacy one wins, because an old-style file sets its
      uppercase keys after ``from sio.celery.default_config import *`` —
      unless the legacy value is still the one
      :mod:`sio.celery.default_config` gives it (it came with the star
      import; the file did not set it), so a new-style file that sets
      ``task_acks_late = False`` after the star import gets that;
    * the result backend ``amqp`` (removed in Celery 5) becomes ``rpc://``,
      which also sends results back over the broker;
    * names starting with ``_`` and other unknown names are left as they
      are (Celery ignores them).
    """
    table = _legacy_table()
    settings: dict[str, Any] = {}
    legacy: dict[str, Any] = {}
    untouched: dict[str, Any] = {}
    for key in list(source.keys()):
        if key.startswith("_"):
            continue
        value = source[key]
        if key in table:
            if key in _ORIGINAL_DEFAULTS and value == _ORIGINAL_DEFAULTS[key]:
                untouched[table[key]] = value
            else:
                legacy[table[key]] = value
        else:
            settings[key] = value
    for key, value in untouched.items():
        settings.setdefault(key, value)
    settings.update(legacy)
    backend = settings.get("result_backend")
    if isinstance(backend, str) and (backend == "amqp" or backend.startswith("amqp://")):
        settings["result_backend"] = "rpc://"
    return settings


def _filesystem_options(broker_url: str, options: Mapping[str, Any]) -> dict[str, Any] | None:
    """Transport options for ``filesystem:///some/dir``: the queue in
    ``<dir>/queue`` (producers and consumers share it), broadcasts in
    ``<dir>/control``, a short polling interval. ``None`` when the URL is not
    a filesystem one or the configuration already chose the folders."""
    parts = urllib.parse.urlsplit(broker_url)
    if parts.scheme != "filesystem":
        return None
    from sio.celery import _filesystem

    _filesystem.install()  # atomic message files (kombu's are not)
    new = dict(options)
    new.setdefault("polling_interval", FILESYSTEM_POLLING_INTERVAL)
    if parts.path not in ("", "/") and "data_folder_in" not in new:
        root = Path(parts.path)
        queue = root / "queue"
        # kombu lists this directory on every poll and fails if it is missing.
        queue.mkdir(parents=True, exist_ok=True)
        new["data_folder_in"] = new["data_folder_out"] = str(queue)
        new.setdefault("control_folder", str(root / "control"))
    return new


class SioCelery(Celery):
    """A :class:`celery.Celery` that reads old and new configuration files
    alike and needs no setup.

    * Without an explicit :meth:`config_from_object`, the configuration
      module is ``$CELERY_CONFIG_MODULE`` or :mod:`sio.celery.default_config`,
      read when the configuration is first used.
    * :func:`translate_settings` maps legacy names before Celery sees them,
      so old-style files load without Celery's "cannot mix new and old
      setting keys" error or deprecation warnings, and keep loading after
      Celery 6 drops the old names.
    * A ``filesystem:///dir`` broker URL gets its folders under ``dir``, and
      message files are written atomically (:mod:`sio.celery._filesystem`).
    """

    def __init__(self, main: str | None = "sioworkers", **kwargs: Any) -> None:
        super().__init__(main, **kwargs)
        # weak=False: the bound method would otherwise be collected at once.
        self.on_configure.connect(self._choose_config_module, weak=False)

    def _choose_config_module(self, sender: Any = None, **kwargs: Any) -> None:
        if getattr(self, "_config_source", None) is None:
            self._config_source = os.environ.get("CELERY_CONFIG_MODULE") or DEFAULT_CONFIG_MODULE

    def prepare_config(self, c: Any) -> Any:
        settings = translate_settings(c)
        # The broker Celery will use: the environment wins (Celery's rule).
        broker = os.environ.get("CELERY_BROKER_URL") or settings.get("broker_url") or ""
        options = _filesystem_options(broker, settings.get("broker_transport_options") or {})
        if options is not None:
            settings["broker_transport_options"] = options
        return super().prepare_config(settings)


#: The app ``sio-celery-worker`` runs; ``celery -A sio.celery.app worker``.
app = SioCelery("sioworkers")
