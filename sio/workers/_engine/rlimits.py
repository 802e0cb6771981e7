"""A program's resource limits, computed and applied in one place for both
engines: the unprotected one (:mod:`.process`) and the supervisor's
spawner (:mod:`.supervisor._setup`).

Both give a program the same kernel limits for the same
:class:`~sio.workers._engine.types.Limits` fields (core dumps off, RLIMIT_CPU
as a backstop behind a watchdog, RLIMIT_FSIZE, RLIMIT_STACK, RLIMIT_AS);
they differ only in what they pass here (the supervisor's file-size limit
is one byte over the output limit, it sets RLIMIT_AS itself at the very
end and adds the limits of a run under its own uid). The C helpers
(``limitexec.c``, ``execstub.c``) apply the lists made here.

Imported by the spawner process: built-in modules only (see
:mod:`.supervisor._spawner`), plain ints in and out.
"""

from __future__ import annotations

import resource

#: (resource, soft, hard) in the kernel's units (RLIM_INFINITY is -1)
RLimit = tuple[int, int, int]


def cpu_backstop(cpu_time_ms: int) -> RLimit:
    """RLIMIT_CPU behind a watchdog that kills at the limit itself: SIGXCPU
    a whole second after the limit (rounded up to seconds), SIGKILL (which
    cannot be ignored) one more later, so that it never pre-empts the
    precise watchdog."""
    soft = -(-cpu_time_ms // 1000) + 1
    return (resource.RLIMIT_CPU, soft, soft + 1)


def program_rlimits(*, cpu_time_ms: int | None, file_size_bytes: int | None,
                    stack_kib: int | None, address_space_kib: int | None = None,
                    unlimited_stack: bool = False, more: tuple[RLimit, ...] = ()
                    ) -> list[RLimit]:
    """The rlimits of a program, in the order to set them: RLIMIT_CORE 0,
    RLIMIT_AS (``address_space_kib``), RLIMIT_CPU (:func:`cpu_backstop`),
    RLIMIT_FSIZE, then ``more``, and RLIMIT_STACK last (see :func:`apply_rlimits`).
    None leaves a limit inherited, but a stack of None is unlimited with
    ``unlimited_stack``."""
    out = [(resource.RLIMIT_CORE, 0, 0)]
    if address_space_kib is not None:
        size = address_space_kib * 1024
        out.append((resource.RLIMIT_AS, size, size))
    if cpu_time_ms is not None:
        out.append(cpu_backstop(cpu_time_ms))
    if file_size_bytes is not None:
        out.append((resource.RLIMIT_FSIZE, file_size_bytes, file_size_bytes))
    out += more
    if stack_kib is not None or unlimited_stack:
        stack = resource.RLIM_INFINITY if stack_kib is None else stack_kib * 1024
        out.append((resource.RLIMIT_STACK, stack, stack))
    return out


def apply_rlimits(rlimits: list[RLimit], *, stack_within_hard: bool = False) -> None:
    """setrlimit() each, in order (in the child, before its exec). With
    ``stack_within_hard``, a stack the process may not raise its hard limit
    to is as much as that limit allows, instead of an error."""
    for res, soft, hard in rlimits:
        try:
            resource.setrlimit(res, (soft, hard))
        except (OSError, ValueError):
            if not stack_within_hard or res != resource.RLIMIT_STACK:
                raise
            # Cannot raise the hard limit: as much as it allows.
            hard = resource.getrlimit(res)[1]
            resource.setrlimit(res, (min(soft, hard), hard))
