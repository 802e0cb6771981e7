"""sio-batch as users run it: the installed console script, in a subprocess."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

SIO_BATCH = shutil.which("sio-batch") or str(Path(sys.executable).parent / "sio-batch")


def sio_batch(*args, environ=None, stdin=None, extra_env=None):
    env = {k: v for k, v in os.environ.items() if k not in ("environ", "prefilters", "postfilters")}
    if environ is not None:
        env["environ"] = json.dumps(environ)
    env.update(extra_env or {})
    return subprocess.run([SIO_BATCH, *args], env=env, input=stdin, capture_output=True,
                          text=True, timeout=60)


def result_of(proc):
    lines = proc.stdout.splitlines()
    assert lines[0] == "--- BEGIN ENVIRON ---" and lines[-1] == "--- END ENVIRON ---"
    return json.loads(lines[1])


def test_ping_through_the_console_script():
    p = sio_batch("ping", environ={"ping": "x"})
    assert p.returncode == 0, p.stderr
    assert result_of(p) == {"ping": "x", "job_type": "ping", "worker": os.uname().nodename,
                            "pong": "x", "result": "SUCCESS"}
    assert "INFO: starting job ping" in p.stderr and "finished job ping: SUCCESS" in p.stderr


def test_stdin_and_usage_error_exit_codes():
    p = sio_batch(stdin='{"job_type": "ping", "ping": 2}')
    assert p.returncode == 0 and result_of(p)["pong"] == 2
    p = sio_batch(environ={"job_type": "nosuchjob"})
    assert p.returncode == 2
    assert p.stdout == ""
    assert p.stderr.startswith("sio-batch: error: no entry point 'nosuchjob'")
    assert "Traceback" not in p.stderr


@pytest.fixture(scope="module")
def throwaway_distribution(tmp_path_factory):
    """A separate distribution, built and installed by pip into a temp dir,
    that registers its own job and filters through entry points."""
    src = tmp_path_factory.mktemp("src")
    (src / "sio_throwaway").mkdir()
    (src / "sio_throwaway" / "__init__.py").write_text(textwrap.dedent("""
        import os
        import subprocess

        def job(environ):
            # Noise on standard output, the three ways libraries make it:
            # it must not reach sio-batch's standard output.
            print('noise from print')
            os.write(1, b'noise on descriptor 1\\n')
            subprocess.run(['echo', 'noise from a child process'])
            environ['answer'] = environ['question'] * 2
            environ.setdefault('seen', []).append('job')
            return environ

        def stamp(environ):
            environ.setdefault('seen', []).append('stamp:' + environ.get('result', '-'))
            return environ
    """))
    (src / "setup.py").write_text(textwrap.dedent("""
        from setuptools import setup
        setup(name='sio-throwaway', version='0.1', packages=['sio_throwaway'],
              entry_points={'sio.jobs': ['double = sio_throwaway:job'],
                            'sio.workers.filters': ['stamp = sio_throwaway:stamp']})
    """))
    target = tmp_path_factory.mktemp("site")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps",
                    "--no-build-isolation", "--target", str(target), str(src)],
                   check=True, timeout=300)
    return target


def test_third_party_job_and_filters(throwaway_distribution):
    extra = {"PYTHONPATH": str(throwaway_distribution), "postfilters": "stamp"}
    p = sio_batch(environ={"job_type": "double", "question": 21, "prefilters": ["stamp"]},
                  extra_env=extra)
    assert p.returncode == 0, p.stderr
    assert len(p.stdout.splitlines()) == 3, p.stdout
    for noise in ("noise from print", "noise on descriptor 1", "noise from a child process"):
        assert noise in p.stderr
    env = result_of(p)
    assert env["answer"] == 42
    assert env["seen"] == ["stamp:-", "job", "stamp:SUCCESS"]
    assert env["result"] == "SUCCESS"

    # Without the distribution on the path the job is unknown: a usage error.
    p = sio_batch(environ={"job_type": "double", "question": 1})
    assert p.returncode == 2 and "no entry point 'double'" in p.stderr
