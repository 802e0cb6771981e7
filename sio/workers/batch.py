"""Batches of jobs that outlive their caller: :func:`map`,
:func:`map_async`, :func:`get_results`, :func:`get_errors`, and
``sio-batch-map`` (:func:`main`).

A *batch* is a list of environs run as jobs, with every result kept by the
batch's id in a store (one SQLite file) as it arrives, so that any process
can watch the batch, collect its results or resume it after a crash, like
sheepdog's ``map`` / ``get_results`` for contest jobs.

Two backends share the store:

* **local** (the default): a pool of worker processes on this machine, each
  running :func:`sio.workers.runner.run`; ``jobs`` of them (default: the
  number of CPUs). The process that submits (or resumes) a batch runs its
  pool; if it dies, the batch is *interrupted* and :func:`resume` (or
  ``sio-batch-map --resume ID``) runs what has no result yet.
* **daemon** (``daemon="http://host:7889"``): the batch is a group of
  ``sioworkersd``, which runs it on its Celery workers whether or not the
  submitter lives; results are fetched from the daemon into the store by
  whoever watches the batch (:func:`get_results`, ``sio-batch-map``).

No job of a batch runs twice unless it was lost (its worker process or its
submitter died while it ran): a result is recorded once per item (the first
wins), items are keyed by their position, and a resumed batch runs only the
items with no result.

Settings (environment variables, read when used):

``SIO_BATCH_DB``
    the store file (default ``$XDG_DATA_HOME/sioworkers/batches.sqlite``,
    i.e. ``~/.local/share/sioworkers/batches.sqlite``); every function and
    ``sio-batch-map --db`` take another one.

A job's environ is run as :func:`sio.workers.runner.run` runs it (its keys
are in :doc:`jobs`). A job *fails* when it raises (its result environ is
then the environ sent with ``result = 'FAILURE'``, ``exception`` as
``"Type: message"`` and ``traceback``) or when it returns ``result =
'FAILURE'`` (a :class:`~sio.workers.errors.Failure`).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple, TextIO

from sio.workers._batch import store as _store
from sio.workers._batch.daemon import DaemonError, Sync, group_id_of
from sio.workers._batch.local import run_local, start_detached
from sio.workers._batch.progress import Progress
from sio.workers._batch.store import Counts, Store, UnknownBatch
from sio.workers.errors import EntryPointNotFound, SioWorkersError, UsageError
from sio.workers.util import json_dumps

__all__ = [
    "map", "map_async", "get_results", "get_errors", "get_result_environs", "resume",
    "status", "list_batches", "forget", "default_db", "BatchStatus", "BatchError",
    "BatchInterrupted", "UnknownBatch", "DaemonError", "main",
]

Environ = dict[str, Any]

#: How often a waiting :func:`get_results` looks at the store or the daemon
#: (seconds).
POLL_S = 0.2
#: How often a daemon batch is polled (seconds): each poll is one call,
#: which brings only the results that ended since the previous one
#: (get_group's since, see sio.workers._batch.daemon), so polls are cheap
#: and the last results are not kept waiting.
DAEMON_POLL_S = 0.1


class BatchInterrupted(SioWorkersError):
    """A local batch that nobody runs any more has no result for some items;
    :func:`resume` it."""


class BatchError(NamedTuple):
    """A failed job of a batch, as :func:`get_errors` lists it."""

    #: the environ as given to :func:`map_async`
    environ: Environ
    #: ``"Type: message"`` of what the job raised, or the ``exception`` of
    #: the ``FAILURE`` it returned
    exception: str
    #: the traceback text (empty when none was recorded)
    traceback: str


@dataclass(frozen=True)
class BatchStatus:
    """Where a batch stands (:func:`status`, :func:`list_batches`)."""

    id: str
    #: ``'local'`` or the daemon's URL
    backend: str
    #: ``time.time()`` when it was submitted
    created: float
    total: int
    done: int
    failed: int
    running: int
    pending: int
    #: ``'done'``: every item has a result; ``'running'``: a live process
    #: (local) or the daemon runs it; ``'interrupted'``: nothing runs it,
    #: :func:`resume` it
    state: Literal["done", "running", "interrupted"]

    @property
    def finished(self) -> int:
        return self.done + self.failed


def default_db() -> str:
    """The store file: ``$SIO_BATCH_DB``, else
    ``$XDG_DATA_HOME/sioworkers/batches.sqlite`` (``XDG_DATA_HOME``
    defaults to ``~/.local/share``)."""
    path = os.environ.get("SIO_BATCH_DB")
    if path:
        return path
    data = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local",
                                                           "share")
    return os.path.join(data, "sioworkers", "batches.sqlite")


def _open(db: str | os.PathLike[str] | None) -> Store:
    return Store(default_db() if db is None else db)


def _jobs(jobs: int | None) -> int:
    if jobs is None:
        # The CPUs this process may use (a container or taskset may allow
        # fewer than the machine has).
        return len(os.sched_getaffinity(0)) or 1
    if jobs < 1:
        raise UsageError(f"jobs must be at least 1, not {jobs}")
    return jobs


def _encode(environs: Iterable[Environ]) -> list[str]:
    texts = []
    for i, environ in enumerate(environs):
        if not isinstance(environ, dict):
            raise UsageError(f"item {i} of the batch is a {type(environ).__name__}, "
                             "not an environ dict")
        texts.append(json_dumps(environ))
    return texts


# --------------------------------------------------------------------------
# Running
# --------------------------------------------------------------------------

def _create(store: Store, texts: Sequence[str], daemon: str | None, jobs: int | None) -> str:
    """A new batch in the store (not started)."""
    if daemon is None:
        return store.create(texts, "local", {"jobs": _jobs(jobs)})
    batch_id = _store.new_batch_id()
    return store.create(texts, daemon, {}, batch_id=batch_id, group_id=group_id_of(batch_id))


#: Local batches run by threads of this process: (store path, batch id) ->
#: the thread, so that waiting for one here joins it instead of polling.
_threads: dict[tuple[str, str], threading.Thread] = {}


def _local_thread(path: str, batch_id: str, jobs: int, owner: str) -> threading.Thread:
    def target() -> None:
        try:
            with Store(path) as store:
                run_local(store, batch_id, jobs, owner=owner)
        finally:
            _threads.pop((path, batch_id), None)

    # Not a daemon thread: a program that returns from main after
    # map_async still finishes its batch before the interpreter exits.
    thread = threading.Thread(target=target, name=f"sio-batch-{batch_id}")
    _threads[path, batch_id] = thread
    thread.start()
    return thread


def map_async(environs: Iterable[Environ], *, daemon: str | None = None,
              jobs: int | None = None, db: str | os.PathLike[str] | None = None,
              detach: bool = False) -> str:
    """Start a batch of the environs and return its id at once.

    :param daemon: the URL of a ``sioworkersd`` (``http://host:7889``) to run
        the batch on; ``None`` runs it on a local pool.
    :param jobs: local mode: how many jobs run at once (default: the number
        of CPUs).
    :param db: the store file (default :func:`default_db`).
    :param detach: local mode: run the batch in a process of its own (in a
        new session, its standard error in ``batch-<id>.log`` beside the
        store), which outlives this one.

    A local batch runs in a background thread of this process (and its
    worker processes) unless ``detach``; the interpreter waits for that
    thread before it exits. A daemon batch is sent to the daemon in one
    ``run_group`` call before this returns.

    :raises UsageError: an item is not a dict.
    :raises DaemonError: the daemon cannot be reached (the batch is in the
        store, not sent: :func:`resume` sends it).
    """
    texts = _encode(environs)
    with _open(db) as store:
        batch_id = _create(store, texts, daemon, jobs)
        if daemon is None and detach:
            start_detached(store, batch_id, store.batch(batch_id).options["jobs"])
        elif daemon is None:
            owner = _store.new_owner()
            # Claimed before returning, so that the batch is never seen
            # without its runner.
            store.claim(batch_id, owner)
            _local_thread(store.path, batch_id, store.batch(batch_id).options["jobs"], owner)
        else:
            Sync(store, batch_id).submit()
    return batch_id


def map(environs: Iterable[Environ], *, daemon: str | None = None, jobs: int | None = None,
        db: str | os.PathLike[str] | None = None, verbose: bool = False) -> list[Environ | None]:
    """Run a batch and return the result environs in input order, ``None``
    for every job that failed (:func:`get_errors` says why). The batch stays
    in the store; see :func:`map_async` for the parameters."""
    if daemon is not None:
        batch_id = map_async(environs, daemon=daemon, db=db)
        pairs = get_results(batch_id, block=True, verbose=verbose, db=db)
    else:
        # The pool runs in this thread: no polling, and Ctrl-C (a
        # KeyboardInterrupt) leaves the batch interrupted, resumable.
        with _open(db) as store:
            batch_id = _create(store, _encode(environs), None, jobs)
            progress = Progress(sys.stderr) if verbose else None
            run_local(store, batch_id, store.batch(batch_id).options["jobs"],
                      on_progress=progress.update if progress else None)
            if progress is not None:
                progress.update(store.counts(batch_id), final=True)
            _wait(store, batch_id, False)  # raises if the batch was left unfinished
            # Only the results: the environs are the caller's already.
            return [_environ(result) if state == _store.DONE else None
                    for _, _, state, result, _, _ in store.items(batch_id)]
    return [result for _, result in pairs]


def resume(batch_id: str, *, jobs: int | None = None,
           db: str | os.PathLike[str] | None = None) -> None:
    """Run what has no result yet in an interrupted batch, and return when
    every item has one (local mode, in this process), or once the daemon
    holds the unfinished items again (daemon mode).

    :raises UsageError: another live process runs the (local) batch.
    """
    with _open(db) as store:
        row = store.batch(batch_id)
        if row.is_local:
            run_local(store, batch_id, _jobs(jobs if jobs is not None else row.options.get("jobs")))
        else:
            # run_group again: the daemon runs only what it does not hold.
            sync = Sync(store, batch_id)
            sync.submit()
            sync.step()


# --------------------------------------------------------------------------
# Looking at batches
# --------------------------------------------------------------------------

def _status(store: Store, row: _store.BatchRow, counts: Counts | None = None) -> BatchStatus:
    c = counts or store.counts(row.id)
    state: Literal["done", "running", "interrupted"]
    if c.complete:
        state = "done"
    elif row.is_local:
        state = "running" if _store.owner_alive(row.owner, row.heartbeat) else "interrupted"
    else:
        state = "running" if row.submitted else "interrupted"
    return BatchStatus(row.id, row.backend, row.created, c.total, c.done, c.failed, c.running,
                       c.pending, state)


def _refresh(store: Store, batch_id: str) -> dict[str, Any] | None:
    """Fetch a daemon batch's new results into the store; its group's
    struct, or ``None`` (a local batch, or nothing left in the daemon)."""
    row = store.batch(batch_id)
    if not row.is_local and row.submitted and not row.forgotten:
        return Sync(store, batch_id).step()
    return None


def status(batch_id: str, *, db: str | os.PathLike[str] | None = None) -> BatchStatus:
    """Where the batch stands (a daemon batch's new results are fetched
    first)."""
    with _open(db) as store:
        group = _refresh(store, batch_id)
        counts = store.counts(batch_id)
        if group is not None:  # the daemon knows which are queued and which run
            counts = Counts(counts.total, int(group.get("queued", counts.pending)),
                            int(group.get("running", counts.running)), counts.done, counts.failed)
        return _status(store, store.batch(batch_id), counts)


def list_batches(*, db: str | os.PathLike[str] | None = None) -> list[BatchStatus]:
    """Every batch of the store, oldest first (from the store alone: a
    daemon batch's counts are as last fetched)."""
    with _open(db) as store:
        return [_status(store, row) for row in store.batches()]


def _wait(store: Store, batch_id: str, verbose: bool, stream: TextIO | None = None) -> None:
    row = store.batch(batch_id)
    thread = _threads.get((store.path, batch_id))
    if thread is not None and not verbose:
        thread.join()  # run by this process: no need to poll
    sync = None if row.is_local else Sync(store, batch_id)
    progress = Progress(stream or sys.stderr) if verbose else None
    while True:
        running: int | None = None
        if sync is not None:
            group = sync.step()
            running = int(group.get("running", 0)) if group else 0
        counts = store.counts(batch_id)
        if running is not None:
            counts = Counts(counts.total, counts.pending, running, counts.done, counts.failed)
        if progress is not None:
            progress.update(counts, final=counts.complete)
        if counts.complete:
            return
        if sync is None:
            row = store.batch(batch_id)
            if not _store.owner_alive(row.owner, row.heartbeat):
                raise BatchInterrupted(
                    f"batch {batch_id} was interrupted with {counts.total - counts.finished} "
                    f"of {counts.total} jobs unfinished and nothing runs it: resume it with "
                    f"sio.workers.batch.resume({batch_id!r}) or sio-batch-map --resume {batch_id}")
        time.sleep(POLL_S if sync is None else DAEMON_POLL_S)


def _environ(text: str | None) -> Environ | None:
    return None if text is None else json.loads(text)


def get_results(batch_id: str, block: bool = True, verbose: bool = False, *,
                db: str | os.PathLike[str] | None = None) -> list[tuple[Environ, Environ | None]]:
    """``(environ, result)`` for every item, in input order: ``result`` is
    the result environ of a job that succeeded, ``None`` for one that failed
    or has no result yet.

    :param block: wait until every item has a result (a daemon batch's
        results are fetched from the daemon meanwhile).
    :param verbose: while waiting, show the progress on standard error
        (once a second when it is not a terminal).
    :raises UnknownBatch: no such batch in the store.
    :raises BatchInterrupted: ``block`` and a local batch that no process
        runs any more is unfinished.
    """
    with _open(db) as store:
        store.batch(batch_id)
        if block:
            _wait(store, batch_id, verbose)
        else:
            _refresh(store, batch_id)
        return [(json.loads(environ), _environ(result) if state == _store.DONE else None)
                for _, environ, state, result, _, _ in store.items(batch_id)]


def get_result_environs(batch_id: str, *,
                        db: str | os.PathLike[str] | None = None) -> list[Environ | None]:
    """The result environ of every item in input order, failed jobs' too
    (``result = 'FAILURE'``), ``None`` where there is none yet; what
    ``sio-batch-map`` prints. It does not wait."""
    with _open(db) as store:
        _refresh(store, batch_id)
        return [_environ(result) for _, _, _, result, _, _ in store.items(batch_id)]


def get_errors(batch_id: str, *,
               db: str | os.PathLike[str] | None = None) -> list[BatchError]:
    """Every failed job recorded so far, in input order, as
    :class:`BatchError` ``(environ, exception, traceback)``."""
    with _open(db) as store:
        _refresh(store, batch_id)
        return [BatchError(json.loads(environ), exc or "", tb or "")
                for _, environ, state, _, exc, tb in store.items(batch_id)
                if state == _store.FAILED]


def forget(batch_id: str, *, db: str | os.PathLike[str] | None = None) -> None:
    """Delete the batch and its results from the store (and its group from
    the daemon). Refused while a live process runs a local batch."""
    with _open(db) as store:
        row = store.batch(batch_id)
        if row.is_local and _store.owner_alive(row.owner, row.heartbeat):
            raise UsageError(f"batch {batch_id} is running; stop it before forgetting it")
        if not row.is_local and not row.forgotten:
            try:
                Sync(store, batch_id).forget()
            except DaemonError:
                pass  # the local copy goes anyway; the daemon may be long gone
        store.delete(batch_id)


# --------------------------------------------------------------------------
# sio-batch-map
# --------------------------------------------------------------------------

DESCRIPTION = """\
Run many sioworkers jobs: environs as JSON lines in (FILE, or standard
input), result environs as JSON lines out on standard output, in input
order (a failed job's with result FAILURE, exception and traceback). Every
result is kept in the store by the batch's id as it arrives.
"""

EPILOG = """\
The progress goes to standard error: a live bar on a terminal, a line a
second otherwise. --resume of a batch that a live process runs (--detach,
another terminal) follows it. Ctrl-C stops starting jobs, lets the running ones finish
and says how to resume (a second Ctrl-C kills them; they run again on
resume). A daemon batch keeps running in the daemon.

exit status: 0 every job succeeded (or --status, --errors, --list found the
batch), 1 some jobs failed, 2 usage error (a bad input line, an unknown
batch or job type, a daemon that cannot be reached), 130 interrupted.
"""

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

#: Bad input lines reported before giving up.
MAX_REPORTED = 20


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sio-batch-map", description=DESCRIPTION, epilog=EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("file", nargs="?", metavar="FILE",
                   help="JSON lines, one environ a line (default: standard input)")
    p.add_argument("--daemon", metavar="URL",
                   help="run on the sioworkersd at URL (http://host:7889) instead of locally")
    p.add_argument("-j", "--jobs", type=int, metavar="N",
                   help="local mode: jobs at once (default: the number of CPUs)")
    p.add_argument("--db", metavar="PATH",
                   help="the store (default: $SIO_BATCH_DB or "
                        "~/.local/share/sioworkers/batches.sqlite)")
    action = p.add_mutually_exclusive_group()
    action.add_argument("--resume", metavar="ID",
                        help="run what is unfinished in batch ID (or, for a daemon batch, "
                             "collect it), then print all its results")
    action.add_argument("--status", metavar="ID", help="say where batch ID stands")
    action.add_argument("--errors", metavar="ID",
                        help="print the failed jobs of batch ID as JSON lines "
                             "(index, job_type, exception, traceback)")
    action.add_argument("--list", action="store_true", help="list the batches of the store")
    p.add_argument("--detach", action="store_true",
                   help="start the batch, print its id and return: it runs in a process of "
                        "its own (local) or in the daemon; follow it with --resume ID")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress display")
    p.add_argument("--debug", action="store_true",
                   help="let an unexpected exception end the program with its traceback")
    return p


def read_environs(stream: TextIO, name: str, *, check_jobs: bool) -> list[Environ]:
    """The environs of JSON lines (blank lines skipped). Every bad line is a
    :class:`UsageError` naming its number, before anything runs; with
    ``check_jobs`` the job types must exist here (local mode)."""
    from sio.workers.runner import get_job

    environs: list[Environ] = []
    problems: list[str] = []
    known: set[str] = set()
    for number, line in enumerate(stream, 1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as e:
            problems.append(f"{name}:{number}: not valid JSON ({e})")
            continue
        if not isinstance(value, dict):
            problems.append(f"{name}:{number}: a JSON {type(value).__name__}, not an object "
                            "(one environ, such as {\"job_type\": \"ping\"}, a line)")
            continue
        job_type = value.get("job_type")
        if not isinstance(job_type, str):
            problems.append(f"{name}:{number}: no 'job_type' (a string) in the environ")
            continue
        if check_jobs and job_type not in known:
            try:
                get_job(job_type)
                known.add(job_type)
            except EntryPointNotFound as e:
                problems.append(f"{name}:{number}: {e}")
                continue
        environs.append(value)
    if problems:
        more = len(problems) - MAX_REPORTED
        text = "\n".join(problems[:MAX_REPORTED]) + (f"\n... and {more} more" if more > 0 else "")
        raise UsageError(f"bad input, nothing was run:\n{text}")
    if not environs:
        raise UsageError(f"no environs in {name}: give one JSON object a line")
    return environs


#: Rows read from the store at a time to print the results in order.
PRINT_ROWS = 500


class _Printer:
    """Prints the results in input order as they become available."""

    def __init__(self, store: Store, batch_id: str, out: TextIO) -> None:
        self.store, self.batch_id, self.out = store, batch_id, out
        self.next = 0
        self.shown = 0.0

    def flush(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self.shown < 0.1:
            return
        self.shown = now
        while True:
            lines = []
            rows = self.store.items(self.batch_id, self.next, PRINT_ROWS)
            for idx, _, state, result, _, _ in rows:
                if state not in _store.FINISHED or result is None:
                    break
                lines.append(result + "\n")
                self.next = idx + 1
            if lines:
                self.out.write("".join(lines))
                self.out.flush()
            if len(lines) < PRINT_ROWS:
                return


def _say(message: str) -> None:
    sys.stderr.write(f"sio-batch-map: {message}\n")
    sys.stderr.flush()


def _run(store: Store, batch_id: str, jobs: int | None, quiet: bool, db_hint: str) -> int:
    row = store.batch(batch_id)
    printer = _Printer(store, batch_id, sys.stdout)
    progress = None if quiet else Progress(sys.stderr)
    stop, kill = threading.Event(), threading.Event()

    def on_sigint(signum: int, frame: Any) -> None:
        # Only flags: the loops look at them, so the store is never left
        # in the middle of a write.
        if stop.is_set():
            kill.set()
        stop.set()

    def show(counts: Counts) -> None:
        printer.flush(force=counts.complete)
        if progress is not None:
            progress.update(counts, final=counts.complete)

    watching = row.is_local and _store.owner_alive(row.owner, row.heartbeat)
    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        if watching:
            # Another live process runs it (a detached one, another
            # terminal): follow it through the store.
            while not stop.is_set():
                counts = store.counts(batch_id)
                show(counts)
                row = store.batch(batch_id)
                if counts.complete or not _store.owner_alive(row.owner, row.heartbeat):
                    break
                stop.wait(POLL_S)
            counts = store.counts(batch_id)
        elif row.is_local:
            n = _jobs(jobs if jobs is not None else row.options.get("jobs"))
            counts = run_local(store, batch_id, n, stop=stop, kill=kill, on_progress=show)
        else:
            sync = Sync(store, batch_id)
            while not stop.is_set():
                group = sync.step()
                c = store.counts(batch_id)
                counts = Counts(c.total, c.pending, int(group.get("running", 0)) if group else 0,
                                c.done, c.failed)
                show(counts)
                if counts.complete:
                    break
                stop.wait(DAEMON_POLL_S)
            counts = store.counts(batch_id)
    finally:
        signal.signal(signal.SIGINT, previous)
    printer.flush(force=True)
    if progress is not None:
        progress.update(counts, final=True)
    if not counts.complete:
        row = store.batch(batch_id)
        if row.is_local and _store.owner_alive(row.owner, row.heartbeat):
            pid = row.owner.rsplit(":", 2)[1] if row.owner else "?"
            where = f"it keeps running in process {pid}; follow it"
        elif row.is_local:
            where = "resume it"
        else:
            where = "it keeps running in the daemon; collect it"
        _say(f"interrupted: {counts.finished} of {counts.total} jobs have a result; {where} "
             f"with: sio-batch-map{db_hint} --resume {batch_id}")
        return EXIT_INTERRUPTED
    if counts.failed:
        _say(f"{counts.failed} of {counts.total} jobs failed; see them with: "
             f"sio-batch-map{db_hint} --errors {batch_id}")
        return EXIT_FAILED
    return EXIT_OK


def _describe(s: BatchStatus) -> str:
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(s.created))
    return (f"{s.id}  {s.state:<11}  {s.finished}/{s.total} done, {s.failed} failed, "
            f"{s.running} running, {s.pending} pending  {when}  {s.backend}")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``sio-batch-map``; returns the exit status."""
    args = _parser().parse_args(argv)
    db = args.db or default_db()
    db_hint = f" --db {args.db}" if args.db else ""
    try:
        if args.jobs is not None:
            _jobs(args.jobs)
        action = ("--resume" if args.resume else "--status" if args.status else
                  "--errors" if args.errors else "--list" if args.list else None)
        if action and (args.file or args.daemon):
            raise UsageError(f"{action} takes no FILE or --daemon (a batch keeps its backend)")
        if action and args.detach:
            raise UsageError(f"--detach is for starting a batch, not with {action}")
        if args.daemon and args.jobs is not None:
            raise UsageError("--jobs is for local mode: the daemon's workers decide how many "
                             "jobs run at once")
        with Store(db) as store:
            if args.list:
                for s in list_batches(db=db):
                    print(_describe(s))
                return EXIT_OK
            if args.status:
                s = status(args.status, db=db)
                print(_describe(s))
                if s.state == "interrupted":
                    _say(f"resume it with: sio-batch-map{db_hint} --resume {s.id}")
                return EXIT_OK
            if args.errors:
                _refresh(store, args.errors)
                for idx, environ, state, _, exc, tb in store.items(args.errors):
                    if state == _store.FAILED:
                        print(json_dumps({"index": idx, "job_type": json.loads(environ).get(
                            "job_type"), "exception": exc, "traceback": tb}))
                return EXIT_OK
            if args.resume:
                batch_id = store.batch(args.resume).id
            else:
                if args.file in (None, "-"):
                    if sys.stdin is None or sys.stdin.isatty():
                        raise UsageError("no input: give a FILE of JSON lines or pipe them to "
                                         "standard input (see sio-batch-map --help)")
                    environs = read_environs(sys.stdin, "<stdin>", check_jobs=not args.daemon)
                else:
                    try:
                        with open(args.file, encoding="utf-8") as f:
                            environs = read_environs(f, args.file, check_jobs=not args.daemon)
                    except OSError as e:
                        raise UsageError(f"cannot read {args.file}: {e.strerror}") from None
                batch_id = _create(store, _encode(environs), args.daemon, args.jobs)
                where = (f"on sioworkersd at {args.daemon}" if args.daemon else
                         f"locally, {store.batch(batch_id).options['jobs']} at once")
                _say(f"batch {batch_id}: {len(environs)} jobs {where} (store {store.path})")
                if args.detach:
                    if args.daemon:
                        Sync(store, batch_id).submit()
                        _say("sent; collect the results with: "
                             f"sio-batch-map{db_hint} --resume {batch_id}")
                    else:
                        pid = start_detached(store, batch_id, store.batch(batch_id).options["jobs"])
                        _say(f"running in process {pid}; follow it with: "
                             f"sio-batch-map{db_hint} --resume {batch_id}")
                    print(batch_id)
                    return EXIT_OK
            try:
                return _run(store, batch_id, args.jobs, args.quiet, db_hint)
            except DaemonError as e:
                raise DaemonError(f"{e}\nthe batch is kept: send it again with "
                                  f"sio-batch-map{db_hint} --resume {batch_id}") from None
    except (UsageError, DaemonError) as e:
        _say(f"error: {e}")
        return EXIT_USAGE
    except BrokenPipeError:
        # The reader went away (sio-batch-map ... | head): say nothing more;
        # Python would complain once more when flushing stdout at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FAILED
    except Exception as e:
        if args.debug:
            raise
        _say(f"error: {type(e).__name__}: {e} (--debug shows the traceback)")
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
