"""Decisions: ``decide(state, command, catalog) -> Decision``. Pure: no I/O, no clock, no ids.

Each handler checks the command against the current state and returns the events it
causes together with the stream versions it saw; the log refuses the append if another
writer changed one of those streams in between (a 409, state unchanged).
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from agencies.lifecycle import (
    ENGAGED,
    InvalidTransition,
    UnitStatus,
    check_transition,
    parse_status,
)
from agencies.recommend import Recommendation
from geo import LatLon

from . import commands as c
from . import events as e
from .catalog import Catalog, Policy
from .errors import Conflict, Invalid, NotFound
from .recommendations import (
    auto_assignment_id,
    possible_duplicates,
    recommendation_for,
    recommendation_made,
    rederive,
    still_needed,
)
from .state import Assignment, Incident, State, Unit

__all__ = ["HANDLERS", "Catalog", "Decision", "Policy", "current_recommendation", "decide", "rederive"]


@dataclass(frozen=True)
class Decision:
    events: tuple[e.Event, ...] = ()
    expect: Mapping[str, int] = field(default_factory=dict)


def incident_of(state: State, incident_id: str) -> Incident:
    incident = state.incidents.get(incident_id)
    if incident is None:
        raise NotFound(f"No incident {incident_id}")
    return incident


def unit_of(state: State, unit_id: str) -> Unit:
    unit = state.units.get(unit_id)
    if unit is None:
        raise NotFound(f"No unit {unit_id}")
    return unit


def assignment_of(state: State, assignment_id: str) -> Assignment:
    assignment = state.assignments.get(assignment_id)
    if assignment is None:
        raise NotFound(f"No assignment {assignment_id}")
    return assignment


def _expect(state: State, *streams: str) -> dict[str, int]:
    return {s: state.version(s) for s in streams}


def _release(unit: Unit, assignment: Assignment, reason: str) -> list[e.Event]:
    """End a unit's assignment and put it back in service."""
    return [
        e.AssignmentEnded(incident_id=assignment.incident_id, unit_id=unit.id,
                          assignment_id=assignment.id, reason=reason),
        e.UnitStatusChanged(unit_id=unit.id, status=UnitStatus.AVAILABLE.value, previous=unit.status,
                            incident_id=assignment.incident_id),
    ]


def commission_units(state: State, cmd: c.CommissionUnits, catalog: Catalog) -> Decision:
    found: list[e.Event] = []
    for spec in cmd.units:
        if spec.id in state.units or any(x.unit_id == spec.id for x in found):
            raise Conflict(f"Unit {spec.id} is already in service")
        try:
            agency = catalog.city.agency(spec.agency_id)
            unit_type = catalog.plans.unit_type(spec.type)
        except ValueError as err:
            raise Invalid(f"Unit {spec.id}: {err}") from None
        if unit_type.kind != agency.kind:
            raise Invalid(f"Unit {spec.id} is a {unit_type.kind} unit type ({spec.type}) "
                          f"but agency {agency.id} is {agency.kind}")
        found.append(e.UnitCommissioned(
            unit_id=spec.id, agency_id=spec.agency_id, unit_type=spec.type,
            capabilities=sorted(unit_type.capabilities), station_id=spec.station_id, home=spec.home.to_json()))
    return Decision(tuple(found), _expect(state, *(x.stream() for x in found)))


def report_incident(state: State, cmd: c.ReportIncident, catalog: Catalog) -> Decision:
    """Record the report, whose districts it lies in, possible duplicates and the recommendation;
    where the policy says so, assign the recommended units at once."""
    if cmd.incident_id in state.incidents:
        raise Conflict(f"Incident {cmd.incident_id} already exists")
    try:
        incident_type = catalog.plans.incident_type(cmd.incident_type)
    except ValueError as err:
        raise Invalid(str(err)) from None
    covering = catalog.jurisdiction.districts_at(cmd.location)
    responsible = catalog.jurisdiction.responsible(cmd.location, incident_type.plan.kinds(), covering)
    districts = [{"agency_id": d.agency_id, "district_id": d.district_id, "name": d.name} for d in covering]
    districts += [{"agency_id": r.district.agency_id, "district_id": r.district.district_id, "name": r.district.name,
                   "outside": True, "distance_m": round(r.outside_m, 1)}
                  for r in responsible if r.outside_m is not None and r.district is not None]
    priority = cmd.priority if cmd.priority is not None else incident_type.default_priority
    duplicates = possible_duplicates(state, cmd, incident_type, catalog)
    reported = e.IncidentReported(
        incident_id=cmd.incident_id, incident_type=incident_type.id, priority=priority,
        location=cmd.location.to_json(), reported_at=cmd.reported_at, districts=districts,
        agencies=sorted({a for r in responsible for a in r.agency_ids}), address=cmd.address,
        description=cmd.description, possible_duplicate_of=duplicates)
    made = recommendation_for(catalog, incident_type.plan, cmd.location, responsible)
    found: list[e.Event] = [reported, recommendation_made(cmd.incident_id, "intake", made, incident_type.plan,
                                                          cmd.location, catalog)]
    streams = [reported.stream()]
    if catalog.policy.auto_dispatches(incident_type.id, priority) and not duplicates:
        for pick in made.picks:
            found.append(e.UnitAssigned(incident_id=cmd.incident_id, unit_id=pick.unit_id,
                                        assignment_id=auto_assignment_id(cmd.incident_id, pick.unit_id)))
            found.append(e.UnitStatusChanged(unit_id=pick.unit_id, status=UnitStatus.DISPATCHED.value,
                                             previous=UnitStatus.AVAILABLE.value, incident_id=cmd.incident_id))
            streams.append(f"unit/{pick.unit_id}")
    return Decision(tuple(found), _expect(state, *streams))


def current_recommendation(state: State, incident_id: str, catalog: Catalog) -> Recommendation:
    """What the plan still needs now, given the units already on the incident (a read-only query)."""
    incident = incident_of(state, incident_id)
    if incident.status != "open":
        raise Conflict(f"Incident {incident.id} is closed; there is nothing to recommend")
    try:
        plan = catalog.plans.incident_type(incident.type).plan
    except ValueError as err:
        raise Invalid(str(err)) from None
    return still_needed(state, incident, plan, catalog)[2]


def add_note(state: State, cmd: c.AddNote, catalog: Catalog) -> Decision:
    incident = incident_of(state, cmd.incident_id)
    event = e.NoteAdded(incident_id=incident.id, note_id=cmd.note_id, text=cmd.text)
    return Decision((event,), _expect(state, event.stream()))


def assign_units(state: State, cmd: c.AssignUnits, catalog: Catalog) -> Decision:
    incident = incident_of(state, cmd.incident_id)
    if incident.status != "open":
        raise Conflict(f"Incident {incident.id} is closed; units cannot be assigned to it")
    if len(set(cmd.unit_ids)) != len(cmd.unit_ids):
        raise Invalid("The same unit is listed twice in one assignment")
    found: list[e.Event] = []
    for unit_id, assignment_id in zip(cmd.unit_ids, cmd.assignment_ids, strict=True):
        unit = unit_of(state, unit_id)
        if unit.status != UnitStatus.AVAILABLE:
            busy = f" (assigned to incident {unit.incident_id})" if unit.incident_id else ""
            raise Conflict(f"Unit {unit.id} is no longer available: it is {unit.status}{busy}")
        found.append(e.UnitAssigned(incident_id=incident.id, unit_id=unit.id, assignment_id=assignment_id))
        found.append(e.UnitStatusChanged(unit_id=unit.id, status=UnitStatus.DISPATCHED.value,
                                         previous=unit.status, incident_id=incident.id))
    return Decision(tuple(found), _expect(state, f"incident/{incident.id}", *(f"unit/{u}" for u in cmd.unit_ids)))


def cancel_assignment(state: State, cmd: c.CancelAssignment, catalog: Catalog) -> Decision:
    assignment = assignment_of(state, cmd.assignment_id)
    if not assignment.active:
        raise Conflict(f"Assignment {assignment.id} already ended ({assignment.end_reason})")
    unit = unit_of(state, assignment.unit_id)
    return Decision(tuple(_release(unit, assignment, "cancelled")),
                    _expect(state, f"incident/{assignment.incident_id}", f"unit/{unit.id}"))


def ack_assignment(state: State, cmd: c.AckAssignment, catalog: Catalog) -> Decision:
    assignment = assignment_of(state, cmd.assignment_id)
    if not assignment.active:
        raise Conflict(f"Assignment {assignment.id} already ended ({assignment.end_reason})")
    if assignment.acknowledged_at is not None:
        return Decision()  # a repeated ack over a flaky link changes nothing
    event = e.AssignmentAcknowledged(incident_id=assignment.incident_id, unit_id=assignment.unit_id,
                                     assignment_id=assignment.id)
    return Decision((event,), _expect(state, event.stream()))


def flag_unacknowledged(state: State, cmd: c.FlagUnacknowledged, catalog: Catalog) -> Decision:
    """The ack watchdog's verdict: the unit stays assigned (the dispatcher decides whether to cancel it),
    the console is told, and a replacement recommendation proposes who else could go. An assignment
    already ended, acknowledged or flagged changes nothing: a late ack or another node's watchdog won."""
    assignment = assignment_of(state, cmd.assignment_id)
    if not assignment.active or assignment.acknowledged_at is not None or assignment.unacknowledged_at is not None:
        return Decision()
    try:
        now = datetime.fromisoformat(cmd.now)
    except ValueError:
        raise Invalid(f"{cmd.now!r} is not an ISO 8601 time") from None
    if now.tzinfo is None:
        raise Invalid(f"{cmd.now!r} has no time zone; times are UTC")
    incident = incident_of(state, assignment.incident_id)
    waited = max(0.0, (now - datetime.fromisoformat(assignment.assigned_at)).total_seconds())
    found: list[e.Event] = [e.AssignmentUnacknowledged(
        incident_id=incident.id, unit_id=assignment.unit_id, assignment_id=assignment.id, waited_s=round(waited, 3))]
    incident_type = catalog.plans.incident_types.get(incident.type)
    if incident_type is not None:  # a type since dropped from the run cards has no plan to refill
        plan = incident_type.plan
        already, exclude, made = still_needed(state, incident, plan, catalog, without=assignment.unit_id)
        found.append(recommendation_made(incident.id, "unacknowledged", made, plan, LatLon.from_json(incident.location),
                                         catalog, already, exclude))
    return Decision(tuple(found), _expect(state, f"incident/{incident.id}"))


def change_unit_status(state: State, cmd: c.ChangeUnitStatus, catalog: Catalog) -> Decision:
    unit = unit_of(state, cmd.unit_id)
    try:
        new = parse_status(cmd.status)
        if new == UnitStatus.DISPATCHED:
            raise Invalid(f"Unit {unit.id} is dispatched by assigning it to an incident, not by a status change")
        check_transition(unit.id, UnitStatus(unit.status), new)
    except (InvalidTransition, ValueError) as err:
        raise Invalid(str(err)) from None
    assignment = state.assignments.get(unit.assignment_id) if unit.assignment_id else None
    streams = [f"unit/{unit.id}"]
    if assignment is not None and new not in ENGAGED:
        streams.append(f"incident/{assignment.incident_id}")
        found = _release(unit, assignment, "cleared")
        found[-1] = e.UnitStatusChanged(unit_id=unit.id, status=new.value, previous=unit.status,
                                        incident_id=assignment.incident_id)
        return Decision(tuple(found), _expect(state, *streams))
    found = []
    if assignment is not None and assignment.acknowledged_at is None:
        # a crew that reports en route or on scene has plainly received its assignment
        streams.append(f"incident/{assignment.incident_id}")
        found.append(e.AssignmentAcknowledged(incident_id=assignment.incident_id, unit_id=unit.id,
                                              assignment_id=assignment.id))
    found.append(e.UnitStatusChanged(unit_id=unit.id, status=new.value, previous=unit.status,
                                     incident_id=unit.incident_id))
    return Decision(tuple(found), _expect(state, *streams))


def close_incident(state: State, cmd: c.CloseIncident, catalog: Catalog) -> Decision:
    incident = incident_of(state, cmd.incident_id)
    if incident.status != "open":
        raise Conflict(f"Incident {incident.id} is already closed")
    found: list[e.Event] = []
    streams = [f"incident/{incident.id}"]
    for assignment_id in incident.assignment_ids:
        assignment = state.assignments[assignment_id]
        if assignment.active:
            found.extend(_release(state.units[assignment.unit_id], assignment, "incident_closed"))
            streams.append(f"unit/{assignment.unit_id}")
    found.append(e.IncidentClosed(incident_id=incident.id, disposition=cmd.disposition))
    return Decision(tuple(found), _expect(state, *streams))


def issue_token(state: State, cmd: c.IssueToken, catalog: Catalog) -> Decision:
    event = e.TokenIssued(token_id=cmd.token_id, role=cmd.role, subject=cmd.subject, agency=cmd.agency,
                          unit=cmd.unit, expires_at=cmd.expires_at)
    return Decision((event,), {event.stream(): 0})  # a token id is issued once


def revoke_token(state: State, cmd: c.RevokeToken, catalog: Catalog) -> Decision:
    """A token the API issued, by its id; one minted by ``commandpost token`` (which the log never saw) only
    when the request says so, so that a mistyped id is a 404, not a revocation that revokes nothing."""
    if cmd.token_id in state.revoked:
        raise Conflict(f"Token {cmd.token_id} was already revoked at {state.revoked[cmd.token_id]}")
    if cmd.token_id not in state.issued and not cmd.minted_offline:
        raise NotFound(f"No token {cmd.token_id} was issued through the API; for one minted by "
                       f"'commandpost token' (its id is printed there), add ?minted_offline=true")
    event = e.TokenRevoked(token_id=cmd.token_id, reason=cmd.reason)
    return Decision((event,), _expect(state, event.stream()))


HANDLERS: dict[type, Callable[[State, object, Catalog], Decision]] = {
    c.CommissionUnits: commission_units,
    c.ReportIncident: report_incident,
    c.AddNote: add_note,
    c.AssignUnits: assign_units,
    c.CancelAssignment: cancel_assignment,
    c.AckAssignment: ack_assignment,
    c.FlagUnacknowledged: flag_unacknowledged,
    c.ChangeUnitStatus: change_unit_status,
    c.CloseIncident: close_incident,
    c.IssueToken: issue_token,
    c.RevokeToken: revoke_token,
}


def decide(state: State, cmd: c.Command, catalog: Catalog) -> Decision:
    return HANDLERS[type(cmd)](state, cmd, catalog)
