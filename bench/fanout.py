"""Real-time fan-out of ~1 KB events to 100 / 1,000 / 3,000 console sockets, next to a bare
``websockets.broadcast()`` server in the same run; and intake -> unit push latency (issue 4).

Processes, all on this machine and its loopback (nothing else is started):

  * **ours**: ``commandpost serve`` itself (``coordinator.cli.main(["serve", ...])``, so uvicorn runs with
    exactly the CLI's options: ``ws_per_message_deflate=False``, pings every 20 s, access log at ``info``,
    and uvicorn's automatic choices: uvloop, httptools, websockets' sans-I/O protocol) in its own process
    (``python bench/fanout.py --role ours``), embedded mode with ``CP_DATA_DIR`` a fresh temp dir (SQLite log,
    in-process bus, the generated demo city of 147 units). A fresh server per measurement.
  * **bare**: ``websockets.asyncio.server.serve(handler, compression=None)`` in its own process
    (``--role bare``) on the same event loop kind (uvloop when installed, as uvicorn picks it). A console
    connection is added to a set; a publisher connection sends the messages of one event and the server
    calls ``websockets.broadcast(connections, message)`` for each, then answers "ok".
  * **clients**: ``--client-procs`` processes (default 2) hold the N console sockets, split evenly. Each
    socket is a ``websockets.client.ClientProtocol`` (websockets' sans-I/O client: handshake, frame
    parsing, automatic pongs) under an ``asyncio.Protocol`` on uvloop: the cheapest correct client at
    hand, so that the clients, which share the 2 cores with the server, take as little CPU as possible.
    The arrival time of a message is ``time.time()`` when its bytes reached ``data_received``.
  * **driver** (this process): reports incidents by REST (httpx, one keep-alive connection) or publishes
    to the bare server (one websocket), and collects the figures.

Events. Ours: ``POST /v1/incidents`` of type ``--incident-type`` (default ``public_assist``) at a random
point of the city, with a description holding the send time (``@t=<time.time()>@``, taken just before the
request is sent) padded so the ``IncidentReported`` message is ``--event-bytes`` (default 1,024) bytes on
the wire. Each report makes two events, ``IncidentReported`` and ``RecommendationMade`` (whose size the
city decides: ~1.9 KB), so each report is 2 messages to every console: a **delivery** is one message
received by one console. A console token is a dispatcher's without an agency (it sees everything, so both
events are encoded once for all sockets), minted with the secret the server generated in its data dir.
Bare: the exact texts of one ``IncidentReported`` and one ``RecommendationMade`` that ours sent (captured at
start), with the send time and a fresh incident id put in (same sizes), 2 broadcasts per event. Latency
per delivery = arrival - send time (``RecommendationMade`` is matched to its report by the incident id);
all processes read the same clock.

Per N (``--sizes``, default 100,1000,3000), for each server (order alternating between sizes): the N
sockets connect (``/v1/stream?after=<head>`` with the token; bare: ``/``), ``--warmup`` events must reach
every socket, then two phases:

  * **paced**: ``--paced-events`` events at ``--rate`` events/s (default 80 at 4/s, i.e. 8 messages/s to
    every console): per-delivery latency at a steady load; the latency target is judged here;
  * **burst**: ``--burst-events`` events (default 100) sent back to back, each as soon as the previous
    request returned (ours: the 201; bare: the "ok" after its broadcasts): deliveries/s = all messages
    received / (last arrival - first send); the throughput target is judged here. The latency in this
    phase includes queueing behind the earlier events of the burst.

CPU seconds of each process per phase are read from ``/proc/<pid>/stat`` (user + system), so it can be
seen whether the server or the clients ran out of CPU; "server CPU per 1,000 deliveries" is the figure
least disturbed by the clients sharing the cores. Every garbage collection in either server is recorded
(``gc.callbacks``: generation and duration) and reported per phase.

What if (``--what-if``, at ``--what-if-size`` sockets, right after that size's pair): ours again with a
hypothetical change made inside the server process only (coordinator/ is not edited): ``send-direct``
(``sockets._send`` without its per-send ``asyncio.wait_for``), ``send-timeout-cm`` (the same 10 s limit
with ``asyncio.timeout()``), ``gc-threshold`` (``gc.set_threshold(50_000, 20, 100)``), ``gc-freeze``
(``gc.freeze()`` once the sockets are connected), ``units-first`` (the hub wakes unit streams before consoles);
``+`` combines them. See ``what_if``.

The code measured: the packages the servers import (coordinator, agencies, geo) are copied once when the
run starts, from the working tree or from ``--git-ref`` (``git archive``), and every server runs that copy:
coordinator/ changes under a run that lasts minutes. ``--name`` names the results file.

Intake -> unit push: a fresh, quiet server; one socket ``/v1/units/E1/stream`` with a unit token for E1
(websockets' asyncio client in the driver, arrival stamped by a reader task); ``--unit-rounds`` rounds of
``POST /v1/incidents`` (``structure_fire``), after ``--unit-think`` s (a dispatcher reads the report first)
``POST /v1/incidents/{id}/assignments {"unit_ids": ["E1"]}``, wait for ``UnitAssigned`` on the unit socket,
``POST /v1/assignments/{id}/cancel`` (E1 available again), wait for its ``AssignmentEnded``,
``POST /v1/incidents/{id}/close``, sleep ``--unit-gap``. Latency from just
before the assignment request is sent, and from when its 201 came back (negative: the push arrived first),
to the arrival of ``UnitAssigned``. Then ``--unit-loaded-rounds`` rounds on another fresh server with
``--unit-consoles`` consoles connected (default 1,000; every event of a round also goes to each of them),
and again on a server with ``--unit-what-if`` (default ``units-first``).

Targets (issue 4): p99 <= 100 ms to 1,000 consoles; >= 0.7x the bare server's deliveries/s; intake -> unit
push p99 <= 50 ms on one node.

    .venv/bin/python bench/fanout.py [--sizes 100,1000,3000] [--client-procs 2] [--rate 4] [--paced-events 80]
                                     [--burst-events 100] [--warmup 3] [--event-bytes 1024]
                                     [--incident-type public_assist] [--unit-rounds 200] [--unit-think 0.2]
                                     [--unit-gap 0.02] [--unit-consoles 1000] [--unit-loaded-rounds 100]
                                     [--unit-what-if units-first] [--what-if send-direct,gc-freeze,send-direct+gc-freeze]
                                     [--what-if-size 1000] [--skip-fanout] [--skip-unit] [--seed 1]
                                     [--profile] [--profile-size 1000] [--git-ref REF] [--name fanout]

``--profile`` (needs pyinstrument) runs ours once more at ``--profile-size`` sockets after the measured runs,
with pyinstrument sampling the server's event-loop thread during the paced and burst phases (started and
stopped by SIGUSR1 / SIGUSR2), and writes bench/results/fanout_profile.txt (and the session, .pyisession).
Prints tables; writes bench/results/fanout.json. The default run takes about 8 minutes on a 2-core machine
(9 with ``--profile``), most of it ours at 3,000 sockets, which falls behind.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing as mp
import os
import random
import resource
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from array import array
from pathlib import Path
from typing import Any

import _timing as T

HOST = "127.0.0.1"
MARK = "@t="
STREAM_KEY = b'"stream":"incident/'
ID_LEN = 36
P99_TARGET_MS = 100.0
P99_TARGET_N = 1000
RATIO_TARGET = 0.7
UNIT_P99_TARGET_MS = 50.0
UNIT_ID = "E1"
SEP = "\x1e"  # between the messages of one event on the bare server's publisher socket
PACKAGES = ("coordinator", "agencies", "geo")  # what the servers import, copied once per run
SOURCES = ("coordinator/realtime.py", "coordinator/sockets.py", "coordinator/node.py", "coordinator/app.py",
           "coordinator/api.py", "coordinator/log.py", "coordinator/cli.py", "coordinator/handlers.py",
           "coordinator/settings.py")


CODE: dict[str, str] = {"dir": ""}  # the run's copy of the code (set by main)


# -- small helpers -------------------------------------------------------------------------------
def raise_nofile() -> int:
    """Open-files limit up to the hard limit (3,000 sockets plus the usual files)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else 65536
    if soft < want:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def use_uvloop() -> str:
    try:
        import uvloop
    except ImportError:
        return "asyncio"
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return f"uvloop {uvloop.__version__}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


TICK = os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICK
    except (OSError, IndexError, ValueError):
        return float("nan")


def lat_summary(seconds: array) -> dict[str, float]:
    if not seconds:
        return {"n": 0, "p50_ms": float("nan"), "p99_ms": float("nan"), "max_ms": float("nan"),
                "mean_ms": float("nan")}
    ms = sorted(s * 1000.0 for s in seconds)
    return {"n": len(ms), "p50_ms": T.percentile(ms, 50), "p90_ms": T.percentile(ms, 90),
            "p99_ms": T.percentile(ms, 99), "max_ms": ms[-1], "min_ms": ms[0], "mean_ms": statistics.fmean(ms)}


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


# -- the servers (their own processes) ------------------------------------------------------------
def serve_ours(args) -> None:
    """``commandpost serve`` itself (coordinator.cli), embedded mode in the given data dir, from the
    run's copy of the code."""
    raise_nofile()
    if args.src:
        sys.path.insert(0, args.src)
    from coordinator import cli

    if args.src and not Path(cli.__file__).resolve().is_relative_to(Path(args.src).resolve()):
        raise SystemExit(f"coordinator was imported from {cli.__file__}, not from the run's copy {args.src}")

    if args.profile_out:
        install_profiler(Path(args.profile_out))
    if args.server_what_if:
        what_if(args.server_what_if.split("+"))
    pauses = record_gc()
    try:
        cli.main(["serve", "--host", HOST, "--port", str(args.port)], environ={"CP_DATA_DIR": args.data_dir,
                 "CP_RATE_INTAKE_PER_MIN": "0", "CP_RATE_POSITION_PER_S": "0"})  # the load comes from few tokens
    except KeyboardInterrupt:  # uvicorn shuts down gracefully on SIGINT, then re-raises it
        pass
    finally:
        if args.gc_out:
            Path(args.gc_out).write_text(json.dumps(pauses))


WHAT_IFS = ("send-direct", "send-timeout-cm", "gc-freeze", "gc-threshold", "units-first")


def what_if(names: list[str]) -> None:
    """Hypothetical changes, made in this server process only (coordinator/ is not edited), to show what
    a change would buy. ``send-direct``: ``sockets._send`` without its per-send ``asyncio.wait_for``
    (no protection from a peer that stops reading); ``send-timeout-cm``: the same 10 s limit with
    ``asyncio.timeout()`` (Python 3.11+: no extra task per send); ``gc-freeze``: ``gc.freeze()`` on
    SIGHUP, which the driver sends once the sockets are connected and warmed up (the long-lived
    connection objects leave the collector's generations); ``gc-threshold``: ``gc.set_threshold(50_000, 20,
    100)`` at start (CPython's default is 700, 10, 10: young collections so frequent that objects still in
    flight are promoted, and full collections follow); ``units-first``: the hub offers each event to the
    unit streams' subscriptions before the consoles' (so a unit's send is woken first)."""
    import gc

    from coordinator import sockets

    unknown = set(names) - set(WHAT_IFS)
    if unknown:
        raise SystemExit(f"unknown what-if {sorted(unknown)}; choose from {WHAT_IFS}")
    if "send-direct" in names:
        async def send_direct(ws, text: str) -> None:
            await ws.send_text(text)
        sockets._send = send_direct
    if "send-timeout-cm" in names:
        async def send_timeout_cm(ws, text: str) -> None:
            async with asyncio.timeout(sockets.SEND_TIMEOUT_S):
                await ws.send_text(text)
        sockets._send = send_timeout_cm
    if "gc-threshold" in names:
        gc.set_threshold(50_000, 20, 100)
    if "units-first" in names:
        import itertools

        from coordinator import realtime

        class UnitsFirst(set):
            """A set that iterates the subscriptions without telemetry (unit streams) first."""

            def __iter__(self):
                everyone = list(set.__iter__(self))
                return itertools.chain((x for x in everyone if x.sees_unit is None),
                                       (x for x in everyone if x.sees_unit is not None))

        init = realtime.Hub.__init__

        def hub_init(self, *a, **kw) -> None:
            init(self, *a, **kw)
            self.subscriptions = UnitsFirst(self.subscriptions)

        realtime.Hub.__init__ = hub_init
    if "gc-freeze" in names:
        signal.signal(signal.SIGHUP, lambda signum, frame: gc.freeze())


def record_gc() -> list[tuple[float, int, float]]:
    """Every garbage collection of this process: (wall time at its end, generation, seconds it took)."""
    import gc

    pauses: list[tuple[float, int, float]] = []
    started = [0.0]

    def callback(phase: str, info: dict) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
        else:
            pauses.append((time.time(), info["generation"], time.perf_counter() - started[0]))

    gc.callbacks.append(callback)
    return pauses


def install_profiler(out: Path) -> None:
    """SIGUSR1 starts pyinstrument on this (the event loop's) thread, SIGUSR2 stops it and writes ``out``."""
    from pyinstrument import Profiler

    holder: dict[str, Any] = {}

    def start(signum, frame) -> None:
        if "p" not in holder:
            holder["p"] = Profiler(interval=0.0005, async_mode="disabled")
            holder["p"].start()

    def stop(signum, frame) -> None:
        profiler = holder.pop("p", None)
        if profiler is not None:
            session = profiler.stop()
            out.write_text(profiler.output_text(unicode=False, color=False, show_all=False))
            session.save(str(out.with_suffix(".pyisession")))  # pyinstrument --load ... to render it otherwise

    signal.signal(signal.SIGUSR1, start)
    signal.signal(signal.SIGUSR2, stop)


def serve_bare(args) -> None:
    raise_nofile()
    use_uvloop()
    pauses = record_gc()
    asyncio.run(bare_main(args.port))
    if args.gc_out:
        Path(args.gc_out).write_text(json.dumps(pauses))


async def bare_main(port: int) -> None:
    from websockets.asyncio.server import broadcast, serve

    consoles: set = set()
    stopping = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGINT, stopping.set)

    async def handler(ws) -> None:
        if ws.request.path == "/publish":
            async for frame in ws:
                for message in frame.split(SEP):
                    broadcast(consoles, message)
                await ws.send("ok")
            return
        consoles.add(ws)
        try:
            await ws.wait_closed()
        finally:
            consoles.discard(ws)

    async with serve(handler, HOST, port, compression=None, max_size=None, backlog=8192):
        await stopping.wait()


# -- the console clients (their own processes) ---------------------------------------------------
class Stats:
    """Everything one client process received, over all its sockets."""

    def __init__(self, counter) -> None:
        self.counter = counter
        self.reset()

    def reset(self) -> None:
        self.lat_first = array("d")  # the message carrying the send time (IncidentReported)
        self.lat_other = array("d")  # the other messages of the event (RecommendationMade)
        self.sent_at: dict[bytes, float] = {}
        self.unmatched = 0
        self.first_arrival = float("inf")
        self.last_arrival = 0.0

    def record(self, data: bytes, now: float) -> None:
        self.counter.value += 1
        self.last_arrival = max(self.last_arrival, now)
        self.first_arrival = min(self.first_arrival, now)
        j = data.find(STREAM_KEY)
        if j < 0:
            self.unmatched += 1
            return
        incident = bytes(data[j + len(STREAM_KEY):j + len(STREAM_KEY) + ID_LEN])
        i = data.find(b"@t=")
        if i >= 0:
            sent = float(data[i + 3:data.index(b"@", i + 3)])
            self.sent_at[incident] = sent
            self.lat_first.append(now - sent)
            return
        sent = self.sent_at.get(incident)
        if sent is None:
            self.unmatched += 1
        else:
            self.lat_other.append(now - sent)


class Console(asyncio.Protocol):
    """One console socket: websockets' sans-I/O client protocol under an asyncio transport."""

    def __init__(self, uri: str, headers: list[tuple[str, str]], stats: Stats, opened: asyncio.Future) -> None:
        from websockets.client import ClientProtocol
        from websockets.uri import parse_uri

        self.stats, self.opened = stats, opened
        self.proto = ClientProtocol(parse_uri(uri), max_size=None)
        request = self.proto.connect()
        for name, value in headers:
            request.headers[name] = value
        self.proto.send_request(request)
        self.transport = None
        self.close_code: int | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport
        self._flush()

    def data_received(self, data: bytes) -> None:
        from websockets.frames import Frame, Opcode
        from websockets.http11 import Response

        now = time.time()
        self.proto.receive_data(data)
        for event in self.proto.events_received():
            if isinstance(event, Frame):
                if event.opcode is Opcode.TEXT or event.opcode is Opcode.BINARY:
                    self.stats.record(event.data, now)
                elif event.opcode is Opcode.CLOSE and self.close_code is None:
                    close = self.proto.close_rcvd
                    self.close_code = close.code if close is not None else 1005
            elif isinstance(event, Response) and not self.opened.done():
                if self.proto.handshake_exc is not None:
                    self.opened.set_exception(self.proto.handshake_exc)
                else:
                    self.opened.set_result(True)
        self._flush()

    def _flush(self) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        for chunk in self.proto.data_to_send():
            if chunk:
                self.transport.write(chunk)
            else:
                self.transport.close()
                return

    def connection_lost(self, exc) -> None:
        if not self.opened.done():
            self.opened.set_exception(exc or ConnectionError("closed during the handshake"))
        if self.close_code is None:
            self.close_code = 1006

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            with contextlib.suppress(Exception):
                self.proto.send_close(1000)
                for chunk in self.proto.data_to_send():
                    if chunk:
                        self.transport.write(chunk)
            self.transport.close()


def client_process(conn, counter) -> None:
    raise_nofile()
    use_uvloop()
    asyncio.run(client_main(conn, counter))


async def client_main(conn, counter) -> None:
    loop = asyncio.get_running_loop()
    stats = Stats(counter)
    consoles: list[Console] = []
    while True:
        command = await loop.run_in_executor(None, conn.recv)
        kind = command[0]
        if kind == "connect":
            _, port, path, headers, n, concurrency = command
            t0 = time.perf_counter()
            opened, failed, errors = await open_consoles(port, path, headers, n, concurrency, stats, consoles)
            conn.send(("ok", opened, failed, errors[:3], time.perf_counter() - t0))
        elif kind == "reset":
            stats.reset()
            conn.send(("ok",))
        elif kind == "collect":
            closed: dict[int, int] = {}
            for c in consoles:
                if c.close_code is not None:
                    closed[c.close_code] = closed.get(c.close_code, 0) + 1
            conn.send({"lat_first": stats.lat_first.tobytes(), "lat_other": stats.lat_other.tobytes(),
                       "unmatched": stats.unmatched, "first_arrival": stats.first_arrival,
                       "last_arrival": stats.last_arrival, "closed": closed, "sockets": len(consoles)})
        elif kind == "disconnect":
            for c in consoles:
                c.close()
            n = len(consoles)
            consoles.clear()
            await asyncio.sleep(0.2)
            conn.send(("ok", n))
        elif kind == "quit":
            for c in consoles:
                c.close()
            conn.send(("ok",))
            return


async def open_consoles(port: int, path: str, headers, n: int, concurrency: int, stats: Stats,
                        consoles: list[Console]) -> tuple[int, int, list[str]]:
    loop = asyncio.get_running_loop()
    gate = asyncio.Semaphore(concurrency)
    uri = f"ws://{HOST}:{port}{path}"
    errors: list[str] = []

    async def one() -> bool:
        async with gate:
            opened = loop.create_future()
            try:
                _, console = await loop.create_connection(lambda: Console(uri, headers, stats, opened), HOST, port)
                await asyncio.wait_for(opened, 30)
            except Exception as err:  # noqa: BLE001 - counted and reported
                errors.append(f"{type(err).__name__}: {err}")
                return False
            consoles.append(console)
            return True

    results = await asyncio.gather(*(one() for _ in range(n)))
    return sum(results), n - sum(results), errors


class Clients:
    """The client processes, seen from the driver."""

    def __init__(self, procs: int) -> None:
        ctx = mp.get_context("spawn")
        self.counters = [ctx.RawValue("q", 0) for _ in range(procs)]
        self.pipes, self.procs = [], []
        for counter in self.counters:
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=client_process, args=(child, counter), daemon=True)
            proc.start()
            self.pipes.append(parent)
            self.procs.append(proc)

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    def ask(self, command: tuple) -> list:
        for pipe in self.pipes:
            pipe.send(command)
        return [pipe.recv() for pipe in self.pipes]

    def received(self) -> int:
        return sum(c.value for c in self.counters)

    def connect(self, port: int, path: str, headers, n: int, concurrency: int = 64) -> dict[str, Any]:
        shares = [n // len(self.pipes) + (1 if i < n % len(self.pipes) else 0) for i in range(len(self.pipes))]
        t0 = time.perf_counter()
        for pipe, share in zip(self.pipes, shares):
            pipe.send(("connect", port, path, headers, share, concurrency))
        answers = [pipe.recv() for pipe in self.pipes]
        return {"opened": sum(a[1] for a in answers), "failed": sum(a[2] for a in answers),
                "errors": [e for a in answers for e in a[3]], "seconds": time.perf_counter() - t0}

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.ask(("quit",))
        for proc in self.procs:
            proc.join(5)
            if proc.is_alive():
                proc.terminate()
                proc.join(5)


# -- starting and stopping servers ----------------------------------------------------------------
class Server:
    def __init__(self, role: str, *extra: str, profile_out: Path | None = None) -> None:
        self.role = role
        self.port = free_port()
        fd, self.gc_file = tempfile.mkstemp(prefix=f"cp-bench-fanout-gc-{role}-", suffix=".json")
        os.close(fd)
        cmd = [sys.executable, str(Path(__file__).resolve()), "--role", role, "--port", str(self.port),
               "--gc-out", self.gc_file, *extra]
        if profile_out is not None:
            cmd += ["--profile-out", str(profile_out)]
        self.log_file = Path(self.gc_file).with_suffix(".log")
        with self.log_file.open("w") as log_out:  # uvicorn's access log: a line per request and socket
            self.proc = subprocess.Popen(cmd, cwd=T.ROOT, stdout=log_out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while True:
            if self.proc.poll() is not None:
                tail = self.log_file.read_text()[-2000:]
                raise RuntimeError(f"{role} server exited with {self.proc.returncode} while starting:\n{tail}")
            try:
                with socket.create_connection((HOST, self.port), timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"{role} server did not listen within 60 s") from None
                time.sleep(0.05)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self) -> list:
        """Stop the server; return its garbage collections (empty if it had to be killed)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        try:
            return json.loads(Path(self.gc_file).read_text() or "[]")
        except (OSError, ValueError):
            return []
        finally:
            for path in (self.gc_file, self.log_file):
                with contextlib.suppress(OSError):
                    os.unlink(path)


class Ours:
    """A commandpost server in a fresh temp data dir, its secret and tokens."""

    def __init__(self, profile_out: Path | None = None, what_if: str = "") -> None:
        self.dir = tempfile.mkdtemp(prefix="cp-bench-fanout-")
        extra = ("--server-what-if", what_if) if what_if else ()
        self.server = Server("ours", "--data-dir", self.dir, "--src", CODE["dir"], *extra, profile_out=profile_out)
        self.port = self.server.port
        self.base = f"http://{HOST}:{self.port}"

    def token(self, role: str = "dispatcher", unit: str | None = None) -> str:
        from coordinator.auth import issue
        from coordinator.settings import Settings, resolve_secret

        secret = resolve_secret(Settings(data_dir=Path(self.dir)))
        return issue(secret, role, unit or f"bench-{role}", int(time.time()), None, None, unit)

    def stop(self) -> list:
        import shutil
        pauses = self.server.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
        return pauses


async def wait_ready(base: str, token: str) -> int:
    """Wait for the app's lifespan (the node started, units commissioned); return the head seq."""
    import httpx
    async with httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {token}"}) as http:
        deadline = time.monotonic() + 60
        while True:
            try:
                r = await http.get("/readyz")
                if r.status_code == 200:
                    return r.json()["seq"]
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("commandpost did not become ready within 60 s")
            await asyncio.sleep(0.05)


# -- the event sources ---------------------------------------------------------------------------
class Publisher:
    """Sends one event (2 messages) with the send time in it; returns once the server has taken it."""

    async def open(self) -> None: ...

    async def send(self) -> float: ...

    async def close(self) -> None: ...


def random_point(rng: random.Random) -> dict[str, float]:
    from agencies.demo import demo_bounds
    west, south, east, north = demo_bounds()  # the middle 80 % of the square
    return {"lat": south + (north - south) * rng.uniform(0.1, 0.9), "lon": west + (east - west) * rng.uniform(0.1, 0.9)}


def stamp() -> tuple[float, str]:
    now = time.time()
    return now, f"{MARK}{now:.6f}@"


class OursPublisher(Publisher):
    def __init__(self, base: str, token: str, incident_type: str, pad: int, rng: random.Random) -> None:
        self.base, self.token, self.type, self.pad, self.rng = base, token, incident_type, pad, rng
        self.http = None

    async def open(self) -> None:
        import httpx
        self.http = httpx.AsyncClient(base_url=self.base, headers={"Authorization": f"Bearer {self.token}"},
                                      timeout=60)

    async def send(self) -> float:
        location = random_point(self.rng)
        t, marker = stamp()
        r = await self.http.post("/v1/incidents", json={"type": self.type, "location": location,
                                                        "description": f"bench fan-out {marker} " + "x" * self.pad})
        if r.status_code != 201:
            raise RuntimeError(f"POST /v1/incidents answered {r.status_code}: {r.text[:300]}")
        return t

    async def close(self) -> None:
        await self.http.aclose()


class BarePublisher(Publisher):
    def __init__(self, port: int, templates: list[str], template_id: str, template_marker: str) -> None:
        self.port, self.templates, self.template_id, self.template_marker = port, templates, template_id, template_marker
        self.ws = None

    async def open(self) -> None:
        from websockets.asyncio.client import connect
        self.ws = await connect(f"ws://{HOST}:{self.port}/publish", compression=None, max_size=None)

    async def send(self) -> float:
        incident = str(uuid.uuid4())
        t, marker = stamp()
        frame = SEP.join(m.replace(self.template_id, incident).replace(self.template_marker, marker)
                         for m in self.templates)
        await self.ws.send(frame)
        answer = await self.ws.recv()
        if answer != "ok":
            raise RuntimeError(f"bare server answered {answer!r}")
        return t

    async def close(self) -> None:
        await self.ws.close()


# -- the fan-out measurement -----------------------------------------------------------------------
async def wait_total(clients: Clients, target: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while clients.received() < target:
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.005)
    return True


async def run_phase(name: str, clients: Clients, publisher: Publisher, n_sockets: int, per_event: int,
                    events: int, rate: float | None, pids: dict[str, list[int]]) -> dict[str, Any]:
    """``rate`` events/s, or None: back to back. Returns deliveries, rates, latencies and CPU."""
    clients.ask(("reset",))
    base = clients.received()
    expected = n_sockets * per_event * events
    cpu0 = {k: [cpu_s(p) for p in v] for k, v in pids.items()}
    sends: list[float] = []
    send_s: list[float] = []
    wall_start = time.time()
    t_start = time.perf_counter()
    for i in range(events):
        if rate:
            delay = t_start + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
        t0 = time.perf_counter()
        sends.append(await publisher.send())
        send_s.append(time.perf_counter() - t0)
    sent_wall = time.perf_counter() - t_start
    complete = await wait_total(clients, base + expected, timeout_s=60 + events / 2)
    await asyncio.sleep(0.05)
    cpu1 = {k: [cpu_s(p) for p in v] for k, v in pids.items()}
    got = clients.ask(("collect",))
    received = clients.received() - base
    lat_first, lat_other = array("d"), array("d")
    closed: dict[str, int] = {}
    for g in got:
        lat_first.frombytes(g["lat_first"])
        lat_other.frombytes(g["lat_other"])
        for code, count in g["closed"].items():
            closed[str(code)] = closed.get(str(code), 0) + count
    last = max(g["last_arrival"] for g in got)
    span = last - sends[0] if received else float("nan")
    both = array("d", lat_first)
    both.extend(lat_other)
    cpu = {k: [b - a for a, b in zip(cpu0[k], cpu1[k])] for k in pids}
    return {
        "phase": name, "window": [wall_start, time.time()], "events": events, "rate_per_s": rate,
        "expected": expected, "received": received,
        "complete": complete, "missing": expected - received, "closed_sockets": closed,
        "unmatched": sum(g["unmatched"] for g in got), "send_wall_s": sent_wall, "span_s": span,
        "deliveries_per_s": received / span if span and span > 0 else float("nan"),
        "send_ms": T.summary_ms(send_s), "latency": lat_summary(both), "latency_first": lat_summary(lat_first),
        "latency_other": lat_summary(lat_other), "cpu_s": cpu,
        "server_cpu_ms_per_1000": 1000 * 1000 * sum(cpu["server"]) / received if received else float("nan"),
    }


async def fanout_subject(subject: str, n: int, clients: Clients, args, calib: dict, rng: random.Random,
                         profile_out: Path | None = None, what_if: str = "") -> dict[str, Any]:
    if subject == "ours":
        ours = Ours(profile_out, what_if)
        server_pid, port = ours.server.pid, ours.port
        token = ours.token()
        head = await wait_ready(ours.base, token)
        path, headers = f"/v1/stream?after={head}", [("Authorization", f"Bearer {token}")]
        publisher: Publisher = OursPublisher(ours.base, token, args.incident_type, calib["pad"], rng)
        stop = ours.stop
    else:
        bare = Server("bare")
        server_pid, port, path, headers = bare.pid, bare.port, "/", []
        publisher = BarePublisher(port, calib["templates"], calib["template_id"], calib["template_marker"])
        stop = bare.stop
    pids = {"server": [server_pid], "clients": clients.pids, "driver": [os.getpid()]}
    doc: dict[str, Any] = {"subject": subject, "sockets": n, "what_if": what_if or None}
    label = f"{subject}[{what_if}]" if what_if else subject
    try:
        connect = clients.connect(port, path, headers, n)
        doc["connect"] = connect
        T.log(f"  {label} N={n}: {connect['opened']:,} sockets open in {connect['seconds']:.1f} s"
              + (f", {connect['failed']} failed: {connect['errors']}" if connect["failed"] else ""))
        if connect["opened"] == 0:
            raise RuntimeError(f"no socket could connect to {subject}")
        opened = connect["opened"]
        await asyncio.sleep(0.5)  # bare: the last handshakes' handlers join the set
        await publisher.open()
        try:
            doc["warmup"] = await run_phase("warmup", clients, publisher, opened, 2, args.warmup, None, pids)
            if not doc["warmup"]["complete"]:
                T.log(f"  warm-up incomplete: {doc['warmup']['received']:,} of {doc['warmup']['expected']:,}")
            if "gc-freeze" in what_if:
                os.kill(server_pid, signal.SIGHUP)
                await asyncio.sleep(0.2)
            if profile_out is not None:
                os.kill(server_pid, signal.SIGUSR1)
            doc["paced"] = await run_phase("paced", clients, publisher, opened, 2, args.paced_events, args.rate, pids)
            doc["burst"] = await run_phase("burst", clients, publisher, opened, 2, args.burst_events, None, pids)
            if profile_out is not None:
                os.kill(server_pid, signal.SIGUSR2)
                await asyncio.sleep(1.0)
        finally:
            await publisher.close()
        for phase in ("paced", "burst"):
            d = doc[phase]
            T.log(f"  {label} N={n} {phase}: {d['deliveries_per_s']:,.0f} deliveries/s, "
                  f"p50 {d['latency']['p50_ms']:.1f} ms, p99 {d['latency']['p99_ms']:.1f} ms, "
                  f"{d['received']:,}/{d['expected']:,} received, server CPU {sum(d['cpu_s']['server']):.2f} s, "
                  f"clients CPU {sum(d['cpu_s']['clients']):.2f} s")
    finally:
        clients.ask(("disconnect",))
        pauses = stop()
    for phase in ("warmup", "paced", "burst"):
        if phase in doc:
            doc[phase]["server_gc"] = g = gc_in(pauses, *doc[phase]["window"])
            if phase != "warmup":
                T.log(f"  {label} N={n} {phase}: server GC gen2 {g['gen2']['count']}x (max {g['gen2']['max_ms']:.0f} "
                      f"ms), gen1 {g['gen1']['count']}x (max {g['gen1']['max_ms']:.0f} ms), gen0 total "
                      f"{g['gen0']['total_ms']:.0f} ms")
    return doc


def gc_in(pauses: list, start: float, end: float) -> dict[str, Any]:
    """The server's garbage collections that ended inside [start, end], by generation."""
    out: dict[str, Any] = {}
    for gen in (0, 1, 2):
        ms = [p[2] * 1000 for p in pauses if p[1] == gen and start <= p[0] <= end]
        out[f"gen{gen}"] = {"count": len(ms), "total_ms": sum(ms), "max_ms": max(ms) if ms else 0.0}
    return out


async def calibrate(args, rng: random.Random) -> dict[str, Any]:
    """One report on a fresh server with one console: the messages as sent, their sizes, the padding
    that makes IncidentReported ``--event-bytes`` bytes."""
    from websockets.asyncio.client import connect

    ours = Ours()
    try:
        token = ours.token()
        head = await wait_ready(ours.base, token)
        pub = OursPublisher(ours.base, token, args.incident_type, 0, rng)
        await pub.open()
        texts: list[str] = []
        async with connect(f"ws://{HOST}:{ours.port}/v1/stream?after={head}",
                           additional_headers={"Authorization": f"Bearer {token}"}, compression=None) as ws:
            await pub.send()  # unpadded, to learn the size of the rest
            texts = [await asyncio.wait_for(ws.recv(), 10), await asyncio.wait_for(ws.recv(), 10)]
            pub.pad = max(0, args.event_bytes - len(texts[0].encode()))
            await pub.send()
            texts = [await asyncio.wait_for(ws.recv(), 10), await asyncio.wait_for(ws.recv(), 10)]
        await pub.close()
    finally:
        ours.stop()
    types = [json.loads(t)["type"] for t in texts]
    if types != ["IncidentReported", "RecommendationMade"]:
        raise RuntimeError(f"expected IncidentReported, RecommendationMade; got {types}")
    first = json.loads(texts[0])
    marker = first["data"]["description"].split()[2]
    return {"pad": pub.pad, "templates": texts, "template_id": first["data"]["incident_id"],
            "template_marker": marker, "sizes": {t: len(x.encode()) for t, x in zip(types, texts)}}


# -- intake -> unit push -------------------------------------------------------------------------
async def unit_push(args, rng: random.Random, clients: Clients | None, consoles: int, rounds: int,
                    what_if: str = "") -> dict[str, Any]:
    import httpx
    from websockets.asyncio.client import connect

    ours = Ours(what_if=what_if)
    try:
        token = ours.token()
        head = await wait_ready(ours.base, token)
        connect_doc = None
        if consoles and clients is not None:
            connect_doc = clients.connect(ours.port, f"/v1/stream?after={head}",
                                          [("Authorization", f"Bearer {token}")], consoles)
            T.log(f"  unit push: {connect_doc['opened']:,} consoles connected")
        unit_token = ours.token("unit", UNIT_ID)
        arrivals: asyncio.Queue = asyncio.Queue()
        from_send, from_return, request_ms, stray = [], [], [], 0
        cpu0 = cpu_s(ours.server.pid)
        async with httpx.AsyncClient(base_url=ours.base, headers={"Authorization": f"Bearer {token}"},
                                     timeout=30) as http, \
                connect(f"ws://{HOST}:{ours.port}/v1/units/{UNIT_ID}/stream?after={head}",
                        additional_headers={"Authorization": f"Bearer {unit_token}"}, compression=None) as ws:

            async def reader() -> None:
                async for message in ws:
                    now = time.time()
                    arrivals.put_nowait((now, json.loads(message)))

            async def wait_for(kind: str, assignment_id: str | None = None) -> float:
                nonlocal stray
                while True:
                    now, msg = await asyncio.wait_for(arrivals.get(), 10)
                    if msg.get("type") == kind and (assignment_id is None
                                                    or msg["data"].get("assignment_id") == assignment_id):
                        return now
                    if msg.get("type") not in ("UnitAssigned", "UnitStatusChanged", "AssignmentEnded"):
                        stray += 1

            task = asyncio.create_task(reader())
            try:
                for i in range(rounds + 5):
                    r = await http.post("/v1/incidents", json={"type": "structure_fire",
                                                               "location": random_point(rng)})
                    r.raise_for_status()
                    incident_id = r.json()["id"]
                    await asyncio.sleep(args.unit_think)  # a dispatcher reads the report before assigning
                    t0 = time.time()
                    r = await http.post(f"/v1/incidents/{incident_id}/assignments", json={"unit_ids": [UNIT_ID]})
                    t1 = time.time()
                    r.raise_for_status()
                    assignment_id = r.json()["assignments"][0]["id"]
                    t2 = await wait_for("UnitAssigned", assignment_id)
                    if i >= 5:  # the first rounds warm up
                        from_send.append(t2 - t0)
                        from_return.append(t2 - t1)
                        request_ms.append(t1 - t0)
                    (await http.post(f"/v1/assignments/{assignment_id}/cancel")).raise_for_status()
                    await wait_for("AssignmentEnded", assignment_id)
                    (await http.post(f"/v1/incidents/{incident_id}/close")).raise_for_status()
                    await asyncio.sleep(args.unit_gap)
            finally:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        cpu = cpu_s(ours.server.pid) - cpu0
    finally:
        if consoles and clients is not None:
            clients.ask(("disconnect",))
        ours.stop()
    ms_send = [s * 1000 for s in from_send]
    ms_return = [s * 1000 for s in from_return]
    return {"consoles": consoles, "what_if": what_if or None, "connect": connect_doc, "rounds": len(from_send),
            "stray_messages": stray,
            "from_send": {"p50_ms": T.percentile(ms_send, 50), "p99_ms": T.percentile(ms_send, 99),
                          "max_ms": max(ms_send), "min_ms": min(ms_send)},
            "from_return": {"p50_ms": T.percentile(ms_return, 50), "p99_ms": T.percentile(ms_return, 99),
                            "max_ms": max(ms_return), "min_ms": min(ms_return),
                            "share_arrived_before_return": sum(1 for x in ms_return if x < 0) / len(ms_return)},
            "assign_request": T.summary_ms(request_ms), "server_cpu_s": cpu}


# -- report ----------------------------------------------------------------------------------------
def print_tables(doc: dict[str, Any]) -> None:
    runs = doc.get("fanout", [])
    if runs:
        sizes = doc["calibration"]["sizes"]
        print(f"Messages: IncidentReported {sizes['IncidentReported']:,} B, RecommendationMade "
              f"{sizes['RecommendationMade']:,} B; 2 messages per event to every socket; "
              f"{doc['args']['client_procs']} client processes\n")
        paced = f"paced, {doc['args']['rate']:g} events/s ({doc['args']['paced_events']} events)"
        for phase, title in (("paced", paced),
                             ("burst", f"burst, back to back ({doc['args']['burst_events']} events)")):
            rows = []
            for run in runs:
                for subject in ("ours", "bare"):
                    d = run[subject][phase]
                    lat = d["latency"]
                    wall = d["span_s"]
                    rows.append([f"{run['sockets']:,}", subject, d["received"], d["missing"],
                                 d["deliveries_per_s"], lat["p50_ms"], lat["p99_ms"], lat["max_ms"],
                                 d["send_ms"]["median_ms"], sum(d["cpu_s"]["server"]) / wall,
                                 sum(d["cpu_s"]["clients"]) / wall, d["server_cpu_ms_per_1000"]])
            print(T.table(["sockets", "server", "deliveries", "missing", "deliveries/s", "p50 ms", "p99 ms",
                           "max ms", "send ms", "server CPU", "clients CPU", "srv CPU ms/1k"], rows,
                          title=f"Fan-out, {title}; CPU = cores busy over the span"))
            print()
        rows = []
        for run in runs:
            r = run["ratios"]
            rows.append([f"{run['sockets']:,}", r["burst_deliveries"], r["paced_p50"], r["paced_p99"],
                         r["burst_server_cpu_per_delivery"], run["verdicts"].get("p99", "-"),
                         run["verdicts"]["throughput"]])
        print(T.table(["sockets", "burst deliveries/s ours/bare", "paced p50 ours/bare", "paced p99 ours/bare",
                       "server CPU/delivery ours/bare", "p99 <= 100 ms", ">= 0.7x bare"], rows,
                      title="Ours against the bare server"))
        print()
    variants = doc.get("what_if", [])
    if variants:
        n = variants[0]["sockets"]
        stock = next(r["ours"] for r in runs if r["sockets"] == n)
        rows = []
        for v in [stock, *variants]:
            gen2 = [v[ph]["server_gc"]["gen2"] for ph in ("paced", "burst")]
            rows.append([v["what_if"] or "(as is)", v["paced"]["latency"]["p50_ms"], v["paced"]["latency"]["p99_ms"],
                         v["burst"]["deliveries_per_s"],
                         v["burst"]["deliveries_per_s"] / next(r["bare"] for r in runs if r["sockets"] == n)["burst"][
                             "deliveries_per_s"],
                         v["burst"]["latency"]["p99_ms"], v["paced"]["server_cpu_ms_per_1000"],
                         v["burst"]["server_cpu_ms_per_1000"], sum(g["count"] for g in gen2),
                         sum(g["total_ms"] for g in gen2)])
        print(T.table(["ours, what if", "paced p50", "paced p99", "burst deliveries/s", "/ bare", "burst p99",
                       "srv CPU ms/1k paced", "burst", "gen2 GCs", "gen2 ms"], rows,
                      title=f"Hypothetical server changes at {n:,} sockets (this process only; coordinator/ unchanged)"))
        print()
    units = doc.get("unit_push", [])
    if units:
        rows = [[u["consoles"], u.get("what_if") or "(as is)", u["rounds"], u["from_send"]["p50_ms"], u["from_send"]["p99_ms"],
                 u["from_send"]["max_ms"], u["from_return"]["p50_ms"], u["from_return"]["p99_ms"],
                 u["assign_request"]["median_ms"], u["verdict"]] for u in units]
        print(T.table(["consoles", "server", "rounds", "send->push p50", "p99", "max", "return->push p50", "p99",
                       "assign POST ms", "p99 <= 50 ms"], rows,
                      title="Intake -> unit push (UnitAssigned on /v1/units/E1/stream), ms"))


def ratio(a: float, b: float) -> float:
    return a / b if b else float("nan")


# -- main ------------------------------------------------------------------------------------------
def compare(ours: dict, bare: dict, n: int) -> tuple[dict[str, float], dict[str, str]]:
    ratios = {
        "burst_deliveries": ratio(ours["burst"]["deliveries_per_s"], bare["burst"]["deliveries_per_s"]),
        "paced_deliveries": ratio(ours["paced"]["deliveries_per_s"], bare["paced"]["deliveries_per_s"]),
        "paced_p50": ratio(ours["paced"]["latency"]["p50_ms"], bare["paced"]["latency"]["p50_ms"]),
        "paced_p99": ratio(ours["paced"]["latency"]["p99_ms"], bare["paced"]["latency"]["p99_ms"]),
        "burst_server_cpu_per_delivery": ratio(ours["burst"]["server_cpu_ms_per_1000"],
                                               bare["burst"]["server_cpu_ms_per_1000"]),
    }
    verdicts = {"throughput": verdict(ratios["burst_deliveries"] >= RATIO_TARGET)}
    if n == P99_TARGET_N:
        verdicts["p99"] = verdict(ours["paced"]["latency"]["p99_ms"] <= P99_TARGET_MS and ours["paced"]["missing"] == 0)
    return ratios, verdicts


async def run(args) -> dict[str, Any]:
    rng = random.Random(args.seed)
    sizes = [int(x) for x in args.sizes.split(",") if x]
    doc: dict[str, Any] = {"args": vars(args), "targets": {
        "p99_ms": P99_TARGET_MS, "p99_at_sockets": P99_TARGET_N, "deliveries_ratio": RATIO_TARGET,
        "unit_push_p99_ms": UNIT_P99_TARGET_MS}}
    clients = Clients(args.client_procs)
    try:
        if not args.skip_fanout:
            T.log("calibrating the messages on a fresh server")
            calib = await calibrate(args, rng)
            doc["calibration"] = {k: v for k, v in calib.items() if k != "templates"}
            T.log(f"  IncidentReported {calib['sizes']['IncidentReported']} B (description padded by "
                  f"{calib['pad']}), RecommendationMade {calib['sizes']['RecommendationMade']} B")
            runs = []
            for k, n in enumerate(sizes):
                order = ("ours", "bare") if k % 2 == 0 else ("bare", "ours")
                run_doc: dict[str, Any] = {"sockets": n, "order": list(order)}
                for subject in order:
                    T.log(f"fan-out to {n:,} sockets: {subject}")
                    run_doc[subject] = await fanout_subject(subject, n, clients, args, calib, rng)
                run_doc["ratios"], run_doc["verdicts"] = compare(run_doc["ours"], run_doc["bare"], n)
                runs.append(run_doc)
                if n == args.what_if_size and args.what_if:  # right after the pair it is compared with
                    for variant in args.what_if.split(","):
                        T.log(f"what if, {n:,} sockets: {variant}")
                        w = await fanout_subject("ours", n, clients, args, calib, rng, what_if=variant)
                        w["ratios"], w["verdicts"] = compare(w, run_doc["bare"], n)
                        doc.setdefault("what_if", []).append(w)
            doc["fanout"] = runs
            if args.profile:
                out = T.RESULTS / f"{args.name}_profile.txt"
                T.RESULTS.mkdir(parents=True, exist_ok=True)
                T.log(f"profiling ours at {args.profile_size:,} sockets (not part of the figures)")
                prof = await fanout_subject("ours", args.profile_size, clients, args, calib, rng, profile_out=out)
                doc["profile_run"] = {"sockets": args.profile_size, "paced": prof["paced"], "burst": prof["burst"],
                                      "file": str(out)}
        if not args.skip_unit:
            units = []
            plan = [(0, "")]
            if args.unit_consoles:
                plan.append((args.unit_consoles, ""))
                plan += [(args.unit_consoles, v) for v in args.unit_what_if.split(",") if v]
            for consoles, variant in plan:
                T.log(f"intake -> unit push, {consoles:,} consoles connected" + (f", what if {variant}" if variant else ""))
                u = await unit_push(args, rng, clients, consoles,
                                    args.unit_loaded_rounds if consoles else args.unit_rounds, variant)
                u["verdict"] = verdict(u["from_send"]["p99_ms"] <= UNIT_P99_TARGET_MS)
                T.log(f"  send->push p50 {u['from_send']['p50_ms']:.2f} ms, p99 {u['from_send']['p99_ms']:.2f} ms")
                units.append(u)
            doc["unit_push"] = units
    finally:
        clients.close()
    return doc


def snapshot_code(ref: str | None) -> tuple[Path, dict[str, Any]]:
    """Copy the packages the servers import into a temp dir, once: other people edit coordinator/ while
    a run lasts minutes, and every server of the run must run the same code. ``ref``: a git commit
    (``git archive``; the repository is only read), else the working tree as it is now."""
    import hashlib
    import io
    import shutil
    import tarfile

    dest = Path(tempfile.mkdtemp(prefix="cp-bench-fanout-src-"))
    info: dict[str, Any] = {}
    if ref:
        sha = subprocess.run(["git", "-C", str(T.ROOT), "rev-parse", "--verify", f"{ref}^{{commit}}"],
                             capture_output=True, text=True, check=True).stdout.strip()
        archive = subprocess.run(["git", "-C", str(T.ROOT), "archive", "--format=tar", sha, *PACKAGES],
                                 capture_output=True, check=True).stdout
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(dest, filter="data")
        info.update(code=f"git {sha[:7]}", commit=sha[:7])
    else:
        for pkg in PACKAGES:
            shutil.copytree(T.ROOT / pkg, dest / pkg, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        head = subprocess.run(["git", "-C", str(T.ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=False).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(T.ROOT), "status", "--porcelain", "--", *PACKAGES],
                               capture_output=True, text=True, check=False).stdout.split("\n")
        dirty = sorted(line[3:] for line in dirty if line.strip())
        info.update(code=f"working tree at {head}" + (" + uncommitted changes" if dirty else ""), commit=head,
                    uncommitted=dirty)
    info["sources"] = {name: hashlib.sha256((dest / name).read_bytes()).hexdigest()[:12] for name in SOURCES
                       if (dest / name).exists()}
    return dest, info


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="100,1000,3000", help="console socket counts")
    p.add_argument("--client-procs", type=int, default=2, help="client processes holding the sockets")
    p.add_argument("--rate", type=float, default=4.0, help="events/s in the paced phase (2 messages each)")
    p.add_argument("--paced-events", type=int, default=80)
    p.add_argument("--burst-events", type=int, default=100, help="events sent back to back (<= 450: queues hold 1,000)")
    p.add_argument("--warmup", type=int, default=3, help="events every socket must receive before measuring")
    p.add_argument("--event-bytes", type=int, default=1024, help="size of the IncidentReported message")
    p.add_argument("--incident-type", default="public_assist")
    p.add_argument("--unit-rounds", type=int, default=200)
    p.add_argument("--unit-gap", type=float, default=0.02, help="seconds between unit rounds")
    p.add_argument("--unit-think", type=float, default=0.2, help="seconds between a report and its assignment")
    p.add_argument("--unit-consoles", type=int, default=1000, help="also time unit push with this many consoles (0: no)")
    p.add_argument("--unit-loaded-rounds", type=int, default=100, help="rounds with the consoles connected")
    p.add_argument("--what-if", default="send-direct,gc-freeze,send-direct+gc-freeze",
                   help=f"hypothetical server changes to time at --what-if-size ('' for none; '+' combines): "
                        f"{', '.join(WHAT_IFS)}")
    p.add_argument("--what-if-size", type=int, default=1000)
    p.add_argument("--unit-what-if", default="units-first",
                   help="hypothetical server changes for the unit push with consoles ('' for none)")
    p.add_argument("--skip-fanout", action="store_true")
    p.add_argument("--skip-unit", action="store_true")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--profile", action="store_true", help="pyinstrument on ours' server, one extra run")
    p.add_argument("--profile-size", type=int, default=1000)
    p.add_argument("--git-ref", help="measure this commit (default: the working tree as the run starts)")
    p.add_argument("--name", default="fanout", help="results go to bench/results/<name>.json (and _profile.txt)")
    # internal: the server processes
    p.add_argument("--role", choices=("driver", "ours", "bare"), default="driver", help=argparse.SUPPRESS)
    p.add_argument("--port", type=int, help=argparse.SUPPRESS)
    p.add_argument("--data-dir", help=argparse.SUPPRESS)
    p.add_argument("--profile-out", help=argparse.SUPPRESS)
    p.add_argument("--gc-out", help=argparse.SUPPRESS)
    p.add_argument("--server-what-if", help=argparse.SUPPRESS)
    p.add_argument("--src", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.role == "ours":
        return serve_ours(args)
    if args.role == "bare":
        return serve_bare(args)

    import uvicorn
    import websockets

    nofile = raise_nofile()
    loop_kind = use_uvloop()
    t_start = time.perf_counter()
    machine = T.machine()
    machine.update({"websockets": websockets.__version__, "uvicorn": uvicorn.__version__, "loop": loop_kind,
                    "nofile": nofile})
    import shutil

    src, code = snapshot_code(args.git_ref)
    CODE["dir"] = str(src)
    sys.path.insert(0, str(src))  # the driver's own imports (tokens, the city's bounds) from the same copy
    machine.update(code=code["code"], commit=code["commit"])
    T.log(f"measuring {code['code']}" + (f" ({', '.join(code['uncommitted'])})" if code.get("uncommitted") else ""))
    try:
        doc = {"machine": machine, "code": code, **asyncio.run(run(args))}
    finally:
        shutil.rmtree(src, ignore_errors=True)
    doc["run_s"] = time.perf_counter() - t_start
    print()
    print_tables(doc)
    path = T.write_json(args.name, doc)
    T.log(f"wrote {path} ({doc['run_s']:.0f} s)")


if __name__ == "__main__":
    main()
