"""FleetIndex: units by tag, nearest first in great-circle metres, exactly, with O(1) updates."""

import inspect
import math
import random
from itertools import islice

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from geo import FleetIndex, LatLon, haversine_m
from geo.coords import EARTH_RADIUS_M

M_PER_DEG = EARTH_RADIUS_M * math.pi / 180  # metres per degree of latitude
TAGS = ("engine", "als")


def offset(centre: LatLon, east_m: float, north_m: float) -> LatLon:
    """A point about ``east_m`` east and ``north_m`` north of ``centre`` (longitude wrapped)."""
    lat = min(90.0, max(-90.0, centre.lat + north_m / M_PER_DEG))
    lon = centre.lon + east_m / (M_PER_DEG * max(math.cos(math.radians(lat)), 1e-3))
    return LatLon(lat, (lon + 180.0) % 360.0 - 180.0)


def east_of(point: LatLon, metres: float) -> LatLon:
    """The point on the same parallel exactly ``metres`` of great-circle distance east."""
    dlon = 2 * math.asin(math.sin(metres / (2 * EARTH_RADIUS_M)) / math.cos(math.radians(point.lat)))
    return LatLon(point.lat, point.lon + math.degrees(dlon))


def brute(units: dict, tag: str, point: LatLon) -> list[tuple[float, str]]:
    """The answer by definition: every unit with the tag, sorted by (haversine metres, id)."""
    return sorted((haversine_m(point, where), uid) for uid, (where, tags) in units.items() if tag in tags)


def fleet(*units: tuple[str, LatLon, tuple[str, ...]], **kwargs) -> FleetIndex:
    index = FleetIndex(**kwargs)
    for unit_id, where, tags in units:
        index.put(unit_id, where, tags)
    return index


def ids(found: list[tuple[float, str]]) -> list[str]:
    return [unit_id for _, unit_id in found]


CENTRE = LatLon(52.52, 13.40)


# -- agreement with brute force -------------------------------------------------------------------

CITIES = {
    "mid-latitude": LatLon(52.52, 13.40),
    "60 north": LatLon(60.0, 10.0),
    "across the antimeridian": LatLon(-17.8, 180.0),
    "near the north pole": LatLon(89.5, 0.0),
}
# Quantised offsets make exact duplicates and mirror images (ties); floats and far points don't.
metres = st.one_of(
    st.integers(-60, 60).map(lambda i: i * 250.0),
    st.floats(-15_000, 15_000),
    st.floats(-400_000, 400_000),
)
unit_ids = st.sampled_from([f"u{i:02d}" for i in range(25)])
tag_sets = st.frozensets(st.sampled_from(TAGS))
operations = st.lists(
    st.one_of(
        st.tuples(st.just("put"), unit_ids, metres, metres, tag_sets),
        st.tuples(st.just("move"), unit_ids, metres, metres),
        st.tuples(st.just("retag"), unit_ids, tag_sets),
        st.tuples(st.just("remove"), unit_ids),
    ),
    max_size=60,
)


@settings(max_examples=200, deadline=None)
@given(
    city=st.sampled_from(sorted(CITIES)),
    cell_m=st.floats(20, 20_000),
    origin=st.sampled_from(["centre", "first unit put", "far away"]),
    ops=operations,
    queries=st.lists(st.tuples(metres, metres), min_size=1, max_size=4),
    k=st.integers(0, 6),
)
def test_nearest_agrees_with_sorting_every_unit_by_haversine_metres(city, cell_m, origin, ops, queries, k):
    centre = CITIES[city]
    start = {"centre": centre, "first unit put": None, "far away": LatLon(0.0, 0.0)}[origin]
    index = FleetIndex(cell_m, start)
    units: dict[str, tuple[LatLon, frozenset[str]]] = {}
    for op, unit_id, *args in ops:
        if op == "put":
            where = offset(centre, args[0], args[1])
            index.put(unit_id, where, args[2])
            units[unit_id] = (where, args[2])
        elif op == "move" and unit_id in units:
            where = offset(centre, args[0], args[1])
            index.move(unit_id, where)
            units[unit_id] = (where, units[unit_id][1])
        elif op == "retag" and unit_id in units:
            index.retag(unit_id, args[0])
            units[unit_id] = (units[unit_id][0], args[0])
        elif op == "remove":
            index.remove(unit_id)
            units.pop(unit_id, None)
    for east, north in queries:
        point = offset(centre, east, north)
        for tag in TAGS:
            expected = brute(units, tag, point)
            assert list(index.iter_nearest(tag, point)) == expected
            assert index.nearest(tag, point, k) == expected[:k]
            assert index.count(tag) == len(expected)
    assert len(index) == len(units)


@pytest.mark.parametrize("cell_m", [150.0, 500.0, 2000.0])
@pytest.mark.parametrize("city", sorted(CITIES))
def test_nearest_agrees_with_brute_force_in_a_dense_city_wherever_the_incident_is(city, cell_m):
    """Thousands of units, so the ring search (not its brute-force fallback) decides the answer."""
    rng = random.Random(f"{city}/{cell_m}")
    centre = CITIES[city]
    index = FleetIndex(cell_m, centre)
    units = {}
    for i in range(3000):
        where = offset(centre, rng.uniform(-15_000, 15_000), rng.uniform(-15_000, 15_000))
        tags = frozenset(tag for tag in TAGS if rng.random() < 0.6)
        index.put(f"u{i:04d}", where, tags)
        units[f"u{i:04d}"] = (where, tags)
    for i in range(300):  # a third of them move, some across the city
        unit_id = f"u{rng.randrange(3000):04d}"
        where = offset(centre, rng.uniform(-15_000, 15_000), rng.uniform(-15_000, 15_000))
        index.move(unit_id, where)
        units[unit_id] = (where, units[unit_id][1])
    for _ in range(40):
        point = offset(centre, rng.uniform(-18_000, 18_000), rng.uniform(-18_000, 18_000))
        for tag in TAGS:
            assert list(islice(index.iter_nearest(tag, point), 40)) == brute(units, tag, point)[:40]


# -- metres, not degrees ----------------------------------------------------------------------------

def test_at_60_north_a_unit_50_km_east_beats_one_66_7_km_north_though_it_is_more_degrees_away():
    incident = LatLon(60.0, 10.0)
    east = east_of(incident, 50_000.0)
    north = LatLon(60.0 + 66_700.0 / M_PER_DEG, 10.0)
    def degrees(p: LatLon) -> float:
        return math.hypot(p.lat - incident.lat, p.lon - incident.lon)

    assert degrees(north) < degrees(east)  # the trap: nearest in degrees would send "north"

    index = fleet(("north", north, ("engine",)), ("east", east, ("engine",)), origin=incident)

    found = index.nearest("engine", incident, 2)
    assert ids(found) == ["east", "north"]
    assert found[0][0] == pytest.approx(50_000.0, abs=0.01)
    assert found[1][0] == pytest.approx(66_700.0, abs=0.01)


def test_the_metres_reported_are_haversine_m_to_the_last_bit():
    point = offset(CENTRE, 1234.5, -987.6)
    where = offset(CENTRE, -4321.0, 765.4)
    index = fleet(("e1", where, ("engine",)))
    assert index.nearest("engine", point, 1) == [(haversine_m(point, where), "e1")]


@pytest.mark.parametrize("origin", [LatLon(-17.8, 179.9), LatLon(0.0, 0.0), None])
def test_a_city_across_the_antimeridian_is_searched_as_one_place(origin):
    incident = LatLon(-17.8, 179.999)
    index = fleet(
        ("west-of-line", LatLon(-17.8, 179.99), ("engine",)),  # about 950 m
        ("east-of-line", LatLon(-17.8, -179.995), ("engine",)),  # about 640 m, across the line
        ("far", LatLon(-17.8, 179.5), ("engine",)),
        origin=origin,
    )
    found = index.nearest("engine", incident, 3)
    assert ids(found) == ["east-of-line", "west-of-line", "far"]
    assert found[0][0] == pytest.approx(635, abs=5)


def test_near_the_pole_the_nearest_unit_may_be_on_the_far_side_of_it():
    incident = LatLon(89.99, 0.0)
    index = fleet(
        ("same-meridian", LatLon(89.95, 0.0), ("engine",)),  # 4.4 km
        ("over-the-pole", LatLon(89.99, 180.0), ("engine",)),  # 2.2 km
        ("quarter-round", LatLon(89.99, 90.0), ("engine",)),  # 1.6 km
        origin=LatLon(89.5, 0.0),
        cell_m=200.0,
    )
    assert ids(index.nearest("engine", incident, 3)) == ["quarter-round", "over-the-pole", "same-meridian"]


def test_a_unit_at_the_pole_is_not_skipped_by_a_search_that_starts_beside_it():
    # Longitude says nothing about distance at the pole. Six hundred units further south make
    # the search go ring by ring, and it must not settle on "south" before reading "pole".
    incident = LatLon(89.99, 0.0)
    index = fleet(("pole", LatLon(90.0, 90.0), ("engine",)), ("south", LatLon(89.9797, 0.0), ("engine",)),
                  origin=incident, cell_m=200.0)
    for i in range(600):
        index.put(f"f{i:03d}", LatLon(89.7 + 0.1 * (i % 30) / 30, -180 + 18 * (i // 30)), ["engine"])
    found = index.nearest("engine", incident, 2)
    assert ids(found) == ["pole", "south"]
    assert found[0][0] == pytest.approx(1112, abs=1) and found[1][0] == pytest.approx(1145, abs=1)


# -- ties -------------------------------------------------------------------------------------------

def test_units_at_the_same_distance_come_out_by_unit_id():
    spot = offset(CENTRE, 800.0, 300.0)
    index = fleet(*((uid, spot, ("engine",)) for uid in ["d", "b", "c", "a"]), ("z-near", CENTRE, ("engine",)))
    found = index.nearest("engine", CENTRE, 5)
    assert ids(found) == ["z-near", "a", "b", "c", "d"]
    assert len({metres for metres, _ in found[1:]}) == 1


def test_mirror_images_tie_exactly_and_come_out_by_unit_id():
    incident = LatLon(0.0, 30.0)
    index = fleet(("south", LatLon(-0.01, 30.0), ("als",)), ("north", LatLon(0.01, 30.0), ("als",)))
    (d1, first), (d2, second) = index.nearest("als", incident, 2)
    assert (first, second) == ("north", "south") and d1 == d2


def test_a_tie_split_across_the_edge_of_the_searched_cells_still_comes_out_by_unit_id():
    # With 1 km cells about (0, 0), "a" lies 0.33 m east of the edge of the incident's cell and
    # is read one ring after its mirror image "b", which must wait for it. Dyadic longitudes
    # make the two distances exactly equal.
    incident = LatLon(0.0, 7562449 / 2**30)
    a, b = LatLon(0.0, 9659601 / 2**30), LatLon(0.0, 5465297 / 2**30)
    assert haversine_m(incident, a) == haversine_m(incident, b)
    index = fleet(("b", b, ("engine",)), ("a", a, ("engine",)), origin=LatLon(0.0, 0.0), cell_m=1000.0)
    assert ids(index.nearest("engine", incident, 2)) == ["a", "b"]


# -- updates take effect at once ------------------------------------------------------------------

def test_a_move_changes_the_answer_immediately():
    index = fleet(("e1", offset(CENTRE, 1000, 0), ("engine",)), ("e2", offset(CENTRE, 2000, 0), ("engine",)))
    assert ids(index.nearest("engine", CENTRE, 1)) == ["e1"]
    index.move("e1", offset(CENTRE, 0, -30_000))  # many cells away
    assert ids(index.nearest("engine", CENTRE, 2)) == ["e2", "e1"]
    index.move("e2", offset(CENTRE, 0, -31_000))
    assert ids(index.nearest("engine", CENTRE, 2)) == ["e1", "e2"]
    assert index.location("e2") == offset(CENTRE, 0, -31_000)


def test_a_unit_that_loses_a_tag_is_no_longer_found_under_it_and_is_again_once_it_gets_it_back():
    index = fleet(("m1", offset(CENTRE, 500, 0), ("als", "engine")), ("m2", offset(CENTRE, 900, 0), ("als",)))
    index.retag("m1", ["engine"])
    assert ids(index.nearest("als", CENTRE, 5)) == ["m2"]
    assert ids(index.nearest("engine", CENTRE, 5)) == ["m1"]
    index.retag("m1", {"als"})
    assert ids(index.nearest("als", CENTRE, 5)) == ["m1", "m2"]
    assert index.tags("m1") == frozenset({"als"})


def test_a_removed_unit_is_gone_and_removing_it_again_is_harmless():
    index = fleet(("e1", CENTRE, ("engine",)), ("e2", offset(CENTRE, 100, 0), ("engine",)))
    index.remove("e1")
    index.remove("e1")
    index.remove("never-there")
    assert ids(index.nearest("engine", CENTRE, 5)) == ["e2"]
    assert "e1" not in index and len(index) == 1


def test_put_again_replaces_the_location_and_the_tags():
    index = fleet(("u1", CENTRE, ("engine",)))
    index.put("u1", offset(CENTRE, 5000, 0), ["als"])
    assert index.count("engine") == 0 and index.count("als") == 1
    assert index.location("u1") == offset(CENTRE, 5000, 0)
    assert len(index) == 1


def test_a_unit_with_no_tags_is_held_but_never_returned():
    index = fleet(("busy", CENTRE, ()), ("free", offset(CENTRE, 9000, 0), ("engine",)))
    assert "busy" in index and len(index) == 2
    assert index.tags("busy") == frozenset()
    assert ids(index.nearest("engine", CENTRE, 5)) == ["free"]
    assert all(index.nearest(tag, CENTRE, 5) == [] for tag in ("", "busy", "als"))


def test_count_is_the_number_of_units_holding_the_tag_now():
    index = fleet(("a", CENTRE, ("engine", "als")), ("b", CENTRE, ("engine",)), ("c", CENTRE, ()))
    assert (index.count("engine"), index.count("als"), index.count("ladder")) == (2, 1, 0)
    index.retag("c", ["engine"])
    index.remove("a")
    assert (index.count("engine"), index.count("als")) == (2, 0)


# -- reading -----------------------------------------------------------------------------------------

def test_iter_nearest_is_a_lazy_generator_that_can_be_left_part_way():
    index = FleetIndex(origin=CENTRE)
    units = {}
    for i in range(2000):
        where = offset(CENTRE, (i * 7919) % 30_000 - 15_000, (i * 104_729) % 30_000 - 15_000)
        index.put(f"e{i:04d}", where, ["engine"])
        units[f"e{i:04d}"] = (where, {"engine"})
    search = index.iter_nearest("engine", CENTRE)
    assert inspect.isgenerator(search)
    assert list(islice(search, 3)) == brute(units, "engine", CENTRE)[:3]
    assert next(search) == brute(units, "engine", CENTRE)[3]


def test_changing_the_index_during_a_search_stops_the_search_instead_of_lying():
    index = fleet(*((f"e{i}", offset(CENTRE, 100.0 * i, 0), ("engine",)) for i in range(1, 6)))
    search = index.iter_nearest("engine", CENTRE)
    assert next(search)[1] == "e1"
    index.move("e5", CENTRE)
    with pytest.raises(RuntimeError, match="changed"):
        next(search)


def test_nearest_skips_units_that_accept_refuses_and_asks_no_further_than_it_needs():
    index = fleet(*((f"e{i}", offset(CENTRE, 100.0 * i, 0), ("engine",)) for i in range(1, 10)))
    asked = []

    def crew_on_duty(unit_id: str) -> bool:
        asked.append(unit_id)
        return unit_id not in {"e1", "e3"}

    assert ids(index.nearest("engine", CENTRE, 3, accept=crew_on_duty)) == ["e2", "e4", "e5"]
    assert asked == ["e1", "e2", "e3", "e4", "e5"]


def test_nearest_returns_fewer_than_k_when_fewer_exist_and_nothing_for_an_empty_tag():
    index = fleet(("e1", CENTRE, ("engine",)))
    assert ids(index.nearest("engine", CENTRE, 10)) == ["e1"]
    assert index.nearest("engine", CENTRE, 0) == []
    assert index.nearest("hazmat", CENTRE, 3) == []
    assert FleetIndex().nearest("engine", CENTRE, 3) == []
    assert list(FleetIndex().iter_nearest("engine", CENTRE)) == []


def test_a_query_far_outside_the_city_still_finds_the_nearest():
    index = fleet(("west", offset(CENTRE, -10_000, 0), ("engine",)),
                  ("east", offset(CENTRE, 10_000, 0), ("engine",)))
    far_east = offset(CENTRE, 300_000, 0)
    assert ids(index.nearest("engine", far_east, 2)) == ["east", "west"]


# -- refusals -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("call", ["move", "retag", "location", "tags"])
def test_an_unknown_unit_is_a_key_error_that_names_it(call):
    index = fleet(("e1", CENTRE, ("engine",)))
    args = {"move": (CENTRE,), "retag": ([],), "location": (), "tags": ()}[call]
    with pytest.raises(KeyError, match="unknown unit 'ghost'"):
        getattr(index, call)("ghost", *args)


@pytest.mark.parametrize("cell_m", [0, -500.0, math.nan, math.inf, "500", True])
def test_a_cell_size_must_be_a_positive_number_of_metres(cell_m):
    with pytest.raises(ValueError, match="cell_m must be a positive number of metres"):
        FleetIndex(cell_m)


def test_tags_given_as_one_string_are_refused_rather_than_split_into_letters():
    with pytest.raises(TypeError, match="not the string 'als'"):
        FleetIndex().put("m1", CENTRE, "als")


def test_bad_ids_tags_locations_and_k_are_refused_with_a_message():
    index = FleetIndex()
    with pytest.raises(ValueError, match="a unit id must be a non-empty string"):
        index.put("", CENTRE)
    with pytest.raises(ValueError, match="must be non-empty strings, got ''"):
        index.put("e1", CENTRE, [""])
    with pytest.raises(TypeError, match="must be a LatLon, got tuple"):
        index.put("e1", (52.5, 13.4))
    index.put("e1", CENTRE, ["engine"])
    with pytest.raises(TypeError, match="must be a LatLon"):
        index.move("e1", (52.5, 13.4))
    with pytest.raises(ValueError, match="k must be a whole number >= 0, got -1"):
        index.nearest("engine", CENTRE, -1)
    assert index.location("e1") == CENTRE and index.count("engine") == 1
