"""One run, from request to outcome: the spawner's side of it (stdio,
taking the warm child, seizing it, sending it the set-up), the event loop
that waits for stops, captured output, the worker and deadlines, and the
report.

:class:`Run` puts together the concerns kept in their own modules: the
set-up (:mod:`._setup`), the decisions at tracer stops (:mod:`._decisions`)
and the watchdog (:mod:`._watchdog`).
"""

from __future__ import annotations

import _signal as signal
import _socket
import os
import select
import stat
import time

from sio.workers._engine.supervisor import _linux as L
from sio.workers._engine.supervisor import _wire
from sio.workers._engine.supervisor._decisions import Decisions
from sio.workers._engine.supervisor._linux import WALL
from sio.workers._engine.supervisor._setup import UID_BASE, RunSetup
from sio.workers._engine.supervisor._stubproto import pack_setup
from sio.workers._engine.supervisor._watchdog import CPU_TIME, MEMORY, OUTPUT, SYSCALL, WALL_TIME

SEIZE_OPTIONS = (L.PTRACE_O_TRACESECCOMP | L.PTRACE_O_TRACEEXEC | L.PTRACE_O_TRACEEXIT
                 | L.PTRACE_O_TRACECLONE | L.PTRACE_O_TRACEFORK | L.PTRACE_O_TRACEVFORK
                 | L.PTRACE_O_EXITKILL)

#: The most ptrace stops the event loop handles before it looks at the
#: clocks, the worker's socket and the captured output again (it also stops
#: early when a deadline comes): threads that keep a stop always pending
#: must not keep the watchdog from running.
STOPS_PER_TURN = 64


class ClientGone(Exception):
    """The worker closed its end of the socket during a run."""


class Run(RunSetup, Decisions):
    """One supervised run of one program."""

    # --- set-up ---------------------------------------------------------------

    def execute(self) -> dict:
        sp = self.sp
        child_fds: list[int] = []   # to close in the parent once sent to the child
        parent_fds: list[int] = []  # to close at the end
        pinned = False
        ctl = None
        view = sp.view
        try:
            stdio = self._stdio(child_fds, parent_fds)
            if view is not None:
                view.bind_run(self.cwd, [self.exe, *self.policy["read_paths"]])
            # With read_own_proc the ruleset names the program's /proc entry,
            # known once the child is taken: built below, for this run only.
            ruleset = None if self.read_own_proc else self._landlock_ruleset()
            # Cached here, so that the next warm children inherit it.
            sp.seccomp_filter(self.filter_key)
            if self.drop_uid:
                self._grant_dropped_uid()
            cpu = self.policy["cpu"] if self.policy["cpu"] is not None else L.current_cpu()
            # Tracer and program on one CPU: a ptrace stop then wakes the
            # tracer on the same CPU instead of through a cross-CPU wake-up,
            # which on this kind of VM costs 5-7x more per stop.
            os.sched_setaffinity(0, {cpu})
            pinned = True
            pid, ctl, stub = sp.take_warm()
            self.fork_time = time.monotonic()
            self.leader = pid
            self.tids.add(pid)
            if self.read_own_proc:
                # The child's pid is the program's (exec keeps it), and so is
                # its /proc entry: the tracer maps /proc/self to it.
                own = f"/proc/{pid}"
                # First: with allow_local_open the working directory stays last.
                self.read_roots = (own, *self.read_roots)
                if sp.landlock_abi:
                    # With the view, the child adds the rule for its entry in
                    # the /proc it mounts (another file system than ours).
                    ruleset = self._new_ruleset(transient=() if view else (own,))
                    parent_fds.append(ruleset)
            try:
                L.ptrace(L.PTRACE_SEIZE, pid, 0, SEIZE_OPTIONS)
            except OSError:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                raise
            # Sent only once seized: the child's first traced call (the
            # execveat) must find its tracer, or a TRACE action fails it
            # with ENOSYS.
            setup = {
                "cpu": cpu, "cwd": self.cwd, "exe": self.exe, "argv": self.argv,
                "env": self.env, "drop_uid": self.drop_uid, "rlimits": self._rlimits(),
                # A uid of its own: UID_BASE + its pid as we see it (unique
                # among live processes, unlike its pid in its namespace).
                "uid": UID_BASE + pid,
                "root": self.view_root or "",
                "proc": self.read_own_proc and view is not None,
                "address_space": (None if self.mem_limit_kib is None else
                                  (self.mem_limit_kib + self.policy["memory_margin_kib"])
                                  * 1024),
                "filter_key": self.filter_key,
                "landlock": ruleset is not None,
                "fake_tsc": self.fake_time != "off",
            }
            fds = stdio + ([ruleset] if ruleset is not None else [])
            try:
                if stub:
                    program = sp.seccomp_program(self.filter_key)
                    _wire.send_bytes(ctl, pack_setup(setup, program), fds)
                else:
                    _wire.send(ctl, setup, fds)
            except OSError:
                pass  # it died: the loop reaps it and _outcome() says so
            for fd in child_fds:
                os.close(fd)
            child_fds = []
            self._loop()
            return self._outcome(ctl, stdio)
        finally:
            if ctl is not None:
                ctl.close()
            if view is not None and self.read_own_proc:
                view.unmount_proc()
            if pinned:
                os.sched_setaffinity(0, sp.cpus)
            for fd in child_fds + parent_fds:
                os.close(fd)

    def _stdio(self, child_fds: list[int], parent_fds: list[int]) -> list[int]:
        """The program's descriptors 0, 1, 2 (pipes made for CAPTURE)."""
        given = iter(self.given_fds)
        stdio: list[int] = []
        for i, mode in enumerate(self.stdio_modes):
            if mode == "fd":
                stdio.append(next(given))
            elif mode == "null":
                stdio.append(self.sp.devnull)
            elif mode == "stdout":
                stdio.append(stdio[1])
            elif mode == "capture":
                r, w = os.pipe2(os.O_CLOEXEC)
                parent_fds.append(r)
                child_fds.append(w)
                name = "stdout" if i == 1 else "stderr"
                self.captures[r] = name
                self.captured[name] = bytearray()
                self.written[name] = 0
                stdio.append(w)
            else:
                raise ValueError(f"bad stdio mode {mode!r}")
        return stdio

    # --- the event loop -------------------------------------------------------

    def _loop(self) -> None:
        """Until the program has ended: turns of (the watchdog, a wait for
        anything to do, at most STOPS_PER_TURN stops). Whatever the program
        does, every turn ends within a stop's handling of the next deadline
        (see _reap), so the limits and the worker's death are acted on in
        time even when its threads keep a stop pending all the time."""
        sp = self.sp
        more = False  # stops may be pending that no new SIGCHLD will announce
        while self.leader_status is None:
            timeout = self._watchdog()
            self.check_at = time.monotonic() + timeout
            watch = [sp.sigfd, sp.sock.fileno(), *self.captures]
            ready, _, _ = select.select(watch, [], [], 0 if more else timeout)
            if sp.sock.fileno() in ready or sp.worker_gone():
                # The worker went away (or broke the protocol): nobody will
                # read the outcome, so end the program and the spawner.
                self._kill(WALL_TIME)
                self._reap_all()
                raise ClientGone()
            for fd in ready:
                if fd in self.captures:
                    self._read_capture(fd)
            if sp.sigfd in ready:
                # Drained before reaping: a stop that comes after this read
                # signals again. (SIGCHLD is a standard signal: at most one
                # is pending, so one read takes it.)
                try:
                    os.read(sp.sigfd, 128 * 16)
                except BlockingIOError:
                    pass
            more = self._reap()
        self._reap_all()
        if self.killed is not None and self.view_root is not None:
            # _kill ended the init too; reaped now that the run's tasks are
            # (unless _reap already did), a new one for the next run.
            sp._drop_init()

    def _reap(self) -> bool:
        """Handle what is pending: at most STOPS_PER_TURN stops, and none
        once the watchdog is due (``check_at``). True when it stopped early
        (more may be pending)."""
        for _ in range(STOPS_PER_TURN):
            try:
                pid, status, ru = os.wait4(-1, os.WNOHANG | WALL)
            except ChildProcessError:
                return False
            if pid == 0:
                return False
            if os.WIFSTOPPED(status):
                self._on_stop(pid, status)
                if time.monotonic() >= self.check_at:
                    return True
                continue
            if self.sp.init_reaped(pid):
                continue
            self.tids.discard(pid)
            self.pending_clones.discard(pid)
            if pid == self.leader:
                self.leader_status, self.rusage = status, ru
                self.end_time = time.monotonic()
                return False
        return True

    def _reap_all(self) -> None:
        """Make sure nothing of the run is left. The leader of a thread group
        is reported last, so normally nothing is; but anything still known is
        our tracee or (the spawner being a child subreaper) our child, not yet
        reaped, so its id cannot belong to an unrelated process yet. No
        killpg() here: once the leader is reaped, the group id is free."""
        for tid in self.tids:
            try:
                os.kill(tid, signal.SIGKILL)
            except OSError:
                pass
        while self.tids:
            try:
                pid, status, ru = os.wait4(-1, WALL)
            except ChildProcessError:
                break
            if os.WIFSTOPPED(status):
                # Even a SIGKILLed tracee stops at PTRACE_EVENT_EXIT on
                # recent kernels, and stays there until continued.
                self._cont(pid)
                continue
            if self.sp.init_reaped(pid):
                continue
            self.tids.discard(pid)
            if pid == self.leader and self.leader_status is None:
                self.leader_status, self.rusage = status, ru
                self.end_time = time.monotonic()
        self.tids.clear()
        while True:  # orphans adopted as subreaper, if any
            try:
                pid = os.wait4(-1, os.WNOHANG | WALL)[0]
            except ChildProcessError:
                return
            if pid == 0:
                return
            self.sp.init_reaped(pid)

    def _read_capture(self, fd: int) -> bool:
        """Read what is there; False at end of stream or when nothing is."""
        name = self.captures[fd]
        buf = self.captured[name]
        try:
            data = os.read(fd, 1 << 16)
        except BlockingIOError:
            return False
        if not data:
            del self.captures[fd]
            return False
        self.written[name] += len(data)
        keep = self.capture_limit
        if keep is not None and len(buf) + len(data) > keep:
            data = data[:keep - len(buf)]
            self.truncated = True
        buf += data
        if self.output_limit is not None and self.written[name] > self.output_limit:
            self._kill(OUTPUT)  # the stream is over the limit: OLE, like a file
        return True

    # --- the report -----------------------------------------------------------

    def _outcome(self, ctl: _socket.socket, stdio: list[int]) -> dict:
        """The fields of the run's ``Outcome`` (killed as a KillReason value)."""
        # What the program wrote just before it ended is still in the pipes;
        # every writer is gone now, so this ends (non-blocking all the same).
        for fd in list(self.captures):
            os.set_blocking(fd, False)
            while self._read_capture(fd):
                pass
        status = self.leader_status or 0
        end = self.end_time if self.end_time is not None else time.monotonic()
        start = self.exec_time if self.exec_time is not None else self.fork_time
        out: dict = {
            "exit_code": os.WEXITSTATUS(status) if os.WIFEXITED(status) else None,
            "signal": os.WTERMSIG(status) if os.WIFSIGNALED(status) else None,
            "cpu_time_ms": 0, "wall_time_ms": int((end - start) * 1000),
            "killed": None, "mem_peak_kib": None, "mem_resident_peak_kib": None,
            "syscalls": 0, "violation": None,
            "system_error": self.system_error, "output_truncated": self.truncated,
        }
        for i, name in ((1, "stdout"), (2, "stderr")):
            out[name] = bytes(self.captured[name]) if self.stdio_modes[i] == "capture" else None
        sig = out["signal"]
        if self.exec_time is None:
            # Why the child failed, from the socket it got the run on (every
            # copy of the child's end is closed now: no blocking here).
            ctl.setblocking(False)
            try:
                detail = ctl.recv(4096).decode(errors="replace")
            except OSError:
                detail = ""
            if (not detail and sig is not None and self.exec_allowed
                    and self.mem_limit_kib is not None):
                # The kernel killed it inside execve, past the point of no
                # return: the program's image does not fit in RLIMIT_AS.
                out["killed"] = MEMORY
            elif detail:
                out["system_error"] = f"cannot start {self.exe}: {detail}"
            else:
                out["system_error"] = f"the program could not be started (status {status:#x})"
            return out
        cpu_ns = 0
        if self.rusage is not None:
            ru = self.rusage
            cpu_ns = int(round((ru.ru_utime + ru.ru_stime) * 1e9)) - self.exec_cpu_ns
        cpu_ns = max(cpu_ns, 0)
        killed = self.killed
        if killed is None:
            # Limits broken without the engine having to step in: decided
            # after the fact, in this order.
            if self.mem_limit_kib is not None and self.mem_peak_kib > self.mem_limit_kib:
                killed = MEMORY
            elif self.cpu_limit_ns is not None and (
                    cpu_ns > self.cpu_limit_ns or sig == signal.SIGXCPU
                    or (sig == signal.SIGKILL and cpu_ns >= self.cpu_limit_ns)):
                killed = CPU_TIME
            elif self.wall_limit_s is not None and end - start > self.wall_limit_s:
                # Ended after its wall-clock limit before the watchdog came
                # round to it: over the limit all the same.
                killed = WALL_TIME
            elif self.output_limit is not None and (
                    sig == signal.SIGXFSZ or self._files_over_limit(stdio)):
                killed = OUTPUT
        out.update(cpu_time_ms=cpu_ns // 1_000_000, killed=killed,
                   mem_peak_kib=self.mem_peak_kib, mem_resident_peak_kib=self.rss_peak_kib,
                   syscalls=self.stops,
                   violation=self.violation if killed == SYSCALL else None)
        return out

    def _files_over_limit(self, stdio: list[int]) -> bool:
        limit = self.output_limit
        assert limit is not None
        for mode, fd in zip(self.stdio_modes[1:], stdio[1:]):
            if mode == "fd":
                try:
                    st = os.fstat(fd)
                except OSError:
                    continue
                if stat.S_ISREG(st.st_mode) and st.st_size > limit:
                    return True
        return False
