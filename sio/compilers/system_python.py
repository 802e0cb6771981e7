"""Python 3: syntax-checked at compile time, run as a zip application.

Entry point: ``system-python`` (``default-py`` and ``python`` resolve to it
unless ``SIO_DEFAULT_COMPILERS`` says otherwise). The source is saved as
``__main__.py`` beside the additional sources, includes, extra files and
archive members; then, in the compile directory::

    <python> -I <extra args> -m py_compile <every .py file>

checks the syntax in a child process under the compilation limits (never
in the worker: parsing a hostile source can take any time and memory).
``<python>`` is :func:`sio.workers.file_runners.python_interpreter` (the
worker's ``SIO_PYTHON``, default ``python3``), the interpreter that runs
the program too. Every ``.py`` file of the directory is then packed into
the zip ``a.pyz``, which ``python3 a.pyz`` runs.

``exec_info = {'mode': 'python', 'preferred_filename': 'a.pyz'}``: the
``python`` file runner of :mod:`sio.workers.file_runners` runs it.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Mapping
from typing import Any

from sio.compilers.common import CompileJob, Compiler, DefaultCompiler, iter_files
from sio.workers.file_runners import python_interpreter

__all__ = ["PythonCompiler", "run", "run_default"]

_RESULT = "a.pyz"


class PythonCompiler(Compiler):
    """``py_compile`` in a child process, then a zip; mode ``python``."""

    mode = "python"

    def __init__(self, name: str) -> None:
        super().__init__(name, "py", "python3", flags=["-m", "py_compile"])

    def source_name(self, environ: Mapping[str, Any]) -> str:
        return "__main__.py"

    def result_name(self, job: CompileJob) -> str:
        return _RESULT

    def commands(self, job: CompileJob) -> list[list[str]]:
        files = [f for f in iter_files(job.directory, ".py") if "__pycache__" not in f]
        # Extra arguments are the interpreter's options (e.g. -X ...): after
        # '-m py_compile' they would be taken for files.
        return [[python_interpreter(), "-I", *job.extra_args, *self.flags, *files]]

    def finish(self, job: CompileJob) -> str | None:
        target = job.path(_RESULT)
        with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as zf:
            for name in iter_files(job.directory, ".py"):
                if "__pycache__" not in name.split(os.sep):
                    zf.write(job.path(name), name)
        return None

    def exec_info(self, job: CompileJob) -> dict[str, Any]:
        return {"mode": "python", "preferred_filename": _RESULT}


#: ``system-python``
run = PythonCompiler("system-python")
#: ``default-py``, ``python``
run_default = DefaultCompiler("py")
