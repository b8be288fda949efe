"""A cluster of real processes on loopback, for fault tests: ``commandpost serve`` nodes, a private
``redis-server`` that can be stopped and started again on its port, a private PostgreSQL that can be
crashed (``pg_ctl stop -m immediate``) and started again on its data directory.

Everything is bounded in time: every wait has a deadline and says what it waited for. Every process
started here is ended by ``Cluster.close()`` (the fixtures call it in their teardown, pass or fail),
by its own pid, and each process's output goes to a file whose tail is printed at teardown (pytest
shows it for a failed test only).
"""

import asyncio
import contextlib
import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import sqlalchemy as sa
from websockets.asyncio.client import ClientConnection, connect

from coordinator.auth import issue

from ..adapters import empty
from ..conftest import service_url

COMMANDPOST = Path(sys.executable).parent / "commandpost"
SECRET = "cp-faults-" + "s3cret-for-loopback-tests"
START_S = 30.0       # the longest a node, Redis or PostgreSQL may take to answer after its start
STOP_S = 10.0        # the longest an orderly stop may take before the process is killed
LOG_TAIL = 60        # lines of each process's output printed at teardown


def need_services() -> tuple[str, str, str]:
    """The database URL, the Redis URL and a key prefix for this test run; a skip with the reason if unset."""
    db_url = service_url("CP_TEST_DATABASE_URL", "fault tests run real nodes on PostgreSQL")
    redis_url = service_url("CP_TEST_REDIS_URL", "fault tests run real nodes on Redis")
    return db_url, redis_url, os.environ.get("CP_TEST_REDIS_PREFIX") or "cp-faults"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for(condition: Callable[[], object], timeout: float, what: str, every: float = 0.05,
             explain: Callable[[], str] = lambda: "") -> object:
    """Poll ``condition`` until it returns something true; fail saying ``what`` did not happen in time."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:g} s. {explain()}".rstrip())
        time.sleep(every)


def tail(path: Path, lines: int = LOG_TAIL) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError as err:
        return f"(no log: {err})"


def wipe(db_url: str) -> None:
    """A database as a first start finds it (the nodes migrate it)."""
    engine = sa.create_engine(db_url)
    try:
        empty(engine)
    finally:
        engine.dispose()


class Process:
    """A child process with its output in a file."""

    def __init__(self, name: str, argv: list[str], log_path: Path, env: dict[str, str] | None = None):
        self.name, self.argv, self.log_path, self.env = name, argv, log_path, env
        self.proc: subprocess.Popen | None = None

    def spawn(self) -> None:
        assert not self.running, f"{self.name} is already running"
        with open(self.log_path, "ab") as out:  # the child keeps its own descriptor
            self.proc = subprocess.Popen(self.argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         env=self.env, start_new_session=True)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL: no shutdown of any kind."""
        if self.running:
            self.proc.send_signal(signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(STOP_S)

    def stop(self) -> None:
        """SIGTERM, and SIGKILL if it has not gone within STOP_S."""
        if self.running:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(STOP_S)
            except subprocess.TimeoutExpired:
                self.kill()

    def dead_because(self) -> str:
        if self.proc is not None and self.proc.poll() is not None:
            return f"{self.name} exited with {self.proc.returncode}. Its log:\n{tail(self.log_path)}"
        return ""

    def assert_alive(self) -> None:
        assert self.running, self.dead_because() or f"{self.name} was never started"


class Node(Process):
    """``commandpost serve`` on a free loopback port."""

    def __init__(self, name: str, workdir: Path, db_url: str, redis_url: str, redis_prefix: str,
                 extra_env: dict[str, str] | None = None):
        self.port = free_port()
        data_dir = workdir / name
        data_dir.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith("CP_")}
        env.update(CP_DATABASE_URL=db_url, CP_REDIS_URL=redis_url, CP_REDIS_PREFIX=redis_prefix, CP_SECRET=SECRET,
                   CP_PORT=str(self.port), CP_HOST="127.0.0.1", CP_DATA_DIR=str(data_dir), CP_POLL_INTERVAL_S="1",
                   # the fault scenarios post a thousand reports and stream positions through one token
                   CP_RATE_INTAKE_PER_MIN="0", CP_RATE_POSITION_PER_S="0",
                   **(extra_env or {}))
        super().__init__(name, [str(COMMANDPOST), "serve"], workdir / f"{name}.log", env)
        self.url = f"http://127.0.0.1:{self.port}"
        self.ws_url = f"ws://127.0.0.1:{self.port}"

    def readyz(self, timeout: float = 2.0) -> httpx.Response | None:
        try:
            return httpx.get(f"{self.url}/readyz", timeout=timeout, trust_env=False)
        except httpx.TransportError:
            return None

    def wait_ready(self, timeout: float = START_S) -> None:
        def ready():
            self.assert_alive()
            response = self.readyz()
            return response is not None and response.status_code == 200
        wait_for(ready, timeout, f"node {self.name} answering 200 on /readyz", every=0.1,
                 explain=lambda: f"Its log:\n{tail(self.log_path)}")

    def start(self) -> "Node":
        self.spawn()
        return self

    async def readiness(self, timeout: float = 3.0) -> tuple[int | None, dict | str, httpx.Headers | dict]:
        """/readyz as (status, body, headers); (None, the error, {}) when the node does not answer."""
        async with httpx.AsyncClient(timeout=timeout, trust_env=False) as client:
            try:
                response = await client.get(f"{self.url}/readyz")
            except httpx.TransportError as err:
                return None, repr(err), {}
        return response.status_code, response.json(), response.headers


class RedisServer(Process):
    """A private ``redis-server`` without persistence, restartable on the same port."""

    def __init__(self, workdir: Path):
        binary = shutil.which("redis-server")
        assert binary, "redis-server is not on PATH (apt-get install redis-server)"
        self.port = free_port()
        super().__init__("redis", [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                                   "--appendonly", "no", "--dir", str(workdir)], workdir / "redis.log")
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as conn:
                conn.sendall(b"PING\r\n")
                return conn.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def start(self, timeout: float = START_S) -> "RedisServer":
        self.spawn()
        wait_for(lambda: self.assert_alive() or self.answers(), timeout, f"redis-server on port {self.port}",
                 explain=lambda: tail(self.log_path))
        return self


def postgres_bindir() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(p.split("/")[4]))
    if found:
        return Path(found[-1]).parent
    pg_config = shutil.which("pg_config")
    if pg_config:
        return Path(subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=True).stdout.strip())
    raise AssertionError("no PostgreSQL server binaries (initdb, pg_ctl) in /usr/lib/postgresql/*/bin")


class PrivatePostgres:
    """A PostgreSQL cluster of its own in a temporary directory, on a free port, trust auth on 127.0.0.1.
    Run as the ``postgres`` OS user when we are root (PostgreSQL refuses to run as root)."""

    def __init__(self, log_dir: Path):
        self.bindir = postgres_bindir()
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="cp-faults-pg-"))  # not under pytest's tmp: 0700 dirs above it
        self.data = self.root / "data"
        self.server_log = self.root / "server.log"
        self.log_path = log_dir / "postgres.log"  # copied from server_log at close, for the record
        self.as_postgres = os.geteuid() == 0
        if self.as_postgres:
            shutil.chown(self.root, "postgres", "postgres")
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/commandpost"
        self.started = False

    def _run(self, *argv: str, timeout: float = START_S) -> subprocess.CompletedProcess:
        command = [*(["runuser", "-u", "postgres", "--"] if self.as_postgres else []), *argv]
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
                              check=False)
        assert done.returncode == 0, (f"{' '.join(argv)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}\n"
                                      f"{tail(self.server_log)}")
        return done

    def init(self) -> "PrivatePostgres":
        self._run(str(self.bindir / "initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust",
                  "--no-sync", "-E", "UTF8", "--locale", "C")
        return self

    def start(self) -> "PrivatePostgres":
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1"
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-l", str(self.server_log), "-o", options,
                  "-w", "-t", str(int(START_S)), "start")
        self.started = True
        return self

    def create_database(self) -> None:
        engine = sa.create_engine(self.url.rsplit("/", 1)[0] + "/postgres", isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as conn:
                conn.execute(sa.text("CREATE DATABASE commandpost"))
        finally:
            engine.dispose()

    def crash(self) -> None:
        """``pg_ctl stop -m immediate``: every server process quits at once, without a checkpoint."""
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")
        self.started = False

    def close(self) -> None:
        try:
            if (self.data / "postmaster.pid").exists():
                try:
                    self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop",
                              timeout=STOP_S)
                except (AssertionError, subprocess.TimeoutExpired):
                    pid = int((self.data / "postmaster.pid").read_text().split()[0])
                    with contextlib.suppress(OSError):  # only our postmaster, never a recycled pid
                        if str(self.data) in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace"):
                            os.kill(pid, signal.SIGKILL)
            if self.server_log.exists():
                shutil.copyfile(self.server_log, self.log_path)
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


class Cluster:
    """What a test started: nodes, Redis, PostgreSQL. ``close()`` ends all of it and prints the logs."""

    def __init__(self, workdir: Path, db_url: str, redis_url: str, redis_prefix: str):
        self.workdir, self.db_url, self.redis_url = workdir, db_url, redis_url
        self.redis_prefix = f"{redis_prefix}-{uuid.uuid4().hex[:8]}"  # unique per test
        self.nodes: list[Node] = []
        self.redis: RedisServer | None = None
        self.postgres: PrivatePostgres | None = None

    def private_redis(self) -> RedisServer:
        self.redis = RedisServer(self.workdir).start()
        self.redis_url = self.redis.url
        return self.redis

    def private_postgres(self) -> PrivatePostgres:
        self.postgres = PrivatePostgres(self.workdir)
        self.postgres.init().start()
        self.postgres.create_database()
        self.db_url = self.postgres.url
        return self.postgres

    def start_nodes(self, *names: str, **extra_env: str) -> list[Node]:
        """Start the nodes together, then wait for each to be ready."""
        started = [Node(name, self.workdir, self.db_url, self.redis_url, self.redis_prefix, extra_env).start()
                   for name in names]
        self.nodes.extend(started)
        for node in started:
            node.wait_ready()
        return started

    def token(self, role: str = "dispatcher", unit: str | None = None, agency: str | None = None) -> dict[str, str]:
        return {"Authorization": "Bearer " + issue(SECRET, role, unit or role, int(time.time()), None, agency, unit)}

    def verify_cli(self) -> subprocess.CompletedProcess:
        """``commandpost verify`` against the cluster's database, as an operator would run it."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("CP_")}
        env.update(CP_DATABASE_URL=self.db_url, CP_SECRET=SECRET, CP_DATA_DIR=str(self.workdir / "verify"))
        return subprocess.run([str(COMMANDPOST), "verify"], capture_output=True, text=True, env=env, timeout=60,
                              check=False)

    def close(self) -> None:
        problems = []
        for node in self.nodes:
            try:
                node.kill()
            except Exception as err:  # keep ending the others
                problems.append(f"{node.name}: {err!r}")
        for ender in (self.redis.kill if self.redis else None, self.postgres.close if self.postgres else None):
            if ender is not None:
                try:
                    ender()
                except Exception as err:
                    problems.append(repr(err))
        if self.redis is None:
            self._forget_shared_stream()
        for proc in [*self.nodes, *([self.redis] if self.redis else []), *([self.postgres] if self.postgres else [])]:
            print(f"\n---- {proc.log_path.name} (last {LOG_TAIL} lines; all of it in {proc.log_path}) ----")
            print(tail(proc.log_path))
        assert not problems, f"could not end every process: {problems}"

    def _forget_shared_stream(self) -> None:
        try:
            import redis
            client = redis.Redis.from_url(self.redis_url, socket_timeout=2)
            client.delete(f"{self.redis_prefix}:bus")
            client.close()
        except Exception as err:  # the shared Redis keeps a trimmed stream at worst
            print(f"could not delete {self.redis_prefix}:bus from the shared Redis: {err!r}")


# -- the client's side ---------------------------------------------------------------------------
def http(node: Node, headers: dict[str, str], timeout: float = 5.0) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=node.url, headers=headers, timeout=timeout, trust_env=False,
                             limits=httpx.Limits(max_connections=200, max_keepalive_connections=100))


def websocket(node: Node, path: str, headers: dict[str, str]):
    return connect(f"{node.ws_url}{path}", additional_headers=headers, compression=None, proxy=None,
                   open_timeout=5, max_queue=None)


def spot(n: int) -> dict[str, float]:
    """The n-th point of a 40 x 40 grid over the demo city, about 250 m apart (never a possible duplicate
    of another point of the grid; after 1,600 reports the grid starts over)."""
    return {"lat": round(44.952 + 0.0024 * (n % 40), 6), "lon": round(-93.066 + 0.0031 * (n // 40 % 40), 6)}


async def next_event(ws: ClientConnection, timeout: float = 5.0) -> dict:
    """The next logged event on a stream (telemetry, incident_in_scope and replies are passed over)."""
    while True:
        message = json.loads(await asyncio.wait_for(ws.recv(), timeout))
        if "seq" in message:
            return message


async def whole_log(client: httpx.AsyncClient, after: int = 0) -> list[dict]:
    """Every event of the log after ``after``, read page by page from the database through a node."""
    events = []
    while True:
        response = await client.get("/v1/events", params={"after": after, "limit": 5000})
        assert response.status_code == 200, response.text
        page = response.json()["events"]
        if not page:
            return events
        events.extend(page)
        after = page[-1]["seq"]


async def log_head(client: httpx.AsyncClient) -> int:
    """The seq this node has applied."""
    response = await client.get("/v1/events", params={"limit": 1})
    assert response.status_code == 200, response.text
    return response.json()["head"]


def gaps_and_repeats(seqs: list[int], first: int, last: int) -> str:
    """'' when ``seqs`` is exactly first..last in order; else what is wrong, for an assertion message."""
    if seqs == list(range(first, last + 1)):
        return ""
    seen, repeated, disorder = set(), [], []
    for before, seq in zip([first - 1, *seqs], seqs):
        if seq in seen:
            repeated.append(seq)
        if seq <= before:
            disorder.append((before, seq))
        seen.add(seq)
    missing = sorted(set(range(first, last + 1)) - seen)
    return (f"expected seq {first}..{last} once each in order; got {len(seqs)} events, missing {missing[:20]}"
            f"{'...' if len(missing) > 20 else ''} ({len(missing)}), repeated {repeated[:20]}, out of order "
            f"{disorder[:10]}, beyond {sorted(s for s in seen if s > last)[:10]}")

