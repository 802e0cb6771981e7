"""The workflow format: parsing, checks before anything runs, the
normalisation of sio3pack's output, and the Lua API (no processes)."""

from __future__ import annotations

import copy
import json

import pytest

from sio.workflows.model import ExecutionTask, WorkflowError, parse
from sio.workflows.normalise import normalise
from sio.workflows.scripts import ScriptFailed, run_script

GROUP = {"cpu_usage_limit": 100, "instruction_limit": 1e9, "memory_limit": 1 << 28,
         "oom_terminate_all_tasks": False, "pid_limit": 2, "swap_limit": 0,
         "time_limit": 1000.0}


def execution(name="t", **over):
    task = {"type": "execution", "name": name, "exclusive": False, "hard_time_limit": 0,
            "output_register": 0, "pid_namespaces": 1, "pipes": 2, "channels": [],
            "filesystems": [{"type": "object", "handle": "in"}],
            "mount_namespaces": [{"mountpoints": [{"source": 0, "target": "/in",
                                                   "writable": False}], "root": 0}],
            "resource_groups": [dict(GROUP)],
            "processes": [{"arguments": ["/bin/cat"], "environment": ["A=1"], "image": "",
                           "mount_namespace": 0, "resource_group": 0, "pid_namespace": 0,
                           "working_directory": "/",
                           "descriptors": {"0": {"type": "object_read", "handle": "in"},
                                           "1": {"type": "object_write", "handle": "out"},
                                           "3": {"type": "pipe_write", "pipe": 0}},
                           "start_after": []}]}
    task.update(over)
    return task


def workflow(*tasks, **over):
    wf = {"name": "w", "external_objects": ["in"], "observable_objects": ["out"],
          "observable_registers": 1, "registers": 3, "tasks": list(tasks)}
    wf.update(over)
    return wf


def script(name="s", inputs=(0,), outputs=(1,), text="", **over):
    task = {"type": "script", "name": name, "reactive": False, "input_registers": list(inputs),
            "output_registers": list(outputs), "script": text}
    task.update(over)
    return task


def test_a_valid_workflow_is_read_with_int_or_float_numbers():
    wf = parse(json.dumps(workflow(execution(), script())))
    task = wf.tasks[0]
    assert isinstance(task, ExecutionTask)
    g = task.resource_groups[0]
    assert (g.time_limit, g.instruction_limit, g.cpu_usage_limit) == (1000, 10 ** 9, 100.0)
    assert task.processes[0].environment == (("A", "1"),)
    assert task.reads() == {"in"} and task.writes() == {"out"}
    # the declared register count is advisory: recomputed
    assert wf.registers == 2


def broken(path, value):
    """workflow() with the item at ``path`` (keys/indices) replaced, or
    deleted when ``value`` is ...."""
    wf = workflow(execution(), script())
    node = wf
    for key in path[:-1]:
        node = node[key]
    if value is ...:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return wf


P = ("tasks", 0, "processes", 0)

MALFORMED = [
    ("not JSON", "{", "not valid JSON"),
    ("missing key", broken(("tasks", 0, "output_register"), ...),
     "task 0 ('t'), field 'output_register': missing"),
    ("wrong type", broken(("tasks", 0, "exclusive"), "yes"), "field 'exclusive'"),
    ("bool as int", broken(("tasks", 0, "pipes"), True), "field 'pipes'"),
    ("fractional", broken(("tasks", 0, "resource_groups", 0, "time_limit"), 1.5),
     "resource group 0, field 'time_limit'"),
    ("negative", broken(("tasks", 0, "hard_time_limit"), -1), "field 'hard_time_limit'"),
    ("unknown task type", broken(("tasks", 0, "type"), "shell"), "unknown task type"),
    ("unknown stream", broken((*P, "descriptors", "0"), {"type": "socket"}),
     "process 0, descriptor 0, field 'type': unknown stream type"),
    ("file mode", broken((*P, "descriptors", "0"), {"type": "file", "filesystem": 0,
                                                    "path": "x", "mode": "rw"}),
     "unknown mode"),
    ("file filesystem index", broken((*P, "descriptors", "0"),
                                     {"type": "file", "filesystem": 5, "path": "x",
                                      "mode": "read"}), "filesystem 5 does not exist"),
    ("pipe index", broken((*P, "descriptors", "3"), {"type": "pipe_read", "pipe": 2}),
     "pipe 2 does not exist"),
    ("pid namespace index", broken((*P, "pid_namespace"), 1), "PID namespace 1"),
    ("mount namespace index", broken((*P, "mount_namespace"), -1), "field 'mount_namespace'"),
    ("descriptor number", broken((*P, "descriptors"), {"x": {"type": "null"}}),
     "'x' is not a descriptor number"),
    ("environment", broken((*P, "environment"), ["NOEQUALS"]), "KEY=VALUE"),
    ("empty argv", broken((*P, "arguments"), []), "must not be empty"),
    ("relative mount", broken(("tasks", 0, "mount_namespaces", 0, "mountpoints", 0, "target"),
                              "in"), "absolute path"),
    ("mount source", broken(("tasks", 0, "mount_namespaces", 0, "mountpoints", 0, "source"), 3),
     "filesystem 3 does not exist"),
    ("channel pipe", broken(("tasks", 0, "channels"), [{"buffer_size": 1, "source_pipe": 0,
                                                        "target_pipe": 9}]),
     "channel 0, field 'target_pipe'"),
    ("two owners of a pipe end", broken(("tasks", 0, "channels"),
                                        [{"buffer_size": 1, "source_pipe": 1,
                                          "target_pipe": 0}]),
     "the write end of pipe 0 is used by channel 0 and by process 0 (fd 3)"),
    ("start_after itself", broken((*P, "start_after"), [0]), "field 'start_after'"),
    ("filesystem type", broken(("tasks", 0, "filesystems", 0, "type"), "nfs"),
     "unknown filesystem type"),
    ("instruction limit alone", broken(("tasks", 0, "resource_groups", 0, "time_limit"), 0),
     "resource group 0, field 'instruction_limit': instruction limits cannot be enforced "
     "here"),
]


@pytest.mark.parametrize("data, message", [m[1:] for m in MALFORMED],
                         ids=[m[0] for m in MALFORMED])
def test_malformed_workflows_are_refused_with_a_message_naming_the_place(data, message):
    with pytest.raises(WorkflowError) as e:
        parse(data)
    assert message in str(e.value)


def test_start_after_cycle():
    task = execution()
    second = copy.deepcopy(task["processes"][0])
    second["descriptors"] = {}
    task["processes"][0]["start_after"] = [1]
    second["start_after"] = [0]
    task["processes"].append(second)
    with pytest.raises(WorkflowError, match=r"start_after forms a cycle: 0 -> 1 -> 0"):
        parse(workflow(task))


def test_dataflow_rules():
    with pytest.raises(WorkflowError, match="register 0 is written by task 0 .* and by task 1"):
        parse(workflow(execution(), execution("u", processes=[]), script()))
    with pytest.raises(WorkflowError, match="object 'out' is written by task 0"):
        parse(workflow(execution(), execution("u", output_register=2)))
    with pytest.raises(WorkflowError, match="register 7 is written by no task"):
        parse(workflow(execution(), script(inputs=(7,))))
    with pytest.raises(WorkflowError, match="reads object 'ghost', which is neither"):
        parse(workflow(execution(), script(objects=["ghost"])))


def test_unknown_image_is_refused_before_running():
    from sio.workflows.job import load

    data = workflow(execution())
    data["tasks"][0]["processes"][0]["image"] = "compilers-i-dont-know"
    with pytest.raises(WorkflowError, match="process 0, field 'image': unknown process image"):
        load(data)
    data = workflow(execution())
    data["tasks"][0]["filesystems"].append({"type": "image", "image": "no:such", "path": ""})
    with pytest.raises(WorkflowError, match="filesystem 1: unknown filesystem image 'no:such'"):
        load(data)


def test_normalise_repairs_sio3pack_output():
    compile_task = execution(
        "Compile /p/a.cpp using g++-12.2",
        filesystems=[{"type": "object", "handle": "/p/a.cpp"}],
        mount_namespaces=[{"mountpoints": [{"source": 0, "target": "/file.cpp",
                                            "writable": False}], "root": 0}],
        processes=[{"arguments": ["g++", "/file.cpp", "-o", "/<OUT>", "lib.cpp", "lib.cpp"],
                    "environment": [], "image": "compiler:g++-12.2", "mount_namespace": 0,
                    "resource_group": 0, "pid_namespace": 0, "working_directory": "/",
                    "descriptors": {"2137": {"type": "object_write", "handle": "/p/a.e"}}}])
    run_task = execution("Run solution for test 1a", output_register=1)
    run_task["resource_groups"][0]["memory_limit"] = 16000
    default_run = execution("Run solution for test 1b", output_register=2)
    default_run["resource_groups"][0]["memory_limit"] = 104857600
    default_run["processes"][0]["descriptors"]["1"]["handle"] = "out2"
    checker = execution(
        "Run checker for test 1a", output_register=3,
        filesystems=[{"type": "object", "handle": "/p/chk.e"}],
        mount_namespaces=[{"mountpoints": [{"source": 0, "target": "/chk", "writable": False}],
                           "root": 0}])
    checker["processes"][0].update(arguments=["/chk", "/in", "/out", "/user_out"],
                                   descriptors={})
    grade = script("Grade group 1", inputs=(1,), outputs=(4,),
                   text='local m = {"1a" = "5", "1b" = "6"}\nlocal eq = ("a" == "a")')
    data = workflow(compile_task, run_task, default_run, checker, grade,
                    external_objects=["in", "/p/a.cpp", "/p/a.e", "/p/chk.e"])
    fixed, notes = normalise(data)
    assert data["tasks"][0]["processes"][0]["descriptors"]  # the input is untouched
    proc = fixed["tasks"][0]["processes"][0]
    assert proc["descriptors"] == {}
    assert proc["arguments"] == ["g++", "/file.cpp", "-o", "/out.e", "lib.cpp"]
    assert fixed["tasks"][0]["filesystems"][-1] == {"type": "object", "handle": "/p/a.e"}
    assert fixed["tasks"][0]["mount_namespaces"][0]["mountpoints"][-1] == \
        {"source": 1, "target": "/out.e", "writable": True}
    assert fixed["tasks"][1]["resource_groups"][0]["memory_limit"] == 16000 * 1024
    assert fixed["tasks"][2]["resource_groups"][0]["memory_limit"] == 104857600
    assert fixed["tasks"][3]["processes"][0]["arguments"] == ["/chk", "/in", "/user_out", "/out"]
    assert fixed["tasks"][4]["script"] == \
        'local m = {["1a"] = "5", ["1b"] = "6"}\nlocal eq = ("a" == "a")'
    assert fixed["external_objects"] == ["in", "/p/a.cpp", "/p/chk.e"]
    assert len(notes) == 5
    parse(fixed)
    # Hand-written workflows pass through unchanged.
    plain = workflow(execution(), script())
    assert normalise(plain) == (plain, [])


def lua(text, inputs=None, outputs=(1,), objects=(), paths=None):
    log: list[str] = []
    out = run_script(text, name="s", inputs=inputs or {0: None}, outputs=set(outputs),
                     objects=list(objects), object_path=lambda h: (paths or {}).get(h), log=log)
    return out, log


def test_lua_api(tmp_path):
    answer = tmp_path / "a"
    answer.write_bytes(b"OK\nfine\n100\n")
    out, log = lua("""
        local r = get_register("0")
        local o = get_object(0)
        print("got", r.status, r.list[2], o:handle(), o:size(), get_object(1))
        set_register(1, {verdict = o:get_value():match("^(%S+)"), list = {1, 2, 3},
                         decoded = json_decode('{"a": [true, null]}').a[1], n = 2.5})
        set_register(2, nil == nil)
        """, inputs={0: {"status": "OK", "list": [10, 20]}}, outputs=(1, 2),
                   objects=("chk", "later"), paths={"chk": str(answer)})
    assert out == {1: {"verdict": "OK", "list": [1, 2, 3], "decoded": True, "n": 2.5}, 2: True}
    assert log == ["got\tOK\t20\tchk\t12\tnil"]


@pytest.mark.parametrize("text, message", [
    ("get_register(5)", "register 5 is not an input register"),
    ("set_register(0, 1)", "register 0 is not an output register"),
    ("set_register(1, 1) set_register(1, 2)", "already written"),
    ("set_register(1, function() end)", "cannot be stored in a register"),
    ("error('mine')", "mine"),
    ("local x = = 1", "not valid Lua"),
    ("io.open('/etc/passwd')", "failed"),
    ("os.execute('true')", "failed"),
    ("while true do end", "ran longer than"),
    ("local t = {} for i = 1, 1e9 do t[i] = string.rep('x', 1000) .. i end",
     "used more than"),
])
def test_lua_errors_and_bounds(text, message, monkeypatch):
    monkeypatch.setenv("SIO_WORKFLOW_SCRIPT_TIME_MS", "300")
    monkeypatch.setenv("SIO_WORKFLOW_SCRIPT_MEMORY_KIB", "8192")
    with pytest.raises(ScriptFailed, match=message):
        lua(text)
