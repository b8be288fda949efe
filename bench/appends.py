"""Append throughput and per-commit latency of the event log, next to a bare insert loop.

For each backend (SQLite file with WAL + synchronous=FULL as ``make_engine`` sets it; PostgreSQL in a
fresh database created and dropped by this script):

  * ``EventLog.append(Decision(events, expect), actor)`` with one ``NoteAdded`` per commit, each on a
    new stream with ``expect={stream: 0}``; and with 100 events per commit (100 new streams, all
    expected at version 0);
  * the peer: a bare SQLAlchemy Core ``INSERT`` loop into a plain table of the same columns (primary
    key only, no other index, no trigger) on the same database, 1 row per commit and 100 rows per
    commit, through a plain ``create_engine`` (for SQLite: the same engine settings, so the same
    journal and fsync policy).

Before measuring, the log is pre-filled with ``--prefill`` events of a realistic history (bulk insert)
and, after a warm-up, ``ANALYZE`` is run, so the figures are for a log in service rather than an
empty table.
Subject and peer run in alternating rounds so that drift on a noisy machine hits both alike.
A diagnostic line helps say where the time goes: ``bare insert, events' indexes`` is the peer loop
into a table that also has the unique constraints and indexes of ``events``, so the gap between it
and ``EventLog.append`` is the append's own work (lock, head read, numbering, hashing, round trips).

    .venv/bin/python bench/appends.py [--single 2000] [--batches 200] [--batch-size 100] [--rounds 4]
                                      [--prefill 20000]
                                      [--backends sqlite,postgres] [--pg-url URL]
"""

from __future__ import annotations

import argparse
import uuid
from datetime import datetime, timezone

import _timing as T
import _history as H

import sqlalchemy as sa

from coordinator import events as ev
from coordinator.handlers import Decision
from coordinator.log import EventLog, JSONDoc, SeqType, UTCDateTime, make_engine, migrate

ACTOR = "dispatcher:bench"
TEXT = "Caller reports smoke from the second floor, two occupants out, one unaccounted for."


def plain_table(metadata: sa.MetaData, indexed: bool = False) -> sa.Table:
    """Same columns and types as ``events``; primary key only, or (``indexed``) also the same
    unique constraints and indexes as ``events`` (a diagnostic: what the indexes alone cost)."""
    extra = [sa.UniqueConstraint("id"), sa.UniqueConstraint("stream", "version"),
             sa.Index("ix_plain_idx_at", "at"), sa.Index("ix_plain_idx_incident", "incident_id")] if indexed else []
    return sa.Table(
        "plain_events_indexed" if indexed else "plain_events", metadata,
        sa.Column("seq", SeqType, primary_key=True, autoincrement=False),
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("stream", sa.String(128), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("data", JSONDoc, nullable=False),
        sa.Column("incident_id", sa.String(64), nullable=True),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        *extra,
    )


class Subject:
    """EventLog.append of NoteAdded events on fresh streams."""

    def __init__(self, log: EventLog, prefix: str = "b"):
        self.log = log
        self.prefix = prefix
        self.n = 0

    def commit(self, size: int) -> None:
        events = []
        for _ in range(size):
            self.n += 1
            events.append(ev.NoteAdded(incident_id=f"{self.prefix}-{self.n}", note_id=f"n-{self.n}", text=TEXT))
        self.log.append(Decision(tuple(events), {e.stream(): 0 for e in events}), ACTOR)


class Peer:
    """A bare Core insert loop: one transaction per commit, ``size`` rows in it."""

    def __init__(self, engine: sa.Engine, table: sa.Table):
        self.engine, self.table = engine, table
        self.n = 0

    def commit(self, size: int) -> None:
        rows = []
        now = datetime.now(timezone.utc)
        for _ in range(size):
            self.n += 1
            data = {"incident_id": f"b-{self.n}", "note_id": f"n-{self.n}", "text": TEXT}
            rows.append({"seq": self.n, "id": str(uuid.uuid4()), "type": "NoteAdded", "at": now,
                         "stream": f"incident/b-{self.n}", "version": 1, "actor": ACTOR, "data": data,
                         "incident_id": data["incident_id"], "prev_hash": "0" * 64, "hash": "f" * 64})
        with self.engine.begin() as conn:
            conn.execute(self.table.insert(), rows if size > 1 else rows[0])


def timed(target, size: int, count: int, into: list[float]) -> float:
    """Run ``count`` commits of ``size`` events; append each latency to ``into``; return wall seconds."""
    t_start = T.time.perf_counter()
    for _ in range(count):
        t0 = T.time.perf_counter()
        target.commit(size)
        into.append(T.time.perf_counter() - t0)
    return T.time.perf_counter() - t_start


def run_backend(name: str, url: str, args) -> list[dict]:
    T.log(f"{name}: {url.split('@')[-1]}")
    engine = make_engine(url)
    migrate(engine)
    log = EventLog(engine, lambda: datetime.now(timezone.utc))
    if args.prefill:  # a log that already holds a history, as in service, not an empty table
        H.bulk_insert(log, H.generate(args.prefill))
    if name == "sqlite":
        peer_engine = make_engine(url)  # same journal mode and fsync policy as the log's engine
    else:
        peer_engine = sa.create_engine(url)  # plain: no pre-ping
    meta = sa.MetaData()
    table = plain_table(meta)
    indexed = plain_table(meta, indexed=True)
    meta.create_all(peer_engine)

    subjects = {"EventLog.append": Subject(log), "bare insert loop": Peer(peer_engine, table),
                "bare insert, events' indexes": Peer(peer_engine, indexed)}

    # warm up: pools, statement caches, table pages
    for s in subjects.values():
        for _ in range(20):
            s.commit(1)
        s.commit(args.batch_size)
    with engine.connect() as conn:  # planner statistics, as autovacuum would have them in service
        conn.exec_driver_sql("ANALYZE")
        conn.commit()

    results = []
    for size, total in ((1, args.single), (args.batch_size, args.batches)):
        lat = {k: [] for k in subjects}
        wall = {k: 0.0 for k in subjects}
        per_round = max(1, total // args.rounds)
        for r in range(args.rounds):
            order = list(subjects) if r % 2 == 0 else list(reversed(subjects))
            for k in order:
                wall[k] += timed(subjects[k], size, per_round, lat[k])
        for k in subjects:
            commits = len(lat[k])
            s = T.summary_ms(lat[k])
            results.append({
                "backend": name, "subject": k, "events_per_commit": size, "commits": commits,
                "commits_per_s": commits / wall[k], "events_per_s": commits * size / wall[k],
                **s,
            })
        T.log(f"{name}: {size}/commit done")

    # sanity: the log's chain is whole after all that
    check = log.verify()
    assert check.ok, check
    engine.dispose()
    peer_engine.dispose()
    return results


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--single", type=int, default=2000, help="single-event commits per subject and backend")
    p.add_argument("--batches", type=int, default=200, help="batch commits per subject and backend")
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--rounds", type=int, default=4, help="alternating rounds subject/peer")
    p.add_argument("--prefill", type=int, default=20_000,
                   help="realistic events put in the log before measuring (bulk insert)")
    p.add_argument("--backends", default="sqlite,postgres")
    p.add_argument("--pg-url", default=None, help=f"admin URL (env CP_BENCH_PG_URL, default {T.DEFAULT_PG_URL})")
    args = p.parse_args()
    backends = args.backends.split(",")
    admin = T.pg_admin_url(args.pg_url)

    results: list[dict] = []
    machine = T.machine()
    if "sqlite" in backends:
        with T.sqlite_url() as url:
            results += run_backend("sqlite", url, args)
    if "postgres" in backends:
        machine["postgresql"] = T.pg_version(admin)
        if machine["postgresql"] is None:
            T.log(f"PostgreSQL not reachable at {admin}; skipped")
        else:
            with T.postgres_url(admin) as url:
                results += run_backend("postgresql", url, args)

    rows = [(r["backend"], r["subject"], r["events_per_commit"], r["commits"], r["commits_per_s"],
             r["events_per_s"], r["median_ms"], r["p99_ms"], r["max_ms"]) for r in results]
    print(T.table(["backend", "subject", "ev/commit", "commits", "commits/s", "events/s", "median ms", "p99 ms",
                   "max ms"], rows, title="Appends (per-commit latency; throughput over the whole loop, stalls included)"))
    ratios = []
    for backend in {r["backend"] for r in results}:
        for size in {r["events_per_commit"] for r in results}:
            sub = {r["subject"]: r for r in results if r["backend"] == backend and r["events_per_commit"] == size}
            if "EventLog.append" in sub and "bare insert loop" in sub:
                a, b = sub["EventLog.append"], sub["bare insert loop"]
                ratios.append({"backend": backend, "events_per_commit": size,
                               "append_over_peer_throughput": a["events_per_s"] / b["events_per_s"],
                               "append_over_peer_median_latency": a["median_ms"] / b["median_ms"]})
    print()
    print(T.table(["backend", "ev/commit", "append/peer throughput", "append/peer median latency"],
                  [(r["backend"], r["events_per_commit"], r["append_over_peer_throughput"],
                    r["append_over_peer_median_latency"]) for r in sorted(ratios, key=lambda r: (r["backend"], r["events_per_commit"]))]))
    target = next((r for r in results if r["backend"] == "postgresql" and r["subject"] == "EventLog.append"
                   and r["events_per_commit"] == 1), None)
    if target:
        verdict = "met" if target["commits_per_s"] >= 1500 else "MISSED"
        print(f"\ntarget >= 1,500 single-event appends/s on PostgreSQL: {target['commits_per_s']:,.0f}/s -> {verdict}")
    path = T.write_json("appends", {"machine": machine, "args": vars(args), "results": results, "ratios": ratios})
    T.log(f"wrote {path}")


if __name__ == "__main__":
    main()
