"""What every console script does the same way (sio.workers._cli)."""

from __future__ import annotations

import os
import sys
from types import SimpleNamespace

from sio.workers._cli import result_only_stdout


def test_stdout_goes_to_stderr_while_the_work_is_done(capfd):
    print("before")
    with result_only_stdout():
        print("from print")
        sys.stdout.flush()
        os.write(1, b"on descriptor 1\n")
    print("after", flush=True)
    out, err = capfd.readouterr()
    assert out == "before\nafter\n"
    assert "from print" in err and "on descriptor 1" in err


def test_filetrackers_finalizer_error_is_not_shown(monkeypatch):
    # filetracker's FcntlLock.__del__ raises AttributeError when its
    # __init__ failed: Python would print "Exception ignored in ..." with a
    # traceback under the error already reported.
    import sio.workers._cli as cli

    seen = []
    monkeypatch.setattr(sys, "unraisablehook", seen.append)  # the previous hook
    monkeypatch.setattr(cli, "_hook_installed", False)
    with result_only_stdout():
        pass

    def finalizer():
        pass

    finalizer.__module__ = "filetracker.client.lock_manager"
    error = AttributeError("'FcntlLock' object has no attribute 'fd'")
    sys.unraisablehook(SimpleNamespace(object=finalizer, exc_type=AttributeError,
                                       exc_value=error))
    assert seen == []
    # Anything else still goes to the previous hook.
    other = SimpleNamespace(object=test_filetrackers_finalizer_error_is_not_shown,
                            exc_type=AttributeError, exc_value=error)
    sys.unraisablehook(other)
    assert seen == [other]
