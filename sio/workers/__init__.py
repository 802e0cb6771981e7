"""sioworkers: batch jobs for programming-contest judging.

A job is one JSON-able dict, the *environ*, in and out; see
:func:`sio.workers.runner.run`. This package initialiser stays tiny on
purpose: every ``sio.workers.*`` import runs it, the command-line scripts
included, and their start-up time is part of every job.
"""

from __future__ import annotations

import os

from sio.workers.errors import Failure, SioWorkersError

__all__ = ["Failure", "SioWorkersError"]

# The process working directory when sioworkers was first imported. Local
# (non-Filetracker) relative paths in an environ are resolved against it,
# because jobs themselves run in a fresh temporary directory.
try:
    _original_cwd = os.getcwd()
except FileNotFoundError:  # started from a directory that was removed
    _original_cwd = "/"
