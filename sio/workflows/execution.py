"""Execution tasks: processes wired by pipes and channels, in namespaces, under
joint limits of resource groups; the report written to the output register.

Mechanism lives in :mod:`sio.workers._engine.groups` (cgroups, namespaces,
``nsexec``) and :func:`sio.workers._engine.process.run_process` (the one place
that starts a program); this module is the workflow policy on top: which
mounts, descriptors, limits, and how outcomes become the report.

The report (a JSON object, ``version`` 1) is described in
``docs/workflows.rst``; its keys are built in :func:`_report` only.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import select
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sio.workers._engine.groups import (
    GroupLimits,
    GroupUsage,
    Mount,
    PidNamespace,
    ResourceGroup,
    mount_tmpfs,
    nsexec_argv,
    unmount,
)
from sio.workers._engine.process import run_process
from sio.workers._engine.types import CAPTURE, KillReason, Limits, Outcome
from sio.workflows import images
from sio.workflows.model import FILE_MODES, Channel, ExecutionTask, Process, WorkflowError

logger = logging.getLogger(__name__)

__all__ = ["run_execution", "REPORT_VERSION", "settings"]

REPORT_VERSION = 1
_CHECK_S = 0.025


@dataclass(frozen=True)
class Settings:
    """Executor-wide settings (environment variables, read when called)."""

    #: ``SIO_WORKFLOW_OUTPUT_LIMIT``: bytes one ``object_write`` or file
    #: stream may grow to (the format has no output limit); over it is OLE
    output_limit_bytes: int = 50 * 1024 * 1024
    #: ``SIO_WORKFLOW_HARD_TIME_CAP_MS``: wall limit of a task whose
    #: ``hard_time_limit`` is 0 and whose groups have no time limit
    hard_time_cap_ms: int = 300_000
    #: ``SIO_WORKFLOW_EXCLUSIVE_LOCK``: the lock file that makes ``exclusive``
    #: tasks run alone on the machine
    exclusive_lock: str = "/tmp/sioworkers-workflow-exclusive.lock"
    #: ``SIO_WORKFLOW_UID_BASE``: processes run as uid/gid base + index
    uid_base: int = 61000


def settings() -> Settings:
    env = os.environ
    return Settings(
        output_limit_bytes=int(env.get("SIO_WORKFLOW_OUTPUT_LIMIT", 50 * 1024 * 1024)),
        hard_time_cap_ms=int(env.get("SIO_WORKFLOW_HARD_TIME_CAP_MS", 300_000)),
        exclusive_lock=env.get("SIO_WORKFLOW_EXCLUSIVE_LOCK",
                               "/tmp/sioworkers-workflow-exclusive.lock"),
        uid_base=int(env.get("SIO_WORKFLOW_UID_BASE", 61000)))


def hard_time_limit_ms(task: ExecutionTask, cap_ms: int) -> int:
    """The task's wall-clock limit: ``hard_time_limit`` when set, else
    ``min(cap, 2 × largest group time_limit + 1000)`` (SIO2's real-time
    default), else the cap."""
    if task.hard_time_limit > 0:
        return task.hard_time_limit
    limits = [g.time_limit for g in task.resource_groups if g.time_limit > 0]
    if not limits:
        return cap_ms
    return min(cap_ms, 2 * max(limits) + 1000)


# --------------------------------------------------------------------------
# Channels
# --------------------------------------------------------------------------

@dataclass
class _ChannelState:
    bytes: int = 0
    limit_exceeded: bool = False
    error: str | None = None


def _relay(src: int, dst: int, spec: Channel, state: _ChannelState,
           stop: threading.Event, spool_dir: str) -> None:
    """Copy ``src`` (read end of the source pipe) to ``dst`` (write end of
    the target pipe): at most ``buffer_size`` bytes held in memory and
    ``file_buffer_size`` more in a file; reading stops while both are full
    (back-pressure on the writer); after ``limit`` bytes the channel closes
    both ends (the writer gets EPIPE, the reader end of file)."""
    os.set_blocking(src, False)
    os.set_blocking(dst, False)
    mem = bytearray()
    spill = None
    spill_read = spill_write = 0
    file_cap = spec.file_buffer_size or 0
    src_open = True
    try:
        while not stop.is_set():
            pending_file = spill_write - spill_read
            room = spec.buffer_size - len(mem) if pending_file == 0 else 0
            room += file_cap - pending_file
            if not src_open and not mem and pending_file == 0:
                break
            poller = select.poll()
            if src_open and room > 0:
                poller.register(src, select.POLLIN)
            if mem:
                poller.register(dst, select.POLLOUT)
            events = dict(poller.poll(100))
            if mem and dst in events:
                if events[dst] & (select.POLLERR | select.POLLHUP) \
                        and not events[dst] & select.POLLOUT:
                    break  # the reader is gone: drop what is buffered
                try:
                    n = os.write(dst, mem[:65536])
                    del mem[:n]
                except BlockingIOError:
                    pass
                except BrokenPipeError:
                    break
                if not mem and spill is not None and spill_write > spill_read:
                    spill.seek(spill_read)
                    chunk = spill.read(min(spec.buffer_size, spill_write - spill_read))
                    spill_read += len(chunk)
                    mem += chunk
            if src_open and src in events:
                try:
                    data = os.read(src, min(65536, max(room, 1)))
                except BlockingIOError:
                    data = None
                if data == b"":
                    src_open = False
                elif data:
                    if spec.limit is not None and state.bytes + len(data) > spec.limit:
                        data = data[:spec.limit - state.bytes]
                        state.limit_exceeded = True
                        src_open = False
                    state.bytes += len(data)
                    if spill_write == spill_read and len(mem) + len(data) <= spec.buffer_size:
                        mem += data
                    else:
                        if spill is None:
                            spill = tempfile.TemporaryFile(dir=spool_dir)
                        spill.seek(spill_write)
                        spill.write(data)
                        spill_write += len(data)
                    if state.limit_exceeded:
                        # Stop relaying: what is buffered is dropped too.
                        mem.clear()
                        spill_read = spill_write
                        break
    except OSError as e:
        state.error = str(e)
    finally:
        os.close(src)
        os.close(dst)
        if spill is not None:
            spill.close()


# --------------------------------------------------------------------------
# Processes
# --------------------------------------------------------------------------

@dataclass
class _ProcState:
    started: bool = False
    outcome: Outcome | None = None
    error: str | None = None
    done: threading.Event = field(default_factory=threading.Event)


class _Task:
    """The state of one running execution task."""

    def __init__(self, task: ExecutionTask, object_path: Callable[[str], str],
                 workdir: str, conf: Settings, network_of: int | None) -> None:
        self.task = task
        self.network_of = network_of
        self.object_path = object_path
        self.conf = conf
        self.workdir = workdir
        self._dir: str | None = None
        # Every process's new root is a tmpfs mounted, in its own mount
        # namespace, on this one empty directory of the host.
        self.root = os.path.join(workdir, "root")
        self.tmpfs: list[str] = []
        self.groups: list[ResourceGroup] = []
        self.pidns: dict[int, PidNamespace] = {}
        self.pipes: list[tuple[int, int]] = []
        self.owned: set[int] = set()  # pipe-end fds still held here
        self.owned_lock = threading.Lock()
        self.fs_host: list[str] = []
        self.fs_writable: list[bool] = []
        self.new_objects: dict[str, bool] = {}  # writable object mounts: pre-existed?
        self.procs = [_ProcState() for _ in task.processes]
        self.channels = [_ChannelState() for _ in task.channels]
        self.stop = threading.Event()
        self.hard_killed = False

    @property
    def dir(self) -> str:
        """A private directory of the task (made when first needed: most
        tasks need none)."""
        if self._dir is None:
            self._dir = tempfile.mkdtemp(prefix="task-", dir=self.workdir)
            os.chmod(self._dir, 0o711)
        return self._dir

    # -- set-up ------------------------------------------------------------

    def prepare(self) -> None:
        t = self.task
        for i, fs in enumerate(t.filesystems):
            writable = any(mp.writable for ns in t.mount_namespaces for mp in ns.mountpoints
                           if mp.source == i)
            if fs.type == "image":
                assert fs.image is not None
                host = images.filesystem_image(fs.image, fs.path)
                writable = False
            elif fs.type == "empty":
                host = os.path.join(self.dir, f"fs{i}")
                os.mkdir(host)
                os.chmod(host, 0o1777)
                capacity = max((mp.capacity or 0 for ns in t.mount_namespaces
                                for mp in ns.mountpoints if mp.source == i), default=0)
                mount_tmpfs(host, capacity)
                self.tmpfs.append(host)
                writable = True
            else:
                assert fs.handle is not None
                host = self.object_path(fs.handle)
                if writable:
                    existed = os.path.exists(host)
                    if not existed:
                        with open(host, "wb"):
                            pass
                    os.chmod(host, 0o666 | (os.stat(host).st_mode & 0o111))
                    self.new_objects[fs.handle] = existed
                elif not os.path.exists(host):
                    raise _SetupError(f"filesystem {i}: object {fs.handle!r} is not available")
                else:
                    os.chmod(host, os.stat(host).st_mode | 0o444)
            self.fs_host.append(host)
            self.fs_writable.append(writable)
        floors: dict[int, int] = {}
        for p in t.processes:
            floor = images.process_image(p.image).pid_floor
            floors[p.resource_group] = max(floors.get(p.resource_group, 1), floor)
        for gi, g in enumerate(t.resource_groups):
            swap = g.memory_limit + g.swap_limit
            pids = max(g.pid_limit, floors.get(gi, 1))
            self.groups.append(ResourceGroup.acquire(GroupLimits(
                cpu_time_ms=g.time_limit or None, memory_bytes=g.memory_limit or None,
                memory_swap_bytes=swap or None, pids=pids,
                cpu_percent=g.cpu_usage_limit if g.cpu_usage_limit < 100 * (os.cpu_count() or 1)
                else None)))
        # A namespace of one process is made by nsexec for it (the program
        # is its PID 1); one shared by several is held open by a reaper.
        members: dict[int, int] = {}
        for p in t.processes:
            members[p.pid_namespace] = members.get(p.pid_namespace, 0) + 1
        for ns_index, n in members.items():
            if n > 1:
                self.pidns[ns_index] = PidNamespace()
        for _ in range(t.pipes):
            r, w = os.pipe2(os.O_CLOEXEC)
            self.pipes.append((r, w))
            self.owned |= {r, w}
        # An end nobody owns is closed at once: a writer whose pipe has no
        # reader gets EPIPE, a reader with no writer end of file, instead
        # of waiting for the hard time limit.
        used = {(c.source_pipe, 0) for c in t.channels} | {(c.target_pipe, 1)
                                                            for c in t.channels}
        for p in t.processes:
            for _, s in p.descriptors:
                if s.type in ("pipe_read", "pipe_write") and s.pipe is not None:
                    used.add((s.pipe, 0 if s.type == "pipe_read" else 1))
        for index, ends in enumerate(self.pipes):
            for side in (0, 1):
                if (index, side) not in used:
                    self.take(ends[side])

    def take(self, fd: int) -> None:
        """Our copy of a pipe end went to its owner: close it, so that the
        other side sees end of file / EPIPE as soon as the owner ends."""
        with self.owned_lock:
            if fd in self.owned:
                self.owned.discard(fd)
                os.close(fd)

    def start_channels(self) -> list[threading.Thread]:
        threads = []
        for ci, c in enumerate(self.task.channels):
            src = os.dup(self.pipes[c.source_pipe][0])
            dst = os.dup(self.pipes[c.target_pipe][1])
            self.take(self.pipes[c.source_pipe][0])
            self.take(self.pipes[c.target_pipe][1])
            th = threading.Thread(target=_relay, name=f"channel-{ci}", daemon=True,
                                  args=(src, dst, c, self.channels[ci], self.stop, self.dir))
            th.start()
            threads.append(th)
        return threads

    # -- one process ---------------------------------------------------------

    def _open(self, pi: int, p: Process) -> tuple[dict[int, int], list[int], list[int]]:
        """(our fd → program fd, fds to close after the run, pipe ends to
        hand over at spawn)."""
        mapping: dict[int, int] = {}
        opened: list[int] = []
        handed: list[int] = []
        try:
            for fd, s in p.descriptors:
                if s.type == "null":
                    src = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
                    opened.append(src)
                elif s.type == "object_read":
                    assert s.handle is not None
                    try:
                        src = os.open(self.object_path(s.handle), os.O_RDONLY | os.O_CLOEXEC)
                    except FileNotFoundError:
                        raise _SetupError(f"fd {fd}: object {s.handle!r} is not available") \
                            from None
                    opened.append(src)
                elif s.type == "object_write":
                    assert s.handle is not None
                    src = os.open(self.object_path(s.handle),
                                  os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
                    opened.append(src)
                elif s.type in ("pipe_read", "pipe_write"):
                    assert s.pipe is not None
                    src = self.pipes[s.pipe][0 if s.type == "pipe_read" else 1]
                    handed.append(src)
                else:
                    src = self._open_file(fd, s.filesystem, s.path or "", s.mode or "read")
                    opened.append(src)
                mapping[src] = fd
        except BaseException:
            for f in opened:
                os.close(f)
            raise
        return mapping, opened, handed

    def _open_file(self, fd: int, fs: int | None, path: str, mode: str) -> int:
        assert fs is not None
        base = self.fs_host[fs]
        flags = 0
        for name in FILE_MODES[mode]:
            flags |= getattr(os, name)
        if flags & os.O_CREAT and not self.fs_writable[fs]:
            flags &= ~os.O_CREAT
            if mode != "read" and not self.fs_writable[fs]:
                raise _SetupError(f"fd {fd}: filesystem {fs} is read-only, mode {mode!r}")
        if os.path.isdir(base):
            host = os.path.realpath(os.path.join(base, path.lstrip("/")))
            if host != os.path.realpath(base) and \
                    not host.startswith(os.path.realpath(base) + os.sep):
                raise _SetupError(f"fd {fd}: path {path!r} leaves filesystem {fs}")
        elif path.strip("/"):
            raise _SetupError(f"fd {fd}: filesystem {fs} is a single file, path {path!r}")
        else:
            host = base
        try:
            return os.open(host, flags | os.O_CLOEXEC, 0o666)
        except OSError as e:
            raise _SetupError(f"fd {fd}: cannot open {path!r} in filesystem {fs}: "
                              f"{e.strerror}") from None

    def run_process(self, pi: int, watchdog: Limits | None = None) -> None:
        """Run process ``pi`` to its end (in its own thread, or, with
        ``watchdog``, in the caller's: then the engine's own watchdog
        enforces those CPU and wall limits, see :meth:`run_alone`)."""
        p = self.task.processes[pi]
        st = self.procs[pi]
        try:
            for j in p.start_after:
                self.procs[j].done.wait()
            if self.stop.is_set():
                return
            image = images.process_image(p.image)
            mapping, opened, handed = self._open(pi, p)
            try:
                ns = self.task.mount_namespaces[p.mount_namespace]
                base = images.base_root()
                mounts = list(base.mounts) + list(image.mounts)
                for mp in ns.mountpoints:
                    writable = mp.writable and self.fs_writable[mp.source]
                    mounts.append(Mount(mp.target, self.fs_host[mp.source], writable))
                os.makedirs(self.root, exist_ok=True)
                uid = self.conf.uid_base + pi
                for handle in self.new_objects:
                    path = self.object_path(handle)
                    os.chown(path, uid, uid)
                env = dict(image.env)
                env.update(p.environment)
                group = self.groups[p.resource_group]
                holder = self.pidns.get(p.pid_namespace)
                argv = nsexec_argv(
                    p.arguments, cgroups=group.joined,
                    pid_namespace=holder.path if holder else None,
                    own_pid_namespace=holder is None, network_of=self.network_of,
                    isolate_network=self.network_of is None, root_dir=self.root, mounts=mounts,
                    links=base.links, devices=True, cwd=p.working_directory,
                    user=(uid, uid), fds=mapping)

                def spawned() -> None:
                    st.started = True
                    for fd in handed:
                        self.take(fd)

                st.outcome = run_process(
                    argv, cwd=self.workdir, env=env, stderr=CAPTURE, pass_fds=list(mapping),
                    limits=Limits(output_bytes=self.conf.output_limit_bytes,
                                  capture_bytes=4096,
                                  cpu_time_ms=watchdog.cpu_time_ms if watchdog else None,
                                  wall_time_ms=watchdog.wall_time_ms if watchdog else None),
                    on_spawn=spawned)
                if st.outcome.exit_code == 127 and st.outcome.stderr \
                        and st.outcome.stderr.startswith(b"nsexec: "):
                    st.error = st.outcome.stderr.decode(errors="replace").strip()
            finally:
                for f in opened:
                    os.close(f)
                for fd in handed:
                    self.take(fd)  # never started: the peers must not wait for it
        except _SetupError as e:
            st.error = f"process {pi}: {e}"
        except (OSError, WorkflowError) as e:
            st.error = f"process {pi}: {e}"
        finally:
            st.done.set()

    # -- watchdog and tear-down ----------------------------------------------

    def run_alone(self, hard_ms: int) -> None:
        """The common case of one process and no channel, without threads:
        the engine's watchdog of :func:`run_process` enforces the group's CPU
        time (its process tree is the whole group) and the hard limit, and
        its kill reasons are mapped to the group's."""
        spec = self.task.resource_groups[self.task.processes[0].resource_group]
        self.run_process(0, Limits(cpu_time_ms=spec.time_limit or None, wall_time_ms=hard_ms))
        outcome = self.procs[0].outcome
        group = self.groups[self.task.processes[0].resource_group]
        if outcome is not None and outcome.killed is KillReason.CPU_TIME:
            group.killed = "time"
        elif outcome is not None and outcome.killed is KillReason.WALL_TIME:
            self.hard_killed = True
            group.killed = "hard_time_limit"

    def watch(self, threads: list[threading.Thread], deadline: float) -> None:
        while any(th.is_alive() for th in threads):
            for th in threads:
                th.join(_CHECK_S / len(threads))
            for g, spec in zip(self.groups, self.task.resource_groups):
                g.check()
                if spec.oom_terminate_all_tasks and g.killed is None and g.oom_killed():
                    g.kill("memory")
            if not self.hard_killed and time.monotonic() >= deadline:
                self.hard_killed = True
                self.stop.set()
                for g in self.groups:
                    g.kill("hard_time_limit")
                for ns in self.pidns.values():
                    ns.close()

    def close(self) -> None:
        self.stop.set()
        for g in self.groups:
            g.release()
        for ns in self.pidns.values():
            try:
                ns.close()
            except OSError:
                pass
        with self.owned_lock:
            for fd in self.owned:
                os.close(fd)
            self.owned.clear()
        for path in self.tmpfs:
            unmount(path)
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)


def _export(t: _Task, exports: dict[str, str]) -> set[str]:
    out = set()
    for ns in t.task.mount_namespaces:
        for mp in ns.mountpoints:
            prefix = exports.get(mp.target)
            if prefix is None or t.task.filesystems[mp.source].type != "empty":
                continue
            base = t.fs_host[mp.source]
            for name in sorted(os.listdir(base)):
                src = os.path.join(base, name)
                if os.path.isfile(src) and not os.path.islink(src):
                    handle = prefix + name
                    shutil.copyfile(src, t.object_path(handle))
                    out.add(handle)
    return out


class _SetupError(Exception):
    """A process (or the task) cannot be set up: a system error of the task."""


# --------------------------------------------------------------------------
# The report
# --------------------------------------------------------------------------

def _process_report(t: _Task, pi: int, usage: list[GroupUsage]) -> dict[str, Any]:
    st = t.procs[pi]
    p = t.task.processes[pi]
    group = usage[p.resource_group] if usage else None
    out = st.outcome
    killed_by = None
    status = "OK"
    if st.error is not None:
        status = "SE"
    elif out is None:  # never started: the task was torn down first
        status, killed_by = ("TLE", "hard_time_limit") if t.hard_killed else ("SE", None)
    elif group is not None and group.killed == "time":
        status, killed_by = "TLE", "time_limit"
    elif group is not None and out.signal is not None and group.memory_limit_hit:
        status, killed_by = "MLE", "memory_limit"
    elif group is not None and group.killed == "memory":
        status, killed_by = "MLE", "oom_group"
    elif out.killed is KillReason.OUTPUT:
        status = "OLE"
    elif group is not None and group.killed == "hard_time_limit" or \
            (t.hard_killed and out.signal is not None):
        status, killed_by = "TLE", "hard_time_limit"
    elif out.signal is not None or out.exit_code:
        status = "RE"
    if status == "RE" and group is not None and group.pids_limit_hit:
        killed_by = "pid_limit"
    return {
        "started": st.started,
        "exit_code": out.exit_code if out else None,
        "signal": out.signal if out else None,
        "status": status,
        "killed_by": killed_by,
        "cpu_time_ms": out.cpu_time_ms if out else 0,
        "wall_time_ms": out.wall_time_ms if out else 0,
        "error": st.error,
    }


def _report(t: _Task, wall_ms: int, error: str | None) -> dict[str, Any]:
    usage = [g.usage() for g in t.groups] if len(t.groups) == len(t.task.resource_groups) \
        else []
    processes = [_process_report(t, i, usage) for i in range(len(t.task.processes))]
    status = "OK"
    if error is not None:
        status = "SE"
    else:
        for pr in processes:
            if pr["status"] != "OK":
                status = pr["status"]
                break
    groups = []
    for gi in range(len(t.task.resource_groups)):
        u = usage[gi] if usage else None
        exceeded = None
        if u is not None:
            if u.killed == "time":
                exceeded = "time"
            elif u.memory_limit_hit or u.killed == "memory":
                exceeded = "memory"
            elif u.pids_limit_hit:
                exceeded = "pids"
        groups.append({
            "cpu_time_ms": u.cpu_time_ms if u else 0,
            "memory_peak_bytes": u.memory_peak_bytes if u else 0,
            "instructions": None,
            "limit_exceeded": exceeded,
        })
    return {
        "version": REPORT_VERSION,
        "status": status,
        "hard_time_limit_exceeded": t.hard_killed,
        "wall_time_ms": wall_ms,
        "processes": processes,
        "resource_groups": groups,
        "channels": [{"bytes": c.bytes, "limit_exceeded": c.limit_exceeded}
                     for c in t.channels],
        "error": error,
    }


# --------------------------------------------------------------------------
# Entry
# --------------------------------------------------------------------------

class _Exclusive:
    """Machine-wide: ``exclusive`` tasks take the lock file exclusively,
    others share it."""

    def __init__(self, path: str, exclusive: bool) -> None:
        self.path, self.exclusive = path, exclusive
        self.fd: int | None = None

    def __enter__(self) -> None:
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
        fcntl.flock(self.fd, fcntl.LOCK_EX if self.exclusive else fcntl.LOCK_SH)

    def __exit__(self, *exc: object) -> None:
        if self.fd is not None:
            os.close(self.fd)


def run_execution(task: ExecutionTask, object_path: Callable[[str], str], workdir: str,
                  exports: dict[str, str] | None = None,
                  network_of: int | None = None) -> tuple[dict[str, Any], set[str]]:
    """Run one execution task; returns its report and the handles of the
    objects it produced.

    :param exports: mount target → handle prefix: each regular file left in
        that writable ``empty`` mount becomes object ``<prefix><file name>``.
    :param network_of: the pid of a namespace holder
        (:class:`~sio.workers._engine.groups.PidNamespace` with ``network``)
        whose network, IPC and UTS namespaces the processes join; None: each
        process gets new ones.
    """
    conf = settings()
    t = _Task(task, object_path, workdir, conf, network_of)
    produced: set[str] = set()
    start = time.monotonic()
    error = None
    try:
        with _Exclusive(conf.exclusive_lock, task.exclusive):
            t.prepare()
            hard_ms = hard_time_limit_ms(task, conf.hard_time_cap_ms)
            if len(task.processes) == 1 and not task.channels:
                t.run_alone(hard_ms)
            else:
                relays = t.start_channels()
                deadline = time.monotonic() + hard_ms / 1000
                threads = [threading.Thread(target=t.run_process, args=(i,), daemon=True,
                                            name=f"process-{i}")
                           for i in range(len(task.processes))]
                for th in threads:
                    th.start()
                t.watch(threads, deadline)
                t.stop.set()
                for th in relays:
                    th.join(5)
        errors = [s.error for s in t.procs if s.error]
        if errors:
            error = "; ".join(errors)
    except (_SetupError, WorkflowError) as e:
        error = str(e)
    except OSError as e:
        if e.errno in (errno.EPERM, errno.EACCES):
            error = f"cannot set the task up (root needed?): {e}"
        else:
            error = f"cannot set the task up: {e}"
    except Exception as e:  # the engine's GroupUnavailable and alike
        error = f"{type(e).__name__}: {e}"
    wall_ms = int((time.monotonic() - start) * 1000)
    try:
        report = _report(t, wall_ms, error)
        if exports and error is None:
            produced |= _export(t, exports)
    finally:
        t.close()
    for p in task.processes:
        for _, s in p.descriptors:
            if s.type == "object_write" and s.handle and os.path.exists(object_path(s.handle)):
                produced.add(s.handle)
    for handle, existed in t.new_objects.items():
        path = object_path(handle)
        if os.path.exists(path) and (existed or os.path.getsize(path) > 0):
            os.chown(path, 0, 0)
            produced.add(handle)
        elif os.path.exists(path):
            os.unlink(path)
    return report, produced
