"""``GET /v1/state?at=`` cost: ``Node.rebuild(at)`` over a long history, with and without snapshots.

For each backend (SQLite file; PostgreSQL in a fresh database created and dropped here, if reachable):

1. the realistic history of ``_history.py`` (``--events``, default 1,000,000; ``--pg-events`` for
   PostgreSQL) is bulk-inserted into the log, and snapshots are saved every ``--snapshot-every``
   events (default: the service's ``Settings().snapshot_every``), made as ``Node`` makes them (``state.to_doc`` under the lock, ``json.dumps`` in a thread);
2. ``Node.rebuild(at)`` (latest snapshot at or before ``at`` + ``from_doc`` + fold of
   ``iter_all(after, until_seq=log.seq_at(at))``) is timed for ``--samples`` random times across the history;
   every result is checked against the in-memory history (seq and hash; one in full);
3. the same times are rebuilt again step by step to say where the time goes (snapshot query,
   ``json.loads``, ``from_doc``, seq lookup by time, tail read + fold);
4. for comparison, ``--cold-samples`` of those times are rebuilt without snapshots (fold from zero);
5. then, for each sampled time, the snapshot that a node with ``snapshot_every=--also-every`` (default
   2,000) would have saved last before it is added, and the same times are rebuilt again: what a finer
   spacing would buy, without storing every snapshot such a node would write.

It also reports the size of one snapshot and the time to make one (``to_doc``, which ``Node.handle``
does under its lock on the event loop, and ``json.dumps``, done in a worker thread but holding the GIL),
and what the service default ``snapshot_every`` would mean for snapshot storage over this history.

Target (the issue): state?at over 1,000,000 events <= 1 s.

    .venv/bin/python bench/state_at.py [--events 1000000] [--pg-events 1000000] [--snapshot-every N]
                                       [--also-every 2000] [--samples 30] [--cold-samples 3] [--backends sqlite,postgres]
                                       [--pg-url URL]
"""

from __future__ import annotations

import argparse
import bisect
import gc
import json
import random
import statistics
import time

import _timing as T
import _history as H

from coordinator import state as st
from coordinator.bus import make_bus
from coordinator.log import EventLog, format_at, make_engine, migrate, parse_at
from coordinator.node import Node
from coordinator.settings import Settings
from coordinator.tracks import Tracks

TARGET_S = 1.0
SERVICE_SNAPSHOT_EVERY = Settings().snapshot_every


def make_snapshots(records, every: int) -> list[dict]:
    out = []
    for seq, at, doc, copy_s, dumps_s in H.snapshots(records, every):
        out.append({"seq": seq, "at": at, "doc": doc, "bytes": len(doc.encode()), "to_doc_s": copy_s,
                    "dumps_s": dumps_s})
        T.log(f"snapshot at seq {seq:,}: {out[-1]['bytes'] / 1e6:.1f} MB, to_doc {copy_s * 1000:.0f} ms, "
              f"json.dumps {dumps_s * 1000:.0f} ms")
    return out


def service_snapshots(records, seqs, every: int):
    """For each wanted seq, the snapshot a node with ``snapshot_every=every`` would have saved last
    before it (at the multiple of ``every`` at or below it): (seq, at, json)."""
    state = st.State()
    for target in sorted({(s // every) * every for s in seqs if s >= every}):
        st.fold(records[state.seq:target], state)
        text, _, _ = H.snapshot_json(state)
        yield state.seq, state.at, text


def rebuild_steps(log: EventLog, at) -> tuple[st.State, dict[str, float]]:
    """What ``Node.rebuild`` does, one timed step at a time."""
    t0 = time.perf_counter()
    snap = log.latest_snapshot(at_or_before=at)
    t1 = time.perf_counter()
    doc = json.loads(snap[1]) if snap else None
    t2 = time.perf_counter()
    state = st.from_doc(doc) if snap else st.State()
    del doc
    t3 = time.perf_counter()
    after = state.seq
    until_seq = log.seq_at(at)
    t3b = time.perf_counter()
    tail = list(log.iter_all(after=after, until_seq=until_seq))
    t4 = time.perf_counter()
    st.fold(tail, state)
    t5 = time.perf_counter()
    return state, dict(snapshot_query_s=t1 - t0, json_loads_s=t2 - t1, from_doc_s=t3 - t2, seq_at_s=t3b - t3,
                       tail_read_s=t4 - t3b, tail_fold_s=t5 - t4, tail_events=len(tail), total_s=t5 - t0)


def measure(name: str, label: str, node: Node, log: EventLog, records, times, expected_seq) -> dict:
    """Time Node.rebuild(at) at each time (checking each result), then the same step by step."""
    lat, snap_seqs = [], []
    for i, at in enumerate(times):
        gc.collect()
        t0 = time.perf_counter()
        state, snap_seq = node.rebuild(at)
        lat.append(time.perf_counter() - t0)
        want = expected_seq(at)
        assert state.seq == want and state.last_hash == records[want - 1].hash, (at, state.seq, want)
        if i == 0:  # one in full: the rebuilt state is exactly the fold of the history up to then
            assert st.to_doc(state) == st.to_doc(st.fold(records[:want])), "rebuild(at) differs from the fold"
        snap_seqs.append(snap_seq)
        del state
    T.log(f"{name} [{label}]: Node.rebuild(at) median {statistics.median(lat):.3f} s, "
          f"p99 {T.percentile(lat, 99):.3f} s")
    steps = []
    for at in times:
        gc.collect()
        state, s = rebuild_steps(log, at)
        steps.append(s)
        del state
    return {
        **T.summary_ms(lat),
        "snapshot_seq": snap_seqs,
        "steps_median_s": {k: statistics.median(s[k] for s in steps) for k in steps[0]},
        "steps_p99_s": {k: T.percentile([s[k] for s in steps], 99) for k in steps[0]},
    }


def run_backend(name: str, url: str, records, snaps, args, rng_seed: int) -> dict:
    n = len(records)
    out: dict = {"backend": name, "events": n}
    engine = make_engine(url)
    migrate(engine)
    log = EventLog(engine, lambda: None)
    T.log(f"{name}: bulk insert of {n:,} events")
    with T.Timer() as t:
        H.bulk_insert(log, records)
    out["bulk_insert_s"] = t.seconds
    T.log(f"{name}: inserted in {t.seconds:.1f} s")
    mine = [s for s in snaps if s["seq"] <= n]
    with T.Timer() as t:
        for s in mine:
            log.save_snapshot(s["seq"], s["at"], s["doc"])
    out["save_snapshots_s"] = t.seconds
    out["snapshots"] = len(mine)
    if name == "postgresql":  # statistics, as autovacuum would have them in service
        with engine.connect() as conn:
            conn.exec_driver_sql("ANALYZE")
            conn.commit()

    node = Node(log, Tracks(engine), make_bus(None), catalog=None, snapshot_every=args.snapshot_every)
    ats_text = [r.at for r in records]
    first, last = parse_at(records[0].at), parse_at(records[-1].at)
    rng = random.Random(rng_seed)
    times = [first + (last - first) * rng.random() for _ in range(args.samples)]

    def expected_seq(at) -> int:
        return bisect.bisect_right(ats_text, format_at(at))

    node.rebuild(times[0])  # warm: connection pool, page cache
    out["every_n"] = measure(name, f"snapshots every {args.snapshot_every:,}", node, log, records, times,
                             expected_seq)

    cold, cold_seqs = [], []
    for at in times[:args.cold_samples]:
        gc.collect()
        t0 = time.perf_counter()
        state = st.fold(log.iter_all(until_seq=log.seq_at(at)))
        cold.append(time.perf_counter() - t0)
        assert state.seq == expected_seq(at)
        cold_seqs.append(state.seq)
        T.log(f"{name}: fold from zero to seq {state.seq:,}: {cold[-1]:.2f} s")
        del state
    out["no_snapshots"] = {**T.summary_ms(cold), "samples_seq": cold_seqs,
                           "events_per_s": [s / c for s, c in zip(cold_seqs, cold)]}

    if args.also_every:
        with T.Timer() as t:
            count = 0
            for seq, at, doc in service_snapshots(records, [expected_seq(x) for x in times], args.also_every):
                log.save_snapshot(seq, at, doc)
                count += 1
        T.log(f"{name}: {count} snapshots added where snapshot_every={args.also_every} would have them "
              f"({t.seconds:.0f} s)")
        if name == "postgresql":
            with engine.connect() as conn:
                conn.exec_driver_sql("ANALYZE snapshots")
                conn.commit()
        out["also_every"] = measure(name, f"snapshots every {args.also_every:,}", node, log, records, times,
                                       expected_seq)
    engine.dispose()
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--events", type=int, default=1_000_000)
    p.add_argument("--pg-events", type=int, default=None, help="events for PostgreSQL (default: --events)")
    p.add_argument("--snapshot-every", type=int, default=SERVICE_SNAPSHOT_EVERY,
                   help=f"the snapshot series (default: the service's, {SERVICE_SNAPSHOT_EVERY:,})")
    p.add_argument("--also-every", type=int, default=2000,
                   help="then add, for each sampled time, the snapshot a node with this snapshot_every would "
                        "have saved last before it, and time again (0: skip)")
    p.add_argument("--samples", type=int, default=30)
    p.add_argument("--cold-samples", type=int, default=3, help="rebuilds from zero, for comparison")
    p.add_argument("--backends", default="sqlite,postgres")
    p.add_argument("--pg-url", default=None, help=f"admin URL (env CP_BENCH_PG_URL, default {T.DEFAULT_PG_URL})")
    p.add_argument("--seed", type=int, default=7)
    args = p.parse_args()
    backends = args.backends.split(",")
    admin = T.pg_admin_url(args.pg_url)
    pg_events = args.pg_events or args.events
    machine = T.machine()
    doc: dict = {"machine": machine, "args": vars(args), "target_s": TARGET_S}

    total = max(args.events if "sqlite" in backends else 0, pg_events if "postgres" in backends else 0)
    T.log(f"generating {total:,} events")
    with T.Timer() as t:
        records = H.generate(total)
    doc["generate_s"] = t.seconds
    # The generated history stays in memory for the checks; a service holds no such thing, so keep
    # it out of the garbage collector's sight (else every full collection walks ~10M objects).
    gc.collect()
    gc.freeze()
    T.log(f"generated in {t.seconds:.1f} s; making snapshots every {args.snapshot_every:,}")
    every = args.snapshot_every
    snaps = make_snapshots(records, every)
    last = snaps[-1]
    # The serving node's own live projection (head state) is in memory while it answers state?at.
    live_state = st.fold(records)
    doc["state_at_end"] = {"seq": live_state.seq, "incidents": len(live_state.incidents),
                           "open_incidents": sum(1 for i in live_state.incidents.values() if i.status == "open"),
                           "assignments": len(live_state.assignments),
                           "active_assignments": sum(1 for a in live_state.assignments.values() if a.active),
                           "units": len(live_state.units), "streams": len(live_state.versions),
                           "span": [records[0].at, records[-1].at]}
    gc.collect()
    with T.Timer() as t_loads:
        loaded = json.loads(last["doc"])
    with T.Timer() as t_from:
        st.from_doc(loaded)
    del loaded
    doc["snapshot"] = {
        "seq": last["seq"], "bytes": last["bytes"], "json_loads_s": t_loads.seconds, "from_doc_s": t_from.seconds,
        "max_bytes": max(s["bytes"] for s in snaps),
        "to_doc_s_median": statistics.median(s["to_doc_s"] for s in snaps),
        "to_doc_s_max": max(s["to_doc_s"] for s in snaps),
        "dumps_s_median": statistics.median(s["dumps_s"] for s in snaps),
        "dumps_s_max": max(s["dumps_s"] for s in snaps),
        "series": [(s["seq"], s["bytes"], round(s["to_doc_s"], 4), round(s["dumps_s"], 4)) for s in snaps],
    }
    # what the service default would store over this history: sizes grow ~linearly with seq
    seqs = [s["seq"] for s in snaps]
    sizes = [s["bytes"] for s in snaps]

    def size_at(seq: int) -> float:
        i = bisect.bisect_left(seqs, seq)
        if i == 0:
            return sizes[0] * seq / seqs[0]
        if i >= len(seqs):
            return sizes[-1]
        return sizes[i - 1] + (sizes[i] - sizes[i - 1]) * (seq - seqs[i - 1]) / (seqs[i] - seqs[i - 1])

    doc["service_default_estimate"] = {
        "snapshot_every": SERVICE_SNAPSHOT_EVERY,
        "snapshots": total // SERVICE_SNAPSHOT_EVERY,
        "total_bytes": sum(size_at(k) for k in range(SERVICE_SNAPSHOT_EVERY, total + 1, SERVICE_SNAPSHOT_EVERY)),
    }

    results = []
    if "sqlite" in backends:
        with T.sqlite_url() as url:
            results.append(run_backend("sqlite", url, records[:args.events], snaps, args, args.seed))
    if "postgres" in backends:
        machine["postgresql"] = T.pg_version(admin)
        if machine["postgresql"] is None:
            T.log(f"PostgreSQL not reachable at {admin}; skipped")
        else:
            with T.postgres_url(admin) as url:
                results.append(run_backend("postgresql", url, records[:pg_events], snaps, args, args.seed))
    doc["results"] = results
    del live_state

    default = " (service default)" if args.snapshot_every == SERVICE_SNAPSHOT_EVERY else ""
    configs = [("every_n", f"every {args.snapshot_every:,}{default}"), ("no_snapshots", "none (fold from 0)")]
    if args.also_every:
        configs.insert(1, ("also_every", f"every {args.also_every:,} (emulated)"))
    rows = []
    for r in results:
        for key, label in configs:
            c = r[key]
            rows.append((r["backend"], r["events"], label, c["n"], c["median_ms"] / 1000, c["p99_ms"] / 1000,
                         c["max_ms"] / 1000))
    print(T.table(["backend", "events", "snapshots", "samples", "median s", "p99 s", "max s"], rows,
                  title="Node.rebuild(at) for random times across the history"))
    print()
    step_rows = []
    for r in results:
        for key, label in configs:
            if "steps_median_s" not in r[key]:
                continue
            m, q = r[key]["steps_median_s"], r[key]["steps_p99_s"]
            for k in ("snapshot_query_s", "json_loads_s", "from_doc_s", "seq_at_s", "tail_read_s", "tail_fold_s", "total_s"):
                step_rows.append((r["backend"], label, k[:-2], m[k], q[k]))
            step_rows.append((r["backend"], label, "tail events", m["tail_events"], q["tail_events"]))
    print(T.table(["backend", "snapshots", "step", "median s", "p99 s"], step_rows,
                  title="Where a rebuild's time goes (same times, step by step)"))
    s = doc["snapshot"]
    e = doc["service_default_estimate"]
    print(f"\none snapshot at seq {s['seq']:,}: {s['bytes'] / 1e6:.2f} MB (largest {s['max_bytes'] / 1e6:.2f} MB); "
          f"json.loads {s['json_loads_s'] * 1000:.0f} ms; from_doc {s['from_doc_s'] * 1000:.0f} ms")
    print(f"making one as Node does: to_doc under the lock median {s['to_doc_s_median'] * 1000:.0f} ms "
          f"(max {s['to_doc_s_max'] * 1000:.0f}); json.dumps in a worker thread, holding the GIL, median "
          f"{s['dumps_s_median'] * 1000:.0f} ms (max {s['dumps_s_max'] * 1000:.0f})")
    print(f"service default snapshot_every={e['snapshot_every']:,}: {e['snapshots']} snapshots over this history, "
          f"~{e['total_bytes'] / 1e9:.2f} GB in all")
    for r in results:
        for key, label in configs[:-1]:
            med, p99 = r[key]["median_ms"] / 1000, r[key]["p99_ms"] / 1000
            verdict = "met" if p99 <= TARGET_S else ("median met, p99 MISSED" if med <= TARGET_S else "MISSED")
            print(f"target state?at over {r['events']:,} events <= {TARGET_S:.0f} s ({r['backend']}, snapshots {label}): "
                  f"median {med:.2f} s, p99 {p99:.2f} s -> {verdict}")
    path = T.write_json("state_at", doc)
    T.log(f"wrote {path}")


if __name__ == "__main__":
    main()
