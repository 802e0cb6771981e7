"""One documented pass that repairs what ``sio3pack`` 1.0.0.dev5 gets wrong.

:func:`normalise` takes workflow JSON (a dict) and returns a repaired copy and
the list of repairs made (each a short sentence, shown by ``sio-run-workflow
--verbose`` and kept in the job's result). Every step is keyed on structure
sio3pack always emits, and does nothing to a workflow without that
structure, so hand-written workflows pass through unchanged. The steps
(``docs/workflows.rst``, "Normalisation"):

1. **Compile output on fd 2137.** A process whose descriptor ``2137`` is
   ``object_write`` (sio3pack's compile tasks: ``g++ /file.cpp -o /<OUT>``)
   gets instead a writable ``object`` filesystem with that handle mounted at
   ``/out.e`` in its mount namespace, and the argument ``/<OUT>`` becomes
   ``/out.e``. Repeated copies of source/object arguments (``x.cpp`` given
   twice, sio3pack's flag accumulation) are dropped.
2. **Memory of solution runs in KiB.** In tasks named ``Run solution for test
   <id>``, a ``memory_limit`` other than sio3pack's default (104857600, which
   is already bytes) came from ``config.yml`` in KiB: it is multiplied by 1024.
3. **Checker argument order.** In ``Run checker for test <id>`` tasks whose
   ``/chk`` is an ``object`` filesystem (a package's own checker), arguments
   2 and 3 are swapped, giving sinol's ``chk in user_out expected``
   (sio3pack passes ``in expected user_out``, which suits only the
   ``checkers:oicompare`` image).
4. **Lua table syntax.** ``{"4a" = "5"}`` (invalid Lua from the
   ``<LUA_MAP_TEST_ID_REG>`` template) becomes ``{["4a"] = "5"}``.
5. **Objects both external and produced.** Dropped from ``external_objects``:
   the task that produces them provides them.
"""

from __future__ import annotations

import json
import re
from typing import Any

from sio.workflows.model import WorkflowError

__all__ = ["normalise", "SIO3PACK_DEFAULT_MEMORY", "COMPILE_OUTPUT_PATH"]

#: sio3pack's DEFAULT_MEMORY_LIMIT (bytes), the one value not in KiB.
SIO3PACK_DEFAULT_MEMORY = 104857600
#: where a compile task's output object is mounted after step 1
COMPILE_OUTPUT_PATH = "/out.e"
_COMPILE_FD = "2137"
_SOURCE_SUFFIXES = (".c", ".cc", ".cpp", ".cxx", ".h", ".hpp", ".o", ".a", ".py")
_LUA_STRING_KEY = re.compile(r'(?<![\[\w])("(?:[^"\\\n]|\\.)*")\s*=(?!=)')


def normalise(data: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """A repaired deep copy of ``data`` and the repairs made.

    Malformed input is left for :func:`sio.workflows.model.parse` to report:
    this pass skips anything that does not have the expected shape.
    """
    # A JSON round trip: a deep copy of JSON data, several times faster
    # than copy.deepcopy.
    try:
        data = json.loads(json.dumps(data))
    except (TypeError, ValueError) as e:
        raise WorkflowError(f"the workflow is not JSON data: {e}") from e
    notes: list[str] = []
    tasks = data.get("tasks")
    if not isinstance(tasks, list):
        return data, notes
    produced: set[str] = set()
    for ti, task in enumerate(tasks):
        if not isinstance(task, dict):
            continue
        raw_name = task.get("name")
        name = raw_name if isinstance(raw_name, str) else ""
        if task.get("type") == "execution":
            _compile_output(task, ti, name, notes)
            _solution_memory(task, ti, name, notes)
            _checker_order(task, ti, name, notes)
            produced |= _writes(task)
        elif task.get("type") == "script" and isinstance(task.get("script"), str):
            fixed = _LUA_STRING_KEY.sub(r"[\1] =", task["script"])
            if fixed != task["script"]:
                task["script"] = fixed
                notes.append(f"task {ti} ({name!r}): Lua table keys written as [\"key\"] =")
    external = data.get("external_objects")
    if isinstance(external, list):
        both = [h for h in external if h in produced]
        if both:
            data["external_objects"] = [h for h in external if h not in produced]
            notes.append(f"{len(both)} object(s) listed as external are produced by a task: "
                         f"treated as produced ({', '.join(map(str, both))})")
    return data, notes


def _writes(task: dict[str, Any]) -> set[str]:
    out = set()
    fss = task.get("filesystems") or []
    for p in task.get("processes") or []:
        for s in (p.get("descriptors") or {}).values() if isinstance(p, dict) else ():
            if isinstance(s, dict) and s.get("type") == "object_write":
                out.add(s.get("handle"))
    for ns in task.get("mount_namespaces") or []:
        for mp in (ns.get("mountpoints") or []) if isinstance(ns, dict) else ():
            src = mp.get("source") if isinstance(mp, dict) else None
            if isinstance(src, int) and 0 <= src < len(fss) and mp.get("writable") \
                    and isinstance(fss[src], dict) and fss[src].get("type") == "object":
                out.add(fss[src].get("handle"))
    return {h for h in out if isinstance(h, str)}


def _compile_output(task: dict[str, Any], ti: int, name: str, notes: list[str]) -> None:
    processes = task.get("processes")
    fss = task.get("filesystems")
    nss = task.get("mount_namespaces")
    if not isinstance(processes, list) or not isinstance(fss, list) or not isinstance(nss, list):
        return
    for pi, p in enumerate(processes):
        if not isinstance(p, dict) or not isinstance(p.get("descriptors"), dict):
            continue
        stream = p["descriptors"].get(_COMPILE_FD)
        if not (isinstance(stream, dict) and stream.get("type") == "object_write"):
            continue
        ns_index = p.get("mount_namespace")
        if not (isinstance(ns_index, int) and 0 <= ns_index < len(nss)
                and isinstance(nss[ns_index], dict)
                and isinstance(nss[ns_index].get("mountpoints"), list)):
            continue
        del p["descriptors"][_COMPILE_FD]
        fss.append({"type": "object", "handle": stream.get("handle")})
        nss[ns_index]["mountpoints"].append(
            {"source": len(fss) - 1, "target": COMPILE_OUTPUT_PATH, "writable": True})
        args = p.get("arguments")
        if isinstance(args, list):
            new: list[Any] = []
            for a in args:
                if a == "/<OUT>":
                    a = COMPILE_OUTPUT_PATH
                if isinstance(a, str) and a.endswith(_SOURCE_SUFFIXES) and a in new:
                    continue
                new.append(a)
            p["arguments"] = new
        notes.append(f"task {ti} ({name!r}), process {pi}: compile output on fd 2137 "
                     f"mounted at {COMPILE_OUTPUT_PATH} instead")


def _solution_memory(task: dict[str, Any], ti: int, name: str, notes: list[str]) -> None:
    if not name.startswith("Run solution for test"):
        return
    for gi, g in enumerate(task.get("resource_groups") or []):
        if not isinstance(g, dict):
            continue
        m = g.get("memory_limit")
        if isinstance(m, (int, float)) and not isinstance(m, bool) \
                and m != SIO3PACK_DEFAULT_MEMORY:
            g["memory_limit"] = int(m) * 1024
            notes.append(f"task {ti} ({name!r}), resource group {gi}: memory_limit {int(m)} "
                         f"read as KiB")


def _checker_order(task: dict[str, Any], ti: int, name: str, notes: list[str]) -> None:
    if not name.startswith("Run checker for test"):
        return
    fss = task.get("filesystems") or []
    nss = task.get("mount_namespaces") or []
    for pi, p in enumerate(task.get("processes") or []):
        if not isinstance(p, dict):
            continue
        args = p.get("arguments")
        ns_index = p.get("mount_namespace")
        if not (isinstance(args, list) and len(args) >= 4 and args[0] == "/chk"
                and isinstance(ns_index, int) and 0 <= ns_index < len(nss)):
            continue
        for mp in nss[ns_index].get("mountpoints") or []:
            src = mp.get("source") if isinstance(mp, dict) else None
            if mp.get("target") == "/chk" and isinstance(src, int) and 0 <= src < len(fss) \
                    and isinstance(fss[src], dict) and fss[src].get("type") == "object":
                args[2], args[3] = args[3], args[2]
                notes.append(f"task {ti} ({name!r}), process {pi}: checker arguments put in "
                             f"sinol order (in, user output, expected)")
                break
