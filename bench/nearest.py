"""The nearest-unit query, the multi-agency recommendation and position updates, next to PostGIS and Redis.

All subjects of a part run on the same data in the same run, interleaved in alternating rounds.

Part 1, "the 5 nearest available units with capability X" from random incident points, for fleets of
``--sizes`` units (default 1,000 / 10,000 / 100,000) placed uniformly at random in a 30 km x 30 km
square centred at 37.7 N, -122.25 (``--city-km``), unit types in the demo city's mix (patrol 48, als 24,
engine 18, bls 16, ... of 147), each unit of its kind's demo agency, 80 % available (``--available``):

  * ours: ``FleetIndex.nearest(capability, point, 5)`` in-process (an available unit is put under its
    capabilities, a busy one under none, as ``coordinator.dispatch.Fleet`` does);
  * PostGIS: one row per (unit, capability): ``units(id, capability, available, pos geography(Point,4326))``
    with a GiST index on ``pos`` (and a btree on ``id`` for part 3), queried with
    ``SELECT id FROM units WHERE capability = %s AND available ORDER BY pos <-> ST_MakePoint(lon, lat)::geography
    LIMIT 5`` as a prepared statement over one persistent psycopg connection (autocommit), after ANALYZE.
    Also the same rows in ``units_cap`` with a partial GiST index on ``(capability, pos) WHERE available``
    (btree_gist), the best index for this query;
  * Redis: one geo set per capability holding the available units (plus one set of every unit's position,
    not queried), queried over one redis-py connection with
    ``GEOSEARCH key FROMLONLAT lon lat BYRADIUS r m ASC COUNT 5``, r starting at 1.5x the radius that holds
    5 units at the capability's average density and doubled while fewer than 5 come back (as a caller must);
    and with ``BYBOX`` of twice the city's side (one round trip, the whole city in range).

Capability X is drawn per query from the capabilities the run cards ask for, weighted by the call mix of
``_history.MIX`` (``--mix calls``, default) or uniformly (``--mix uniform``). Every query's result sets are
compared: same 5 ids, same order, and for the differences whether the units that differ lie within
1 m + 0.01 % of ours' 5th distance (a near tie: Redis stores positions as 52-bit geohashes, ~0.3 m).
PostGIS ``<->`` on geography is the distance on the sphere of mean radius 6,371,008.8 m, the same sphere
as ours; a sample (``--spheroid-sample``) is also ordered by ``ST_Distance(pos, q)`` (the spheroid, no index)
to show what ranking on the spheroid would change.

Part 2, a full multi-agency recommendation with ``--rec-units`` units (default 10,000): the demo city's
agencies, stations and districts scaled ``--city-scale`` times about its centre (default 2.5: 30 km), the
units placed at random inside it, homed at their agency's nearest station, 80 % available and the busy
ones assigned two by two to open incidents reported in the last 40 minutes. A ``coordinator.dispatch.Fleet``
is reset from the State those events fold to. Timed per call, the same random points and incident types
(``--rec-per-type`` of each of the plans' incident types, shuffled):

  * ``jurisdiction.responsible`` + ``recommendations.recommendation_for`` (what ``current_recommendation`` runs);
  * ``handlers.decide(state, ReportIncident)`` (the whole intake decision, duplicates scan and
    RecommendationMade event included);
  * ``handlers.current_recommendation`` for random open incidents.

The target is p99 <= 1 ms; p99 is given over the types uniformly and weighted by the call mix. Each call's
CPU time (``time.thread_time``) is recorded beside its wall time, so a tail made by other processes on a
shared machine can be told from the code's own, and so is whether a gen 1/2 collection ran inside it. The
results are dropped as soon as made, as a service would (keeping 7,200 recommendations alive filled the
young generations and put ~0.8 ms gen 1 passes into ~0.5 % of the calls). The first ``--check``
recommendations are re-made from a brute-force ``CandidateList`` of every available unit and must pick
the same units and coverage cost.

Part 3, position updates absorbed, at ``--move-sizes`` units (default 10,000 and 100,000): random units
drive 3-40 m per update on a heading that wanders (a few % of updates cross a 500 m cell). Ours:
``FleetIndex.move`` (part 1's index) and ``Fleet.move`` (the service's adapter: capabilities and
agency/capability tags) with prebuilt ``LatLon``s, throughput over blocks of 1,000 and latency per call;
peers: Redis GEOADD of the unit's sets (its position set, and its capability sets when available), one
update per round trip and 100 updates per pipeline; PostGIS ``UPDATE units SET pos = ... WHERE id = %s``,
one statement per update, autocommit (each updates the unit's ~2.5 rows). Target >= 20,000 updates/s.

    .venv/bin/python bench/nearest.py [--sizes 1000,10000,100000] [--queries 2000] [--warmup 200] [--rounds 4]
                                      [--parts 1,2,3] [--mix calls|uniform] [--spheroid-sample 200]
                                      [--rec-units 10000] [--rec-per-type 100] [--city-scale 2.5] [--check 30]
                                      [--move-sizes 10000,100000] [--moves 200000] [--move-latency 40000]
                                      [--redis-moves 5000] [--redis-batched-moves 50000] [--pg-moves 2000]
                                      [--seed 1] [--pg-url URL] [--redis-url URL] [--profile]

PostgreSQL: a fresh ``cp_bench_nearest_<pid>_<rand>`` database next to the admin URL (``--pg-url``, else
``CP_BENCH_PG_URL``, else the default), with the postgis and btree_gist extensions, dropped at the end.
Redis (``--redis-url``, else ``CP_BENCH_REDIS_URL``, else ``redis://127.0.0.1:6379/0``): keys under a
``cp_bench_nearest:<pid>_<rand>:`` prefix, deleted at the end. An unreachable peer is skipped with a message.
Prints a table per part; writes bench/results/nearest.json, with a hash of each measured source file (and with
``--profile``, which needs pyinstrument, bench/results/nearest_profile.txt). The default run takes about a
minute on a 2-core machine.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import hashlib
import math
import os
import random
import statistics
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Self

import _history as H
import _timing as T
from shapely import affinity

from agencies.city import City, UnitSpec
from agencies.demo import CENTRE as DEMO_CENTRE
from agencies.demo import demo_bounds, generate_demo_city
from agencies.model import Station
from agencies.plans import Plans, load_plans
from agencies.recommend import Candidate, CandidateList
from coordinator import commands as cmds
from coordinator import events as ev
from coordinator import state as st
from coordinator.dispatch import Fleet
from coordinator.handlers import Catalog, Policy, current_recommendation, decide
from coordinator.recommendations import recommendation_for
from coordinator.log import format_at
from geo import District, DistrictIndex, FleetIndex, LatLon, haversine_m
from tests.builders import record

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
CENTRE = LatLon(37.7, -122.25)
M_PER_DEG_LAT = 111_320.0
K = 5
NOW = datetime(2026, 11, 27, 12, 0, 0, tzinfo=UTC)
REC_TARGET_MS = 1.0
MOVE_TARGET_PER_S = 20_000.0
SOURCES = ("geo/fleet.py", "geo/coords.py", "geo/districts.py", "geo/travel.py", "agencies/recommend.py",
           "agencies/jurisdiction.py", "coordinator/dispatch.py", "coordinator/handlers.py", "coordinator/state.py")

PG_QUERY = ("SELECT id FROM {table} WHERE capability = %s AND available "
            "ORDER BY pos <-> ST_MakePoint(%s, %s)::geography LIMIT 5")
PG_SPHEROID = ("SELECT id FROM units WHERE capability = %s AND available "
               "ORDER BY ST_Distance(pos, ST_MakePoint(%s, %s)::geography, true), id LIMIT 5")
PG_UPDATE = "UPDATE units SET pos = ST_MakePoint(%s, %s)::geography WHERE id = %s"


# -- numbers -------------------------------------------------------------------------------------
def summary_us(seconds: Sequence[float]) -> dict[str, float]:
    us = [s * 1e6 for s in seconds]
    return {"n": len(us), "median_us": statistics.median(us), "p99_us": T.percentile(us, 99),
            "max_us": max(us)}


def weighted_percentile(pairs: Sequence[tuple[float, float]], q: float) -> float:
    """(value, weight) pairs; the smallest value whose cumulative weight reaches q % of the total."""
    ordered = sorted(pairs)
    total = sum(w for _, w in ordered)
    acc = 0.0
    for value, weight in ordered:
        acc += weight
        if acc >= total * q / 100.0:
            return value
    return ordered[-1][0]


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


# -- the city and its fleet ----------------------------------------------------------------------
def square(centre: LatLon, size_m: float) -> tuple[float, float, float, float]:
    half_lat = size_m / 2 / M_PER_DEG_LAT
    half_lon = size_m / 2 / (M_PER_DEG_LAT * math.cos(math.radians(centre.lat)))
    return centre.lon - half_lon, centre.lat - half_lat, centre.lon + half_lon, centre.lat + half_lat


@dataclass(slots=True)
class BenchUnit:
    id: str
    type: str
    agency: str
    caps: tuple[str, ...]
    available: bool
    lat: float
    lon: float


def type_mix() -> dict[str, int]:
    """The demo city's unit types and how many of each it fields (147 units)."""
    return dict(sorted(Counter(u.type for u in generate_demo_city().units).items()))


def agency_of_kind() -> dict[str, str]:
    return {str(a.kind): a.id for a in generate_demo_city().agencies}


def make_units(rng: random.Random, n: int, bounds, plans: Plans, available: float) -> list[BenchUnit]:
    mix = type_mix()
    types, weights = list(mix), list(mix.values())
    agencies = agency_of_kind()
    west, south, east, north = bounds
    units = []
    for i, unit_type in enumerate(rng.choices(types, weights, k=n)):
        ut = plans.unit_type(unit_type)
        units.append(BenchUnit(f"U{i:06d}", unit_type, agencies[str(ut.kind)], tuple(sorted(ut.capabilities)),
                               rng.random() < available, rng.uniform(south, north), rng.uniform(west, east)))
    return units


def capability_weights(plans: Plans, mix: str) -> dict[str, float]:
    """Capabilities the run cards ask for, weighted by how often the call mix asks for each."""
    weights: dict[str, float] = defaultdict(float)
    for type_id, incident_type in plans.incident_types.items():
        for line in incident_type.plan.lines:
            weights[line.capability] += 1.0 if mix == "uniform" else H.MIX.get(type_id, 0.5)
    if mix == "uniform":
        return {c: 1.0 for c in sorted(weights)}
    return dict(sorted(weights.items()))


def state_of(units: Sequence[BenchUnit], homes: dict[str, tuple[str | None, LatLon]] | None = None,
             incidents: Sequence[tuple[ev.IncidentReported, list[str]]] = ()) -> st.State:
    """The State after the units are commissioned (busy ones put en route or on scene, on the given
    incidents if any), built from events as the node would fold them."""
    events: list[ev.Event] = []
    for u in units:
        station, home = (homes or {}).get(u.id, (None, LatLon(u.lat, u.lon)))
        events.append(ev.UnitCommissioned(unit_id=u.id, agency_id=u.agency, unit_type=u.type,
                                          capabilities=list(u.caps), station_id=station, home=home.to_json()))
    assigned = set()
    for n, (reported, unit_ids) in enumerate(incidents):
        events.append(reported)
        for j, unit_id in enumerate(unit_ids):
            assigned.add(unit_id)
            events.append(ev.UnitAssigned(incident_id=reported.incident_id, unit_id=unit_id,
                                          assignment_id=f"a-{n}-{j}"))
            events.append(ev.UnitStatusChanged(unit_id=unit_id, status="en_route" if j % 2 else "on_scene",
                                               previous="available", incident_id=reported.incident_id))
    for u in units:
        if not u.available and u.id not in assigned:
            events.append(ev.UnitStatusChanged(unit_id=u.id, status="en_route", previous="available"))
    return st.fold(record(events, at=NOW))


# -- peers -----------------------------------------------------------------------------------------
class Peers:
    """The PostgreSQL database and the Redis connection shared by the parts, and their cleanup."""

    def __init__(self, args) -> None:
        self.args = args
        self.pg = None
        self.red = None
        self.prefix = f"cp_bench_nearest:{os.getpid()}_{uuid.uuid4().hex[:6]}:"
        self.info: dict[str, Any] = {}

    def open_pg(self, url: str) -> None:
        import psycopg
        from sqlalchemy.engine import make_url
        conninfo = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        self.pg = psycopg.connect(conninfo, autocommit=True)
        self.pg.execute("CREATE EXTENSION IF NOT EXISTS postgis")
        self.pg.execute("CREATE EXTENSION IF NOT EXISTS btree_gist")
        self.info["postgis"] = self.pg.execute("SELECT postgis_lib_version()").fetchone()[0]
        self.info["postgresql"] = self.pg.execute("SHOW server_version").fetchone()[0]
        self.info["pg_synchronous_commit"] = self.pg.execute("SHOW synchronous_commit").fetchone()[0]

    def open_redis(self, url: str) -> bool:
        import redis
        try:
            self.red = redis.Redis.from_url(url, decode_responses=True)
            self.red.ping()
            self.info["redis"] = self.red.info("server")["redis_version"]
            self.info["redis_py"] = redis.__version__
            return True
        except redis.RedisError as err:
            T.log(f"Redis not reachable at {url}: {err}; skipped")
            self.red = None
            return False

    def delete_keys(self, under: str = "") -> int:
        if self.red is None:
            return 0
        gone = 0
        batch = []
        for key in self.red.scan_iter(match=f"{self.prefix}{under}*", count=1000):
            batch.append(key)
            if len(batch) == 500:
                gone += self.red.unlink(*batch)
                batch = []
        if batch:
            gone += self.red.unlink(*batch)
        return gone

    def close(self) -> None:
        if self.red is not None:
            n = self.delete_keys()
            T.log(f"Redis: deleted {n} keys under {self.prefix}")
            self.red.close()
            self.red = None
        if self.pg is not None:
            self.pg.close()
            self.pg = None


def load_pg(pg, units: Sequence[BenchUnit]) -> float:
    t0 = time.perf_counter()
    pg.execute("DROP TABLE IF EXISTS units, units_cap")
    pg.execute("CREATE TABLE units (id text NOT NULL, capability text NOT NULL, available boolean NOT NULL, "
               "pos geography(Point, 4326) NOT NULL)")
    with pg.cursor() as cur, cur.copy("COPY units (id, capability, available, pos) FROM STDIN") as copy:
        for u in units:
            wkt = f"SRID=4326;POINT({u.lon!r} {u.lat!r})"  # repr: the same doubles as ours
            for cap in u.caps:
                copy.write_row((u.id, cap, u.available, wkt))
    pg.execute("CREATE INDEX units_pos ON units USING gist (pos)")
    pg.execute("CREATE INDEX units_id ON units (id)")
    pg.execute("CREATE TABLE units_cap AS SELECT * FROM units")
    pg.execute("CREATE INDEX units_cap_pos ON units_cap USING gist (capability, pos) WHERE available")
    pg.execute("ANALYZE units")
    pg.execute("ANALYZE units_cap")
    return time.perf_counter() - t0


def redis_keys(prefix: str, size: int) -> tuple[Callable[[str], str], str]:
    return (lambda cap: f"{prefix}n{size}:cap:{cap}"), f"{prefix}n{size}:pos"


def load_redis(red, units: Sequence[BenchUnit], cap_key: Callable[[str], str], pos_key: str) -> float:
    t0 = time.perf_counter()
    members: dict[str, list] = defaultdict(list)
    for u in units:
        members[pos_key] += [u.lon, u.lat, u.id]
        if u.available:
            for cap in u.caps:
                members[cap_key(cap)] += [u.lon, u.lat, u.id]
    pipe = red.pipeline(transaction=False)
    for key, flat in members.items():
        for i in range(0, len(flat), 3000):
            pipe.geoadd(key, flat[i:i + 3000])
    pipe.execute()
    return time.perf_counter() - t0


# -- part 1: the 5 nearest -------------------------------------------------------------------------
@dataclass(slots=True)
class Query:
    cap: str
    lat: float
    lon: float
    point: LatLon


class GcWatch:
    """Counts and times the collector's own gen 1 and gen 2 passes (not the explicit ``gc.collect()``
    between blocks), so a slow call can be told apart from a GC pause."""

    def __init__(self) -> None:
        self.active = False
        self.hits = 0  # gen >= 1 passes so far
        self.pauses: dict[int, list[float]] = {0: [], 1: [], 2: []}
        self._t0 = 0.0

    def __call__(self, phase: str, info: dict) -> None:
        if not self.active:
            return
        if phase == "start":
            self._t0 = time.perf_counter()
        else:
            self.pauses[info["generation"]].append(time.perf_counter() - self._t0)
            if info["generation"] >= 1:
                self.hits += 1

    def __enter__(self) -> Self:
        gc.callbacks.append(self)
        return self

    def __exit__(self, *exc) -> None:
        gc.callbacks.remove(self)

    def summary(self) -> dict[str, Any]:
        return {f"gen{g}": {"count": len(v), "median_ms": statistics.median(v) * 1000 if v else None,
                            "max_ms": max(v) * 1000 if v else None} for g, v in self.pauses.items()}


def run_interleaved(subjects: dict[str, Callable[[Any], Any]], items: Sequence[Any], warmup: Sequence[Any],
                    rounds: int, cpu: dict[str, list[float]] | None = None, watch: GcWatch | None = None,
                    keep: bool = True) -> tuple[dict[str, list[float]], dict[str, list[Any]], dict[str, float]]:
    """Each subject runs every item, timed per call, in alternating rounds; returns latencies, results
    (unless ``keep`` is false: then the results are dropped at once, as a service would), wall seconds.
    With ``cpu`` (a dict to fill), each call's CPU time of this thread is recorded too: on a shared machine
    it leaves out the time the process was descheduled (it keeps GC pauses, which are the process's own).
    With ``watch``, ``out[k][i]`` is True when a gen 1 or gen 2 collection ran inside call i."""
    for fn in subjects.values():
        for item in warmup:
            fn(item)
    n = len(items)
    lat = {k: [0.0] * n for k in subjects}
    out: dict[str, list[Any]] = {k: [None] * n for k in subjects}
    if cpu is not None:
        cpu.update({k: [0.0] * n for k in subjects})
    wall = {k: 0.0 for k in subjects}
    per = math.ceil(n / rounds)
    perf, thread_time = time.perf_counter, time.thread_time
    for r in range(rounds):
        order = list(subjects) if r % 2 == 0 else list(reversed(subjects))
        for k in order:
            fn, lk, ok = subjects[k], lat[k], out[k]
            if watch is not None:
                watch.active = False
            gc.collect()
            if watch is not None:
                watch.active = True
            w0 = perf()
            if cpu is None:
                for i in range(r * per, min(n, (r + 1) * per)):
                    item = items[i]
                    t0 = perf()
                    result = fn(item)
                    lk[i] = perf() - t0
                    if keep:
                        ok[i] = result
            else:
                ck = cpu[k]
                for i in range(r * per, min(n, (r + 1) * per)):
                    item = items[i]
                    h0 = watch.hits if watch is not None else 0
                    c0 = thread_time()
                    t0 = perf()
                    result = fn(item)
                    lk[i] = perf() - t0
                    ck[i] = thread_time() - c0
                    if keep:
                        ok[i] = result
                    elif watch is not None:
                        ok[i] = watch.hits != h0
            wall[k] += perf() - w0
            if watch is not None:
                watch.active = False
    return lat, out, wall


def compare(ref: list[list[str]], other: list[list[str]], queries: Sequence[Query], where: dict[str, LatLon],
            rel: float, abs_m: float) -> dict[str, Any]:
    """Same set / same order of ids; differences explained by a near tie at ours' 5th distance."""
    same_set = same_order = near_tie = fewer = other_diff = 0
    examples = []
    for q, a, b in zip(queries, ref, other):
        if a == b:
            same_order += 1
        if set(a) == set(b):
            same_set += 1
            continue
        if len(a) != len(b):
            fewer += 1
            continue
        dist = {u: haversine_m(q.point, where[u]) for u in set(a) | set(b)}
        kth = max(dist[u] for u in a)
        if all(abs(dist[u] - kth) <= abs_m + rel * kth for u in set(a) ^ set(b)):
            near_tie += 1
        else:
            other_diff += 1
            if len(examples) < 3:
                examples.append({"capability": q.cap, "lat": q.lat, "lon": q.lon, "ours": a, "peer": b,
                                 "ours_m": [round(dist[u], 3) for u in a], "peer_m": [round(dist[u], 3) for u in b]})
    n = len(queries)
    return {"queries": n, "same_set": same_set, "same_set_pct": 100.0 * same_set / n, "same_order": same_order,
            "same_order_pct": 100.0 * same_order / n, "near_tie": near_tie, "fewer_results": fewer,
            "unexplained": other_diff, "examples": examples}


def part1(size: int, units: list[BenchUnit], index: FleetIndex, bounds, peers: Peers, args,
          rng: random.Random, plans: Plans) -> dict[str, Any]:
    west, south, east, north = bounds
    weights = capability_weights(plans, args.mix)
    caps, cw = list(weights), list(weights.values())
    total = args.queries + args.warmup
    queries = []
    for cap in rng.choices(caps, cw, k=total):
        lat, lon = rng.uniform(south, north), rng.uniform(west, east)
        queries.append(Query(cap, lat, lon, LatLon(lat, lon)))
    warm, timed = queries[:args.warmup], queries[args.warmup:]
    where = {u.id: LatLon(u.lat, u.lon) for u in units}
    avail_count = Counter(c for u in units if u.available for c in u.caps)

    def ours(q: Query) -> list[str]:
        return [unit_id for _, unit_id in index.nearest(q.cap, q.point, K)]

    subjects: dict[str, Callable[[Query], list[str]]] = {"ours: FleetIndex.nearest": ours}
    doc: dict[str, Any] = {"size": size, "available": sum(u.available for u in units),
                           "capability_weights": weights, "available_per_capability": dict(sorted(avail_count.items()))}

    if peers.pg is not None:
        T.log(f"part 1, {size:,} units: loading PostGIS")
        doc["pg_load_s"] = load_pg(peers.pg, units)
        doc["pg_rows"] = peers.pg.execute("SELECT count(*) FROM units").fetchone()[0]
        cur_plain, cur_cap = peers.pg.cursor(), peers.pg.cursor()
        q_plain, q_cap = PG_QUERY.format(table="units"), PG_QUERY.format(table="units_cap")

        def pg_plain(q: Query) -> list[str]:
            cur_plain.execute(q_plain, (q.cap, q.lon, q.lat), prepare=True)
            return [row[0] for row in cur_plain.fetchall()]

        def pg_cap(q: Query) -> list[str]:
            cur_cap.execute(q_cap, (q.cap, q.lon, q.lat), prepare=True)
            return [row[0] for row in cur_cap.fetchall()]

        subjects["PostGIS GiST(pos)"] = pg_plain
        subjects["PostGIS GiST(capability,pos) partial"] = pg_cap
        plans_doc = {}
        rare = min((c for c in caps if avail_count[c]), key=lambda c: avail_count[c])
        for table in ("units", "units_cap"):
            for cap in ("patrol", rare):
                sql = PG_QUERY.format(table=table).replace("%s", "'" + cap + "'", 1) % (CENTRE.lon, CENTRE.lat)
                rows = peers.pg.execute("EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) " + sql).fetchall()
                plans_doc[f"{table}/{cap}"] = [r[0] for r in rows]
        doc["pg_explain"] = plans_doc

    trips: list[int] = []
    if peers.red is not None:
        T.log(f"part 1, {size:,} units: loading Redis")
        cap_key, pos_key = redis_keys(peers.prefix, size)
        doc["redis_load_s"] = load_redis(peers.red, units, cap_key, pos_key)
        red = peers.red
        area = (args.city_km * 1000.0) ** 2
        r_max = args.city_km * 1000.0 * 1.5  # from any point inside, the whole square is in range
        r0 = {c: (min(r_max, max(100.0, 1.5 * math.sqrt(K * area / (math.pi * avail_count[c]))))
                  if avail_count[c] else r_max) for c in caps}
        keys = {c: cap_key(c) for c in caps}
        box = args.city_km * 2000.0

        def redis_radius(q: Query) -> list[str]:
            radius, n = r0[q.cap], 0
            while True:
                ids = red.geosearch(keys[q.cap], longitude=q.lon, latitude=q.lat, radius=radius, unit="m",
                                    sort="ASC", count=K)
                n += 1
                if len(ids) >= K or radius >= r_max:
                    trips.append(n)
                    return ids
                radius = min(radius * 2, r_max)

        def redis_box(q: Query) -> list[str]:
            return red.geosearch(keys[q.cap], longitude=q.lon, latitude=q.lat, width=box, height=box, unit="m",
                                 sort="ASC", count=K)

        subjects["Redis GEOSEARCH BYRADIUS (grown)"] = redis_radius
        subjects["Redis GEOSEARCH BYBOX (city)"] = redis_box
        doc["redis_start_radius_m"] = {c: round(r, 1) for c, r in r0.items()}

    T.log(f"part 1, {size:,} units: {len(timed):,} queries x {len(subjects)} subjects")
    lat, out, wall = run_interleaved(subjects, timed, warm, args.rounds)
    trips = trips[-len(timed):] if trips else []

    rows = []
    ours_s = summary_us(lat["ours: FleetIndex.nearest"])
    for k in subjects:
        s = summary_us(lat[k])
        by_cap: dict[str, list[float]] = defaultdict(list)
        for q, t in zip(timed, lat[k]):
            by_cap[q.cap].append(t)
        rows.append({"subject": k, **s, "queries_per_s": len(timed) / wall[k],
                     "x_ours_median": s["median_us"] / ours_s["median_us"], "x_ours_p99": s["p99_us"] / ours_s["p99_us"],
                     "round_trips_mean": (statistics.mean(trips) if trips else None) if "BYRADIUS" in k else None,
                     "round_trips_max": (max(trips) if trips else None) if "BYRADIUS" in k else None,
                     "by_capability": {c: {"n": len(v), "median_us": statistics.median(v) * 1e6,
                                           "p99_us": T.percentile(v, 99) * 1e6} for c, v in sorted(by_cap.items())}})
    doc["results"] = rows

    agreement = {}
    ref = out["ours: FleetIndex.nearest"]
    for k in subjects:
        if k.startswith("ours"):
            continue
        agreement[k] = compare(ref, out[k], timed, where, rel=1e-4, abs_m=1.0)
    if peers.pg is not None and args.spheroid_sample:
        sample = timed[:args.spheroid_sample]
        cur = peers.pg.cursor()
        spheroid = []
        for q in sample:
            cur.execute(PG_SPHEROID, (q.cap, q.lon, q.lat), prepare=True)
            spheroid.append([row[0] for row in cur.fetchall()])
        # sphere vs spheroid: distances differ by up to ~0.5 % with the bearing, so a swap within that
        agreement["PostGIS ST_Distance spheroid, no index (sample)"] = compare(ref, spheroid, sample, where,
                                                                              rel=6e-3, abs_m=1.0)
    doc["agreement"] = agreement
    return doc


# -- part 3: position updates ----------------------------------------------------------------------
def make_moves(rng: random.Random, units: Sequence[BenchUnit], count: int, bounds) -> list[tuple[int, float, float]]:
    """(unit index, lat, lon): a random unit drives 3-40 m on its own wandering heading; bounces off the edge."""
    west, south, east, north = bounds
    pos = [(u.lat, u.lon) for u in units]
    heading = [rng.uniform(0, 2 * math.pi) for _ in units]
    k_lon = M_PER_DEG_LAT * math.cos(math.radians((south + north) / 2))
    out = []
    n = len(units)
    for _ in range(count):
        i = rng.randrange(n)
        lat, lon = pos[i]
        d = rng.uniform(3.0, 40.0)
        h = heading[i] + rng.gauss(0.0, 0.3)
        nlat, nlon = lat + d * math.cos(h) / M_PER_DEG_LAT, lon + d * math.sin(h) / k_lon
        if not (south <= nlat <= north and west <= nlon <= east):
            h += math.pi
            nlat, nlon = lat + d * math.cos(h) / M_PER_DEG_LAT, lon + d * math.sin(h) / k_lon
        heading[i], pos[i] = h, (nlat, nlon)
        out.append((i, nlat, nlon))
    return out


def cell_crossings(units: Sequence[BenchUnit], moves, cell_m: float = 500.0) -> float:
    """Share of updates that change cell, in the same projection as FleetIndex (origin: the first unit put)."""
    lat0, lon0 = units[0].lat, units[0].lon
    kx = 6_371_008.8 * math.cos(math.radians(lat0)) * math.pi / 180 / cell_m
    ky = 6_371_008.8 * math.pi / 180 / cell_m

    def cell(lat: float, lon: float) -> tuple[int, int]:
        return math.floor(((lon - lon0 + 180.0) % 360.0 - 180.0) * kx), math.floor(lat * ky)

    where = [cell(u.lat, u.lon) for u in units]
    crossed = 0
    for i, lat, lon in moves:
        c = cell(lat, lon)
        crossed += c != where[i]
        where[i] = c
    return crossed / max(1, len(moves))


def part3(size: int, units: list[BenchUnit], index: FleetIndex, bounds, peers: Peers, args,
          rng: random.Random, profile_out: list[str]) -> dict[str, Any]:
    rounds = args.rounds
    ours_quota = args.moves + args.move_latency
    need = max(ours_quota, args.redis_moves, args.redis_batched_moves, args.pg_moves)
    if args.profile:
        need = max(need, ours_quota + 100_000)
    T.log(f"part 3, {size:,} units: generating {need:,} moves")
    moves = make_moves(rng, units, need, bounds)
    ids = [u.id for u in units]
    seq = [(ids[i], LatLon(lat, lon)) for i, lat, lon in moves]
    doc: dict[str, Any] = {"size": size, "cell_crossing_share": cell_crossings(units, moves),
                           "metres_per_update": "uniform 3-40"}

    t0 = time.perf_counter()
    fleet = Fleet()
    fleet.reset(state_of(units), {u.id: LatLon(u.lat, u.lon) for u in units})
    doc["fleet_reset_s"] = time.perf_counter() - t0

    # LatLon(...) from a fix's floats, which a caller pays before move (not in the moves timed below)
    sample = moves[:20_000]
    t0 = time.perf_counter()
    for _, lat, lon in sample:
        LatLon(lat, lon)
    doc["latlon_construct_us"] = (time.perf_counter() - t0) / len(sample) * 1e6

    perf = time.perf_counter
    ours = {"ours: FleetIndex.move (capability tags)": index.move,
            "ours: Fleet.move (service: + agency/capability tags)": fleet.move}
    block_times = {k: [] for k in ours}
    call_times = {k: [] for k in ours}
    peer_lat: dict[str, list[float]] = {}
    peer_wall: dict[str, float] = {}
    peer_updates: dict[str, int] = {}

    peer_fns: dict[str, tuple[int, int, Callable[[int, int], None]]] = {}  # name -> (updates, per call, fn)
    if peers.red is not None:
        cap_key, pos_key = redis_keys(peers.prefix, size)
        red = peers.red
        keys = [[pos_key, *([cap_key(c) for c in u.caps] if u.available else [])] for u in units]

        def redis_one(a: int, b: int) -> None:
            for j in range(a, b):
                i, lat, lon = moves[j]
                ks = keys[i]
                if len(ks) == 1:
                    red.geoadd(ks[0], (lon, lat, ids[i]))
                else:
                    pipe = red.pipeline(transaction=False)
                    for key in ks:
                        pipe.geoadd(key, (lon, lat, ids[i]))
                    pipe.execute()

        def redis_batch(a: int, b: int) -> None:
            pipe = red.pipeline(transaction=False)
            for j in range(a, b):
                i, lat, lon = moves[j]
                for key in keys[i]:
                    pipe.geoadd(key, (lon, lat, ids[i]))
            pipe.execute()

        peer_fns["Redis GEOADD, 1 update per round trip"] = (args.redis_moves, 1, redis_one)
        peer_fns["Redis GEOADD, pipelined 100 updates"] = (args.redis_batched_moves, 100, redis_batch)
    if peers.pg is not None:
        cur = peers.pg.cursor()

        def pg_one(a: int, b: int) -> None:
            for j in range(a, b):
                i, lat, lon = moves[j]
                cur.execute(PG_UPDATE, (lon, lat, ids[i]), prepare=True)

        peer_fns["PostGIS UPDATE, 1 per statement (autocommit)"] = (args.pg_moves, 1, pg_one)

    for name, (count, per_call, _) in peer_fns.items():
        peer_lat[name], peer_wall[name], peer_updates[name] = [], 0.0, count - count % per_call

    T.log(f"part 3, {size:,} units: {args.moves:,}+{args.move_latency:,} moves per ours subject, "
          f"peers {', '.join(f'{v[0]:,}' for v in peer_fns.values())}")
    through, latency = args.moves // rounds, args.move_latency // rounds
    names = list(ours) + list(peer_fns)
    for r in range(rounds):
        order = names if r % 2 == 0 else list(reversed(names))
        for name in order:
            gc.collect()
            if name in ours:
                move = ours[name]
                start = r * (through + latency)
                for b in range(start, start + through, 1000):
                    chunk = seq[b:min(b + 1000, start + through)]
                    t0 = perf()
                    for unit_id, loc in chunk:
                        move(unit_id, loc)
                    block_times[name].append((perf() - t0, len(chunk)))
                ct = call_times[name]
                for unit_id, loc in seq[start + through:start + through + latency]:
                    t0 = perf()
                    move(unit_id, loc)
                    ct.append(perf() - t0)
            else:
                count, per_call, fn = peer_fns[name]
                calls = count // per_call
                per_round = math.ceil(calls / rounds)
                w0 = perf()
                for c in range(r * per_round, min(calls, (r + 1) * per_round)):
                    t0 = perf()
                    fn(c * per_call, (c + 1) * per_call)
                    peer_lat[name].append(perf() - t0)
                peer_wall[name] += perf() - w0

    rows = []
    for name in ours:
        done = sum(n for _, n in block_times[name])
        secs = sum(t for t, _ in block_times[name])
        s = summary_us(call_times[name])
        rows.append({"subject": name, "updates": done + len(call_times[name]), "updates_per_s": done / secs,
                     "block_rate_median": statistics.median(n / t for t, n in block_times[name]),
                     "block_rate_p1": T.percentile([n / t for t, n in block_times[name]], 1),
                     "per": "update", **s})
    for name, (_, per_call, _) in peer_fns.items():
        s = summary_us(peer_lat[name])
        rows.append({"subject": name, "updates": peer_updates[name],
                     "updates_per_s": peer_updates[name] / peer_wall[name] if peer_wall[name] else float("nan"),
                     "per": "update" if per_call == 1 else f"batch of {per_call}", **s})
    best_ours = {r["subject"]: r["updates_per_s"] for r in rows if r["subject"].startswith("ours")}
    for row in rows:
        row["ours_fleet_over_this"] = best_ours["ours: Fleet.move (service: + agency/capability tags)"] / row["updates_per_s"]
    doc["results"] = rows

    if args.profile:
        try:
            from pyinstrument import Profiler
        except ImportError:
            T.log("pyinstrument not installed; no profile")
        else:
            prof = Profiler(interval=0.0001)
            prof.start()
            for unit_id, loc in seq[ours_quota:ours_quota + 100_000]:
                fleet.move(unit_id, loc)
            prof.stop()
            profile_out.append(f"==== part 3, {size:,} units: Fleet.move x 100,000\n{prof.output_text(show_all=False)}")
    return doc


# -- part 2: the recommendation --------------------------------------------------------------------
def scaled_city(scale: float, units: Sequence[BenchUnit], homes) -> City:
    demo = generate_demo_city()
    c = DEMO_CENTRE

    def at(p: LatLon) -> LatLon:
        return LatLon(c.lat + (p.lat - c.lat) * scale, c.lon + (p.lon - c.lon) * scale)

    districts = [District(d.agency_id, d.district_id, d.name,
                          affinity.scale(d.geometry, scale, scale, origin=(c.lon, c.lat))) for d in demo.districts]
    stations = tuple(Station(s.id, s.agency_id, s.name, at(s.location)) for s in demo.stations)
    specs = tuple(UnitSpec(u.id, u.agency, u.type, homes[u.id][0], homes[u.id][1]) for u in units) if units else ()
    return City(f"Demo City x{scale:g}", demo.agencies, stations, DistrictIndex(districts), specs)


@dataclass
class RecWorld:
    units: list[BenchUnit]
    homes: dict[str, tuple[str | None, LatLon]]
    city: City
    state: st.State
    catalog: Catalog
    incidents: int
    items: list[tuple[str, LatLon]]       # (incident type, point), shuffled
    commands: list[cmds.ReportIncident]  # one per item
    opened: list[str]                     # an open incident per item
    setup_s: float


def part2_world(args, rng: random.Random, plans: Plans) -> RecWorld:
    """Part 2's city, fleet, State and decisions to time (also for side experiments)."""
    scale = args.city_scale
    w, s, e, n = demo_bounds()
    c = DEMO_CENTRE
    bounds = (c.lon + (w - c.lon) * scale, c.lat + (s - c.lat) * scale,
              c.lon + (e - c.lon) * scale, c.lat + (n - c.lat) * scale)
    units = make_units(rng, args.rec_units, bounds, plans, args.available)
    for u in units:
        u.id = f"R{u.id[1:]}"
    stations = scaled_city(scale, (), {}).stations
    by_agency: dict[str, list[Station]] = defaultdict(list)
    for station in stations:
        by_agency[station.agency_id].append(station)
    homes = {}
    for u in units:
        here = LatLon(u.lat, u.lon)
        best = min(by_agency[u.agency], key=lambda st_: (haversine_m(here, st_.location), st_.id))
        homes[u.id] = (best.id, best.location)
    city = scaled_city(scale, units, homes)

    # the busy units, two by two on open incidents reported in the last 40 minutes
    types = sorted(plans.incident_types)
    busy = [u.id for u in units if not u.available]
    rng.shuffle(busy)
    incidents = []
    for k in range(0, len(busy), 2):
        t = rng.choice(types)
        point = LatLon(rng.uniform(bounds[1], bounds[3]), rng.uniform(bounds[0], bounds[2]))
        reported = ev.IncidentReported(
            incident_id=f"open-{k // 2}", incident_type=t, priority=plans.incident_types[t].default_priority,
            location=point.to_json(), reported_at=format_at(NOW - timedelta(seconds=rng.uniform(0, 2400))),
            districts=[], agencies=[])
        incidents.append((reported, busy[k:k + 2]))
    t0 = time.perf_counter()
    state = state_of(units, homes, incidents)
    fleet = Fleet()
    fleet.reset(state, {u.id: LatLon(u.lat, u.lon) for u in units})
    catalog = Catalog(city, plans, fleet, Policy())
    _ = catalog.jurisdiction  # cached: built once per city, before any decision
    setup_s = time.perf_counter() - t0
    open_ids = [r.incident_id for r, _ in incidents]

    per_type = args.rec_per_type
    items = [(t, LatLon(rng.uniform(bounds[1], bounds[3]), rng.uniform(bounds[0], bounds[2])))
             for t in types for _ in range(per_type)]
    rng.shuffle(items)
    reported_at = format_at(NOW)
    commands = [cmds.ReportIncident(incident_id=f"new-{i}", incident_type=t, priority=None, location=p,
                                    reported_at=reported_at) for i, (t, p) in enumerate(items)]
    opened = [rng.choice(open_ids) for _ in items]
    return RecWorld(units, homes, city, state, catalog, len(incidents), items, commands, opened, setup_s)


def part2(args, rng: random.Random, plans: Plans, profile_out: list[str]) -> dict[str, Any]:
    world = part2_world(args, rng, plans)
    units, homes, city, state, catalog = world.units, world.homes, world.city, world.state, world.catalog
    items, commands, opened = world.items, world.commands, world.opened
    types = sorted(plans.incident_types)
    per_type = args.rec_per_type
    warm = items[:100]
    index_of = {id(x): i for i, x in enumerate(items)}

    def recommendation(item: tuple[str, LatLon]):
        plan = plans.incident_types[item[0]].plan
        responsible = catalog.jurisdiction.responsible(item[1], plan.kinds())
        return recommendation_for(catalog, plan, item[1], responsible)

    def report(item: tuple[str, LatLon]):
        return decide(state, commands[index_of[id(item)]], catalog)

    def current(item: tuple[str, LatLon]):
        return current_recommendation(state, opened[index_of[id(item)]], catalog)

    subjects = {"responsible + _recommendation": recommendation, "decide(ReportIncident)": report,
                "current_recommendation (open incident)": current}
    T.log(f"part 2, {args.rec_units:,} units: {len(items):,} decisions x {len(subjects)} subjects")
    cpu: dict[str, list[float]] = {}
    with GcWatch() as watch:
        lat, gc_hit, wall = run_interleaved(subjects, items, warm, args.rounds, cpu=cpu, watch=watch, keep=False)

    mix_weight = {t: H.MIX.get(t, 0.5) / per_type for t in types}
    rows = []
    base = statistics.median(lat["responsible + _recommendation"])
    for k in subjects:
        ms, cpu_ms = [x * 1000 for x in lat[k]], [x * 1000 for x in cpu[k]]
        no_gc = [m for m, hit in zip(ms, gc_hit[k]) if not hit]
        row = {"subject": k, **T.summary_ms(lat[k]), "x_recommendation_median": statistics.median(lat[k]) / base,
               "cpu_median_ms": statistics.median(cpu_ms), "cpu_p99_ms": T.percentile(cpu_ms, 99),
               "calls_with_gc_pass": sum(1 for hit in gc_hit[k] if hit), "p99_ms_without_gc_calls": T.percentile(no_gc, 99)}
        if k != "current_recommendation (open incident)":
            row["p99_ms_call_mix"] = weighted_percentile([(m, mix_weight[t]) for m, (t, _) in zip(ms, items)], 99)
            row["median_ms_call_mix"] = weighted_percentile([(m, mix_weight[t]) for m, (t, _) in zip(ms, items)], 50)
            row["cpu_p99_ms_call_mix"] = weighted_percentile([(m, mix_weight[t]) for m, (t, _) in zip(cpu_ms, items)],
                                                             99)
        rows.append(row)

    by_type = []
    recs = [recommendation(item) for item in items]  # again, untimed: what each recommendation found
    for t in types:
        idx = [i for i, (tt, _) in enumerate(items) if tt == t]
        rl = [lat["responsible + _recommendation"][i] for i in idx]
        dl = [lat["decide(ReportIncident)"][i] for i in idx]
        plan = plans.incident_types[t].plan
        by_type.append({"incident_type": t, "n": len(idx), "lines": len(plan.lines),
                        "units_asked": sum(line.count for line in plan.lines),
                        "rec_median_ms": statistics.median(rl) * 1000, "rec_p99_ms": T.percentile(rl, 99) * 1000,
                        "decide_median_ms": statistics.median(dl) * 1000, "decide_p99_ms": T.percentile(dl, 99) * 1000,
                        "considered_mean": statistics.mean(len(recs[i].considered) for i in idx),
                        "picks_mean": statistics.mean(len(recs[i].picks) for i in idx),
                        "short_mean": statistics.mean(sum(x["missing"] for x in recs[i].shortfall) for i in idx),
                        "coverage_cost_mean": statistics.mean(len(recs[i].coverage_cost) for i in idx)})

    # the index agrees with brute force over every available unit, through the whole recommendation
    brute = CandidateList(Candidate(u.id, u.agency, u.type, homes[u.id][0], LatLon(u.lat, u.lon), frozenset(u.caps))
                          for u in units if u.available)
    same = 0
    for item, made in list(zip(items, recs))[:args.check]:
        plan = plans.incident_types[item[0]].plan
        responsible = catalog.jurisdiction.responsible(item[1], plan.kinds())
        other = recommendation_for(catalog, plan, item[1], responsible, source=brute)
        same += ([p.unit_id for p in other.picks] == [p.unit_id for p in made.picks]
                 and other.coverage_cost == made.coverage_cost)

    if args.profile:
        try:
            from pyinstrument import Profiler
        except ImportError:
            T.log("pyinstrument not installed; no profile")
        else:
            for label, fn in (("responsible + _recommendation", recommendation), ("decide(ReportIncident)", report)):
                prof = Profiler(interval=0.0001)
                prof.start()
                for item in items:
                    fn(item)
                prof.stop()
                profile_out.append(f"==== part 2, {args.rec_units:,} units: {label} x {len(items):,}\n"
                                   f"{prof.output_text(show_all=False)}")

    return {"units": args.rec_units, "available": sum(u.available for u in units), "open_incidents": world.incidents,
            "city_scale": args.city_scale, "districts": len(city.districts), "stations": len(city.stations),
            "setup_s": world.setup_s, "results": rows, "by_type": by_type,
            "brute_force_check": {"checked": min(args.check, len(items)), "same_picks_and_cost": same},
            "gc_during_timing": watch.summary(), "gc_thresholds": gc.get_threshold(), "wall_s": wall}


# -- main ------------------------------------------------------------------------------------------
def print_part1(docs: list[dict]) -> None:
    rows = []
    for d in docs:
        for r in d["results"]:
            trips = "" if r["round_trips_mean"] is None else f"{r['round_trips_mean']:.2f} (max {r['round_trips_max']})"
            rows.append((f"{d['size']:,}", r["subject"], r["n"], r["median_us"], r["p99_us"], r["max_us"],
                         r["x_ours_median"], r["x_ours_p99"], trips))
    print(T.table(["units", "subject", "queries", "median µs", "p99 µs", "max µs", "x ours median", "x ours p99",
                   "round trips"], rows,
                  title="Part 1: 5 nearest available units with capability X (per query, round trip included)"))
    rows = []
    for d in docs:
        for peer, a in d["agreement"].items():
            rows.append((f"{d['size']:,}", peer, a["queries"], f"{a['same_set_pct']:.2f} %", f"{a['same_order_pct']:.2f} %",
                         a["near_tie"], a["fewer_results"], a["unexplained"]))
    print()
    print(T.table(["units", "ours vs", "queries", "same 5 ids", "same order", "near ties", "fewer results",
                   "other differences"], rows, title="Part 1: agreement with ours"))


def print_part2(doc: dict) -> None:
    rows = []
    for r in doc["results"]:
        mix = r.get("p99_ms_call_mix")
        rows.append((r["subject"], r["n"], r["median_ms"], r["p99_ms"], r["max_ms"], "-" if mix is None else mix,
                     r["cpu_median_ms"], r["cpu_p99_ms"], r["calls_with_gc_pass"], r["p99_ms_without_gc_calls"],
                     r["x_recommendation_median"]))
    print(T.table(["subject", "calls", "median ms", "p99 ms", "max ms", "p99 ms call mix", "CPU median ms",
                   "CPU p99 ms", "calls w/ gen1+ GC", "p99 ms w/o them", "x recommendation median"], rows,
                  title=f"Part 2: multi-agency recommendation, {doc['units']:,} units ({doc['available']:,} available, "
                        f"{doc['open_incidents']:,} open incidents); every incident type alike unless 'call mix'"))
    rec = next(r for r in doc["results"] if r["subject"] == "responsible + _recommendation")
    print(f"target p99 <= {REC_TARGET_MS:g} ms for responsible + _recommendation: "
          f"{rec['p99_ms']:.3f} ms types alike -> {verdict(rec['p99_ms'] <= REC_TARGET_MS)}; "
          f"{rec['p99_ms_call_mix']:.3f} ms call mix -> {verdict(rec['p99_ms_call_mix'] <= REC_TARGET_MS)}; "
          f"CPU time {rec['cpu_p99_ms']:.3f} / {rec['cpu_p99_ms_call_mix']:.3f} ms -> "
          f"{verdict(rec['cpu_p99_ms'] <= REC_TARGET_MS)} / {verdict(rec['cpu_p99_ms_call_mix'] <= REC_TARGET_MS)}")
    g = doc["gc_during_timing"]
    print("GC passes inside timed calls: " + ", ".join(
        f"{k} {v['count']} (median {v['median_ms'] or 0:.2f} ms, max {v['max_ms'] or 0:.2f} ms)" for k, v in g.items()))
    rows = [(t["incident_type"], t["n"], t["units_asked"], t["rec_median_ms"], t["rec_p99_ms"], t["decide_median_ms"],
             t["decide_p99_ms"], t["considered_mean"], t["coverage_cost_mean"]) for t in doc["by_type"]]
    print()
    print(T.table(["incident type", "n", "units asked", "rec median ms", "rec p99 ms", "decide median ms",
                   "decide p99 ms", "units considered", "coverage cost"], rows, title="Part 2: by incident type"))
    bc = doc["brute_force_check"]
    print(f"\nbrute-force check: {bc['same_picks_and_cost']}/{bc['checked']} recommendations pick the same units "
          f"and coverage cost from a CandidateList of every available unit")


def print_part3(docs: list[dict]) -> None:
    rows = []
    for d in docs:
        for r in d["results"]:
            rows.append((f"{d['size']:,}", r["subject"], r["updates"], r["updates_per_s"], r["per"], r["median_us"],
                         r["p99_us"], r["ours_fleet_over_this"],
                         verdict(r["updates_per_s"] >= MOVE_TARGET_PER_S) if r["subject"].startswith("ours") else ""))
    print(T.table(["units", "subject", "updates", "updates/s", "latency per", "median µs", "p99 µs",
                   "Fleet.move / this (updates/s)", f"target >= {MOVE_TARGET_PER_S:,.0f}/s"], rows,
                  title="Part 3: position updates absorbed"))
    for d in docs:
        print(f"{d['size']:,} units: {100 * d['cell_crossing_share']:.1f} % of updates cross a 500 m cell; "
              f"LatLon(lat, lon) from a fix costs {d['latlon_construct_us']:.2f} µs on top (not in the figures)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--parts", default="1,2,3")
    p.add_argument("--sizes", default="1000,10000,100000", help="fleet sizes for part 1")
    p.add_argument("--queries", type=int, default=2000, help="timed queries per size and subject (part 1)")
    p.add_argument("--warmup", type=int, default=200)
    p.add_argument("--rounds", type=int, default=4, help="alternating rounds of the subjects")
    p.add_argument("--mix", choices=("calls", "uniform"), default="calls", help="how capability X is drawn")
    p.add_argument("--spheroid-sample", type=int, default=200, help="part 1 queries also ranked on the spheroid")
    p.add_argument("--available", type=float, default=0.8, help="share of units available")
    p.add_argument("--city-km", type=float, default=30.0, help="side of the square city of parts 1 and 3")
    p.add_argument("--rec-units", type=int, default=10_000, help="units in part 2")
    p.add_argument("--rec-per-type", type=int, default=100, help="part 2 decisions per incident type")
    p.add_argument("--city-scale", type=float, default=2.5, help="the demo city scaled (2.5: 30 km)")
    p.add_argument("--check", type=int, default=30, help="part 2 recommendations re-made by brute force")
    p.add_argument("--move-sizes", default="10000,100000", help="fleet sizes for part 3")
    p.add_argument("--moves", type=int, default=200_000, help="moves per ours subject timed in blocks of 1,000")
    p.add_argument("--move-latency", type=int, default=40_000, help="further moves per ours subject timed singly")
    p.add_argument("--redis-moves", type=int, default=5_000)
    p.add_argument("--redis-batched-moves", type=int, default=50_000)
    p.add_argument("--pg-moves", type=int, default=2_000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--pg-url", default=None, help=f"admin URL (env CP_BENCH_PG_URL, default {T.DEFAULT_PG_URL})")
    p.add_argument("--redis-url", default=None, help=f"env CP_BENCH_REDIS_URL, default {DEFAULT_REDIS_URL}")
    p.add_argument("--profile", action="store_true", help="pyinstrument profiles of parts 2 and 3 to bench/results/")
    args = p.parse_args()
    parts = {int(x) for x in args.parts.split(",") if x}
    sizes = [int(x) for x in args.sizes.split(",") if x] if 1 in parts else []
    move_sizes = [int(x) for x in args.move_sizes.split(",") if x] if 3 in parts else []
    admin = T.pg_admin_url(args.pg_url)
    redis_url = args.redis_url or os.environ.get("CP_BENCH_REDIS_URL") or DEFAULT_REDIS_URL

    t_start = time.perf_counter()
    plans = load_plans()
    machine = T.machine()
    peers = Peers(args)
    doc: dict[str, Any] = {"machine": machine, "args": vars(args), "city_centre": CENTRE.to_json(),
                           "unit_type_mix": type_mix(), "targets": {"recommendation_p99_ms": REC_TARGET_MS,
                                                                    "moves_per_s": MOVE_TARGET_PER_S}}
    # the code measured: other files change between commits, so say which versions ran
    doc["sources"] = {name: hashlib.sha256((T.ROOT / name).read_bytes()).hexdigest()[:12] for name in SOURCES
                      if (T.ROOT / name).exists()}
    profile_out: list[str] = []
    part1_docs: list[dict] = []
    part3_docs: list[dict] = []
    part2_doc = None
    with contextlib.ExitStack() as cleanup:
        if sizes or move_sizes:
            if T.pg_reachable(admin):
                url = cleanup.enter_context(T.postgres_url(admin, prefix="cp_bench_nearest"))
                cleanup.callback(peers.close)  # runs before the database is dropped
                peers.open_pg(url)
            else:
                cleanup.callback(peers.close)
                T.log(f"PostgreSQL not reachable at {admin}; skipped")
            peers.open_redis(redis_url)
        machine.update(peers.info)
        bounds = square(CENTRE, args.city_km * 1000.0)
        for size in sorted(set(sizes) | set(move_sizes)):
            rng = random.Random(args.seed * 1_000_003 + size)
            units = make_units(rng, size, bounds, plans, args.available)
            t0 = time.perf_counter()
            index = FleetIndex()
            for u in units:
                index.put(u.id, LatLon(u.lat, u.lon), u.caps if u.available else ())
            T.log(f"{size:,} units: FleetIndex built in {time.perf_counter() - t0:.2f} s")
            if size in sizes:
                part1_docs.append(part1(size, units, index, bounds, peers, args, rng, plans))
            if size in move_sizes:
                part3_docs.append(part3(size, units, index, bounds, peers, args, rng, profile_out))
            peers.delete_keys(f"n{size}:")
            del units, index
            gc.collect()
        if 2 in parts:
            part2_doc = part2(args, random.Random(args.seed * 7 + 2), plans, profile_out)

    doc["part1"], doc["part2"], doc["part3"] = part1_docs, part2_doc, part3_docs
    doc["run_s"] = time.perf_counter() - t_start
    if part1_docs:
        print_part1(part1_docs)
        print()
    if part2_doc:
        print_part2(part2_doc)
        print()
    if part3_docs:
        print_part3(part3_docs)
    path = T.write_json("nearest", doc)
    T.log(f"wrote {path} ({doc['run_s']:.0f} s)")
    if profile_out:
        prof_path = T.RESULTS / "nearest_profile.txt"
        prof_path.write_text("\n".join(profile_out))
        T.log(f"wrote {prof_path}")


if __name__ == "__main__":
    main()
