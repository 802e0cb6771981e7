"""The supervisor against programs that attack the supervision itself
rather than the machine: the tracer flooded with stops (the watchdogs must
still run), the worker killed mid-run (nothing of the run may outlive it),
channels between concurrent runs (record locks), rewriting the output
(O_APPEND), and ``fake_time``. Like every test of test_supervisor.py, each
runs with the compiled stub and with Python children."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace

import pytest

from sio.workers._engine.supervisor import Policy
from sio.workers._engine.types import CAPTURE, KillReason
from tests.integration.test_supervisor import (  # noqa: F401 (fixtures)
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


_IDLE_WORKER = """
import os, subprocess, sys, time
from sio.workers._engine.supervisor import _client, run_supervised
run_supervised([sys.argv[1]], cwd=sys.argv[2], env={})
spawner = _client._idle[0]
# A copy of the worker's end of the socket that outlives the worker (as one
# inherited by a process it started could): no end of stream for the spawner.
copy = os.dup(spawner.sock.fileno())
holder = subprocess.Popen(["sleep", "30"], pass_fds=(copy,))
print(spawner.proc.pid, holder.pid, flush=True)
time.sleep(60)
"""


def test_an_idle_spawner_ends_when_its_worker_dies_even_if_its_socket_lives_on(job, child_kind):
    env = dict(os.environ)
    if child_kind == "python":
        env["SIO_ENGINE_STUB"] = "off"
    worker = subprocess.Popen([sys.executable, "-c", _IDLE_WORKER, job.programs["sup_behave"],
                               str(job.dir)], env=env, stdout=subprocess.PIPE)
    holder = None
    try:
        spawner, holder = map(int, worker.stdout.readline().split())
        worker.kill()
        worker.wait()
        assert _gone(spawner, timeout=1)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
        worker.stdout.close()
        if holder is not None:
            os.kill(holder, signal.SIGKILL)

# --- no channel between runs, no rewriting of the output ------------------------

def test_record_locks_on_a_shared_input_are_refused(job):
    """Two concurrent runs on one input (as a hard link of Filetracker's
    cache is): every lock either tries fails, so neither can see the
    other's."""
    from concurrent.futures import ThreadPoolExecutor

    data = job.dir / "in"
    data.write_text("1 2\n")

    def run(_):
        with open(data, "rb") as f:
            return job.run("hostile_locks", "300", stdin=f.fileno())

    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(run, range(2)))
    for outcome, result in results:
        assert result == ("OK", "ok"), outcome
        lines = dict(line.split() for line in outcome.stdout.decode().splitlines())
        assert set(lines) == {"F_SETLK", "F_SETLKW", "F_GETLK", "F_OFD_SETLK",
                              "F_OFD_SETLKW", "F_OFD_GETLK", "flock"}
        assert set(lines.values()) == {str(errno.ENOLCK)}, lines


def test_the_output_cannot_be_rewritten(job):
    out = job.dir / "out"
    out.write_bytes(b"")
    with open(out, "ab") as f:
        outcome, result = job.run("hostile_append", stdout=f.fileno(), stderr=CAPTURE)
    assert result == ("OK", "ok"), outcome
    # F_SETFL keeps O_APPEND (harmless), the others are refused (EPERM)
    assert outcome.stderr == b"setfl 0 append 1 ftruncate 1 pwritev2 1\n"
    assert out.read_bytes() == b"first\nXX"


# --- fake_time ------------------------------------------------------------------

def _times_of(stdout: bytes) -> dict[str, list[str]]:
    return {line.split()[0]: line.split()[1:] for line in stdout.decode().splitlines()}


def _times(outcome) -> dict[str, list[str]]:
    return _times_of(outcome.stdout)


@pytest.mark.parametrize("program", ["sup_fake_time", "sup_fake_time.dyn"])
def test_fake_time(job, program):
    """RDTSC, RDTSCP and the clocks (through the vDSO of a dynamic program
    too): real with "off", all 0 with "zero", the same increasing sequence
    in every run with "random"."""
    runs = {}
    for mode in ("off", "zero", "random", "random"):
        # It reads its /proc/self/maps: the vDSO and its data pages are gone.
        outcome, result = job.run(program, "maps",
                                  policy=Policy(fake_time=mode, read_own_proc=True))
        assert result == ("OK", "ok"), outcome
        runs.setdefault(mode, []).append(_times(outcome))
    for mode, seen in runs.items():
        for vdso in [each.pop("vdso") for each in seen]:
            if mode == "off":  # [vdso], [vvar] (and [vvar_vclock] on Linux >= 6.13)
                assert vdso[0] == "1" and int(vdso[1]) >= 2, vdso
            else:
                assert vdso == ["0", "0"], (mode, vdso)
    real = runs["off"][0]
    assert set(real) == {"rdtsc", "rdtscp", "monotonic", "realtime", "gettimeofday", "time"}
    assert int(real["rdtsc"][0]) > 0 and float(real["realtime"][0]) > 1.6e9  # after 2020
    for source, values in runs["zero"][0].items():
        assert all(float(v) == 0 for v in values), (source, values)
    first, second = runs["random"]
    assert first == second
    for source, (a, b) in first.items():
        assert 0 < float(a) <= float(b), (source, a, b)
        if not source.startswith("rdtsc"):
            assert float(b) < 1.6e9, (source, b)  # not the real time
    assert first["rdtsc"][0] != first["rdtsc"][1]


def test_fake_time_is_a_policy_of_three_modes():
    with pytest.raises(ValueError, match="fake_time"):
        Policy(fake_time="on")


def test_the_supervised_executor_reads_fake_time_from_the_environ(job):
    """As SIO2 sends it: an unprefixed environ key, whatever the prefix of
    the limits."""
    from sio.workers.errors import UsageError
    from sio.workers.executors import SupervisedExecutor

    program = job.programs["sup_fake_time"]
    with SupervisedExecutor() as ex:
        renv = ex([program], capture_output=True, cwd=str(job.dir),
                  environ={"fake_time": "zero", "exec_time_limit": 2000},
                  environ_prefix="exec_")
        assert renv["result_code"] == "OK"
        assert _times_of(renv["stdout"])["rdtsc"] == ["0", "0"]
        renv = ex([program], capture_output=True, cwd=str(job.dir),
                  environ={"fake_time": "off"})
        assert _times_of(renv["stdout"])["rdtsc"] != ["0", "0"]
        with pytest.raises(UsageError, match="fake_time"):
            ex([program], cwd=str(job.dir), environ={"fake_time": "yes"})
