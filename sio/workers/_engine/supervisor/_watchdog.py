"""The watchdog: a run's deadlines (CPU and wall-clock time), its memory
samples, and killing the program with a reason.

Apart because these must run whatever the program does to the tracer (see
the event loop in :mod:`._run`, which calls :meth:`Watchdog._watchdog` at
every turn): the code that enforces limits is kept small and separate from
the code that decides system calls. The reasons it kills with are the
values of :class:`sio.workers._engine.types.KillReason` (the client makes
them that type); what they mean as verdicts is the policy layer's business.
"""

from __future__ import annotations

import _signal as signal
import os
import time

from sio.workers._engine.supervisor._state import RunState

# Values of sio.workers._engine.types.KillReason (the client converts).
CPU_TIME, WALL_TIME, MEMORY, OUTPUT, SYSCALL = (
    "cpu_time", "wall_time", "memory", "output", "syscall")
WATCHDOG_PERIOD = 0.05  # seconds: the longest the watchdog sleeps


def _cpu_clock(pid: int) -> int:
    """clockid of the CPU-time clock of process ``pid`` (glibc's
    clock_getcpuclockid: CPUCLOCK_SCHED of the whole thread group), read in ns
    with no /proc parsing."""
    return ((~pid) << 3) | 2


def _proc_status(tid: int) -> dict[str, int]:
    """VmPeak, VmSize and VmHWM (KiB) of ``tid``, those it has. Read with one
    read() and searched as bytes: this runs at every exit stop (half the
    time of reading it line by line as a file)."""
    out = {}
    try:
        fd = os.open(f"/proc/{tid}/status", os.O_RDONLY | os.O_CLOEXEC)
        try:
            data = os.read(fd, 1 << 14)
        finally:
            os.close(fd)
        for key, name in _STATUS_KEYS:
            i = data.find(key)
            if i >= 0:
                out[name] = int(data[i + len(key):data.index(b" kB", i)])
    except (OSError, ValueError):
        pass
    return out


_STATUS_KEYS = ((b"\nVmPeak:", "VmPeak"), (b"\nVmSize:", "VmSize"), (b"\nVmHWM:", "VmHWM"))


class Watchdog(RunState):
    """A run's deadlines, memory samples and killing."""

    def _cpu_now(self) -> int:
        try:
            self.last_cpu_ns = time.clock_gettime_ns(_cpu_clock(self.leader))
        except OSError:
            pass
        return self.last_cpu_ns

    def _watchdog(self) -> float:
        """Enforce the CPU and wall limits; return how long to sleep."""
        timeout = WATCHDOG_PERIOD
        if self.killed is not None:
            return timeout
        now = time.monotonic()
        if self.exec_time is not None and now - self.last_memory_sample > WATCHDOG_PERIOD:
            # For programs the kernel kills without an exit stop (RLIMIT_CPU's
            # SIGKILL): their VmPeak is then at most 50 ms old.
            self.last_memory_sample = now
            self._sample_memory(self.leader)
        if self.cpu_limit_ns is not None and self.exec_time is not None:
            left = self.cpu_limit_ns - (self._cpu_now() - self.exec_cpu_ns)
            if left < 0:
                self._kill(CPU_TIME)
                return timeout
            # The program is pinned to one CPU with all its threads, so its
            # CPU time cannot grow faster than the wall clock: sleeping for
            # the CPU time left cannot overshoot the limit.
            timeout = min(timeout, left / 1e9 + 0.0005)
        if self.wall_limit_s is not None:
            start = self.exec_time if self.exec_time is not None else self.fork_time
            left_s = start + self.wall_limit_s - now
            if left_s < 0:
                self._kill(WALL_TIME)
                return timeout
            timeout = min(timeout, left_s + 0.0005)
        return timeout

    def _sample_memory(self, tid: int) -> None:
        status = _proc_status(tid)
        if self.exec_time is not None:
            self.mem_peak_kib = max(self.mem_peak_kib, status.get("VmPeak", 0))
            self.rss_peak_kib = max(self.rss_peak_kib, status.get("VmHWM", 0))

    def _violate(self, name: str) -> None:
        if self.killed is None:
            self.violation = name
        self._kill(SYSCALL)

    def _kill(self, reason: str) -> None:
        if self.killed is None:
            self.killed = reason
            # Whether a SIGKILLed task still stops at PTRACE_EVENT_EXIT
            # depends on the kernel: read its memory while it surely can.
            self._sample_memory(self.leader)
            self._cpu_now()
        # The whole program at once, never one thread after another: SIGKILL
        # to the leader ends its thread group, its process group catches
        # anything else it might have started. Both are ids of our unreaped
        # child or tracee (with the view, the init's child: its ids as we
        # see them), so they cannot name another process. Tasks in a ptrace
        # stop are woken by SIGKILL; nothing here waits for the program to
        # be quiet.
        for kill in (os.kill, os.killpg):
            try:
                kill(self.leader, signal.SIGKILL)
            except OSError:
                pass
        init = self.sp.init
        if self.view_root is not None and init is not None:
            # With the view, the program lives in the PID namespace of the
            # spawner's init: killing the init makes the kernel kill
            # everything left in that namespace, whatever group it is in.
            # Not waited for here: the dying init waits for its traced
            # children to be reaped, which is this loop's job (_reap and
            # _reap_all take the init too, see Spawner.init_reaped); _loop
            # reaps it at the end, and the next run starts a new init.
            try:
                os.kill(init[0], signal.SIGKILL)  # our unreaped child
            except OSError:
                pass
