"""Exceptions of the supervised engine (all are :class:`SioWorkersError`)."""

from __future__ import annotations

from sio.workers.errors import SioWorkersError


class SupervisorError(SioWorkersError):
    """The supervisor itself failed (not the program under it)."""


class SupervisorUnavailable(SupervisorError):
    """This machine cannot supervise programs safely; the message says what
    is missing. Raised instead of ever running a program unsupervised."""


class ProgramNotFound(SupervisorError, FileNotFoundError):
    """The program to run does not exist or is not executable."""
