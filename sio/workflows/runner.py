"""Running a whole workflow: the dataflow scheduler, objects and registers.

:func:`run_workflow` takes a parsed :class:`~sio.workflows.model.Workflow`,
a function that fetches external objects, and a working directory; it runs
every task whose inputs exist (execution tasks one at a time, scripts in
between), and returns a :class:`WorkflowResult`. Program failures are data
in the reports; a task that cannot run (set-up failure, Lua error, unset
outputs) is ``failed`` and makes the result's status ``system_error``.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sio.workers._engine.groups import PidNamespace
from sio.workflows.execution import run_execution
from sio.workflows.model import ExecutionTask, ScriptTask, Workflow, WorkflowError
from sio.workflows.scripts import ScriptFailed, run_script

__all__ = ["ObjectStore", "WorkflowResult", "run_workflow"]


class ObjectStore:
    """Objects of one run as files in ``directory`` (named by a digest of the
    handle: handles are arbitrary strings, often absolute paths)."""

    def __init__(self, directory: str) -> None:
        self.directory = directory
        os.makedirs(directory, exist_ok=True)
        self.available: set[str] = set()

    def path(self, handle: str) -> str:
        return os.path.join(self.directory,
                            hashlib.sha256(handle.encode()).hexdigest()[:32])

    def get(self, handle: str) -> str | None:
        return self.path(handle) if handle in self.available else None


@dataclass
class WorkflowResult:
    """What a run gives back (``docs/workflows.rst``, "Result")."""

    #: ``ok`` or ``system_error``
    status: str
    error: str | None
    #: the observable registers, ``None`` where unset
    registers: list[Any]
    #: handle → ``{"present", "size", "sha256", "path"}`` for each observable
    #: object (``path`` is the local file, valid until the work dir goes)
    objects: dict[str, dict[str, Any]]
    #: ``{"index", "name", "type", "state", "error", "log"}`` per task; state
    #: is ``done``, ``failed`` or ``not_run``
    tasks: list[dict[str, Any]] = field(default_factory=list)
    #: repairs made by the normalisation pass
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"status": self.status, "error": self.error, "registers": self.registers,
                "objects": {h: {k: v for k, v in o.items() if k != "path"}
                            for h, o in self.objects.items()},
                "tasks": self.tasks, "notes": self.notes}


Progress = Callable[[str, dict[str, Any]], None]


def run_workflow(wf: Workflow, *, fetch: Callable[[str, str], None], workdir: str,
                 progress: Progress | None = None,
                 exports: dict[str, dict[str, str]] | None = None) -> WorkflowResult:
    """Run ``wf``.

    :param fetch: ``fetch(handle, path)`` stores external object ``handle``
        at ``path``; raises to say it cannot (the run stops, nothing else
        runs: a missing input is the caller's error).
    :param workdir: an existing private directory for objects and tasks.
    :param progress: called as ``progress(event, task_info)`` with events
        ``start`` and ``end`` (the info has ``state`` then).
    :param exports: task name → {mount target → handle prefix}: files left
        in that writable ``empty`` mount become objects, reported with the
        observable ones (sio3pack's ingen writes tests into ``/inputs``).
    """
    exports = exports or {}
    exported: list[str] = []
    store = ObjectStore(os.path.join(workdir, "objects"))
    registers: dict[int, Any] = {}
    for handle in wf.external_objects:
        try:
            fetch(handle, store.path(handle))
        except WorkflowError:
            raise
        except Exception as e:
            raise WorkflowError(f"external object {handle!r} cannot be fetched: {e}") from e
        store.available.add(handle)
    infos: list[dict[str, Any]] = [{"index": t.index, "name": t.name,
              "type": "execution" if isinstance(t, ExecutionTask) else "script",
              "state": "not_run", "error": None, "log": []} for t in wf.tasks]
    done: set[int] = set()
    # Reactive scripts: what was available when they last ran.
    seen_inputs: dict[int, frozenset[Any]] = {}

    def emit(event: str, i: int) -> None:
        if progress is not None:
            progress(event, infos[i])

    def fail(i: int, message: str) -> None:
        infos[i]["state"] = "failed"
        infos[i]["error"] = message
        done.add(i)
        emit("end", i)

    # One network/IPC/UTS namespace (empty: loopback down) for the whole run:
    # made once, joined by every process at no cost.
    network: list[PidNamespace] = []

    def network_pid() -> int:
        if not network:
            network.append(PidNamespace(network=True))
        return network[0].init_pid

    def step() -> bool:
        """One pass over the tasks: run every ready one; False when none was."""
        progressed = False
        for t in wf.tasks:
            i = t.index
            if i in done:
                continue
            if isinstance(t, ExecutionTask):
                if not t.reads() <= store.available:
                    continue
                emit("start", i)
                report, produced = run_execution(t, store.path, workdir,
                                                 exports.get(t.name), network_pid())
                exported.extend(sorted(h for h in produced if h not in wf.observable_objects
                                       and any(h.startswith(p) for p in
                                               exports.get(t.name, {}).values())))
                store.available |= produced
                registers[t.output_register] = report
                if report["error"] is not None:
                    fail(i, report["error"])
                else:
                    infos[i]["state"] = "done"
                    infos[i]["status"] = report["status"]
                    done.add(i)
                    emit("end", i)
                progressed = True
                continue
            assert isinstance(t, ScriptTask)
            have = frozenset([("r", r) for r in t.input_registers if r in registers]
                             + [("o", h) for h in t.objects if h in store.available])
            complete = len(have) == len(set(t.input_registers)) + len(set(t.objects))
            if t.reactive:
                if not have or seen_inputs.get(i) == have:
                    continue
            elif not complete:
                continue
            seen_inputs[i] = have
            if not infos[i].get("started"):
                infos[i]["started"] = True
                emit("start", i)
            try:
                written = run_script(
                    t.script, name=t.name,
                    inputs={r: registers.get(r) for r in t.input_registers},
                    outputs=set(t.output_registers) - set(registers),
                    objects=list(t.objects), object_path=store.get, log=infos[i]["log"])
            except ScriptFailed as e:
                fail(i, str(e))
                progressed = True
                continue
            registers.update(written)
            progressed = True
            if all(r in registers for r in t.output_registers):
                infos[i]["state"] = "done"
                done.add(i)
                emit("end", i)
            elif complete:
                missing = [r for r in t.output_registers if r not in registers]
                fail(i, f"the script ended with output register(s) {missing} unset")
        return progressed

    try:
        while step():
            pass
    finally:
        for holder in network:
            holder.close()
    for info in infos:
        info.pop("started", None)
    failed = [info for info in infos if info["state"] == "failed"]
    objects: dict[str, dict[str, Any]] = {}
    for handle in list(wf.observable_objects) + exported:
        path = store.get(handle)
        if path is None or not os.path.exists(path):
            objects[handle] = {"present": False, "size": None, "sha256": None, "path": None}
            continue
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
        objects[handle] = {"present": True, "size": os.path.getsize(path),
                           "sha256": digest.hexdigest(), "path": path}
    return WorkflowResult(
        status="system_error" if failed else "ok",
        error="; ".join(f"task {f['index']} ({f['name']!r}): {f['error']}" for f in failed)
        or None,
        registers=[registers.get(r) for r in range(wf.observable_registers)],
        objects=objects, tasks=infos)
