"""A worker process of the local pool: ``python -m sio.workers._batch.worker``.

Its argument, when given, is the folder in which its jobs make their
temporary directories. It reads jobs from standard input, one a line:
``<idx>\\t<environ JSON>``, runs each with :func:`sio.workers.runner.run`
and answers on its original
standard output, one line a job: ``<idx>\\t<kind>\\t<JSON>`` where ``kind``
is ``done`` (the JSON is the result environ), ``failed`` (the job reported a
:class:`~sio.workers.errors.Failure`) or ``error`` (the job raised); for the
last two the JSON is ``[result environ, exception, traceback]``.

Everything a job prints goes to standard error: file descriptor 1 is
re-pointed there, and the answers go through a duplicate of the original.
SIGINT is ignored (Ctrl-C is the parent's to handle); SIGUSR1 asks the
worker to stop after the job it is running, leaving the jobs it was sent
but did not start unanswered. End of input, or the death of the parent,
ends the worker.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import tempfile
import time
import traceback
from typing import Any

from sio.workers.runner import run
from sio.workers.util import json_dumps

#: Answers of short jobs are sent together, but none waits longer than this
#: (seconds).
FLUSH_S = 0.02


def failure(exc: BaseException) -> tuple[str, str]:
    """``(exception, traceback)`` texts of an exception a job raised."""
    return (f"{type(exc).__name__}: {exc}", "".join(traceback.format_exception(exc)))


def run_line(line: str) -> str:
    idx, _, text = line.partition("\t")
    try:
        result = run(json.loads(text))
    except Exception as exc:
        message, tb = failure(exc)
        # The environ as sent, not as the job left it before raising.
        sent = json.loads(text)
        sent.update(result="FAILURE", exception=message, traceback=tb)
        return f"{idx}\terror\t{json_dumps([sent, message, tb])}\n"
    if result.get("result") == "FAILURE":
        answer = [result, str(result.get("exception", "")), str(result.get("traceback", ""))]
        return f"{idx}\tfailed\t{json_dumps(answer)}\n"
    return f"{idx}\tdone\t{json_dumps(result)}\n"


def main(tmp: str | None = None) -> None:
    """Serve jobs until the end of input; ``tmp``: the folder for the jobs'
    temporary directories (this worker's own, made and removed by the
    pool: see sio.workers._batch.local)."""
    if tmp is not None:
        tempfile.tempdir = tmp
    parent = os.getppid()
    try:
        _serve()
    finally:
        # The pool removes the folder once this process is gone; a pool
        # that died first (killed) cannot.
        if tmp is not None and os.getppid() != parent:
            shutil.rmtree(tmp, ignore_errors=True)


def _serve() -> None:
    stopping = False

    def stop(signum: int, frame: Any) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGUSR1, stop)
    answers = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    parent = os.getppid()
    pending = b""
    while not stopping:
        chunk = os.read(0, 1 << 16)
        if not chunk:
            break
        *lines, pending = (pending + chunk).split(b"\n")
        out: list[str] = []
        flushed = time.monotonic()
        for line in lines:
            # A parent that died (re-parented: getppid changed) wants
            # nothing more: the jobs it queued here would only be run again
            # on resume.
            if stopping or os.getppid() != parent:
                stopping = True
                break
            out.append(run_line(line.decode("utf-8")))
            # Answers go out together when jobs are short (fewer wake-ups
            # of the parent), and at least every FLUSH_S.
            if time.monotonic() - flushed >= FLUSH_S:
                if not _send(answers, out):
                    return
                out, flushed = [], time.monotonic()
        if out and not _send(answers, out):
            return


def _send(fd: int, answers: list[str]) -> bool:
    data = "".join(answers).encode("utf-8")
    try:
        while data:
            data = data[os.write(fd, data):]
    except BrokenPipeError:  # the parent is gone: nobody wants the rest
        return False
    return True


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else None)
