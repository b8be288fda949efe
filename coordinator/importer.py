"""Read a real city from a TOML manifest and the data files it names. I/O at the edge.

    name = "Seattle"
    [[agencies]]
    id = "sfd"                              # required, with name and kind (police | fire | ems)
    name = "Seattle Fire Department"
    kind = "fire"
    districts = "spd_beats.geojson"         # optional GeoJSON polygons; district_id names the id
    district_id = "name"                    #   property, district_name the (optional) name one
    stations = "fire_stations.csv"          # optional GeoJSON points or CSV (X/Y, lon/lat,
    station_id = "STNID"                    #   longitude/latitude or lng/lat columns)
    station_id_pattern = "SFD (\\w+)"       # optional regex: group 1 becomes the station id
    station_name = "STNID"                  # optional; defaults to the raw station_id value
    units = "units.csv"                     # optional CSV: unit_id, type, station[, lat, lon]

Paths are relative to the manifest file. Station ids are unique city-wide, so a units file
may home its units at another agency's station (medics posted at fire stations). A unit
whose station is not listed needs lat/lon and then has no station. Every problem is a
ValueError that names the file and the row.
"""
from __future__ import annotations

import csv
import io
import json
import re
import tomllib
from collections.abc import Iterator, Mapping
from pathlib import Path

from agencies.city import City, UnitSpec, check_city
from agencies.model import Agency, Station, parse_kind
from agencies.plans import Plans, load_plans
from geo.coords import LatLon
from geo.districts import District, DistrictIndex
from geo.geojson import read_districts, read_points

_AGENCY_KEYS = {"id", "name", "kind", "districts", "district_id", "district_name", "stations",
                "station_id", "station_id_pattern", "station_name", "units"}
_LON_LAT = (("x", "y"), ("lon", "lat"), ("longitude", "latitude"), ("lng", "lat"))


def load_manifest(path: str | Path, plans: Plans | None = None) -> City:
    path = Path(path)
    plans = plans or load_plans()
    manifest = _read_toml(path)
    raw_agencies = manifest.get("agencies")
    if not isinstance(raw_agencies, list) or not raw_agencies:
        raise ValueError(f"{path}: the manifest needs at least one [[agencies]] table")
    agencies: list[tuple[Agency, Mapping]] = []
    districts: list[District] = []
    stations: dict[str, Station] = {}
    for i, raw in enumerate(raw_agencies):
        agency = _agency(raw, f"{path}: agencies[{i}]")
        where = f"{path}: agency {agency.id!r}"
        if "districts" in raw:
            districts += _districts(_file(path, raw, "districts", where), agency, raw, where)
        if "stations" in raw:
            for station in _stations(_file(path, raw, "stations", where), agency, raw, where):
                if station.id in stations:
                    raise ValueError(f"{where}: station id {station.id!r} is already used by agency "
                                     f"{stations[station.id].agency_id!r}")
                stations[station.id] = station
        agencies.append((agency, raw))
    units: dict[str, UnitSpec] = {}
    for agency, raw in agencies:
        if "units" in raw:
            where = f"{path}: agency {agency.id!r}"
            _read_units(_file(path, raw, "units", where), agency, stations, plans, units)
    try:
        city = City(name=_text(manifest, "name", str(path)), agencies=tuple(a for a, _ in agencies),
                    stations=tuple(stations.values()), districts=DistrictIndex(districts),
                    units=tuple(units.values()))
        check_city(city, plans)
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from None
    return city


# -- the manifest ---------------------------------------------------------------------------

def _read_toml(path: Path) -> dict:
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise ValueError(f"manifest {path} does not exist") from None
    except tomllib.TOMLDecodeError as err:
        raise ValueError(f"{path}: not valid TOML: {err}") from None


def _text(raw: Mapping, key: str, where: str) -> str:
    value = raw.get(key)
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{where}: {key!r} is required and must be a non-empty string, got {value!r}")
    return value.strip()


def _agency(raw: object, where: str) -> Agency:
    if not isinstance(raw, Mapping):
        raise ValueError(f"{where} must be a table")
    agency_id = _text(raw, "id", where)
    where = f"{where} ({agency_id!r})"
    unknown = sorted(set(raw) - _AGENCY_KEYS)
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {', '.join(map(repr, unknown))}; "
                         f"known keys: {', '.join(sorted(_AGENCY_KEYS))}")
    try:
        kind = parse_kind(_text(raw, "kind", where))
    except ValueError as err:
        raise ValueError(f"{where}: {err}") from None
    return Agency(agency_id, _text(raw, "name", where), kind)


def _file(manifest: Path, raw: Mapping, key: str, where: str) -> Path:
    file = manifest.parent / _text(raw, key, where)
    if not file.is_file():
        raise ValueError(f"{where}: {key} file {file} does not exist")
    return file


def _read_json(file: Path) -> object:
    try:
        return json.loads(file.read_text(encoding="utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{file}: not valid JSON: {err}") from None


# -- districts and stations -----------------------------------------------------------------

def _districts(file: Path, agency: Agency, raw: Mapping, where: str) -> list[District]:
    id_property = _text(raw, "district_id", where)
    try:
        return read_districts(_read_json(file), agency.id, id_property, raw.get("district_name"))
    except ValueError as err:
        raise ValueError(f"{file}: {err}") from None


def _stations(file: Path, agency: Agency, raw: Mapping, where: str) -> Iterator[Station]:
    id_key = _text(raw, "station_id", where)
    name_key = raw.get("station_name") or id_key
    pattern = _pattern(raw.get("station_id_pattern"), where)
    seen = set()
    for row_where, row, location in _points(file, tuple(dict.fromkeys((id_key, name_key)))):
        raw_id = str(row.get(id_key) or "").strip()
        if not raw_id:
            raise ValueError(f"{row_where}: empty station id in {id_key!r}")
        station_id = raw_id
        if pattern is not None:
            match = pattern.search(raw_id)
            if match is None or not match.group(1):
                raise ValueError(f"{row_where}: station id {raw_id!r} does not match "
                                 f"station_id_pattern '{pattern.pattern}'")
            station_id = match.group(1)
        if station_id in seen:
            raise ValueError(f"{row_where}: station id {station_id!r} occurs twice in this file")
        seen.add(station_id)
        name = str(row.get(name_key) or "").strip() or raw_id
        yield Station(station_id, agency.id, name, location)


def _pattern(text: object, where: str) -> re.Pattern | None:
    if text is None:
        return None
    try:
        pattern = re.compile(str(text))
    except re.error as err:
        raise ValueError(f"{where}: station_id_pattern '{text}' is not a valid regular expression: {err}") from None
    if pattern.groups < 1:
        raise ValueError(f"{where}: station_id_pattern '{text}' needs a group, e.g. 'SFD (\\w+)'")
    return pattern


def _points(file: Path, needed: tuple[str, ...]) -> Iterator[tuple[str, Mapping, LatLon]]:
    """(where, properties or row, location) for each point of a GeoJSON or CSV file."""
    if file.suffix.lower() in (".geojson", ".json"):
        try:
            points = read_points(_read_json(file))
        except ValueError as err:
            raise ValueError(f"{file}: {err}") from None
        for i, (properties, location) in enumerate(points):
            for key in needed:
                if key not in properties:
                    raise ValueError(f"{file} feature {i}: no property {key!r}; "
                                     f"properties: {', '.join(properties)}")
            yield f"{file} feature {i}", properties, location
    elif file.suffix.lower() == ".csv":
        columns, rows = _csv(file, needed)
        lon_col, lat_col = _lon_lat(file, columns)
        for row_where, row in rows:
            yield row_where, row, _location(row_where, row[lat_col], row[lon_col])
    else:
        raise ValueError(f"{file}: stations must be GeoJSON (.geojson, .json) or CSV (.csv)")


def _lon_lat(file: Path, columns: list[str]) -> tuple[str, str]:
    lower = {c.strip().lower(): c for c in columns}
    for lon, lat in _LON_LAT:
        if lon in lower and lat in lower:
            return lower[lon], lower[lat]
    raise ValueError(f"{file}: no longitude/latitude columns (looked for X/Y, lon/lat, longitude/latitude, "
                     f"lng/lat); columns: {', '.join(columns)}")


# -- CSV ------------------------------------------------------------------------------------

def _csv(file: Path, needed: tuple[str, ...]) -> tuple[list[str], Iterator[tuple[str, dict]]]:
    try:
        text = file.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise ValueError(f"{file}: not UTF-8 text: {err}") from None
    reader = csv.DictReader(io.StringIO(text, newline=""))
    columns = [c.strip() for c in reader.fieldnames or []]
    if not columns:
        raise ValueError(f"{file}: empty file, expected a header row")
    reader.fieldnames = columns
    missing = [c for c in needed if c not in columns]
    if missing:
        raise ValueError(f"{file}: missing column(s) {', '.join(map(repr, missing))}; "
                         f"columns: {', '.join(columns)}")

    def rows() -> Iterator[tuple[str, dict]]:
        for row in reader:
            yield f"{file} line {reader.line_num}", {k: (v or "").strip() for k, v in row.items() if k}

    return columns, rows()


def _location(where: str, lat: str, lon: str) -> LatLon:
    try:
        numbers = float(lat), float(lon)
    except ValueError:
        raise ValueError(f"{where}: lat/lon must be numbers, got {lat!r}, {lon!r}") from None
    try:
        return LatLon(*numbers)
    except ValueError as err:
        raise ValueError(f"{where}: {err}") from None


# -- units ----------------------------------------------------------------------------------

def _read_units(file: Path, agency: Agency, stations: Mapping[str, Station], plans: Plans,
                units: dict[str, UnitSpec]) -> None:
    columns, rows = _csv(file, ("unit_id", "type", "station"))
    has_position = "lat" in columns and "lon" in columns
    if ("lat" in columns) != ("lon" in columns):
        raise ValueError(f"{file}: give both 'lat' and 'lon' columns or neither")
    for where, row in rows:
        unit_id, type_id, station_id = row["unit_id"], row["type"], row["station"]
        if not unit_id:
            raise ValueError(f"{where}: empty unit_id")
        where = f"{where} (unit {unit_id!r})"
        if unit_id in units:
            raise ValueError(f"{where}: unit id {unit_id!r} is listed twice")
        try:
            unit_type = plans.unit_type(type_id)
        except ValueError as err:
            raise ValueError(f"{where}: {err}") from None
        if unit_type.kind != agency.kind:
            raise ValueError(f"{where}: type {type_id!r} is for {unit_type.kind} agencies, "
                             f"but agency {agency.id!r} is {agency.kind}")
        position = None
        if has_position and (row["lat"] or row["lon"]):
            position = _location(where, row["lat"], row["lon"])
        station = stations.get(station_id)
        if station is None and position is None:
            known = ", ".join(sorted(stations)[:12]) + (" …" if len(stations) > 12 else "")
            raise ValueError(f"{where}: station {station_id!r} is unknown and the row has no lat/lon; "
                             f"known stations: {known or '(none)'}")
        units[unit_id] = UnitSpec(unit_id, agency.id, type_id, station.id if station else None,
                                  position or station.location)
