"""SIO3Pack workflows on the engine: the ``workflow`` job and ``sio-run-workflow``.

* :mod:`sio.workflows.model`: the format as read, and :func:`~sio.workflows.model.parse`;
* :mod:`sio.workflows.normalise`: the pass that repairs sio3pack's output;
* :mod:`sio.workflows.images`: the image registry;
* :mod:`sio.workflows.execution`: execution tasks and their report;
* :mod:`sio.workflows.scripts`: Lua script tasks;
* :mod:`sio.workflows.runner`: the dataflow scheduler, :func:`~sio.workflows.runner.run_workflow`;
* :mod:`sio.workflows.job`: the job and the command.

The format, the interpretations chosen and the report are in ``docs/workflows.rst``.
"""
