"""The daemon backend: a batch is a group of ``sioworkersd``.

It uses the daemon's extensions of the original XML-RPC API (documented with
the daemon, :doc:`batches` summarises them):

``run_group(env)`` without ``return_url``
    the group is kept in the daemon's store with its results until
    ``forget_group``; ``env["group_id"]`` (``GROUP_...``) chosen by the
    client; a ``run_group`` with an id the daemon already holds returns the
    same id and runs nothing again.
``get_group(group_id, include_results, since)``
    ``state``, ``total``, ``queued``, ``running``, ``finished``, ``failed``,
    ``cursor`` and, when asked, ``results``: job key -> result environ (a
    failed job's carries ``error = {message, traceback}``); with ``since``
    (an earlier answer's ``cursor``) only the results of jobs that ended
    after it. A daemon without ``since`` (it refuses the third argument) is
    asked for every result, in bunches.
``list_groups()``, ``forget_group(group_id)``.

The job keys of a batch's group are the items' positions (``"0"``,
``"1"``, ...), and its group id is :func:`group_id_of` the batch id, so
every submission of a batch, first or resumed, names the same jobs.
"""

from __future__ import annotations

import json
import socket
import xmlrpc.client
from collections.abc import Iterable
from typing import Any

from sio.workers._batch.store import RUNNING, Outcome, Store
from sio.workers.errors import SioWorkersError

#: Seconds a call to the daemon may take before it counts as unanswered.
CALL_TIMEOUT_S = 120.0
#: From a daemon without ``get_group``'s ``since``: a batch's results are
#: fetched when its group is done, and meanwhile whenever the jobs ended have
#: doubled since the last fetch (and at least FETCH_AT_LEAST are new).
FETCH_AT_LEAST = 20


class DaemonError(SioWorkersError):
    """The daemon cannot be reached or refused a call."""


class NoSince(DaemonError):
    """The daemon's ``get_group`` takes no ``since`` (an older daemon)."""


def group_id_of(batch_id: str) -> str:
    return f"GROUP_batch_{batch_id}"


class _Transport(xmlrpc.client.Transport):
    def make_connection(self, host: Any) -> Any:
        conn = super().make_connection(host)
        conn.timeout = CALL_TIMEOUT_S
        return conn


class Daemon:
    """The group calls of the daemon at ``url`` (``http://host:7889``)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._proxy = xmlrpc.client.ServerProxy(url, allow_none=True, transport=_Transport())

    def _call(self, method: str, *args: Any) -> Any:
        try:
            return getattr(self._proxy, method)(*args)
        except xmlrpc.client.Fault as e:
            raise DaemonError(f"sioworkersd at {self.url} refused {method}: "
                              f"{e.faultString} (fault {e.faultCode})") from None
        except (OSError, socket.timeout, xmlrpc.client.ProtocolError) as e:
            raise DaemonError(f"cannot reach sioworkersd at {self.url} ({method}): {e}") from e

    def submit(self, group_id: str, items: Iterable[tuple[int, str]]) -> None:
        """``run_group`` of the items ``(idx, environ JSON)``: idempotent for
        a group the daemon holds."""
        # The environ goes as JSON text (the daemon decodes it, as it does
        # oioioi's), which also carries integers beyond XML-RPC's 32 bits.
        jobs = ", ".join(f"{json.dumps(str(idx))}: {environ}" for idx, environ in items)
        text = f'{{"group_id": {json.dumps(group_id)}, "workers_jobs": {{{jobs}}}}}'
        answer = self._call("run_group", text)
        if answer != group_id:
            raise DaemonError(f"sioworkersd at {self.url} answered run_group with group "
                              f"{answer!r}, not the {group_id!r} asked for: it does not keep "
                              "client-chosen group ids (the batch extensions are missing)")

    def group(self, group_id: str, include_results: bool = False) -> dict[str, Any] | None:
        """The group's struct, or ``None`` when the daemon does not hold it."""
        try:
            return self._call("get_group", group_id, include_results)
        except DaemonError:
            # Tell an unknown group from a broken daemon without parsing
            # the fault's words: an unknown group is not in the list.
            if any(g.get("group_id") == group_id for g in self.groups()):
                raise
            return None

    def group_since(self, group_id: str, since: int) -> dict[str, Any] | None:
        """The group's struct with the results of the jobs that ended after
        cursor ``since``; ``None`` when the daemon does not hold the group.

        :raises NoSince: the daemon has no ``since`` (it holds the group but
            refuses the call).
        """
        try:
            return self._call("get_group", group_id, True, since)
        except DaemonError:
            if any(g.get("group_id") == group_id for g in self.groups()):
                raise NoSince(f"sioworkersd at {self.url} has no get_group since") from None
            return None

    def groups(self) -> list[dict[str, Any]]:
        return self._call("list_groups")

    def forget(self, group_id: str) -> None:
        self._call("forget_group", group_id)


def outcome(idx: int, result: dict[str, Any]) -> Outcome:
    """A daemon's result environ as an :class:`Outcome` (a job that raised
    gets ``result``, ``exception`` and ``traceback`` as in local mode)."""
    error = result.get("error")
    if isinstance(error, dict):
        message = str(error.get("message", ""))
        tb = str(error.get("traceback", ""))
        result = dict(result)
        result.setdefault("exception", message)
        result.setdefault("traceback", tb)
        result["result"] = "FAILURE"
        return Outcome(idx, True, json.dumps(result), message, tb)
    if result.get("result") == "FAILURE":
        return Outcome(idx, True, json.dumps(result), str(result.get("exception", "")),
                       str(result.get("traceback", "")))
    return Outcome(idx, False, json.dumps(result))


class Sync:
    """Brings a daemon batch's results into the store (one per watcher).

    :meth:`step` (re)submits the batch's unfinished items when the daemon
    does not hold its group, fetches the results that are new, and forgets
    the group once every result is in the store (the store is then the only
    copy). It returns the group's struct (``None`` once forgotten).
    """

    def __init__(self, store: Store, batch_id: str) -> None:
        self.store = store
        self.batch_id = batch_id
        row = store.batch(batch_id)
        assert row.group_id is not None
        self.group_id = row.group_id
        self.daemon = Daemon(row.backend)
        self.seen = 0  # the group's finished jobs at the last fetch of results
        #: The ``cursor`` of the daemon's last answer: the results up to it
        #: are in the store. None: the daemon has no ``since``.
        self.cursor: int | None = 0

    def submit(self) -> None:
        items = self.store.unfinished(self.batch_id)
        if items:
            self.daemon.submit(self.group_id, items)
            self.store.mark(self.batch_id, [idx for idx, _ in items], RUNNING)
        self.store.set_flags(self.batch_id, submitted=True)

    def _stream(self) -> dict[str, Any] | None:
        """Fetch the results that ended since the last answer into the
        store (one call); the group's struct, ``None`` when the daemon does
        not hold it."""
        assert self.cursor is not None
        group = self.daemon.group_since(self.group_id, self.cursor)
        if group is not None and int(group.get("cursor", 0)) < self.cursor:
            # A group behind the cursor is a new one of the same id (the
            # daemon lost the first and it was sent again): from the start.
            self.cursor = 0
            group = self.daemon.group_since(self.group_id, 0)
        if group is None:
            return None
        outcomes = [outcome(int(key), result)
                    for key, result in (group.get("results") or {}).items()]
        if outcomes:
            # Results of items already in the store are dropped there.
            self.store.record(self.batch_id, outcomes)
        # Only once they are stored: a failed write fetches them again.
        self.cursor = int(group.get("cursor", 0))
        return group

    def step(self) -> dict[str, Any] | None:
        if self.store.counts(self.batch_id).complete:
            self.forget()
            return None
        if self.cursor is not None:
            try:
                group = self._stream()
                if group is None:
                    self.submit()
                    group = self._stream()
                    if group is None:
                        raise DaemonError(f"sioworkersd at {self.daemon.url} accepted group "
                                          f"{self.group_id} but does not list it")
            except NoSince:
                self.cursor = None
            else:
                done = group.get("state") == "done" or int(group.get("finished", 0)) >= int(
                    group.get("total", 0))
                return self._after(group, done)
        group = self.daemon.group(self.group_id, False)
        if group is None:
            # Never sent (the submitter died first), or lost by the daemon:
            # send what has no result yet.
            self.submit()
            group = self.daemon.group(self.group_id, False)
            if group is None:
                raise DaemonError(f"sioworkersd at {self.daemon.url} accepted group "
                                  f"{self.group_id} but does not list it")
        ended = int(group.get("finished", 0))
        total = int(group.get("total", 0))
        done = group.get("state") == "done" or ended >= total
        new = ended - self.seen
        # Results are fetched in bunches: each fetch has the daemon encode
        # every result of the group so far (the contract has no "results
        # since"), which costs it the CPU its scheduling needs. Fetching when
        # they doubled keeps the total encoded below twice the group.
        if new > 0 and (done or (new >= FETCH_AT_LEAST and ended >= 2 * self.seen)):
            full = self.daemon.group(self.group_id, True) or group
            have = self.store.finished_set(self.batch_id)
            outcomes = [outcome(int(key), result)
                        for key, result in full.get("results", {}).items() if int(key) not in have]
            if outcomes:
                self.store.record(self.batch_id, outcomes)
            self.seen = ended
            group = full
        return self._after(group, done)

    def _after(self, group: dict[str, Any], done: bool) -> dict[str, Any]:
        if self.store.counts(self.batch_id).complete:
            self.forget()
        elif done:
            # The daemon finished the group without a result for some jobs
            # (it lost them): they run again in a new group of the same id.
            self.daemon.forget(self.group_id)
            self.seen = 0
            if self.cursor is not None:
                self.cursor = 0
            self.submit()
        return group

    def forget(self) -> None:
        if self.store.batch(self.batch_id).forgotten:
            return
        if self.daemon.group(self.group_id, False) is not None:
            self.daemon.forget(self.group_id)
        self.store.set_flags(self.batch_id, forgotten=True)
