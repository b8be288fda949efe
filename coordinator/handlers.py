"""Decisions: ``decide(state, command, catalog) -> Decision``. Pure: no I/O, no clock, no ids.

Each handler checks the command against the current state and returns the events it
causes together with the stream versions it saw; the log refuses the append if another
writer changed one of those streams in between (a 409, state unchanged).
"""

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cached_property

from agencies.city import City
from agencies.jurisdiction import Jurisdiction, Responsibility
from agencies.lifecycle import (
    ENGAGED,
    InvalidTransition,
    UnitStatus,
    check_transition,
    parse_status,
)
from agencies.model import AgencyKind
from agencies.plans import IncidentType, PlanLine, Plans, ResponsePlan
from agencies.recommend import (
    Candidate,
    CandidateList,
    Candidates,
    Recommendation,
    recommend,
)
from geo import LatLon, haversine_m
from geo.travel import StraightLineTravel

from . import commands as c
from . import events as e
from .dispatch import Fleet
from .errors import Conflict, Invalid, NotFound
from .state import Assignment, Incident, State, Unit


@dataclass(frozen=True)
class Policy:
    """The centre's dispatch policy. ``auto_dispatch``: incident type (or ``*``) -> the least urgent
    priority whose recommendation is assigned at once, without a dispatcher's click."""

    duplicate_radius_m: float = 200.0
    duplicate_window: timedelta = timedelta(minutes=30)
    auto_dispatch: Mapping[str, int] = field(default_factory=dict)

    def auto_dispatches(self, incident_type: str, priority: int) -> bool:
        limit = self.auto_dispatch.get(incident_type, self.auto_dispatch.get("*"))
        return limit is not None and priority <= limit


@dataclass(frozen=True)
class Catalog:
    """What decisions read besides state: the city's agencies, districts and stations, the run cards,
    the dispatch policy, and the live fleet picture (positions are telemetry, not in state)."""

    city: City
    plans: Plans
    fleet: Fleet = field(default_factory=Fleet)
    policy: Policy = field(default_factory=Policy)

    @cached_property
    def jurisdiction(self) -> Jurisdiction:
        return Jurisdiction(self.city)


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
    made = _recommendation(catalog, incident_type.plan, cmd.location, responsible)
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


def auto_assignment_id(incident_id: str, unit_id: str) -> str:
    """Deterministic, so the decision stays pure: a new incident has no earlier assignment of that unit."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"commandpost:auto-dispatch:{incident_id}:{unit_id}"))


def possible_duplicates(state: State, cmd: c.ReportIncident, incident_type: IncidentType,
                        catalog: Catalog) -> list[str]:
    """Open incidents of the same family within the policy's radius and time window, nearest first."""
    policy = catalog.policy
    when = datetime.fromisoformat(cmd.reported_at)
    # a cheap latitude band first (1 degree of latitude is at least 110.5 km): most open incidents
    # are far away, and only the few inside it pay for a distance and a parsed time
    band = policy.duplicate_radius_m / 110_000 + 1e-9
    lat = cmd.location.lat
    found = []
    for other in state.incidents.values():
        if other.status != "open" or abs(other.location["lat"] - lat) > band:
            continue
        other_type = catalog.plans.incident_types.get(other.type)
        if other_type is None or other_type.family != incident_type.family:
            continue
        metres = haversine_m(cmd.location, LatLon.from_json(other.location))
        if metres > policy.duplicate_radius_m:
            continue
        if abs(datetime.fromisoformat(other.reported_at) - when) <= policy.duplicate_window:
            found.append((metres, other.id))
    return [incident_id for _, incident_id in sorted(found)]


def _recommendation(catalog: Catalog, plan: ResponsePlan, location: LatLon, responsible: list[Responsibility],
                    already=(), exclude=(), source: Candidates | None = None, travel: StraightLineTravel | None = None,
                    providers: Mapping[str, list[str]] | None = None,
                    turnout_s: Mapping[str, float] | None = None) -> Recommendation:
    if providers is None:
        providers = {line.capability: catalog.plans.providers(line.capability) for line in plan.lines}
    return recommend(plan, location, responsible, source or catalog.fleet, travel or catalog.plans.travel,
                     catalog.jurisdiction, providers, already, exclude,
                     catalog.plans.turnout_s if turnout_s is None else turnout_s)


def recommendation_made(incident_id: str, trigger: str, made: Recommendation, plan: ResponsePlan,
                        location: LatLon, catalog: Catalog, already=(), exclude=()) -> e.RecommendationMade:
    doc = made.to_json()
    inputs = {"location": location.to_json(),
              "plan": [{"kind": str(line.kind), "capability": line.capability, "count": line.count}
                       for line in plan.lines],
              "providers": {line.capability: list(catalog.plans.providers(line.capability)) for line in plan.lines},
              "travel": dict(made.travel), "units": [u.to_json() for u in made.considered],
              "turnout_s": {u.unit_type: catalog.plans.turnout_s.get(u.unit_type, 0.0)
                            for u in sorted(made.considered, key=lambda u: u.unit_type)},
              "already": [{"agency_id": a, "capabilities": sorted(caps)} for a, caps in already],
              "exclude": sorted(exclude)}
    return e.RecommendationMade(incident_id=incident_id, trigger=trigger, lines=doc["lines"],
                                shortfall=doc["shortfall"], coverage_cost=doc["coverage_cost"],
                                responsible=doc["responsible"], inputs=inputs)


def current_recommendation(state: State, incident_id: str, catalog: Catalog) -> Recommendation:
    """What the plan still needs now, given the units already on the incident (a read-only query)."""
    incident = incident_of(state, incident_id)
    if incident.status != "open":
        raise Conflict(f"Incident {incident.id} is closed; there is nothing to recommend")
    try:
        plan = catalog.plans.incident_type(incident.type).plan
    except ValueError as err:
        raise Invalid(str(err)) from None
    return _still_needed(state, incident, plan, catalog)[2]


def _still_needed(state: State, incident: Incident, plan: ResponsePlan, catalog: Catalog, without: str | None = None
                  ) -> tuple[list[tuple[str, frozenset[str]]], tuple[str, ...], Recommendation]:
    """(already, exclude, recommendation): the plan's remaining need, counting the units on the incident's
    active assignments as there already, except the unit ``without``, which is also not proposed."""
    location = LatLon.from_json(incident.location)
    responsible = catalog.jurisdiction.responsible(location, plan.kinds())
    already = [(unit.agency_id, frozenset(unit.capabilities)) for a in incident.assignment_ids
               if state.assignments[a].active and state.assignments[a].unit_id != without
               and (unit := state.units.get(state.assignments[a].unit_id))]
    exclude = (without,) if without is not None else ()
    return already, exclude, _recommendation(catalog, plan, location, responsible, already, exclude)


def rederive(data: Mapping, catalog: Catalog) -> Recommendation:
    """A logged ``RecommendationMade`` decided again from its own recorded inputs (plan, travel model,
    units considered and their positions), against the city's districts: for audits, and for the
    tests that prove a past decision can be explained exactly."""
    inputs = data["inputs"]
    plan = ResponsePlan(tuple(PlanLine(AgencyKind(x["kind"]), x["capability"], x["count"]) for x in inputs["plan"]))
    location = LatLon.from_json(inputs["location"])
    responsible = catalog.jurisdiction.responsible(location, plan.kinds())
    already = [(a["agency_id"], frozenset(a["capabilities"])) for a in inputs["already"]]
    return _recommendation(catalog, plan, location, responsible, already, inputs["exclude"],
                           CandidateList(Candidate.from_json(u) for u in inputs["units"]),
                           StraightLineTravel.from_description(inputs["travel"]), inputs["providers"],
                           inputs["turnout_s"])


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
        already, exclude, made = _still_needed(state, incident, plan, catalog, without=assignment.unit_id)
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
}


def decide(state: State, cmd: c.Command, catalog: Catalog) -> Decision:
    return HANDLERS[type(cmd)](state, cmd, catalog)
