"""The local pool: worker processes running :func:`sio.workers.runner.run`.

:func:`run_local` runs the unfinished items of a batch of the store on
``jobs`` worker processes (:mod:`.worker`) and records the results in the
store as they arrive. A worker is forked from this process when it runs a
single thread (no interpreter to start, the modules and entry points loaded
here come along); from a multi-threaded process (``map_async`` runs the
pool in a thread) it is a fresh interpreter started with ``python -m``, as
forking a process whose other threads may hold locks is not safe.

Each worker gets a few jobs ahead through its standard input, so that it
never waits for the parent between two short jobs; how many depends on how
long its jobs take (:func:`_depth`). A worker that dies fails the job it
was running (the first unanswered one: a worker runs its jobs in order) and
gives the rest back; a new worker takes its place.
"""

from __future__ import annotations

import json
import os
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import BinaryIO

from sio.workers._batch.store import HEARTBEAT_S, PENDING, Counts, Outcome, Store, new_owner
from sio.workers.errors import SioWorkersError

#: Aim: this many seconds of work queued ahead in each worker.
QUEUE_AHEAD_S = 0.05
#: At most this many jobs queued in one worker (and at least 2: one running,
#: one waiting, so that the worker never waits for the parent). Jobs of
#: ~0.1 ms need a few hundred: with 64 a worker ran out of work between the
#: parent's refills (the answers of a bunch come back together, see .worker).
MAX_DEPTH = 256
#: Worker processes that may die outside any job (at start, between jobs)
#: before the batch gives up instead of starting more.
MAX_IDLE_DEATHS = 5
#: The parent wakes up at least this often (seconds): stop requests, heartbeat.
TICK_S = 0.2

ProgressCallback = Callable[[Counts], None]


class _Forked:
    """A worker forked from this process: the little of
    :class:`subprocess.Popen` the pool uses (``pid``, ``stdin``, ``stdout``,
    ``poll``, ``wait``, ``send_signal``)."""

    def __init__(self, tmp: str) -> None:
        # Buffered output would be written twice: by the parent and by the
        # child's copy (the child ends with os._exit, which flushes nothing,
        # but a job may flush sys.stderr).
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (AttributeError, OSError, ValueError):
                pass
        jobs_r, jobs_w = os.pipe()
        answers_r, answers_w = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: never returns
            code = 1
            try:
                # Its own process group, as the spawned worker's: Ctrl-C on
                # the terminal reaches only the parent.
                os.setpgid(0, 0)
                os.dup2(jobs_r, 0)
                os.dup2(answers_w, 1)
                # Every other descriptor goes: the other workers' pipes (a
                # worker holding a sibling's job pipe open would keep that
                # sibling from ever seeing the end of its input), the
                # parent's store connection (used only by the parent).
                os.closerange(3, os.sysconf("SC_OPEN_MAX") if hasattr(os, "sysconf") else 65536)
                # As in a fresh interpreter (which also ignores SIGPIPE, so
                # that answering a dead parent is an error, not a death).
                for signum in (signal.SIGTERM, signal.SIGHUP):
                    signal.signal(signum, signal.SIG_DFL)
                signal.signal(signal.SIGPIPE, signal.SIG_IGN)
                from sio.workers._batch import worker
                worker.main(tmp)
                code = 0
            except BaseException:
                try:
                    import traceback
                    traceback.print_exc()
                except BaseException:
                    pass
            finally:
                # No atexit handlers, finalizers or buffers of the parent's
                # (its store connection, its temporary files) run here.
                os._exit(code)
        os.close(jobs_r)
        os.close(answers_w)
        self.pid = pid
        self.returncode: int | None = None
        self.stdin: BinaryIO | None = open(jobs_w, "wb")
        self.stdout: BinaryIO | None = open(answers_r, "rb", buffering=0)

    def poll(self) -> int | None:
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self) -> int:
        if self.returncode is None:
            _, status = os.waitpid(self.pid, 0)
            self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def send_signal(self, signum: int) -> None:
        if self.returncode is None:
            os.kill(self.pid, signum)


@dataclass
class _Worker:
    proc: subprocess.Popen[bytes] | _Forked
    tmp: str  # its jobs' temporary directories go in there
    sent: deque[int] = field(default_factory=deque)  # idxs sent, not yet answered
    buffer: bytes = b""
    busy_since: float = 0.0  # when the job at the head of 'sent' started
    mean_s: float | None = None  # moving mean of its jobs' durations

    def depth(self) -> int:
        if self.mean_s is None:
            return 2
        return max(2, min(MAX_DEPTH, int(QUEUE_AHEAD_S / max(self.mean_s, 1e-6))))


def _may_fork() -> bool:
    """Whether workers can be forked from this process: only while it runs
    one thread. A fork copies one thread only, and locks the others held
    (logging's, the import lock, allocators') would stay held for ever in
    the child; a batch run from a thread (``map_async``) or by a
    multi-threaded program starts fresh interpreters instead."""
    return hasattr(os, "fork") and threading.active_count() == 1


def _start_worker() -> _Worker:
    # Forked when it is safe: no interpreter to start (~50 ms each, the
    # bulk of a batch of short jobs), and the parent's loaded modules and
    # entry-point cache come along (copy-on-write).
    # A folder of its own for its jobs' temporary directories: every job
    # makes and removes one (TemporaryCwd), and two workers doing so in one
    # folder contend for its lock, which doubled the system time of short
    # jobs. Removed here once the worker is gone, whatever killed it.
    tmp = tempfile.mkdtemp(prefix="sio-batch-worker-")
    proc: subprocess.Popen[bytes] | _Forked
    if _may_fork():
        proc = _Forked(tmp)
    else:
        proc = subprocess.Popen(
            [sys.executable, "-m", "sio.workers._batch.worker", tmp],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            # Its own process group: Ctrl-C on the terminal reaches only the
            # parent, which decides what the workers do.
            process_group=0)
    assert proc.stdout is not None
    os.set_blocking(proc.stdout.fileno(), False)
    return _Worker(proc, tmp, busy_since=time.monotonic())


def _close_input(w: _Worker) -> None:
    if w.proc.stdin is not None and not w.proc.stdin.closed:
        try:
            w.proc.stdin.close()
        except BrokenPipeError:
            pass


def _died(proc: subprocess.Popen[bytes] | _Forked) -> str:
    code = proc.wait()
    how = f"was killed by signal {-code}" if code < 0 else f"exited with status {code}"
    return f"the worker process running this job {how}"


def _failed_outcome(idx: int, environ: str, message: str) -> Outcome:
    result = json.loads(environ)
    result.update(result="FAILURE", exception=message, traceback="")
    return Outcome(idx, True, json.dumps(result), message, "")


def _parse(line: bytes) -> Outcome:
    idx, kind, payload = line.decode("utf-8").split("\t", 2)
    if kind == "done":
        return Outcome(int(idx), False, payload)
    result, message, tb = json.loads(payload)
    return Outcome(int(idx), True, json.dumps(result), message, tb)


def run_local(store: Store, batch_id: str, jobs: int, *, owner: str | None = None,
              stop: threading.Event | None = None, kill: threading.Event | None = None,
              on_progress: ProgressCallback | None = None) -> Counts:
    """Run the unfinished items of ``batch_id`` on ``jobs`` processes.

    Returns when every item has a result, or, once ``stop`` is set, when
    the jobs already running have finished (workers are asked to start no
    more; unstarted items stay pending, so the batch can be resumed). Once
    ``kill`` is set the workers are killed at once (their jobs stay
    pending). ``on_progress`` gets the counts after every change and at
    least every :data:`TICK_S`.

    ``owner``: the caller claimed the batch already as this owner
    (:meth:`Store.claim`); by default it is claimed here.

    :raises UsageError: another live process runs the batch.
    """
    if owner is None:
        owner = new_owner()
        store.claim(batch_id, owner)
    try:
        return _run(store, batch_id, owner, max(1, jobs), stop or threading.Event(),
                    kill or threading.Event(), on_progress)
    finally:
        # Whatever happened, the items still out are pending again and the
        # batch is free to resume.
        store.release(batch_id, owner)


def _run(store: Store, batch_id: str, owner: str, jobs: int, stop: threading.Event,
         kill: threading.Event, on_progress: ProgressCallback | None) -> Counts:
    todo = deque(store.unfinished(batch_id))
    environs = dict(todo)
    start = store.counts(batch_id)
    done, failed = start.done, start.failed
    workers: list[_Worker] = []
    selector = selectors.DefaultSelector()
    stopping = False
    deaths = 0
    last_beat = time.monotonic()

    def add_worker() -> None:
        w = _start_worker()
        assert w.proc.stdout is not None
        selector.register(w.proc.stdout, selectors.EVENT_READ, w)
        workers.append(w)

    def retire(w: _Worker) -> None:
        assert w.proc.stdout is not None
        selector.unregister(w.proc.stdout)
        w.proc.stdout.close()
        _close_input(w)
        workers.remove(w)

    try:
        for _ in range(min(jobs, len(todo))):
            add_worker()
        while workers:
            started: list[int] = []
            outcomes: list[Outcome] = []
            given_back: list[int] = []
            if kill.is_set():
                break
            if stop.is_set() and not stopping:
                stopping = True
                for w in workers:
                    # Finish the running job, start no other (see .worker);
                    # an idle worker ends at the end of its input.
                    w.proc.send_signal(signal.SIGUSR1)
                    _close_input(w)
            if not stopping:
                for w in workers:
                    if w.proc.stdin is None or w.proc.stdin.closed:
                        continue
                    lines = []
                    while todo and len(w.sent) < w.depth():
                        idx, environ = todo.popleft()
                        if not w.sent:
                            w.busy_since = time.monotonic()
                        w.sent.append(idx)
                        started.append(idx)
                        lines.append(f"{idx}\t{environ}\n")
                    try:
                        if lines:
                            w.proc.stdin.write("".join(lines).encode("utf-8"))
                            w.proc.stdin.flush()
                        if not todo and not w.sent:
                            w.proc.stdin.close()  # nothing left: let it end
                    except BrokenPipeError:
                        pass  # it died; its end of output says so below
            for key, _ in selector.select(TICK_S):
                w = key.data
                chunk = os.read(key.fd, 1 << 16)
                if chunk:
                    *lines_in, w.buffer = (w.buffer + chunk).split(b"\n")
                    for line in lines_in:
                        outcome = _parse(line)
                        outcomes.append(outcome)
                        if outcome.idx in w.sent:
                            w.sent.remove(outcome.idx)
                    if lines_in:
                        # Short jobs' answers come in bunches (see .worker):
                        # the time since the last bunch is theirs together.
                        now = time.monotonic()
                        took = (now - w.busy_since) / len(lines_in)
                        w.mean_s = took if w.mean_s is None else 0.5 * w.mean_s + 0.5 * took
                        w.busy_since = now
                    if not todo and not w.sent:
                        _close_input(w)
                    continue
                # End of its output: the worker is gone.
                retire(w)
                if w.sent and not stopping:
                    head = w.sent.popleft()
                    outcomes.append(_failed_outcome(head, environs[head], _died(w.proc)))
                elif not stopping and not w.proc.wait() == 0:
                    deaths += 1  # died between jobs: no job to blame
                    if deaths > MAX_IDLE_DEATHS:
                        raise SioWorkersError(
                            f"worker processes ({sys.executable} -m sio.workers._batch.worker) "
                            f"keep dying outside jobs ({_died(w.proc)}); see their standard "
                            "error above")
                todo.extendleft(reversed([(i, environs[i]) for i in w.sent]))
                given_back += w.sent
                w.sent.clear()
                w.proc.wait()
                shutil.rmtree(w.tmp, ignore_errors=True)
                if not stopping and todo and len(workers) < min(jobs, len(todo)):
                    add_worker()
            if outcomes or started:
                new_done, new_failed = store.record(batch_id, outcomes, started)
                done += new_done
                failed += new_failed
            if given_back:
                # After the record above, which may have marked them running.
                store.mark(batch_id, given_back, PENDING)
            if time.monotonic() - last_beat > HEARTBEAT_S:
                store.heartbeat(batch_id, owner)
                last_beat = time.monotonic()
            if on_progress is not None:
                running = sum(len(w.sent) for w in workers)
                on_progress(Counts(start.total, len(todo), running, done, failed))
    finally:
        for w in list(workers):
            if w.proc.poll() is None:
                try:
                    os.killpg(w.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            retire(w)
            w.proc.wait()
            shutil.rmtree(w.tmp, ignore_errors=True)
        selector.close()
    return store.counts(batch_id)


def start_detached(store: Store, batch_id: str, jobs: int) -> int:
    """Run the batch in a process of its own, in a new session, which
    outlives this one; returns its pid. Its standard error (job logs) goes
    to ``batch-<id>.log`` beside the store."""
    log_path = os.path.join(os.path.dirname(store.path), f"batch-{batch_id}.log")
    token = uuid.uuid4().hex[:8]
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "sio.workers._batch.local", store.path, batch_id, str(jobs),
             token],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log,
            start_new_session=True)
    # Claimed here too (the same owner as the child's), so that nobody sees
    # the batch unowned between this return and the child's start.
    store.claim(batch_id, new_owner(proc.pid, token))
    return proc.pid


def _detached_main(argv: list[str]) -> None:
    path, batch_id, jobs, token = argv
    owner = new_owner(token=token)
    with Store(path) as store:
        store.claim(batch_id, owner)
        run_local(store, batch_id, int(jobs), owner=owner)


if __name__ == "__main__":
    _detached_main(sys.argv[1:])
