"""Probe for performance counters (``perf_event_open``), for
instruction-counted time.

Instruction-counted time (``sio2jail-exec``: 2·10⁹ instructions = one
virtual second) needs the CPU's hardware counter of retired instructions.
Many machines lack it: virtual machines often do not pass the PMU through,
and then ``perf stat -e instructions`` says ``<not supported>`` while
software events (``task-clock``) still work. :func:`probe_counter` opens a
counter on the calling thread and closes it at once; the answer is cached
per process (the hardware does not change under a running worker).
"""

from __future__ import annotations

import ctypes
import errno
import functools
import os
import platform
from dataclasses import dataclass

__all__ = [
    "CounterProbe",
    "probe_counter",
    "instruction_counter",
    "PERF_TYPE_HARDWARE",
    "PERF_TYPE_SOFTWARE",
    "PERF_COUNT_HW_INSTRUCTIONS",
    "PERF_COUNT_SW_TASK_CLOCK",
]

# <linux/perf_event.h>
PERF_TYPE_HARDWARE = 0
PERF_TYPE_SOFTWARE = 1
PERF_COUNT_HW_INSTRUCTIONS = 1
PERF_COUNT_SW_TASK_CLOCK = 1
PERF_FLAG_FD_CLOEXEC = 1 << 3

# attr.flags bits
_DISABLED = 1 << 0
_EXCLUDE_KERNEL = 1 << 5
_EXCLUDE_HV = 1 << 6

_NR_PERF_EVENT_OPEN = {"x86_64": 298, "aarch64": 241, "i686": 336, "i386": 336}

_NAMES = {
    (PERF_TYPE_HARDWARE, PERF_COUNT_HW_INSTRUCTIONS): "hardware counter of instructions "
                                                      "(PERF_COUNT_HW_INSTRUCTIONS)",
    (PERF_TYPE_SOFTWARE, PERF_COUNT_SW_TASK_CLOCK): "software task clock "
                                                    "(PERF_COUNT_SW_TASK_CLOCK)",
}


class _PerfEventAttr(ctypes.Structure):
    # The first PERF_ATTR_SIZE_VER0 (64) bytes of struct perf_event_attr: every
    # kernel with perf_event_open accepts this size, and the fields after it
    # are all optional.
    _fields_ = [
        ("type", ctypes.c_uint32),
        ("size", ctypes.c_uint32),
        ("config", ctypes.c_uint64),
        ("sample_period", ctypes.c_uint64),
        ("sample_type", ctypes.c_uint64),
        ("read_format", ctypes.c_uint64),
        ("flags", ctypes.c_uint64),
        ("wakeup_events", ctypes.c_uint32),
        ("bp_type", ctypes.c_uint32),
        ("config1", ctypes.c_uint64),
    ]


@dataclass(frozen=True)
class CounterProbe:
    """The answer of :func:`probe_counter`."""

    #: human name of the counter, e.g. ``hardware counter of instructions``
    counter: str
    #: the counter could be opened on this machine
    available: bool
    #: why not, in plain words (empty when :attr:`available`)
    reason: str = ""


def _reason(err: int) -> str:
    if err in (errno.ENOENT, errno.EOPNOTSUPP, errno.ENODEV):
        # What virtual machines without a passed-through PMU answer.
        return (f"the CPU or the hypervisor does not provide it "
                f"(perf_event_open: {os.strerror(err)})")
    if err in (errno.EACCES, errno.EPERM):
        return ("perf_event_open is not permitted to this process (see "
                f"/proc/sys/kernel/perf_event_paranoid; {os.strerror(err)})")
    if err == errno.ENOSYS:
        return "the kernel (or a seccomp filter) has no perf_event_open"
    return f"perf_event_open failed: {os.strerror(err)}"


@functools.cache
def probe_counter(type_: int, config: int) -> CounterProbe:
    """Whether the counter ``(type_, config)`` of ``perf_event_open`` can be
    opened for the calling thread in user mode; it is closed at once.
    Cached: each counter is probed once per process."""
    name = _NAMES.get((type_, config), f"perf counter type {type_} config {config}")
    nr = _NR_PERF_EVENT_OPEN.get(platform.machine())
    if nr is None:
        return CounterProbe(name, False,
                            f"perf_event_open is not known on {platform.machine()}")
    attr = _PerfEventAttr(type=type_, size=ctypes.sizeof(_PerfEventAttr), config=config,
                          # Created stopped and user mode only: nothing is counted,
                          # and exclude_kernel keeps it allowed at paranoid level 2.
                          flags=_DISABLED | _EXCLUDE_KERNEL | _EXCLUDE_HV)
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    fd = libc.syscall(ctypes.c_long(nr), ctypes.byref(attr), ctypes.c_long(0),
                      ctypes.c_long(-1), ctypes.c_long(-1),
                      ctypes.c_ulong(PERF_FLAG_FD_CLOEXEC))
    if fd < 0:
        return CounterProbe(name, False, _reason(ctypes.get_errno()))
    os.close(fd)
    return CounterProbe(name, True)


def instruction_counter() -> CounterProbe:
    """:func:`probe_counter` of the hardware instruction counter."""
    return probe_counter(PERF_TYPE_HARDWARE, PERF_COUNT_HW_INSTRUCTIONS)
