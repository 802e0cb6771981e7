"""Private mechanism: starting programs, enforcing limits, measuring them.

Nothing here knows about environs, result codes or default limits: callers
(:mod:`sio.workers.executors`) pass argv, cwd, env, files and
:class:`~sio.workers._engine.types.Limits` and get an
:class:`~sio.workers._engine.types.Outcome` back. This package never imports
the contract modules (runner, ft, executors, ...).
"""
