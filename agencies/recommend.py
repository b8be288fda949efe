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
              travel: TravelModel, jurisdiction: Jurisdiction, providers: Mapping[str, Iterable[str]],
              already: Iterable[tuple[str, frozenset[str]]] = (), exclude: Iterable[str] = (),
              turnout_s: Mapping[str, float] | None = None) -> Recommendation:
    """Fill ``plan`` at ``point``.

    ``providers``: capability -> the unit types that provide it (the fewer, the sooner its line is
    filled; the fastest of them bounds how far to read); ``already``: (agency id, capabilities) of
    the units on the incident now; ``exclude``: units not to propose (a crew that failed to
    acknowledge, say); ``turnout_s``: unit type -> seconds from dispatch to rolling, added to the
    travel time of a unit in quarters (a unit already on the road pays none).
    """
    eta = _Eta(travel, turnout_s or {})
    by_kind = {r.kind: r for r in responsible}
    order = sorted(plan.lines, key=lambda x: (len(tuple(providers.get(x.capability, ()))), x.kind, x.capability))
    counted = _count_already(order, already, jurisdiction.kinds)
    taken: set[str] = set(exclude)
    seen: dict[str, Candidate] = {}
    results: dict[PlanLine, LineResult] = {}
    for line in order:
        need = line.count - counted[line]
        resp = by_kind.get(line.kind)
        picks: list[Pick] = []
        types = tuple(providers.get(line.capability, ()))
        if need > 0 and resp is not None:
            own = _merged(source, line.capability, point, resp.agency_ids)
            for metres, secs, unit in _by_eta(own, point, eta, types, need, taken, seen):
                picks.append(_pick(line, unit, metres, secs, resp, False, jurisdiction, eta))
            neighbours = sorted(a for a, k in jurisdiction.kinds.items() if k == line.kind and a not in resp.agency_ids)
            if len(picks) < need and neighbours:
                others = _merged(source, line.capability, point, neighbours)
                for metres, secs, unit in _by_eta(others, point, eta, types, need - len(picks), taken, seen):
                    picks.append(_pick(line, unit, metres, secs, resp, True, jurisdiction, eta))
        results[line] = LineResult(str(line.kind), line.capability, line.count, counted[line], tuple(picks))
    lines = tuple(results[line] for line in plan.lines)
    cost = _coverage_cost([p for r in lines for p in r.picks], source, jurisdiction, taken, seen)
    return Recommendation(lines, tuple(by_kind.values()), tuple(seen[k] for k in sorted(seen)),
                          tuple(cost), travel.describe())


def _merged(source: Candidates, capability: str, point: LatLon, agency_ids: Iterable[str]
            ) -> Iterator[tuple[float, Candidate]]:
    """The units of these agencies with ``capability``, nearest first, read lazily."""
    streams = [source.nearest(capability, point, a) for a in agency_ids]
    return heapq.merge(*streams, key=lambda x: (x[0], x[1].unit_id))


def _count_already(order: list[PlanLine], already: Iterable[tuple[str, frozenset[str]]],
                   kinds: Mapping[str, AgencyKind]) -> dict[PlanLine, int]:
    """How many plan slots the units already on the incident fill: a maximum matching of units to
    slots (augmenting paths; plans and incidents are small), so the answer never depends on the
    order the units are listed in. Ties go to the more specific lines, which come first."""
    slots = [line for line in order for _ in range(line.count)]
    units = list(already)
    holder: dict[int, int] = {}   # slot -> unit

    def fits(u: int, slot: int) -> bool:
        agency_id, capabilities = units[u]
        line = slots[slot]
        return kinds.get(agency_id) == line.kind and line.capability in capabilities

    def place(u: int, tried: set[int]) -> bool:
        for slot in range(len(slots)):
            if slot not in tried and fits(u, slot):
                tried.add(slot)
                if slot not in holder or place(holder[slot], tried):
                    holder[slot] = u
                    return True
        return False

    for u in range(len(units)):
        place(u, set())
    counted = {line: 0 for line in order}
    for slot in holder:
        counted[slots[slot]] += 1
    return counted


class _Eta:
    """Travel time plus turnout for a unit in quarters, and a bound no unread unit can beat."""

    def __init__(self, travel: TravelModel, turnout_s: Mapping[str, float]) -> None:
        self.travel, self.turnout_s = travel, turnout_s

    def __call__(self, unit: Candidate, point: LatLon) -> float:
        return self.turnout(unit) + self.travel.eta_s(unit.location, point, unit.unit_type)

    def bound(self, metres: float, unit_types: tuple[str, ...]) -> float:
        return self.travel.min_eta_s(metres, unit_types or None)

    def turnout(self, unit: Candidate) -> float:
        return self.turnout_s.get(unit.unit_type, 0.0) if unit.in_quarters else 0.0


def _by_eta(stream: Iterator[tuple[float, Candidate]], point: LatLon, eta: _Eta, unit_types: tuple[str, ...],
            need: int, taken: set[str], seen: dict[str, Candidate]) -> Iterator[tuple[float, float, Candidate]]:
    """The ``need`` units soonest to arrive, exactly: read in distance order until no unread unit
    (of any of ``unit_types``) could beat the best waiting one."""
    waiting: list[tuple[float, str, float, Candidate]] = []
    given = 0
    for metres, unit in stream:
        bound = eta.bound(metres, unit_types)
        while waiting and waiting[0][0] < bound and given < need:
            secs, _, far, best = heapq.heappop(waiting)
            taken.add(best.unit_id)
            given += 1
            yield far, secs, best
        if given >= need:
            return
        if unit.unit_id in taken:
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
                if _inside(district, unit):
                    seen[unit.unit_id] = unit   # the witness is enough to re-derive "covered"
                    covered = True
                    break
            if not covered:
                cost.append({"agency_id": district.agency_id, "district_id": district.district_id,
                             "district_name": district.name, "capability": pick.capability,
                             "left_by": [p.unit_id for p in picks if p.capability == pick.capability
                                         and p.agency_id == district.agency_id and _inside(district, seen[p.unit_id])]})
    return cost


def _inside(district, unit: Candidate) -> bool:
    return district.covers(unit.location)


def distance_text(metres: float) -> str:
    return f"{metres:.0f} m" if metres < 1000 else f"{metres / 1000:.1f} km"


def duration_text(seconds: float) -> str:
    whole = round(seconds)
    minutes, secs = divmod(whole, 60)
    return f"{minutes} min {secs} s" if minutes else f"{secs} s"
