"""The projection: current state computed from events, in memory.

``apply(state, recorded)`` is the one way state changes, whether live, at start-up or in
replay. It works on the recorded JSON data directly (no decoding into event classes), so
a fold runs at the speed the issue asks for. ``to_doc``/``from_doc`` make snapshots.
"""

from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterable

from .events import GENESIS_HASH, Recorded


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


@dataclass
class State:
    seq: int = 0
    at: str | None = None
    last_hash: str = GENESIS_HASH
    incidents: dict[str, Incident] = field(default_factory=dict)
    units: dict[str, Unit] = field(default_factory=dict)
    assignments: dict[str, Assignment] = field(default_factory=dict)
    versions: dict[str, int] = field(default_factory=dict)

    def version(self, stream: str) -> int:
        return self.versions.get(stream, 0)


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
    )


def _note_added(state: State, rec: Recorded, d: dict[str, Any]) -> None:
    state.incidents[d["incident_id"]].notes.append(
        {"id": d["note_id"], "at": rec.at, "author": rec.actor, "text": d["text"]})


def _unit_assigned(state: State, rec: Recorded, d: dict[str, Any]) -> None:
    state.assignments[d["assignment_id"]] = Assignment(
        id=d["assignment_id"], incident_id=d["incident_id"], unit_id=d["unit_id"], assigned_at=rec.at)
    state.incidents[d["incident_id"]].assignment_ids.append(d["assignment_id"])
    unit = state.units[d["unit_id"]]
    unit.assignment_id, unit.incident_id = d["assignment_id"], d["incident_id"]


def _assignment_acknowledged(state: State, rec: Recorded, d: dict[str, Any]) -> None:
    state.assignments[d["assignment_id"]].acknowledged_at = rec.at


def _assignment_ended(state: State, rec: Recorded, d: dict[str, Any]) -> None:
    assignment = state.assignments[d["assignment_id"]]
    assignment.active, assignment.ended_at, assignment.end_reason = False, rec.at, d["reason"]
    unit = state.units[d["unit_id"]]
    if unit.assignment_id == d["assignment_id"]:
        unit.assignment_id = unit.incident_id = None


def _unit_status_changed(state: State, rec: Recorded, d: dict[str, Any]) -> None:
    unit = state.units[d["unit_id"]]
    unit.status, unit.status_at = d["status"], rec.at


def _incident_closed(state: State, rec: Recorded, d: dict[str, Any]) -> None:
    incident = state.incidents[d["incident_id"]]
    incident.status, incident.closed_at, incident.disposition = "closed", rec.at, d.get("disposition")


APPLY: dict[str, Callable[[State, Recorded, dict[str, Any]], None]] = {
    "UnitCommissioned": _unit_commissioned,
    "IncidentReported": _incident_reported,
    "NoteAdded": _note_added,
    "UnitAssigned": _unit_assigned,
    "AssignmentAcknowledged": _assignment_acknowledged,
    "AssignmentEnded": _assignment_ended,
    "UnitStatusChanged": _unit_status_changed,
    "IncidentClosed": _incident_closed,
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
    return True


def fold(records: Iterable[Recorded], state: State | None = None) -> State:
    state = state if state is not None else State()
    for rec in records:
        apply(state, rec)
    return state


def to_doc(state: State) -> dict[str, Any]:
    return asdict(state)


def from_doc(doc: dict[str, Any]) -> State:
    return State(
        seq=doc["seq"], at=doc["at"], last_hash=doc["last_hash"], versions=dict(doc["versions"]),
        incidents={k: Incident(**v) for k, v in doc["incidents"].items()},
        units={k: Unit(**v) for k, v in doc["units"].items()},
        assignments={k: Assignment(**v) for k, v in doc["assignments"].items()},
    )
