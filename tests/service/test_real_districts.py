"""Real calls resolved to real police districts: every row accounted for, agreement with the labels.

Figures and the reasons behind the thresholds come from ``bench/districts_agreement.py`` (run on
../shared/data, see its PROVENANCE.md). tests/service/test_import.py already checks the SF 2013
labels through the city importer; here the districts are read with ``geo.geojson.read_districts``
alone, and the whole accounting (agree + disagree + outside == rows) is checked, not only a count.
"""
import csv
import json
from collections import defaultdict
from pathlib import Path

import pytest

from geo import District, DistrictIndex, LatLon
from geo.geojson import read_districts
from tests.realcity import require_shared_data

pytestmark = pytest.mark.realdata

# Rows per file, from PROVENANCE.md.
SEATTLE_ROWS = {"2017-03": 8310, "2017-11": 8364}
SF_2013_ROWS = 9030

# SF 2013: PROVENANCE counts 8,800 of 9,030 incidents whose PdDistrict names the polygon they fall in
# and prints that as 97.5 %; it is 97.45 %. Read literally, "97.5 %" would need 8,805 and the data
# itself does not reach it. With borders included DistrictIndex finds 8,801 (97.46 %): one of three
# incidents on the PARK/RICHMOND border (Geary Bl / Masonic Av) is labelled RICHMOND and counts as
# agreeing. Two incidents labelled BAYVIEW lie 2 micrometres from BAYVIEW, inside INGLESIDE, where the
# two polygons' shared edge does not quite coincide; a change in GEOS could flip such points, so the
# floor is PROVENANCE's 8,800, i.e. the data's own level, not our 8,801.
SF_2013_MIN_AGREE = 8800
SF_2013_OUTSIDE = 2      # 200 Block of DRAKE ST (INGLESIDE), 3500 Block of PACIFIC AV (RICHMOND)

# Seattle: the calls carry no police label (S_HOOD/L_HOOD are neighbourhood names and the data has no
# neighbourhood polygons or neighbourhood->beat table), so what is compared is the two SPD layers:
# the precinct of the beat a call falls in (the precinct holding that beat's area) against the
# precinct polygon the call falls in. Measured: 8,310/8,310 and 8,364/8,364 (100 %), no call on a
# border, none outside. The precinct polygons equal the union of their beats to ~1e-8 m but not
# vertex for vertex (the B1/B2/Q1/Q2 corner below is in precinct N only), so a call exactly on a
# precinct line could disagree; 99.9 % leaves room for about 8 such calls a month and no more.
SEATTLE_MIN_PRECINCT_AGREEMENT = 0.999

# Real vertices that several beats of spd_beats.geojson list, as (lon, lat): they must be in all.
SHARED_VERTICES = [
    ((-122.3307558786527, 47.60205564827206), {"K2", "K3"}),                 # Pioneer Square, West
    ((-122.3762239122035, 47.65935496084666), {"B1", "B2", "Q1", "Q2"}),     # North/West precinct corner
]


@pytest.fixture(scope="module")
def shared() -> Path:
    return require_shared_data()


def load(path: Path):
    return json.loads(path.read_text(encoding="utf-8"))


def rows_of(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8-sig", newline="") as f:
        return list(csv.DictReader(f))


def located(lat: str, lon: str) -> LatLon | None:
    try:
        return LatLon(float(lat), float(lon))
    except ValueError:
        return None


def resolve(index: DistrictIndex, points: list[LatLon | None]) -> list[list[str] | None]:
    """District ids found for each point, in order; None for a row without coordinates."""
    return [None if p is None else [d.district_id for d in index.at(p)] for p in points]


def accounting(found: list[list[str] | None]) -> dict[str, int]:
    return {"rows": len(found), "unlocated": sum(f is None for f in found),
            "resolved": sum(bool(f) for f in found), "outside": sum(f == [] for f in found),
            "border": sum(f is not None and len(f) > 1 for f in found)}


# -- Seattle --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def beats_doc(shared) -> dict:
    return load(shared / "seattle" / "spd_beats.geojson")


@pytest.fixture(scope="module")
def beats(beats_doc) -> DistrictIndex:
    return DistrictIndex(read_districts(beats_doc, "spd", "name"))


@pytest.fixture(scope="module")
def precincts(shared) -> DistrictIndex:
    return DistrictIndex(read_districts(load(shared / "seattle" / "spd_precincts.geojson"), "spd-precinct", "name"))


@pytest.fixture(scope="module")
def beat_precinct(beats, precincts) -> dict[str, str]:
    """Beat id -> the precinct polygon holding (nearly) all of its area; spd_beats carries only a name."""
    mapping = {}
    for beat in beats:
        share = {p.district_id: beat.geometry.intersection(p.geometry).area / beat.geometry.area
                 for p in precincts}
        best = max(share, key=share.get)
        assert share[best] > 0.9999, (beat.district_id, share)
        mapping[beat.district_id] = best
    return mapping


@pytest.fixture(scope="module", params=sorted(SEATTLE_ROWS))
def seattle_month(request, shared, beats, precincts):
    """(month, rows, beats found, precincts found) for one month of fire 911 calls."""
    month = request.param
    rows = rows_of(shared / "seattle" / f"fire_911_calls_{month}.csv")
    points = [located(r["Latitude"], r["Longitude"]) for r in rows]
    return month, rows, resolve(beats, points), resolve(precincts, points)


class TestSeattle:
    def test_every_beat_lies_in_one_precinct_and_each_sector_letter_in_one(self, beat_precinct):
        by_letter = defaultdict(set)
        for beat_id, precinct in beat_precinct.items():
            by_letter[beat_id[0]].add(precinct)
        assert len(beat_precinct) == 51 and sorted(set(beat_precinct.values())) == ["E", "N", "S", "SW", "W"]
        assert {letter: p.pop() for letter, p in by_letter.items() if len(p) == 1} == {
            "B": "N", "J": "N", "L": "N", "N": "N", "U": "N", "C": "E", "E": "E", "G": "E",
            "D": "W", "K": "W", "M": "W", "Q": "W", "O": "S", "R": "S", "S": "S", "F": "SW", "W": "SW"}

    def test_no_call_is_dropped(self, seattle_month):
        month, rows, found_beats, found_precincts = seattle_month
        assert len(rows) == SEATTLE_ROWS[month]
        for found in (found_beats, found_precincts):
            counts = accounting(found)
            assert counts["resolved"] + counts["outside"] + counts["unlocated"] == counts["rows"] == len(rows)
            # measured: every call has coordinates and lies in exactly one beat and one precinct
            assert counts == {"rows": len(rows), "unlocated": 0, "resolved": len(rows), "outside": 0, "border": 0}

    def test_the_beat_found_agrees_with_the_precinct_found(self, seattle_month, beat_precinct):
        month, rows, found_beats, found_precincts = seattle_month
        agree = sum(bool(b) and {beat_precinct[x] for x in b} == set(p)
                    for b, p in zip(found_beats, found_precincts))
        assert agree / len(rows) >= SEATTLE_MIN_PRECINCT_AGREEMENT, f"{month}: {agree} of {len(rows)}"

    @pytest.mark.parametrize("vertex, names", SHARED_VERTICES, ids=["K2-K3", "B1-B2-Q1-Q2"])
    def test_a_real_shared_vertex_is_in_every_beat_that_lists_it(self, beats_doc, beats, vertex, names):
        listing = {f["properties"]["name"] for f in beats_doc["features"]
                   if any(list(vertex) == position for polygon in f["geometry"]["coordinates"]
                          for ring in polygon for position in ring)}
        assert listing == names
        lon, lat = vertex
        assert {d.district_id for d in beats.at(LatLon(lat, lon))} == names

    def test_every_shared_vertex_of_the_beat_map_is_in_all_its_beats(self, beats_doc, beats):
        listing = defaultdict(set)
        for f in beats_doc["features"]:
            for polygon in f["geometry"]["coordinates"]:
                for ring in polygon:
                    for lon, lat in ring:
                        listing[(lon, lat)].add(f["properties"]["name"])
        shared = {v: names for v, names in listing.items() if len(names) > 1}
        found = {v: {d.district_id for d in beats.at(LatLon(v[1], v[0]))} for v in shared}
        wrong = {v: (names, found[v]) for v, names in shared.items() if found[v] != names}
        assert len(shared) > 5000 and not wrong


# -- San Francisco --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def sfpd(shared) -> list[District]:
    return read_districts(load(shared / "sf" / "sfpd_districts_historical.geojson"), "sfpd", "district")


class TestSanFrancisco:
    def test_2013_incidents_agree_with_their_district_and_none_is_dropped(self, shared, sfpd):
        rows = rows_of(shared / "sf" / "sfpd_incidents_2013_12.csv")
        found = resolve(DistrictIndex(sfpd), [located(r["lat"], r["lng"]) for r in rows])
        counts = accounting(found)
        agree = sum(bool(f) and r["PdDistrict"] in f for r, f in zip(rows, found))
        disagree = sum(bool(f) and r["PdDistrict"] not in f for r, f in zip(rows, found))
        assert counts["rows"] == SF_2013_ROWS and counts["unlocated"] == 0
        assert agree + disagree + counts["outside"] == counts["rows"]
        assert counts["outside"] == SF_2013_OUTSIDE and counts["border"] == 3
        assert agree >= SF_2013_MIN_AGREE, f"{agree} of {len(rows)} ({agree / len(rows):.2%})"

    def test_the_2018_cad_calls_carry_nothing_to_resolve(self, shared):
        # Documented gap: no coordinates and no district label, only an address; if that changes,
        # resolve these calls in bench/districts_agreement.py and test their agreement here.
        calls = load(shared / "sf" / "sfpd_cad_calls_2018-12-31_evening.json")
        keys = {k.lower() for call in calls for k in call}
        assert len(calls) == 686 and "address" in keys
        assert not {k for k in keys if any(w in k for w in ("lat", "lon", "lng", "geom", "district", "beat"))}



def check_outlines(districts, tolerance_m: float) -> None:
    """Every simplified outline is a valid polygon, and the area it gains or loses is less than half a
    band of the tolerance's width along the real border (measured: at most 0.23 of it, Seattle and SF,
    5 and 20 m). Hausdorff distance is not the measure: the topology-preserving simplifier strays up to
    1.5 times the tolerance at a few vertices, and SF's NORTHERN has a zero-area spike 107 m long that
    snapping to the 1e-6° grid removes."""
    from shapely.geometry import shape

    from geo.geojson import district_outlines

    tolerance = tolerance_m / 111_320  # degrees of latitude; the band is loose east-west
    full = district_outlines(districts)
    simple = district_outlines(districts, tolerance)
    assert len(json.dumps(simple)) < len(json.dumps(full)) / 3
    for district, feature in zip(districts, simple["features"], strict=True):
        drawn = shape(feature["geometry"])
        assert drawn.is_valid and not drawn.is_empty, district.district_id
        moved = drawn.symmetric_difference(district.geometry).area
        assert moved <= 0.5 * district.geometry.length * tolerance, district.district_id


@pytest.mark.parametrize("tolerance_m", [5, 20])
def test_the_consoles_simplified_seattle_beats_stay_valid_and_close(beats, tolerance_m):
    """The console draws /v1/districts?simplify_m=5 (measured: Seattle's 51 beats are 338 KB in full,
    54 KB at 5 m, 39 KB at 20 m)."""
    check_outlines(list(beats), tolerance_m)


@pytest.mark.parametrize("tolerance_m", [5, 20])
def test_the_consoles_simplified_sf_districts_stay_valid_and_close(sfpd, tolerance_m):
    check_outlines(sfpd, tolerance_m)
