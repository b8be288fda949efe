"""A realistic, consistent dispatch history for the fold / replay / state?at benchmarks.

``generate(n)`` simulates a city: ~500 units commissioned first (the demo city's fleet, repeated),
then incidents arriving at random, each taken through the real command flow as the handlers in
``coordinator.handlers`` would record it, in one decision (one shared ``at``) per command:

    IncidentReported                               (dispatcher)
    NoteAdded                                      (dispatcher, caller details)
    [UnitAssigned, UnitStatusChanged dispatched] x k units, one decision (dispatcher)
    per unit: [AssignmentAcknowledged, UnitStatusChanged en_route]   (unit)
              [UnitStatusChanged on_scene]
              ems transport units, often: transporting, at_hospital
              [AssignmentEnded cleared, UnitStatusChanged available]
              (about 5 % are cancelled en route instead: AssignmentEnded cancelled + available)
    NoteAdded                                      (dispatcher, disposition)
    IncidentClosed

Units are chosen per response-plan line among those available, so a unit is never on two
incidents at once. Incidents overlap in time; ``at`` never runs backwards; seq is contiguous;
stream versions count up; ids are uuid4-shaped like the API's. Deterministic for a seed.
With ``hashes=True`` each record carries the real chained hash, so ``EventLog.verify()`` passes
once the records are in a log.
"""

from __future__ import annotations

import heapq
import json
import random
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any, Iterable, Iterator

import _timing  # noqa: F401  (puts the repository root on sys.path)

from agencies.demo import demo_bounds, generate_demo_city
from agencies.plans import load_plans
from coordinator import events as ev
from coordinator import state as st
from coordinator import log as _log
from coordinator.log import EventLog, events_table, format_at

_plain = getattr(_log, "plain", lambda value: value)  # the log hashes what the store keeps (-0.0 as 0.0)
from geo import LatLon

T0 = datetime(2026, 1, 1, 0, 0, 0, tzinfo=timezone.utc)

# rough call mix of a US city (EMS-heavy), by incident type id in agencies/data/plans.toml
MIX = {
    "medical_emergency": 30, "fall": 10, "cardiac_arrest": 3, "overdose": 5,
    "traffic_collision_injury": 6, "traffic_collision_no_injury": 8, "welfare_check": 8,
    "domestic_violence": 5, "burglary_in_progress": 4, "robbery_in_progress": 2, "shooting": 1,
    "missing_person": 1, "fire_alarm": 8, "structure_fire": 2, "vehicle_fire": 2, "brush_fire": 1,
    "gas_leak": 2, "hazmat": 0.3, "water_rescue": 0.2, "mass_casualty": 0.1,
}
STREETS = ["Main St", "Grand Ave", "University Ave", "Summit Ave", "7th St W", "Payne Ave", "Rice St",
           "Snelling Ave", "Lexington Pkwy", "Dale St", "Arcade St", "White Bear Ave"]


class _Sim:
    def __init__(self, n_events: int, n_units: int, seed: int, hashes: bool, mean_gap_s: float):
        self.rng = random.Random(seed)
        self.n_events = n_events
        self.hashes = hashes
        self.mean_gap_s = mean_gap_s
        self.city = generate_demo_city()
        self.plans = load_plans()
        self.bounds = demo_bounds()
        self.out: list[ev.Recorded] = []
        self.versions: dict[str, int] = {}
        self.prev_hash = ev.GENESIS_HASH
        self.heap: list[tuple[int, int, tuple]] = []
        self.counter = 0
        self.types = [t for t in MIX if t in self.plans.incident_types]
        self.weights = [MIX[t] for t in self.types]
        self.unit_kind: dict[str, str] = {}
        self.unit_caps: dict[str, list[str]] = {}
        self.unit_status: dict[str, str] = {}
        self.available: dict[tuple[str, str], dict[str, None]] = {}  # (kind, capability) -> ordered set
        self.agency_of_kind = {a.kind.value: a.id for a in self.city.agencies}
        self.incidents: dict[str, dict[str, Any]] = {}
        self._fleet(n_units)

    # -- helpers -------------------------------------------------------------------------------
    def uid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def at(self, t_us: int) -> str:
        return format_at(T0 + timedelta(microseconds=t_us))

    def emit(self, t_us: int, actor: str, events: Iterable[ev.Event]) -> None:
        at = self.at(t_us)
        for event in events:
            if len(self.out) >= self.n_events:
                return
            seq = len(self.out) + 1
            stream = event.stream()
            version = self.versions.get(stream, 0) + 1
            self.versions[stream] = version
            type_name = type(event).__name__
            data = _plain(ev.to_data(event))
            eid = self.uid()
            digest = (ev.chain_hash(seq, eid, type_name, at, stream, version, actor, data, self.prev_hash)
                      if self.hashes else f"h{seq}")
            self.out.append(ev.Recorded(seq, eid, type_name, at, stream, version, actor, data,
                                        self.prev_hash, digest))
            self.prev_hash = digest

    def later(self, t_us: int, lo_s: float, hi_s: float, action: tuple) -> None:
        self.counter += 1
        heapq.heappush(self.heap, (t_us + int(self.rng.uniform(lo_s, hi_s) * 1e6), self.counter, action))

    def set_status(self, unit_id: str, status: str) -> None:
        was = self.unit_status[unit_id]
        self.unit_status[unit_id] = status
        keys = [(self.unit_kind[unit_id], c) for c in self.unit_caps[unit_id]]
        if status == "available" and was != "available":
            for k in keys:
                self.available[k][unit_id] = None
        elif status != "available" and was == "available":
            for k in keys:
                self.available[k].pop(unit_id, None)

    # -- the simulation ------------------------------------------------------------------------
    def _fleet(self, n_units: int) -> None:
        specs = self.city.units
        events = []
        for n in range(n_units):
            spec = specs[n % len(specs)]
            unit_id = spec.id if n < len(specs) else f"{spec.id}-{n // len(specs) + 1}"
            unit_type = self.plans.unit_type(spec.type)
            caps = sorted(unit_type.capabilities)
            kind = unit_type.kind.value
            self.unit_kind[unit_id], self.unit_caps[unit_id], self.unit_status[unit_id] = kind, caps, "available"
            for c in caps:
                self.available.setdefault((kind, c), {})[unit_id] = None
            events.append(ev.UnitCommissioned(unit_id=unit_id, agency_id=spec.agency_id, unit_type=spec.type,
                                              capabilities=caps, station_id=spec.station_id,
                                              home=spec.home.to_json()))
        for i in range(0, len(events), 50):  # the start-up commissioning, a few decisions
            self.emit(0, "admin:system", events[i:i + 50])

    def run(self) -> list[ev.Recorded]:
        self.later(0, 1, 1, ("report",))
        while len(self.out) < self.n_events:
            t, _, action = heapq.heappop(self.heap)
            getattr(self, "_" + action[0])(t, *action[1:])
        return self.out

    def _report(self, t: int) -> None:
        self.later(t, 0, 2 * self.mean_gap_s, ("report",))  # the next call
        w, s, e, n = self.bounds
        loc = LatLon(round(self.rng.uniform(s, n), 6), round(self.rng.uniform(w, e), 6))
        type_id = self.rng.choices(self.types, self.weights)[0]
        itype = self.plans.incident_type(type_id)
        districts = self.city.districts.at(loc)
        kinds = {k.value for k in itype.plan.kinds()}
        agencies = sorted({d.agency_id for d in districts if self.city.agency(d.agency_id).kind.value in kinds})
        incident_id = self.uid()
        self.incidents[incident_id] = {"plan": itype.plan, "open": set(), "assigned": 0}
        self.emit(t, f"dispatcher:d-{self.rng.randrange(1, 13)}", [ev.IncidentReported(
            incident_id=incident_id, incident_type=type_id, priority=itype.default_priority,
            location=loc.to_json(), reported_at=self.at(t - int(self.rng.uniform(5, 60) * 1e6)),
            districts=[{"agency_id": d.agency_id, "district_id": d.district_id, "name": d.name} for d in districts],
            agencies=agencies, address=f"{self.rng.randrange(1, 2999)} {self.rng.choice(STREETS)}",
            description=self.rng.choice([None, "caller reports " + type_id.replace("_", " "),
                                         "second caller, same address", "RP on scene, will meet units"]))])
        self.later(t, 5, 40, ("note", incident_id, "Caller: " + self.rng.choice(
            ["adult male, conscious", "smoke visible from the street", "two vehicles, one on its side",
             "neighbour called, no answer at door", "caller hung up, callback made"])))
        self.later(t, 20, 60, ("assign", incident_id, 0))

    def _note(self, t: int, incident_id: str, text: str) -> None:
        self.emit(t, f"dispatcher:d-{self.rng.randrange(1, 13)}",
                  [ev.NoteAdded(incident_id=incident_id, note_id=self.uid(), text=text)])

    def _assign(self, t: int, incident_id: str, attempt: int) -> None:
        inc = self.incidents[incident_id]
        chosen: list[str] = []
        for line in inc["plan"].lines:
            pool = self.available.get((line.kind.value, line.capability), {})
            for _ in range(line.count):
                free = [u for u in pool if u not in chosen]
                if not free:
                    break
                chosen.append(free[self.rng.randrange(len(free))] if len(free) < 8 else
                              free[self.rng.randrange(8)])  # "nearest" few
        if not chosen:
            if attempt < 5:
                self.later(t, 30, 90, ("assign", incident_id, attempt + 1))
            else:
                self.later(t, 10, 60, ("close", incident_id, "no units available"))
            return
        events: list[ev.Event] = []
        for unit_id in chosen:
            assignment_id = self.uid()
            events.append(ev.UnitAssigned(incident_id=incident_id, unit_id=unit_id, assignment_id=assignment_id))
            events.append(ev.UnitStatusChanged(unit_id=unit_id, status="dispatched",
                                               previous=self.unit_status[unit_id], incident_id=incident_id))
            self.set_status(unit_id, "dispatched")
            inc["open"].add(assignment_id)
            self.later(t, 15, 90, ("en_route", incident_id, unit_id, assignment_id))
        inc["assigned"] += len(chosen)
        self.emit(t, f"dispatcher:d-{self.rng.randrange(1, 13)}", events)

    def _en_route(self, t: int, incident_id: str, unit_id: str, assignment_id: str) -> None:
        self.emit(t, f"unit:{unit_id}", [
            ev.AssignmentAcknowledged(incident_id=incident_id, unit_id=unit_id, assignment_id=assignment_id),
            ev.UnitStatusChanged(unit_id=unit_id, status="en_route", previous="dispatched", incident_id=incident_id)])
        self.set_status(unit_id, "en_route")
        if self.rng.random() < 0.05:
            self.later(t, 20, 200, ("clear", incident_id, unit_id, assignment_id, "cancelled"))
        else:
            self.later(t, 120, 600, ("status", incident_id, unit_id, assignment_id, "on_scene"))

    def _status(self, t: int, incident_id: str, unit_id: str, assignment_id: str, status: str) -> None:
        previous = self.unit_status[unit_id]
        self.emit(t, f"unit:{unit_id}", [ev.UnitStatusChanged(unit_id=unit_id, status=status, previous=previous,
                                                              incident_id=incident_id)])
        self.set_status(unit_id, status)
        if status == "on_scene" and "transport" in self.unit_caps[unit_id] and self.rng.random() < 0.6:
            self.later(t, 600, 1500, ("status", incident_id, unit_id, assignment_id, "transporting"))
        elif status == "transporting":
            self.later(t, 300, 1200, ("status", incident_id, unit_id, assignment_id, "at_hospital"))
        else:
            self.later(t, 300, 1800, ("clear", incident_id, unit_id, assignment_id, "cleared"))

    def _clear(self, t: int, incident_id: str, unit_id: str, assignment_id: str, reason: str) -> None:
        previous = self.unit_status[unit_id]
        actor = f"unit:{unit_id}" if reason == "cleared" else f"dispatcher:d-{self.rng.randrange(1, 13)}"
        self.emit(t, actor, [
            ev.AssignmentEnded(incident_id=incident_id, unit_id=unit_id, assignment_id=assignment_id, reason=reason),
            ev.UnitStatusChanged(unit_id=unit_id, status="available", previous=previous, incident_id=incident_id)])
        self.set_status(unit_id, "available")
        inc = self.incidents[incident_id]
        inc["open"].discard(assignment_id)
        if not inc["open"]:
            self.later(t, 10, 120, ("note", incident_id, self.rng.choice(
                ["All units clear.", "Patient transported.", "Report taken, case number to follow.",
                 "False alarm, system reset.", "Scene turned over to owner."])))
            self.later(t, 130, 400, ("close", incident_id, self.rng.choice(
                ["resolved", "transported", "report_taken", "false_alarm", "gone_on_arrival"])))

    def _close(self, t: int, incident_id: str, disposition: str) -> None:
        self.emit(t, f"dispatcher:d-{self.rng.randrange(1, 13)}",
                  [ev.IncidentClosed(incident_id=incident_id, disposition=disposition)])
        del self.incidents[incident_id]


def generate(n_events: int = 1_000_000, n_units: int = 500, seed: int = 20261126, hashes: bool = True,
             mean_gap_s: float = 25.0) -> list[ev.Recorded]:
    """``n_events`` recorded events (exactly), deterministic for ``seed``; see the module docstring."""
    return _Sim(n_events, n_units, seed, hashes, mean_gap_s).run()


def type_mix(records: Iterable[ev.Recorded]) -> dict[str, int]:
    mix: dict[str, int] = {}
    for r in records:
        mix[r.type] = mix.get(r.type, 0) + 1
    return dict(sorted(mix.items(), key=lambda kv: -kv[1]))


# -- loading into a log ----------------------------------------------------------------------------
def bulk_insert(log: EventLog, records: list[ev.Recorded], chunk: int = 10_000) -> None:
    """Insert recorded events straight into ``events`` (the rows ``EventLog.append`` would write)."""
    for i in range(0, len(records), chunk):
        rows = [EventLog._row(r) for r in records[i:i + chunk]]
        with log._writer() as conn, conn.begin():
            conn.execute(events_table.insert(), rows)


def snapshot_json(state: st.State) -> tuple[str, float, float]:
    """A snapshot made as ``Node`` makes one: ``state.to_doc`` under the node's lock (on the event
    loop), then ``json.dumps`` in a worker thread. Returns (json, to_doc seconds, dumps seconds)."""
    import time
    t0 = time.perf_counter()
    doc = st.to_doc(state)
    t1 = time.perf_counter()
    text = json.dumps(doc, separators=(",", ":"))
    return text, t1 - t0, time.perf_counter() - t1


def snapshots(records: list[ev.Recorded], every: int) -> Iterator[tuple[int, str, str, float, float]]:
    """Fold ``records`` and yield (seq, at, state_json, to_doc s, dumps s) every ``every`` events."""
    state = st.State()
    for start in range(0, len(records), every):
        st.fold(records[start:start + every], state)
        if state.seq % every == 0:
            text, copy_s, dumps_s = snapshot_json(state)
            yield state.seq, state.at, text, copy_s, dumps_s
