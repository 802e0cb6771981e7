"""The persistent store of sioworkersd: groups, their jobs' results, and the
groups waiting to be returned.

:func:`open_store` takes ``--database``: a file path (SQLite in WAL mode, the
embedded default) or a ``postgresql://`` URL (PostgreSQL through psycopg 3;
``pip install sioworkers[postgresql]``). Both keep the same two tables:

``sioworkersd_groups``
    ``id``; ``kind`` (``return``: POST to ``return_url``; ``keep``: kept until
    ``forget_group``; ``sync_run_group`` groups are not stored, since their
    caller is gone after a restart);
    ``state`` (``judging`` or ``done``); ``env`` (JSON: the accepted group,
    then the finished one); ``created`` (Unix time); ``tries``,
    ``next_try`` and ``last_error`` of returning it.
``sioworkersd_jobs``
    one row per job of a group being judged: ``task_id``, ``group_id``,
    ``name``, ``state`` (``queued``, ``done`` or ``failed``), ``result``
    (JSON: the result environ, or ``{message, traceback}``) and ``tries``
    (how many workers it vanished with); ``seq`` (the job's place in the
    order its group's jobs ended, from 1: the cursor of ``get_group``'s
    ``since``, an extension; a column added to older stores when opened).
    A ``keep`` group's job rows stay until ``forget_group``, so that its
    ``seq`` answers ``since`` once the group is done; other groups' go when
    they finish.

An accepted group is committed before ``run_group`` answers (SQLite:
``synchronous=FULL`` for that commit), so it survives a crash; a job's
result is committed when it arrives, so a restart runs only the jobs that had
not finished. The store is used by one daemon at a time, under the daemon's
lock (one connection).
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

SCHEMA = [
    """CREATE TABLE IF NOT EXISTS sioworkersd_groups (
        id TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        state TEXT NOT NULL,
        env TEXT NOT NULL,
        created DOUBLE PRECISION NOT NULL,
        tries INTEGER NOT NULL DEFAULT 0,
        next_try DOUBLE PRECISION NOT NULL DEFAULT 0,
        last_error TEXT
    )""",
    """CREATE TABLE IF NOT EXISTS sioworkersd_jobs (
        task_id TEXT PRIMARY KEY,
        group_id TEXT NOT NULL,
        name TEXT NOT NULL,
        state TEXT NOT NULL,
        result TEXT,
        tries INTEGER NOT NULL DEFAULT 0,
        seq INTEGER
    )""",
    "CREATE INDEX IF NOT EXISTS sioworkersd_jobs_group ON sioworkersd_jobs (group_id)",
]


@dataclass
class GroupRow:
    id: str
    kind: str
    state: str
    env: dict[str, Any]
    created: float
    tries: int
    next_try: float
    last_error: str | None


@dataclass
class JobRow:
    task_id: str
    group_id: str
    name: str
    state: str
    result: dict[str, Any] | None
    tries: int
    seq: int | None = None


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


class Store:
    """SQL shared by both databases; subclasses connect and set the
    placeholder style."""

    #: DB-API placeholder; statements are written with ``?``.
    placeholder = "?"

    def __init__(self) -> None:
        self.conn: Any = None

    def _sql(self, statement: str) -> str:
        return statement if self.placeholder == "?" else statement.replace("?", self.placeholder)

    @contextmanager
    def _transaction(self, durable: bool = False) -> Iterator[Any]:
        self._begin(durable)
        cur = self.conn.cursor()
        try:
            yield cur
            self._commit(durable)
        except BaseException:
            try:
                self.conn.rollback()
            except Exception:
                pass  # a lost connection has nothing to roll back
            raise
        finally:
            cur.close()

    def _begin(self, durable: bool) -> None:
        pass

    def _commit(self, durable: bool) -> None:
        self.conn.commit()

    def _execute(self, cur: Any, statement: str, args: Iterable[Any] = ()) -> None:
        cur.execute(self._sql(statement), tuple(args))

    def create_schema(self) -> None:
        with self._transaction() as cur:
            for statement in SCHEMA:
                self._execute(cur, statement)
            self._add_seq_column(cur)

    def _add_seq_column(self, cur: Any) -> None:
        """A store written before ``seq`` existed gets the column."""
        self._execute(cur, "ALTER TABLE sioworkersd_jobs ADD COLUMN IF NOT EXISTS seq INTEGER")

    # -- writes ------------------------------------------------------------

    def add_group(self, group_id: str, kind: str, env: dict[str, Any],
                  jobs: Iterable[tuple[str, str]], done: bool = False) -> None:
        """Store an accepted group and its jobs (``(task_id, name)``), durably."""
        now = time.time()
        with self._transaction(durable=True) as cur:
            self._execute(cur, "INSERT INTO sioworkersd_groups (id, kind, state, env, created, "
                               "next_try) VALUES (?, ?, ?, ?, ?, ?)",
                          (group_id, kind, "done" if done else "judging", _dumps(env), now, now))
            for task_id, name in jobs:
                self._execute(cur, "INSERT INTO sioworkersd_jobs (task_id, group_id, name, state) "
                                   "VALUES (?, ?, ?, 'queued')", (task_id, group_id, name))

    def job_done(self, task_id: str, state: str, result: dict[str, Any],
                 seq: int | None = None) -> None:
        with self._transaction() as cur:
            self._execute(cur, "UPDATE sioworkersd_jobs SET state = ?, result = ?, seq = ? "
                               "WHERE task_id = ?", (state, _dumps(result), seq, task_id))

    def job_tries(self, task_id: str, tries: int) -> None:
        with self._transaction() as cur:
            self._execute(cur, "UPDATE sioworkersd_jobs SET tries = ? WHERE task_id = ?",
                          (tries, task_id))

    def group_done(self, group_id: str, env: dict[str, Any], keep_jobs: bool = False) -> None:
        """The group finished: keep its final environ, drop the job rows
        (unless ``keep_jobs``: a kept group's ``seq`` still answers ``since``;
        their results go, the final environ has them)."""
        with self._transaction() as cur:
            self._execute(cur, "UPDATE sioworkersd_groups SET state = 'done', env = ?, "
                               "next_try = ? WHERE id = ?", (_dumps(env), time.time(), group_id))
            if keep_jobs:
                self._execute(cur, "UPDATE sioworkersd_jobs SET result = NULL "
                                   "WHERE group_id = ?", (group_id,))
            else:
                self._execute(cur, "DELETE FROM sioworkersd_jobs WHERE group_id = ?",
                              (group_id,))

    def return_failed(self, group_id: str, tries: int, next_try: float, error: str) -> None:
        with self._transaction() as cur:
            self._execute(cur, "UPDATE sioworkersd_groups SET tries = ?, next_try = ?, "
                               "last_error = ? WHERE id = ?", (tries, next_try, error, group_id))

    def delete_group(self, group_id: str) -> bool:
        with self._transaction() as cur:
            self._execute(cur, "DELETE FROM sioworkersd_jobs WHERE group_id = ?", (group_id,))
            self._execute(cur, "DELETE FROM sioworkersd_groups WHERE id = ?", (group_id,))
            return bool(cur.rowcount)

    # -- reads ---------------------------------------------------------------

    def _groups(self, where: str, args: Iterable[Any] = ()) -> list[GroupRow]:
        with self._transaction() as cur:
            self._execute(cur, "SELECT id, kind, state, env, created, tries, next_try, last_error "
                               f"FROM sioworkersd_groups {where} ORDER BY created, id", args)
            rows = cur.fetchall()
        return [GroupRow(r[0], r[1], r[2], json.loads(r[3]), r[4], r[5], r[6], r[7])
                for r in rows]

    def group(self, group_id: str) -> GroupRow | None:
        rows = self._groups("WHERE id = ?", (group_id,))
        return rows[0] if rows else None

    def groups(self, kind: str | None = None, state: str | None = None) -> list[GroupRow]:
        clauses, args = [], []
        if kind is not None:
            clauses.append("kind = ?")
            args.append(kind)
        if state is not None:
            clauses.append("state = ?")
            args.append(state)
        return self._groups(("WHERE " + " AND ".join(clauses)) if clauses else "", args)

    def jobs(self, group_id: str) -> list[JobRow]:
        with self._transaction() as cur:
            self._execute(cur, "SELECT task_id, group_id, name, state, result, tries, seq "
                               "FROM sioworkersd_jobs WHERE group_id = ?", (group_id,))
            rows = cur.fetchall()
        return [JobRow(r[0], r[1], r[2], r[3], json.loads(r[4]) if r[4] else None, r[5], r[6])
                for r in rows]

    def ended_since(self, group_id: str, since: int) -> list[str]:
        """Names of the group's jobs that ended after ``since`` (their
        ``seq``), in order: a finished kept group's (see ``group_done``)."""
        with self._transaction() as cur:
            self._execute(cur, "SELECT name FROM sioworkersd_jobs "
                               "WHERE group_id = ? AND seq > ? ORDER BY seq", (group_id, since))
            return [r[0] for r in cur.fetchall()]

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


class SQLiteStore(Store):
    """A SQLite file in WAL mode: readers never block the writer, and a
    commit is one append to the log."""

    def __init__(self, path: str) -> None:
        super().__init__()
        # The daemon's lock serialises every use; the connection moves
        # between its threads.
        self.conn = sqlite3.connect(path, check_same_thread=False, isolation_level="DEFERRED")
        self.conn.execute("PRAGMA journal_mode=WAL")
        # NORMAL: a commit survives the daemon's crash (the OS has it), not
        # a power cut; accepting a group switches to FULL for its commit.
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.execute("PRAGMA busy_timeout=10000")
        self.create_schema()

    def _add_seq_column(self, cur: Any) -> None:
        # SQLite has no ADD COLUMN IF NOT EXISTS.
        self._execute(cur, "PRAGMA table_info(sioworkersd_jobs)")
        if "seq" not in {row[1] for row in cur.fetchall()}:
            self._execute(cur, "ALTER TABLE sioworkersd_jobs ADD COLUMN seq INTEGER")

    def _begin(self, durable: bool) -> None:
        if durable:
            # Outside any transaction (a PRAGMA inside one is ignored).
            self.conn.execute("PRAGMA synchronous=FULL")

    def _commit(self, durable: bool) -> None:
        self.conn.commit()
        if durable:
            self.conn.execute("PRAGMA synchronous=NORMAL")


class PostgresStore(Store):
    """PostgreSQL through psycopg 3; every commit is durable (the server's
    ``synchronous_commit``)."""

    placeholder = "%s"

    def __init__(self, url: str) -> None:
        super().__init__()
        try:
            import psycopg
        except ImportError:
            raise RuntimeError("a postgresql:// database needs psycopg 3: "
                               "pip install 'sioworkers[postgresql]'") from None
        self._connect = lambda: psycopg.connect(url)
        self.conn = self._connect()
        self.create_schema()

    def _begin(self, durable: bool) -> None:
        # After a lost connection (a server restart) the statement that
        # noticed it failed; the next one connects again.
        if self.conn.closed or self.conn.broken:
            self.conn = self._connect()


def open_store(database: str) -> Store:
    """A :class:`PostgresStore` for a ``postgresql://`` (or ``postgres://``)
    URL, else a :class:`SQLiteStore` at the path."""
    if database.startswith(("postgresql://", "postgres://")):
        return PostgresStore(database)
    return SQLiteStore(database)
