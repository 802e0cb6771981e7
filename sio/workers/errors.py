"""Exceptions of sioworkers, all rooted at :class:`SioWorkersError`.

This module imports nothing from the rest of the package, so that every layer
(the process engine included) can raise these without an import cycle.

Two kinds of problem are kept apart:

* **verdicts** (CE, WA, TLE, ...) are never exceptions: they are data in the
  environ a job returns;
* **exceptions** mean that something is broken: the environ (a user mistake),
  or the infrastructure (a missing sandbox, an unreachable Filetracker).

Where the original sioworkers raised a builtin that callers catch, the
subclass here inherits from that builtin too, so old ``except`` clauses keep
working.
"""

from __future__ import annotations


class SioWorkersError(Exception):
    """Root of every exception raised by sioworkers itself."""


class Failure(SioWorkersError):
    """A job reports that it failed.

    :func:`sio.workers.runner.run` catches it and returns the environ with
    ``result = 'FAILURE'``, ``exception`` and ``traceback`` set; every other
    exception propagates to the caller.
    """


class UsageError(SioWorkersError, ValueError):
    """The environ or the command line is wrong: the user can fix it.

    Command-line scripts print such errors as one line and exit with status 2.
    """


class MissingEnvironKey(UsageError, KeyError):
    """A key a job needs is not in the environ.

    A subclass of :class:`KeyError` because the original raised a bare
    ``KeyError`` there; unlike it, the message names the key and what reads it.
    """

    def __init__(self, key: str, needed_by: str = "") -> None:
        self.key = key
        self.needed_by = needed_by
        super().__init__(key)

    def __str__(self) -> str:
        who = f" (needed by {self.needed_by})" if self.needed_by else ""
        return f"the environ has no key {self.key!r}{who}"


class EntryPointNotFound(UsageError, RuntimeError):
    """No loadable entry point of that name in that group.

    A subclass of :class:`RuntimeError` because that is what the original
    raised for an unknown ``job_type``.
    """

    def __init__(self, group: str, name: str, message: str) -> None:
        self.group = group
        self.name = name
        super().__init__(message)


class NoTemporaryCwd(SioWorkersError, RuntimeError):
    """:func:`sio.workers.util.tempcwd` was called outside any
    :class:`~sio.workers.util.TemporaryCwd`."""
