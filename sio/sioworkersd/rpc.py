"""The XML-RPC API of sioworkersd (``reference/sioworkersd.md`` §1), served
at any path, POST only (GET gets 405), with ``allow_none``.

The original's calls:

``run_group(env) -> group_id``
    queue a group; its finished environ is POSTed to ``env["return_url"]``.
``sync_run_group(env) -> env``
    run a group and answer with its finished environ (a failed job gives
    ``error`` in it, not the original's bare Fault 8002).
``get_workers() -> list``
    one struct per worker: ``name``, ``info`` (``concurrency``,
    ``available_ram_mb``, ``can_run_cpu_exec``, ...), ``tasks`` (task ids it
    runs), ``is_running_cpu_exec`` (an exclusive job runs on it).
``get_queue() -> str``
    a readable summary.
``forget_worker(name) -> bool``
    drop a worker from the list (oioioi's "Delete workers"); its jobs run
    again elsewhere. The original never had it.

Extensions (used by batches, ``sio-batch-map``):

``run_group(env)`` without ``return_url``
    the group is kept with its results until ``forget_group``; a given
    ``env["group_id"]`` (``GROUP_...``) already known is not run again.
``get_group(group_id, include_results=False, since=None) -> struct``
    ``group_id``, ``state`` (``queued``, ``running`` or ``done``), ``total``,
    ``queued``, ``running``, ``finished`` (jobs that ended), ``failed``
    (those of them that failed), ``cursor`` (how many jobs ended so far:
    every job's end has a sequence number, from 1) and, with
    ``include_results``, ``results``: job name -> result environ (a failed
    job's environ with ``error``). With ``since`` (the ``cursor`` of an
    earlier answer), ``results`` holds only the jobs that ended after it,
    so that a client streams them without fetching any twice.
``list_groups() -> list``
    ``get_group(id, False)`` of each kept group.
``forget_group(group_id) -> True``
    drop a kept group and its results.

Arguments may be JSON strings (what oioioi sends) or structs. Faults: 8001
for an unknown method (as the original), 8002 with a message saying what
was wrong for anything else.
"""

from __future__ import annotations

import json
import logging
import socketserver
from collections.abc import Callable
from typing import Any
from xmlrpc.client import Fault, dumps
from xmlrpc.server import SimpleXMLRPCRequestHandler, SimpleXMLRPCServer

from sio.sioworkersd.daemon import Daemon
from sio.sioworkersd.policy import GroupError

log = logging.getLogger("sioworkersd.rpc")

#: The original's fault codes.
FAULT_NO_METHOD = 8001
FAULT_ERROR = 8002


def decode_argument(value: Any) -> Any:
    """A top-level argument sent as a JSON string is decoded; anything else
    (a struct, a string that is not JSON) is passed on (the original's
    ``escape_arguments``)."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


class API:
    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon

    def run_group(self, env: Any) -> str:
        env = decode_argument(env)
        kind = "return" if isinstance(env, dict) and "return_url" in env else "keep"
        g = self.daemon.submit(env, kind)
        return g if isinstance(g, str) else g.id

    def sync_run_group(self, env: Any) -> dict[str, Any]:
        g = self.daemon.submit(decode_argument(env), "sync")
        assert not isinstance(g, str)
        g.done.wait()
        if g.final is None:
            raise RuntimeError("the daemon stopped before the group finished")
        return g.final

    def get_workers(self) -> list[dict[str, Any]]:
        return self.daemon.workers()

    def get_queue(self) -> str:
        return self.daemon.queue_summary()

    def forget_worker(self, name: Any) -> bool:
        # oioioi sends the bare name: a name that happens to be valid JSON
        # ("1e5", "null") is still a name; a JSON-quoted one is unquoted.
        decoded = decode_argument(name)
        return self.daemon.forget_worker(decoded if isinstance(decoded, str) else str(name))

    def get_group(self, group_id: str, include_results: bool = False,
                  since: int | None = None) -> dict[str, Any]:
        if since is not None and (isinstance(since, bool) or not isinstance(since, int)
                                  or since < 0):
            raise GroupError(f"since must be a cursor (an integer >= 0), not {since!r}")
        try:
            return self.daemon.group_status(group_id, bool(include_results), since)
        except KeyError:
            raise GroupError(f"no group {group_id!r} here (never run, or forgotten)") from None

    def list_groups(self) -> list[dict[str, Any]]:
        return self.daemon.list_groups()

    def forget_group(self, group_id: str) -> bool:
        try:
            return self.daemon.forget_group(group_id)
        except KeyError:
            raise GroupError(f"no group {group_id!r} here (never run, or forgotten)") from None

    def methods(self) -> dict[str, Callable[..., Any]]:
        return {name: getattr(self, name) for name in (
            "run_group", "sync_run_group", "get_workers", "get_queue", "forget_worker",
            "get_group", "list_groups", "forget_group")}


class _Handler(SimpleXMLRPCRequestHandler):
    rpc_paths = ()  # every path, as the original's leaf resource

    def do_GET(self) -> None:
        self.send_response(405)
        self.send_header("Allow", "POST")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)


class RPCServer(socketserver.ThreadingMixIn, SimpleXMLRPCServer):
    """A thread per call: ``sync_run_group`` holds its connection until the
    group ends."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], daemon: Daemon) -> None:
        super().__init__(address, requestHandler=_Handler, allow_none=True, logRequests=False)
        self.api_methods = API(daemon).methods()

    def _dispatch(self, method: str, params: Any) -> Any:
        func = self.api_methods.get(method)
        if func is None:
            raise Fault(FAULT_NO_METHOD, f"procedure {method} not found")
        try:
            result = func(*params)
            if method in ("sync_run_group", "get_group"):
                # Results are the jobs' data: say plainly when XML-RPC cannot
                # carry them (an int beyond 32 bits), as the original did.
                try:
                    dumps((result,), methodresponse=True, allow_none=True)
                except (OverflowError, TypeError) as e:
                    raise Fault(FAULT_ERROR, f"Can't serialize output: {e}") from None
            return result
        except Fault:
            raise
        except GroupError as e:
            raise Fault(FAULT_ERROR, f"{method}: {e}") from None
        except TypeError as e:
            if e.__traceback__ is not None and e.__traceback__.tb_next is None:
                # Raised by the call itself: wrong arguments.
                raise Fault(FAULT_ERROR, f"{method}: wrong arguments: {e}") from None
            log.exception("%s failed", method)
            raise Fault(FAULT_ERROR, f"{method}: internal error: {type(e).__name__}: {e}") from None
        except Exception as e:
            log.exception("%s failed", method)
            raise Fault(FAULT_ERROR, f"{method}: {type(e).__name__}: {e}") from None
