"""Group commit and cross-node intake (issue 5): appends/s under concurrent intake on PostgreSQL, one node
and two nodes, next to bare PostgreSQL in the same run; and intake on one node -> unit push on another,
next to a bare Redis Streams hop and a bare websocket hop.

A. Appends under concurrent intake. Every configuration gets a fresh database (PostgreSQL: a new
   ``cp_bench_cluster_<pid>_<rand>`` database; SQLite: a temp file) and fresh node processes: this script in
   ``--role append-worker``, which builds the node exactly as the service does (``coordinator.app.open_node``
   with ``Settings(database_url, redis_url, redis_prefix)``, then ``start_node``: migrations, the demo city,
   147 units commissioned), on uvloop as ``commandpost serve`` runs. ``max_batch`` is the node's attribute
   (``MAX_BATCH`` = group commit on; 1 = off). C callers (asyncio tasks in the node's process) each loop
   ``await node.handle(ReportIncident(...), dispatcher)``: distinct ids, an incident type drawn uniformly from
   the 24 of ``agencies/data/plans.toml``, a location uniform over the middle 80 % of the demo city, no
   auto-dispatch (the service's default), so each report appends ``IncidentReported`` + ``RecommendationMade``.
   ``--warmup`` s run unmeasured, then ``--duration`` s are measured: commands completed in the window,
   events they appended, per-command latency (``handle`` called -> returned), batches and commands committed
   (``node.batches``/``node.batched``, so mean batch size), the node process's CPU and the machine's busy
   cores (``/proc/stat``). Where a batch's time goes is timed by wrapping, in the worker only,
   ``EventLog.begin`` (lock + head + gap read), ``Node._decide`` (authorise + decide + number + apply to the
   working state, on the event loop; inside it ``possible_duplicates`` and ``recommendation_for``),
   ``Appending.commit`` (insert + COMMIT) and ``Node._apply``.
   Two nodes: two worker processes on one database with the Redis bus (its own key prefix per
   configuration), started one after the other, then released together; the total is the sum. Afterwards
   each node catches up and reports its state's digest (both must be equal), every command's events are
   counted against the log's growth (each 2xx appended exactly once) and ``EventLog.verify()`` checks the chain.
   The peer, in the same database right after the one-node group-commit run at the largest C: bare psycopg on
   one connection, rows shaped as ours (the ``IncidentReported``/``RecommendationMade`` documents that run
   wrote, fresh ids, into a table with ``events``' columns, unique constraints and indexes), ``executemany``
   (pipelined) and ``COPY``, in transactions of 1 command (2 rows) and of the mean batch size achieved.
   SQLite: the same one-node runs on the embedded log, for reference.

B. Cross-node push. Two real ``commandpost serve`` processes (``Path(sys.executable).parent/'commandpost'``)
   on one fresh database and Redis (``CP_AUTO_DISPATCH=*:5``, so a report assigns its recommended units at
   intake). A unit socket ``/v1/units/<unit>/stream`` (unit token) is open on each node. Each round reports a
   ``--push-type`` incident at the unit's station by ``POST /v1/incidents`` (dispatcher token, keep-alive
   connection) alternately on node A and node B; the latency is from just before the POST is sent to the
   arrival of the unit's ``UnitAssigned`` for that incident on the socket of the *other* node (cross-node)
   and of the *same* node; then ``POST /v1/incidents/<id>/close`` frees the units and both sockets must see
   the unit's ``AssignmentEnded`` before the next round. In each round, interleaved, the peers: a bare
   Redis Streams hop (XADD of a hint-sized message -> a blocked XREAD on another connection, redis-py's
   asyncio client as the node uses it) and a bare websocket hop (``bench/fanout.py``'s bare server in its own
   process: a publisher socket sends one ``UnitAssigned``-sized message, the server ``broadcast()``s it to one
   console socket). All processes read the same clock.

The code measured is copied once at start (as ``fanout.py`` does; others edit coordinator/ meanwhile) and
every node process imports that copy. Targets (issue 5): >= 5,000 events/s appended under concurrent intake;
cross-node push p99 <= 100 ms.

    .venv/bin/python bench/cluster.py [--quick] [--duration 10] [--warmup 2] [--rounds 2]
                                      [--concurrency 1,16,64,256] [--two-node-concurrency 64,256]
                                      [--sqlite-concurrency 1,64,256] [--push-rounds 200] [--profile]
                                      [--skip-appends] [--skip-push] [--pg-url URL] [--redis-url URL]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import math
import os
import random
import resource
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from datetime import UTC
from pathlib import Path
from typing import Any

import _timing as T
import fanout as F

EVENTS_TARGET = 5000.0
PUSH_P99_TARGET_MS = 100.0
HOST = "127.0.0.1"
DEFAULT_REDIS = "redis://127.0.0.1:6379/0"
PROTO = "@@"  # prefix of the worker's protocol lines on its stdout
CODE: dict[str, str] = {"dir": ""}


# ================================================================================================
# A worker: one node in this process, C concurrent callers
# ================================================================================================
def worker(args) -> None:
    if args.src:
        sys.path.insert(0, args.src)
    loop_kind = F.use_uvloop()
    asyncio.run(worker_main(args, loop_kind))


def say(doc: dict) -> None:
    sys.stdout.write(PROTO + json.dumps(doc, default=str) + "\n")
    sys.stdout.flush()


def instrument() -> dict[str, list[float]]:
    """Wrap the steps of a batch (in this process only) to see where its time goes: totals in seconds."""
    from coordinator import handlers
    from coordinator import log as cl
    from coordinator import node as cn

    spent: dict[str, list[float]] = defaultdict(lambda: [0.0, 0])  # seconds, calls
    perf = time.perf_counter

    def wrap(owner, name: str, label: str) -> None:
        original = getattr(owner, name)

        def timed(*a, **kw):
            t0 = perf()
            try:
                return original(*a, **kw)
            finally:
                cell = spent[label]
                cell[0] += perf() - t0
                cell[1] += 1

        setattr(owner, name, timed)

    wrap(cl.EventLog, "begin", "begin (lock, head, gap)")
    wrap(cl.Appending, "commit", "commit (insert + COMMIT)")
    wrap(cn.Node, "_decide", "decide batch (on the loop)")
    wrap(cn.Node, "_apply", "apply committed (on the loop)")
    wrap(handlers, "possible_duplicates", "  of which possible_duplicates")
    wrap(handlers, "recommendation_for", "  of which recommendation_for")
    return spent


async def worker_main(args, loop_kind: str) -> None:
    from anyio import to_thread

    from agencies.demo import demo_bounds
    from agencies.plans import load_plans
    from coordinator import app as capp
    from coordinator import commands as c
    from coordinator import state as st
    from coordinator.auth import Principal
    from coordinator.log import format_at
    from coordinator.settings import Settings
    from geo import LatLon

    spent = instrument()
    data_dir = tempfile.mkdtemp(prefix="cp-bench-cluster-worker-")
    settings = Settings(data_dir=Path(data_dir), database_url=args.url, redis_url=args.redis_url or None,
                        redis_prefix=args.prefix)
    t_open = time.perf_counter()
    node = await to_thread.run_sync(capp.open_node, settings)
    if args.max_batch:
        node.max_batch = args.max_batch
    await capp.start_node(node)
    import coordinator
    say({"ready": True, "pid": os.getpid(), "seq": node.state.seq, "units": len(node.state.units),
         "max_batch": node.max_batch, "bus": type(node.bus).__name__, "loop": loop_kind,
         "coordinator": str(Path(coordinator.__file__).parent), "start_s": time.perf_counter() - t_open})

    rng = random.Random(args.seed * 1000 + args.node_index)
    types = sorted(load_plans().incident_types)
    west, south, east, north = demo_bounds()
    who = Principal(role="dispatcher", subject=f"bench-{args.node_index}")

    line = await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    if line.strip() != "go":
        raise SystemExit(f"worker expected 'go', got {line!r}")

    loop = asyncio.get_running_loop()
    t_go = time.perf_counter()
    m_start, m_end = t_go + args.warmup, t_go + args.warmup + args.duration
    stop = False
    lat: list[float] = []
    counts = Counter()
    totals = Counter()  # every command, for the exactly-once check
    errors: Counter = Counter()
    marks: dict[str, Any] = {}
    per_second = Counter()  # events completed in each second of the window

    async def send(cmd):
        """One command through the node, counted; None if it was refused."""
        t0 = time.perf_counter()
        try:
            result = await node.handle(cmd, who)
        except Exception as err:  # noqa: BLE001 -- counted, not fatal: the table says how many
            errors[type(err).__name__] += 1
            return None
        t1 = time.perf_counter()
        totals["commands"] += 1
        totals["events"] += len(result.records)
        if m_start <= t1 < m_end:
            lat.append(t1 - t0)
            counts["commands"] += 1
            counts["events"] += len(result.records)
            per_second[int(t1 - m_start)] += len(result.records)
        return result

    async def caller(k: int) -> None:
        n = 0
        while not stop:
            n += 1
            lat_deg = south + (north - south) * rng.uniform(0.1, 0.9)
            lon_deg = west + (east - west) * rng.uniform(0.1, 0.9)
            incident_id = f"b{args.node_index}-{k}-{n}"
            cmd = c.ReportIncident(incident_id, rng.choice(types), None, LatLon(lat_deg, lon_deg),
                                   format_at(node.log.clock()))
            result = await send(cmd)
            if result is None:
                await asyncio.sleep(0.01)
                continue
            if args.workload == "dispatch":
                await incident_life(incident_id, result)

    async def incident_life(incident_id: str, reported) -> None:
        """A dispatcher's and the crews' part of a call: assign what was recommended, each crew acknowledges,
        goes en route and arrives, then the incident is closed (which frees the units)."""
        made = next(r for r in reported.records if r.type == "RecommendationMade")
        units = [u["unit_id"] for line in made.data["lines"] for u in line["units"]]
        if units:
            assigned = await send(c.AssignUnits(incident_id, tuple(units),
                                                tuple(f"{incident_id}/{u}" for u in units)))
            for rec in (assigned.records if assigned else ()):
                if rec.type == "UnitAssigned":
                    await send(c.AckAssignment(rec.data["assignment_id"]))
                    for status in ("en_route", "on_scene"):
                        await send(c.ChangeUnitStatus(rec.data["unit_id"], status))
        await send(c.CloseIncident(incident_id, "bench"))

    def mark(name: str) -> None:
        ru = resource.getrusage(resource.RUSAGE_SELF)
        marks[name] = {"t": time.perf_counter(), "cpu": ru.ru_utime + ru.ru_stime, "batches": node.batches,
                       "batched": node.batched, "machine": machine_busy(), "postgres_cpu": postgres_cpu(),
                       "spent": {k: list(v) for k, v in spent.items()}}

    tasks = [asyncio.create_task(caller(k)) for k in range(args.concurrency)]
    await asyncio.sleep(max(0.0, m_start - time.perf_counter()))
    mark("start")
    await asyncio.sleep(max(0.0, m_end - time.perf_counter()))
    mark("end")
    stop = True
    await asyncio.gather(*tasks)
    s, e = marks["start"], marks["end"]
    window = e["t"] - s["t"]
    batches = e["batches"] - s["batches"]
    batched = e["batched"] - s["batched"]
    breakdown = {k: {"s": e["spent"][k][0] - s["spent"].get(k, [0, 0])[0],
                     "calls": e["spent"][k][1] - s["spent"].get(k, [0, 0])[1]} for k in e["spent"]}
    ms = sorted(x * 1000 for x in lat)
    result = {
        "node_index": args.node_index, "concurrency": args.concurrency, "max_batch": node.max_batch,
        "window_s": window, "commands": counts["commands"], "events": counts["events"],
        "commands_per_s": counts["commands"] / window, "events_per_s": counts["events"] / window,
        "batches": batches, "batched": batched, "mean_batch": batched / batches if batches else float("nan"),
        "p50_ms": T.percentile(ms, 50), "p90_ms": T.percentile(ms, 90), "p99_ms": T.percentile(ms, 99),
        "max_ms": ms[-1] if ms else float("nan"), "mean_ms": statistics.fmean(ms) if ms else float("nan"),
        "cpu_s": e["cpu"] - s["cpu"], "node_cores": (e["cpu"] - s["cpu"]) / window,
        "postgres_cores": cpu_delta(s["postgres_cpu"], e["postgres_cpu"]) / window,
        "events_per_second_series": [per_second[i] for i in range(int(args.duration))],
        "cpu_per_command_ms": (e["cpu"] - s["cpu"]) * 1000 / max(1, counts["commands"]),
        "machine_busy_cores": busy_between(s["machine"], e["machine"]),
        # In the dispatch workload a 409 is the expected answer to assigning a unit another call took first.
        "conflicts": errors.pop("Conflict", 0) if args.workload == "dispatch" else 0,
        "errors": dict(errors), "total_commands": totals["commands"], "total_events": totals["events"],
        "incidents_in_state": len(node.state.incidents), "breakdown": breakdown,
    }
    say({"stopped": True, "result": result})
    line = await loop.run_in_executor(None, sys.stdin.readline)
    if line.strip() == "check":  # everyone has stopped writing: catch up and show what this node holds
        await node.catch_up()
        doc = json.dumps(st.to_doc(node.state), sort_keys=True, default=str)
        say({"checked": True, "seq": node.state.seq, "incidents": len(node.state.incidents),
             "digest": hashlib.sha256(doc.encode()).hexdigest()[:16]})
    await node.stop()
    await node.bus.close()
    node.log.engine.dispose()
    shutil.rmtree(data_dir, ignore_errors=True)


def machine_busy() -> tuple[int, int]:
    """(busy, total) jiffies over all cores, from /proc/stat."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return (0, 0)
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields) - idle, sum(fields))


def postgres_cpu() -> dict[int, float]:
    """CPU seconds so far of every PostgreSQL server process on the machine (any database: others' too)."""
    found = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if (proc / "comm").read_text().strip() == "postgres":
                found[int(proc.name)] = F.cpu_s(int(proc.name))
        except OSError:
            pass
    return found


def cpu_delta(a: dict[int, float], b: dict[int, float]) -> float:
    """CPU used between two postgres_cpu() readings by the processes alive at the second (new ones from 0)."""
    return sum(cpu - a.get(pid, 0.0) for pid, cpu in b.items() if not math.isnan(cpu))


def busy_between(a, b) -> float:
    """Busy cores on average between two machine_busy() readings."""
    total = b[1] - a[1]
    return (b[0] - a[0]) / total * (os.cpu_count() or 1) if total > 0 else float("nan")


# ================================================================================================
# The driver's side of a worker
# ================================================================================================
class Worker:
    def __init__(self, url: str, redis_url: str | None, prefix: str, concurrency: int, max_batch: int,
                 node_index: int, args) -> None:
        fd, self.log_path = tempfile.mkstemp(prefix="cp-bench-cluster-worker-", suffix=".log")
        os.close(fd)
        cmd = [sys.executable, str(Path(__file__).resolve()), "--role", "append-worker", "--url", url,
               "--redis-url", redis_url or "", "--prefix", prefix, "--concurrency", str(concurrency),
               "--max-batch", str(max_batch), "--node-index", str(node_index), "--seed", str(args.seed),
               "--warmup", str(args.warmup), "--duration", str(args.duration), "--src", CODE["dir"],
               "--workload", args.workload]
        self.log_file = open(self.log_path, "w")  # noqa: SIM115 -- the worker's stderr, closed in close()
        self.proc = subprocess.Popen(cmd, cwd=T.ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.log_file, text=True, bufsize=1)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def expect(self, key: str, timeout_s: float = 120) -> dict:
        # A blocking read is fine here: the worker always answers or exits (then readline gives '').
        while True:
            line = self.proc.stdout.readline()
            if not line:
                self.proc.wait(5)
                raise RuntimeError(f"worker {self.pid} exited ({self.proc.returncode}) before '{key}':\n"
                                   + Path(self.log_path).read_text()[-3000:])
            if line.startswith(PROTO):
                doc = json.loads(line[len(PROTO):])
                if key in doc:
                    return doc

    def send(self, word: str) -> None:
        self.proc.stdin.write(word + "\n")
        self.proc.stdin.flush()

    def close(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self.proc.stdin.close()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        self.log_file.close()
        with contextlib.suppress(OSError):
            os.unlink(self.log_path)


def redis_cleanup(redis_url: str, prefix: str) -> int:
    import redis
    client = redis.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
        if keys:
            client.delete(*keys)
        return len(keys)
    finally:
        client.close()


def new_prefix() -> str:
    return f"cp_bench_cluster_{os.getpid()}_{uuid.uuid4().hex[:6]}"


def run_nodes(url: str, backend: str, nodes: int, concurrency: int, max_batch: int, args,
              profile_out: Path | None = None, after=None) -> dict[str, Any]:
    """One configuration: ``nodes`` worker processes on the database at ``url``; returns their results."""
    redis_url = args.redis_url if backend == "postgresql" else None
    prefix = new_prefix()
    label = f"{backend} {nodes} node{'s' if nodes > 1 else ''} C={concurrency}{'/node' if nodes > 1 else ''} " \
            f"max_batch={max_batch}"
    T.log(f"  {label}")
    workers: list[Worker] = []
    spy = None
    try:
        ready = []
        for i in range(nodes):  # one after the other: the first commissions the units
            w = Worker(url, redis_url, prefix, concurrency, max_batch, i, args)
            workers.append(w)
            ready.append(w.expect("ready"))
        head0 = ready[-1]["seq"]
        for w in workers:
            w.send("go")
        if profile_out is not None:  # py-spy on the (single) node process for the measured window
            time.sleep(args.warmup)
            spy = subprocess.Popen([str(Path(sys.executable).parent / "py-spy"), "record", "--pid",
                                    str(workers[0].pid), "--duration", str(int(args.duration)), "--rate", "200", "--function",
                                    "--format", "raw", "--output", str(profile_out), "--nonblocking"],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        results = [w.expect("stopped")["result"] for w in workers]
        if spy is not None:
            _, err = spy.communicate(timeout=args.duration + 30)
            if spy.returncode != 0:
                T.log(f"  py-spy failed: {err[-500:]}")
        for w in workers:
            w.send("check")
        checks = [w.expect("checked") for w in workers]
    finally:
        for w in workers:
            w.close()
        if redis_url:
            with contextlib.suppress(Exception):
                redis_cleanup(redis_url, prefix)
    doc: dict[str, Any] = {
        "backend": backend, "nodes": nodes, "concurrency_per_node": concurrency,
        "concurrency": concurrency * nodes, "max_batch": max_batch,
        "group_commit": max_batch != 1, "bus": ready[0]["bus"], "loop": ready[0]["loop"],
        "coordinator": ready[0]["coordinator"], "per_node": results,
        "events_per_s": sum(r["events_per_s"] for r in results),
        "commands_per_s": sum(r["commands_per_s"] for r in results),
        "mean_batch": (sum(r["batched"] for r in results) / max(1, sum(r["batches"] for r in results))),
        "p50_ms": T.percentile([r["p50_ms"] for r in results], 50) if nodes > 1 else results[0]["p50_ms"],
        "p99_ms": max(r["p99_ms"] for r in results),
        "machine_busy_cores": statistics.fmean(r["machine_busy_cores"] for r in results),
        "node_cores": sum(r["node_cores"] for r in results),
        "postgres_cores": statistics.fmean(r["postgres_cores"] for r in results),
        "cpu_per_command_ms": statistics.fmean(r["cpu_per_command_ms"] for r in results),
        "errors": sum(sum(r["errors"].values()) for r in results),
        "conflicts": sum(r.get("conflicts", 0) for r in results),
        "incidents_in_state": results[0]["incidents_in_state"],
    }
    # correctness: the nodes agree, and every answered command's events are in the log exactly once
    doc["states_agree"] = len({(ck["seq"], ck["digest"]) for ck in checks}) == 1
    doc["log_seq"] = checks[0]["seq"]
    doc["appended_by_callers"] = sum(r["total_events"] for r in results)
    doc["log_growth"] = checks[0]["seq"] - head0
    doc["exactly_once"] = doc["appended_by_callers"] == doc["log_growth"]
    if after is not None:
        doc.update(after(url))
    T.log(f"    {doc['events_per_s']:,.0f} events/s, {doc['commands_per_s']:,.0f} commands/s, mean batch "
          f"{doc['mean_batch']:.1f}, p50 {doc['p50_ms']:.1f} ms, p99 {doc['p99_ms']:.1f} ms, busy cores "
          f"{doc['machine_busy_cores']:.2f} (nodes {doc['node_cores']:.2f}, postgres {doc['postgres_cores']:.2f}); "
          f"{doc['incidents_in_state']:,} incidents; per s {doc['per_node'][0]['events_per_second_series']}; states agree {doc['states_agree']}, exactly once {doc['exactly_once']}")
    return doc


def verify_log(url: str) -> dict[str, Any]:
    from datetime import datetime

    from coordinator.log import EventLog, make_engine

    engine = make_engine(url)
    try:
        check = EventLog(engine, lambda: datetime.now(UTC)).verify()
        return {"verify_ok": check.ok, "verify_checked": check.checked, "verify_reason": check.reason}
    finally:
        engine.dispose()


# ================================================================================================
# The peer: bare PostgreSQL, rows shaped as ours
# ================================================================================================
PEER_DDL = """
CREATE TABLE peer_events (
    seq bigint PRIMARY KEY, id varchar(36) NOT NULL UNIQUE, type varchar(64) NOT NULL,
    at timestamptz NOT NULL, stream varchar(128) NOT NULL, version integer NOT NULL,
    actor varchar(128) NOT NULL, data jsonb NOT NULL, incident_id varchar(64),
    prev_hash varchar(64) NOT NULL, hash varchar(64) NOT NULL,
    CONSTRAINT uq_peer_stream_version UNIQUE (stream, version));
CREATE INDEX ix_peer_at ON peer_events (at);
CREATE INDEX ix_peer_incident ON peer_events (incident_id);
"""
PEER_COLUMNS = "seq, id, type, at, stream, version, actor, data, incident_id, prev_hash, hash"


def conninfo(url: str) -> str:
    from sqlalchemy.engine import make_url
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def peer_samples(url: str, n: int = 200) -> list[tuple[dict, dict]]:
    """(IncidentReported, RecommendationMade) documents as the run wrote them."""
    import psycopg
    with psycopg.connect(conninfo(url)) as conn:
        rows = conn.execute("SELECT type, data::text FROM events WHERE type IN ('IncidentReported', "
                            "'RecommendationMade') ORDER BY seq DESC LIMIT %s", (2 * n,)).fetchall()
    reported = [json.loads(d) for t, d in rows if t == "IncidentReported"]
    made = [json.loads(d) for t, d in rows if t == "RecommendationMade"]
    return list(zip(reported, made))


def run_peer(url: str, samples: list[tuple[dict, dict]], sizes: list[int], duration: float) -> list[dict]:
    """Bare psycopg on one connection: ``size`` commands (2 rows each) per transaction, for ``duration`` s."""
    from datetime import datetime

    import psycopg
    from psycopg.types.json import Jsonb

    insert = f"INSERT INTO peer_events ({PEER_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
    out = []
    with psycopg.connect(conninfo(url), autocommit=True) as conn:
        conn.execute(PEER_DDL)
        seq = 0

        def rows_for(size: int, as_json: bool) -> list[tuple]:
            nonlocal seq
            now = datetime.now(UTC)
            rows = []
            for _ in range(size):
                reported, made = samples[seq % len(samples)]
                incident = str(uuid.uuid4())
                for version, (kind, data) in enumerate((("IncidentReported", reported), ("RecommendationMade", made)), 1):
                    seq += 1
                    doc = {**data, "incident_id": incident}
                    rows.append((seq, str(uuid.uuid4()), kind, now, f"incident/{incident}", version,
                                 "dispatcher:bench", json.dumps(doc) if as_json else Jsonb(doc), incident,
                                 "0" * 64, hashlib.sha256(str(seq).encode()).hexdigest()))
            return rows

        def once(method: str, size: int) -> None:
            with conn.transaction(), conn.cursor() as cur:
                if method == "executemany":
                    cur.executemany(insert, rows_for(size, False))
                else:
                    with cur.copy(f"COPY peer_events ({PEER_COLUMNS}) FROM STDIN") as copy:
                        for row in rows_for(size, True):
                            copy.write_row(row)

        for size in sizes:
            for method in ("executemany", "copy"):
                for _ in range(5):  # warm-up
                    once(method, size)
                lat, t_start = [], time.perf_counter()
                while time.perf_counter() - t_start < duration:
                    t0 = time.perf_counter()
                    once(method, size)
                    lat.append(time.perf_counter() - t0)
                wall = time.perf_counter() - t_start
                ms = sorted(x * 1000 for x in lat)
                out.append({"method": method, "commands_per_txn": size, "rows_per_txn": 2 * size,
                            "transactions": len(lat), "events_per_s": len(lat) * 2 * size / wall,
                            "commands_per_s": len(lat) * size / wall, "p50_ms": T.percentile(ms, 50),
                            "p99_ms": T.percentile(ms, 99), "max_ms": ms[-1]})
                T.log(f"    peer {method} {size} command(s)/txn: {out[-1]['events_per_s']:,.0f} rows/s, "
                      f"p50 {out[-1]['p50_ms']:.2f} ms")
        conn.execute("DROP TABLE peer_events")
    return out


# ================================================================================================
# Part A: the rounds
# ================================================================================================
def appends(args, admin: str) -> dict[str, Any]:
    from coordinator.node import MAX_BATCH

    configs: list[dict] = []
    peers: list[dict] = []
    profile_summary = None
    for rnd in range(args.rounds):
        flip = rnd % 2 == 1
        T.log(f"appends, round {rnd + 1} of {args.rounds}")
        batch_modes = [MAX_BATCH, 1] if not flip else [1, MAX_BATCH]
        if args.sqlite_concurrency:
            for conc in (args.sqlite_concurrency if not flip else list(reversed(args.sqlite_concurrency))):
                for mb in batch_modes:
                    with T.sqlite_url("cp-bench-cluster-") as url:
                        doc = run_nodes(url, "sqlite", 1, conc, mb, args)
                    doc["round"] = rnd + 1
                    configs.append(doc)
        if not args.pg:
            continue
        largest = max(args.concurrency)
        for conc in (args.concurrency if not flip else list(reversed(args.concurrency))):
            for mb in batch_modes:
                with T.postgres_url(admin, prefix="cp_bench_cluster") as url:
                    doc = run_nodes(url, "postgresql", 1, conc, mb, args)
                    doc["round"] = rnd + 1
                    configs.append(doc)
                    if conc == largest and mb != 1:  # the peer, same database, right after
                        batch = max(1, round(doc["mean_batch"]))
                        samples = peer_samples(url)
                        for p in run_peer(url, samples, sorted({1, batch}), args.peer_duration):
                            p.update(round=rnd + 1, ours_mean_batch=doc["mean_batch"])
                            peers.append(p)
        for conc in (args.two_node_concurrency if not flip else list(reversed(args.two_node_concurrency))):
            for mb in batch_modes:
                with T.postgres_url(admin, prefix="cp_bench_cluster") as url:
                    doc = run_nodes(url, "postgresql", 2, conc, mb, args, after=verify_log)
                doc["round"] = rnd + 1
                configs.append(doc)
    if args.profile and args.pg:
        T.log(f"profile: py-spy on one node, group commit, C={max(args.concurrency)}")
        out = T.RESULTS / f"{args.name}_profile.raw"
        T.RESULTS.mkdir(parents=True, exist_ok=True)
        with T.postgres_url(admin, prefix="cp_bench_cluster") as url:
            doc = run_nodes(url, "postgresql", 1, max(args.concurrency), MAX_BATCH, args, profile_out=out)
        doc["profiled"] = True
        profile_summary = {"run": doc, **summarise_profile(out, T.RESULTS / f"{args.name}_profile.txt")}
    return {"configs": configs, "peers": peers, "profile": profile_summary}


def summarise_profile(raw: Path, text_out: Path) -> dict[str, Any]:
    """Self and inclusive shares from py-spy's collapsed stacks; the top of both into a text file."""
    if not raw.exists():
        return {"error": "no profile written"}
    self_n, incl_n, total = Counter(), Counter(), 0
    threads = Counter()
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        total += n
        frames = stack.split(";")
        threads[frames[0]] += n
        self_n[frames[-1]] += n
        for f in set(frames):
            incl_n[f] += n
    lines = [f"py-spy record, {total} samples (all threads, idle excluded)", "", "threads:"]
    lines += [f"  {n / total:6.1%}  {name}" for name, n in threads.most_common(10)]
    lines += ["", "inclusive (top 45):"]
    lines += [f"  {n / total:6.1%}  {f}" for f, n in incl_n.most_common(45)]
    lines += ["", "self (top 30):"]
    lines += [f"  {n / total:6.1%}  {f}" for f, n in self_n.most_common(30)]
    text_out.write_text("\n".join(lines) + "\n")
    return {"samples": total, "file": str(text_out),
            "inclusive_top": [(f, n / total) for f, n in incl_n.most_common(45)],
            "self_top": [(f, n / total) for f, n in self_n.most_common(30)]}


# ================================================================================================
# Diagnostic: a report's CPU cost in the node, without a database, against the size of the live picture
# ================================================================================================
def decide_costs(sizes: list[int], samples: int, seed: int) -> list[dict]:
    """What the committer does per ReportIncident on the event loop, in this process with nothing else
    running: ``handlers.decide`` (and inside it ``possible_duplicates``, timed again on its own), ``number``
    (ids, canonical JSON, SHA-256 chain) and ``state.apply`` + ``fleet.observe`` (working state); with N
    incidents in the live picture (reports at random points, none closed, as in the append runs)."""
    import uuid as _uuid
    from datetime import datetime

    from agencies.demo import demo_bounds, generate_demo_city
    from agencies.plans import load_plans
    from coordinator import commands as c
    from coordinator import state as st
    from coordinator.app import policy
    from coordinator.catalog import Catalog
    from coordinator.dispatch import Fleet
    from coordinator.handlers import decide
    from coordinator.log import Head, format_at, number
    from coordinator.recommendations import possible_duplicates
    from coordinator.settings import Settings
    from geo import LatLon

    catalog = Catalog(generate_demo_city(), load_plans(), Fleet(), policy(Settings()))
    state = st.State()
    rng = random.Random(seed)
    types = sorted(catalog.plans.incident_types)
    west, south, east, north = demo_bounds()
    new_id = lambda: str(_uuid.uuid4())
    now = lambda: datetime.now(UTC)
    n = 0

    def report() -> c.ReportIncident:
        nonlocal n
        n += 1
        return c.ReportIncident(f"d-{n}", rng.choice(types), None,
                                LatLon(south + (north - south) * rng.uniform(0.1, 0.9),
                                       west + (east - west) * rng.uniform(0.1, 0.9)), format_at(now()))

    def commit(decision) -> list:
        records = number(decision, "dispatcher:bench", Head(state.seq, state.at, state.last_hash), now(), new_id)
        for rec in records:
            st.apply(state, rec)
            catalog.fleet.observe(rec, state)
        return records

    commit(decide(state, c.CommissionUnits(catalog.city.units), catalog))
    catalog.fleet.reset(state, {})
    out = []
    for size in sizes:
        while len(state.incidents) < size:
            commit(decide(state, report(), catalog))
        t_decide, t_dup, t_number, t_apply = [], [], [], []
        for _ in range(samples):
            cmd = report()
            kind = catalog.plans.incident_type(cmd.incident_type)
            t0 = time.perf_counter()
            possible_duplicates(state, cmd, kind, catalog)
            t1 = time.perf_counter()
            decision = decide(state, cmd, catalog)
            t2 = time.perf_counter()
            records = number(decision, "dispatcher:bench", Head(state.seq, state.at, state.last_hash), now(), new_id)
            t3 = time.perf_counter()
            for rec in records:
                st.apply(state, rec)
                catalog.fleet.observe(rec, state)
            t4 = time.perf_counter()
            t_dup.append(t1 - t0)
            t_decide.append(t2 - t1)
            t_number.append(t3 - t2)
            t_apply.append(t4 - t3)
        med = lambda xs: statistics.median(xs) * 1000
        row = {"incidents": size, "samples": samples, "decide_ms": med(t_decide),
               "possible_duplicates_ms": med(t_dup), "number_ms": med(t_number), "apply_ms": med(t_apply),
               "total_ms": med(t_decide) + med(t_number) + med(t_apply)}
        row["reports_per_core_s"] = 1000 / row["total_ms"]
        out.append(row)
        T.log(f"  decide cost at {size:,} incidents: decide {row['decide_ms']:.3f} ms (duplicates "
              f"{row['possible_duplicates_ms']:.3f}), number {row['number_ms']:.3f}, apply {row['apply_ms']:.3f}")
    return out


# ================================================================================================
# Part B: cross-node push
# ================================================================================================
class Serve:
    """``commandpost serve`` in its own process, production mode, from the run's copy of the code."""

    def __init__(self, name: str, env: dict[str, str]) -> None:
        self.name = name
        self.port = F.free_port()
        self.dir = tempfile.mkdtemp(prefix=f"cp-bench-cluster-{name}-")
        self.log_path = Path(self.dir) / "serve.log"
        full = {"CP_RATE_INTAKE_PER_MIN": "0", "CP_RATE_POSITION_PER_S": "0",  # load from few tokens: no limits
                **os.environ, **env, "CP_PORT": str(self.port), "CP_HOST": HOST, "CP_DATA_DIR": self.dir,
                "PYTHONPATH": CODE["dir"]}
        self.log_file = self.log_path.open("w")
        self.proc = subprocess.Popen([str(Path(sys.executable).parent / "commandpost"), "serve"], cwd=self.dir,
                                     env=full, stdout=self.log_file, stderr=subprocess.STDOUT)
        self.base = f"http://{HOST}:{self.port}"

    def tail(self) -> str:
        with contextlib.suppress(OSError):
            return self.log_path.read_text()[-3000:]
        return ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.log_file.close()
        shutil.rmtree(self.dir, ignore_errors=True)


async def ready(serve: Serve, token: str, timeout_s: float = 90) -> int:
    import httpx
    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient(base_url=serve.base, headers={"Authorization": f"Bearer {token}"}) as http:
        while True:
            if serve.proc.poll() is not None:
                raise RuntimeError(f"commandpost serve {serve.name} exited ({serve.proc.returncode}):\n{serve.tail()}")
            try:
                r = await http.get("/readyz")
                if r.status_code == 200 and r.json().get("status") == "ready":
                    return r.json()["seq"]
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"commandpost serve {serve.name} not ready within {timeout_s} s:\n{serve.tail()}")
            await asyncio.sleep(0.1)


def lat_doc(seconds: list[float]) -> dict[str, float]:
    ms = sorted(s * 1000 for s in seconds)
    if not ms:
        return {"n": 0, "p50_ms": float("nan"), "p99_ms": float("nan"), "max_ms": float("nan")}
    return {"n": len(ms), "p50_ms": T.percentile(ms, 50), "p90_ms": T.percentile(ms, 90),
            "p99_ms": T.percentile(ms, 99), "max_ms": ms[-1], "min_ms": ms[0], "mean_ms": statistics.fmean(ms)}


async def push(args, admin: str) -> dict[str, Any]:

    from agencies.demo import generate_demo_city
    from coordinator.auth import issue

    city = generate_demo_city()
    unit = next((u for u in city.units if u.id == args.push_unit), None)
    if unit is None:
        raise SystemExit(f"no unit {args.push_unit} in the demo city")
    location = {"lat": unit.home.lat, "lon": unit.home.lon}
    secret = secrets.token_urlsafe(24)
    prefix = new_prefix()
    now = int(time.time())
    dispatcher = issue(secret, "dispatcher", "bench-dispatcher", now)
    unit_token = issue(secret, "unit", unit.id, now, None, None, unit.id)
    servers: list[Serve] = []
    bare = None
    with T.postgres_url(admin, prefix="cp_bench_cluster") as url:
        env = {"CP_DATABASE_URL": url, "CP_REDIS_URL": args.redis_url, "CP_REDIS_PREFIX": prefix,
               "CP_SECRET": secret, "CP_AUTO_DISPATCH": "*:5"}
        try:
            servers.append(Serve("a", env))
            await ready(servers[0], dispatcher)  # A commissions the units; then B starts on the same log
            servers.append(Serve("b", env))
            heads = [await ready(servers[0], dispatcher), await ready(servers[1], dispatcher)]
            bare = F.Server("bare")
            T.log(f"push: nodes on ports {servers[0].port}, {servers[1].port} (pids {servers[0].proc.pid}, "
                  f"{servers[1].proc.pid}); bare websocket server pid {bare.pid}; unit {unit.id}")
            return await push_rounds(args, servers, heads, bare, dispatcher, unit_token, unit.id, location,
                                     args.redis_url, prefix)
        finally:
            if bare is not None:
                bare.stop()
            for s in servers:
                s.stop()
            with contextlib.suppress(Exception):
                redis_cleanup(args.redis_url, prefix)


async def push_rounds(args, servers, heads, bare, dispatcher, unit_token, unit_id, location, redis_url,
                      prefix) -> dict[str, Any]:
    import httpx
    import redis.asyncio as aredis
    from websockets.asyncio.client import connect

    queues = [asyncio.Queue(), asyncio.Queue()]
    bare_q: asyncio.Queue = asyncio.Queue()
    samples = defaultdict(list)
    cpu0 = [F.cpu_s(s.proc.pid) for s in servers]
    unit_msgs = Counter()

    async def reader(ws, q) -> None:
        async for message in ws:
            q.put_nowait((time.time(), message))

    async def wait_for(q, kind: str, incident_id: str) -> float:
        while True:
            now, text = await asyncio.wait_for(q.get(), 10)
            msg = json.loads(text)
            unit_msgs[msg.get("type")] += 1
            if msg.get("type") == kind and msg.get("data", {}).get("incident_id") == incident_id:
                return now

    # Redis peer: a reader blocked in XREAD on its own connection; the writer XADDs a hint-sized message.
    rkey = f"{prefix}:peer"
    r_writer = aredis.from_url(redis_url)
    r_reader = aredis.from_url(redis_url, socket_timeout=5)
    r_q: asyncio.Queue = asyncio.Queue()

    async def redis_reader() -> None:
        last = "$"
        while True:
            reply = await r_reader.xread({rkey: last}, block=1000, count=10)
            now = time.time()
            for _stream, entries in reply or ():
                for entry_id, fields in entries:
                    last = entry_id
                    r_q.put_nowait((now, fields[b"m"]))

    hint = json.dumps({"node": uuid.uuid4().hex[:12], "seq": 123456}, separators=(",", ":"))
    assigned_text = None  # a real UnitAssigned message, captured in the first round, for the websocket peer

    async with httpx.AsyncClient(base_url=servers[0].base, headers={"Authorization": f"Bearer {dispatcher}"},
                                 timeout=30) as http_a, \
            httpx.AsyncClient(base_url=servers[1].base, headers={"Authorization": f"Bearer {dispatcher}"},
                              timeout=30) as http_b, \
            connect(f"ws://{HOST}:{servers[0].port}/v1/units/{unit_id}/stream?after={heads[0]}",
                    additional_headers={"Authorization": f"Bearer {unit_token}"}, compression=None) as ws_a, \
            connect(f"ws://{HOST}:{servers[1].port}/v1/units/{unit_id}/stream?after={heads[1]}",
                    additional_headers={"Authorization": f"Bearer {unit_token}"}, compression=None) as ws_b, \
            connect(f"ws://{HOST}:{bare.port}/", compression=None, max_size=None) as bare_console, \
            connect(f"ws://{HOST}:{bare.port}/publish", compression=None, max_size=None) as bare_pub:
        https = [http_a, http_b]
        tasks = [asyncio.create_task(reader(ws_a, queues[0])), asyncio.create_task(reader(ws_b, queues[1])),
                 asyncio.create_task(reader(bare_console, bare_q)), asyncio.create_task(redis_reader())]
        await asyncio.sleep(0.3)  # the sockets' first replay, the XREAD in place
        for q in (*queues, bare_q):
            while not q.empty():
                q.get_nowait()
        warm = 5
        try:
            for i in range(args.push_rounds + warm):
                src = i % 2  # the node that takes the report; the other one is "cross"
                t0 = time.time()
                r = await https[src].post("/v1/incidents", json={"type": args.push_type, "location": location,
                                                                 "description": f"bench cluster round {i}"})
                t1 = time.time()
                if r.status_code != 201:
                    raise RuntimeError(f"POST /v1/incidents on node {'ab'[src]} answered {r.status_code}: {r.text[:300]}")
                body = r.json()
                incident_id = body["id"]
                if not any(a["unit_id"] == unit_id for a in body.get("assignments", [])):
                    raise RuntimeError(f"round {i}: the report did not assign {unit_id} at intake (assigned: "
                                       f"{[a['unit_id'] for a in body.get('assignments', [])]}, possible duplicates "
                                       f"{body.get('possible_duplicate_of')}); check CP_AUTO_DISPATCH and the unit")
                same_t = await wait_for(queues[src], "UnitAssigned", incident_id)
                cross_t = await wait_for(queues[1 - src], "UnitAssigned", incident_id)
                if i >= warm:
                    samples["same"].append(same_t - t0)
                    samples["cross"].append(cross_t - t0)
                    samples["cross_from_201"].append(cross_t - t1)
                    samples["same_from_201"].append(same_t - t1)
                    samples["post"].append(t1 - t0)
                    samples[f"cross_{'ab'[src]}_to_{'ab'[1 - src]}"].append(cross_t - t0)
                r = await https[src].post(f"/v1/incidents/{incident_id}/close")
                if r.status_code != 200:
                    raise RuntimeError(f"close answered {r.status_code}: {r.text[:300]}")
                await wait_for(queues[0], "AssignmentEnded", incident_id)
                await wait_for(queues[1], "AssignmentEnded", incident_id)
                # the peers, interleaved with the rounds
                t0 = time.time()
                await r_writer.xadd(rkey, {"m": hint}, maxlen=10_000, approximate=True)
                t_arr, _ = await asyncio.wait_for(r_q.get(), 10)
                if i >= warm:
                    samples["redis_hop"].append(t_arr - t0)
                if assigned_text is None:
                    assigned_text = json.dumps({"seq": 1, "id": str(uuid.uuid4()), "type": "UnitAssigned",
                                                "at": "2026-11-27T00:00:00.000000Z", "stream": f"unit/{unit_id}",
                                                "version": 2, "actor": "dispatcher:bench",
                                                "data": {"incident_id": incident_id, "unit_id": unit_id,
                                                         "assignment_id": str(uuid.uuid4())},
                                                "prev_hash": "0" * 64, "hash": "f" * 64}, separators=(",", ":"))
                t0 = time.time()
                await bare_pub.send(assigned_text)
                t_arr, _ = await asyncio.wait_for(bare_q.get(), 10)
                if i >= warm:
                    samples["ws_hop"].append(t_arr - t0)
                if await bare_pub.recv() != "ok":
                    raise RuntimeError("bare server did not answer ok")
                await asyncio.sleep(args.push_gap)
        finally:
            for t in tasks:
                t.cancel()
            for t in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await t
            await r_writer.delete(rkey)
            await r_writer.aclose()
            await r_reader.aclose()
    cpu = [F.cpu_s(s.proc.pid) - c0 for s, c0 in zip(servers, cpu0)]
    return {"rounds": args.push_rounds, "push_type": args.push_type, "unit": unit_id,
            "latency": {k: lat_doc(v) for k, v in samples.items()}, "server_cpu_s": cpu,
            "unit_messages_seen": dict(unit_msgs)}


# ================================================================================================
# Report
# ================================================================================================
def aggregate(configs: list[dict]) -> list[dict]:
    """Per configuration over the rounds: median rates, the latencies' worst p99 and median p50."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for d in configs:
        groups[(d["backend"], d["nodes"], d["concurrency_per_node"], d["max_batch"])].append(d)
    out = []
    for (backend, nodes, conc, mb), ds in groups.items():
        out.append({"backend": backend, "nodes": nodes, "concurrency_per_node": conc, "concurrency": conc * nodes,
                    "max_batch": mb, "rounds": len(ds),
                    "events_per_s": statistics.median(d["events_per_s"] for d in ds),
                    "events_per_s_runs": [round(d["events_per_s"]) for d in ds],
                    "commands_per_s": statistics.median(d["commands_per_s"] for d in ds),
                    "mean_batch": statistics.median(d["mean_batch"] for d in ds),
                    "p50_ms": statistics.median(d["p50_ms"] for d in ds),
                    "p99_ms": statistics.median(d["p99_ms"] for d in ds),
                    "p99_ms_runs": [round(d["p99_ms"], 1) for d in ds],
                    "cpu_per_command_ms": statistics.median(d["cpu_per_command_ms"] for d in ds),
                    "machine_busy_cores": statistics.median(d["machine_busy_cores"] for d in ds),
                    "node_cores": statistics.median(d["node_cores"] for d in ds),
                    "postgres_cores": statistics.median(d["postgres_cores"] for d in ds),
                    "others_cores": statistics.median(d["machine_busy_cores"] - d["node_cores"] - d["postgres_cores"]
                                                      for d in ds),
                    "errors": sum(d["errors"] for d in ds),
                    "checks_ok": all(d["states_agree"] and d["exactly_once"] and d.get("verify_ok", True) for d in ds)})
    order = {"postgresql": 0, "sqlite": 1}
    out.sort(key=lambda r: (order[r["backend"]], r["nodes"], r["concurrency_per_node"], r["max_batch"] == 1))
    return out


def breakdown_rows(configs: list[dict]) -> list[tuple]:
    """Where a batch's time goes, per command (ms), for the PostgreSQL one-node runs (last round)."""
    rows = []
    last = max((d["round"] for d in configs), default=0)
    for d in configs:
        if d["round"] != last or d["backend"] != "postgresql" or d["nodes"] != 1:
            continue
        r = d["per_node"][0]
        b = r["breakdown"]
        n = max(1, r["batched"])

        def get(k: str, b=b, n=n) -> float:
            return b.get(k, {}).get("s", 0.0) * 1000 / n

        rows.append((d["concurrency"], "on" if d["group_commit"] else "off", r["mean_batch"],
                     get("begin (lock, head, gap)"), get("decide batch (on the loop)"),
                     get("  of which possible_duplicates"), get("  of which recommendation_for"),
                     get("commit (insert + COMMIT)"), get("apply committed (on the loop)"),
                     1000 / r["commands_per_s"] if r["commands_per_s"] else float("nan"), r["cpu_per_command_ms"],
                     r["machine_busy_cores"], r["incidents_in_state"]))
    rows.sort(key=lambda x: (x[0], x[1]))
    return rows


WORKLOADS = {"reports": "ReportIncident -> 2 events",
             "dispatch": "a call's life: report, assign the recommended units, ack, en route, on scene, close; "
                         "a 409 for a unit another call took first is counted apart, not an error"}


def print_report(doc: dict[str, Any]) -> None:
    a = doc.get("appends")
    if a:
        agg = doc["appends_summary"]
        print(T.table(
            ["backend", "nodes", "C", "group commit", "events/s", "commands/s", "mean batch", "p50 ms", "p99 ms",
             "CPU ms/cmd", "cores: node", "postgres", "other", "runs events/s", "checks"],
            [(r["backend"], r["nodes"], r["concurrency"], "on" if r["max_batch"] != 1 else "off", r["events_per_s"],
              r["commands_per_s"], r["mean_batch"], r["p50_ms"], r["p99_ms"], r["cpu_per_command_ms"],
              r["node_cores"], r["postgres_cores"], r["others_cores"], "/".join(f"{x:,}" for x in r["events_per_s_runs"]),
              "ok" if r["checks_ok"] and not r["errors"] else f"FAIL ({r['errors']} errors)") for r in agg],
            title=f"A. Appends under concurrent intake ({WORKLOADS[doc.get('workload', 'reports')]}; median over "
                  f"rounds; p99: median of the rounds' p99)"))
        if a["peers"]:
            print()
            peers = defaultdict(list)
            for p in a["peers"]:
                peers[(p["method"], p["commands_per_txn"])].append(p)
            print(T.table(["peer (bare psycopg, 1 connection)", "commands/txn", "rows/txn", "events/s", "p50 ms",
                           "p99 ms", "runs events/s"],
                          [(f"bare {m}", s, 2 * s, statistics.median(p["events_per_s"] for p in ps),
                            statistics.median(p["p50_ms"] for p in ps), statistics.median(p["p99_ms"] for p in ps),
                            "/".join(f"{p['events_per_s']:,.0f}" for p in ps))
                           for (m, s), ps in sorted(peers.items(), key=lambda kv: (kv[0][1], kv[0][0]))],
                          title="Peer: bare PostgreSQL, same rows, same database, right after ours (per round)"))
        if doc.get("ratios"):
            print()
            print(T.table(["ours", "peer", "ours events/s", "peer events/s", "ours/peer"],
                          [(r["ours"], r["peer"], r["ours_events_per_s"], r["peer_events_per_s"], r["ratio"])
                           for r in doc["ratios"]], title="Ours / peer (same round, then median)"))
        rows = breakdown_rows(a["configs"])
        if rows:
            print()
            print(T.table(["C", "group", "mean batch", "begin ms", "decide ms", " dup ms", " recommend ms",
                           "commit ms", "apply ms", "wall ms/cmd", "CPU ms/cmd", "busy cores", "incidents"],
                          rows, title="Where the time goes, PostgreSQL one node (ms per command; last round)"))
    if doc.get("decide_costs"):
        print()
        print(T.table(["incidents in picture", "decide ms", " of which duplicates ms", "number ms", "apply ms",
                       "total ms", "reports/s per core", "events/s per core"],
                      [(r["incidents"], r["decide_ms"], r["possible_duplicates_ms"], r["number_ms"], r["apply_ms"],
                        r["total_ms"], r["reports_per_core_s"], 2 * r["reports_per_core_s"]) for r in doc["decide_costs"]],
                      title="A report's CPU in the node, in-process, no database (medians)"))
    p = doc.get("push")
    if p:
        print()
        names = [("cross", "intake on one node -> UnitAssigned on the other node's unit socket"),
                 ("same", "intake -> UnitAssigned on the same node's unit socket"),
                 ("cross_from_201", "cross-node, from the POST's 201 (negative: push came first)"),
                 ("post", "POST /v1/incidents (auto-dispatch) request time"),
                 ("redis_hop", "peer: bare Redis Streams hop (XADD -> blocked XREAD)"),
                 ("ws_hop", "peer: bare websocket hop (send -> broadcast -> receive)")]
        print(T.table(["latency", "n", "p50 ms", "p90 ms", "p99 ms", "max ms"],
                      [(label, p["latency"][k]["n"], p["latency"][k]["p50_ms"], p["latency"][k].get("p90_ms"),
                        p["latency"][k]["p99_ms"], p["latency"][k]["max_ms"]) for k, label in names if k in p["latency"]],
                      title=f"B. Cross-node push ({p['rounds']} rounds, {p['push_type']} at {p['unit']}'s station, "
                            f"reports alternating between the nodes)"))
    if doc.get("verdicts"):
        print()
        print(T.table(["target", "measured", "verdict"], [(v["target"], v["measured"], v["verdict"])
                                                           for v in doc["verdicts"]], title="Verdicts (issue 5)"))


def ratios_and_verdicts(doc: dict[str, Any]) -> None:
    a = doc.get("appends")
    ratios, verdicts = [], []
    if a and a["peers"]:
        for rnd in sorted({p["round"] for p in a["peers"]}):
            ours_on = [d for d in a["configs"] if d["round"] == rnd and d["backend"] == "postgresql"
                       and d["nodes"] == 1 and d["group_commit"]]
            ours_on = max(ours_on, key=lambda d: d["concurrency"])
            ours_off = [d for d in a["configs"] if d["round"] == rnd and d["backend"] == "postgresql"
                        and d["nodes"] == 1 and not d["group_commit"] and d["concurrency"] == ours_on["concurrency"]]
            ours_c1 = [d for d in a["configs"] if d["round"] == rnd and d["backend"] == "postgresql"
                       and d["nodes"] == 1 and d["concurrency"] == 1 and not d["group_commit"]]
            ps = [p for p in a["peers"] if p["round"] == rnd]
            batch = max(p["commands_per_txn"] for p in ps)
            for method in ("executemany", "copy"):
                pb = next(p for p in ps if p["method"] == method and p["commands_per_txn"] == batch)
                ratios.append({"round": rnd, "ours": f"1 node, group commit, C={ours_on['concurrency']} (mean batch "
                                                     f"{ours_on['mean_batch']:.1f})",
                               "peer": f"bare {method}, {batch} commands/txn", "ours_events_per_s": ours_on["events_per_s"],
                               "peer_events_per_s": pb["events_per_s"], "ratio": ours_on["events_per_s"] / pb["events_per_s"]})
            p1 = next(p for p in ps if p["method"] == "executemany" and p["commands_per_txn"] == 1)
            for d in ours_off + ours_c1:
                ratios.append({"round": rnd, "ours": f"1 node, no group commit, C={d['concurrency']}",
                               "peer": "bare executemany, 1 command/txn", "ours_events_per_s": d["events_per_s"],
                               "peer_events_per_s": p1["events_per_s"], "ratio": d["events_per_s"] / p1["events_per_s"]})
        merged = defaultdict(list)
        for r in ratios:
            merged[(r["ours"].split(" (")[0], r["peer"])].append(r)
        doc["ratios_by_round"] = ratios
        doc["ratios"] = [{"ours": k[0], "peer": k[1],
                          "ours_events_per_s": statistics.median(r["ours_events_per_s"] for r in rs),
                          "peer_events_per_s": statistics.median(r["peer_events_per_s"] for r in rs),
                          "ratio": statistics.median(r["ratio"] for r in rs)} for k, rs in merged.items()]
    if a:
        agg = doc["appends_summary"]
        for nodes in (1, 2):
            pg = [r for r in agg if r["backend"] == "postgresql" and r["nodes"] == nodes and r["concurrency"] > 1]
            if pg:
                best = max(pg, key=lambda r: r["events_per_s"])
                verdicts.append({"target": f">= 5,000 events/s appended under concurrent intake, PostgreSQL, "
                                           f"{nodes} node{'s' if nodes > 1 else ''}",
                                 "measured": f"{best['events_per_s']:,.0f} events/s (C={best['concurrency']}, group "
                                             f"commit {'on' if best['max_batch'] != 1 else 'off'}, p99 "
                                             f"{best['p99_ms']:.0f} ms)",
                                 "verdict": F.verdict(best["events_per_s"] >= EVENTS_TARGET)})
    p = doc.get("push")
    if p:
        cross = p["latency"]["cross"]
        verdicts.append({"target": "cross-node push p99 <= 100 ms",
                         "measured": f"p99 {cross['p99_ms']:.1f} ms, p50 {cross['p50_ms']:.1f} ms ({cross['n']} rounds)",
                         "verdict": F.verdict(cross["p99_ms"] <= PUSH_P99_TARGET_MS)})
    doc["verdicts"] = verdicts


# ================================================================================================
def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="a short smoke run (seconds, not minutes)")
    p.add_argument("--duration", type=float, default=10.0, help="measured seconds per configuration")
    p.add_argument("--warmup", type=float, default=2.0, help="unmeasured seconds before each window")
    p.add_argument("--rounds", type=int, default=2, help="rounds over all configurations (order flips each round)")
    p.add_argument("--concurrency", default="1,16,64,256", help="callers, one node, PostgreSQL")
    p.add_argument("--two-node-concurrency", default="64,256", help="callers per node, two nodes ('' for none)")
    p.add_argument("--sqlite-concurrency", default="1,64,256", help="callers, one node, SQLite ('' for none)")
    p.add_argument("--peer-duration", type=float, default=3.0, help="seconds per bare PostgreSQL line")
    p.add_argument("--push-rounds", type=int, default=200)
    p.add_argument("--push-type", default="structure_fire")
    p.add_argument("--push-unit", default="E1")
    p.add_argument("--push-gap", type=float, default=0.02)
    p.add_argument("--decide-sizes", default="0,1000,5000,20000",
                   help="incidents in the live picture for the in-process decide-cost diagnostic ('' to skip)")
    p.add_argument("--decide-samples", type=int, default=300)
    p.add_argument("--profile", action="store_true", help="one more one-node run under py-spy record")
    p.add_argument("--skip-appends", action="store_true")
    p.add_argument("--skip-push", action="store_true")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--name", default="cluster", help="results go to bench/results/<name>.json")
    p.add_argument("--pg-url", default=None, help=f"admin URL (env CP_BENCH_PG_URL, default {T.DEFAULT_PG_URL})")
    p.add_argument("--redis-url", default=os.environ.get("CP_BENCH_REDIS_URL", DEFAULT_REDIS))
    # internal: the node processes
    p.add_argument("--role", choices=("driver", "append-worker"), default="driver", help=argparse.SUPPRESS)
    p.add_argument("--workload", choices=("reports", "dispatch"), default="reports",
                   help="reports: callers only report (2 events each, every one a recommendation); dispatch: each "
                        "caller also assigns the recommended units, the crews acknowledge, go en route and arrive, "
                        "and the incident is closed (a call's whole life in the log)")
    p.add_argument("--url", help=argparse.SUPPRESS)
    p.add_argument("--prefix", default="", help=argparse.SUPPRESS)
    p.add_argument("--max-batch", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--node-index", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--src", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.role == "append-worker":
        args.concurrency = int(args.concurrency)
        return worker(args)

    if args.quick:
        args.duration, args.warmup, args.rounds = 3.0, 1.0, 1
        args.concurrency, args.two_node_concurrency, args.sqlite_concurrency = "1,64", "64", "64"
        args.peer_duration, args.push_rounds = 1.0, 30
        args.decide_sizes, args.decide_samples = "0,2000", 100
        args.name = args.name if args.name != "cluster" else "cluster_quick"
    parse = lambda s: [int(x) for x in s.split(",") if x.strip()]
    args.concurrency = parse(args.concurrency)
    args.two_node_concurrency = parse(args.two_node_concurrency)
    args.sqlite_concurrency = parse(args.sqlite_concurrency)
    args.decide_sizes = parse(args.decide_sizes)

    t_start = time.perf_counter()
    admin = T.pg_admin_url(args.pg_url)
    machine = T.machine()
    machine["postgresql"] = T.pg_version(admin)
    args.pg = machine["postgresql"] is not None
    if not args.pg:
        T.log(f"PostgreSQL not reachable at {admin}: only the SQLite lines run")
    with contextlib.suppress(Exception):
        import redis
        client = redis.Redis.from_url(args.redis_url)
        machine["redis"] = client.info("server")["redis_version"]
        client.close()
    import psycopg
    import websockets
    machine.update(psycopg=psycopg.__version__, websockets=websockets.__version__)
    src, code = F.snapshot_code(None)
    for name in ("coordinator/recommendations.py", "coordinator/state.py", "coordinator/events.py",
                 "coordinator/bus.py", "agencies/recommend.py"):
        if (src / name).exists():
            code["sources"][name] = hashlib.sha256((src / name).read_bytes()).hexdigest()[:12]
    CODE["dir"] = str(src)
    sys.path.insert(0, str(src))  # the driver's own imports (MAX_BATCH, tokens, the city) from the same copy
    machine.update(code=code["code"], commit=code["commit"])
    T.log(f"measuring {code['code']}" + (f" ({', '.join(code['uncommitted'])})" if code.get("uncommitted") else ""))
    doc: dict[str, Any] = {"machine": machine, "code": code, "workload": args.workload,
                           "args": {k: v for k, v in vars(args).items() if k not in ("url", "src", "prefix")}}
    try:
        if not args.skip_appends:
            doc["appends"] = appends(args, admin)
            doc["appends_summary"] = aggregate(doc["appends"]["configs"])
        if not args.skip_push and args.pg:
            doc["push"] = asyncio.run(push(args, admin))
        if args.decide_sizes:
            T.log("decide cost, in-process, no database")
            doc["decide_costs"] = decide_costs(args.decide_sizes, args.decide_samples, args.seed)
    finally:
        shutil.rmtree(src, ignore_errors=True)
    ratios_and_verdicts(doc)
    doc["run_s"] = time.perf_counter() - t_start
    print()
    print_report(doc)
    path = T.write_json(args.name, doc)
    T.log(f"wrote {path} ({doc['run_s']:.0f} s)")


if __name__ == "__main__":
    main()
