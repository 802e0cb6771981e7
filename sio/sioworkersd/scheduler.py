"""Which queued job runs on which worker: :class:`Scheduler` (no I/O, no
threads; the daemon calls it under its lock).

The order, as the original's (``reference/sioworkersd.md`` §5):

1. a higher **contest priority** first (lower ones wait, by design);
2. among contests of the highest priority with queued jobs, one drawn at
   random **weighted by contest weight** (a seeded :class:`random.Random`
   makes the draws repeatable);
3. inside the contest, a higher **task priority** first, then the older job
   (FIFO).

Workers have a concurrency (slots) and RAM (MiB); a job takes a slot and its
RAM estimate. **Exclusive** jobs (CPU-timed ones) run alone on a worker that
allows them: once chosen, an exclusive job waits in a FIFO for an empty such
worker, and each waiting exclusive job reserves the least loaded of those
workers that has RAM enough for it: a reserved worker takes no new shared
jobs, so it drains and the exclusive jobs never starve. Shared jobs prefer workers that do not allow exclusive jobs, then
partly busy ones, and among those the one whose free RAM per free slot is
closest to the job's need.

A job that no connected worker could ever hold (more RAM than any has, or
exclusive with no worker allowing it) is set aside as *unplaceable* (the
daemon reports it) and comes back to its queue when the workers change.
A shared job that fits no free worker *now* stops the round (it keeps its
place at the head), as in the original.

Cost: choosing a job is O(log n) in the contest's queue plus O(contests of
the top priority) for the weighted draw, plus O(workers) to pick a worker.
"""

from __future__ import annotations

import heapq
import random
from collections import deque
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Literal


@dataclass(eq=False)
class Job:
    """A queued or running job as the scheduler sees it."""

    task_id: str
    contest: Hashable
    task_priority: int = 0
    ram_mb: float = 0.0
    exclusive: bool = False
    #: Order among equal priorities: taken when the job is (re)queued.
    seq: int = 0


@dataclass(eq=False)
class Worker:
    name: str
    concurrency: int
    ram_mb: float
    can_run_exclusive: bool
    running: dict[str, Job] = field(default_factory=dict)
    used_ram_mb: float = 0.0

    @property
    def running_exclusive(self) -> bool:
        return any(job.exclusive for job in self.running.values())

    def free_slots(self, prefetch: int = 0) -> int:
        """Jobs it may still be sent: ``prefetch`` more than its concurrency
        (they wait in its queue), none next to an exclusive job."""
        if self.running_exclusive:
            return 0
        return max(0, self.concurrency + prefetch - len(self.running))

    def free_ram_mb(self) -> float:
        return self.ram_mb - self.used_ram_mb


@dataclass(eq=False)
class _Contest:
    uid: Hashable
    priority: int = 0
    weight: int = 1
    shared: list[tuple[int, int, str]] = field(default_factory=list)
    exclusive: list[tuple[int, int, str]] = field(default_factory=list)
    n_shared: int = 0
    n_exclusive: int = 0
    #: The priority buckets it is filed under (None: not filed).
    filed_shared: int | None = None
    filed_any: int | None = None


SHARED, ANY = "shared", "any"


class Scheduler:
    def __init__(self, seed: int | None = None, prefetch: int = 0) -> None:
        """``seed``: of the weighted draw; ``prefetch``: shared jobs a worker
        may be sent beyond its concurrency, so that the next one is already
        in its queue when one ends (Celery's prefetch, for the daemon)."""
        self._rng = random.Random(seed)
        self.prefetch = prefetch
        self._seq = 0
        self._contests: dict[Hashable, _Contest] = {}
        #: Contests with queued jobs, by kind and then priority.
        self._index: dict[str, dict[int, dict[Hashable, _Contest]]] = {SHARED: {}, ANY: {}}
        self._queued: dict[str, Job] = {}
        self._waiting: deque[Job] = deque()
        self._unplaceable: dict[str, Job] = {}
        self.workers: dict[str, Worker] = {}
        self._where: dict[str, Worker] = {}

    # -- contests and jobs -------------------------------------------------

    def set_contest(self, uid: Hashable, priority: int, weight: int) -> None:
        """The contest's priority and weight (the last group to arrive sets
        them, for its queued jobs too, as in the original)."""
        c = self._contest(uid)
        c.priority, c.weight = priority, weight
        self._refile(c)

    def _contest(self, uid: Hashable) -> _Contest:
        c = self._contests.get(uid)
        if c is None:
            c = self._contests[uid] = _Contest(uid)
        return c

    def add(self, job: Job) -> None:
        """Queue ``job`` (behind the jobs of its priority queued before)."""
        self._seq += 1
        job.seq = self._seq
        self._push(job)

    def _push(self, job: Job) -> None:
        c = self._contest(job.contest)
        self._queued[job.task_id] = job
        entry = (-job.task_priority, job.seq, job.task_id)
        if job.exclusive:
            heapq.heappush(c.exclusive, entry)
            c.n_exclusive += 1
        else:
            heapq.heappush(c.shared, entry)
            c.n_shared += 1
        self._refile(c)

    def remove(self, task_id: str) -> bool:
        """Forget a job that is queued, waiting or unplaceable; False if it
        was none of these (running or unknown)."""
        job = self._queued.pop(task_id, None)
        if job is not None:
            c = self._contests[job.contest]
            # The heap entry stays and is skipped when it comes up.
            if job.exclusive:
                c.n_exclusive -= 1
            else:
                c.n_shared -= 1
            self._refile(c)
            return True
        if self._unplaceable.pop(task_id, None) is not None:
            return True
        for job in self._waiting:
            if job.task_id == task_id:
                self._waiting.remove(job)
                return True
        return False

    def _refile(self, c: _Contest) -> None:
        want_shared = c.priority if c.n_shared else None
        want_any = c.priority if c.n_shared + c.n_exclusive else None
        for kind, attr, want in ((SHARED, "filed_shared", want_shared),
                                 (ANY, "filed_any", want_any)):
            have = getattr(c, attr)
            if have == want:
                continue
            index = self._index[kind]
            if have is not None:
                bucket = index[have]
                del bucket[c.uid]
                if not bucket:
                    del index[have]
            if want is not None:
                index.setdefault(want, {})[c.uid] = c
            setattr(c, attr, want)

    def _choose_contest(self, kind: str) -> _Contest | None:
        index = self._index[kind]
        if not index:
            return None
        bucket = index[max(index)]
        contests = list(bucket.values())
        if len(contests) == 1:
            return contests[0]
        r = self._rng.randint(1, sum(c.weight for c in contests))
        for c in contests:
            r -= c.weight
            if r <= 0:
                return c
        return contests[-1]  # not reached: the weights sum to the draw's top

    def _top(self, heap: list[tuple[int, int, str]]) -> tuple[int, int, str] | None:
        # Skips entries of removed or re-queued jobs.
        while heap:
            _, seq, task_id = heap[0]
            job = self._queued.get(task_id)
            if job is not None and job.seq == seq:
                return heap[0]
            heapq.heappop(heap)
        return None

    def _pop(self, c: _Contest, kind: str) -> Job:
        shared = self._top(c.shared)
        exclusive = self._top(c.exclusive) if kind == ANY else None
        if shared is None or (exclusive is not None and exclusive < shared):
            assert exclusive is not None
            heapq.heappop(c.exclusive)
            c.n_exclusive -= 1
            task_id = exclusive[2]
        else:
            heapq.heappop(c.shared)
            c.n_shared -= 1
            task_id = shared[2]
        self._refile(c)
        return self._queued.pop(task_id)

    # -- workers -------------------------------------------------------------

    def set_worker(self, name: str, concurrency: int, ram_mb: float,
                   can_run_exclusive: bool) -> None:
        """Add a worker, or change what it offers (its running jobs stay)."""
        w = self.workers.get(name)
        if w is None:
            self.workers[name] = Worker(name, concurrency, ram_mb, can_run_exclusive)
        elif (w.concurrency, w.ram_mb, w.can_run_exclusive) == (concurrency, ram_mb,
                                                                 can_run_exclusive):
            return
        else:
            w.concurrency, w.ram_mb, w.can_run_exclusive = concurrency, ram_mb, can_run_exclusive
        self._retry_unplaceable()

    def remove_worker(self, name: str) -> list[Job]:
        """Forget a worker; returns the jobs it was running (not queued
        again: the caller decides)."""
        w = self.workers.pop(name, None)
        if w is None:
            return []
        for task_id in w.running:
            self._where.pop(task_id, None)
        return list(w.running.values())

    def finished(self, task_id: str) -> str | None:
        """A running job ended: free its slot; returns its worker's name."""
        w = self._where.pop(task_id, None)
        if w is None:
            return None
        job = w.running.pop(task_id)
        w.used_ram_mb -= job.ram_mb
        if not w.running:
            w.used_ram_mb = 0.0  # no float drift on an empty worker
        return w.name

    def worker_of(self, task_id: str) -> str | None:
        w = self._where.get(task_id)
        return w.name if w is not None else None

    def _retry_unplaceable(self) -> None:
        jobs = sorted(self._unplaceable.values(), key=lambda j: j.seq)
        self._unplaceable.clear()
        for job in jobs:
            self._push(job)  # keeps its seq: its place in the queue

    # -- scheduling ------------------------------------------------------------

    def schedule(self) -> list[tuple[Job, str]]:
        """Assign as many queued jobs to workers as the rules allow now;
        returns the (job, worker name) pairs, already counted as running."""
        assigned: list[tuple[Job, str]] = []
        while True:
            step = self.schedule_once()
            if step is None:
                return assigned
            if isinstance(step, tuple):
                assigned.append(step)

    def schedule_once(self) -> tuple[Job, str] | Literal[True] | None:
        """One decision: a (job, worker) pair, ``True`` when a job was moved
        (to the exclusive FIFO or set aside) without an assignment, ``None``
        when nothing more can be done now."""
        capable = [w for w in self.workers.values() if w.can_run_exclusive]
        if not capable:
            self._set_aside_exclusive()
        if self._waiting:
            job = self._waiting[0]
            empty = [w for w in capable if not w.running and w.ram_mb >= job.ram_mb]
            if empty:
                self._waiting.popleft()
                return self._assign(job, min(empty, key=lambda w: (w.ram_mb, w.name)))
        # Each waiting exclusive job reserves the least loaded capable worker
        # with RAM enough for it: reserved workers take no shared jobs, so
        # they drain, and the FIFO's head gets one.
        reserved: set[str] = set()
        if self._waiting:
            order = sorted(capable, key=lambda w: (len(w.running), w.name))
            for waiting in self._waiting:
                if len(reserved) == len(order):
                    break  # every capable worker is reserved already
                for w in order:
                    if w.name not in reserved and w.ram_mb >= waiting.ram_mb:
                        reserved.add(w.name)
                        break
        usable = [w for w in self.workers.values()
                  if w.free_slots(self.prefetch) and w.name not in reserved]
        if not usable:
            return None
        kind = ANY if any(w.can_run_exclusive for w in usable) else SHARED
        c = self._choose_contest(kind)
        if c is None:
            return None
        job = self._pop(c, kind)
        if job.exclusive:
            if not any(w.ram_mb >= job.ram_mb for w in capable):
                self._unplaceable[job.task_id] = job
            else:
                self._waiting.append(job)
            return True
        fits = [w for w in usable if w.free_ram_mb() >= job.ram_mb]
        if fits:
            def fit(w: Worker) -> tuple[bool, bool, float, str]:
                per_slot = w.free_ram_mb() / w.free_slots(self.prefetch)
                return (w.can_run_exclusive, w.can_run_exclusive and not w.running,
                        abs(per_slot - job.ram_mb), w.name)
            return self._assign(job, min(fits, key=fit))
        if not any(w.ram_mb >= job.ram_mb for w in self.workers.values()):
            self._unplaceable[job.task_id] = job
            return True
        self._push(job)  # same seq: back at the head of its queue
        return None

    def _set_aside_exclusive(self) -> None:
        # No worker may run exclusive jobs: they are unplaceable, not queued.
        for c in self._contests.values():
            while c.n_exclusive:
                top = self._top(c.exclusive)
                assert top is not None
                heapq.heappop(c.exclusive)
                c.n_exclusive -= 1
                job = self._queued.pop(top[2])
                self._unplaceable[job.task_id] = job
            self._refile(c)
        while self._waiting:
            job = self._waiting.popleft()
            self._unplaceable[job.task_id] = job

    def _assign(self, job: Job, w: Worker) -> tuple[Job, str]:
        w.running[job.task_id] = job
        w.used_ram_mb += job.ram_mb
        self._where[job.task_id] = w
        return job, w.name

    # -- reporting -------------------------------------------------------------

    def queued_by_contest(self) -> dict[Hashable, int]:
        counts: dict[Hashable, int] = {}
        for job in list(self._queued.values()) + list(self._waiting):
            counts[job.contest] = counts.get(job.contest, 0) + 1
        return counts

    def unplaceable(self) -> list[Job]:
        return list(self._unplaceable.values())

    def waiting_exclusive(self) -> int:
        return len(self._waiting)

    def __len__(self) -> int:
        """Jobs not running: queued, waiting for an exclusive worker, or
        unplaceable."""
        return len(self._queued) + len(self._waiting) + len(self._unplaceable)
