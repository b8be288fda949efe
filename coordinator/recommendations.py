"""Recommendations as decisions use them: made from the catalog, logged with their inputs, re-derived
from those inputs, what an incident still needs, and reports that may be duplicates. Pure."""

import math
import uuid
from collections.abc import Mapping
from datetime import datetime

from agencies.jurisdiction import Responsibility
from agencies.model import AgencyKind
from agencies.plans import IncidentType, PlanLine, ResponsePlan
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
from .catalog import Catalog
from .state import Incident, State


def auto_assignment_id(incident_id: str, unit_id: str) -> str:
    """Deterministic, so the decision stays pure: a new incident has no earlier assignment of that unit."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"commandpost:auto-dispatch:{incident_id}:{unit_id}"))


def possible_duplicates(state: State, cmd: c.ReportIncident, incident_type: IncidentType,
                        catalog: Catalog) -> list[str]:
    """Open incidents of the same family within the policy's radius and time window, nearest first."""
    policy = catalog.policy
    when = datetime.fromisoformat(cmd.reported_at)
    # open incidents in the cells around the point first (1 degree of latitude is at least 110.5 km): most
    # are far away, and only the few near it pay for a distance and a parsed time
    band = policy.duplicate_radius_m / 110_000 + 1e-9
    lat, lon = cmd.location.lat, cmd.location.lon
    lon_band = band / max(math.cos(math.radians(min(abs(lat) + band, 90.0))), 1e-9)  # wider towards the poles
    found = []
    for other in state.open_incidents_near(lat, lon, band, lon_band):
        if abs(other.location["lat"] - lat) > band or _degrees_apart(other.location["lon"], lon) > lon_band:
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


def _degrees_apart(lon_a: float, lon_b: float) -> float:
    """Longitudes apart the short way round (across the antimeridian too), 0..180."""
    return 180.0 - abs(abs(lon_a - lon_b) - 180.0)


def recommendation_for(catalog: Catalog, plan: ResponsePlan, location: LatLon, responsible: list[Responsibility],
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


def still_needed(state: State, incident: Incident, plan: ResponsePlan, catalog: Catalog, without: str | None = None
                  ) -> tuple[list[tuple[str, frozenset[str]]], tuple[str, ...], Recommendation]:
    """(already, exclude, recommendation): the plan's remaining need, counting the units on the incident's
    active assignments as there already, except the unit ``without``, which is also not proposed."""
    location = LatLon.from_json(incident.location)
    responsible = catalog.jurisdiction.responsible(location, plan.kinds())
    already = [(unit.agency_id, frozenset(unit.capabilities)) for a in incident.assignment_ids
               if state.assignments[a].active and state.assignments[a].unit_id != without
               and (unit := state.units.get(state.assignments[a].unit_id))]
    exclude = (without,) if without is not None else ()
    return already, exclude, recommendation_for(catalog, plan, location, responsible, already, exclude)


def rederive(data: Mapping, catalog: Catalog) -> Recommendation:
    """A logged ``RecommendationMade`` decided again from its own recorded inputs (plan, travel model,
    units considered and their positions), against the city's districts: for audits, and for the
    tests that prove a past decision can be explained exactly."""
    inputs = data["inputs"]
    plan = ResponsePlan(tuple(PlanLine(AgencyKind(x["kind"]), x["capability"], x["count"]) for x in inputs["plan"]))
    location = LatLon.from_json(inputs["location"])
    responsible = catalog.jurisdiction.responsible(location, plan.kinds())
    already = [(a["agency_id"], frozenset(a["capabilities"])) for a in inputs["already"]]
    return recommendation_for(catalog, plan, location, responsible, already, inputs["exclude"],
                           CandidateList(Candidate.from_json(u) for u in inputs["units"]),
                           StraightLineTravel.from_description(inputs["travel"]), inputs["providers"],
                           inputs["turnout_s"])
