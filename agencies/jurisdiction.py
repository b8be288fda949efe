"""Whose incident is it: the agency of each kind that answers for a point, and its first-due station.

For each agency kind a run card needs:

1. the districts of that kind covering the point (borders count for both sides); where several
   do (a border, or overlapping areas such as drive-time catchments), the one whose first-due
   station is nearest owns it, then the first by (agency, district): one deterministic owner;
2. else the agencies of that kind that have no districts at all serve the whole city
   (San Francisco's ambulances, for example);
3. else the nearest district of that kind answers, flagged ``outside`` with its distance, so a
   call just past the city line is still answered and nobody mistakes it for an inside call.

A district's first-due station is the agency's station with the district's id, else the first
of the agency's stations lying inside the district.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

from agencies.city import City
from agencies.model import AgencyKind
from geo.coords import LatLon, haversine_m
from geo.districts import District


@dataclass(frozen=True)
class Responsibility:
    """Who answers for one agency kind at a point."""

    kind: AgencyKind
    agency_ids: tuple[str, ...]
    district: District | None = None
    first_due_station: str | None = None
    outside_m: float | None = None   # set when the point lies outside every district of this kind

    def to_json(self) -> dict:
        d = self.district
        return {"kind": str(self.kind), "agency_ids": list(self.agency_ids),
                "district_id": d.district_id if d else None, "district_name": d.name if d else None,
                "first_due_station": self.first_due_station, "outside": self.outside_m is not None,
                "outside_m": None if self.outside_m is None else round(self.outside_m, 1)}


@dataclass(frozen=True)
class Reach:
    """A point well inside a district and how far its farthest corner lies from it."""

    point: LatLon
    radius_m: float


class Jurisdiction:
    """Built once per city; answers per point without touching more than the district index."""

    def __init__(self, city: City) -> None:
        self.city = city
        self.kinds = {a.id: a.kind for a in city.agencies}
        self.names = {a.id: a.name for a in city.agencies}
        with_districts = {d.agency_id for d in city.districts}
        self.citywide = {kind: tuple(sorted(a.id for a in city.agencies
                                            if a.kind == kind and a.id not in with_districts))
                         for kind in AgencyKind}
        self.stations = {s.id: s for s in city.stations}
        self.first_due = {d.key: self._first_due(d) for d in city.districts}
        self.reach = {d.key: _reach(d) for d in city.districts}
        self._districts_at = functools.lru_cache(maxsize=16_384)(lambda p: tuple(city.districts.at(p)))

    def _first_due(self, district: District) -> str | None:
        stations = sorted((s for s in self.city.stations if s.agency_id == district.agency_id),
                          key=lambda s: s.id)
        for station in stations:
            if station.id == district.district_id:
                return station.id
        for station in stations:
            if district.covers(station.location):
                return station.id
        return None

    def _station_m(self, district: District, point: LatLon) -> float:
        station = self.stations.get(self.first_due[district.key] or "")
        return haversine_m(station.location, point) if station else float("inf")

    def districts_at(self, point: LatLon) -> tuple[District, ...]:
        """Cached: most units a recommendation looks at stand at their stations, at the same points."""
        return self._districts_at(point)

    def responsible(self, point: LatLon, kinds: frozenset[AgencyKind] | set[AgencyKind],
                    covering: tuple[District, ...] | None = None) -> list[Responsibility]:
        """One answer per kind, in kind order; a kind with no agency at all is left out."""
        covering = self.districts_at(point) if covering is None else covering
        found = []
        for kind in sorted(kinds):
            inside = [d for d in covering if self.kinds.get(d.agency_id) == kind]
            if inside:
                primary = min(inside, key=lambda d: (self._station_m(d, point), d.key))
                found.append(Responsibility(kind, (primary.agency_id,), primary, self.first_due[primary.key]))
            elif self.citywide[kind]:
                found.append(Responsibility(kind, self.citywide[kind]))
            else:
                near = self.city.districts.nearest(point, lambda d, k=kind: self.kinds.get(d.agency_id) == k)
                if near is not None:
                    district, metres = near
                    found.append(Responsibility(kind, (district.agency_id,), district,
                                                self.first_due[district.key], outside_m=metres))
        return found


def _reach(district: District) -> Reach:
    return Reach(*district.reach())
