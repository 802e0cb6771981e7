"""``execute(command, **kwargs)``: run a helper command, get its output."""

from __future__ import annotations

from typing import Any

from sio.workers.executors import UnprotectedExecutor

__all__ = ["execute"]


def execute(command: Any, **kwargs: Any) -> tuple[int, Any]:
    """Run ``command`` with :class:`~sio.workers.executors.UnprotectedExecutor`,
    capturing its standard output, and return ``(return_code, output)``.

    ``output`` is bytes (a list of lines with ``split_lines=True``). Every
    option of :meth:`~sio.workers.executors.BaseExecutor.__call__` may be
    given; the working directory is :func:`~sio.workers.util.tempcwd` unless
    ``cwd`` is.

    :raises ~sio.workers.executors.ExecError: on a non-zero return code,
        unless ``ignore_errors=True``.
    """
    kwargs["capture_output"] = True
    with UnprotectedExecutor() as executor:
        renv = executor(command, **kwargs)
    return renv["return_code"], renv["stdout"]
