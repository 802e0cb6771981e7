"""Background services: start a program detached in its own session, stop
its whole process group.

Used for servers that must outlive the script that started them (the
Filetracker server of ``sio-run-filetracker``). Judged programs never go
through here. Linux only: liveness is read from ``/proc``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence


def spawn_detached(argv: Sequence[str], *, env: Mapping[str, str], log_path: str,
                   cwd: str = "/") -> subprocess.Popen[bytes]:
    """Start ``argv`` in a new session (so its own process group, with no
    controlling terminal), stdin from ``/dev/null``, stdout and stderr
    appended to ``log_path``.

    A new session is what lets the service outlive us: a terminal hang-up or
    a Ctrl-C in our terminal does not reach it, and a CI system that kills
    our process group leaves it alone. Its process-group id equals the
    returned process's pid, which :func:`stop_group` relies on.
    """
    with open(log_path, "ab") as log:
        return subprocess.Popen(list(argv), stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, env=dict(env), cwd=cwd,
                                start_new_session=True, close_fds=True)


def _proc_state(pid: int) -> tuple[str, int] | None:
    """(state letter, process group) of a live process, None if gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read().decode("ascii", "replace")
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name (2nd field) may contain spaces and parentheses:
    # the fields we want come after its last ')'.
    fields = data[data.rindex(")") + 2:].split()
    return fields[0], int(fields[2])


def group_alive(pgid: int) -> bool:
    """Whether any process of group ``pgid`` still runs (zombies do not
    count: nobody may be left to reap an orphaned one in a container)."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            state = _proc_state(int(entry))
            if state is not None and state[1] == pgid and state[0] not in "ZX":
                return True
    return False


def stop_group(pgid: int, *, timeout_s: float = 10.0,
               proc: subprocess.Popen[bytes] | None = None) -> None:
    """Stop every process of group ``pgid``: SIGTERM, wait up to
    ``timeout_s``, then SIGKILL. ``proc``, if it is our child leading that
    group, is reaped so that no zombie is left behind."""
    for sig, wait_s in ((signal.SIGTERM, timeout_s), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            if proc is not None:
                proc.poll()
            if not group_alive(pgid):
                break
            time.sleep(0.05)
        else:
            continue
        break
    if proc is not None:
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:  # pragma: no cover - survived SIGKILL
            pass
