"""The image registry: what the names in a workflow's ``image`` fields mean on
this machine.

Two kinds of names appear in workflows:

* **process images** (``process.image``): ``""`` (none), ``compiler:<name>``
  (``compiler:g++-12.2``), ``python:<name>``. A process image gives the
  process a tree of tools on top of the base root, an environment (``PATH``)
  under the process's own, and floors for limits (compilers start several
  processes and write temporary files);
* **filesystem images** (``filesystems[i].image``, with a sub-``path``):
  ``checkers:oicompare`` (the default output checker).

Every process, whatever its image, sees the **base root**: the host's
``/usr`` (and ``/bin``, ``/lib``, ``/lib64``, ``/sbin`` where they exist),
``/etc/ld.so.cache`` and the devices ``null``, ``zero``, ``random``,
``urandom``, read-only except the devices; this is what a compiled C/C++
program or a Python script needs. The built-in entries:

================================  ================================================
name                              meaning
================================  ================================================
``""``                            the base root only
``compiler:<anything>``           the system toolchain (``g++``, ``gcc`` in
                                  ``PATH``), a private tmpfs ``/tmp``,
                                  ``pid_limit`` at least 64
``python:<anything>``             a ``python`` tool that turns ``python SRC -o
                                  OUT`` into an executable script ``OUT`` run by
                                  the system ``python3``; ``/tmp``; ``pid_limit``
                                  at least 16
``checkers:oicompare``            the default output checker, a **built-in
                                  program** (below) run as ``/chk IN EXPECTED
                                  RECEIVED``: prints ``OK`` or ``WRONG``, a
                                  comment and the points (100 or 0)
================================  ================================================

**Built-in programs.** A filesystem image may stand for a program that the
worker runs itself instead of starting a process: the ``checkers:oicompare``
image is the project's default comparator,
:func:`sio.executors.checker.compare_outputs` (oicompare's rules and
messages, the very function the ``exec`` jobs' default checker calls), so a
workflow's checker gives exactly the verdicts and messages of the exec jobs,
and costs a fraction of a millisecond per test instead of a process start in
namespaces. A process is run this way when its ``arguments[0]`` is the mount
target of such an image (``/chk`` as sio3pack mounts it); its other arguments
are paths in its mount namespace, opened through the task's filesystems as its
``file`` streams are (never outside them); what it prints goes to its
descriptor 1 (``/dev/null`` when it has none). Its report is that of a
process (exit status, CPU and wall time; ``started`` true), with exit status
2 and a line on descriptor 2 when a file cannot be opened. Started any other
way (through a shell, say), the image's file is a stub that says so on
stderr and exits with status 2.

For ``checkers:oicompare``: equal files print ``OK``, an empty comment and
``100``; different files ``WRONG``, the comparator's message in the default
``checker_format`` (``english_abbreviated``: ``WRONG: line 3: expected "5",
got "6"``, the exec jobs' ``result_string``) and ``0``.

Deployments add entries with :func:`register_process_image` /
:func:`register_filesystem_image` (:func:`register_builtin_program` for a
built-in program), or with the setting
``SIO_WORKFLOW_IMAGES``: a JSON file mapping filesystem image names to host
paths (a file or a directory; ``path`` selects inside it).
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import BinaryIO

from sio.workers._engine import build
from sio.workers._engine.groups import Mount
from sio.workflows.model import ExecutionTask, Workflow, WorkflowError

__all__ = ["ProcessImage", "BaseRoot", "base_root", "process_image", "filesystem_image", "check_images",
           "register_process_image", "register_filesystem_image", "BuiltinProgram",
           "register_builtin_program", "builtin_program"]

_SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib64", "/lib32", "/libx32")
_SYSTEM_FILES = ("/etc/ld.so.cache", "/etc/alternatives")
_PATH = "/usr/local/bin:/usr/bin:/bin"
#: where an image's own tools are mounted (first in PATH)
TOOLS_DIR = "/sio/bin"


@dataclass(frozen=True)
class ProcessImage:
    """What a process image adds to the base root."""

    mounts: tuple[Mount, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    #: the resource group's pid_limit is raised to at least this
    pid_floor: int = 1


_lock = threading.Lock()
_process_images: dict[str, ProcessImage] = {}
_process_prefixes: dict[str, ProcessImage] = {}
_fs_images: dict[str, str] = {}
_builtin_done = False

#: A built-in program: ``program(arguments, open_file)`` with the process's
#: arguments after ``arguments[0]`` and a function that opens a path of the
#: process's mount namespace for reading (a binary file; raises
#: :class:`OSError` with a message for a path it cannot open); returns
#: (exit status, what it prints on descriptor 1, on descriptor 2).
BuiltinProgram = Callable[[Sequence[str], Callable[[str], BinaryIO]], tuple[int, bytes, bytes]]
_builtin_programs: dict[str, BuiltinProgram] = {}


def register_process_image(name: str, image: ProcessImage, *, prefix: bool = False) -> None:
    """Register ``image`` under ``name`` (or, with ``prefix``, for every
    name starting with ``name``; exact names win)."""
    with _lock:
        (_process_prefixes if prefix else _process_images)[name] = image


def register_filesystem_image(name: str, host_path: str) -> None:
    """Register a filesystem image: a host file or directory."""
    with _lock:
        _fs_images[name] = host_path


def register_builtin_program(name: str, program: BuiltinProgram, host_path: str) -> None:
    """Register filesystem image ``name`` as a built-in program (see above);
    ``host_path`` is the file mounted where the workflow mounts the image."""
    with _lock:
        _fs_images[name] = host_path
        _builtin_programs[name] = program


def builtin_program(name: str) -> BuiltinProgram | None:
    """The built-in program filesystem image ``name`` stands for, if any."""
    _builtins()
    return _builtin_programs.get(name)


def _oicompare(arguments: Sequence[str], open_file: Callable[[str], BinaryIO]
               ) -> tuple[int, bytes, bytes]:
    """``checkers:oicompare``: ``IN EXPECTED RECEIVED``, compared by the exec
    jobs' default checker (IN is not read)."""
    from sio.executors.checker import compare_outputs, comparison_renv

    if len(arguments) < 3:
        return 2, b"", b"usage: /chk IN EXPECTED RECEIVED\n"
    try:
        with open_file(arguments[1]) as expected, open_file(arguments[2]) as received:
            result = compare_outputs(expected, received)
    except OSError as e:
        return 2, b"", f"oicompare: {e}\n".encode()
    if result.ok:
        return 0, b"OK\n\n100\n", b""
    message = comparison_renv(result.ok, result.message).get("result_string", "")
    return 0, f"WRONG\n{message}\n0\n".encode(), b""


@dataclass(frozen=True)
class BaseRoot:
    """The base root every process sees: read-only bind mounts, and symbolic
    links where the host has them between system directories (``/bin`` ->
    ``usr/bin`` on merged-/usr systems: a link costs less than a mount). The
    devices ``null``, ``zero``, ``random``, ``urandom`` are added as nodes."""

    mounts: tuple[Mount, ...]
    links: tuple[tuple[str, str], ...]


_base: list[BaseRoot] = []


def base_root() -> BaseRoot:
    """The base root (computed once)."""
    if _base:
        return _base[0]
    mounts, links = [], []
    for d in _SYSTEM_DIRS:
        if os.path.islink(d):
            target = os.readlink(d)
            real = os.path.realpath(d)
            if os.path.isdir(real) and any(real == os.path.realpath(o) or
                                           real.startswith(os.path.realpath(o) + "/")
                                           for o in _SYSTEM_DIRS if not os.path.islink(o)):
                links.append((d, target))
                continue
        real = os.path.realpath(d)
        if os.path.isdir(real):
            mounts.append(Mount(d, real))
    for f in _SYSTEM_FILES:
        if os.path.exists(f):
            mounts.append(Mount(f, os.path.realpath(f)))
    _base.append(BaseRoot(tuple(mounts), tuple(links)))
    return _base[0]


def _tools_dir() -> str:
    """Host directory with the tools of the ``python:`` image."""
    directory = os.path.join(build.cache_dir(), "workflow-tools")
    script = os.path.join(directory, "python")
    body = ("#!/bin/sh\n"
            "# python SRC -o OUT: make OUT an executable script run by python3\n"
            "[ \"$2\" = \"-o\" ] || { echo \"usage: python SRC -o OUT\" >&2; exit 2; }\n"
            "{ echo '#!/usr/bin/env python3'; cat \"$1\"; } > \"$3\" && chmod 755 \"$3\"\n")
    _write_tool(script, body)
    return directory


def _stub(name: str) -> str:
    """The file mounted for built-in program ``name``: a script that says it
    must be run by the worker."""
    directory = os.path.join(build.cache_dir(), "workflow-tools")
    path = os.path.join(directory, name.replace(":", "-") + ".stub")
    body = ("#!/bin/sh\n"
            f"echo '{name} is a built-in program of the worker: run it as the program "
            "(arguments[0]) of a process, not through another program' >&2\n"
            "exit 2\n")
    _write_tool(path, body)
    return path


def _write_tool(path: str, body: str) -> None:
    try:
        with open(path) as f:
            current = f.read()
    except OSError:
        current = None
    if current != body:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = f"{path}.{os.getpid()}"
        with open(tmp, "w") as f:
            f.write(body)
        os.chmod(tmp, 0o755)
        os.replace(tmp, path)


def _builtins() -> None:
    global _builtin_done
    if _builtin_done:
        return
    tmp = Mount("/tmp", None, writable=True, tmpfs_bytes=512 * 1024 * 1024)
    env = {"PATH": _PATH, "TMPDIR": "/tmp", "LANG": "C"}
    with _lock:
        _process_images.setdefault("", ProcessImage(env={"PATH": _PATH}))
        _process_prefixes.setdefault("compiler:", ProcessImage((tmp,), env, pid_floor=64))
    tools = _tools_dir()
    stub = _stub("checkers:oicompare")
    with _lock:
        _process_prefixes.setdefault("python:", ProcessImage(
            (tmp, Mount(TOOLS_DIR, tools)), {**env, "PATH": f"{TOOLS_DIR}:{_PATH}"},
            pid_floor=16))
        if "checkers:oicompare" not in _fs_images:
            _fs_images["checkers:oicompare"] = stub
            _builtin_programs["checkers:oicompare"] = _oicompare
        configured = os.environ.get("SIO_WORKFLOW_IMAGES")
        if configured:
            try:
                with open(configured) as f:
                    extra = json.load(f)
            except (OSError, ValueError) as e:
                raise WorkflowError(f"SIO_WORKFLOW_IMAGES={configured}: {e}") from e
            for name, path in extra.items():
                _fs_images.setdefault(str(name), str(path))
        _builtin_done = True


def process_image(name: str) -> ProcessImage:
    """The process image called ``name``.

    A name starting with ``/`` (hand-written ``"image": "/exe"``) means "no
    image": the program is ``arguments[0]``.

    :raises WorkflowError: unknown name.
    """
    _builtins()
    if name.startswith("/"):
        name = ""
    if name in _process_images:
        return _process_images[name]
    for prefix, image in _process_prefixes.items():
        if name.startswith(prefix):
            return image
    known = sorted(_process_images) + [p + "*" for p in sorted(_process_prefixes)]
    raise WorkflowError(f"unknown process image {name!r} (known: "
                        f"{', '.join(repr(k) for k in known)})")


def filesystem_image(name: str, path: str) -> str:
    """Host path of filesystem image ``name`` at sub-path ``path``.

    :raises WorkflowError: unknown name, or ``path`` outside the image.
    """
    _builtins()
    if name not in _fs_images:
        raise WorkflowError(f"unknown filesystem image {name!r} (known: "
                            f"{', '.join(sorted(_fs_images)) or 'none'})")
    base = _fs_images[name]
    if not path:
        return base
    full = os.path.realpath(os.path.join(base, path.lstrip("/")))
    if not full.startswith(os.path.realpath(base) + os.sep) or not os.path.exists(full):
        raise WorkflowError(f"filesystem image {name!r} has no path {path!r}")
    return full


def check_images(wf: Workflow) -> None:
    """Every image the workflow names is known here.

    :raises WorkflowError: naming the task, process or filesystem.
    """
    for t in wf.tasks:
        if not isinstance(t, ExecutionTask):
            continue
        for pi, p in enumerate(t.processes):
            try:
                process_image(p.image)
            except WorkflowError as e:
                raise WorkflowError(f"task {t.index} ({t.name!r}), process {pi}, field "
                                    f"'image': {e}") from None
        for fi, fs in enumerate(t.filesystems):
            if fs.type == "image":
                assert fs.image is not None
                try:
                    filesystem_image(fs.image, fs.path)
                except WorkflowError as e:
                    raise WorkflowError(f"task {t.index} ({t.name!r}), filesystem {fi}: "
                                        f"{e}") from None
