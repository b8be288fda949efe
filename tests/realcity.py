"""Manifests for the real cities in ../shared/data, for tests and benchmarks.

Each ``*_manifest(tmp_path)`` writes a units CSV derived from the real data plus a TOML
manifest into ``tmp_path`` and returns the manifest's path, ready for
``coordinator.importer.load_manifest``. The shared files are referenced by absolute path.

Seattle: SPD beats; SFD stations from fire_stations.csv with the front-line apparatus of
fire_station_apparatus.json (never its lat/lon, which are partly wrong); SFD medics and
aid cars form an EMS agency ("Medic One") homed at the same fire stations.

San Francisco: SFPD historical districts; SFFD stations, with the 5-minute catchments as
fire districts; units are the distinct units of one city-wide week of fire calls. E##/T##
live at station ##; other units at the Station Area they served most. Medics and rescue
captains form an SFFD EMS agency, private ambulances a third one.
"""
from __future__ import annotations

import csv
import json
import re
from collections import Counter, defaultdict
from pathlib import Path

from agencies.model import AgencyKind
from agencies.plans import load_plans


def shared_data() -> Path | None:
    """The shared data folder beside the repository, or None when it is absent."""
    path = Path(__file__).resolve().parents[1].parent / "shared" / "data"
    return path if path.is_dir() else None


def require_shared_data() -> Path:
    """The shared data folder, or skip the calling test with the reason (CI always has it)."""
    import pytest

    path = shared_data()
    if path is None:
        pytest.skip("../shared/data is absent beside the repository; these tests read the real files there")
    return path


def _data(city: str) -> Path:
    root = shared_data()
    if root is None:
        raise FileNotFoundError("the shared data folder ../shared/data is absent")
    return root / city


# -- Seattle --------------------------------------------------------------------------------

# unit_id_patterns.json label -> our unit type; labels not listed are skipped
SEATTLE_TYPES = {
    "Engine #": "engine", "Ladder #": "truck", "Medic #": "als", "Aid #": "bls",
    "Battalion #": "chief", "Deputy Chief #": "chief", "Rescue #": "rescue",
    "Hazardous Materials Unit #": "hazmat", "Fire Boat #": "boat", "Fire Rescue Boat #": "boat",
    "Fireboat #": "boat",
}


def seattle_unit_type(unit_id: str, patterns: dict[str, str]) -> str | None:
    for pattern, label in patterns.items():
        if re.search(pattern, unit_id):
            return SEATTLE_TYPES.get(label)
    return None


def seattle_manifest(tmp_path: Path) -> Path:
    data = _data("seattle")
    patterns = json.loads((data / "unit_id_patterns.json").read_text(encoding="utf-8"))
    apparatus = json.loads((data / "fire_station_apparatus.json").read_text(encoding="utf-8"))
    kinds = {t.id: t.kind for t in load_plans().unit_types.values()}
    fire, ems = [], []
    for station in apparatus:
        for unit_id in station["apparatus"]:      # front line only; reserves stay home
            unit_type = seattle_unit_type(unit_id, patterns)
            if unit_type is not None:
                row = {"unit_id": unit_id, "type": unit_type, "station": str(station["id"])}
                (ems if kinds[unit_type] == AgencyKind.EMS else fire).append(row)
    _write_units(tmp_path / "sfd_units.csv", fire)
    _write_units(tmp_path / "sfd_medic_units.csv", ems)
    return _write_manifest(tmp_path / "seattle.toml", "Seattle", [
        {"id": "spd", "name": "Seattle Police Department", "kind": "police",
         "districts": str(data / "spd_beats.geojson"), "district_id": "name", "district_name": "name"},
        {"id": "sfd", "name": "Seattle Fire Department", "kind": "fire",
         "stations": str(data / "fire_stations.csv"), "station_id": "STNID",
         "station_id_pattern": r"^(?:SFD )?(\w+)$", "station_name": "STNID", "units": "sfd_units.csv"},
        {"id": "sfd-medic", "name": "Seattle Fire Department Medic One", "kind": "ems",
         "units": "sfd_medic_units.csv"},
    ])


# -- San Francisco --------------------------------------------------------------------------

SF_CALLS = "sffd_calls_citywide_2016-12-31_2017-01-07.csv"
SF_STATION = r"(?:Fire )?Station #?(\d+)"
FIREBOAT_STATION = "35"


def sf_unit(unit_id: str, unit_type: str) -> tuple[str, str] | None:
    """(agency id, our unit type) for a unit of the SFFD calls, or None to leave it out."""
    if unit_type == "CHIEF":
        return ("sffd-ems", "ems_supervisor") if unit_id.startswith("EMS") else ("sffd", "chief")
    if unit_type == "SUPPORT":
        return ("sffd", "boat") if re.fullmatch(r"FB\d+", unit_id) else None
    return {"ENGINE": ("sffd", "engine"), "TRUCK": ("sffd", "truck"), "RESCUE SQUAD": ("sffd", "rescue"),
            "MEDIC": ("sffd-ems", "als"), "RESCUE CAPTAIN": ("sffd-ems", "ems_supervisor"),
            "PRIVATE": ("sf-private-ems", "bls")}.get(unit_type)


def sf_station_points(data: Path) -> tuple[dict[str, tuple[float, float]], set[str]]:
    """Station number -> (lat, lon) from the stations GeoJSON and the facilities supplement,
    and the numbers the GeoJSON (the manifest's stations file) lists."""
    points = {}
    features = json.loads((data / "sf_fire_stations.geojson").read_text(encoding="utf-8"))["features"]
    for feature in features:
        number = re.search(SF_STATION, feature["properties"]["common_name"]).group(1)
        lon, lat = feature["geometry"]["coordinates"][:2]
        points[number] = (lat, lon)
    listed = set(points)
    with (data / "sf_fire_facilities_supplement.csv").open(encoding="utf-8-sig", newline="") as f:
        for row in csv.DictReader(f):
            match = re.search(SF_STATION, row["common_name"])
            if match:
                points.setdefault(match.group(1), (float(row["latitude"]), float(row["longitude"])))
    return points, listed


def sf_units(data: Path) -> dict[str, list[dict]]:
    """Agency id -> unit rows (unit_id, type, station, lat, lon) for the units CSVs."""
    areas: dict[str, Counter] = defaultdict(Counter)
    types: dict[str, Counter] = defaultdict(Counter)
    with (data / SF_CALLS).open(encoding="utf-8-sig", newline="") as f:
        for row in csv.DictReader(f):
            areas[row["Unit ID"]][row["Station Area"]] += 1
            types[row["Unit ID"]][row["Unit Type"]] += 1
    points, listed_stations = sf_station_points(data)
    found: dict[str, list[dict]] = defaultdict(list)
    for unit_id in sorted(types):
        mapped = sf_unit(unit_id, types[unit_id].most_common(1)[0][0])
        if mapped is None:
            continue
        if re.fullmatch(r"[ET]\d+", unit_id):
            home = str(int(unit_id[1:]))
        elif mapped[1] == "boat":
            home = FIREBOAT_STATION
        else:
            served = [str(int(a)) for a, _ in areas[unit_id].most_common() if a.isdigit()]
            home = next((s for s in served if s in points), "")
        if home not in points:
            continue    # e.g. E51: station 51 (Presidio) has no location
        row = {"unit_id": unit_id, "type": mapped[1], "station": home}
        if home not in listed_stations:     # only in the supplement: give the position instead
            row["lat"], row["lon"] = points[home]
        found[mapped[0]].append(row)
    return found


def sf_manifest(tmp_path: Path) -> Path:
    data = _data("sf")
    units = sf_units(data)
    for agency_id in ("sffd", "sffd-ems", "sf-private-ems"):
        _write_units(tmp_path / f"{agency_id}_units.csv", units[agency_id])
    return _write_manifest(tmp_path / "san_francisco.toml", "San Francisco", [
        {"id": "sfpd", "name": "San Francisco Police Department", "kind": "police",
         "districts": str(data / "sfpd_districts_historical.geojson"), "district_id": "district",
         "district_name": "district"},
        {"id": "sffd", "name": "San Francisco Fire Department", "kind": "fire",
         "districts": str(data / "sf_fire_station_5min_catchments_DERIVED.geojson"),
         "district_id": "fire_station_number", "district_name": "common_name",
         "stations": str(data / "sf_fire_stations.geojson"), "station_id": "common_name",
         "station_id_pattern": SF_STATION, "station_name": "common_name", "units": "sffd_units.csv"},
        {"id": "sffd-ems", "name": "San Francisco Fire Department EMS", "kind": "ems",
         "units": "sffd-ems_units.csv"},
        {"id": "sf-private-ems", "name": "Private ambulances (AMR, King-American and others)", "kind": "ems",
         "units": "sf-private-ems_units.csv"},
    ])


# -- writing --------------------------------------------------------------------------------

def _write_units(path: Path, rows: list[dict]) -> None:
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, ["unit_id", "type", "station", "lat", "lon"], restval="")
        writer.writeheader()
        writer.writerows(rows)


def _write_manifest(path: Path, name: str, agencies: list[dict]) -> Path:
    """TOML by hand: JSON strings are valid TOML basic strings."""
    lines = [f"name = {json.dumps(name)}"]
    for agency in agencies:
        lines += ["", "[[agencies]]"] + [f"{key} = {json.dumps(value)}" for key, value in agency.items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
