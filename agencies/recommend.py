"""Which units should go: fill a run card nearest-by-ETA first, and say why.

``recommend`` is pure. It reads units through ``Candidates`` (the live fleet index, or the
``CandidateList`` of units a logged recommendation considered) and returns every unit it looked
at, so a past decision can be re-derived exactly from what was logged.

Rules, as an experienced dispatcher applies them:

- lines are filled most specific first (a line only one unit type can fill before a line many
  can), so a broad line never takes the unit a narrow one needs; units already on the incident
  count toward the lines first;
- each line takes the responsible agency's available units by ETA, exactly: units are read in
  order of distance and a unit is taken only once no unread unit could arrive sooner;
- never one unit twice; if the responsible agency is short, the nearest units of other agencies
  of the same kind fill in, flagged as mutual aid; whatever is still missing is reported;
- coverage cost: the districts that the picks leave without an available unit of the
  capability they were picked for.
"""
from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Protocol

import shapely

from agencies.jurisdiction import Jurisdiction, Responsibility
from agencies.model import AgencyKind
from agencies.plans import PlanLine, ResponsePlan
from geo.coords import LatLon, haversine_m
from geo.travel import TravelModel


@dataclass(frozen=True, slots=True)
class Candidate:
    """An available unit as the recommendation saw it."""

    unit_id: str
    agency_id: str
    unit_type: str
    station_id: str | None
    location: LatLon
    capabilities: frozenset[str]
    in_quarters: bool = False   # at its station: it pays the turnout time before it rolls

    def to_json(self) -> dict:
        return {"unit_id": self.unit_id, "agency_id": self.agency_id, "unit_type": self.unit_type,
                "station_id": self.station_id, "location": self.location.to_json(),
                "capabilities": sorted(self.capabilities), "in_quarters": self.in_quarters}

    @classmethod
    def from_json(cls, d: Mapping) -> Candidate:
        return cls(d["unit_id"], d["agency_id"], d["unit_type"], d["station_id"],
                   LatLon.from_json(d["location"]), frozenset(d["capabilities"]), bool(d.get("in_quarters")))


class Candidates(Protocol):
    def nearest(self, capability: str, point: LatLon, agency_id: str | None = None
                ) -> Iterator[tuple[float, Candidate]]:
        """Available units with ``capability`` (of one agency, or any), nearest first in metres,
        equal distances by unit id."""


class CandidateList:
    """A fixed list of units searched by brute force: re-derives a logged recommendation."""

    def __init__(self, candidates: Iterable[Candidate]) -> None:
        self.candidates = tuple(candidates)

    def nearest(self, capability: str, point: LatLon, agency_id: str | None = None
                ) -> Iterator[tuple[float, Candidate]]:
        found = [(haversine_m(c.location, point), c.unit_id, c) for c in self.candidates
                 if capability in c.capabilities and (agency_id is None or c.agency_id == agency_id)]
        found.sort(key=lambda x: (x[0], x[1]))
        return ((metres, c) for metres, _, c in found)


@dataclass(frozen=True)
class Pick:
    kind: str
    capability: str
    unit_id: str
    agency_id: str
    unit_type: str
    station_id: str | None
    distance_m: float
    eta_s: float
    mutual_aid: bool
    reason: str

    def to_json(self) -> dict:
        return {"unit_id": self.unit_id, "agency_id": self.agency_id, "unit_type": self.unit_type,
                "station_id": self.station_id, "capability": self.capability, "kind": self.kind,
                "distance_m": round(self.distance_m, 1), "eta_s": round(self.eta_s, 1),
                "mutual_aid": self.mutual_aid, "reason": self.reason}


@dataclass(frozen=True)
class LineResult:
    kind: str
    capability: str
    count: int
    already: int
    picks: tuple[Pick, ...]

    @property
    def short(self) -> int:
        return self.count - self.already - len(self.picks)

    def to_json(self) -> dict:
        return {"kind": self.kind, "capability": self.capability, "count": self.count,
                "already_assigned": self.already, "units": [p.to_json() for p in self.picks],
                "short": self.short}


@dataclass(frozen=True)
class Recommendation:
    lines: tuple[LineResult, ...]
    responsible: tuple[Responsibility, ...]
    considered: tuple[Candidate, ...]
    coverage_cost: tuple[dict, ...] = ()
    travel: Mapping = field(default_factory=dict)

    @property
    def picks(self) -> tuple[Pick, ...]:
        return tuple(p for line in self.lines for p in line.picks)

    @property
    def shortfall(self) -> list[dict]:
        return [{"kind": line.kind, "capability": line.capability, "missing": line.short}
                for line in self.lines if line.short > 0]

    def to_json(self) -> dict:
        """The decision (lines, shortfall, coverage cost) without the inputs it was made from."""
        return {"lines": [line.to_json() for line in self.lines], "shortfall": self.shortfall,
                "coverage_cost": list(self.coverage_cost),
                "responsible": [r.to_json() for r in self.responsible]}


def recommend(plan: ResponsePlan, point: LatLon, responsible: Iterable[Responsibility], source: Candidates,
              travel: TravelModel, jurisdiction: Jurisdiction, specificity: Mapping[str, int],
              already: Iterable[tuple[str, frozenset[str]]] = (), exclude: Iterable[str] = (),
              turnout_s: Mapping[str, float] | None = None) -> Recommendation:
    """Fill ``plan`` at ``point``.

    ``already``: (agency id, capabilities) of the units on the incident now; ``exclude``: units
    not to propose (a crew that failed to acknowledge, say); ``specificity``: capability -> how
    many unit types provide it; ``turnout_s``: unit type -> seconds from dispatch to rolling,
    added to the travel time of a unit in quarters (a unit already on the road pays none).
    """
    eta = _Eta(travel, turnout_s or {})
    by_kind = {r.kind: r for r in responsible}
    counted = _count_already(plan.lines, already, jurisdiction.kinds, specificity)
    taken: set[str] = set(exclude)
    seen: dict[str, Candidate] = {}
    results: dict[PlanLine, LineResult] = {}
    for line in sorted(plan.lines, key=lambda x: (specificity.get(x.capability, 0), x.kind, x.capability)):
        need = line.count - counted[line]
        resp = by_kind.get(line.kind)
        picks: list[Pick] = []
        if need > 0 and resp is not None:
            home = set(resp.agency_ids)
            streams = [source.nearest(line.capability, point, a) for a in resp.agency_ids]
            own = heapq.merge(*streams, key=lambda x: (x[0], x[1].unit_id))
            for metres, secs, unit in _by_eta(own, point, eta, need, taken, seen, lambda u: True):
                picks.append(_pick(line, unit, metres, secs, resp, False, jurisdiction, eta))
            if len(picks) < need:
                others = source.nearest(line.capability, point)
                def aid(u: Candidate, kind: AgencyKind = line.kind, home: set[str] = home) -> bool:
                    return u.agency_id not in home and jurisdiction.kinds.get(u.agency_id) == kind
                for metres, secs, unit in _by_eta(others, point, eta, need - len(picks), taken, seen, aid):
                    picks.append(_pick(line, unit, metres, secs, resp, True, jurisdiction, eta))
        results[line] = LineResult(str(line.kind), line.capability, line.count, counted[line], tuple(picks))
    lines = tuple(results[line] for line in plan.lines)
    cost = _coverage_cost([p for r in lines for p in r.picks], source, jurisdiction, taken, seen)
    return Recommendation(lines, tuple(by_kind.values()), tuple(seen[k] for k in sorted(seen)),
                          tuple(cost), travel.describe())


def _count_already(lines: Iterable[PlanLine], already: Iterable[tuple[str, frozenset[str]]],
                   kinds: Mapping[str, AgencyKind], specificity: Mapping[str, int]) -> dict[PlanLine, int]:
    """Units already on the incident fill lines most specific first, each unit one line."""
    ordered = sorted(lines, key=lambda x: (specificity.get(x.capability, 0), x.kind, x.capability))
    counted = {line: 0 for line in ordered}
    for agency_id, capabilities in already:
        for line in ordered:
            if (counted[line] < line.count and kinds.get(agency_id) == line.kind
                    and line.capability in capabilities):
                counted[line] += 1
                break
    return counted


class _Eta:
    """Travel time plus turnout for a unit in quarters; ``bound`` holds for every unit type."""

    def __init__(self, travel: TravelModel, turnout_s: Mapping[str, float]) -> None:
        self.travel, self.turnout_s = travel, turnout_s

    def __call__(self, unit: Candidate, point: LatLon) -> float:
        return self.turnout(unit) + self.travel.eta_s(unit.location, point, unit.unit_type)

    def bound(self, metres: float) -> float:
        return self.travel.min_eta_s(metres)

    def turnout(self, unit: Candidate) -> float:
        return self.turnout_s.get(unit.unit_type, 0.0) if unit.in_quarters else 0.0


def _by_eta(stream: Iterator[tuple[float, Candidate]], point: LatLon, eta: _Eta, need: int,
            taken: set[str], seen: dict[str, Candidate], accept) -> Iterator[tuple[float, float, Candidate]]:
    """The ``need`` acceptable units soonest to arrive, exactly: read in distance order until no
    unread unit could beat the best waiting one (``travel.min_eta_s`` bounds them all)."""
    waiting: list[tuple[float, str, float, Candidate]] = []
    given = 0
    for metres, unit in stream:
        bound = eta.bound(metres)
        while waiting and waiting[0][0] < bound and given < need:
            secs, _, far, best = heapq.heappop(waiting)
            taken.add(best.unit_id)
            given += 1
            yield far, secs, best
        if given >= need:
            return
        if unit.unit_id in taken or not accept(unit):
            continue
        seen[unit.unit_id] = unit
        heapq.heappush(waiting, (eta(unit, point), unit.unit_id, metres, unit))
    while waiting and given < need:
        secs, _, far, best = heapq.heappop(waiting)
        taken.add(best.unit_id)
        given += 1
        yield far, secs, best


def _pick(line: PlanLine, unit: Candidate, metres: float, secs: float, resp: Responsibility,
          mutual_aid: bool, jurisdiction: Jurisdiction, eta: _Eta) -> Pick:
    turnout = eta.turnout(unit)
    why = [f"{unit.unit_id}: {distance_text(metres)}, ETA {duration_text(secs)}"
           + (f" incl. {duration_text(turnout)} turnout" if turnout else "")]
    if mutual_aid:
        owners = " / ".join(jurisdiction.names.get(a, a) for a in resp.agency_ids)
        why.append(f"mutual aid from {jurisdiction.names.get(unit.agency_id, unit.agency_id)} "
                   f"({owners} has no {line.capability} available)")
    elif unit.station_id is not None and unit.station_id == resp.first_due_station:
        why.append(f"first-due station {unit.station_id}")
    elif unit.station_id is not None:
        why.append(f"station {unit.station_id}")
    if resp.outside_m is not None and resp.district is not None:
        why.append(f"incident {distance_text(resp.outside_m)} outside the nearest district "
                   f"({resp.district.name})")
    return Pick(str(line.kind), line.capability, unit.unit_id, unit.agency_id, unit.unit_type, unit.station_id,
                metres, secs, mutual_aid, ", ".join(why))


def _coverage_cost(picks: list[Pick], source: Candidates, jurisdiction: Jurisdiction, taken: set[str],
                   seen: dict[str, Candidate]) -> list[dict]:
    """Districts a pick leaves without an available unit of the capability it was picked for."""
    cost, checked = [], set()
    for pick in picks:
        where = seen[pick.unit_id].location
        for district in jurisdiction.districts_at(where):
            key = (district.agency_id, district.district_id, pick.capability)
            if district.agency_id != pick.agency_id or key in checked:
                continue
            checked.add(key)
            reach = jurisdiction.reach[district.key]
            covered = False
            for metres, unit in source.nearest(pick.capability, reach.point, district.agency_id):
                if metres > reach.radius_m:
                    break
                if unit.unit_id in taken:
                    continue
                seen[unit.unit_id] = unit
                if _inside(district, unit):
                    covered = True
                    break
            if not covered:
                cost.append({"agency_id": district.agency_id, "district_id": district.district_id,
                             "district_name": district.name, "capability": pick.capability,
                             "left_by": [p.unit_id for p in picks if p.capability == pick.capability
                                         and p.agency_id == district.agency_id and _inside(district, seen[p.unit_id])]})
    return cost


def _inside(district, unit: Candidate) -> bool:
    return bool(shapely.intersects_xy(district.geometry, unit.location.lon, unit.location.lat))


def distance_text(metres: float) -> str:
    return f"{metres:.0f} m" if metres < 1000 else f"{metres / 1000:.1f} km"


def duration_text(seconds: float) -> str:
    whole = round(seconds)
    minutes, secs = divmod(whole, 60)
    return f"{minutes} min {secs} s" if minutes else f"{secs} s"
