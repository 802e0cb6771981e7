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
    # limitexec.c, nsexec.c, execstub.c, _compare.c: helpers built
    # from them with the system cc on first use
    package_data={"sio.workers": ["py.typed"],
                  "sio.workers._engine": ["limitexec.c", "nsexec.c"],
                  "sio.workers._engine.supervisor": ["execstub.c"],
                  "sio.executors": ["_compare.c"]},
    zip_safe=False,
    install_requires=[
        "filetracker>=2.2",
        "celery>=5.3",
        # Lua for the script tasks of SIO3 workflows (the workflow job)
        "lupa>=2.0",
    ],
    extras_require={
        "tests": [
            "pytest>=7",
            "pytest-timeout",
            "mypy",
            "filetracker[server]>=2.2",
            "redis",
            # workflows generated from test packages (1.0.0.dev5: the format
            # sio.workflows reads; a pre-release, hence pinned)
            "sio3pack==1.0.0.dev5",
            "psycopg[binary]>=3.1",
        ],
        # PostgreSQL as the store of sioworkersd (--database postgresql://...).
        "postgresql": [
            "psycopg[binary]>=3.1",
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
            "sio-batch-map = sio.workers.batch:main",
            "sio-run-filetracker = sio.workers.ft:main",
            "sio-celery-worker = sio.celery.worker:main",
            "sio-get-sandbox = sio.workers.sandbox:main",
            "sio-compile = sio.compilers.job:main",
            "sio-run-workflow = sio.workflows.job:main",
            "sioworkersd = sio.sioworkersd.main:main",
        ],
        "sio.jobs": [
            "ping = sio.workers.ping:run",
            "compile = sio.compilers.job:run",
            "exec = sio.executors.executor:run",
            "cpu-exec = sio.executors.executor:cpu_run",
            "unsafe-exec = sio.executors.unsafe_exec:run",
            "interactive-exec = sio.executors.executor:interactive_run",
            "cpu-interactive-exec = sio.executors.executor:cpu_interactive_run",
            "unsafe-interactive-exec = sio.executors.unsafe_exec:interactive_run",
            "ingen = sio.executors.ingen:run",
            "inwer = sio.executors.inwer:run",
            "sio2jail-exec = sio.executors.sio2jail_exec:run",
            "sio2jail-interactive-exec = sio.executors.sio2jail_exec:interactive_run",
            "workflow = sio.workflows.job:run",
        ],
        "sio.compilers": [
            # system toolchains (and their deprecated aliases)
            "system-gcc = sio.compilers.system_gcc:run_gcc",
            "system-c = sio.compilers.system_gcc:run_gcc",
            "system-g++ = sio.compilers.system_gcc:run_gplusplus",
            "system-cc = sio.compilers.system_gcc:run_gplusplus",
            "system-cpp = sio.compilers.system_gcc:run_gplusplus",
            "system-fpc = sio.compilers.system_fpc:run",
            "system-pas = sio.compilers.system_fpc:run",
            "system-java = sio.compilers.system_java:run",
            "system-python = sio.compilers.system_python:run",
            "output-only = sio.compilers.output:run",
            "foo = sio.compilers.template:run",
            # compilers in sandboxes
            "gcc4_8_2_c99 = sio.compilers.gcc:run_c_gcc4_8_2_c99",
            "gcc12_2_0_c17 = sio.compilers.gcc:run_c_gcc12_2_0_c17",
            "gcc14_2_0_c17 = sio.compilers.gcc:run_c_gcc14_2_0_c17",
            "g++4_8_2_cpp11 = sio.compilers.gcc:run_cpp_gcc4_8_2_cpp11",
            "g++6_3_cpp14 = sio.compilers.gcc:run_cpp_gcc6_3_cpp14",
            "g++8_3_cpp17 = sio.compilers.gcc:run_cpp_gcc8_3_cpp17",
            "g++8_3_cpp17_amd64 = sio.compilers.gcc:run_cpp_gcc8_3_cpp17_amd64",
            "g++10_2_cpp17_amd64 = sio.compilers.gcc:run_cpp_gcc10_2_cpp17_amd64",
            "g++12_2_cpp20_amd64 = sio.compilers.gcc:run_cpp_gcc12_2_cpp20_amd64",
            "g++14_2_cpp23_amd64 = sio.compilers.gcc:run_cpp_gcc14_2_cpp23_amd64",
            "fpc2_6_2 = sio.compilers.fpc:run_pas_fpc2_6_2",
            "java1_8 = sio.compilers.java:run_java1_8",
            # default-<ext>: the system toolchain unless SIO_DEFAULT_COMPILERS says otherwise
            "default-c = sio.compilers.gcc:run_c_default",
            "c = sio.compilers.gcc:run_c_default",
            "default-cc = sio.compilers.gcc:run_cpp_default",
            "default-cpp = sio.compilers.gcc:run_cpp_default",
            "cc = sio.compilers.gcc:run_cpp_default",
            "cpp = sio.compilers.gcc:run_cpp_default",
            "default-pas = sio.compilers.fpc:run_pas_default",
            "pas = sio.compilers.fpc:run_pas_default",
            "default-java = sio.compilers.java:run_java_default",
            "java = sio.compilers.java:run_java_default",
            "default-py = sio.compilers.system_python:run_default",
            "python = sio.compilers.system_python:run_default",
        ],
        "sio.workers.filters": [],
    },
    classifiers=[
        "Programming Language :: Python :: 3",
        "Programming Language :: Python :: 3 :: Only",
        "Operating System :: POSIX :: Linux",
        "Topic :: Education :: Testing",
    ],
)
