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
``checkers:oicompare``            a native comparator run as ``/chk IN EXPECTED
                                  RECEIVED``: prints ``OK`` or ``WRONG``, a
                                  comment and the points (100 or 0)
================================  ================================================

Deployments add entries with :func:`register_process_image` /
:func:`register_filesystem_image`, or with the setting
``SIO_WORKFLOW_IMAGES``: a JSON file mapping filesystem image names to host
paths (a file or a directory; ``path`` selects inside it).
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass, field

from sio.workers._engine import build
from sio.workers._engine.groups import Mount
from sio.workflows.model import ExecutionTask, Workflow, WorkflowError

__all__ = ["ProcessImage", "BaseRoot", "base_root", "process_image", "filesystem_image", "check_images",
           "register_process_image", "register_filesystem_image"]

_HERE = os.path.dirname(os.path.abspath(__file__))
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


def register_process_image(name: str, image: ProcessImage, *, prefix: bool = False) -> None:
    """Register ``image`` under ``name`` (or, with ``prefix``, for every
    name starting with ``name``; exact names win)."""
    with _lock:
        (_process_prefixes if prefix else _process_images)[name] = image


def register_filesystem_image(name: str, host_path: str) -> None:
    """Register a filesystem image: a host file or directory."""
    with _lock:
        _fs_images[name] = host_path


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
    try:
        with open(script) as f:
            current = f.read()
    except OSError:
        current = None
    if current != body:
        os.makedirs(directory, exist_ok=True)
        tmp = f"{script}.{os.getpid()}"
        with open(tmp, "w") as f:
            f.write(body)
        os.chmod(tmp, 0o755)
        os.replace(tmp, script)
    return directory


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
    with _lock:
        _process_prefixes.setdefault("python:", ProcessImage(
            (tmp, Mount(TOOLS_DIR, tools)), {**env, "PATH": f"{TOOLS_DIR}:{_PATH}"},
            pid_floor=16))
        if "checkers:oicompare" not in _fs_images:
            exe = build.find_or_build("oicompare", os.path.join(_HERE, "oicompare.c"),
                                      (["-O2", "-static"], ["-O2"]),
                                      "the checkers:oicompare image is unavailable")
            if exe is not None:
                _fs_images["checkers:oicompare"] = exe
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
