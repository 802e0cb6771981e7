"""The workflow format as this project reads it, and its parser.

:func:`parse` turns workflow JSON (as ``sio3pack`` 1.0.0.dev5 writes it with
``to_json(to_int_regs=True)``, after :func:`sio.workflows.normalise.normalise`)
into frozen records, and checks everything that must hold before anything
runs (see ``docs/workflows.rst``). Every error is a :class:`WorkflowError`
naming the task, process and field.

Numbers: every numeric field accepts a JSON int or a float with an integral
value (sio3pack writes ``1000000000.0``); ``cpu_usage_limit`` accepts any
number. Booleans are never accepted as numbers.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

from sio.workers.errors import UsageError

__all__ = ["WorkflowError", "Stream", "Process", "Channel", "Filesystem", "Mountpoint",
           "MountNamespace", "ResourceGroupSpec", "ExecutionTask", "ScriptTask", "Task",
           "Workflow", "parse", "FILE_MODES"]


class WorkflowError(UsageError):
    """A malformed workflow (a user error): nothing was run."""


#: ``file`` stream modes and their open flags (names of :mod:`os` constants).
FILE_MODES: dict[str, tuple[str, ...]] = {
    "read": ("O_RDONLY",),
    "read_write": ("O_RDWR", "O_CREAT"),
    "read_write_append": ("O_RDWR", "O_APPEND", "O_CREAT"),
    "read_write_truncate": ("O_RDWR", "O_TRUNC", "O_CREAT"),
    "write": ("O_WRONLY", "O_CREAT"),
    "write_append": ("O_WRONLY", "O_APPEND", "O_CREAT"),
    "write_truncate": ("O_WRONLY", "O_TRUNC", "O_CREAT"),
}

StreamType = Literal["file", "null", "object_read", "object_write", "pipe_read", "pipe_write"]


@dataclass(frozen=True)
class Stream:
    type: StreamType
    filesystem: int | None = None
    path: str | None = None
    mode: str | None = None
    handle: str | None = None
    pipe: int | None = None


@dataclass(frozen=True)
class Process:
    arguments: tuple[str, ...]
    environment: tuple[tuple[str, str], ...]
    image: str
    mount_namespace: int
    resource_group: int
    pid_namespace: int
    working_directory: str
    descriptors: tuple[tuple[int, Stream], ...]
    start_after: tuple[int, ...] = ()


@dataclass(frozen=True)
class Channel:
    buffer_size: int
    source_pipe: int
    target_pipe: int
    file_buffer_size: int | None = None
    limit: int | None = None


@dataclass(frozen=True)
class Filesystem:
    type: Literal["image", "empty", "object"]
    image: str | None = None
    path: str = ""
    handle: str | None = None


@dataclass(frozen=True)
class Mountpoint:
    source: int
    target: str
    writable: bool
    capacity: int | None = None


@dataclass(frozen=True)
class MountNamespace:
    mountpoints: tuple[Mountpoint, ...]
    root: int = 0


@dataclass(frozen=True)
class ResourceGroupSpec:
    """Limits shared by the processes of a group. Units: ms, bytes, % of one CPU."""

    cpu_usage_limit: float
    instruction_limit: int
    memory_limit: int
    oom_terminate_all_tasks: bool
    pid_limit: int
    swap_limit: int
    time_limit: int


@dataclass(frozen=True)
class ExecutionTask:
    index: int
    name: str
    exclusive: bool
    hard_time_limit: int
    output_register: int
    pid_namespaces: int
    pipes: int
    channels: tuple[Channel, ...]
    filesystems: tuple[Filesystem, ...]
    mount_namespaces: tuple[MountNamespace, ...]
    resource_groups: tuple[ResourceGroupSpec, ...]
    processes: tuple[Process, ...]

    def _objects(self, stream: str, writable: bool) -> set[str]:
        """Handles of ``stream`` descriptors and of object mounts that are
        (or are not) ``writable``."""
        out: set[str] = set()
        for p in self.processes:
            for _, s in p.descriptors:
                if s.type == stream and s.handle is not None:
                    out.add(s.handle)
        for ns in self.mount_namespaces:
            for mp in ns.mountpoints:
                fs = self.filesystems[mp.source]
                if fs.type == "object" and mp.writable == writable and fs.handle is not None:
                    out.add(fs.handle)
        return out

    def reads(self) -> set[str]:
        """Objects that must exist before the task starts: ``object_read``
        descriptors and read-only object mounts, except those a process of
        this task produces (encoder/decoder: the decoder reads what the
        encoder wrote, after ``start_after``)."""
        return self._objects("object_read", False) - self.writes()

    def writes(self) -> set[str]:
        """Objects the task produces: ``object_write`` descriptors and
        writable object mounts."""
        return self._objects("object_write", True)


@dataclass(frozen=True)
class ScriptTask:
    index: int
    name: str
    reactive: bool
    input_registers: tuple[int, ...]
    output_registers: tuple[int, ...]
    objects: tuple[str, ...]
    script: str

    def reads(self) -> set[str]:
        return set(self.objects)

    def writes(self) -> set[str]:
        return set()


Task = ExecutionTask | ScriptTask


@dataclass(frozen=True)
class Workflow:
    name: str
    external_objects: tuple[str, ...]
    observable_objects: tuple[str, ...]
    observable_registers: int
    registers: int
    tasks: tuple[Task, ...] = field(default_factory=tuple)


# --------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------

class _At:
    """Reads typed fields of one JSON object; errors say where."""

    def __init__(self, data: Any, where: str) -> None:
        if not isinstance(data, dict):
            raise WorkflowError(f"{where}: expected a JSON object, got {type(data).__name__}")
        self.data = data
        self.where = where

    def fail(self, key: str, message: str) -> WorkflowError:
        return WorkflowError(f"{self.where}, field {key!r}: {message}")

    def has(self, key: str) -> bool:
        return key in self.data and self.data[key] is not None

    def raw(self, key: str) -> Any:
        if key not in self.data:
            raise self.fail(key, "missing")
        return self.data[key]

    def get_int(self, key: str, default: int | None = None, minimum: int | None = 0) -> int:
        if default is not None and not self.has(key):
            return default
        value = self.raw(key)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.fail(key, f"expected an integer, got {value!r}")
        if isinstance(value, float):
            if not value.is_integer():
                raise self.fail(key, f"expected an integer, got {value!r}")
            value = int(value)
        if minimum is not None and value < minimum:
            raise self.fail(key, f"must be at least {minimum}, got {value}")
        return value

    def number(self, key: str) -> float:
        value = self.raw(key)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.fail(key, f"expected a number, got {value!r}")
        return float(value)

    def get_str(self, key: str, default: str | None = None) -> str:
        if default is not None and not self.has(key):
            return default
        value = self.raw(key)
        if not isinstance(value, str):
            raise self.fail(key, f"expected a string, got {value!r}")
        return value

    def get_bool(self, key: str, default: bool | None = None) -> bool:
        if default is not None and not self.has(key):
            return default
        value = self.raw(key)
        if not isinstance(value, bool):
            raise self.fail(key, f"expected true or false, got {value!r}")
        return value

    def get_list(self, key: str, default: list[Any] | None = None) -> list[Any]:
        if default is not None and not self.has(key):
            return default
        value = self.raw(key)
        if not isinstance(value, list):
            raise self.fail(key, f"expected a list, got {type(value).__name__}")
        return value

    def ints(self, key: str, default: list[Any] | None = None) -> tuple[int, ...]:
        items = self.get_list(key, default)
        out = []
        for i, v in enumerate(items):
            if isinstance(v, bool) or not isinstance(v, (int, float)) \
                    or (isinstance(v, float) and not v.is_integer()) or v < 0:
                raise self.fail(key, f"item {i} must be a non-negative integer, got {v!r}")
            out.append(int(v))
        return tuple(out)

    def strs(self, key: str, default: list[Any] | None = None) -> tuple[str, ...]:
        items = self.get_list(key, default)
        for i, v in enumerate(items):
            if not isinstance(v, str):
                raise self.fail(key, f"item {i} must be a string, got {v!r}")
        return tuple(items)


def _index(at: _At, key: str, count: int, what: str) -> int:
    value = at.get_int(key)
    if value >= count:
        raise at.fail(key, f"{what} {value} does not exist (there are {count})")
    return value


def _stream(at: _At, task: _At, n_fs: int, n_pipes: int) -> Stream:
    kind = at.get_str("type")
    if kind == "file":
        mode = at.get_str("mode")
        if mode not in FILE_MODES:
            raise at.fail("mode", f"unknown mode {mode!r} (one of {', '.join(FILE_MODES)})")
        path = at.get_str("path")
        return Stream("file", filesystem=_index(at, "filesystem", n_fs, "filesystem"),
                      path=path, mode=mode)
    if kind == "null":
        return Stream("null")
    if kind in ("object_read", "object_write"):
        handle = at.get_str("handle")
        if not handle:
            raise at.fail("handle", "must not be empty")
        return Stream("object_read" if kind == "object_read" else "object_write",
                      handle=handle)
    if kind in ("pipe_read", "pipe_write"):
        return Stream("pipe_read" if kind == "pipe_read" else "pipe_write",
                      pipe=_index(at, "pipe", n_pipes, "pipe"))
    raise at.fail("type", f"unknown stream type {kind!r} (one of file, null, object_read, "
                          f"object_write, pipe_read, pipe_write)")


def _execution(at: _At, index: int) -> ExecutionTask:
    name = at.get_str("name")
    pipes = at.get_int("pipes", 0)
    pid_namespaces = at.get_int("pid_namespaces", 1)
    filesystems = []
    for i, raw in enumerate(at.get_list("filesystems", [])):
        fat = _At(raw, f"{at.where}, filesystem {i}")
        kind = fat.get_str("type")
        if kind == "image":
            filesystems.append(Filesystem("image", image=fat.get_str("image"),
                                          path=fat.get_str("path", "")))
        elif kind == "empty":
            filesystems.append(Filesystem("empty"))
        elif kind == "object":
            handle = fat.get_str("handle")
            if not handle:
                raise fat.fail("handle", "must not be empty")
            filesystems.append(Filesystem("object", handle=handle))
        else:
            raise fat.fail("type", f"unknown filesystem type {kind!r} (image, empty, object)")
    namespaces = []
    for i, raw in enumerate(at.get_list("mount_namespaces", [])):
        nat = _At(raw, f"{at.where}, mount namespace {i}")
        mps = []
        for j, mraw in enumerate(nat.get_list("mountpoints")):
            mat = _At(mraw, f"{nat.where}, mountpoint {j}")
            target = mat.get_str("target")
            if not target.startswith("/") or ":" in target:
                raise mat.fail("target", f"must be an absolute path without ':', got "
                                         f"{target!r}")
            capacity = mat.get_int("capacity") if mat.has("capacity") else None
            mps.append(Mountpoint(_index(mat, "source", len(filesystems), "filesystem"),
                                  target, mat.get_bool("writable"), capacity))
        root = nat.get_int("root", 0)
        namespaces.append(MountNamespace(tuple(mps), root))
    groups = []
    for i, raw in enumerate(at.get_list("resource_groups", [])):
        gat = _At(raw, f"{at.where}, resource group {i}")
        cpu = gat.number("cpu_usage_limit") if gat.has("cpu_usage_limit") else 100.0
        if not 0 < cpu <= 100 * 1024:
            raise gat.fail("cpu_usage_limit", f"must be a positive percentage, got {cpu}")
        if gat.get_int("instruction_limit", 0) > 0 and gat.get_int("time_limit", 0) == 0:
            # Instruction counts are not enforced (no hardware counters; see
            # docs/workflows.rst): with a time limit beside it (sio3pack
            # always writes both) the time limit bounds the group; alone, it
            # would be a limit silently not applied.
            raise gat.fail("instruction_limit", "instruction limits cannot be enforced here "
                                                "(no hardware performance counters); give a "
                                                "time_limit instead")
        groups.append(ResourceGroupSpec(
            cpu_usage_limit=cpu,
            instruction_limit=gat.get_int("instruction_limit", 0),
            memory_limit=gat.get_int("memory_limit", 2147483648),
            oom_terminate_all_tasks=gat.get_bool("oom_terminate_all_tasks", False),
            pid_limit=gat.get_int("pid_limit", 2, minimum=1),
            swap_limit=gat.get_int("swap_limit", 0),
            time_limit=gat.get_int("time_limit", 0)))
    channels = []
    for i, raw in enumerate(at.get_list("channels", [])):
        cat = _At(raw, f"{at.where}, channel {i}")
        channels.append(Channel(
            buffer_size=cat.get_int("buffer_size", minimum=1),
            source_pipe=_index(cat, "source_pipe", pipes, "pipe"),
            target_pipe=_index(cat, "target_pipe", pipes, "pipe"),
            file_buffer_size=cat.get_int("file_buffer_size") if cat.has("file_buffer_size")
            else None,
            limit=cat.get_int("limit") if cat.has("limit") else None))
    processes = []
    raw_processes = at.get_list("processes")
    for i, raw in enumerate(raw_processes):
        pat = _At(raw, f"{at.where}, process {i}")
        arguments = pat.strs("arguments")
        if not arguments:
            raise pat.fail("arguments", "must not be empty (argv[0] is the program)")
        env = []
        for e in pat.strs("environment", []):
            key, eq, value = e.partition("=")
            if not eq or not key:
                raise pat.fail("environment", f"entries are KEY=VALUE, got {e!r}")
            env.append((key, value))
        descriptors = []
        draw = pat.raw("descriptors")
        if not isinstance(draw, dict):
            raise pat.fail("descriptors", "expected an object mapping fd numbers to streams")
        for fd_text, sraw in draw.items():
            try:
                fd = int(fd_text)
                if fd < 0 or fd > 65535 or str(fd) != str(fd_text).strip():
                    raise ValueError
            except ValueError:
                raise pat.fail("descriptors", f"{fd_text!r} is not a descriptor number "
                                              f"(0-65535)") from None
            descriptors.append((fd, _stream(_At(sraw, f"{pat.where}, descriptor {fd}"), at,
                                            len(filesystems), pipes)))
        start_after = pat.ints("start_after", [])
        for s in start_after:
            if s >= len(raw_processes) or s == i:
                raise pat.fail("start_after", f"process {s} is not another process of "
                                              f"this task")
        wd = pat.get_str("working_directory", "/")
        if not wd.startswith("/"):
            raise pat.fail("working_directory", f"must be an absolute path, got {wd!r}")
        processes.append(Process(
            arguments=arguments, environment=tuple(env), image=pat.get_str("image", ""),
            mount_namespace=_index(pat, "mount_namespace", len(namespaces), "mount namespace"),
            resource_group=_index(pat, "resource_group", len(groups), "resource group"),
            pid_namespace=_index(pat, "pid_namespace", pid_namespaces, "PID namespace"),
            working_directory=wd, descriptors=tuple(sorted(descriptors)),
            start_after=start_after))
    task = ExecutionTask(
        index=index, name=name, exclusive=at.get_bool("exclusive", False),
        hard_time_limit=at.get_int("hard_time_limit", 0), output_register=at.get_int("output_register"),
        pid_namespaces=pid_namespaces, pipes=pipes, channels=tuple(channels),
        filesystems=tuple(filesystems), mount_namespaces=tuple(namespaces),
        resource_groups=tuple(groups), processes=tuple(processes))
    _check_execution(task, at)
    return task


def _check_execution(task: ExecutionTask, at: _At) -> None:
    # Each pipe end has one owner: a process descriptor or a channel.
    owners: dict[tuple[str, int], str] = {}

    def own(end: tuple[str, int], who: str) -> None:
        if end in owners:
            raise WorkflowError(f"{at.where}: the {end[0]} end of pipe {end[1]} is used by "
                                f"{owners[end]} and by {who}")
        owners[end] = who

    for i, c in enumerate(task.channels):
        own(("read", c.source_pipe), f"channel {i}")
        own(("write", c.target_pipe), f"channel {i}")
    for i, p in enumerate(task.processes):
        for fd, s in p.descriptors:
            if s.type in ("pipe_read", "pipe_write") and s.pipe is not None:
                own(("read" if s.type == "pipe_read" else "write", s.pipe),
                    f"process {i} (fd {fd})")
    # start_after must not loop.
    state: dict[int, int] = {}

    def visit(i: int, path: list[int]) -> None:
        if state.get(i) == 2:
            return
        if state.get(i) == 1:
            raise WorkflowError(f"{at.where}: start_after forms a cycle: "
                                f"{' -> '.join(map(str, path + [i]))}")
        state[i] = 1
        for j in task.processes[i].start_after:
            visit(j, path + [i])
        state[i] = 2

    for i in range(len(task.processes)):
        visit(i, [])
    # Two writers of one object inside a task.
    seen: dict[str, str] = {}
    for i, p in enumerate(task.processes):
        for fd, s in p.descriptors:
            if s.type == "object_write" and s.handle is not None:
                if s.handle in seen:
                    raise WorkflowError(f"{at.where}: object {s.handle!r} is written by "
                                        f"{seen[s.handle]} and by process {i} (fd {fd})")
                seen[s.handle] = f"process {i} (fd {fd})"


def _script(at: _At, index: int) -> ScriptTask:
    return ScriptTask(index=index, name=at.get_str("name"), reactive=at.get_bool("reactive", False),
                      input_registers=at.ints("input_registers", []),
                      output_registers=at.ints("output_registers", []),
                      objects=at.strs("objects", []), script=at.get_str("script"))


def parse(data: Any) -> Workflow:
    """Check and read one workflow (a dict, or JSON text).

    :raises WorkflowError: the workflow is malformed; the message names the
        task, process and field.
    """
    if isinstance(data, (str, bytes)):
        try:
            data = json.loads(data)
        except ValueError as e:
            raise WorkflowError(f"the workflow is not valid JSON: {e}") from e
    at = _At(data, "workflow")
    tasks: list[Task] = []
    for i, raw in enumerate(at.get_list("tasks")):
        tat = _At(raw, f"task {i}")
        name = tat.data.get("name")
        if isinstance(name, str):
            tat.where = f"task {i} ({name!r})"
        kind = tat.get_str("type")
        if kind == "execution":
            tasks.append(_execution(tat, i))
        elif kind == "script":
            tasks.append(_script(tat, i))
        else:
            raise tat.fail("type", f"unknown task type {kind!r} (execution or script)")
    observable = at.get_int("observable_registers", 0)
    used = [observable - 1]
    for t in tasks:
        if isinstance(t, ExecutionTask):
            used.append(t.output_register)
        else:
            used.extend(t.input_registers)
            used.extend(t.output_registers)
    # The declared count is advisory (sio3pack over-counts): recomputed.
    registers = max(used) + 1 if used else 0
    wf = Workflow(name=at.get_str("name", "workflow"),
                  external_objects=at.strs("external_objects", []),
                  observable_objects=at.strs("observable_objects", []),
                  observable_registers=observable, registers=registers, tasks=tuple(tasks))
    _check_dataflow(wf)
    return wf


def _task_label(t: Task) -> str:
    return f"task {t.index} ({t.name!r})"


def _check_dataflow(wf: Workflow) -> None:
    writers: dict[int, Task] = {}
    for t in wf.tasks:
        outs = (t.output_register,) if isinstance(t, ExecutionTask) else t.output_registers
        for r in outs:
            if r in writers:
                raise WorkflowError(f"register {r} is written by {_task_label(writers[r])} "
                                    f"and by {_task_label(t)}")
            writers[r] = t
    producers: dict[str, Task] = {}
    for t in wf.tasks:
        for h in t.writes():
            if h in producers:
                raise WorkflowError(f"object {h!r} is written by {_task_label(producers[h])} "
                                    f"and by {_task_label(t)}")
            producers[h] = t
    external = set(wf.external_objects)
    for t in wf.tasks:
        if isinstance(t, ScriptTask):
            for r in t.input_registers:
                if r not in writers:
                    raise WorkflowError(f"{_task_label(t)}, field 'input_registers': register "
                                        f"{r} is written by no task")
        for h in t.reads():
            if h not in external and h not in producers:
                raise WorkflowError(f"{_task_label(t)} reads object {h!r}, which is neither "
                                    f"external nor produced by a task")
