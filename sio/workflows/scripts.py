"""Script tasks: Lua (through ``lupa``) with a small API.

The API a script sees (documented in ``docs/workflows.rst``):

``get_register(n)``
    the value of register ``n`` (an absolute number; an integer or a decimal
    string, as sio3pack's id→register maps hold strings). ``n`` must be one of
    the task's ``input_registers``. ``nil`` while unset (reactive tasks).
    JSON objects and arrays arrive as tables (arrays 1-based).
``set_register(n, value)``
    writes output register ``n`` (one of ``output_registers``), once. The
    value must be JSON-representable: nil, boolean, number, string, or a
    table (consecutive keys from 1 become an array, other keys must be
    strings or numbers and become an object).
``get_object(i)``
    object ``i`` of the task's ``objects`` (0-based index) or an object by
    handle; ``nil`` if not produced (yet). It has ``:get_value()`` (the whole
    content as a string), ``:size()`` and ``:handle()``.
``print(...)``
    appends a line to the task's log (kept in the workflow's result), never
    to the worker's output.
``json_decode(text)``
    parses JSON into Lua values (to read a checker's or a program's output).

Available libraries: ``string``, ``table``, ``math``, ``utf8``, ``os.time``,
``os.clock``; not ``io``, ``os`` otherwise, ``require``, ``dofile``,
``loadfile``, ``load`` of binary chunks, ``debug``, ``collectgarbage``.

Bounds (settings): ``SIO_WORKFLOW_SCRIPT_TIME_MS`` (default 2000 ms of wall
time per run, checked every 10000 Lua instructions) and
``SIO_WORKFLOW_SCRIPT_MEMORY_KIB`` (default 65536 KiB for the Lua state).
A script over a bound, or one that raises a Lua error, fails its task.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from typing import Any

import lupa

__all__ = ["ScriptFailed", "run_script", "script_limits"]


class ScriptFailed(Exception):
    """The script raised an error or went over a bound."""


def script_limits() -> tuple[int, int]:
    """(time ms, memory KiB) of one script run, from the settings."""
    return (int(os.environ.get("SIO_WORKFLOW_SCRIPT_TIME_MS", "2000")),
            int(os.environ.get("SIO_WORKFLOW_SCRIPT_MEMORY_KIB", "65536")))


_SANDBOX = """
local sethook, check = debug.sethook, ...
sethook(function() check() end, "", 10000)
local keep_os = {time = os.time, clock = os.clock}
io = nil; os = keep_os; require = nil; dofile = nil; loadfile = nil
debug = nil; collectgarbage = nil; package = nil
local real_load = load
load = function(chunk, name, mode, env) return real_load(chunk, name, "t", env) end
"""


def _to_lua(lua: Any, value: Any) -> Any:
    if isinstance(value, dict):
        t = lua.table()
        for k, v in value.items():
            t[k] = _to_lua(lua, v)
        return t
    if isinstance(value, list):
        t = lua.table()
        for i, v in enumerate(value, 1):
            t[i] = _to_lua(lua, v)
        return t
    return value


def _from_lua(value: Any, depth: int = 0) -> Any:
    if depth > 100:
        raise ScriptFailed("value nested too deeply")
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise ScriptFailed(f"{value} is not a JSON number")
        return int(value) if value.is_integer() and abs(value) < 2 ** 53 else value
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if lupa.lua_type(value) == "table":
        items = list(value.items())
        keys = [k for k, _ in items]
        if keys and all(isinstance(k, int) and not isinstance(k, bool) for k in keys) \
                and sorted(keys) == list(range(1, len(keys) + 1)):
            return [_from_lua(v, depth + 1) for _, v in sorted(items, key=lambda kv: kv[0])]
        out = {}
        for k, v in items:
            if isinstance(k, bytes):
                k = k.decode("utf-8", errors="replace")
            if not isinstance(k, (str, int, float)) or isinstance(k, bool):
                raise ScriptFailed(f"table key {k!r} cannot be a JSON object key")
            out[str(k)] = _from_lua(v, depth + 1)
        return out
    raise ScriptFailed(f"a {lupa.lua_type(value)} cannot be stored in a register")


class _Object:
    def __init__(self, handle: str, path: str) -> None:
        self._handle, self._path = handle, path

    def get_value(self) -> bytes:
        with open(self._path, "rb") as f:
            return f.read()

    def size(self) -> int:
        return os.path.getsize(self._path)

    def handle(self) -> str:
        return self._handle


def run_script(source: str, *, name: str, inputs: dict[int, Any], outputs: set[int],
               objects: list[str], object_path: Callable[[str], str | None],
               log: list[str]) -> dict[int, Any]:
    """Run ``source`` once; returns the registers it set.

    :param inputs: every input register, ``None`` when unset.
    :param outputs: the registers it may set.
    :param objects: the task's ``objects`` list.
    :param object_path: handle → path of the object's file, None if not
        available.
    :raises ScriptFailed: Lua error, bound exceeded, API misuse.
    """
    time_ms, memory_kib = script_limits()
    lua = lupa.LuaRuntime(unpack_returned_tuples=True, register_eval=False,
                          register_builtins=False, max_memory=memory_kib * 1024)
    written: dict[int, Any] = {}
    deadline = time.monotonic() + time_ms / 1000

    def check() -> None:
        if time.monotonic() > deadline:
            raise ScriptFailed(f"the script ran longer than {time_ms} ms")

    def register_number(n: Any, what: str) -> int:
        if isinstance(n, bytes):
            n = n.decode()
        try:
            if isinstance(n, float) and n.is_integer():
                n = int(n)
            if isinstance(n, bool):
                raise ValueError
            return int(n)
        except (TypeError, ValueError):
            raise ScriptFailed(f"{what}: {n!r} is not a register number") from None

    def get_register(n: Any) -> Any:
        r = register_number(n, "get_register")
        if r not in inputs:
            raise ScriptFailed(f"get_register({r}): register {r} is not an input register "
                               f"of this task")
        return _to_lua(lua, inputs.get(r))

    def set_register(n: Any, value: Any) -> None:
        r = register_number(n, "set_register")
        if r not in outputs:
            raise ScriptFailed(f"set_register({r}): register {r} is not an output register "
                               f"of this task")
        if r in written:
            raise ScriptFailed(f"set_register({r}): register {r} was already written")
        written[r] = _from_lua(value)

    def get_object(i: Any) -> Any:
        if isinstance(i, bytes):
            i = i.decode()
        if isinstance(i, str):
            handle = i
            if handle not in objects:
                raise ScriptFailed(f"get_object({handle!r}): not in this task's objects")
        else:
            idx = register_number(i, "get_object")
            if not 0 <= idx < len(objects):
                raise ScriptFailed(f"get_object({idx}): the task has {len(objects)} objects "
                                   f"(0-based)")
            handle = objects[idx]
        path = object_path(handle)
        return None if path is None else _Object(handle, path)

    def lua_print(*args: Any) -> None:
        parts = []
        for a in args:
            parts.append(a.decode(errors="replace") if isinstance(a, bytes)
                         else "nil" if a is None else str(a).lower() if isinstance(a, bool)
                         else str(a))
        log.append("\t".join(parts))

    def json_decode(text: Any) -> Any:
        if isinstance(text, bytes):
            text = text.decode("utf-8", errors="replace")
        try:
            return _to_lua(lua, json.loads(text))
        except (TypeError, ValueError) as e:
            raise ScriptFailed(f"json_decode: {e}") from None

    try:
        lua.execute(_SANDBOX, check)
        g = lua.globals()
        g.get_register = get_register
        g.set_register = set_register
        g.get_object = get_object
        g.print = lua_print
        g.json_decode = json_decode
        lua.execute(source)
    except ScriptFailed:
        raise
    except lupa.LuaMemoryError:
        raise ScriptFailed(f"script {name!r} used more than {memory_kib} KiB") from None
    except lupa.LuaSyntaxError as e:
        raise ScriptFailed(f"script {name!r} is not valid Lua: {e}") from None
    except lupa.LuaError as e:
        cause = e.__cause__ or e.__context__
        if isinstance(cause, ScriptFailed):
            raise ScriptFailed(f"script {name!r}: {cause}") from None
        raise ScriptFailed(f"script {name!r} failed: {e}") from None
    return written
