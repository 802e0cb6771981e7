"""The rules of sioworkersd, in one place: which job types run alone, how much
RAM a job needs, what a valid group is, what a finished group looks like and
how long to wait before returning a group again.

Group environ keys read (``reference/sioworkersd.md`` §2):

``workers_jobs`` (object: name -> job environ, required)
    the jobs; every job needs a ``job_type`` (str).
``return_url`` (str, optional)
    where the finished group is POSTed; without it ``run_group`` keeps the
    group in the store until ``forget_group`` (an extension: the original
    refused such groups).
``oioioi_instance``, ``contest_id`` (JSON scalars, default ``None``)
    the contest the jobs belong to (``contest_uid``).
``contest_priority`` (int, default 0), ``contest_weight`` (int >= 1, default 1)
    scheduling between contests (:mod:`sio.sioworkersd.scheduler`).

Job environ keys read: ``job_type``, ``task_priority`` (int, default 0), and
for the RAM estimate ``exec_mem_limit``, ``check_output``,
``checker_mem_limit`` and ``<job_type>_mem_limit`` (KiB).

Keys added: ``group_id`` (``GROUP_urn:uuid:...``) on the group and its jobs,
``task_id`` (``urn:uuid:...``) and ``contest_uid`` (``[instance, contest_id]``)
on each job; ``workers_jobs.results`` (name -> result environ) and, when a job
failed or the group was rejected, ``error = {message, traceback}``.
"""

from __future__ import annotations

import uuid
from collections.abc import Container, Mapping
from typing import Any

Environ = dict[str, Any]

#: Job types that measure CPU time and therefore run alone on a worker that
#: allows it (``sio-celery-worker --can-run-cpu-exec``). The original made
#: only ``cpu-exec`` exclusive; its interactive and unsafe siblings measure CPU
#: time just the same, and a neighbour on the same cores changes their
#: verdicts.
DEFAULT_EXCLUSIVE_JOB_TYPES = frozenset(
    {"cpu-exec", "cpu-interactive-exec", "unsafe-exec", "unsafe-interactive-exec"})

#: RAM (MiB) a job of a type not ending in ``exec`` is assumed to need,
#: unless ``<job_type>_mem_limit`` (KiB) says otherwise.
DEFAULT_RAM_MB = {"ping": 1.0, "ingen": 256.0, "inwer": 256.0, "compile": 512.0}
OTHER_JOB_RAM_MB = 256.0
#: exec defaults (KiB), as the jobs themselves default them.
EXEC_MEM_LIMIT_KIB = 65536
CHECKER_MEM_LIMIT_KIB = 262144

#: ``--max-task-ram`` default (MiB): a group with a job estimated above it is
#: rejected at once.
DEFAULT_MAX_TASK_RAM_MB = 2048

#: Separator of the failed jobs' blocks in a group's ``error.message``.
ERROR_SEPARATOR = "\n" + "=" * 80 + "\n"


class GroupError(ValueError):
    """A group that cannot be accepted; the message says what and how to fix it."""


def new_group_id() -> str:
    return f"GROUP_urn:uuid:{uuid.uuid4()}"


def new_task_id() -> str:
    return f"urn:uuid:{uuid.uuid4()}"


def is_exclusive(job: Mapping[str, Any], exclusive_types: Container[str]) -> bool:
    return job.get("job_type") in exclusive_types


def required_ram_mb(job: Mapping[str, Any]) -> float:
    """The RAM (MiB) a job is assumed to need on a worker (the original's
    estimate): for ``*exec`` jobs ``exec_mem_limit``, or the checker's limit
    when ``check_output`` is set and it is larger; for others
    ``<job_type>_mem_limit`` or the type's default. Input values are KiB."""
    job_type = str(job.get("job_type", ""))
    if job_type.endswith("exec"):
        kib = float(job.get("exec_mem_limit", EXEC_MEM_LIMIT_KIB))
        if job.get("check_output"):
            kib = max(kib, float(job.get("checker_mem_limit", CHECKER_MEM_LIMIT_KIB)))
        return kib / 1024
    key = f"{job_type}_mem_limit"
    if key in job:
        return float(job[key]) / 1024
    return DEFAULT_RAM_MB.get(job_type, OTHER_JOB_RAM_MB)


def _int(value: Any, what: str, minimum: int | None = None) -> int:
    # bool is an int in Python, but never a priority.
    if not isinstance(value, int) or isinstance(value, bool):
        raise GroupError(f"{what} must be an integer, not {value!r}")
    if minimum is not None and value < minimum:
        raise GroupError(f"{what} must be at least {minimum}, not {value}")
    return value


def validate_group(env: Any) -> None:
    """Raise :class:`GroupError` unless ``env`` is a group the daemon can
    keep and schedule (checked before anything is stored, so a bad group
    never reaches the store)."""
    if not isinstance(env, dict):
        raise GroupError(f"the group must be an object (a JSON object or an XML-RPC struct), "
                         f"not {type(env).__name__}")
    jobs = env.get("workers_jobs")
    if not isinstance(jobs, dict):
        raise GroupError("the group has no 'workers_jobs' object (job name -> job environ)")
    for key in ("oioioi_instance", "contest_id"):
        # Together they name the contest (a key of the scheduler's tables).
        if not isinstance(env.get(key), (str, int, float, bool, type(None))):
            raise GroupError(f"{key} must be a string, a number or null, not {env[key]!r}")
    _int(env.get("contest_priority", 0), "contest_priority")
    _int(env.get("contest_weight", 1), "contest_weight", minimum=1)
    for name, job in jobs.items():
        if not isinstance(job, dict):
            raise GroupError(f"job {name!r} must be an object, not {type(job).__name__}")
        if not isinstance(job.get("job_type"), str):
            raise GroupError(f"job {name!r} has no 'job_type' string")
        _int(job.get("task_priority", 0), f"task_priority of job {name!r}")
        try:
            required_ram_mb(job)
        except (TypeError, ValueError):
            raise GroupError(f"job {name!r} has a memory limit that is not a number") from None
    group_id = env.get("group_id")
    if group_id is not None and not (isinstance(group_id, str) and group_id.startswith("GROUP_")):
        raise GroupError(f"group_id must be a string starting with 'GROUP_', not {group_id!r}")


def contest_uid(env: Mapping[str, Any]) -> list[Any]:
    return [env.get("oioioi_instance"), env.get("contest_id")]


def ram_rejection(env: Mapping[str, Any], max_task_ram_mb: float) -> str | None:
    """The original's message when a job needs strictly more than the cap."""
    for job in env["workers_jobs"].values():
        need = required_ram_mb(job)
        if need > max_task_ram_mb:
            return (f"One of the tasks requires {int(need)} MiB of RAM, "
                    f"exceeding the limit of {int(max_task_ram_mb)} MiB")
    return None


def prepare_group(env: Environ, group_id: str, with_contest_uid: bool = True) -> Environ:
    """Give the group its id and each job ``group_id``, a new ``task_id`` and
    (unless ``with_contest_uid`` is false: a rejected group's jobs, as the
    original) ``contest_uid``. A ``task_id`` already there is a stale copy of
    an earlier run and is replaced, as the original does."""
    env["group_id"] = group_id
    uid = contest_uid(env)
    for job in env["workers_jobs"].values():
        job["group_id"] = group_id
        job["task_id"] = new_task_id()
        if with_contest_uid:
            job["contest_uid"] = list(uid)
    return env


def finished_group(env: Mapping[str, Any], results: Mapping[str, Environ],
                   failures: Mapping[str, Mapping[str, str]]) -> Environ:
    """The environ of a finished group: every key of ``env``,
    ``workers_jobs.results`` with the jobs that succeeded, and when some
    failed ``error`` (the original's text: ``Some tasks in a group failed.``
    and one block per failed job) with each failed job's ``error`` in
    ``workers_jobs``. ``failures``: job name -> ``{message, traceback}``."""
    out = dict(env)
    jobs = {name: dict(job) for name, job in env["workers_jobs"].items()}
    for name, err in failures.items():
        if name in jobs:
            jobs[name]["error"] = dict(err)
    out["workers_jobs"] = jobs
    out["workers_jobs.results"] = {name: results[name] for name in jobs if name in results}
    if failures:
        blocks = [f"Exception: job {name!r}: {err['message']}\nRemote traceback:\n"
                  f"{err.get('traceback', '')}" for name, err in sorted(failures.items())]
        out["error"] = {"message": "Some tasks in a group failed.\n\n"
                                   + ERROR_SEPARATOR.join(blocks),
                        "traceback": ""}
    return out


def rejected_group(env: Mapping[str, Any], message: str) -> Environ:
    """A group rejected before anything ran (the RAM cap): ``error`` and no
    new results, as the original."""
    out = dict(env)
    out["error"] = {"message": message, "traceback": "NoneType: None\n"}
    return out


#: Delays between tries of returning a group: the first failure waits
#: ``first`` seconds, each further one ``factor`` times longer, never more than
#: ``longest``; there is no last try (a group is never dropped).
RETURN_DELAY_FACTOR = 10.0
DEFAULT_RETURN_FIRST_DELAY_S = 10.0
DEFAULT_RETURN_LONGEST_DELAY_S = 3600.0


def return_delay(failures: int, first: float = DEFAULT_RETURN_FIRST_DELAY_S,
                 longest: float = DEFAULT_RETURN_LONGEST_DELAY_S) -> float:
    """Seconds to wait after the ``failures``-th failed return (1, 2, ...)."""
    exponent = max(0, failures - 1)
    # Capped before raising to a power: failures grows for days.
    if first * RETURN_DELAY_FACTOR ** min(exponent, 30) >= longest:
        return longest
    return first * RETURN_DELAY_FACTOR ** exponent
