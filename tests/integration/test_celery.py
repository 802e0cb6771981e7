"""Celery end to end: real ``sio-celery-worker`` processes, real brokers.

Every worker here is a subprocess in its own temporary directory and process
group, consuming only a queue whose name is unique to this test session (so
that nothing else on the shared RabbitMQ and Redis interferes), on Redis in a
database of its own set-up (:data:`REDIS_DB`); it is always stopped, or
killed, at teardown, and its queue deleted.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support import make_plugin_distribution, missing, port_open

pytestmark = pytest.mark.integration

BIN = Path(sys.executable).parent
SIO_CELERY_WORKER = shutil.which("sio-celery-worker") or str(BIN / "sio-celery-worker")
CELERY = shutil.which("celery") or str(BIN / "celery")

RABBITMQ = "amqp://guest:guest@127.0.0.1:5672//"
SESSION = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"

# Jobs for the tests, registered through a throwaway distribution (entry
# points in group sio.jobs) that the workers find on PYTHONPATH.
TEST_JOBS = '''
import os
import time


def sleep(environ):
    """Append this process's pid to environ['log_file']; on the first start
    of the job (the file was empty), sleep environ['sleep_ms'] milliseconds.
    A start after a redelivery returns at once."""
    with open(environ["log_file"], "a") as f:
        first = f.tell() == 0
        f.write(f"{os.getpid()}\\n")
    if first:
        time.sleep(environ["sleep_ms"] / 1000)
    environ["slept"] = True
    return environ


def boom(environ):
    raise RuntimeError("boom: " + str(environ.get("boom")))


def getenv(environ):
    environ["value"] = os.environ.get(environ["name"])
    return environ
'''


def queue_name(what: str) -> str:
    return f"sio-test-{what}-{SESSION}"


def need(name: str, port: int) -> None:
    if not port_open("127.0.0.1", port):
        missing(f"{name} at 127.0.0.1:{port}", required=True)


#: Visibility timeout (seconds) of the Redis tests that kill a worker: a
#: killed worker's job comes back this long after it was taken, and a job
#: (redelivered ones included) that has not ended by then runs once more. The
#: jobs of these tests take milliseconds once redelivered; the margin is for a
#: loaded machine.
VISIBILITY_TIMEOUT = 8

NEW_STYLE_CONFIG = '''
from sio.celery.default_config import *

# The positional broker URL of sio-celery-worker wins over this one.
broker_url = "amqp://nobody:nothing@127.0.0.1:9//"
broker_transport_options = {options!r}
'''

#: Redis database of each Redis worker set-up below: Redis workers sweep the
#: unacknowledged jobs of their whole database, so no two set-ups share one
#: (queue names are unique to the session as well).
REDIS_DB = {"shared": 10, "redeliver": 11, "reconnect": 12}


@dataclass(frozen=True)
class Broker:
    """A real broker, as the reliability tests use it."""

    name: str
    port: int
    #: ``broker_transport_options`` of the workers and the clients, set the
    #: way a user sets them: in a (new-style) configuration module, the same
    #: on both sides. ``None``: the default configuration.
    transport_options: dict | None = None

    @property
    def redelivery_after(self) -> float:
        """The earliest a job of a killed worker can run again, in seconds
        after it was sent (Redis: the visibility timeout)."""
        return (self.transport_options or {}).get("visibility_timeout", 0)

    def url(self, db: int = 0, port: int | None = None) -> str:
        """The URL of database ``db`` (Redis), through ``port`` when given
        (a :class:`TcpProxy`)."""
        port = port or self.port
        if self.name == "redis":
            return f"redis://127.0.0.1:{port}/{db}"
        return f"amqp://guest:guest@127.0.0.1:{port}//"

    def client_settings(self) -> dict:
        if self.transport_options is None:
            return {}
        return {"broker_transport_options": self.transport_options}

    def worker_env(self, cwd: Path) -> dict[str, str]:
        """Environment of a worker in ``cwd``: its configuration module."""
        if self.transport_options is None:
            return {}
        (cwd / "celeryconfig_new.py").write_text(
            NEW_STYLE_CONFIG.format(options=self.transport_options))
        return {"CELERY_CONFIG_MODULE": "celeryconfig_new"}


BROKERS = {
    # Redelivers at once: the broker sees the connection close.
    "rabbitmq": Broker("rabbitmq", 5672),
    # Redelivers once the visibility timeout has passed since a worker took
    # the job: a consumer of the database (a worker, a client waiting for
    # results) finds it in its sweep, which kombu runs every 10 x 10 s by
    # default and these workers every second.
    "redis": Broker("redis", 6379, {"visibility_timeout": VISIBILITY_TIMEOUT,
                                    "unacked_restore_interval": 1,
                                    "unacked_restore_throttle": 1}),
}


@pytest.fixture(params=sorted(BROKERS))
def broker(request) -> Broker:
    """Each broker that keeps the jobs of a dead worker (RabbitMQ, Redis)."""
    b = BROKERS[request.param]
    need(b.name, b.port)
    return b


@pytest.fixture(scope="module")
def jobs_dist(tmp_path_factory) -> Path:
    return make_plugin_distribution(
        tmp_path_factory.mktemp("celery-jobs"), "sio_celery_test_jobs",
        {"sio.jobs": {"test-sleep": "sio_celery_test_jobs:sleep",
                      "test-boom": "sio_celery_test_jobs:boom",
                      "test-getenv": "sio_celery_test_jobs:getenv"}},
        {"sio_celery_test_jobs": TEST_JOBS})


def client_app(broker: str, **settings):
    """A client app of its own (never the current app) with the default
    configuration and ``broker``."""
    from sio.celery import default_config
    from sio.celery.app import SioCelery

    config = {key: getattr(default_config, key) for key in default_config.__all__}
    config.update(broker_url=broker, **settings)
    app = SioCelery("sio-test-client", set_as_current=False)
    app.config_from_object(config)
    return app


def close_client(app) -> None:
    """Close a :func:`client_app`. On Redis also delete its reply queue
    (``rpc://``): a result that came after the client stopped waiting (a job
    that ran twice) would stay there, as Redis queues are never auto-deleted."""
    broker = app.conf.broker_url
    try:
        if broker.startswith("redis"):
            delete_queue(broker, app.backend.oid)
    finally:
        app.close()


def _redis_unacked(channel, queue: str) -> list[str]:
    """Delivery tags of the jobs of ``queue`` that Redis holds as taken but
    not acknowledged (kombu's ``unacked`` table: [message, exchange,
    routing key] by tag)."""
    from kombu.utils.json import loads

    table = channel.client.hgetall(channel.unacked_key)
    return [tag for tag, value in table.items() if loads(value)[2] == queue]


def messages_left(broker: str, queue: str) -> int:
    """Jobs of ``queue`` still on the broker: waiting, or (Redis) taken by a
    worker and not acknowledged. Ask once no worker consumes the queue."""
    from kombu import Connection

    with Connection(broker, connect_timeout=5) as conn:
        channel = conn.default_channel
        if not broker.startswith("redis"):
            return channel.queue_declare(queue, passive=True).message_count
        # (passive=True would fail on Redis for an empty queue: no key.)
        return channel.queue_declare(queue).message_count + len(_redis_unacked(channel, queue))


def delete_queue(broker: str, queue: str) -> None:
    """Remove a test queue (and its exchange) from a shared broker. Call it
    once no worker consumes the queue any more: a worker re-declares it."""
    from kombu import Connection

    try:
        with Connection(broker, connect_timeout=5) as conn:
            channel = conn.default_channel
            channel.queue_delete(queue)
            channel.exchange_delete(queue)
            if broker.startswith("redis"):
                # kombu leaves the binding tables of the exchange behind, and
                # the jobs of a killed worker, which a sweep would requeue.
                channel.client.delete(f"_kombu.binding.{queue}",
                                      f"_kombu.binding_permanent.{queue}")
                for tag in _redis_unacked(channel, queue):
                    channel.client.zrem(channel.unacked_index_key, tag)
                    channel.client.hdel(channel.unacked_key, tag)
    except Exception as e:  # cleanup must not hide the test's own result
        print(f"could not delete queue {queue} on {broker}: {e}", file=sys.stderr)


class Worker:
    """One worker subprocess (a process group of its own)."""

    def __init__(self, cwd: Path, queue: str, args=(), env=None, command=None,
                 jobs_dist: Path | None = None):
        self.cwd = cwd
        self.queue = queue
        self.log = cwd / f"worker-{uuid.uuid4().hex[:6]}.log"
        base = {k: v for k, v in os.environ.items()
                if k not in ("CELERY_BROKER_URL", "CELERY_CONFIG_MODULE", "FILETRACKER_URL")}
        path = [str(cwd)] + ([str(jobs_dist)] if jobs_dist else [])
        base["PYTHONPATH"] = os.pathsep.join(path + [base.get("PYTHONPATH", "")]).rstrip(os.pathsep)
        base.update(env or {})
        self.env = base
        # A node name of its own: two workers named alike on one broker
        # collide on their exclusive remote-control queue.
        self.argv = [*(command or [SIO_CELERY_WORKER]), "-c", "2", "-l", "INFO", "-Q", queue,
                     "-n", f"sio-test-{uuid.uuid4().hex[:8]}@%h",
                     "--without-mingle", "--without-gossip", *args]
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 60) -> "Worker":
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(self.argv, cwd=self.cwd, env=self.env, stdout=log,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         start_new_session=True)
        self.wait_for_log("ready.", timeout)
        return self

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for_log(self, needle: str, timeout: float = 30, count: int = 1) -> None:
        deadline = time.monotonic() + timeout
        while self.text().count(needle) < count:
            if self.proc.poll() is not None:
                pytest.fail(f"worker exited ({self.proc.returncode}) before {needle!r}:\n"
                            + self.text())
            if time.monotonic() > deadline:
                pytest.fail(f"no {needle!r} in the worker log within {timeout} s:\n" + self.text())
            time.sleep(0.05)

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM (warm shutdown); SIGKILL the group if it does not end."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail("the worker did not stop on SIGTERM:\n" + self.text())

    def kill(self) -> None:
        """SIGKILL the worker and its pool processes (its process group)."""
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(30)


@pytest.fixture
def workers():
    """Factory of :class:`Worker`; each is stopped (or killed) at teardown,
    then the queues given to ``workers.cleanup(broker, queue)`` are deleted."""
    made: list[Worker] = []
    queues: list[tuple[str, str]] = []

    def make(*args, **kwargs) -> Worker:
        w = Worker(*args, **kwargs)
        made.append(w)
        return w

    make.cleanup = lambda broker, queue: queues.append((broker, queue))
    yield make
    for w in made:
        if w.proc is not None and w.proc.poll() is None:
            w.stop()
        w.kill()  # pool processes that outlived a killed main process
    for broker, queue in queues:
        delete_queue(broker, queue)


@pytest.fixture
def clients():
    """Factory: ``clients(broker, **settings)`` is a :func:`client_app`,
    closed at teardown."""
    made = []

    def make(broker: str, **settings):
        made.append(client_app(broker, **settings))
        return made[-1]

    yield make
    for app in made:
        close_client(app)


#: Sleep of a job that a test kills mid-job: long enough never to end
#: first, however loaded the machine; its redelivered start returns at once.
KILLED_JOB_SLEEP_MS = 30_000


def send_sleep_job(app, queue: str, log: Path, worker: Worker,
                   sleep_ms: int = KILLED_JOB_SLEEP_MS):
    """Send a test-sleep job and return (its AsyncResult, the pid of the
    process running it) once it has started."""
    result = app.send_task("sio.celery.job.sioworkers_job", queue=queue,
                           args=[{"job_type": "test-sleep", "sleep_ms": sleep_ms,
                                  "log_file": str(log)}])
    deadline = time.monotonic() + 60
    while not (log.exists() and log.read_text().strip()):
        assert time.monotonic() < deadline, "the job did not start:\n" + worker.text()
        time.sleep(0.02)
    return result, int(log.read_text().split()[0])


def pings(n: int, tag: str = "") -> list[dict]:
    return [{"job_type": "ping", "ping": f"{tag}{i}"} for i in range(n)]


def assert_pongs(results: list[dict], n: int, tag: str = "") -> None:
    assert [r.get("result") for r in results] == ["SUCCESS"] * n, results
    assert [r["pong"] for r in results] == [f"{tag}{i}" for i in range(n)]


# --------------------------------------------------------------------------
# RabbitMQ with an old-style celeryconfig.py, Redis with a new-style one: one
# worker each, shared by several tests
# --------------------------------------------------------------------------

OLD_STYLE_CONFIG = f'''
from sio.celery.default_config import *

BROKER_URL = "{RABBITMQ}"
CELERY_RESULT_BACKEND = "amqp"
CELERY_ACKS_LATE = True
CELERY_SEND_EVENTS = True
'''


def shared_worker(cwd: Path, queue: str, client_broker: str, jobs_dist: Path, args=(), env=None,
                  client_settings=None):
    """Generator for a module fixture: yields (a started worker, a client app
    of ``client_broker``); at teardown the worker must stop warmly (exit 0)
    and its queue is deleted."""
    w = Worker(cwd, queue, args=args, env=env, jobs_dist=jobs_dist)
    app = client_app(client_broker, **(client_settings or {}))
    try:
        w.start()
        yield w, app
        assert w.stop() == 0, w.text()
    finally:
        try:
            w.stop()
        finally:
            w.kill()
            close_client(app)
            delete_queue(client_broker, queue)


@pytest.fixture(scope="module")
def rabbit_worker(tmp_path_factory, jobs_dist):
    need("rabbitmq", 5672)
    cwd = tmp_path_factory.mktemp("rabbit-worker")
    (cwd / "celeryconfig_old.py").write_text(OLD_STYLE_CONFIG)
    yield from shared_worker(cwd, queue_name("rabbit"), RABBITMQ, jobs_dist,
                             env={"CELERY_CONFIG_MODULE": "celeryconfig_old"})


@pytest.fixture(scope="module")
def redis_worker(tmp_path_factory, jobs_dist):
    # Its visibility timeout is above anything its jobs could take here.
    redis = Broker("redis", 6379, {"visibility_timeout": 600})
    need(redis.name, redis.port)
    cwd = tmp_path_factory.mktemp("redis-worker")
    url = redis.url(REDIS_DB["shared"])
    yield from shared_worker(cwd, queue_name("redis"), url, jobs_dist, args=[url],
                             env=redis.worker_env(cwd), client_settings=redis.client_settings())


@pytest.fixture(params=["rabbit_worker", "redis_worker"])
def any_worker(request):
    """The shared RabbitMQ worker, then the shared Redis one."""
    return request.getfixturevalue(request.param)


def test_rabbitmq_old_style_config_runs_jobs_in_order(rabbit_worker):
    from sio.celery import run_many

    worker, app = rabbit_worker
    progress = []
    results = run_many(pings(30, "r"), app=app, queue=worker.queue, timeout=60,
                       on_progress=lambda *a: progress.append(a))
    assert_pongs(results, 30, "r")
    assert progress[0] == (0, 30, 0) and progress[-1] == (30, 30, 0)
    assert [p[0] for p in progress] == list(range(31))
    text = worker.text()
    assert "DeprecationWarning" not in text and "deprecated" not in text.lower()
    assert ".> results:     rpc://" in text  # the legacy 'amqp' backend, mapped


def test_redis_new_style_config_and_positional_url(redis_worker):
    from sio.celery import run_many

    worker, app = redis_worker
    assert f"Connected to redis://:**@127.0.0.1:6379/{REDIS_DB['shared']}" in worker.text()
    assert_pongs(run_many(pings(20, "d"), app=app, queue=worker.queue, timeout=60), 20, "d")
    [bad] = run_many([{"job_type": "test-boom", "boom": 3}], app=app, queue=worker.queue,
                     timeout=60)
    assert bad["result"] == "FAILURE" and bad["exception"] == "RuntimeError: boom: 3"
    assert "deprecated" not in worker.text().lower()


def test_filetracker_url_defaults_to_the_broker_host(rabbit_worker):
    from sio.celery import run_many

    worker, app = rabbit_worker
    [env] = run_many([{"job_type": "test-getenv", "name": "FILETRACKER_URL"}], app=app,
                     queue=worker.queue, timeout=60)
    assert env["value"] == "http://127.0.0.1:9999"


def test_a_job_that_raises_is_a_failure_and_the_worker_keeps_serving(rabbit_worker):
    from sio.celery import run_many

    worker, app = rabbit_worker
    progress = []
    results = run_many([{"job_type": "ping", "ping": 1}, {"job_type": "test-boom", "boom": "x"},
                        {"job_type": "ping", "ping": 2}],
                       app=app, queue=worker.queue, timeout=60,
                       on_progress=lambda *a: progress.append(a))
    assert [r["result"] for r in results] == ["SUCCESS", "FAILURE", "SUCCESS"]
    failed = results[1]
    assert failed["exception"] == "RuntimeError: boom: x"
    assert "sio_celery_test_jobs" in failed["traceback"] and "boom" in failed["traceback"]
    assert failed["job_type"] == "test-boom" and "pong" not in failed
    assert progress[-1] == (3, 3, 1)
    # An unknown job type is a failure too, naming what exists.
    [env] = run_many([{"job_type": "no-such-job"}], app=app, queue=worker.queue, timeout=60)
    assert env["result"] == "FAILURE" and "no entry point 'no-such-job'" in env["exception"]
    assert_pongs(run_many(pings(3), app=app, queue=worker.queue, timeout=60), 3)
    assert worker.proc.poll() is None


def test_killed_pool_process_job_is_requeued_and_completes(any_worker, tmp_path):
    from sio.celery import run_many

    worker, app = any_worker
    log = tmp_path / "starts"
    result, first = send_sleep_job(app, worker.queue, log, worker)
    os.kill(first, signal.SIGKILL)  # the pool process running the job
    env = result.get(timeout=90)
    assert env["result"] == "SUCCESS" and env["slept"] is True
    starts = [int(p) for p in log.read_text().split()]
    assert len(starts) == 2 and starts[0] == first and starts[1] != first
    assert worker.proc.poll() is None
    # The worker replaced its pool process and still serves.
    assert_pongs(run_many(pings(4), app=app, queue=worker.queue, timeout=60), 4)


# --------------------------------------------------------------------------
# RabbitMQ and Redis: a whole worker killed, a broker connection that drops
# --------------------------------------------------------------------------

def test_killed_worker_job_is_redelivered_to_a_new_worker(broker, tmp_path, jobs_dist, workers,
                                                          clients):
    url = broker.url(REDIS_DB["redeliver"])
    queue = queue_name("redeliver")
    workers.cleanup(url, queue)
    app = clients(url, **broker.client_settings())
    env = broker.worker_env(tmp_path)
    first = workers(tmp_path, queue, args=[url], env=env, jobs_dist=jobs_dist).start()
    log = tmp_path / "starts"
    sent = time.time()
    result, _ = send_sleep_job(app, queue, log, first)
    first.kill()  # the main process and its pool, mid-job
    assert not result.ready()
    second = workers(tmp_path, queue, args=[url], env=env, jobs_dist=jobs_dist).start()
    done = result.get(timeout=90)
    assert done["result"] == "SUCCESS" and done["slept"] is True
    # Redis gives the job back only once the visibility timeout has passed
    # since the first worker took it (which was after it was sent).
    assert time.time() - sent >= broker.redelivery_after
    # It ran twice (the first run was killed), the client got one result,
    # and nothing is left on the broker that could run it once more.
    assert second.stop() == 0
    assert messages_left(url, queue) == 0
    assert len(log.read_text().split()) == 2


class TcpProxy:
    """Forwards 127.0.0.1:<port> to a target; :meth:`cut` drops every
    connection and refuses new ones until :meth:`restore`. Lets a test break a
    worker's broker connection without touching the broker itself."""

    def __init__(self, target: tuple[str, int]):
        self.target = target
        self.lock = threading.Lock()
        self.conns: list[socket.socket] = []
        self.port = 0
        self.listener: socket.socket | None = None
        self.thread: threading.Thread | None = None
        self.restore()

    def restore(self) -> None:
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", self.port))
        s.listen(16)
        s.settimeout(0.1)
        self.port = s.getsockname()[1]
        self.listener = s
        self.thread = threading.Thread(target=self._accept, args=(s,), daemon=True)
        self.thread.start()

    def _accept(self, listener: socket.socket) -> None:
        while self.listener is listener:
            try:
                client, _ = listener.accept()
            except (TimeoutError, socket.timeout):
                continue
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            client.settimeout(None)
            with self.lock:
                self.conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cut(self) -> None:
        listener, self.listener = self.listener, None
        if listener is not None:
            listener.close()
            self.thread.join(5)
        with self.lock:
            conns, self.conns = self.conns, []
        for s in conns:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    close = cut


@pytest.fixture
def proxies():
    """Factory: ``proxies(port)`` is a :class:`TcpProxy` to 127.0.0.1:port,
    closed at teardown."""
    made: list[TcpProxy] = []

    def make(port: int) -> TcpProxy:
        made.append(TcpProxy(("127.0.0.1", port)))
        return made[-1]

    yield make
    for p in made:
        p.close()


def test_worker_reconnects_after_the_broker_connection_drops(broker, tmp_path, jobs_dist, proxies,
                                                             workers, clients):
    from sio.celery import run_many

    url = broker.url(REDIS_DB["reconnect"])
    queue = queue_name("reconnect")
    workers.cleanup(url, queue)
    app = clients(url, **broker.client_settings())  # the client talks to the broker directly
    proxy = proxies(broker.port)
    worker = workers(tmp_path, queue, args=[broker.url(REDIS_DB["reconnect"], proxy.port)],
                     jobs_dist=jobs_dist,
                     env={**broker.worker_env(tmp_path), "FILETRACKER_URL": "http://ft.example:1234"}
                     ).start()
    [env] = run_many([{"job_type": "test-getenv", "name": "FILETRACKER_URL"}], app=app,
                     queue=queue, timeout=60)
    assert env["value"] == "http://ft.example:1234"  # an explicit one is kept

    log = tmp_path / "starts"
    running, _ = send_sleep_job(app, queue, log, worker)
    proxy.cut()
    worker.wait_for_log("Connection to broker lost", timeout=30)
    # Sent while the worker is cut off: the broker keeps it.
    pending = app.send_task("sio.celery.job.sioworkers_job", queue=queue,
                            args=[{"job_type": "ping", "ping": "while cut"}])
    time.sleep(1)
    assert not pending.ready()
    proxy.restore()
    assert pending.get(timeout=90)["pong"] == "while cut"
    assert_pongs(run_many(pings(5), app=app, queue=queue, timeout=60), 5)
    # The job that was running when the connection dropped could not be
    # acknowledged any more: it was stopped, and it ran again (Redis: once
    # its visibility timeout had passed); the client got one result.
    assert running.get(timeout=90)["slept"] is True
    assert worker.proc.poll() is None
    assert worker.stop() == 0
    assert messages_left(url, queue) == 0
    assert len(log.read_text().split()) == 2


# --------------------------------------------------------------------------
# filesystem://; the stock celery command
# --------------------------------------------------------------------------

def test_filesystem_broker_and_warm_shutdown(tmp_path, jobs_dist, workers, clients):
    from sio.celery import run_many

    url = f"filesystem://{tmp_path}/broker"
    queue = queue_name("fs")
    worker = workers(tmp_path, queue, args=["--without-heartbeat", url],
                     jobs_dist=jobs_dist).start()
    app = clients(url)
    assert_pongs(run_many(pings(10), app=app, queue=queue, timeout=60), 10)
    # SIGTERM while a job runs: the job finishes, then the worker exits 0.
    result, _ = send_sleep_job(app, queue, tmp_path / "starts", worker, sleep_ms=1000)
    assert worker.stop() == 0
    assert "Warm shutdown" in worker.text()
    assert result.get(timeout=30)["slept"] is True


def test_pool_processes_remove_their_idle_job_directories(tmp_path, jobs_dist, workers,
                                                          clients):
    # Job directories are kept for reuse by each pool process, which ends
    # with os._exit (no atexit): the worker_process_shutdown hook removes them.
    from sio.celery import run_many

    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    url = f"filesystem://{tmp_path}/broker"
    queue = queue_name("jobdirs")
    worker = workers(tmp_path, queue, args=["--without-heartbeat", url], jobs_dist=jobs_dist,
                     env={"TMPDIR": str(tmpdir)}).start()
    assert_pongs(run_many(pings(6), app=clients(url), queue=queue, timeout=60), 6)
    idle = [n for n in os.listdir(tmpdir) if n.startswith("sioworkers_idle_")]
    assert 1 <= len(idle) <= 2, os.listdir(tmpdir)  # one kept by each busy pool process
    assert worker.stop() == 0
    assert [n for n in os.listdir(tmpdir) if "sioworkers" in n] == []


def test_stock_celery_command_with_our_app(tmp_path, jobs_dist, workers, clients):
    from sio.celery import run_many

    url = f"filesystem://{tmp_path}/broker"
    (tmp_path / "fsconfig.py").write_text(
        f"from sio.celery.default_config import *\nbroker_url = {url!r}\n")
    queue = queue_name("stock")
    workers(tmp_path, queue, args=["--without-heartbeat"], jobs_dist=jobs_dist,
            command=[CELERY, "--config", "fsconfig", "-A", "sio.celery.app", "worker"]).start()
    assert_pongs(run_many(pings(3), app=clients(url), queue=queue, timeout=60), 3)


def test_worker_help_lists_the_celery_worker_options():
    p = subprocess.run([SIO_CELERY_WORKER, "--help"], capture_output=True, text=True,
                       timeout=60, env={k: v for k, v in os.environ.items()
                                        if k != "CELERY_BROKER_URL"})
    assert p.returncode == 0, p.stderr
    assert "sio-celery-worker [celery worker options] [broker-url]" in p.stdout
    for option in ("--concurrency", "--queues", "--loglevel", "--pool"):
        assert option in p.stdout


def test_worker_rejects_two_broker_urls():
    p = subprocess.run([SIO_CELERY_WORKER, "amqp://a//", "redis://b"], capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 2
    assert "more than one broker URL" in p.stderr and "Traceback" not in p.stderr


@pytest.mark.parametrize("url,reason", [
    ("amqp://guest:wrong-password@127.0.0.1:5672//", "ACCESS_REFUSED"),
    ("amqp://guest:guest@127.0.0.1:5672/no-such-vhost", "NOT_ALLOWED"),
], ids=["wrong-password", "unknown-vhost"])
def test_worker_refused_by_rabbitmq_exits_1_with_the_reason(url, reason, tmp_path):
    # A service manager must see the failure: stock 'celery worker' exits 1
    # on a refused login (and retries an unknown virtual host for ever).
    need("RabbitMQ", 5672)
    p = subprocess.run([SIO_CELERY_WORKER, "-Q", queue_name("refused"), url], cwd=tmp_path,
                       capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert p.returncode == 1, p.stderr
    last = p.stderr.strip().splitlines()[-1]
    assert last.startswith("sio-celery-worker: error: amqp://guest:**@127.0.0.1:5672/"), last
    assert reason in last and "wrong-password" not in p.stderr + p.stdout
    assert "Traceback" not in p.stderr


def test_worker_stopping_on_an_unrecoverable_error_exits_1_with_the_reason(tmp_path):
    # Celery logs "Unrecoverable error" and stops the worker (here: it cannot
    # write its pid file); the status and the last line of stderr say so.
    (tmp_path / "broker").mkdir()
    p = subprocess.run([SIO_CELERY_WORKER, f"--pidfile={tmp_path}/missing/dir/pid",
                        f"filesystem://{tmp_path}/broker"], cwd=tmp_path,
                       capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert p.returncode == 1, p.stderr
    assert "Unrecoverable error" in p.stderr  # Celery's log stays
    last = p.stderr.strip().splitlines()[-1]
    assert last.startswith("sio-celery-worker: error: the worker stopped: LockFailed: "), last
    assert "missing/dir/pid" in last


def test_worker_with_an_unknown_transport_exits_1_with_the_reason(tmp_path):
    p = subprocess.run([SIO_CELERY_WORKER, "nosuchmq://127.0.0.1//"], cwd=tmp_path,
                       capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert p.returncode == 1, p.stderr
    assert p.stderr.strip().splitlines()[-1].startswith(
        "sio-celery-worker: error: broker URL 'nosuchmq://127.0.0.1//': unknown transport "
        "'nosuchmq'"), p.stderr
    assert "amqp" in p.stderr and "Traceback" not in p.stderr


# --------------------------------------------------------------------------
# Real judging jobs through a worker: compile, then exec, files on Filetracker
# --------------------------------------------------------------------------

def test_compile_then_exec_jobs_through_a_worker(rabbit_worker, ft_store):
    from sio.celery import run_many
    from tests.support import SOURCES

    worker, app = rabbit_worker
    source = (SOURCES / "judge_sum.c").read_text()
    compiles = [{"job_type": "compile", "filetracker_url": ft_store.url,
                 "source_file": ft_store.put(f"{name}.c", text), "language": "c",
                 "compiler": "system-gcc", "out_file": ft_store.name(f"{name}-exe"),
                 "compilation_result_size_limit": 10 * 1024 * 1024,
                 "submission_id": name}
                for name, text in (("good", source), ("wrong", "#define WRONG\n" + source))]
    compiled = run_many(compiles, app=app, queue=worker.queue, timeout=120)
    for sent, env in zip(compiles, compiled):
        assert (env["result"], env["result_code"]) == ("SUCCESS", "OK"), env
        assert env["out_file"].startswith(sent["out_file"] + "@")
        assert env["exec_info"] == {"mode": "executable"}
        assert env["submission_id"] == sent["submission_id"]

    test_in, hint = ft_store.put("1a.in", "2 3\n"), ft_store.put("1a.out", "5\n")
    execs = [{"job_type": "exec", "filetracker_url": ft_store.url, "exe_file": env["out_file"],
              "exec_info": env["exec_info"], "in_file": test_in, "hint_file": hint,
              "check_output": True, "exec_time_limit": 2000, "exec_mem_limit": 65536,
              "name": "1a"}
             for env in compiled]
    good, wrong = run_many(execs, app=app, queue=worker.queue, timeout=120)
    assert good["result"] == "SUCCESS", good
    assert (good["result_code"], good["result_percentage"]) == ("OK", [100, 1])
    assert (good["exec_time_limit"], good["exec_mem_limit"], good["name"]) == (2000, 65536, "1a")
    assert (wrong["result_code"], wrong["result_percentage"]) == ("WA", [0, 1])
    assert wrong["result_string"] == 'WRONG: line 1: expected "5", got "6"'


def test_workflow_job_through_a_worker(rabbit_worker, ft_store):
    """An SIO3 workflow as one job on a worker: the workflow and its external
    objects come from Filetracker, the observable object goes back there."""
    import json

    from sio.celery import run_many

    if os.geteuid() != 0 or not os.path.isdir("/sys/fs/cgroup/memory"):
        missing("workflows need root and cgroup v1", required=False)
    worker, app = rabbit_worker
    workflow = {
        "name": "reverse", "external_objects": ["prog", "text"],
        "observable_objects": ["reversed"], "observable_registers": 1,
        "tasks": [{
            "type": "execution", "name": "reverse", "exclusive": False,
            "hard_time_limit": 20000, "output_register": 0, "pid_namespaces": 1, "pipes": 0,
            "channels": [], "filesystems": [{"type": "object", "handle": "prog"}],
            "mount_namespaces": [{"root": 0, "mountpoints": [
                {"source": 0, "target": "/prog.py", "writable": False}]}],
            "resource_groups": [{"cpu_usage_limit": 100.0, "instruction_limit": 0,
                                 "memory_limit": 256 << 20, "oom_terminate_all_tasks": False,
                                 "pid_limit": 4, "swap_limit": 0, "time_limit": 5000}],
            "processes": [{"arguments": ["/usr/bin/python3", "/prog.py"], "environment": [],
                           "image": "", "mount_namespace": 0, "resource_group": 0,
                           "pid_namespace": 0, "working_directory": "/", "start_after": [],
                           "descriptors": {"0": {"type": "object_read", "handle": "text"},
                                           "1": {"type": "object_write",
                                                 "handle": "reversed"}}}]}]}
    job = {"job_type": "workflow", "filetracker_url": ft_store.url,
           "workflow_file": ft_store.put("wf.json", json.dumps(workflow)),
           "workflow_objects": {
               "prog": ft_store.put("rev.py", "import sys\n"
                                               "sys.stdout.write(sys.stdin.read()[::-1])\n"),
               "text": ft_store.put("text.txt", "stressed")},
           "workflow_output_dir": ft_store.name("out")}
    (env,) = run_many([job], app=app, queue=worker.queue, timeout=120)
    assert env["result"] == "SUCCESS", env
    assert env["workflow_status"] == "ok"
    assert env["workflow_registers"][0]["status"] == "OK"
    stored = env["workflow_objects_out"]["reversed"]
    assert stored.startswith(job["workflow_output_dir"] + "/reversed@")
    assert ft_store.get(stored) == b"desserts"
