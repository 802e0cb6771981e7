"""``sioworkersd``: the daemon today's oioioi talks to, on Celery workers.

oioioi sends *groups* of jobs over XML-RPC (``run_group``,
``sync_run_group``, ...); the daemon keeps them in a store (SQLite or
PostgreSQL), decides which job runs on which ``sio-celery-worker`` (contest
priority and weight, task priority, RAM, exclusive job types) and POSTs each
finished group back to its ``return_url``. Celery carries the jobs.

* :mod:`sio.sioworkersd.policy`: the rules (RAM estimates, exclusive job
  types, validation, the finished group environ, retry delays);
* :mod:`sio.sioworkersd.scheduler`: which job goes to which worker (no I/O);
* :mod:`sio.sioworkersd.store`: the persistent store;
* :mod:`sio.sioworkersd.returning`: the POST to ``return_url``;
* :mod:`sio.sioworkersd.transport`: Celery: sending jobs, their results, the
  workers' advertisements;
* :mod:`sio.sioworkersd.daemon`: the daemon that ties them together;
* :mod:`sio.sioworkersd.rpc`: the XML-RPC API;
* :mod:`sio.sioworkersd.main`: the ``sioworkersd`` command.
"""
