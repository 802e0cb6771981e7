"""``sio2jail-exec`` and ``sio2jail-interactive-exec``: the probe of the
hardware instruction counter, and the clear failure of both jobs (this tree
has no instruction counting in its supervisor)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

from sio.executors.selection import ExecutorUnavailable, InstructionCountingUnavailable
from sio.workers import runner
from sio.workers._engine import perf
from sio.workers.errors import SioWorkersError
from tests.integration.test_batch_cli import result_of, sio_batch
from tests.integration.test_judge_exec import exec_env, run_job
from tests.support import missing

pytestmark = pytest.mark.integration


def perf_stat_supports_instructions() -> bool:
    """What ``perf stat -e instructions true`` says (the reference answer)."""
    if shutil.which("perf") is None:
        missing("perf (package linux-perf)", required=False)
    p = subprocess.run(["perf", "stat", "-x,", "-e", "instructions,task-clock", "true"],
                       capture_output=True, text=True, timeout=60)
    if p.returncode != 0 or "task-clock" not in p.stderr:
        # Debian's wrapper fails when no perf matches the running kernel.
        missing(f"a working perf for this kernel: {p.stderr.strip()[:200]}", required=False)
    line = next(x for x in p.stderr.splitlines() if x.endswith("instructions,") or
                ",instructions," in x)
    return "<not supported>" not in line and "<not counted>" not in line


def test_software_counter_opens():
    # Shows that the probe works at all: the task clock is a software event,
    # present on every kernel with perf events.
    probe = perf.probe_counter(perf.PERF_TYPE_SOFTWARE, perf.PERF_COUNT_SW_TASK_CLOCK)
    if not probe.available and ("not permitted" in probe.reason or "no perf" in probe.reason):
        missing(f"perf_event_open for this process: {probe.reason}", required=False)
    assert probe.available, probe.reason
    assert probe.reason == ""


def test_instruction_probe_agrees_with_perf_stat():
    probe = perf.instruction_counter()
    assert probe.available == perf_stat_supports_instructions(), probe
    assert "PERF_COUNT_HW_INSTRUCTIONS" in probe.counter
    if not probe.available:
        assert "does not provide it" in probe.reason


def test_probe_is_cached_and_leaks_no_descriptor():
    before = set(os.listdir("/proc/self/fd"))
    perf.probe_counter.cache_clear()
    first = perf.instruction_counter()
    perf.probe_counter(perf.PERF_TYPE_SOFTWARE, perf.PERF_COUNT_SW_TASK_CLOCK)
    assert perf.instruction_counter() is first
    assert set(os.listdir("/proc/self/fd")) == before


def test_unknown_event_type_is_reported_unavailable():
    probe = perf.probe_counter(4242, 0)
    assert not probe.available and probe.reason


# --------------------------------------------------------------------------
# The jobs
# --------------------------------------------------------------------------

def expected_message() -> str:
    if perf.instruction_counter().available:
        return "does not count instructions yet"
    return "this machine does not have it"


@pytest.mark.parametrize("job_type, instead", [
    ("sio2jail-exec", "'exec' or 'cpu-exec'"),
    ("sio2jail-interactive-exec", "'interactive-exec' or 'cpu-interactive-exec'"),
])
def test_job_fails_clearly_through_runner_run(ft_store, c_program, job_type, instead):
    env = exec_env(ft_store, c_program("judge_sum"), job_type=job_type,
                   interactor_file=ft_store.put("soc", "not run"))
    with pytest.raises(InstructionCountingUnavailable) as info:
        runner.run(env)
    message = str(info.value)
    assert isinstance(info.value, ExecutorUnavailable) and isinstance(info.value, SioWorkersError)
    assert expected_message() in message
    assert "counted instructions" in message and "PERF_COUNT_HW_INSTRUCTIONS" in message
    assert f"Use job type {instead}" in message


def test_job_fails_through_sio_batch_with_a_failure_environ(tmp_path, c_program):
    (tmp_path / "t.in").write_text("2 3\n")
    environ = {"job_type": "sio2jail-exec", "use_filetracker": False,
               "exe_file": c_program("judge_sum"), "in_file": str(tmp_path / "t.in"),
               "exec_time_limit": 1000, "extra_args": {"nested": [1, {"x": None}]}}
    p = sio_batch(environ=environ)
    assert p.returncode == 1, p.stderr
    result = result_of(p)
    assert result["result"] == "FAILURE"
    assert expected_message() in result["exception"]
    assert "InstructionCountingUnavailable" in result["traceback"]
    assert "result_code" not in result  # never a made-up verdict
    assert result["extra_args"] == environ["extra_args"]
    assert "InstructionCountingUnavailable" in p.stderr
    json.dumps(result)


def test_output_only_runs_nothing_so_it_is_judged(ft_store):
    # oioioi sends output-only submissions as sio2jail-exec by default.
    env = exec_env(ft_store, "/dev/null", None, "1 2 3\n4\n", job_type="sio2jail-exec",
                   exe_file=ft_store.put("ans.txt", "1 2 3\n4\n"),
                   exec_info={"mode": "output-only"})
    result = run_job(env)
    assert (result["result_code"], result["result_percentage"]) == ("OK", [100, 1])
