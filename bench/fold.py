"""Fold rate of the projection, and read + decode + fold rate from a SQLite log.

1. Builds ``--events`` (default 1,000,000) realistic recorded events in memory (see ``_history.py``:
   ~500 units commissioned, then overlapping incidents taken through report, note, assign,
   en route, on scene, [transport], clear, note, close), with real chained hashes.
2. Times ``coordinator.state.fold`` over them (``--reps`` runs, median).
3. Puts them in a SQLite log (bulk insert of the rows ``EventLog.append`` writes; timed too), then
   times ``EventLog.iter_all()`` alone (read + decode), ``fold(EventLog.iter_all())`` (read + decode +
   fold, i.e. a start-up rebuild without snapshots) and ``EventLog.verify()``.

Target (the issue): fold >= 150,000 events/s.

    .venv/bin/python bench/fold.py [--events 1000000] [--reps 5] [--db-reps 3] [--no-db] [--profile]

``--profile`` (needs pyinstrument) writes bench/results/fold_profile.txt: where the time of one
read + decode + fold and one verify goes.
"""

from __future__ import annotations

import argparse
import gc
import time

import _timing as T
import _history as H

from coordinator import state as st
from coordinator.log import EventLog, make_engine, migrate

TARGET_FOLD = 150_000


def repeat(fn, reps: int, label: str) -> list[float]:
    out = []
    for i in range(reps):
        gc.collect()
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
        T.log(f"{label} run {i + 1}/{reps}: {out[-1]:.2f} s")
    return out


def drain(iterable) -> int:
    n = 0
    for _ in iterable:
        n += 1
    return n


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--events", type=int, default=1_000_000)
    p.add_argument("--reps", type=int, default=5, help="in-memory fold runs")
    p.add_argument("--db-reps", type=int, default=3, help="runs of each SQLite measurement")
    p.add_argument("--no-db", dest="db", action="store_false", help="skip the SQLite part")
    p.add_argument("--profile", action="store_true", help="write a pyinstrument profile to bench/results/")
    args = p.parse_args()
    n = args.events
    doc: dict = {"machine": T.machine(), "args": vars(args), "target_fold_events_per_s": TARGET_FOLD}

    T.log(f"generating {n:,} events")
    with T.Timer() as t:
        records = H.generate(n)
    doc["generate_s"] = t.seconds
    doc["type_mix"] = H.type_mix(records)
    final = st.fold(records)
    doc["final_state"] = {"incidents": len(final.incidents),
                          "open_incidents": sum(1 for i in final.incidents.values() if i.status == "open"),
                          "units": len(final.units),
                          "assignments": len(final.assignments), "streams": len(final.versions),
                          "span": [records[0].at, records[-1].at]}
    T.log(f"generated in {t.seconds:.1f} s: {doc['final_state']}")
    # The generated history must stay in memory to be folded; keep it out of the garbage collector's
    # sight, or every full collection during a fold walks its ~10M objects (a service holds no such list).
    gc.collect()
    gc.freeze()

    rows = []
    fold_runs = repeat(lambda: st.fold(records), args.reps, "fold (in memory)")
    doc["fold_in_memory"] = T.rate_summary(n, fold_runs)
    rows.append(("fold, in memory", n, doc["fold_in_memory"]))

    if args.db:
        with T.sqlite_url() as url:
            engine = make_engine(url)
            migrate(engine)
            log = EventLog(engine, lambda: None)
            T.log("bulk insert into SQLite")
            with T.Timer() as t:
                H.bulk_insert(log, records)
            doc["sqlite_bulk_insert"] = {"events": n, "seconds": t.seconds, "events_per_s": n / t.seconds}
            size = sum(f.stat().st_size for f in T.Path(url.split("///", 1)[1]).parent.iterdir())
            doc["sqlite_file_bytes"] = size
            T.log(f"inserted in {t.seconds:.1f} s, {size / 1e6:.0f} MB")

            reads = repeat(lambda: drain(log.iter_all()), args.db_reps, "read + decode")
            doc["read_decode"] = T.rate_summary(n, reads)
            rows.append(("SQLite iter_all (read + decode)", n, doc["read_decode"]))

            states = []
            rf = repeat(lambda: states.append(st.fold(log.iter_all())), args.db_reps, "read + decode + fold")
            doc["read_decode_fold"] = T.rate_summary(n, rf)
            rows.append(("SQLite iter_all + fold", n, doc["read_decode_fold"]))
            assert states[-1].seq == final.seq and states[-1].last_hash == final.last_hash
            assert st.to_doc(states[-1]) == st.to_doc(final), "fold from the log differs from fold in memory"
            states.clear()

            results = []
            vr = repeat(lambda: results.append(log.verify()), args.db_reps, "verify")
            assert results[-1].ok and results[-1].checked == n, results[-1]
            doc["verify"] = T.rate_summary(n, vr)
            rows.append(("SQLite EventLog.verify()", n, doc["verify"]))

            if args.profile:
                try:
                    from pyinstrument import Profiler
                except ImportError:
                    T.log("pyinstrument not installed; no profile")
                else:
                    out = []
                    for label, fn in (("fold(log.iter_all())", lambda: st.fold(log.iter_all())),
                                      ("log.verify()", log.verify),
                                      ("fold(records) in memory", lambda: st.fold(records))):
                        prof = Profiler(interval=0.001)
                        prof.start()
                        fn()
                        prof.stop()
                        out.append(f"==== {label}\n{prof.output_text(show_all=False)}")
                    path = T.RESULTS / "fold_profile.txt"
                    T.RESULTS.mkdir(exist_ok=True)
                    path.write_text("\n".join(out))
                    T.log(f"wrote {path}")
            engine.dispose()

    print(T.table(["measurement", "events", "median s", "median events/s", "best events/s", "worst events/s"],
                  [(label, count, r["median_s"], r["median_per_s"], r["best_per_s"], r["worst_per_s"])
                   for label, count, r in rows],
                  title=f"Fold and replay over {n:,} events"))
    rate = doc["fold_in_memory"]["median_per_s"]
    print(f"\ntarget fold >= {TARGET_FOLD:,} events/s: {rate:,.0f} -> {'met' if rate >= TARGET_FOLD else 'MISSED'}")
    if "read_decode_fold" in doc:
        r2 = doc["read_decode_fold"]["median_per_s"]
        print(f"read + decode + fold from SQLite: {r2:,.0f} events/s "
              f"({'meets' if r2 >= TARGET_FOLD else 'below'} the fold target end to end)")
    path = T.write_json("fold", doc)
    T.log(f"wrote {path}")


if __name__ == "__main__":
    main()
