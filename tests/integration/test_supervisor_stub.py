"""The spawner's pre-started child as the compiled stub (execstub.c): what
happens when it cannot run, and what it does with a garbled set-up. (Every
test of test_supervisor.py runs with the stub and without it.)"""

from __future__ import annotations

import os

import pytest

from sio.workers._engine.supervisor import _client, probe
from tests.integration.test_supervisor import job  # noqa: F401
from tests.support import missing

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module", autouse=True)
def supervision_available():
    caps = probe()
    if not caps.usable:
        missing(f"supervised execution: {caps.describe()}", required=False)


@pytest.mark.parametrize("kind", ["gone", "crashes"])
def test_a_stub_that_cannot_run_falls_back_to_python_children(job, tmp_path, kind):
    """A cached stub that has gone (or sits on a noexec mount), or one that
    dies before it is ready, must not cost a single run: the spawner notices
    the child that could not become it and sets the runs up in Python from
    then on."""
    if _client.execstub_path() is None:
        missing("a C compiler to build the supervisor's execstub")
    broken = tmp_path / "execstub-broken"
    if kind == "crashes":
        broken.write_text("#!/bin/sh\nkill -SEGV $$\n")
        broken.chmod(0o755)
    saved = list(_client._stub)
    _client._stub[:] = [str(broken)]
    _client._shutdown()
    try:
        for _ in range(3):
            outcome, result = job.run("sup_behave", "ok")
            assert result == ("OK", "ok"), outcome
    finally:
        _client._stub[:] = saved
        _client._shutdown()


@pytest.mark.parametrize("message, complaint", [
    (b"", None),                                   # the spawner went away: exit 0, quietly
    (b"\x10\x00\x00\x00SOIS", None),               # ... in the middle of a message
    (b"\x04\x00\x00\x00XXXX", b"bad magic"),
    (b"\xff\xff\xff\x7f", b"too large"),
    (b"\x06\x00\x00\x00SOIS\x00\x00", b"truncated"),
])
def test_the_stub_refuses_a_malformed_set_up(message, complaint):
    """The stub only ever talks to its spawner, but a garbled message must
    still end it with a reason, never run anything."""
    import socket
    import subprocess

    if _client.execstub_path() is None:
        missing("a C compiler to build the supervisor's execstub")
    ours, theirs = socket.socketpair()
    with ours, theirs:
        # fd 3 is the stub's socket (preexec_fn runs after close_fds would
        # have closed it, hence close_fds=False)
        proc = subprocess.Popen([_client.execstub_path()], close_fds=False,
                                preexec_fn=lambda: os.dup2(theirs.fileno(), 3))
        theirs.close()
        assert ours.recv(1) == b"R"
        if message:
            ours.sendall(message)
        ours.shutdown(socket.SHUT_WR)
        code = proc.wait(timeout=10)
        said = ours.recv(4096)
    if complaint:
        assert code == 127 and said.startswith(b"malformed run set-up"), (code, said)
        assert complaint in said
    else:
        assert code == 0 and said == b""
