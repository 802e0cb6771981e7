"""The daemon: groups in, jobs to workers, results back.

:class:`Daemon` holds the groups being judged, the scheduler and the
workers; its methods are called from the XML-RPC threads, the results
thread, the poll thread and the returning threads, each under one lock. It
writes to the store before it answers (an accepted group is durable) and
before it acknowledges a result.

Life of a job: queued in the scheduler -> sent to the worker chosen ->
result stored -> when the group's last job has ended, the group is finished
(:func:`sio.sioworkersd.policy.finished_group`) and POSTed, kept, or handed to
the ``sync_run_group`` caller. A job whose worker stops answering the polls
for ``worker_timeout_s`` is queued again (same ``task_id``), at most
``max_job_tries`` times; a job running longer than ``job_timeout_s`` fails
(the worker is told to kill it).
"""

from __future__ import annotations

import copy
import heapq
import logging
import threading
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from sio.sioworkersd import policy, returning
from sio.sioworkersd.policy import Environ, GroupError
from sio.sioworkersd.scheduler import Job, Scheduler
from sio.sioworkersd.store import Store
from sio.sioworkersd.transport import CeleryTransport, celery_id, split_celery_id

log = logging.getLogger("sioworkersd")


@dataclass
class Settings:
    """The daemon's knobs (``sioworkersd --help`` names them)."""

    max_task_ram_mb: float = policy.DEFAULT_MAX_TASK_RAM_MB
    #: A job running longer fails (the original's 3600 s).
    job_timeout_s: float = 3600.0
    #: How many times a job is run again after its worker vanished.
    max_job_tries: int = 3
    #: A worker that has not answered a poll for this long is gone.
    worker_timeout_s: float = 10.0
    poll_interval_s: float = 1.0
    return_first_delay_s: float = policy.DEFAULT_RETURN_FIRST_DELAY_S
    return_longest_delay_s: float = policy.DEFAULT_RETURN_LONGEST_DELAY_S
    return_timeout_s: float = returning.DEFAULT_RETURN_TIMEOUT_S
    return_threads: int = 4
    exclusive_job_types: frozenset[str] = policy.DEFAULT_EXCLUSIVE_JOB_TYPES
    #: Seed of the weighted contest draw (None: not repeatable).
    seed: int | None = None
    #: Shared jobs sent to a worker beyond its concurrency: they wait in its
    #: queue, so it never idles while the daemon hears of a result and
    #: sends the next job.
    prefetch: int = 1


@dataclass
class _Group:
    id: str
    kind: str  # "return" | "keep" | "sync"
    env: Environ
    names: dict[str, str]  # task_id -> job name
    results: dict[str, Environ] = field(default_factory=dict)
    failures: dict[str, dict[str, str]] = field(default_factory=dict)
    #: Names of the jobs that ended, in the order they did: a job's ``seq``
    #: (``get_group``'s ``since``) is its place here, from 1.
    order: list[str] = field(default_factory=list)
    #: Set with the finished environ for a sync_run_group caller.
    done: threading.Event = field(default_factory=threading.Event)
    final: Environ | None = None

    def pending(self) -> int:
        return len(self.names) - len(self.results) - len(self.failures)


@dataclass
class _Running:
    cid: str
    worker: str
    started: float


def _job_env(g: _Group, task_id: str) -> Environ:
    return g.env["workers_jobs"][g.names[task_id]]


class Daemon:
    def __init__(self, store: Store, transport: CeleryTransport,
                 settings: Settings | None = None) -> None:
        self.store = store
        self.transport = transport
        self.settings = settings or Settings()
        self.lock = threading.RLock()
        self.scheduler = Scheduler(self.settings.seed, self.settings.prefetch)
        self.groups: dict[str, _Group] = {}
        self.group_of: dict[str, str] = {}  # task_id -> group id
        self.tries: dict[str, int] = {}  # task_id -> runs lost with a worker
        self.attempts: dict[str, int] = {}  # task_id -> Celery sends so far
        self.running: dict[str, _Running] = {}
        #: Running jobs of forgotten groups: their results only free the slot.
        self.orphans: set[str] = set()
        #: Running jobs their worker did not list in its last polls: how many.
        self.unlisted: dict[str, int] = {}
        self.worker_info: dict[str, dict[str, Any]] = {}
        self.last_seen: dict[str, float] = {}
        self._reported_unplaceable: set[str] = set()
        # Returning: (due, group id) and the groups in flight.
        self._returns: list[tuple[float, str]] = []
        self._returning: set[str] = set()
        self._return_cv = threading.Condition(self.lock)
        self._return_pool = ThreadPoolExecutor(self.settings.return_threads,
                                               thread_name_prefix="sioworkersd-return")
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    # -- start and stop --------------------------------------------------------

    def start(self) -> None:
        """Restore the store's groups, then start the threads."""
        self.restore()
        for target, name in ((self._results_loop, "results"), (self._poll_loop, "poll"),
                             (self._return_loop, "return")):
            t = threading.Thread(target=target, name=f"sioworkersd-{name}", daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self) -> None:
        """Stop the threads; POSTs in flight finish. Nothing is lost: jobs
        still running report to the durable results queue."""
        self._stop.set()
        with self._return_cv:
            self._return_cv.notify_all()
            for g in self.groups.values():
                if g.kind == "sync":
                    g.done.set()  # its caller gets an error, not a hang
        for t in self._threads:
            t.join(30)
        self._return_pool.shutdown(wait=True)
        with self.lock:
            self.store.close()

    def restore(self) -> None:
        """Put the store's groups back: unfinished ones are judged (only the
        jobs without a result), finished ones are returned."""
        with self.lock:
            for row in self.store.groups():
                if row.state == "done":
                    if row.kind == "return":
                        self._schedule_return(row.id, time.time())
                else:
                    self._restore_judging(row.id, row.kind, row.env)
            self._kick_locked()

    def _restore_judging(self, group_id: str, kind: str, env: Environ) -> None:
        jobs = {j.task_id: j for j in self.store.jobs(group_id)}
        names = {job["task_id"]: name for name, job in env["workers_jobs"].items()}
        g = _Group(group_id, kind, env, names)
        queued = []
        ended: list[tuple[int, str]] = []
        for task_id, name in names.items():
            row = jobs.get(task_id)
            if row is not None and row.state == "done" and row.result is not None:
                g.results[name] = row.result
                ended.append((row.seq or 0, name))
            elif row is not None and row.state == "failed" and row.result is not None:
                g.failures[name] = {"message": row.result.get("message", ""),
                                    "traceback": row.result.get("traceback", "")}
                ended.append((row.seq or 0, name))
            else:
                queued.append(task_id)
                self.tries[task_id] = row.tries if row is not None else 0
        # Jobs that ended under a daemon older than seq (none stored) first.
        g.order = [name for _, name in sorted(ended)]
        log.info("restored group %s: %d jobs to run, %d finished", group_id, len(queued),
                 len(g.results) + len(g.failures))
        self._register(g, queued)

    # -- groups in -----------------------------------------------------------------

    def submit(self, env: Any, kind: str) -> _Group | str:
        """Accept a group (``kind``: ``return``, ``keep`` or ``sync``); it is
        in the store when this returns. Returns the in-memory group, or the
        group id when the group is already finished or already known.

        :raises GroupError: for a group that cannot be accepted.
        """
        if kind != "keep" and isinstance(env, dict) and "group_id" in env:
            # Any incoming value is replaced, as the original does (oioioi's
            # second round carries the first round's id): not validated.
            env = {**env, "group_id": None}
        policy.validate_group(env)
        if kind == "return" and not isinstance(env.get("return_url"), str):
            raise GroupError("return_url must be a string URL")
        env = copy.deepcopy(env)
        given = env.get("group_id") if kind == "keep" else None
        group_id = given or policy.new_group_id()
        with self.lock:
            if given and (given in self.groups or self.store.group(given) is not None):
                return given  # a batch resumed: nothing runs twice
            rejection = policy.ram_rejection(env, self.settings.max_task_ram_mb)
            policy.prepare_group(env, group_id, with_contest_uid=rejection is None)
            if rejection is not None or not env["workers_jobs"]:
                final = (policy.rejected_group(env, rejection) if rejection is not None
                         else policy.finished_group(env, {}, {}))
                if rejection is not None:
                    log.warning("group %s rejected: %s", group_id, rejection)
                g = _Group(group_id, kind, env, {}, final=final)
                if kind != "sync":
                    self.store.add_group(group_id, kind, final, [], done=True)
                    if kind == "return":
                        self._schedule_return(group_id, time.time())
                g.done.set()
                return g
            names = {job["task_id"]: name for name, job in env["workers_jobs"].items()}
            if kind != "sync":
                # Durable before the answer. A sync group is not stored: its
                # caller is gone after a restart (as in the original).
                self.store.add_group(group_id, kind, env, list(names.items()))
            g = _Group(group_id, kind, env, names)
            for task_id in names:
                self.tries[task_id] = 0
            self._register(g, list(names))
            log.info("group %s accepted (%s, %d jobs)", group_id, kind, len(names))
            self._kick_locked()
            return g

    def _register(self, g: _Group, queued: Iterable[str]) -> None:
        self.groups[g.id] = g
        self.scheduler.set_contest(tuple(policy.contest_uid(g.env)),
                                   g.env.get("contest_priority", 0), g.env.get("contest_weight", 1))
        for task_id in queued:
            self.group_of[task_id] = g.id
            self.scheduler.add(self._scheduler_job(task_id))
        if g.pending() == 0:
            self._finish(g)

    def _scheduler_job(self, task_id: str) -> Job:
        g = self.groups[self.group_of[task_id]]
        job = _job_env(g, task_id)
        return Job(task_id, tuple(policy.contest_uid(g.env)), job.get("task_priority", 0),
                   policy.required_ram_mb(job),
                   policy.is_exclusive(job, self.settings.exclusive_job_types))

    # -- dispatch --------------------------------------------------------------------

    def _kick_locked(self) -> None:
        """Schedule and send what can run now (under the lock: the sends are
        short, and a result cannot overtake its own send)."""
        assigned = self.scheduler.schedule()
        for i, (job, worker) in enumerate(assigned):
            task_id = job.task_id
            g = self.groups[self.group_of[task_id]]
            attempt = self.attempts.get(task_id, 0) + 1
            self.attempts[task_id] = attempt
            cid = celery_id(task_id, attempt)
            self.running[task_id] = _Running(cid, worker, time.monotonic())
            try:
                self.transport.send(_job_env(g, task_id), cid, worker)
            except Exception as e:
                # The broker is away: this job and the rest of the round go
                # back to the queue and wait for the next event (a poll).
                log.warning("cannot send %s to %s: %s: %s", task_id, worker, type(e).__name__, e)
                for unsent, _ in assigned[i:]:
                    self.running.pop(unsent.task_id, None)
                    self.scheduler.finished(unsent.task_id)
                    self.scheduler.add(unsent)
                break
        for job in self.scheduler.unplaceable():
            if job.task_id not in self._reported_unplaceable:
                self._reported_unplaceable.add(job.task_id)
                log.warning("job %s (%.0f MiB%s) fits no connected worker; it waits for one",
                            job.task_id, job.ram_mb, ", exclusive" if job.exclusive else "")

    # -- results -----------------------------------------------------------------------

    def on_result(self, cid: str, state: str, result: Any, traceback: str | None) -> None:
        task_id, _ = split_celery_id(cid)
        with self.lock:
            gid = self.group_of.get(task_id)
            if gid is None:
                if task_id in self.orphans:
                    self._drop_orphan(task_id)
                    self._kick_locked()
                return  # else a late duplicate of a finished job
            if state == "SUCCESS" and isinstance(result, dict):
                self._job_ended(task_id, result, None)
            else:
                if state == "SUCCESS":
                    message = f"the job returned {type(result).__name__}, not an environ"
                elif isinstance(result, dict) and "exc_type" in result:
                    args = result.get("exc_message")
                    if isinstance(args, list) and len(args) == 1:
                        args = args[0]  # the exception's one argument
                    message = f"{result.get('exc_type')}: {args}"
                else:
                    message = f"{state}: {result}"
                self._job_ended(task_id, None, {"message": message,
                                                "traceback": traceback or ""})
            self._kick_locked()

    def _job_ended(self, task_id: str, result: Environ | None,
                   failure: dict[str, str] | None) -> None:
        g = self.groups[self.group_of.pop(task_id)]
        name = g.names[task_id]
        self.running.pop(task_id, None)
        self.tries.pop(task_id, None)
        self.attempts.pop(task_id, None)
        self.unlisted.pop(task_id, None)
        self._reported_unplaceable.discard(task_id)
        if self.scheduler.finished(task_id) is None:
            self.scheduler.remove(task_id)  # queued again after a restart
        if failure is not None:
            log.warning("job %s (%s of group %s) failed: %s", task_id, name, g.id,
                        failure["message"])
            g.failures[name] = failure
            g.order.append(name)
            if g.kind != "sync":
                self.store.job_done(task_id, "failed", failure, len(g.order))
        else:
            assert result is not None
            g.results[name] = result
            g.order.append(name)
            if g.kind != "sync":
                self.store.job_done(task_id, "done", result, len(g.order))
        if g.pending() == 0:
            self._finish(g)

    def _drop_orphan(self, task_id: str) -> None:
        self.orphans.discard(task_id)
        self.running.pop(task_id, None)
        self.scheduler.finished(task_id)

    def _finish(self, g: _Group) -> None:
        g.final = policy.finished_group(g.env, g.results, g.failures)
        del self.groups[g.id]
        if g.kind != "sync":
            # A kept group's job rows (their seq) answer get_group's since.
            self.store.group_done(g.id, g.final, keep_jobs=g.kind == "keep")
            if g.kind == "return":
                self._schedule_return(g.id, time.time())
        log.info("group %s finished (%d jobs, %d failed)", g.id, len(g.names), len(g.failures))
        g.done.set()

    # -- workers and time-outs -------------------------------------------------------------

    def _poll_loop(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                # Replies later than this count as silence for this poll.
                workers = self.transport.poll_workers(
                    max(0.5, min(1.0, self.settings.poll_interval_s)))
            except Exception as e:
                log.warning("cannot poll the workers: %s: %s", type(e).__name__, e)
                workers = None
            try:
                self.on_poll(workers)
            except Exception:  # (the store failed) the next poll tries again
                log.exception("handling a poll failed")
            self._stop.wait(max(0.0, self.settings.poll_interval_s
                                - (time.monotonic() - started)))

    def on_poll(self, workers: dict[str, dict[str, Any]] | None) -> None:
        """A poll's answers (None: the broker did not answer, so nobody is
        declared gone); then time-outs of running jobs."""
        now = time.monotonic()
        with self.lock:
            for name, info in (workers or {}).items():
                if name not in self.scheduler.workers:
                    log.info("worker %s joined: %s", name, info)
                self.last_seen[name] = now
                self.worker_info[name] = info
                self.scheduler.set_worker(name, max(1, int(info.get("concurrency") or 1)),
                                          float(info.get("available_ram_mb") or 1),
                                          bool(info.get("can_run_cpu_exec")))
                self._check_listed(name, info, now)
            if workers is not None:
                for name in list(self.scheduler.workers):
                    if now - self.last_seen.get(name, now) > self.settings.worker_timeout_s:
                        self._worker_gone(name, f"no answer for {self.settings.worker_timeout_s} s")
            for task_id, r in list(self.running.items()):
                if now - r.started > self.settings.job_timeout_s:
                    self.transport.revoke(r.cid)
                    if task_id in self.orphans:
                        self._drop_orphan(task_id)
                        continue
                    self._job_ended(task_id, None, {
                        "message": f"TimeoutError: the job ran longer than "
                                   f"{self.settings.job_timeout_s:g} s on {r.worker}",
                        "traceback": ""})
            self._kick_locked()

    def _check_listed(self, name: str, info: dict[str, Any], now: float) -> None:
        """A job sent to a worker that does not hold it in two polls in a row,
        while the worker has a free process (so it would have taken it from
        its queue), was lost (the worker restarted under the same name
        between two polls) and runs again. Jobs sent less than a poll ago may not
        have arrived yet; a job that has just ended has published its result
        before the worker forgets it, so at worst it runs twice."""
        w = self.scheduler.workers.get(name)
        if w is None or "active" not in info:
            return
        held = set(info["active"])
        if len(held) >= w.concurrency:
            return  # jobs beyond its concurrency may wait in its queue, unheld
        grace = 2 * self.settings.poll_interval_s + 0.5
        for task_id in list(w.running):
            r = self.running.get(task_id)
            if r is None or r.cid in held or now - r.started < grace:
                self.unlisted.pop(task_id, None)
                continue
            self.unlisted[task_id] = self.unlisted.get(task_id, 0) + 1
            if self.unlisted[task_id] >= 2:
                self.scheduler.finished(task_id)
                self.running.pop(task_id, None)
                self._job_lost(None, task_id, name, "its worker does not hold it")

    def _worker_gone(self, name: str, why: str, count_tries: bool = True) -> None:
        w = self.scheduler.workers.get(name)
        concurrency = w.concurrency if w is not None else 0
        jobs = self.scheduler.remove_worker(name)
        self.worker_info.pop(name, None)
        self.last_seen.pop(name, None)
        log.warning("worker %s is gone (%s); its %d jobs run again elsewhere", name, why,
                    len(jobs))
        # Its queue is FIFO: the oldest `concurrency` jobs sent were running,
        # the others (prefetched) were waiting and are not to blame.
        never = float("inf")
        jobs.sort(key=lambda j: self.running[j.task_id].started if j.task_id in self.running
                  else never)
        for i, job in enumerate(jobs):
            self.running.pop(job.task_id, None)
            self._job_lost(job, job.task_id, name, "its worker vanished",
                           count_tries and i < concurrency)

    def _job_lost(self, job: Job | None, task_id: str, worker: str, why: str,
                  count_tries: bool = True) -> None:
        """Queue a job again after it was lost with ``worker`` (the same
        ``task_id``), or fail it once it has been lost more than
        ``max_job_tries`` times (a poison job must not loop)."""
        self.unlisted.pop(task_id, None)
        if task_id in self.orphans:
            self.orphans.discard(task_id)
            return
        tries = self.tries.get(task_id, 0) + (1 if count_tries else 0)
        self.tries[task_id] = tries
        if tries > self.settings.max_job_tries:
            self._job_ended(task_id, None, {
                "message": f"the job was lost {tries} times, the last time on {worker} "
                           f"({why}); not run again (--max-job-tries "
                           f"{self.settings.max_job_tries})",
                "traceback": ""})
            return
        if self.groups[self.group_of[task_id]].kind != "sync":
            self.store.job_tries(task_id, tries)
        log.warning("job %s runs again (%s: %s; try %d)", task_id, worker, why, tries + 1)
        self.scheduler.add(job if job is not None else self._scheduler_job(task_id))

    def forget_worker(self, name: str) -> bool:
        """Drop a worker from the list; its jobs run again elsewhere (without
        counting towards the poison limit). A worker that is still alive comes
        back at its next answer to a poll."""
        with self.lock:
            if name not in self.scheduler.workers:
                return False
            self._worker_gone(name, "forgotten by forget_worker", count_tries=False)
            self._kick_locked()
            return True

    # -- returning ----------------------------------------------------------------------------

    def _schedule_return(self, group_id: str, due: float) -> None:
        heapq.heappush(self._returns, (due, group_id))
        self._return_cv.notify_all()

    def _return_loop(self) -> None:
        with self._return_cv:
            while not self._stop.is_set():
                now = time.time()
                while self._returns and self._returns[0][0] <= now:
                    _, gid = heapq.heappop(self._returns)
                    if gid not in self._returning:
                        self._returning.add(gid)
                        self._return_pool.submit(self._return_one, gid)
                timeout = (self._returns[0][0] - now) if self._returns else None
                self._return_cv.wait(timeout if timeout is None else max(0.01, timeout))

    def _return_one(self, group_id: str) -> None:
        try:
            self._try_return(group_id)
        except Exception:
            # (the store failed): try again later rather than forget it.
            log.exception("returning %s failed", group_id)
            with self.lock:
                self._returning.discard(group_id)
                self._schedule_return(group_id, time.time() + self.settings.return_longest_delay_s)

    def _try_return(self, group_id: str) -> None:
        with self.lock:
            row = self.store.group(group_id)
        if row is None or row.state != "done":
            with self.lock:
                self._returning.discard(group_id)
            return
        try:
            returning.post(row.env["return_url"], row.env, self.settings.return_timeout_s)
        except returning.ReturnError as e:
            with self.lock:
                self._returning.discard(group_id)
                tries = row.tries + 1
                delay = policy.return_delay(tries, self.settings.return_first_delay_s,
                                            self.settings.return_longest_delay_s)
                log.warning("returning %s failed (try %d): %s; next try in %g s", group_id,
                            tries, e, delay)
                self._schedule_return(group_id, time.time() + delay)
                self.store.return_failed(group_id, tries, time.time() + delay, str(e))
            return
        with self.lock:
            self._returning.discard(group_id)
            self.store.delete_group(group_id)
        log.info("group %s returned to %s", group_id, row.env["return_url"])

    # -- the results thread ------------------------------------------------------------------

    def _results_loop(self) -> None:
        self.transport.consume_results(self.on_result, self._stop)

    # -- reading ---------------------------------------------------------------------------------

    def workers(self) -> list[dict[str, Any]]:
        """``get_workers``: the fields oioioi's admin page reads."""
        with self.lock:
            out = []
            for name, w in self.scheduler.workers.items():
                info = dict(self.worker_info.get(name, {}))
                info.update(name=name, concurrency=w.concurrency,
                            available_ram_mb=int(w.ram_mb), can_run_cpu_exec=w.can_run_exclusive)
                out.append({"name": name, "info": info, "tasks": sorted(w.running),
                            "is_running_cpu_exec": w.running_exclusive})
            return out

    def queue_summary(self) -> str:
        """``get_queue``: queued jobs per contest, running jobs, unplaceable
        jobs, groups waiting to be returned."""
        with self.lock:
            lines = [f"workers: {len(self.scheduler.workers)}; running jobs: {len(self.running)}; "
                     f"queued jobs: {len(self.scheduler)} "
                     f"(waiting for an exclusive worker: {self.scheduler.waiting_exclusive()})"]
            for contest, n in sorted(self.scheduler.queued_by_contest().items(), key=str):
                shown = list(contest) if isinstance(contest, tuple) else contest
                lines.append(f"  queued for contest {shown}: {n}")
            for job in self.scheduler.unplaceable():
                lines.append(f"  fits no connected worker: {job.task_id} ({job.ram_mb:.0f} MiB"
                             f"{', exclusive' if job.exclusive else ''})")
            pending = self.store.groups(kind="return", state="done")
            lines.append(f"groups waiting to be returned: {len(pending)}")
            for row in pending:
                if row.tries:
                    lines.append(f"  {row.id} to {row.env.get('return_url')}: {row.tries} "
                                 f"failed tries, last: {row.last_error}")
            return "\n".join(lines)

    def group_status(self, group_id: str, include_results: bool,
                     since: int | None = None) -> dict[str, Any]:
        """``get_group``: with ``since`` (a ``cursor`` of an earlier
        answer), ``results`` holds only the jobs that ended after it.
        :raises KeyError: unknown id."""
        with self.lock:
            g = self.groups.get(group_id)
            if g is not None:
                running = sum(1 for t in g.names if t in self.running)
                ended = len(g.results) + len(g.failures)
                status: dict[str, Any] = {
                    "group_id": g.id, "state": "running" if running or ended else "queued",
                    "total": len(g.names), "queued": len(g.names) - running - ended,
                    "running": running, "finished": ended, "failed": len(g.failures),
                    "cursor": len(g.order)}
                if include_results:
                    if since is None:
                        status["results"] = self._results(g.env, g.results, g.failures)
                    else:
                        new = g.order[max(0, since):]
                        status["results"] = self._results(
                            g.env, {n: g.results[n] for n in new if n in g.results},
                            {n: g.failures[n] for n in new if n in g.failures})
                return status
            row = self.store.group(group_id)
            # A finished kept group's job rows remember the order (seq).
            names = (self.store.ended_since(group_id, since)
                     if include_results and since is not None and row is not None else None)
        if row is None:
            raise KeyError(group_id)
        env = row.env
        jobs = env.get("workers_jobs", {})
        if row.state != "done":  # (only between the store and memory: not reached)
            raise KeyError(group_id)
        if "error" in env and "workers_jobs.results" not in env:
            failed = {name: env["error"] for name in jobs}  # rejected as a whole
        else:
            failed = {name: job["error"] for name, job in jobs.items() if "error" in job}
        results = env.get("workers_jobs.results") or {}
        status = {"group_id": row.id, "state": "done", "total": len(jobs), "queued": 0,
                  "running": 0, "finished": len(jobs), "failed": len(failed),
                  "cursor": len(jobs)}
        if include_results:
            if since is not None and since >= len(jobs):
                results, failed = {}, {}
            elif since is not None and names:
                after = set(names)
                results = {n: r for n, r in results.items() if n in after}
                failed = {n: f for n, f in failed.items() if n in after}
            # else no order is known (a group finished by an older daemon, or
            # rejected as a whole): every result, which includes the new ones.
            status["results"] = self._results(env, results, failed)
        return status

    @staticmethod
    def _results(env: Environ, results: dict[str, Environ],
                 failures: dict[str, dict[str, str]]) -> dict[str, Environ]:
        out = dict(results)
        for name, err in failures.items():
            job = dict(env["workers_jobs"][name])
            job["error"] = dict(err)
            out[name] = job
        return out

    def list_groups(self) -> list[dict[str, Any]]:
        with self.lock:
            ids = [row.id for row in self.store.groups() if row.kind == "keep"]
            return [self.group_status(gid, False) for gid in ids]

    def forget_group(self, group_id: str) -> bool:
        """Drop a kept group; one still being judged stops: its queued jobs
        are dropped, running ones keep their worker's slot until they end
        (their results are then ignored). :raises KeyError: unknown."""
        with self.lock:
            g = self.groups.pop(group_id, None)
            if g is not None:
                for task_id in g.names:
                    if self.group_of.pop(task_id, None) is not None:
                        if task_id in self.running:
                            self.orphans.add(task_id)
                        else:
                            self.scheduler.remove(task_id)
            if not self.store.delete_group(group_id) and g is None:
                raise KeyError(group_id)
            self._kick_locked()
            return True
