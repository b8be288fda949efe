"""The projection: current state computed from events, in memory.

``apply(state, recorded)`` is the one way state changes, whether live, at start-up or in
replay. It works on the recorded JSON data directly (no decoding into event classes), so
a fold runs at the speed the issue asks for. ``to_doc``/``from_doc`` make snapshots.

The live picture holds every unit, every open incident and the incidents closed in the
last ``RETAIN_CLOSED`` (by event time, so replay drops them exactly as live did); older
ones stay in the log and are rebuilt from it on request. That keeps memory, snapshots and
start-up bounded by a day's work rather than by the age of the log.
"""

import math
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from .events import GENESIS_HASH, Recorded

RETAIN_CLOSED = timedelta(hours=24)
OPEN_CELL_DEG = 0.002  # open incidents are indexed in cells this many degrees of latitude and longitude wide
LON_CELLS = round(360 / OPEN_CELL_DEG)  # cells around a parallel


@dataclass
class Unit:
    id: str
    agency_id: str
    type: str
    capabilities: list[str]
    station_id: str | None
    home: dict[str, float]
    status: str = "available"
    assignment_id: str | None = None
    incident_id: str | None = None
    status_at: str | None = None


@dataclass
class Assignment:
    id: str
    incident_id: str
    unit_id: str
    assigned_at: str
    active: bool = True
    acknowledged_at: str | None = None
    unacknowledged_at: str | None = None  # when the ack watchdog flagged it; a later ack still counts
    ended_at: str | None = None
    end_reason: str | None = None


@dataclass
class Incident:
    id: str
    type: str
    priority: int
    location: dict[str, float]
    reported_at: str
    opened_at: str
    districts: list[dict[str, str]]
    agencies: list[str]
    address: str | None = None
    description: str | None = None
    status: str = "open"
    closed_at: str | None = None
    disposition: str | None = None
    notes: list[dict[str, str]] = field(default_factory=list)
    assignment_ids: list[str] = field(default_factory=list)
    possible_duplicate_of: list[str] = field(default_factory=list)
    recommendation: dict[str, Any] | None = None


@dataclass
class State:
    seq: int = 0
    at: str | None = None
    last_hash: str = GENESIS_HASH
    incidents: dict[str, Incident] = field(default_factory=dict)
    units: dict[str, Unit] = field(default_factory=dict)
    assignments: dict[str, Assignment] = field(default_factory=dict)
    versions: dict[str, int] = field(default_factory=dict)
    expiries: deque[tuple[str, str]] = field(default_factory=deque)  # (drop at, incident id), in close order
    revoked: dict[str, str] = field(default_factory=dict)  # token id -> when it was revoked
    issued: dict[str, str | None] = field(default_factory=dict)  # token id -> expiry, for tokens issued by the API
    # Derived, never stored: open incident ids by cell (band of latitude, then of longitude), so a report's
    # duplicate check reads the few open incidents near it instead of every incident of the last day.
    open_cells: dict[int, dict[int, set[str]]] = field(default_factory=dict, compare=False, repr=False)

    def version(self, stream: str) -> int:
        return self.versions.get(stream, 0)

    def open_incidents_near(self, lat: float, lon: float, lat_deg: float, lon_deg: float) -> Iterator["Incident"]:
        """Open incidents that may lie within ``lat_deg`` of ``lat`` and ``lon_deg`` of ``lon`` (the short way
        round the antimeridian): a superset, the caller checks the distance."""
        first, last = math.floor((lon - lon_deg) / OPEN_CELL_DEG), math.floor((lon + lon_deg) / OPEN_CELL_DEG)
        for band in range(math.floor((lat - lat_deg) / OPEN_CELL_DEG), math.floor((lat + lat_deg) / OPEN_CELL_DEG) + 1):
            row = self.open_cells.get(band)
            if not row:
                continue
            if last - first + 1 >= min(len(row), LON_CELLS):  # fewer cells in the row than asked: read them all
                cells = row.values()
            else:
                cells = (row.get(_wrapped(cell), ()) for cell in range(first, last + 1))
            for ids in cells:
                for incident_id in ids:
                    yield self.incidents[incident_id]


def _wrapped(cell: int) -> int:
    return (cell + LON_CELLS // 2) % LON_CELLS - LON_CELLS // 2


def _cell(incident: "Incident") -> tuple[int, int]:
    return (math.floor(incident.location["lat"] / OPEN_CELL_DEG),
            _wrapped(math.floor(incident.location["lon"] / OPEN_CELL_DEG)))


def _enter(state: "State", incident: "Incident") -> None:
    band, cell = _cell(incident)
    state.open_cells.setdefault(band, {}).setdefault(cell, set()).add(incident.id)


def _leave(state: "State", incident: "Incident") -> None:
    band, cell = _cell(incident)
    row = state.open_cells.get(band, {})
    ids = row.get(cell)
    if ids is not None:
        ids.discard(incident.id)
        if not ids:
            del row[cell]
            if not row:
                del state.open_cells[band]


def _unit_commissioned(state: State, rec: Recorded, d: dict[str, Any]) -> None:
    state.units[d["unit_id"]] = Unit(
        id=d["unit_id"], agency_id=d["agency_id"], type=d["unit_type"], capabilities=list(d["capabilities"]),
        station_id=d["station_id"], home=dict(d["home"]), status_at=rec.at,
    )


def _incident_reported(state: State, rec: Recorded, d: dict[str, Any]) -> None:
    state.incidents[d["incident_id"]] = Incident(
        id=d["incident_id"], type=d["incident_type"], priority=d["priority"], location=dict(d["location"]),
        reported_at=d["reported_at"], opened_at=rec.at, districts=[dict(x) for x in d["districts"]],
        agencies=list(d["agencies"]), address=d.get("address"), description=d.get("description"),
        possible_duplicate_of=list(d.get("possible_duplicate_of", ())),
    )
    _enter(state, state.incidents[d["incident_id"]])


def _recommendation_made(state: State, rec: Recorded, d: dict[str, Any]) -> None:
    """The incident keeps the latest recommendation, without the inputs it was made from."""
    state.incidents[d["incident_id"]].recommendation = {
        "at": rec.at, "seq": rec.seq, "trigger": d["trigger"], "lines": d["lines"], "shortfall": d["shortfall"],
        "coverage_cost": d["coverage_cost"], "responsible": d["responsible"]}


def _note_added(state: State, rec: Recorded, d: dict[str, Any]) -> None:
    state.incidents[d["incident_id"]].notes.append(
        {"id": d["note_id"], "at": rec.at, "author": rec.actor, "text": d["text"]})


def _unit_assigned(state: State, rec: Recorded, d: dict[str, Any]) -> None:
    state.assignments[d["assignment_id"]] = Assignment(
        id=d["assignment_id"], incident_id=d["incident_id"], unit_id=d["unit_id"], assigned_at=rec.at)
    state.incidents[d["incident_id"]].assignment_ids.append(d["assignment_id"])
    unit = state.units.get(d["unit_id"])  # absent only when one incident is rebuilt alone (archive)
    if unit is not None:
        unit.assignment_id, unit.incident_id = d["assignment_id"], d["incident_id"]


def _assignment_acknowledged(state: State, rec: Recorded, d: dict[str, Any]) -> None:
    state.assignments[d["assignment_id"]].acknowledged_at = rec.at


def _assignment_unacknowledged(state: State, rec: Recorded, d: dict[str, Any]) -> None:
    state.assignments[d["assignment_id"]].unacknowledged_at = rec.at


def _assignment_ended(state: State, rec: Recorded, d: dict[str, Any]) -> None:
    assignment = state.assignments[d["assignment_id"]]
    assignment.active, assignment.ended_at, assignment.end_reason = False, rec.at, d["reason"]
    unit = state.units.get(d["unit_id"])
    if unit is not None and unit.assignment_id == d["assignment_id"]:
        unit.assignment_id = unit.incident_id = None


def _unit_status_changed(state: State, rec: Recorded, d: dict[str, Any]) -> None:
    unit = state.units[d["unit_id"]]
    unit.status, unit.status_at = d["status"], rec.at


def _incident_closed(state: State, rec: Recorded, d: dict[str, Any]) -> None:
    incident = state.incidents[d["incident_id"]]
    incident.status, incident.closed_at, incident.disposition = "closed", rec.at, d.get("disposition")
    _leave(state, incident)
    state.expiries.append((_later(rec.at, RETAIN_CLOSED), incident.id))


def _later(at: str, delta: timedelta) -> str:
    return (datetime.fromisoformat(at) + delta).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _expire(state: State, now: str) -> None:
    """Drop incidents closed longer than RETAIN_CLOSED ago (ISO strings of one format compare as times)."""
    while state.expiries and state.expiries[0][0] <= now:
        _, incident_id = state.expiries.popleft()
        incident = state.incidents.pop(incident_id, None)
        state.versions.pop(f"incident/{incident_id}", None)
        for assignment_id in incident.assignment_ids if incident else ():
            state.assignments.pop(assignment_id, None)


def _token_issued(state: State, rec: Recorded, d: dict[str, Any]) -> None:
    """Known, so that a revocation names a token that exists; valid by its signature until it expires."""
    state.issued[d["token_id"]] = d.get("expires_at")


def _token_revoked(state: State, rec: Recorded, d: dict[str, Any]) -> None:
    state.revoked[d["token_id"]] = rec.at


APPLY: dict[str, Callable[[State, Recorded, dict[str, Any]], None]] = {
    "UnitCommissioned": _unit_commissioned,
    "IncidentReported": _incident_reported,
    "RecommendationMade": _recommendation_made,
    "NoteAdded": _note_added,
    "UnitAssigned": _unit_assigned,
    "AssignmentAcknowledged": _assignment_acknowledged,
    "AssignmentUnacknowledged": _assignment_unacknowledged,
    "AssignmentEnded": _assignment_ended,
    "UnitStatusChanged": _unit_status_changed,
    "IncidentClosed": _incident_closed,
    "TokenIssued": _token_issued,
    "TokenRevoked": _token_revoked,
}


def apply(state: State, rec: Recorded) -> bool:
    """Apply one recorded event; an event already folded in (``seq <= state.seq``) is ignored."""
    if rec.seq <= state.seq:
        return False
    if rec.seq != state.seq + 1:
        raise ValueError(f"gap in the event sequence: state is at {state.seq}, next event is {rec.seq}")
    APPLY[rec.type](state, rec, rec.data)
    state.seq, state.at, state.last_hash = rec.seq, rec.at, rec.hash
    state.versions[rec.stream] = rec.version
    if state.expiries and state.expiries[0][0] <= rec.at:
        _expire(state, rec.at)
    return True


def fold(records: Iterable[Recorded], state: State | None = None) -> State:
    state = state if state is not None else State()
    for rec in records:
        apply(state, rec)
    return state


def replay_incident(records: Iterable[Recorded]) -> State | None:
    """One incident rebuilt alone from its own stream (for incidents no longer in the live picture)."""
    scratch = State()
    for rec in records:
        if rec.stream.startswith("incident/"):
            APPLY[rec.type](scratch, rec, rec.data)
            scratch.versions[rec.stream] = rec.version
    return scratch if scratch.incidents else None


def to_doc(state: State) -> dict[str, Any]:
    """A snapshot document. Copies are shallow but whole: apply replaces nested values except the
    two lists it appends to, which are copied, so the document may be serialised after the lock is let go."""
    return {
        "seq": state.seq, "at": state.at, "last_hash": state.last_hash, "versions": dict(state.versions),
        "incidents": {k: {**vars(v), "notes": list(v.notes), "assignment_ids": list(v.assignment_ids)}
                      for k, v in state.incidents.items()},
        "units": {k: dict(vars(v)) for k, v in state.units.items()},
        "assignments": {k: dict(vars(v)) for k, v in state.assignments.items()},
        "expiries": [list(e) for e in state.expiries],
        "revoked": dict(state.revoked),
        "issued": dict(state.issued),
    }


def copy(state: State) -> State:
    """An independent projection equal to ``state``: ``apply`` on one never changes the other."""
    return from_doc(to_doc(state))


def from_doc(doc: dict[str, Any]) -> State:
    state = State(
        seq=doc["seq"], at=doc["at"], last_hash=doc["last_hash"], versions=dict(doc["versions"]),
        incidents={k: Incident(**v) for k, v in doc["incidents"].items()},
        units={k: Unit(**v) for k, v in doc["units"].items()},
        assignments={k: Assignment(**v) for k, v in doc["assignments"].items()},
        expiries=deque(tuple(e) for e in doc.get("expiries", ())),
        revoked=dict(doc.get("revoked", {})),
        issued=dict(doc.get("issued", {})),
    )
    for incident in state.incidents.values():
        if incident.status == "open":
            _enter(state, incident)
    return state
