"""A city as the dispatch centre knows it: agencies, stations, districts and the units they field.

Pure data, no I/O. ``City.to_doc`` / ``City.from_doc`` give a JSON-safe document (districts
as GeoJSON features) so a city can be stored beside the event log and read back exactly.
``check_city`` lists everything that would make the city unusable with a set of run cards.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from agencies.model import Agency, Station, UnitType, parse_kind
from geo.coords import LatLon
from geo.districts import DistrictIndex
from geo.geojson import districts_from_features, districts_to_features


@dataclass(frozen=True)
class UnitSpec:
    """A unit as the city defines it, before it is commissioned in the event log."""

    id: str
    agency_id: str
    type: str
    station_id: str | None
    home: LatLon

    def to_json(self) -> dict:
        return {"id": self.id, "agency_id": self.agency_id, "type": self.type,
                "station_id": self.station_id, "home": self.home.to_json()}

    @classmethod
    def from_json(cls, d: Mapping) -> UnitSpec:
        where = f"unit {d.get('id', '?')!r}" if isinstance(d, Mapping) else "a unit"
        d = _mapping(d, where)
        station_id = _field(d, "station_id", where, required=False)
        return cls(id=_text(d, "id", where), agency_id=_text(d, "agency_id", where),
                   type=_text(d, "type", where), station_id=None if station_id is None else str(station_id),
                   home=_location(d, "home", where))


@dataclass(frozen=True)
class City:
    name: str
    agencies: tuple[Agency, ...]
    stations: tuple[Station, ...]
    districts: DistrictIndex
    units: tuple[UnitSpec, ...]

    def agency(self, agency_id: str) -> Agency:
        for agency in self.agencies:
            if agency.id == agency_id:
                return agency
        raise ValueError(f"unknown agency {agency_id!r}")

    def to_doc(self) -> dict:
        return {
            "name": self.name,
            "agencies": [{"id": a.id, "name": a.name, "kind": str(a.kind)} for a in self.agencies],
            "stations": [{"id": s.id, "agency_id": s.agency_id, "name": s.name, "location": s.location.to_json()}
                         for s in self.stations],
            "districts": districts_to_features(self.districts),
            "units": [u.to_json() for u in self.units],
        }

    @classmethod
    def from_doc(cls, doc: Mapping) -> City:
        """The exact inverse of ``to_doc``; a readable ValueError for a malformed document."""
        if not isinstance(doc, Mapping):
            raise ValueError(f"a city document must be an object, got {type(doc).__name__}")
        agencies = tuple(_agency(d) for d in _list(doc, "agencies"))
        stations = tuple(_station(d) for d in _list(doc, "stations"))
        try:
            districts = DistrictIndex(districts_from_features(_list(doc, "districts")))
        except ValueError as err:
            raise ValueError(f"city document, districts: {err}") from None
        units = tuple(UnitSpec.from_json(d) for d in _list(doc, "units"))
        return cls(name=_text(doc, "name", "city document"), agencies=agencies, stations=stations,
                   districts=districts, units=units)


class UnitTypes(Protocol):
    def unit_type(self, type_id: str) -> UnitType: ...


def check_city(city: City, plans: UnitTypes) -> None:
    """Raise one ValueError listing every problem, or return None if the city is usable.

    Station ids are unique city-wide, so a unit may be homed at another agency's station
    (a medic posted at a fire station).
    """
    problems = list(city_problems(city, plans))
    if problems:
        listed = "\n".join(f"- {p}" for p in problems)
        raise ValueError(f"city {city.name!r} has {len(problems)} problem(s):\n{listed}")


def city_problems(city: City, plans: UnitTypes) -> Iterable[str]:
    yield from _duplicates("agency", (a.id for a in city.agencies))
    yield from _duplicates("station", (s.id for s in city.stations))
    yield from _duplicates("unit", (u.id for u in city.units))
    agencies = {a.id: a for a in city.agencies}
    stations = {s.id for s in city.stations}
    for station in city.stations:
        if station.agency_id not in agencies:
            yield f"station {station.id!r} belongs to unknown agency {station.agency_id!r}"
    for district in city.districts:
        if district.agency_id not in agencies:
            yield f"district {district.district_id!r} belongs to unknown agency {district.agency_id!r}"
    for unit in city.units:
        agency = agencies.get(unit.agency_id)
        if agency is None:
            yield f"unit {unit.id!r} belongs to unknown agency {unit.agency_id!r}"
        if unit.station_id is not None and unit.station_id not in stations:
            yield f"unit {unit.id!r} is homed at unknown station {unit.station_id!r}"
        try:
            unit_type = plans.unit_type(unit.type)
        except ValueError:
            yield f"unit {unit.id!r} has unknown type {unit.type!r}"
            continue
        if agency is not None and unit_type.kind != agency.kind:
            yield (f"unit {unit.id!r} has type {unit.type!r}, which is for {unit_type.kind} agencies, "
                   f"but agency {agency.id!r} is {agency.kind}")


def _duplicates(what: str, ids: Iterable[str]) -> Iterable[str]:
    for key, count in sorted(Counter(ids).items()):
        if count > 1:
            yield f"{what} id {key!r} is used {count} times"


# -- reading the document -------------------------------------------------------------------

_MISSING = object()


def _field(d: Mapping, key: str, where: str, required: bool = True) -> Any:
    value = d.get(key, _MISSING)
    if value is _MISSING:
        if required:
            raise ValueError(f"{where} is missing {key!r}")
        return None
    return value


def _text(d: Mapping, key: str, where: str) -> str:
    value = _field(d, key, where)
    if not isinstance(value, str) or not value:
        raise ValueError(f"{where}: {key!r} must be a non-empty string, got {value!r}")
    return value


def _mapping(value: Any, where: str) -> Mapping:
    if not isinstance(value, Mapping):
        raise ValueError(f"{where} must be an object, got {value!r}")
    return value


def _list(doc: Mapping, key: str) -> list:
    value = _field(doc, key, "city document")
    if not isinstance(value, list):
        raise ValueError(f"city document: {key!r} must be a list, got {type(value).__name__}")
    return value


def _location(d: Mapping, key: str, where: str) -> LatLon:
    try:
        return LatLon.from_json(_field(d, key, where))
    except ValueError as err:
        raise ValueError(f"{where}, {key}: {err}") from None


def _agency(d: Any) -> Agency:
    where = f"agency {d.get('id', '?')!r}" if isinstance(d, Mapping) else "an agency"
    d = _mapping(d, where)
    try:
        kind = parse_kind(_field(d, "kind", where))
    except ValueError as err:
        raise ValueError(f"{where}: {err}") from None
    return Agency(id=_text(d, "id", where), name=_text(d, "name", where), kind=kind)


def _station(d: Any) -> Station:
    where = f"station {d.get('id', '?')!r}" if isinstance(d, Mapping) else "a station"
    d = _mapping(d, where)
    return Station(id=_text(d, "id", where), agency_id=_text(d, "agency_id", where),
                   name=_text(d, "name", where), location=_location(d, "location", where))
