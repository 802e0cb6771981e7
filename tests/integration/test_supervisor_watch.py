"""The supervisor against programs that attack the supervision itself
rather than the machine: the tracer flooded with stops (the watchdogs must
still run), the worker killed mid-run (nothing of the run may outlive it),
channels between concurrent runs (record locks), rewriting the output
(O_APPEND), and ``fake_time``. Like every test of test_supervisor.py, each
runs with the compiled stub and with Python children."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import replace

import pytest

from sio.workers._engine.supervisor import Policy, run_supervised, verdict
from sio.workers._engine.types import CAPTURE, KillReason, Limits
from tests.integration.test_supervisor import (  # noqa: F401 (fixtures)
    ENV,
    LIMITS,
    _children,
    _gone,
    child_kind,
    job,
    supervision_available,
)

pytestmark = pytest.mark.integration


# --- the tracer cannot be starved -------------------------------------------

@pytest.mark.parametrize("threads", [2, 4, 15])
def test_a_flood_of_stops_still_ends_at_the_wall_limit(job, threads):
    """Threads that keep a traced call (a long path to resolve) always
    pending: the watchdog must still end the run at its wall-clock limit
    (the job fixture checks that nothing of it is left running)."""
    limits = replace(LIMITS, cpu_time_ms=20000, wall_time_ms=1000)
    start = time.monotonic()
    outcome, result = job.run("hostile_tracer_flood", str(threads), limits=limits,
                              policy=Policy(max_threads=16))
    elapsed = time.monotonic() - start
    assert result == ("TLE", "real time limit exceeded"), outcome
    assert outcome.killed is KillReason.WALL_TIME
    assert 1000 <= outcome.wall_time_ms < 1000 + 500
    assert elapsed < 1 + 2  # generous: the machine is shared


_WORKER = """
import sys
from sio.workers._engine.supervisor import Policy, run_supervised
from sio.workers._engine.types import Limits
run_supervised([sys.argv[1], "4"], cwd=sys.argv[2], env={},
               limits=Limits(cpu_time_ms=60000, wall_time_ms=60000),
               policy=Policy(max_threads=16))
"""


def test_killing_the_worker_during_a_flood_ends_everything_within_a_second(
        job, child_kind):
    env = dict(os.environ)
    if child_kind == "python":
        env["SIO_ENGINE_STUB"] = "off"
    worker = subprocess.Popen([sys.executable, "-c", _WORKER,
                               job.programs["hostile_tracer_flood"], str(job.dir)], env=env)
    try:
        spawner = program = None
        deadline = time.monotonic() + 20
        while program is None and time.monotonic() < deadline:
            time.sleep(0.02)
            for pid in _children(worker.pid):
                for child in _children(pid):
                    try:
                        if os.readlink(f"/proc/{child}/exe").endswith("hostile_tracer_flood"):
                            spawner, program = pid, child
                    except OSError:
                        pass
        assert program is not None, "the flood never started"
        time.sleep(0.3)  # well into the flood
        worker.kill()
        worker.wait()
        assert _gone(spawner, timeout=1) and _gone(program, timeout=1)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
