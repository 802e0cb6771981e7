"""The process engine: run_process against real programs."""

from __future__ import annotations

import gc
import os
import signal
import time

import pytest

from sio.workers._engine import process
from sio.workers._engine.process import run_process
from sio.workers._engine.types import CAPTURE, STDOUT, KillReason, Limits

pytestmark = pytest.mark.integration


@pytest.fixture(params=["limitexec", "preexec"])
def spawn_path(request, monkeypatch):
    """Run the test with the limitexec wrapper and with the preexec_fn
    fallback (used where the wrapper cannot be built)."""
    if request.param == "limitexec":
        if process.limitexec_path() is None:
            from tests.support import missing
            missing("a C compiler to build the limitexec wrapper")
    else:
        monkeypatch.setattr(process, "_wrapper", [None])
    return request.param


@pytest.fixture
def env():
    return dict(os.environ)


def open_fds() -> set[int]:
    return {int(fd) for fd in os.listdir("/proc/self/fd")}


def children() -> set[int]:
    """Our child processes, zombies included (other fixtures may have some)."""
    found = set()
    for task in os.listdir("/proc/self/task"):
        with open(f"/proc/self/task/{task}/children") as f:
            found.update(int(pid) for pid in f.read().split())
    return found


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")  # a zombie is dead: init reaps it


def test_captures_stdout_and_stderr_apart(spawn_path, c_program, tmp_path, env):
    prog = c_program("echo_streams")
    outcome = run_process([prog, "a b", "c"], cwd=str(tmp_path), env=env,
                          stdout=CAPTURE, stderr=CAPTURE)
    assert outcome.ok
    assert outcome.stdout == b"a b\nc\n"
    assert outcome.stderr == b"err\n"
    assert not outcome.output_truncated


def test_stderr_to_stdout_and_files(spawn_path, c_program, tmp_path, env):
    prog = c_program("echo_streams")
    (tmp_path / "in").write_bytes(b"input\n")
    with open(tmp_path / "in", "rb") as fin, open(tmp_path / "out", "wb") as fout:
        outcome = run_process([prog, "x"], cwd=str(tmp_path), env=env, stdin=fin.fileno(),
                              stdout=fout.fileno(), stderr=STDOUT)
    assert outcome.ok
    assert (tmp_path / "out").read_bytes() == b"input\nerr\nx\n"


def test_capture_is_truncated_but_program_finishes(c_program, tmp_path, env):
    prog = c_program("write_bytes")
    outcome = run_process([prog, "1000000"], cwd=str(tmp_path), env=env, stdout=CAPTURE,
                          limits=Limits(capture_bytes=1000))
    assert outcome.exit_code == 0
    assert outcome.stdout == b"x" * 1000
    assert outcome.output_truncated


def test_exit_code_signal_and_missing_program(c_program, tmp_path, env):
    assert run_process([c_program("exit_with"), "7"], cwd=str(tmp_path), env=env).exit_code == 7
    outcome = run_process([c_program("sig_segv")], cwd=str(tmp_path), env=env)
    assert (outcome.exit_code, outcome.signal, outcome.killed) == (None, signal.SIGSEGV, None)
    with pytest.raises(FileNotFoundError):
        run_process(["./no-such-program"], cwd=str(tmp_path), env=env)
    with pytest.raises(FileNotFoundError):
        run_process(["no-such-program-in-path"], cwd=str(tmp_path), env=env)


def test_relative_program_and_path_lookup(c_program, tmp_path, env):
    os.link(c_program("exit_with"), tmp_path / "prog")
    assert run_process(["./prog", "3"], cwd=str(tmp_path), env=env).exit_code == 3
    env["PATH"] = f"{tmp_path}:{env.get('PATH', '')}"
    assert run_process(["prog", "4"], cwd="/", env=env).exit_code == 4


def test_cpu_time_limit_kills_the_group(spawn_path, c_program, tmp_path, env):
    outcome = run_process([c_program("busy_loop")], cwd=str(tmp_path), env=env,
                          limits=Limits(cpu_time_ms=300))
    assert outcome.killed is KillReason.CPU_TIME
    assert outcome.signal == signal.SIGKILL
    assert 300 <= outcome.cpu_time_ms < 1500


def test_cpu_time_of_a_program_under_a_shell_counts(c_program, tmp_path, env):
    # The busy program is a child of the shell: its CPU time is found in /proc.
    outcome = run_process(["/bin/sh", "-c", f"{c_program('busy_loop')}; exit 0"],
                          cwd=str(tmp_path), env=env, limits=Limits(cpu_time_ms=300))
    assert outcome.killed is KillReason.CPU_TIME
    assert outcome.cpu_time_ms < 1500  # the watchdog, not the RLIMIT_CPU backstop (2 s)


def test_wall_time_limit(spawn_path, c_program, tmp_path, env):
    start = time.monotonic()
    outcome = run_process([c_program("sleep_forever")], cwd=str(tmp_path), env=env,
                          limits=Limits(wall_time_ms=300, cpu_time_ms=10000))
    assert outcome.killed is KillReason.WALL_TIME
    assert 300 <= outcome.wall_time_ms < 3000
    assert outcome.cpu_time_ms < 100
    assert time.monotonic() - start < 5


def test_memory_limit(spawn_path, c_program, tmp_path, env):
    prog = c_program("mem_30MiB_heap")
    assert run_process([prog], cwd=str(tmp_path), env=env,
                       limits=Limits(address_space_kib=36 * 1024)).ok
    assert not run_process([prog], cwd=str(tmp_path), env=env,
                           limits=Limits(address_space_kib=27 * 1024)).ok


def test_file_size_limit_is_output_kill(spawn_path, c_program, tmp_path, env):
    with open(tmp_path / "out", "wb") as fout:
        outcome = run_process([c_program("write_bytes"), "100000"], cwd=str(tmp_path),
                              env=env, stdout=fout.fileno(), limits=Limits(output_bytes=5000))
    assert outcome.signal == signal.SIGXFSZ
    assert outcome.killed is KillReason.OUTPUT
    assert (tmp_path / "out").stat().st_size == 5000


def test_limits_are_set_and_core_dumps_off(spawn_path, tmp_path, env):
    outcome = run_process(["/bin/cat", "/proc/self/limits"], cwd=str(tmp_path), env=env,
                          stdout=CAPTURE,
                          limits=Limits(cpu_time_ms=1500, address_space_kib=100000,
                                        output_bytes=4096, stack_kib=8000))
    rows = {line[:26].strip(): line[26:].split()[:2]
            for line in outcome.stdout.decode().splitlines()[1:]}
    assert rows["Max cpu time"] == ["3", "4"]  # backstop: ceil(1.5 s) + 1 s, then SIGKILL
    assert rows["Max address space"] == [str(100000 * 1024)] * 2
    assert rows["Max file size"] == ["4096"] * 2
    assert rows["Max stack size"] == [str(8000 * 1024)] * 2
    assert rows["Max core file size"] == ["0", "0"]


def test_grandchild_is_killed_after_normal_exit(spawn_path, c_program, tmp_path, env):
    outcome = run_process([c_program("fork_child")], cwd=str(tmp_path), env=env,
                          stdout=CAPTURE)
    assert outcome.ok
    child = int(outcome.stdout)
    deadline = time.monotonic() + 5
    while alive(child) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not alive(child)


def test_grandchild_holding_the_pipe_does_not_block(tmp_path, env):
    start = time.monotonic()
    outcome = run_process(["/bin/sh", "-c", "sleep 30 & echo started"], cwd=str(tmp_path),
                          env=env, stdout=CAPTURE)
    assert outcome.stdout == b"started\n"
    assert time.monotonic() - start < 5


def test_nothing_leaks(spawn_path, c_program, tmp_path, env):
    # Earlier tests' garbage (e.g. client sockets) must not be closed by the
    # collector in the middle of the measurement.
    gc.collect()
    before = open_fds()
    kids = children()
    for _ in range(5):
        run_process([c_program("echo_streams")], cwd=str(tmp_path), env=env,
                    stdout=CAPTURE, stderr=CAPTURE)
        run_process([c_program("busy_loop")], cwd=str(tmp_path), env=env,
                    limits=Limits(cpu_time_ms=50))
    with pytest.raises(FileNotFoundError):
        run_process([c_program("trivial")], cwd=str(tmp_path / "missing-dir"), env=env,
                    stdout=CAPTURE)
    assert open_fds() == before
    assert os.listdir(tmp_path) == []
    assert children() == kids  # none left, not even unreaped


def test_exception_while_waiting_kills_and_reaps(monkeypatch, c_program, tmp_path, env):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(process, "_watch", interrupted)
    before = open_fds()
    kids = children()
    with pytest.raises(KeyboardInterrupt):
        run_process([c_program("sleep_forever")], cwd=str(tmp_path), env=env, stdout=CAPTURE)
    assert open_fds() == before
    assert children() == kids


def test_without_pidfd(monkeypatch, c_program, tmp_path, env):
    monkeypatch.setattr(process, "_pidfd", lambda pid: None)
    outcome = run_process([c_program("echo_streams"), "z"], cwd=str(tmp_path), env=env,
                          stdout=CAPTURE)
    assert outcome.ok and outcome.stdout == b"z\n"
    outcome = run_process([c_program("sleep_forever")], cwd=str(tmp_path), env=env,
                          limits=Limits(wall_time_ms=200))
    assert outcome.killed is KillReason.WALL_TIME
