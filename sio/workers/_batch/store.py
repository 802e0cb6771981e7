"""The store of batches: one SQLite file in WAL mode.

Every batch is a row of ``batches``; every job of it a row of ``items``,
keyed by ``(batch_id, idx)``, the position of the environ in the input. An
item goes ``pending`` -> ``running`` (handed to a worker process or to the
daemon) -> ``done`` or ``failed``. The first result recorded for an item
wins: a result arriving for an item that is already finished is dropped
(:meth:`Store.record` updates only unfinished rows), which is how a job that
ran twice (it was thought lost) never changes a result already collected.

WAL lets any number of processes read (watch a batch, collect its results)
while one writes; writers wait up to :data:`BUSY_TIMEOUT_S` for each other.

Ownership of a local batch: the process that runs it writes ``owner``
(``host:pid:token``) and refreshes ``heartbeat`` at least every
:data:`HEARTBEAT_S`; a batch whose owner is gone (on this host: no process of
that pid and start time; on another: no heartbeat for :data:`OWNER_STALE_S`
seconds) is *interrupted*, and anyone may resume it.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sio.workers.errors import UsageError

#: Writers wait this long for each other's transactions (seconds).
BUSY_TIMEOUT_S = 30.0
#: A running local batch refreshes its heartbeat at least this often (seconds).
HEARTBEAT_S = 2.0
#: An owner with no heartbeat for this long is taken for gone (seconds); it
#: matters only for an owner on another host (on this one, its pid decides).
OWNER_STALE_S = 30.0

SCHEMA_VERSION = 1

SCHEMA = """
CREATE TABLE IF NOT EXISTS batches (
    id TEXT PRIMARY KEY,
    created REAL NOT NULL,          -- time.time() of map_async
    backend TEXT NOT NULL,          -- 'local' or the daemon's URL
    group_id TEXT,                  -- daemon: the group of this batch
    total INTEGER NOT NULL,
    options TEXT NOT NULL,          -- JSON: jobs, ...
    submitted INTEGER NOT NULL DEFAULT 0,  -- daemon: run_group was accepted
    forgotten INTEGER NOT NULL DEFAULT 0,  -- daemon: forget_group was called
    owner TEXT,                     -- local: 'host:pid:token' of the runner
    heartbeat REAL
);
CREATE TABLE IF NOT EXISTS items (
    batch_id TEXT NOT NULL REFERENCES batches(id) ON DELETE CASCADE,
    idx INTEGER NOT NULL,
    environ TEXT NOT NULL,          -- JSON, as given
    state TEXT NOT NULL DEFAULT 'pending',
    result TEXT,                    -- JSON: the result environ (failures too)
    exception TEXT,
    traceback TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,  -- times handed to a worker or the daemon
    finished REAL,
    PRIMARY KEY (batch_id, idx)
) WITHOUT ROWID;
"""

PENDING, RUNNING, DONE, FAILED = "pending", "running", "done", "failed"
FINISHED = (DONE, FAILED)


class UnknownBatch(UsageError, KeyError):
    """No batch of this id in the store."""

    def __str__(self) -> str:  # KeyError would print the repr of its argument
        return str(self.args[0])


@dataclass(frozen=True)
class Counts:
    """How many items of a batch are in each state."""

    total: int
    pending: int = 0
    running: int = 0
    done: int = 0
    failed: int = 0

    @property
    def finished(self) -> int:
        """Done and failed together."""
        return self.done + self.failed

    @property
    def complete(self) -> bool:
        return self.finished >= self.total


@dataclass(frozen=True)
class BatchRow:
    id: str
    created: float
    backend: str
    group_id: str | None
    total: int
    options: dict[str, Any]
    submitted: bool
    forgotten: bool
    owner: str | None
    heartbeat: float | None

    @property
    def is_local(self) -> bool:
        return self.backend == "local"


@dataclass(frozen=True)
class Outcome:
    """One finished item, as :meth:`Store.record` takes it: ``result`` is the
    result environ as JSON text (a failed item's too)."""

    idx: int
    failed: bool
    result: str
    exception: str | None = None
    traceback: str | None = None


def new_batch_id() -> str:
    return uuid.uuid4().hex[:12]


def _started(pid: int) -> str | None:
    """The start time of process ``pid`` (clock ticks after boot), which
    tells it from a later process with the same pid; ``None`` when there is
    no such process, or only its zombie (a detached runner that died before
    its parent waited for it)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    # The name (field 2, in parentheses) may hold anything: count after it.
    fields = stat.rsplit(b")", 1)[1].split()
    return None if fields[0] == b"Z" else fields[19].decode()


def new_owner(pid: int | None = None, token: str | None = None) -> str:
    """``host:pid:start.token`` naming the process that runs a batch
    (default: this one, with a new token)."""
    pid = os.getpid() if pid is None else pid
    return f"{socket.gethostname()}:{pid}:{_started(pid)}.{token or uuid.uuid4().hex[:8]}"


def owner_alive(owner: str | None, heartbeat: float | None, now: float | None = None) -> bool:
    """Whether the process named by ``owner`` still runs its batch: on this
    host, whether that very process exists (a pid reused by another process
    does not count); on another, whether its heartbeat is fresh."""
    if not owner:
        return False
    host, pid, token = owner.rsplit(":", 2)
    if host == socket.gethostname():
        # Not the heartbeat: a live owner may be held up for long (its
        # output piped into a pager that waits for the user).
        return _started(int(pid)) == token.split(".", 1)[0]
    now = time.time() if now is None else now
    return heartbeat is not None and now - heartbeat < OWNER_STALE_S


class Store:
    """One connection to the store file ``path`` (created with its folder
    when missing). Use from one thread; other threads and processes open
    their own."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.path.abspath(os.fspath(path))
        folder = os.path.dirname(self.path)
        os.makedirs(folder, exist_ok=True)
        # isolation_level=None: transactions are explicit (BEGIN IMMEDIATE
        # takes the write lock up front, so two writers never deadlock
        # upgrading read locks).
        self.db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None,
                                  check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode: a committed result survives a crash of the
        # process (not necessarily of the machine), at a fraction of FULL's cost.
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("PRAGMA foreign_keys=ON")
        version = self.db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise UsageError(f"the batch store {self.path} was written by a newer sioworkers "
                             f"(schema {version}, this one knows {SCHEMA_VERSION})")
        if version < SCHEMA_VERSION:
            with self.transaction():
                # Not executescript: it would commit the transaction first.
                for statement in SCHEMA.split(";"):
                    if statement.strip():
                        self.db.execute(statement)
                self.db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- transactions -------------------------------------------------------

    class _Transaction:
        def __init__(self, db: sqlite3.Connection) -> None:
            self.db = db

        def __enter__(self) -> sqlite3.Connection:
            self.db.execute("BEGIN IMMEDIATE")
            return self.db

        def __exit__(self, exc_type: object, *rest: object) -> None:
            self.db.execute("ROLLBACK" if exc_type is not None else "COMMIT")

    def transaction(self) -> Store._Transaction:
        return Store._Transaction(self.db)

    # -- batches ------------------------------------------------------------

    def create(self, environs: Sequence[str], backend: str, options: dict[str, Any],
               batch_id: str | None = None, group_id: str | None = None) -> str:
        """A new batch of the environs (JSON texts); returns its id."""
        batch_id = batch_id or new_batch_id()
        with self.transaction() as db:
            db.execute("INSERT INTO batches (id, created, backend, group_id, total, options) "
                       "VALUES (?, ?, ?, ?, ?, ?)",
                       (batch_id, time.time(), backend, group_id, len(environs),
                        json.dumps(options)))
            db.executemany("INSERT INTO items (batch_id, idx, environ) VALUES (?, ?, ?)",
                           ((batch_id, i, e) for i, e in enumerate(environs)))
        return batch_id

    def batch(self, batch_id: str) -> BatchRow:
        row = self.db.execute(
            "SELECT id, created, backend, group_id, total, options, submitted, forgotten, "
            "owner, heartbeat FROM batches WHERE id = ?", (batch_id,)).fetchone()
        if row is None:
            raise UnknownBatch(f"no batch {batch_id!r} in {self.path} "
                               "(sio-batch-map --list shows the batches there)")
        return BatchRow(row[0], row[1], row[2], row[3], row[4], json.loads(row[5]),
                        bool(row[6]), bool(row[7]), row[8], row[9])

    def batches(self) -> list[BatchRow]:
        ids = [r[0] for r in self.db.execute("SELECT id FROM batches ORDER BY created")]
        return [self.batch(i) for i in ids]

    def delete(self, batch_id: str) -> None:
        self.batch(batch_id)
        with self.transaction() as db:
            db.execute("DELETE FROM items WHERE batch_id = ?", (batch_id,))
            db.execute("DELETE FROM batches WHERE id = ?", (batch_id,))

    def set_flags(self, batch_id: str, *, submitted: bool | None = None,
                  forgotten: bool | None = None) -> None:
        with self.transaction() as db:
            if submitted is not None:
                db.execute("UPDATE batches SET submitted = ? WHERE id = ?",
                           (int(submitted), batch_id))
            if forgotten is not None:
                db.execute("UPDATE batches SET forgotten = ? WHERE id = ?",
                           (int(forgotten), batch_id))

    def counts(self, batch_id: str) -> Counts:
        total = self.batch(batch_id).total
        states = dict(self.db.execute(
            "SELECT state, count(*) FROM items WHERE batch_id = ? GROUP BY state", (batch_id,)))
        return Counts(total, states.get(PENDING, 0), states.get(RUNNING, 0),
                      states.get(DONE, 0), states.get(FAILED, 0))

    # -- ownership of a local batch ----------------------------------------------

    def claim(self, batch_id: str, owner: str) -> None:
        """Make ``owner`` the process that runs the batch; refuses while
        another live process does."""
        with self.transaction() as db:
            row = db.execute("SELECT owner, heartbeat FROM batches WHERE id = ?",
                             (batch_id,)).fetchone()
            if row is None:
                raise UnknownBatch(f"no batch {batch_id!r} in {self.path}")
            if row[0] != owner and owner_alive(row[0], row[1]):
                host, pid, _ = row[0].rsplit(":", 2)
                raise UsageError(f"batch {batch_id} is being run by process {pid} on {host}; "
                                 "watch it with sio-batch-map --status " + batch_id)
            db.execute("UPDATE batches SET owner = ?, heartbeat = ? WHERE id = ?",
                       (owner, time.time(), batch_id))
            if row[0] != owner:
                # Items handed out by a process that is gone were lost with it.
                db.execute("UPDATE items SET state = ? WHERE batch_id = ? AND state = ?",
                           (PENDING, batch_id, RUNNING))

    def heartbeat(self, batch_id: str, owner: str) -> None:
        with self.transaction() as db:
            db.execute("UPDATE batches SET heartbeat = ? WHERE id = ? AND owner = ?",
                       (time.time(), batch_id, owner))

    def release(self, batch_id: str, owner: str) -> None:
        with self.transaction() as db:
            db.execute("UPDATE batches SET owner = NULL, heartbeat = NULL "
                       "WHERE id = ? AND owner = ?", (batch_id, owner))
            db.execute("UPDATE items SET state = ? WHERE batch_id = ? AND state = ?",
                       (PENDING, batch_id, RUNNING))

    # -- items ----------------------------------------------------------------

    def unfinished(self, batch_id: str) -> list[tuple[int, str]]:
        """``(idx, environ JSON)`` of every item with no result, in order."""
        return self.db.execute(
            "SELECT idx, environ FROM items WHERE batch_id = ? AND state IN (?, ?) ORDER BY idx",
            (batch_id, PENDING, RUNNING)).fetchall()

    def mark(self, batch_id: str, idxs: Iterable[int], state: str) -> None:
        """Items handed out (``RUNNING``, attempts + 1) or given back
        (``PENDING``); finished items are left alone."""
        bump = 1 if state == RUNNING else 0
        with self.transaction() as db:
            db.executemany(
                "UPDATE items SET state = ?, attempts = attempts + ? "
                "WHERE batch_id = ? AND idx = ? AND state NOT IN (?, ?)",
                ((state, bump, batch_id, i, DONE, FAILED) for i in idxs))

    def record(self, batch_id: str, outcomes: Iterable[Outcome],
               started: Iterable[int] = ()) -> tuple[int, int]:
        """Store results (and mark ``started`` items running) in one
        transaction; returns how many new items are done and how many
        failed (results of items already finished are dropped)."""
        now = time.time()
        outcomes = list(outcomes)
        new = [0, 0]
        with self.transaction() as db:
            db.executemany(
                "UPDATE items SET state = ?, attempts = attempts + 1 "
                "WHERE batch_id = ? AND idx = ? AND state = ?",
                ((RUNNING, batch_id, i, PENDING) for i in started))
            for failed in (False, True):
                # executemany's rowcount is the sum: the results not dropped.
                new[failed] = db.executemany(
                    "UPDATE items SET state = ?, result = ?, exception = ?, traceback = ?, "
                    "finished = ? WHERE batch_id = ? AND idx = ? AND state NOT IN (?, ?)",
                    ((FAILED if failed else DONE, o.result, o.exception, o.traceback, now,
                      batch_id, o.idx, DONE, FAILED) for o in outcomes if o.failed == failed)
                ).rowcount
        return new[0], new[1]

    def finished_set(self, batch_id: str) -> set[int]:
        return {r[0] for r in self.db.execute(
            "SELECT idx FROM items WHERE batch_id = ? AND state IN (?, ?)",
            (batch_id, DONE, FAILED))}

    def items(self, batch_id: str, start: int = 0, limit: int = -1) -> list[
            tuple[int, str, str, str | None, str | None, str | None]]:
        """``(idx, environ, state, result, exception, traceback)`` from
        ``start`` on, in order, at most ``limit`` (JSON texts)."""
        # A list, not a cursor: a cursor left half-read would keep a read
        # transaction open on this connection.
        return self.db.execute(
            "SELECT idx, environ, state, result, exception, traceback FROM items "
            "WHERE batch_id = ? AND idx >= ? ORDER BY idx LIMIT ?",
            (batch_id, start, limit)).fetchall()
