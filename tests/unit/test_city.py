"""The city model, its document form, its checks, and the generated Demo City."""
import json
from collections import Counter
from dataclasses import replace

import pytest
from shapely import union_all
from shapely.geometry import Point, box

from agencies.city import City, UnitSpec, check_city
from agencies.demo import SIZE_M, demo_bounds, generate_demo_city
from agencies.model import Agency, AgencyKind, Station
from agencies.plans import load_plans
from geo.coords import LatLon, haversine_m
from geo.districts import District, DistrictIndex

PLANS = load_plans()


def tiny_city(**changes) -> City:
    """A two-agency city on two unit squares; keyword arguments replace its fields."""
    fd = Agency("fd", "Fire", AgencyKind.FIRE)
    ems = Agency("ems", "EMS", AgencyKind.EMS)
    station = Station("S1", "fd", "Station 1", LatLon(0.5, 0.5))
    city = City(
        name="Tiny",
        agencies=(fd, ems),
        stations=(station,),
        districts=DistrictIndex([District("fd", "1", "First due 1", box(0, 0, 1, 1)),
                                 District("ems", "Z", "Zone Z", box(0, 0, 2, 1))]),
        units=(UnitSpec("E1", "fd", "engine", "S1", station.location),
               UnitSpec("M1", "ems", "als", "S1", station.location),    # a medic posted at a fire station
               UnitSpec("A1", "ems", "bls", None, LatLon(0.5, 1.5))),
    )
    return replace(city, **changes)


def roundtrip(city: City) -> dict:
    return City.from_doc(json.loads(json.dumps(city.to_doc()))).to_doc()


class TestDocument:
    def test_the_document_round_trips_through_json(self):
        city = tiny_city()
        assert roundtrip(city) == city.to_doc()

    def test_the_demo_city_round_trips_through_json(self):
        city = generate_demo_city()
        assert roundtrip(city) == city.to_doc()

    def test_the_document_keeps_units_stations_and_kinds(self):
        again = City.from_doc(json.loads(json.dumps(tiny_city().to_doc())))
        assert again.units == tiny_city().units
        assert again.stations == tiny_city().stations
        assert again.agency("ems").kind is AgencyKind.EMS
        assert [d.key for d in again.districts] == [("ems", "Z"), ("fd", "1")]

    def test_an_unknown_agency_is_a_value_error(self):
        with pytest.raises(ValueError, match="unknown agency 'pd'"):
            tiny_city().agency("pd")

    @pytest.mark.parametrize("breakage, message", [
        (lambda d: d.pop("units"), "missing 'units'"),
        (lambda d: d["agencies"][0].update(kind="sheriff"), "unknown agency kind 'sheriff'"),
        (lambda d: d["units"][0].update(home={"lat": 95, "lon": 0}), "unit 'E1', home: latitude"),
        (lambda d: d["stations"][0].pop("location"), "station 'S1' is missing 'location'"),
    ])
    def test_a_broken_document_says_what_is_wrong(self, breakage, message):
        doc = tiny_city().to_doc()
        breakage(doc)
        with pytest.raises(ValueError, match=message):
            City.from_doc(doc)


class TestCheckCity:
    def test_a_sound_city_passes(self):
        assert check_city(tiny_city(), PLANS) is None

    @pytest.mark.parametrize("changes, problem", [
        (dict(units=(UnitSpec("E1", "fd", "spaceship", "S1", LatLon(0, 0)),)),
         "unit 'E1' has unknown type 'spaceship'"),
        (dict(units=(UnitSpec("M1", "fd", "als", "S1", LatLon(0, 0)),)),
         "unit 'M1' has type 'als', which is for ems agencies, but agency 'fd' is fire"),
        (dict(units=(UnitSpec("E1", "pd", "engine", "S1", LatLon(0, 0)),)),
         "unit 'E1' belongs to unknown agency 'pd'"),
        (dict(units=(UnitSpec("E1", "fd", "engine", "S9", LatLon(0, 0)),)),
         "unit 'E1' is homed at unknown station 'S9'"),
        (dict(units=(UnitSpec("E1", "fd", "engine", None, LatLon(0, 0)),) * 2),
         "unit id 'E1' is used 2 times"),
        (dict(stations=(Station("S1", "fd", "One", LatLon(0, 0)),) * 2),
         "station id 'S1' is used 2 times"),
        (dict(stations=(Station("S1", "pd", "One", LatLon(0, 0)),)),
         "station 'S1' belongs to unknown agency 'pd'"),
        (dict(agencies=(Agency("fd", "Fire", AgencyKind.FIRE),) * 2 + (Agency("ems", "EMS", AgencyKind.EMS),)),
         "agency id 'fd' is used 2 times"),
        (dict(districts=DistrictIndex([District("pd", "B1", "Beat 1", box(0, 0, 1, 1))])),
         "district 'B1' belongs to unknown agency 'pd'"),
    ])
    def test_each_problem_is_named(self, changes, problem):
        with pytest.raises(ValueError) as caught:
            check_city(tiny_city(**changes), PLANS)
        assert f"- {problem}" in str(caught.value).splitlines()

    def test_every_problem_is_listed_at_once(self):
        city = tiny_city(units=(UnitSpec("X1", "pd", "spaceship", "S9", LatLon(0, 0)),))
        with pytest.raises(ValueError, match=r"has 3 problem\(s\)"):
            check_city(city, PLANS)


@pytest.fixture(scope="module")
def demo() -> City:
    return generate_demo_city()


class TestDemoCity:
    def test_it_is_deterministic(self, demo):
        assert generate_demo_city(7).to_doc() == demo.to_doc()

    def test_another_seed_bends_other_borders_but_keeps_the_fleet(self, demo):
        other = generate_demo_city(8)
        assert other.to_doc()["districts"] != demo.to_doc()["districts"]
        assert [u.id for u in other.units] == [u.id for u in demo.units]

    @pytest.mark.parametrize("seed", [7, 1, 2, 3])
    def test_it_passes_the_city_checks(self, seed):
        assert check_city(generate_demo_city(seed), PLANS) is None

    def test_it_is_a_12_km_square(self):
        west, south, east, north = demo_bounds()
        middle = (south + north) / 2
        assert haversine_m(LatLon(middle, west), LatLon(middle, east)) == pytest.approx(SIZE_M, rel=0.01)
        assert haversine_m(LatLon(south, west), LatLon(north, west)) == pytest.approx(SIZE_M, rel=0.01)

    def test_it_has_three_agencies_of_each_kind(self, demo):
        assert {(a.id, a.kind) for a in demo.agencies} == {
            ("demo-pd", AgencyKind.POLICE), ("demo-fd", AgencyKind.FIRE), ("demo-ems", AgencyKind.EMS)}
        assert Counter(d.agency_id for d in demo.districts) == {"demo-pd": 16, "demo-fd": 9, "demo-ems": 4}

    def test_it_fields_about_150_units_with_realistic_ids(self, demo):
        assert 140 <= len(demo.units) <= 160
        ids = {u.id for u in demo.units}
        assert {"E1", "T3", "M12", "B1", "1A12", "EMS1"} <= ids
        assert all(u.station_id is not None for u in demo.units)

    @pytest.mark.parametrize("seed", [7, 3])
    def test_each_agency_tiles_the_whole_city(self, seed):
        city = generate_demo_city(seed)
        square = box(*demo_bounds())
        for agency in city.agencies:
            parts = [d.geometry for d in city.districts.for_agency(agency.id)]
            assert union_all(parts).symmetric_difference(square).area < 1e-12
            assert sum(p.area for p in parts) == pytest.approx(square.area, rel=1e-9)   # no overlaps

    def test_a_grid_of_points_finds_one_district_per_agency_except_on_borders(self, demo):
        west, south, east, north = demo_bounds()
        n = 40
        for i in range(n + 1):
            for j in range(n + 1):
                point = LatLon(south + (north - south) * j / n, west + (east - west) * i / n)
                found = Counter(d.agency_id for d in demo.districts.at(point))
                assert set(found) == {"demo-pd", "demo-fd", "demo-ems"}, point
                for district in demo.districts.at(point):
                    if found[district.agency_id] > 1:
                        assert district.geometry.boundary.distance(Point(point.lon, point.lat)) < 1e-9

    @pytest.mark.parametrize("seed", [7, 1, 2, 3, 4, 5])
    def test_each_station_lies_inside_its_own_district(self, seed):
        demo = generate_demo_city(seed)
        for station in demo.stations:
            here = [d.district_id for d in demo.districts.at(station.location) if d.agency_id == station.agency_id]
            if station.id.startswith("PCT"):    # a precinct station lies in one of its precinct's beats
                assert here and all(beat[0] == station.id[3:] for beat in here), station
            else:                               # FS3 in first-due area 3, EB2/EP2 in zone 2
                assert here == [station.id[2:]], station

    def test_units_start_at_their_station_and_beat_cars_in_their_beat(self, demo):
        stations = {s.id: s for s in demo.stations}
        for unit in demo.units:
            assert stations[unit.station_id].agency_id == unit.agency_id
            if unit.type == "patrol":
                beat = unit.id[:2]
                assert [d.district_id for d in demo.districts.at(unit.home) if d.agency_id == "demo-pd"] == [beat]
            else:
                assert unit.home == stations[unit.station_id].location

    @pytest.mark.parametrize("incident_type", sorted(PLANS.incident_types))
    def test_every_plan_can_be_filled(self, demo, incident_type):
        kinds = {a.id: a.kind for a in demo.agencies}
        for line in PLANS.incident_type(incident_type).plan.lines:
            able = [u for u in demo.units
                    if kinds[u.agency_id] == line.kind and PLANS.unit_type(u.type).provides(line.capability)]
            assert len(able) >= line.count, (incident_type, line)

    def test_the_biggest_plans_can_be_filled_several_times_over(self, demo):
        by_type = Counter(u.type for u in demo.units)
        assert by_type["engine"] >= 3 * 3 and by_type["patrol"] >= 3 * 4 and by_type["als"] >= 3 * 4
