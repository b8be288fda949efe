"""Real calls resolved to real police districts, and how far the result agrees with the labels.

Loads the shared data (../shared/data, see its PROVENANCE.md) through ``geo.geojson.read_districts``
and ``geo.DistrictIndex`` and resolves every row:

  * Seattle Fire 911 calls, March and November 2017, to the 51 SPD beats and the 5 SPD precincts.
    The calls carry no police label (only the neighbourhood names ``S_HOOD``/``L_HOOD`` that students
    joined on, and no neighbourhood polygons or neighbourhood-to-beat mapping exist in the data), so
    the comparison is between the two SPD layers: the precinct of the beat found must be the precinct
    found in ``spd_precincts``. A beat's precinct is *derived from the geometry*: the precinct polygon
    that holds (nearly) all of the beat's area; ``spd_beats`` carries only ``name``.
  * SFPD incident reports of December 2013 to the 10 historical SFPD districts, against their
    ``PdDistrict`` label (PROVENANCE: 8,800 of 9,030 agree, printed there as 97.5 %).
  * SFPD CAD calls of 2018-12-31: no coordinates and no district label, so nothing can be resolved;
    they are listed so that they are not silently left out.

A row *agrees* when its label is among the districts found (a point on a shared border is in both);
agreement % is over all rows, so rows outside every district count against it. For each
disagreement the distance from the point to the labelled district's polygon is measured in metres
(local equirectangular projection around the city; well under 1 % error at city scale).
Lookups/s times ``DistrictIndex.at`` alone over the dataset's points (``--reps`` runs, median).

    .venv/bin/python bench/districts_agreement.py [--reps 5] [--data PATH] [--examples 8]

Prints tables and writes bench/results/districts_agreement.json.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import math
import statistics
import sys
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import _timing as T
import shapely
from shapely.geometry import Point
from shapely.geometry.base import BaseGeometry

from geo import District, DistrictIndex, LatLon
from geo.coords import EARTH_RADIUS_M
from geo.geojson import read_districts
from tests.realcity import shared_data

SEATTLE_MONTHS = ("2017-03", "2017-11")
DISTANCE_BUCKETS_M = (1, 10, 50, 100, 500)


# -- helpers -------------------------------------------------------------------------------------
def load_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8-sig", newline="") as f:
        return list(csv.DictReader(f))


def point_of(lat: str, lon: str) -> LatLon | None:
    """The row's location, or None when it has none (empty or not a number)."""
    try:
        return LatLon(float(lat), float(lon))
    except ValueError:
        return None


def metres(lat0: float) -> Callable[[BaseGeometry], BaseGeometry]:
    """Lon/lat degrees -> metres on a plane tangent at latitude ``lat0`` (equirectangular)."""
    ky = EARTH_RADIUS_M * math.pi / 180
    kx = ky * math.cos(math.radians(lat0))
    return lambda geom: shapely.transform(geom, lambda xy: xy * [kx, ky])


def lookups_per_s(index: DistrictIndex, points: list[LatLon], reps: int) -> dict[str, Any]:
    runs = []
    for _ in range(reps):
        with T.Timer() as t:
            for p in points:
                index.at(p)
        runs.append(t.seconds)
    return T.rate_summary(len(points), runs)


@dataclass
class Tally:
    """One dataset resolved against one layer; every row is counted exactly once."""

    dataset: str
    layer: str
    compared_with: str
    rows: int = 0
    unlocated: int = 0          # no usable coordinates
    resolved: int = 0           # in >= 1 district
    border: int = 0             # of those, in >= 2 districts
    outside: int = 0            # located, but in no district
    agree: int | None = None    # None: nothing to compare with
    disagreements: list[dict] = field(default_factory=list)
    outside_rows: list[dict] = field(default_factory=list)
    timing: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)

    def count(self, found: list[str] | None) -> None:
        self.rows += 1
        if found is None:
            self.unlocated += 1
        elif not found:
            self.outside += 1
        else:
            self.resolved += 1
            self.border += len(found) > 1

    @property
    def agree_pct(self) -> float | None:
        return None if self.agree is None or not self.rows else 100.0 * self.agree / self.rows

    def check(self) -> None:
        """No row lost: every row is resolved, outside or unlocated."""
        total = self.resolved + self.outside + self.unlocated
        assert total == self.rows, f"{self.dataset}/{self.layer}: {total} accounted for, {self.rows} rows"
        if self.agree is not None:
            assert self.agree + len(self.disagreements) + self.outside + self.unlocated == self.rows, self

    def to_json(self) -> dict[str, Any]:
        return {"dataset": self.dataset, "layer": self.layer, "compared_with": self.compared_with,
                "rows": self.rows, "unlocated": self.unlocated, "resolved": self.resolved,
                "border": self.border, "outside": self.outside, "agree": self.agree,
                "agree_pct": self.agree_pct,
                "agree_pct_of_resolved": None if self.agree is None or not self.resolved
                else 100.0 * self.agree / self.resolved,
                "disagree": len(self.disagreements), "lookups": self.timing, "notes": self.notes,
                "disagreements": self.disagreements, "outside_rows": self.outside_rows}


def distance_to(geom_m: BaseGeometry, to_m: Callable, p: LatLon) -> float:
    return geom_m.distance(to_m(Point(p.lon, p.lat)))


# -- Seattle -------------------------------------------------------------------------------------
def beat_precincts(beats: list[District], precincts: list[District]) -> tuple[dict[str, str], dict[str, Any]]:
    """Beat id -> the precinct holding the largest share of its area, and how clear-cut that is."""
    mapping, shares = {}, {}
    for beat in beats:
        share = {p.district_id: beat.geometry.intersection(p.geometry).area / beat.geometry.area
                 for p in precincts}
        best = max(share, key=share.get)
        mapping[beat.district_id] = best
        shares[beat.district_id] = share[best]
    by_letter: dict[str, set[str]] = defaultdict(set)
    for beat_id, precinct in mapping.items():
        by_letter[beat_id[0]].add(precinct)
    sectors = {p: "".join(sorted(k for k, v in by_letter.items() if v == {p})) for p in sorted(set(mapping.values()))}
    facts = {"max_share_outside_own_precinct": 1 - min(shares.values()),
             "beat_with_max_share_outside": min(shares, key=shares.get),
             "sector_letters_each_in_one_precinct": all(len(v) == 1 for v in by_letter.values()),
             "sector_letters_by_precinct": sectors}
    return mapping, facts


def seattle(data: Path, reps: int) -> tuple[list[Tally], dict[str, Any]]:
    beats = read_districts(load_json(data / "spd_beats.geojson"), "spd", "name")
    precincts = read_districts(load_json(data / "spd_precincts.geojson"), "spd-precinct", "name")
    # city_limits.geojson has no properties; give its 29 polygons one id so they become one district
    limits_doc = load_json(data / "city_limits.geojson")
    limits_doc = {**limits_doc, "features": [{**f, "properties": {"juris": "Seattle"}} for f in limits_doc["features"]]}
    (limits,) = read_districts(limits_doc, "city", "juris")
    beat_index, precinct_index, limits_index = DistrictIndex(beats), DistrictIndex(precincts), DistrictIndex([limits])
    beat_precinct, mapping_facts = beat_precincts(beats, precincts)
    to_m = metres(47.62)
    precinct_m = {p.district_id: to_m(p.geometry) for p in precincts}
    limits_m = to_m(limits.geometry)

    facts: dict[str, Any] = {"beats": len(beats), "precincts": len(precincts), "beat_to_precinct": mapping_facts}
    for p in precincts:
        union = shapely.union_all([b.geometry for b in beats if beat_precinct[b.district_id] == p.district_id])
        facts.setdefault("precinct_vs_union_of_its_beats_hausdorff_m", {})[p.district_id] = \
            shapely.hausdorff_distance(to_m(union), precinct_m[p.district_id])
    beats_union = to_m(shapely.union_all([b.geometry for b in beats]))
    facts["beats_area_outside_city_limits_km2"] = beats_union.difference(limits_m).area / 1e6

    tallies = []
    for month in SEATTLE_MONTHS:
        rows = read_csv(data / f"fire_911_calls_{month}.csv")
        name = f"Seattle fire 911 {month}"
        by_beat = Tally(name, "SPD beats", "precinct of beat vs spd_precincts")
        by_precinct = Tally(name, "SPD precincts", "-")
        in_city = Tally(name, "city limits", "-")
        by_beat.agree = 0
        points, hoods = [], defaultdict(Counter)
        for r in rows:
            p = point_of(r["Latitude"], r["Longitude"])
            if p is None:
                for t in (by_beat, by_precinct, in_city):
                    t.count(None)
                continue
            points.append(p)
            found_beats = [d.district_id for d in beat_index.at(p)]
            found_precincts = [d.district_id for d in precinct_index.at(p)]
            by_beat.count(found_beats)
            by_precinct.count(found_precincts)
            found_city = [d.district_id for d in limits_index.at(p)]
            in_city.count(found_city)
            if not found_city:
                in_city.outside_rows.append({"incident": r["Incident Number"], "address": r["Address"],
                                             "type": r["Type"], "beats": found_beats, "lat": p.lat, "lon": p.lon,
                                             "distance_m": limits_m.distance(to_m(Point(p.lon, p.lat)))})
            for beat_id in found_beats:
                hoods[r["S_HOOD"]][beat_precinct[beat_id]] += 1
            if not found_beats:
                by_beat.outside_rows.append({"incident": r["Incident Number"], "address": r["Address"],
                                             "lat": p.lat, "lon": p.lon})
                continue
            expected = sorted({beat_precinct[b] for b in found_beats})
            if expected == sorted(found_precincts):
                by_beat.agree += 1
            else:
                by_beat.disagreements.append({
                    "incident": r["Incident Number"], "address": r["Address"], "beats": found_beats,
                    "label": "/".join(expected), "found": found_precincts, "lat": p.lat, "lon": p.lon,
                    "distance_m": min(distance_to(precinct_m[e], to_m, p) for e in expected)})
        by_beat.timing = lookups_per_s(beat_index, points, reps)
        by_precinct.timing = lookups_per_s(precinct_index, points, reps)
        in_city.timing = lookups_per_s(limits_index, points, reps)
        one_precinct = sum(len(c) == 1 for c in hoods.values())
        by_beat.notes.append(
            f"calls carry no beat or precinct label; S_HOOD has {len(hoods)} names, L_HOOD "
            f"{len({r['L_HOOD'] for r in rows})} ('NO BROADER TERM' on {sum(r['L_HOOD'] == 'NO BROADER TERM' for r in rows)}"
            f" rows); no neighbourhood polygons or neighbourhood->beat mapping exist in the data, so they are "
            f"not compared. Descriptive only: {one_precinct} of {len(hoods)} S_HOOD names have all their calls "
            f"in one precinct.")
        tallies += [by_beat, by_precinct, in_city]
    return tallies, facts


# -- San Francisco -------------------------------------------------------------------------------
def sf_incidents(data: Path, reps: int) -> tuple[Tally, dict[str, Any]]:
    districts = read_districts(load_json(data / "sfpd_districts_historical.geojson"), "sfpd", "district")
    index = DistrictIndex(districts)
    to_m = metres(37.76)
    district_m = {d.district_id: to_m(d.geometry) for d in districts}
    union = shapely.union_all([d.geometry for d in districts])
    gaps = [shapely.Polygon(ring) for part in shapely.get_parts(union) for ring in part.interiors]
    facts = {"districts": len(districts),
             "overlap_between_districts_m2": sum(g.area for g in district_m.values()) - to_m(union).area,
             "gaps_inside_the_union": len(gaps),
             "largest_gap_m2": max((to_m(g).area for g in gaps), default=0.0)}

    tally = Tally("SF police incidents 2013-12", "SFPD districts (historical)", "PdDistrict")
    tally.agree = 0
    points = []
    for r in read_csv(data / "sfpd_incidents_2013_12.csv"):
        p = point_of(r["lat"], r["lng"])
        found = None if p is None else [d.district_id for d in index.at(p)]
        tally.count(found)
        if p is None:
            continue
        points.append(p)
        label = r["PdDistrict"]
        row = {"incident": r["IncidntNum"], "category": r["Category"], "address": r["Address"], "label": label,
               "found": found, "lat": p.lat, "lon": p.lon,
               "distance_m": distance_to(district_m[label], to_m, p) if label in district_m else None}
        if not found:
            pt = to_m(Point(p.lon, p.lat))
            nearest = min(district_m, key=lambda k: district_m[k].distance(pt))
            row |= {"nearest": nearest, "nearest_m": district_m[nearest].distance(pt),
                    "in_gap_between_districts": any(g.covers(Point(p.lon, p.lat)) for g in gaps)}
            tally.outside_rows.append(row)
        elif label in found:
            tally.agree += 1
        else:
            tally.disagreements.append(row)
    tally.timing = lookups_per_s(index, points, reps)
    return tally, facts


def sf_cad(data: Path) -> Tally:
    calls = load_json(data / "sfpd_cad_calls_2018-12-31_evening.json")
    keys = sorted({k for c in calls for k in c})
    geo_keys = [k for k in keys if any(w in k.lower() for w in ("lat", "lon", "lng", "geom", "point", "district",
                                                                 "beat", "sector"))]
    tally = Tally("SF police CAD 2018-12-31", "SFPD districts (historical)", "none in the data")
    for _ in calls:
        tally.count(None)
    tally.notes.append(f"fields: {', '.join(keys)}; none holds coordinates or a district "
                       f"(candidates by name: {geo_keys or 'none'}); resolving needs a geocoder for 'address'.")
    return tally


# -- output --------------------------------------------------------------------------------------
def dash(value: Any) -> Any:
    return "-" if value is None else value


def print_disagreements(tally: Tally, examples: int) -> None:
    rows = tally.disagreements
    if tally.agree is None or (not rows and not tally.outside_rows):
        return
    print(f"\n{tally.dataset} -> {tally.layer}: {len(rows)} disagree with {tally.compared_with}, "
          f"{tally.outside} outside every district")
    if rows:
        dist = sorted(r["distance_m"] for r in rows)
        edges = [0, *DISTANCE_BUCKETS_M, math.inf]
        hist = [(f"{lo:g}-{hi:g} m" if hi != math.inf else f"> {lo:g} m",
                 sum(lo < d <= hi or (lo == 0 and d == 0) for d in dist)) for lo, hi in itertools.pairwise(edges)]
        print("  distance from the point to its labelled district: median "
              f"{statistics.median(dist):.1f} m; " + ", ".join(f"{k}: {n}" for k, n in hist))
        pairs = Counter((r["label"], "/".join(r["found"])) for r in rows).most_common(6)
        print("  commonest label -> found: " + ", ".join(f"{a} -> {b} ({n})" for (a, b), n in pairs))
        by_address = Counter(r["address"] for r in rows).most_common(examples // 2)
        shown = [next(r for r in rows if r["address"] == a) | {"n": n} for a, n in by_address]
        shown += [r | {"n": 1} for r in sorted(rows, key=lambda r: -r["distance_m"])[:examples - len(shown)]]
        print(T.table(["address", "rows", "label", "found", "to label m", "lat", "lon"],
                      [(r["address"], r["n"], r["label"], "/".join(r["found"]), r["distance_m"],
                        f"{r['lat']:.6f}", f"{r['lon']:.6f}") for r in shown],
                      title="  examples: the commonest addresses, then the farthest from their label"))
    if tally.outside_rows:
        print(T.table(["address", "label", "to label m", "nearest", "nearest m", "in a gap between districts", "lat", "lon"],
                      [(r["address"], r["label"], dash(r["distance_m"]), r["nearest"], r["nearest_m"],
                        "yes" if r["in_gap_between_districts"] else "no", f"{r['lat']:.6f}", f"{r['lon']:.6f}")
                       for r in tally.outside_rows], title="  outside every district"))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--reps", type=int, default=5, help="timed runs of the lookups per dataset and layer")
    p.add_argument("--data", type=Path, default=None, help="the shared data folder (default ../shared/data)")
    p.add_argument("--examples", type=int, default=8, help="disagreements shown per dataset")
    args = p.parse_args()
    data = args.data or shared_data()
    if data is None or not data.is_dir():
        sys.exit("the shared data folder ../shared/data is absent; pass --data PATH")

    T.log(f"reading {data}")
    tallies, seattle_facts = seattle(data / "seattle", args.reps)
    sf_tally, sf_facts = sf_incidents(data / "sf", args.reps)
    tallies += [sf_tally, sf_cad(data / "sf")]
    for t in tallies:
        t.check()

    print(T.table(
        ["dataset", "layer", "rows", "resolved", "border (2+)", "outside all", "no coords", "compared with",
         "agree", "agree %", "lookups/s"],
        [(t.dataset, t.layer, t.rows, t.resolved, t.border, t.outside, t.unlocated, t.compared_with,
          dash(t.agree), dash(t.agree_pct), dash(t.timing and t.timing["median_per_s"])) for t in tallies],
        title="Calls resolved to districts (DistrictIndex.at, borders included; agree % of all rows)"))
    for t in tallies:
        for note in t.notes:
            print(f"\n{t.dataset}: {note}")

    m = seattle_facts["beat_to_precinct"]
    print(f"\nSeattle: every beat lies in one precinct (largest share of a beat's area outside it: "
          f"{m['max_share_outside_own_precinct']:.1e}, beat {m['beat_with_max_share_outside']}); "
          f"sector letters by precinct {m['sector_letters_by_precinct']}; "
          f"each letter in one precinct: {m['sector_letters_each_in_one_precinct']}.")
    worst = max(seattle_facts["precinct_vs_union_of_its_beats_hausdorff_m"].values())
    print(f"Seattle: each precinct polygon equals the union of its beats to {worst:.1e} m (Hausdorff), "
          f"but not vertex for vertex. Beats cover {seattle_facts['beats_area_outside_city_limits_km2']:.1f} km² "
          f"outside the city-limits polygon, where no call falls but the two below (millimetres out).")
    for t in tallies:
        if t.layer == "city limits":
            for r in t.outside_rows:
                print(f"Seattle {t.dataset[-7:]}: {r['incident']} {r['address']!r} ({r['type']}) is outside the "
                      f"city limits by {r['distance_m'] * 1000:.1f} mm, in beat {'/'.join(r['beats'])}")
    print(f"SF: the 10 districts overlap by {sf_facts['overlap_between_districts_m2']:,.0f} m² in all and leave "
          f"{sf_facts['gaps_inside_the_union']} gaps inside their union (largest {sf_facts['largest_gap_m2']:,.0f} m²).")
    for t in tallies:
        print_disagreements(t, args.examples)

    path = T.write_json("districts_agreement", {
        "machine": T.machine(), "args": {"reps": args.reps, "data": str(data)},
        "seattle": seattle_facts, "sf": sf_facts, "results": [t.to_json() for t in tallies]})
    T.log(f"wrote {path}")


if __name__ == "__main__":
    main()
