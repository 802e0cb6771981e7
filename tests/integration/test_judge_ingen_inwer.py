"""``ingen`` and ``inwer`` end to end, as oioioi's package upload sends them
(clients.md §1.3 (g), §4 scenarios 20 and 21): real programs, a real
Filetracker server, :func:`sio.workers.runner.run`."""

from __future__ import annotations

import copy
import json
import re

import pytest

from sio.executors.selection import ExecutorUnavailable
from sio.workers import executors, runner

pytestmark = pytest.mark.integration

RE_STRING = r"^(abc(([0-9]+)([a-z]?[a-z0-9]*))).in$"


def run_job(env):
    sent = copy.deepcopy(env)
    result = runner.run(env)
    for key, value in sent.items():
        assert result[key] == value, key
    assert result["result"] == "SUCCESS"
    assert isinstance(result["stdout"], list)
    assert all(isinstance(line, str) for line in result["stdout"])
    json.dumps(result)
    return result


def ingen_env(ft_store, exe, **keys):
    env = {"job_type": "ingen", "filetracker_url": ft_store.url, "package_id": 4,
           "author": {"nested": ["x"]}, "task_priority": 500,
           "exe_file": ft_store.put("abcingen.e", path=exe), "re_string": RE_STRING,
           "collected_files_path": ft_store.name("in"), "use_sandboxes": False}
    env.update(keys)
    return env


def test_ingen_collects_only_matching_files(ft_store, c_program):
    env = ingen_env(ft_store, c_program("judge_ingen"))
    result = run_job(env)
    assert result["return_code"] == 0
    collected = result["collected_files"]
    assert len(collected) == 100
    assert "abc.tmp" not in collected and "xabc1.in" not in collected
    assert collected.keys() == {f"abc{i}{'a' if i % 2 else ''}.in" for i in range(1, 101)}
    path = collected["abc7a.in"]
    assert re.fullmatch(re.escape(env["collected_files_path"]) + r"/abc7a\.in@\d+", path)
    assert ft_store.get(path) == b"7 14\n"
    assert "generated abc1a.in" in result["stdout"]
    assert "done" in result["stdout"]


def test_ingen_failure_collects_nothing(ft_store, c_program):
    result = run_job(ingen_env(ft_store, c_program("judge_ingen", "-DFAIL")))
    assert result["return_code"] == 1
    assert "collected_files" not in result


def test_ingen_output_is_limited(ft_store, c_program):
    result = run_job(ingen_env(ft_store, c_program("judge_ingen"), ingen_output_limit=100))
    assert len("\n".join(result["stdout"]).encode()) <= 100
    assert len(result["collected_files"]) == 100


def test_sandboxed_ingen_refuses_to_run_unprotected(ft_store, c_program, monkeypatch):
    monkeypatch.delattr(executors, "PRootExecutor")
    with pytest.raises(ExecutorUnavailable, match="PRootExecutor"):
        runner.run(ingen_env(ft_store, c_program("judge_ingen"), use_sandboxes=True))


def test_sandboxed_ingen_in_proot(ft_store, c_program, archive_server):
    # 'null-sandbox' served by a local HTTP server: a busybox root file
    # system; the generator is static, the sandbox has no C library.
    import shutil

    from tests.sandbox_support import busybox_tree, sandbox_archive
    from tests.support import missing

    tree = busybox_tree()
    if not tree:
        missing("a static busybox (Debian package busybox-static)")
    if shutil.which("proot") is None:
        missing("proot (Debian package proot)")
    archive_server.put("null-sandbox", sandbox_archive("null-sandbox", tree))
    result = run_job(ingen_env(ft_store, c_program("judge_ingen", "-static"),
                               use_sandboxes=True))
    assert result["return_code"] == 0, result["stdout"]
    assert len(result["collected_files"]) == 100
    assert ft_store.get(result["collected_files"]["abc2.in"]) == b"2 4\n"


def inwer_env(ft_store, exe, test, **keys):
    env = {"job_type": "inwer", "filetracker_url": ft_store.url, "package_id": 4,
           "exe_file": ft_store.put("abcinwer.e", path=exe),
           "in_file": ft_store.put("abc1a.in", test), "in_file_name": "abc1a.in",
           "use_sandboxes": False}
    env.update(keys)
    return env


def test_inwer_accepts(ft_store, c_program):
    result = run_job(inwer_env(ft_store, c_program("judge_inwer"), "3 4\n"))
    assert result["result_code"] == "OK"
    assert result["stdout"] == ["OK abc1a.in", ""]


@pytest.mark.parametrize("test, message", [
    ("3 4 5\n", "WRONG bad format in abc1a.in"),
    ("3 4000\n", "WRONG out of range in abc1a.in"),
])
def test_inwer_rejects(ft_store, c_program, test, message):
    result = run_job(inwer_env(ft_store, c_program("judge_inwer"), test))
    assert (result["result_code"], result["result_string"]) == \
        ("RE", "program exited with code 1")
    assert result["stdout"][0] == message


def test_inwer_without_file_name(ft_store, c_program):
    env = inwer_env(ft_store, c_program("judge_inwer"), "3 4\n")
    del env["in_file_name"]
    result = run_job(env)
    assert result["result_code"] == "RE"
    assert result["stdout"][0] == "WRONG bad file name argument"


def test_sandboxed_inwer_refuses_to_run_unprotected(ft_store, c_program, monkeypatch):
    monkeypatch.delattr(executors, "SupervisedExecutor")
    with pytest.raises(ExecutorUnavailable, match="supervised executor is not available"):
        runner.run(inwer_env(ft_store, c_program("judge_inwer"), "3 4\n", use_sandboxes=True))


def test_sandboxed_inwer_runs_supervised(ft_store, c_program):
    result = run_job(inwer_env(ft_store, c_program("judge_inwer"), "3 4\n", use_sandboxes=True))
    assert result["result_code"] == "OK"
    assert result["stdout"] == ["OK abc1a.in", ""]
    assert result["num_syscalls"] > 0  # it ran under the supervisor
    result = run_job(inwer_env(ft_store, c_program("judge_inwer"), "3 4 5\n",
                               use_sandboxes=True))
    assert result["result_code"] == "RE"
    assert result["stdout"][0] == "WRONG bad format in abc1a.in"
