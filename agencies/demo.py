"""Demo City: a generated 12 km x 12 km city with a police, a fire and an EMS agency.

The embedded default runs on it, so it needs no data files. It is deterministic: the only
randomness is ``random.Random(seed)``, which bends the district borders and places the
stations. Each agency's districts tile the whole square (neighbours share their borders
exactly), and every station lies inside its own district.

    demo-pd   16 beats (1A..4D) in 4 precincts, one precinct station each
    demo-fd   9 first-due areas, one fire station each
    demo-ems  4 zones, each with a base and a post

147 units, homed at stations except the beat cars, posted in their beats: patrols 1A11..4D13, sergeants 1S1, K-9s 1K9, traffic 1T1; engines
E1..E9 and E11..E19, trucks T1 T3 T5 T7 T9, rescues, chiefs B1..B4, hazmat, brush, boats;
medics M1..M24, ambulances A1..A16, EMS supervisors EMS1..EMS4.
"""
from __future__ import annotations

import math
import random

from agencies.city import City, UnitSpec
from agencies.model import Agency, AgencyKind, Station
from geo.coords import LatLon
from geo.districts import DistrictIndex
from geo.geojson import districts_from_features

CENTRE = LatLon(45.0, -93.0)
SIZE_M = 12_000
_M_PER_DEG_LAT = 111_320.0

Bounds = tuple[float, float, float, float]  # west, south, east, north
Ring = list[tuple[float, float]]            # (lon, lat) corners, counter-clockwise, not closed


def demo_bounds() -> Bounds:
    """The city square in lon/lat degrees."""
    half_lat = SIZE_M / 2 / _M_PER_DEG_LAT
    half_lon = SIZE_M / 2 / (_M_PER_DEG_LAT * math.cos(math.radians(CENTRE.lat)))
    return (round(CENTRE.lon - half_lon, 6), round(CENTRE.lat - half_lat, 6),
            round(CENTRE.lon + half_lon, 6), round(CENTRE.lat + half_lat, 6))


def generate_demo_city(seed: int = 7) -> City:
    rng = random.Random(seed)
    bounds = demo_bounds()
    police, police_stations, police_units = _police(rng, bounds)
    fire, fire_stations, fire_units = _fire(rng, bounds)
    ems, ems_stations, ems_units = _ems(rng, bounds)
    return City(
        name="Demo City",
        agencies=(Agency("demo-pd", "Demo City Police Department", AgencyKind.POLICE),
                  Agency("demo-fd", "Demo City Fire Department", AgencyKind.FIRE),
                  Agency("demo-ems", "Demo City EMS", AgencyKind.EMS)),
        stations=police_stations + fire_stations + ems_stations,
        districts=DistrictIndex(districts_from_features(police + fire + ems)),
        units=police_units + fire_units + ems_units,
    )


# -- the agencies ---------------------------------------------------------------------------

def _police(rng: random.Random, bounds: Bounds):
    cells = _tiling(rng, 4, bounds)
    districts, stations, units = [], [], []
    for precinct in range(1, 5):
        # precincts 1 2 / 3 4 from the north-west; beats A B / C D inside each precinct
        beats = {f"{precinct}{letter}": cells[2 * ((precinct - 1) // 2) + k // 2][2 * ((precinct - 1) % 2) + k % 2]
                 for k, letter in enumerate("ABCD")}
        home_beat = beats[rng.choice(sorted(beats))]
        station = Station(f"PCT{precinct}", "demo-pd", f"Precinct {precinct}", _site(rng, home_beat))
        stations.append(station)
        for beat, cell in beats.items():
            districts.append(_feature("demo-pd", beat, f"Beat {beat}", cell))
            # beat cars work their beat: each is posted at its own point inside it (a separate
            # generator per car, so the rest of the city does not depend on these draws)
            units += [UnitSpec(f"{beat}{n}", "demo-pd", "patrol", station.id,
                               _site(random.Random(f"{beat}{n}"), cell, reach=0.6)) for n in (11, 12, 13)]
        units += [_unit(f"{precinct}S{n}", "demo-pd", "supervisor", station) for n in (1, 2)]
        units.append(_unit(f"{precinct}K9", "demo-pd", "k9", station))
        units += [_unit(f"{precinct}T{n}", "demo-pd", "traffic", station) for n in (1, 2)]
    return districts, tuple(stations), tuple(units)


# station number -> apparatus beyond its engine
_FIRE_EXTRA = {
    1: ("T1", "R1"), 2: ("B1", "BR2"), 3: ("T3", "FB3"), 4: ("HM4",), 5: ("T5", "B2", "R5"),
    6: ("FB6", "B4"), 7: ("T7", "BR7"), 8: ("B3",), 9: ("T9", "BR9"),
}
_FIRE_TYPES = {"E": "engine", "T": "truck", "R": "rescue", "B": "chief", "HM": "hazmat",
               "BR": "brush", "FB": "boat"}


def _fire(rng: random.Random, bounds: Bounds):
    cells = _tiling(rng, 3, bounds)
    districts, stations, units = [], [], []
    for n in range(1, 10):
        area = cells[(n - 1) // 3][(n - 1) % 3]
        districts.append(_feature("demo-fd", str(n), f"Station {n} first-due", area))
        station = Station(f"FS{n}", "demo-fd", f"Fire Station {n}", _site(rng, area))
        stations.append(station)
        for unit_id in (f"E{n}", f"E{n + 10}", *_FIRE_EXTRA[n]):
            prefix = unit_id.rstrip("0123456789")
            units.append(_unit(unit_id, "demo-fd", _FIRE_TYPES[prefix], station))
    return districts, tuple(stations), tuple(units)


_ZONES = ("North-west", "North-east", "South-west", "South-east")


def _ems(rng: random.Random, bounds: Bounds):
    cells = _tiling(rng, 2, bounds)
    districts, stations, units = [], [], []
    medic = ambulance = 0
    for zone in range(1, 5):
        area = cells[(zone - 1) // 2][(zone - 1) % 2]
        districts.append(_feature("demo-ems", str(zone), f"Zone {zone} ({_ZONES[zone - 1]})", area))
        base = Station(f"EB{zone}", "demo-ems", f"EMS Base {zone}", _site(rng, area))
        post = Station(f"EP{zone}", "demo-ems", f"EMS Post {zone}", _site(rng, area, reach=0.45))
        stations += [base, post]
        units.append(_unit(f"EMS{zone}", "demo-ems", "ems_supervisor", base))
        for station in (base, post):
            for _ in range(3):
                medic += 1
                units.append(_unit(f"M{medic}", "demo-ems", "als", station))
            for _ in range(2):
                ambulance += 1
                units.append(_unit(f"A{ambulance}", "demo-ems", "bls", station))
    return districts, tuple(stations), tuple(units)


def _unit(unit_id: str, agency_id: str, unit_type: str, station: Station) -> UnitSpec:
    return UnitSpec(unit_id, agency_id, unit_type, station.id, station.location)


# -- geometry -------------------------------------------------------------------------------

def _feature(agency_id: str, district_id: str, name: str, ring: Ring) -> dict:
    return {"type": "Feature", "properties": {"agency_id": agency_id, "district_id": district_id, "name": name},
            "geometry": {"type": "Polygon", "coordinates": [[list(p) for p in ring + ring[:1]]]}}


def _tiling(rng: random.Random, n: int, bounds: Bounds) -> list[list[Ring]]:
    """An n x n grid of cells, rows from the north, with bent borders shared exactly by neighbours.

    Inner corners move by up to 18 % of a cell and every inner edge bows at its middle by up
    to 12 % of its length; corners on the city edge slide only along it.
    """
    west, south, east, north = bounds
    dx, dy = (east - west) / n, (north - south) / n

    def wobble(i: int, edge: bool, size: float) -> float:
        return 0.0 if edge else rng.uniform(-0.18, 0.18) * size

    corners: dict[tuple[int, int], tuple[float, float]] = {}
    for i in range(n + 1):          # i: column of corners, west to east
        for j in range(n + 1):      # j: row of corners, north to south
            x = west + i * dx + wobble(i, i in (0, n), dx)
            y = north - j * dy + wobble(j, j in (0, n), dy)
            corners[i, j] = (round(x, 6), round(y, 6))

    middles: dict[frozenset, tuple[float, float]] = {}

    def middle(a: tuple[int, int], b: tuple[int, int]) -> tuple[float, float]:
        key = frozenset((a, b))
        if key not in middles:
            (ax, ay), (bx, by) = corners[a], corners[b]
            on_edge = (a[0] == b[0] and a[0] in (0, n)) or (a[1] == b[1] and a[1] in (0, n))
            bow = 0.0 if on_edge else rng.uniform(-0.12, 0.12)
            middles[key] = (round((ax + bx) / 2 - bow * (by - ay), 6), round((ay + by) / 2 + bow * (bx - ax), 6))
        return middles[key]

    rows = []
    for j in range(n):
        row = []
        for i in range(n):
            around = [(i, j), (i, j + 1), (i + 1, j + 1), (i + 1, j)]   # NW, SW, SE, NE
            ring: Ring = []
            for a, b in zip(around, around[1:] + around[:1]):
                ring += [corners[a], middle(a, b)]
            row.append(ring)
        rows.append(row)
    return rows


def _site(rng: random.Random, ring: Ring, reach: float = 0.25) -> LatLon:
    """A point well inside a cell: the mean of its corners, moved part of the way towards one.

    The cells bend too little to stop being star-shaped around that mean, so the point stays
    inside; the tests check it for several seeds.
    """
    cx, cy = sum(x for x, _ in ring) / len(ring), sum(y for _, y in ring) / len(ring)
    x, y = ring[rng.randrange(len(ring))]
    t = rng.uniform(0.5, 1.0) * reach
    return LatLon(round(cy + t * (y - cy), 6), round(cx + t * (x - cx), 6))
