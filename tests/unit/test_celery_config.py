"""sio.celery without a broker: the task's registration, the configuration
(old and new style), the worker's command line."""

from __future__ import annotations

import subprocess
import sys
import warnings

import pytest

from sio.workers.errors import UsageError


@pytest.fixture
def config_module(tmp_path, monkeypatch):
    """Factory: write a configuration module and make it $CELERY_CONFIG_MODULE."""
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv("CELERY_BROKER_URL", raising=False)
    made = []

    def make(source: str) -> str:
        name = f"sio_test_celeryconfig_{len(made)}"
        (tmp_path / f"{name}.py").write_text(source)
        made.append(name)
        monkeypatch.setenv("CELERY_CONFIG_MODULE", name)
        return name

    yield make
    for name in made:
        sys.modules.pop(name, None)


def loaded_conf(**kwargs):
    """The configuration a fresh app reads (no broker is contacted)."""
    from sio.celery.app import SioCelery

    app = SioCelery("t", set_as_current=False, **kwargs)
    with warnings.catch_warnings():
        # Any deprecation (or other) warning while loading fails the test.
        warnings.simplefilter("error")
        conf = app.conf
        conf.broker_url  # noqa: B018 - forces the whole load
    return conf


DEFAULTS_STAR = "from sio.celery.default_config import *\n"
OLD_DEFAULTS = '''
CELERY_QUEUES = {"sioworkers": {"exchange": "sioworkers", "binding_key": "sioworkers"}}
CELERY_DEFAULT_QUEUE = "sioworkers"
CELERY_RESULT_BACKEND = "amqp"
CELERY_ACKS_LATE = True
CELERY_SEND_EVENTS = True
CELERY_IMPORTS = ["sio.celery.job"]
CELERY_ROUTES = {"sio.celery.job.sioworkers_job": dict(queue="sioworkers")}
'''


@pytest.mark.parametrize("source", [
    DEFAULTS_STAR + 'BROKER_URL = "amqp://u:p@broker.example:5672//"\n',   # the common upgrade
    DEFAULTS_STAR + 'broker_url = "amqp://u:p@broker.example:5672//"\n',   # new style
    OLD_DEFAULTS + 'BROKER_URL = "amqp://u:p@broker.example:5672//"\n',    # a whole 1.x file
    OLD_DEFAULTS + 'broker_url = "amqp://u:p@broker.example:5672//"\n',    # mixed
], ids=["new-defaults+old-url", "new+new", "old+old", "old-defaults+new-url"])
def test_old_and_new_style_configuration_modules_load(config_module, source):
    config_module(source)
    conf = loaded_conf()
    assert conf.broker_url == "amqp://u:p@broker.example:5672//"
    assert conf.task_default_queue == "sioworkers"
    assert conf.result_backend == "rpc://"  # 'amqp' was removed in Celery 5
    assert conf.task_acks_late is True
    assert conf.worker_send_task_events is True
    assert "sio.celery.job" in conf.imports
    assert conf.task_routes["sio.celery.job.sioworkers_job"]["queue"] == "sioworkers"


def test_the_default_configuration(monkeypatch):
    monkeypatch.delenv("CELERY_CONFIG_MODULE", raising=False)
    monkeypatch.delenv("CELERY_BROKER_URL", raising=False)
    conf = loaded_conf()
    assert conf.broker_url == "amqp://guest:guest@localhost:5672//"
    assert conf.task_default_queue == conf.task_default_exchange == "sioworkers"
    assert conf.result_backend == "rpc://"
    assert conf.task_acks_late and conf.task_reject_on_worker_lost
    assert conf.worker_prefetch_multiplier == 1
    assert conf.worker_send_task_events
    assert conf.worker_cancel_long_running_tasks_on_connection_loss
    assert conf.broker_connection_retry_on_startup
    assert conf.accept_content == ["json"] and conf.task_serializer == "json"
    assert conf.result_serializer == "json"


def test_settings_are_read_when_used_and_the_environment_wins(config_module, monkeypatch):
    from sio.celery.app import SioCelery

    app = SioCelery("t", set_as_current=False)  # nothing read yet
    config_module(DEFAULTS_STAR + 'BROKER_URL = "redis://from-file:6379/0"\n')
    monkeypatch.setenv("CELERY_BROKER_URL", "redis://from-env:6379/1")
    assert app.conf.broker_url == "redis://from-env:6379/1"
    assert app.conf.task_default_queue == "sioworkers"


def test_legacy_keys_win_over_the_star_imported_defaults():
    from sio.celery.app import translate_settings

    settings = translate_settings({"result_backend": "rpc://", "CELERY_RESULT_BACKEND": "redis://r",
                                   "CELERYD_PREFETCH_MULTIPLIER": 4, "_private": 1,
                                   "CELERYD_CONCURRENCY": 3, "unknown": 2})
    assert settings == {"result_backend": "redis://r", "worker_prefetch_multiplier": 4,
                        "worker_concurrency": 3, "unknown": 2}
    assert translate_settings({"result_backend": "amqp://x//"})["result_backend"] == "rpc://"


@pytest.mark.parametrize("source", [
    DEFAULTS_STAR + 'broker_url = "redis://r:6379/0"\n'
    'broker_transport_options = {"visibility_timeout": 7200}\n',
    DEFAULTS_STAR + 'BROKER_URL = "redis://r:6379/0"\n'
    'BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 7200}\n',
], ids=["new-style", "old-style"])
def test_transport_options_of_the_configuration_module_reach_the_connection(config_module,
                                                                            source):
    # Redis's visibility timeout is set this way, on workers and clients.
    from sio.celery.app import SioCelery

    config_module(source)
    app = SioCelery("t", set_as_current=False)
    with app.connection_for_read() as conn:  # not connected: only built
        assert conn.transport_options == {"visibility_timeout": 7200}
        assert (conn.transport_cls, conn.hostname, conn.virtual_host) == ("redis", "r", "0")


def test_filesystem_url_gets_its_folders(tmp_path, monkeypatch):
    monkeypatch.delenv("CELERY_CONFIG_MODULE", raising=False)
    monkeypatch.setenv("CELERY_BROKER_URL", f"filesystem://{tmp_path}/b")
    options = loaded_conf().broker_transport_options
    assert options == {"polling_interval": 0.1, "data_folder_in": f"{tmp_path}/b/queue",
                       "data_folder_out": f"{tmp_path}/b/queue",
                       "control_folder": f"{tmp_path}/b/control"}
    assert (tmp_path / "b" / "queue").is_dir()


def test_the_task_registers_with_any_app():
    from celery import Celery

    import sio.celery.job
    from sio.celery.app import SioCelery

    name = "sio.celery.job.sioworkers_job"
    assert sio.celery.job.TASK_NAME == name
    host = Celery("host-application", set_as_current=False)  # e.g. oioioi's own app
    ours = SioCelery("t", set_as_current=False)
    assert name in host.tasks and name in ours.tasks
    task = host.tasks[name]
    assert task.serializer == "json" and task.acks_late and task.reject_on_worker_lost
    # It runs the runner (eagerly: no broker).
    host.conf.task_always_eager = True
    result = host.tasks[name].apply(args=[{"job_type": "ping", "ping": "p"}]).get()
    assert result["pong"] == "p" and result["result"] == "SUCCESS"
    host.close()
    ours.close()


def test_importing_the_package_imports_no_celery():
    code = ("import sys, sio.celery; assert 'celery' not in sys.modules, 'celery imported'; "
            "assert callable(sio.celery.run_many)")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


@pytest.mark.parametrize("argv, url, rest", [
    ([], None, []),
    (["amqp://h//"], "amqp://h//", []),
    (["-c", "2", "redis://h:6379/0"], "redis://h:6379/0", ["-c", "2"]),
    (["filesystem:///x", "-l", "INFO"], "filesystem:///x", ["-l", "INFO"]),
    (["--logfile=file://x", "-Q", "q"], None, ["--logfile=file://x", "-Q", "q"]),
    (["sqla+sqlite:///w.db", "--concurrency=3"], "sqla+sqlite:///w.db", ["--concurrency=3"]),
])
def test_worker_argv_split(argv, url, rest):
    from sio.celery.worker import split_argv

    assert split_argv(argv) == (url, rest)


def test_worker_argv_two_urls():
    from sio.celery.worker import split_argv

    with pytest.raises(UsageError, match="more than one broker URL"):
        split_argv(["amqp://a//", "redis://b"])


@pytest.mark.parametrize("url, expected", [
    ("amqp://guest:guest@broker.example:5672//", "http://broker.example:9999"),
    ("redis://10.1.2.3:6379/0", "http://10.1.2.3:9999"),
    ("amqp://u:p@[::1]:5672//", "http://[::1]:9999"),
    ("filesystem:///var/spool/sio", "http://127.0.0.1:9999"),
    (None, "http://127.0.0.1:9999"),
])
def test_default_filetracker_url(url, expected):
    from sio.celery.worker import default_filetracker_url

    assert default_filetracker_url(url) == expected
