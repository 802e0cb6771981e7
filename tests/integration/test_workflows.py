"""SIO3 workflows end to end: sio3pack's own workflows for packages the tests
write (compile, run, check, grade; unpack stages with ingen, outgen and
inwer), and hand-written workflows for what sio3pack only describes
(interactive, encoder/decoder, channels, joint limits, hard time limit).

Everything runs for real: g++ in the workflow's mount namespace, programs
under cgroup resource groups, in PID namespaces, as unprivileged users.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.support import missing
from tests.workflow_support import (
    SOLUTIONS,
    SUM_MODEL,
    dump,
    load,
    run_workflow_json,
    use_our_lua,
    write_package,
)

pytestmark = [pytest.mark.integration, pytest.mark.privileged]

PY = "/usr/bin/python3"


@pytest.fixture(scope="module", autouse=True)
def _can_run_workflows():
    if os.geteuid() != 0:
        missing("workflows need root (namespaces, cgroups)", required=False)
    for controller in ("memory", "pids", "cpuacct", "cpu"):
        if not os.path.isdir(f"/sys/fs/cgroup/{controller}"):
            missing(f"cgroup v1 controller {controller}", required=False)
    if shutil.which("g++") is None:
        missing("g++")
    pytest.importorskip("sio3pack")


@pytest.fixture(autouse=True)
def _lua(monkeypatch):
    use_our_lua(monkeypatch)


def run_job(workflow: Any, **environ: Any) -> dict[str, Any]:
    from sio.workers.runner import run

    env = run({"job_type": "workflow", "workflow": workflow, "use_filetracker": False,
               **environ})
    assert env["result"] == "SUCCESS", env
    return env


# --------------------------------------------------------------------------
# Workflows from sio3pack
# --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def sum_pkg(tmp_path_factory):
    return write_package(tmp_path_factory.mktemp("packages"))


@pytest.mark.parametrize("solution, tests, status, score, groups", [
    ("sum.cpp", None, "OK", 100, {"0": "OK", "1": "OK", "2": "OK"}),
    ("sumb1.cpp", None, "WA", 50, {"0": "OK", "1": "OK", "2": "WA"}),
    ("sums1.cpp", ["1a"], "TLE", 0, {"1": "TLE"}),
    ("sumb2.cpp", ["0", "2a"], "RE", 0, {"0": "RE", "2": "RE"}),
])
def test_run_workflow_of_a_sum_package(sum_pkg, solution, tests, status, score, groups):
    env = run_job(run_workflow_json(sum_pkg, solution, tests))
    assert env["workflow_status"] == "ok", env["workflow_result"]
    compiled, result = env["workflow_registers"]
    assert compiled["status"] == "OK" and compiled["processes"][0]["exit_code"] == 0
    assert result == {"status": status, "score": score, "groups": groups}
    assert {t["state"] for t in env["workflow_result"]["tasks"]} == {"done"}
    notes = env["workflow_result"]["notes"]
    assert any("fd 2137" in n for n in notes) and any("read as KiB" in n for n in notes)


def test_compile_error_leaves_the_rest_not_run(tmp_path):
    pkg = write_package(tmp_path, "ce", solutions={"": "int main() { syntax error }"},
                        tests={"1a": ("1 1\n", "2\n")})
    env = run_job(run_workflow_json(pkg, "ce.cpp"))
    compiled, result = env["workflow_registers"]
    assert compiled["status"] == "RE" and compiled["processes"][0]["exit_code"] == 1
    assert result is None
    states = {t["name"]: t["state"] for t in env["workflow_result"]["tasks"]}
    assert states["Run solution for test 1a"] == "not_run"
    assert env["workflow_status"] == "ok"


def test_custom_checker_and_per_test_limits(tmp_path):
    config = """\
        title: Sum with a checker
        sinol_task_id: chk
        time_limit: 1000
        memory_limit: 65536
        time_limits:
          2: 3000
        memory_limits:
          1a: 32768
        """
    pkg = write_package(tmp_path, "chk", checker=True, config=config,
                        solutions={k: SOLUTIONS[k] for k in ("", "b1")})
    # Unpack stage 0 compiles the checker; it is observable and stored under
    # its handle, where the run workflows find it as an external object.
    op = load(pkg).get_unpack_operation()
    stage0 = dump(next(iter(op.get_workflow())))
    env = run_job(stage0)
    (handle,) = env["workflow_objects_out"]
    assert handle.endswith("/.cache/executables/chkchk.cpp.e") and os.access(handle, os.X_OK)

    from sio.workflows.job import load as load_workflow

    wf_json = run_workflow_json(pkg, "chk.cpp")
    wf, _ = load_workflow(wf_json)
    limits = {t.name: (t.resource_groups[0].time_limit, t.resource_groups[0].memory_limit)
              for t in wf.tasks if t.name.startswith("Run solution")}
    assert limits == {"Run solution for test 0": (1000, 65536 * 1024),
                      "Run solution for test 1a": (1000, 32768 * 1024),
                      "Run solution for test 1b": (1000, 65536 * 1024),
                      "Run solution for test 2a": (3000, 65536 * 1024)}
    good = run_job(wf_json)
    assert good["workflow_registers"][1]["status"] == "OK"
    wrong = run_job(run_workflow_json(pkg, "chkb1.cpp"))
    assert wrong["workflow_registers"][1] == {"status": "WA", "score": 50,
                                              "groups": {"0": "OK", "1": "OK", "2": "WA"}}
    logs = [line for t in wrong["workflow_result"]["tasks"] for line in t["log"]]
    # the checker got (in, user output, expected): its comment says so
    assert "test 2a:\tWRONG\texpected 100, got 101" in logs


INGEN = r"""
#include <cstdio>
int main() {
    const char *names[] = {"gen1a.in", "gen1b.in", "gen2a.in"};
    for (int i = 0; i < 3; i++) {
        FILE *f = fopen(names[i], "w");
        fprintf(f, "%d %d\n", i * 30, i * 40);
        fclose(f);
    }
}
"""
INWER = r"""
#include <cstdio>
int main() { int a, b; if (scanf("%d %d", &a, &b) != 2 || a > 100 || b > 100) return 1;
             printf("OK\n"); }
"""


def test_unpack_with_ingen_outgen_and_inwer(tmp_path):
    from sio3pack.workflow.workflow_op import WorkflowOperation

    pkg = write_package(tmp_path, "gen", tests={}, solutions={"": SUM_MODEL},
                        extra_prog={"geningen.cpp": INGEN, "geninwer.cpp": INWER})
    package = load(pkg)
    op = package.get_unpack_operation()
    stages = op.get_workflow()
    results = {}
    for wf in stages:
        if wf.name == "Run ingen":
            # sio3pack gives its task an integer register among named ones,
            # which its own to_json cannot serialise: name it.
            for task in wf.tasks:
                if getattr(task, "output_register", None) == 1:
                    task.output_register = "obsreg:ingen"
        data = dump(wf)
        exports = {}
        if wf.name == "Run ingen":
            exports = {"Run ingen": {"/inputs": str(pkg / "in") + "/"}}
        env = run_job(data, workflow_exports=exports, workflow_output_dir=str(tmp_path / "out"))
        assert env["workflow_status"] == "ok", env["workflow_result"]
        results[wf.name] = env
        answer = None
        if wf.name == "Run ingen":
            inputs = sorted(env["workflow_objects_out"])
            assert [os.path.basename(i) for i in inputs] == ["gen1a.in", "gen1b.in",
                                                               "gen2a.in"]
            assert Path(inputs[2]).read_text() == "60 80\n"
            package.reload_tests()
            answer = {"input_tests": inputs}
        WorkflowOperation.return_results(op, answer)
    assert set(results) >= {"Run ingen", "Outgen tests", "Inwer"}
    assert results["Outgen tests"]["workflow_registers"][-1] == {"ok": True, "failed": {}}
    outs = results["Outgen tests"]["workflow_objects_out"]
    assert sorted(outs) == ["gen1a.out", "gen1b.out", "gen2a.out"]
    assert Path(outs["gen2a.out"]).read_text() == "140\n"
    assert results["Inwer"]["workflow_registers"][-1] == {"ok": True, "failed": {}}


def test_user_out_and_test_run(sum_pkg, tmp_path):
    package = load(sum_pkg)
    model = next(s for s in package.model_solutions if s["file"].path.endswith("/sum.cpp"))
    test = next(t for t in package.tests if t.test_id == "2a")
    env = run_job(dump(next(iter(package.get_user_out_operation(model["file"], test)
                                 .get_workflow()))),
                  workflow_output_dir=str(tmp_path))
    assert env["workflow_registers"][1]["status"] == "OK"
    stored = env["workflow_objects_out"]["user_out_2a"]
    assert Path(stored).read_text() == "100\n"
    env = run_job(dump(next(iter(package.get_test_run_operation(model["file"], test.in_file)
                                 .get_workflow()))),
                  workflow_output_dir=str(tmp_path))
    assert env["workflow_registers"][1]["status"] == "OK"
    assert Path(env["workflow_objects_out"]["test_run_sum.cpp"]).read_text() == "100\n"


# --------------------------------------------------------------------------
# Hand-written workflows
# --------------------------------------------------------------------------

def group(**over: Any) -> dict[str, Any]:
    g = {"cpu_usage_limit": 100.0, "instruction_limit": 0, "memory_limit": 256 << 20,
         "oom_terminate_all_tasks": False, "pid_limit": 4, "swap_limit": 0, "time_limit": 5000}
    g.update(over)
    return g


def proc(program: int, descriptors: dict[int, dict[str, Any]], *args: str, ns: int = 0,
         rg: int = 0, pidns: int = 0, after: tuple[int, ...] = ()) -> dict[str, Any]:
    """A Python program: filesystem ``program`` is mounted at /prog.py in
    mount namespace ``ns``."""
    return {"arguments": [PY, "/prog.py", *args], "environment": ["PYTHONDONTWRITEBYTECODE=1"],
            "image": "", "mount_namespace": ns, "resource_group": rg, "pid_namespace": pidns,
            "working_directory": "/", "start_after": list(after),
            "descriptors": {str(k): v for k, v in descriptors.items()}}


def task(name: str, processes: list[dict[str, Any]], programs: list[str], *, reg: int = 0,
         pipes: int = 0, channels=(), groups=None, pid_namespaces: int = 1,
         hard_time_limit: int = 10000, extra_fs=(), extra_mounts=()) -> dict[str, Any]:
    """An execution task; ``programs[i]`` is the object of mount namespace i's
    /prog.py; ``extra_fs`` are more filesystems, ``extra_mounts`` more
    mountpoints, each with the index ``ns`` of its namespace."""
    fss = [{"type": "object", "handle": h} for h in programs] + list(extra_fs)
    nss = [{"root": 0, "mountpoints": [{"source": i, "target": "/prog.py", "writable": False}]}
           for i in range(len(programs))]
    for m in extra_mounts:  # {"ns": index, and the mountpoint's keys}
        nss[m["ns"]]["mountpoints"].append({k: v for k, v in m.items() if k != "ns"})
    return {"type": "execution", "name": name, "exclusive": False,
            "hard_time_limit": hard_time_limit, "output_register": reg,
            "pid_namespaces": pid_namespaces, "pipes": pipes, "channels": list(channels),
            "filesystems": fss, "mount_namespaces": nss,
            "resource_groups": groups or [group()], "processes": processes}


def workflow(tasks, external, observable_registers=1, observable_objects=()):
    return {"name": "hand-written", "external_objects": list(external),
            "observable_objects": list(observable_objects),
            "observable_registers": observable_registers, "tasks": tasks}


def put(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


INTERACTOR = r"""
import os, sys
out, inp = os.fdopen(3, "w"), os.fdopen(4, "r")
total = 0
for q in range(1, 21):
    out.write(f"{q}\n"); out.flush()
    total += int(inp.readline()) == q * q
print("OK" if total == 20 else "WRONG", os.getpid(), len(os.listdir("/")))
"""
SOLUTION = r"""
import os, sys
for line in sys.stdin:
    print(int(line) ** 2, flush=True)
print(os.getpid(), sorted(os.listdir("/")), file=open("/tmp/seen", "w"))
"""


def test_interactive_two_processes_pipes_channels_namespaces(tmp_path):
    soc, sol = put(tmp_path, "soc.py", INTERACTOR), put(tmp_path, "sol.py", SOLUTION)
    # interactor -> pipe 0 -> channel -> pipe 1 -> solution;
    # solution -> pipe 2 -> channel -> pipe 3 -> interactor
    t = task("interact", [
        proc(0, {3: {"type": "pipe_write", "pipe": 0}, 4: {"type": "pipe_read", "pipe": 3},
                 1: {"type": "object_write", "handle": "verdict"}}, ns=0, pidns=0),
        proc(1, {0: {"type": "pipe_read", "pipe": 1}, 1: {"type": "pipe_write", "pipe": 2}},
             ns=1, pidns=1),
    ], [soc, sol], pipes=4, pid_namespaces=2,
        channels=[{"buffer_size": 4096, "source_pipe": 0, "target_pipe": 1},
                  {"buffer_size": 16, "file_buffer_size": 1 << 20, "source_pipe": 2,
                   "target_pipe": 3}],
        extra_fs=[{"type": "empty"}],
        extra_mounts=[{"source": 2, "target": "/tmp", "writable": True, "capacity": 1 << 20,
                       "ns": 1}])
    env = run_job(workflow([t], [soc, sol], observable_objects=["verdict"]),
                  workflow_output_dir=str(tmp_path / "out"))
    report = env["workflow_registers"][0]
    assert report["status"] == "OK", report
    assert [p["exit_code"] for p in report["processes"]] == [0, 0]
    assert report["channels"][0]["bytes"] > 20 and report["channels"][1]["bytes"] > 20
    verdict = Path(env["workflow_objects_out"]["verdict"]).read_text().split()
    # OK; alone in its PID namespace, the interactor is its PID 1
    assert verdict[0] == "OK" and verdict[1] == "1"


ENCODER = "import sys\ndata = sys.stdin.read()\nsys.stdout.write(data[::-1])\n"
DECODER = "import sys\nsys.stdout.write(sys.stdin.read()[::-1].upper())\n"
COUNT = "import sys\nprint(len(sys.stdin.read()))\n"


def test_encoder_decoder_start_after_and_an_object_passed(tmp_path):
    enc, dec, cnt = (put(tmp_path, n, s) for n, s in
                     (("enc.py", ENCODER), ("dec.py", DECODER), ("cnt.py", COUNT)))
    data = put(tmp_path, "in.txt", "hello world\n")
    run = task("encdec", [
        proc(0, {0: {"type": "object_read", "handle": data},
                 1: {"type": "object_write", "handle": "enc"}}, ns=0),
        proc(1, {0: {"type": "object_read", "handle": "enc"},
                 1: {"type": "object_write", "handle": "dec"}}, ns=1, after=(0,)),
    ], [enc, dec])
    count = task("count", [proc(0, {0: {"type": "object_read", "handle": "enc"},
                                     1: {"type": "object_write", "handle": "n"}})],
                 [cnt], reg=1)
    env = run_job(workflow([count, run], [enc, dec, cnt, data], observable_registers=2,
                           observable_objects=["dec", "n"]),
                  workflow_output_dir=str(tmp_path / "out"))
    assert [r["status"] for r in env["workflow_registers"]] == ["OK", "OK"]
    outs = env["workflow_objects_out"]
    assert Path(outs["dec"]).read_text() == "HELLO WORLD\n"
    assert Path(outs["n"]).read_text() == "12\n"
    # the normal object 'enc' was not stored
    assert set(outs) == {"dec", "n"}


WRITER = "import sys, os\nout = os.fdopen(3, 'wb')\nfor _ in range(1000):\n" \
         "    out.write(b'x' * 1000)\nout.close()\n"
READER = "import os\nprint(len(os.fdopen(0, 'rb').read()))\n"
NON_READER = "import sys\n"
SLEEPER = "import time\ntime.sleep(60)\n"


def test_channel_over_its_limit(tmp_path):
    w, r = put(tmp_path, "w.py", WRITER), put(tmp_path, "r.py", READER)
    t = task("limit", [proc(0, {3: {"type": "pipe_write", "pipe": 0}}),
                       proc(1, {0: {"type": "pipe_read", "pipe": 1},
                                1: {"type": "object_write", "handle": "got"}}, ns=1)],
             [w, r], pipes=2,
             channels=[{"buffer_size": 512, "source_pipe": 0, "target_pipe": 1,
                        "limit": 10000}])
    env = run_job(workflow([t], [w, r], observable_objects=["got"]),
                  workflow_output_dir=str(tmp_path / "out"))
    report = env["workflow_registers"][0]
    assert report["channels"] == [{"bytes": 10000, "limit_exceeded": True}]
    writer, reader = report["processes"]
    assert writer["status"] == "RE"  # EPIPE / SIGPIPE once the channel closed
    assert reader["status"] == "OK"
    assert int(Path(env["workflow_objects_out"]["got"]).read_text()) <= 10000


def test_a_process_that_never_reads_does_not_hang_the_task(tmp_path):
    w, n = put(tmp_path, "w.py", WRITER), put(tmp_path, "n.py", NON_READER)
    direct = task("direct", [proc(0, {3: {"type": "pipe_write", "pipe": 0}}),
                             proc(1, {0: {"type": "pipe_read", "pipe": 0}}, ns=1)],
                  [w, n], pipes=1, hard_time_limit=20000)
    relayed = task("relayed", [proc(0, {3: {"type": "pipe_write", "pipe": 0}}),
                               proc(1, {0: {"type": "pipe_read", "pipe": 1}}, ns=1)],
                   [w, n], pipes=2, reg=1, hard_time_limit=20000,
                   channels=[{"buffer_size": 4096, "source_pipe": 0, "target_pipe": 1}])
    start = time.monotonic()
    env = run_job(workflow([direct, relayed], [w, n], observable_registers=2))
    assert time.monotonic() - start < 15
    for report in env["workflow_registers"]:
        writer, reader = report["processes"]
        assert reader["status"] == "OK"
        assert writer["status"] == "RE" and writer["killed_by"] is None, report
        assert not report["hard_time_limit_exceeded"]


HOG = "import time\nx = bytearray(48 << 20)\nfor i in range(0, len(x), 4096): x[i] = 1\n" \
      "time.sleep(1.5)\n"


def test_joint_memory_of_two_processes_over_the_group_limit(tmp_path):
    h = put(tmp_path, "hog.py", HOG)
    both = task("two hogs", [proc(0, {}), proc(0, {})], [h],
                groups=[group(memory_limit=80 << 20)])
    alone = task("one hog", [proc(0, {})], [h], reg=1, groups=[group(memory_limit=80 << 20)])
    env = run_job(workflow([both, alone], [h], observable_registers=2))
    joint, single = env["workflow_registers"]
    assert joint["status"] == "MLE", joint
    assert joint["resource_groups"][0]["limit_exceeded"] == "memory"
    assert "memory_limit" in [p["killed_by"] for p in joint["processes"]]
    assert single["status"] == "OK", single
    assert single["resource_groups"][0]["memory_peak_bytes"] >= 48 << 20


def test_hard_time_limit_kills_every_process(tmp_path):
    s = put(tmp_path, "s.py", SLEEPER)
    t = task("sleepy", [proc(0, {}), proc(0, {}, after=(0,))], [s], hard_time_limit=700)
    alone = task("sleepy alone", [proc(0, {})], [s], hard_time_limit=500, reg=1)
    start = time.monotonic()
    env = run_job(workflow([t, alone], [s], observable_registers=2))
    assert time.monotonic() - start < 15
    report, single = env["workflow_registers"]
    assert report["status"] == "TLE" and report["hard_time_limit_exceeded"]
    assert [p["killed_by"] for p in report["processes"]] == ["hard_time_limit"] * 2
    assert [p["started"] for p in report["processes"]] == [True, False]
    assert single["status"] == "TLE" and single["hard_time_limit_exceeded"]
    assert single["processes"][0]["killed_by"] == "hard_time_limit"
    assert 500 <= single["processes"][0]["wall_time_ms"] < 5000


def test_group_cpu_time_limit_and_lua_failure_make_a_system_error(tmp_path):
    spin = put(tmp_path, "spin.py", "while True: pass\n")
    t = task("spin", [proc(0, {})], [spin], groups=[group(time_limit=300)])
    bad = {"type": "script", "name": "bad grader", "reactive": False, "input_registers": [0],
           "output_registers": [1], "script": "set_register(1, get_register(0).status) "
                                               "error('grader broke')"}
    env = run_job(workflow([t, bad], [spin], observable_registers=2))
    report, graded = env["workflow_registers"]
    assert report["status"] == "TLE" and report["processes"][0]["killed_by"] == "time_limit"
    assert report["resource_groups"][0]["cpu_time_ms"] >= 300
    assert graded is None  # a failed script's writes are dropped
    assert env["workflow_status"] == "system_error"
    assert "grader broke" in env["workflow_result"]["error"]


def test_a_malformed_workflow_fails_the_job_and_runs_nothing(tmp_path):
    from sio.workers.runner import run
    from sio.workflows.model import WorkflowError

    marker = tmp_path / "ran"
    prog = put(tmp_path, "p.py", f"open({str(marker)!r}, 'w')\n")
    t = task("t", [proc(0, {5: {"type": "pipe_read", "pipe": 3}})], [prog], pipes=1)
    with pytest.raises(WorkflowError, match=r"task 0 \('t'\), process 0, descriptor 5, "
                                            r"field 'pipe': pipe 3 does not exist"):
        run({"job_type": "workflow", "workflow": workflow([t], [prog]),
             "use_filetracker": False})
    assert not marker.exists()


def test_sio_run_workflow_command(sum_pkg, tmp_path):
    import subprocess

    wf = tmp_path / "wf.json"
    wf.write_text(json.dumps(run_workflow_json(sum_pkg, "sumb1.cpp", ["0", "2a"])))
    exe = shutil.which("sio-run-workflow") or str(Path(sys.executable).parent /
                                                  "sio-run-workflow")
    done = subprocess.run([exe, str(wf), "--out", str(tmp_path / "out")], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "Run checker for test 2a: done (OK)" in done.stderr
    assert 'register 1: {"groups": {"0": "OK", "2": "WA"}, "score": 0, "status": "WA"}' \
        in done.stdout
    assert json.loads((tmp_path / "out" / "result.json").read_text())["status"] == "ok"
    bad = tmp_path / "bad.json"
    bad.write_text('{"tasks": [{"type": "nope"}]}')
    done = subprocess.run([exe, str(bad)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip() == ("sio-run-workflow: error: task 0, field 'type': unknown task "
                                   "type 'nope' (execution or script)")


def test_file_and_null_streams_on_a_shared_empty_filesystem(tmp_path):
    w = put(tmp_path, "w.py", "import os\nos.write(3, b'first ')\nos.write(4, b'second')\n"
                               "print('to null')\n")
    r = put(tmp_path, "r.py", "import os\nprint(os.read(0, 100).decode(), os.listdir('/box'))\n")
    box = {"type": "empty"}
    t = task("files", [
        proc(0, {3: {"type": "file", "filesystem": 2, "path": "/sub/../out.txt",
                     "mode": "write_truncate"},
                 4: {"type": "file", "filesystem": 2, "path": "out.txt",
                     "mode": "read_write_append"},
                 1: {"type": "null"}}),
        proc(1, {0: {"type": "file", "filesystem": 2, "path": "out.txt", "mode": "read"},
                 1: {"type": "object_write", "handle": "seen"}}, ns=1, after=(0,)),
    ], [w, r], extra_fs=[box],
        extra_mounts=[{"ns": 1, "source": 2, "target": "/box", "writable": False}])
    env = run_job(workflow([t], [w, r], observable_objects=["seen"]),
                  workflow_output_dir=str(tmp_path / "out"))
    assert env["workflow_registers"][0]["status"] == "OK", env["workflow_registers"]
    assert Path(env["workflow_objects_out"]["seen"]).read_text() == \
        "first second ['out.txt']\n"
    # a path that leaves its filesystem is refused when the process starts
    bad = task("escape", [proc(0, {0: {"type": "file", "filesystem": 1, "path": "../../etc",
                                        "mode": "read"}})], [w], extra_fs=[box])
    env = run_job(workflow([bad], [w]))
    assert env["workflow_status"] == "system_error"
    assert "leaves filesystem 1" in env["workflow_result"]["error"]


FORKER = "import os, sys\nfor i in range(8):\n    if os.fork() == 0:\n" \
         "        import time; time.sleep(0.5); os._exit(0)\n"
SPIN = "import time\nwhile time.process_time() < 0.15: pass\n"


def test_pid_limit_and_cpu_usage_limit_of_a_group(tmp_path):
    f, s = put(tmp_path, "f.py", FORKER), put(tmp_path, "s.py", SPIN)
    forks = task("forks", [proc(0, {})], [f], groups=[group(pid_limit=3)])
    slow = task("throttled", [proc(0, {})], [s], reg=1,
                groups=[group(cpu_usage_limit=25.0, time_limit=2000)])
    env = run_job(workflow([forks, slow], [f, s], observable_registers=2))
    forked, throttled = env["workflow_registers"]
    assert forked["status"] == "RE" and forked["processes"][0]["killed_by"] == "pid_limit"
    assert forked["resource_groups"][0]["limit_exceeded"] == "pids"
    assert throttled["status"] == "OK"
    # 150 ms of CPU time at a quarter of a CPU take at least ~600 ms
    assert throttled["processes"][0]["wall_time_ms"] >= 450, throttled


def test_a_pipe_without_a_reader_gives_the_writer_epipe(tmp_path):
    w = put(tmp_path, "w.py", WRITER)
    t = task("no reader", [proc(0, {3: {"type": "pipe_write", "pipe": 0}})], [w], pipes=1,
             hard_time_limit=20000)
    start = time.monotonic()
    env = run_job(workflow([t], [w]))
    assert time.monotonic() - start < 10
    (writer,) = env["workflow_registers"][0]["processes"]
    assert writer["status"] == "RE" and writer["killed_by"] is None


def test_groups_left_by_a_dead_worker_are_removed():
    from sio.workers._engine import groups

    dead = "sioworkers-999999999-0123456789ab"  # above any pid_max
    made = []
    for controller in groups.ResourceGroup.CONTROLLERS:
        path = f"/sys/fs/cgroup/{controller}/{dead}"
        os.mkdir(path)
        made.append(path)
    mine = groups.ResourceGroup(groups.GroupLimits())  # a live owner: kept
    try:
        groups._swept.clear()
        groups._sweep_orphans()
        assert [os.path.exists(p) for p in made] == [False] * len(made)
        assert all(os.path.isdir(d) for d in mine.directories)
    finally:
        mine.close()
        for path in made:
            if os.path.exists(path):
                os.rmdir(path)


def test_python_solution_through_the_python_image(tmp_path):
    pkg = write_package(tmp_path, "pys", solutions={}, tests={"1a": ("2 3\n", "5\n"),
                                                                "2a": ("4 4\n", "8\n")})
    (pkg / "prog" / "pys.py").write_text("a, b = map(int, input().split())\nprint(a + b)\n")
    (pkg / "prog" / "pysb1.py").write_text("print(0)\n")
    good = run_job(run_workflow_json(pkg, "pys.py"))
    assert good["workflow_registers"][1] == {"status": "OK", "score": 100,
                                             "groups": {"1": "OK", "2": "OK"}}
    wrong = run_job(run_workflow_json(pkg, "pysb1.py"))
    assert wrong["workflow_registers"][1]["status"] == "WA"
