"""Packaging of sioworkers.

Entry points are declared here, in the groups the original used, so that
third-party distributions register jobs, compilers and filters the same way:

* ``sio.jobs``: job types (``environ['job_type']``);
* ``sio.compilers``: compilers (``environ['compiler']``);
* ``sio.workers.filters``: prefilters and postfilters.
"""

from setuptools import find_namespace_packages, setup

setup(
    name="sioworkers",
    version="2.0.0.dev0",
    description="Batch jobs for programming-contest judging: compile, run under limits, check",
    long_description=open("README.rst", encoding="utf-8").read(),
    long_description_content_type="text/x-rst",
    author="sioworkers developers",
    python_requires=">=3.11",
    # 'sio' is a PEP 420 namespace: there is no sio/__init__.py, so other
    # distributions can add their own sio.* packages.
    packages=find_namespace_packages(include=["sio.*"]),
    # limitexec.c: the engine builds its exec wrapper from it on first use
    package_data={"sio.workers": ["py.typed"], "sio.workers._engine": ["limitexec.c"]},
    zip_safe=False,
    install_requires=[
        "filetracker>=2.2",
        "celery>=5.3",
    ],
    extras_require={
        "tests": [
            "pytest>=7",
            "pytest-timeout",
            "mypy",
            "filetracker[server]>=2.2",
            "redis",
        ],
        # Redis as the Celery broker or result backend.
        "redis": [
            "celery[redis]>=5.3",
        ],
        "docs": [
            "sphinx>=7",
        ],
    },
    entry_points={
        "console_scripts": [
            "sio-batch = sio.workers.runner:main",
            "sio-run-filetracker = sio.workers.ft:main",
            "sio-celery-worker = sio.celery.worker:main",
            "sio-get-sandbox = sio.workers.sandbox:main",
        ],
        "sio.jobs": [
            "ping = sio.workers.ping:run",
            "exec = sio.executors.executor:run",
            "cpu-exec = sio.executors.executor:cpu_run",
            "unsafe-exec = sio.executors.unsafe_exec:run",
            "interactive-exec = sio.executors.executor:interactive_run",
            "cpu-interactive-exec = sio.executors.executor:cpu_interactive_run",
            "unsafe-interactive-exec = sio.executors.unsafe_exec:interactive_run",
            "ingen = sio.executors.ingen:run",
            "inwer = sio.executors.inwer:run",
        ],
        "sio.compilers": [],
        "sio.workers.filters": [],
    },
    classifiers=[
        "Programming Language :: Python :: 3",
        "Programming Language :: Python :: 3 :: Only",
        "Operating System :: POSIX :: Linux",
        "Topic :: Education :: Testing",
    ],
)
