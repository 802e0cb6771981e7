"""The ``workflow`` job and the ``sio-run-workflow`` command.

Job environ keys read:

``workflow`` (dict, or JSON text)
    the workflow, inline; or
``workflow_file`` (file name)
    the workflow's JSON as a file, fetched with :func:`sio.workers.ft.download`.
``workflow_objects`` (dict handle → file name, optional)
    where external objects come from; a handle not listed is itself the file
    name (sio3pack's handles of remote package files are Filetracker names).
``workflow_output_dir`` (str, default ``/workflows``)
    where observable objects with relative handles are stored
    (``<dir>/<handle>``); an absolute handle is stored under itself, so a
    later workflow that lists it as external finds it.
``workflow_exports`` (dict task name → {mount target → handle prefix}, optional)
    files left in a writable ``empty`` mount of a task become objects
    ``<prefix><file name>`` and are stored like observable objects (sio3pack's
    ingen writes its tests into ``/inputs`` of ``Run ingen``).
``workflow_normalise`` (bool, default true)
    apply :func:`sio.workflows.normalise.normalise` first.
``use_filetracker``
    as for every job (``'auto'``: absolute names are Filetracker's).

Keys written:

``workflow_status``
    ``ok`` or ``system_error`` (a task could not run: see ``workflow_result``).
``workflow_registers``
    the observable registers (list; ``null`` where unset).
``workflow_objects_out``
    handle → stored (versioned) file name of each observable or exported
    object produced.
``workflow_result``
    ``{"status", "error", "tasks", "notes", "objects"}``: per task its state,
    error and Lua log; the normalisation notes; size and sha256 of objects.

A malformed workflow, or an external object that cannot be fetched, makes
the job fail (``result`` ``FAILURE``) with one message; nothing is run.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from typing import Any

from sio.workers.errors import MissingEnvironKey, UsageError
from sio.workflows.images import check_images
from sio.workflows.model import Workflow, WorkflowError, parse
from sio.workflows.normalise import normalise
from sio.workflows.runner import Progress, WorkflowResult, run_workflow

TYPE_CHECKING = False
if TYPE_CHECKING:
    from sio.workers.runner import Environ

__all__ = ["run", "main", "load", "Exports"]

#: task name → {mount target → handle prefix}
Exports = dict[str, dict[str, str]]


def load(data: Any, *, repair: bool = True) -> tuple[Workflow, list[str]]:
    """Normalise (unless ``repair`` is false), parse and check workflow JSON
    (a dict or text); returns (workflow, normalisation notes).

    :raises WorkflowError: malformed, or an image unknown here.
    """
    if isinstance(data, (str, bytes)):
        try:
            data = json.loads(data)
        except ValueError as e:
            raise WorkflowError(f"the workflow is not valid JSON: {e}") from e
    notes: list[str] = []
    if repair and isinstance(data, dict):
        data, notes = normalise(data)
    wf = parse(data)
    check_images(wf)
    return wf, notes


def _exports(value: Any) -> Exports:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(
            isinstance(m, dict) and all(isinstance(k, str) and isinstance(v, str)
                                        for k, v in m.items()) for m in value.values()):
        raise UsageError("environ['workflow_exports'] must map task names to "
                         "{mount target: handle prefix}")
    return value


def run(environ: Environ) -> Environ:
    """The ``workflow`` job (see the module documentation for the keys)."""
    from sio.workers import ft
    from sio.workers.util import tempcwd

    if "workflow" in environ:
        data = environ["workflow"]
    elif "workflow_file" in environ:
        path = ft.download(environ, "workflow_file", "workflow.json")
        with open(path, "rb") as f:
            data = f.read()
    else:
        raise MissingEnvironKey("workflow", "the workflow job (or give workflow_file)")
    wf, notes = load(data, repair=environ.get("workflow_normalise", True) is not False)
    mapping = environ.get("workflow_objects") or {}
    if not isinstance(mapping, dict):
        raise UsageError("environ['workflow_objects'] must map object handles to file names")
    exports = _exports(environ.get("workflow_exports"))

    def fetch(handle: str, dest: str) -> None:
        one = {"object": mapping.get(handle, handle)}
        if "use_filetracker" in environ:
            one["use_filetracker"] = environ["use_filetracker"]
        ft.download(one, "object", dest, add_to_cache=True)

    workdir = tempfile.mkdtemp(prefix="workflow-", dir=tempcwd())
    try:
        result = run_workflow(wf, fetch=fetch, workdir=workdir, exports=exports)
        result.notes = notes
        out_dir = str(environ.get("workflow_output_dir", "/workflows")).rstrip("/")
        stored: dict[str, str] = {}
        for handle, info in result.objects.items():
            if not info["present"]:
                continue
            name = handle if handle.startswith("/") else f"{out_dir}/{handle}"
            one: dict[str, Any] = {"object": None}
            if "use_filetracker" in environ:
                one["use_filetracker"] = environ["use_filetracker"]
            stored[handle] = ft.upload(one, "object", info["path"], name)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    environ["workflow_status"] = result.status
    environ["workflow_registers"] = result.registers
    environ["workflow_objects_out"] = stored
    environ["workflow_result"] = {k: v for k, v in result.to_json().items() if k != "registers"}
    return environ


# --------------------------------------------------------------------------
# sio-run-workflow
# --------------------------------------------------------------------------

def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="sio-run-workflow",
        description="Run an SIO3Pack workflow (JSON) on this machine, under the engine.")
    p.add_argument("workflow", help="the workflow JSON file ('-' for stdin)")
    p.add_argument("--objects", metavar="DIR",
                   help="where external objects are: a handle H is DIR/H (leading '/' "
                        "stripped); without it, handles are paths")
    p.add_argument("--out", metavar="DIR",
                   help="copy observable (and exported) objects to DIR/<handle>, and write "
                        "DIR/result.json")
    p.add_argument("--export", action="append", default=[], metavar="TASK:TARGET:PREFIX",
                   help="turn files left in mount TARGET of task TASK into objects "
                        "PREFIX<name> (repeatable)")
    p.add_argument("--no-normalise", action="store_true",
                   help="run the workflow as written, without the sio3pack repairs")
    p.add_argument("--json", action="store_true", help="print the whole result as JSON")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    return p


def _progress(stream: Any) -> Progress:
    def show(event: str, info: dict[str, Any]) -> None:
        if event == "start":
            stream.write(f"[{info['index']:>3}] {info['name']} ...\n")
        else:
            extra = f" ({info['status']})" if info.get("status") else ""
            if info["error"]:
                extra += f": {info['error']}"
            stream.write(f"[{info['index']:>3}] {info['name']}: {info['state']}{extra}\n")
        stream.flush()
    return show


def _summary(result: WorkflowResult) -> str:
    lines = [f"workflow: {result.status}" + (f" ({result.error})" if result.error else "")]
    states: dict[str, int] = {}
    for t in result.tasks:
        states[t["state"]] = states.get(t["state"], 0) + 1
    lines.append("tasks: " + ", ".join(f"{n} {s}" for s, n in sorted(states.items())))
    for i, value in enumerate(result.registers):
        if isinstance(value, dict) and value.get("version") and "processes" in value:
            value = {"status": value["status"], "wall_time_ms": value["wall_time_ms"]}
        lines.append(f"register {i}: {json.dumps(value, sort_keys=True)}")
    for handle, info in result.objects.items():
        lines.append(f"object {handle}: " + (f"{info['size']} bytes" if info["present"]
                                             else "not produced"))
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """``sio-run-workflow``: exit status 0 when the workflow ran (whatever the
    verdicts), 1 when a task could not run (system error), 2 for a usage
    error or a malformed workflow."""
    args = _parser().parse_args(argv)
    logging.basicConfig(format="%(levelname)s: %(message)s",
                        level=logging.DEBUG if args.debug else logging.WARNING)
    exports: Exports = {}
    try:
        for spec in args.export:
            parts = spec.rsplit(":", 2)
            if len(parts) != 3 or not all(parts):
                raise UsageError(f"--export {spec!r}: give TASK:TARGET:PREFIX")
            exports.setdefault(parts[0], {})[parts[1]] = parts[2]
        if args.workflow == "-":
            data = sys.stdin.read()
        else:
            with open(args.workflow, "rb") as f:
                data = f.read()
        wf, notes = load(data, repair=not args.no_normalise)
        for note in notes:
            sys.stderr.write(f"normalised: {note}\n")

        def fetch(handle: str, dest: str) -> None:
            src = os.path.join(args.objects, handle.lstrip("/")) if args.objects else handle
            if not os.path.isfile(src):
                raise WorkflowError(f"external object {handle!r}: no file {src}")
            shutil.copyfile(src, dest)
            shutil.copymode(src, dest)

        with tempfile.TemporaryDirectory(prefix="sio-run-workflow-") as workdir:
            result = run_workflow(wf, fetch=fetch, workdir=workdir, exports=exports,
                                  progress=_progress(sys.stderr))
            result.notes = notes
            if args.out:
                os.makedirs(args.out, exist_ok=True)
                for handle, info in result.objects.items():
                    if info["present"]:
                        dest = os.path.join(args.out, handle.lstrip("/"))
                        os.makedirs(os.path.dirname(dest), exist_ok=True)
                        shutil.copyfile(info["path"], dest)
                        shutil.copymode(info["path"], dest)
                with open(os.path.join(args.out, "result.json"), "w") as out:
                    json.dump(result.to_json(), out, indent=1)
    except (UsageError, OSError) as e:
        if args.debug:
            raise
        sys.stderr.write(f"sio-run-workflow: error: {e}\n")
        return 2
    sys.stdout.write(json.dumps(result.to_json(), indent=1) + "\n" if args.json
                     else _summary(result))
    return 0 if result.status == "ok" else 1
