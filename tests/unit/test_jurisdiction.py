"""Whose incident it is: border ties, citywide agencies, points outside, first-due stations."""

from shapely.geometry import box

from agencies.city import City
from agencies.jurisdiction import Jurisdiction
from agencies.model import Agency, AgencyKind, Station
from geo import District, DistrictIndex, LatLon

from ..builders import IN_WEST, ON_BORDER, OUTSIDE, tiny_city

POLICE, FIRE, EMS = AgencyKind.POLICE, AgencyKind.FIRE, AgencyKind.EMS


def test_a_border_point_has_one_deterministic_owner_among_the_districts_covering_it():
    j = Jurisdiction(tiny_city())
    [police] = j.responsible(ON_BORDER, {POLICE})
    assert [d.district_id for d in j.districts_at(ON_BORDER) if d.agency_id == "pd"] == ["EAST", "WEST"]
    assert police.agency_ids == ("pd",) and police.district.district_id == "EAST" and police.outside_m is None


def test_only_the_kinds_asked_for_are_answered_in_kind_order():
    j = Jurisdiction(tiny_city())
    assert [r.kind for r in j.responsible(IN_WEST, {POLICE, EMS})] == [EMS, POLICE]


def test_an_agency_without_districts_serves_the_whole_city_for_its_kind():
    city = tiny_city()
    city = City(city.name, city.agencies + (Agency("amb", "Private ambulances", EMS),), city.stations,
                DistrictIndex([d for d in city.districts if d.agency_id != "ems"]), city.units)
    [ems] = Jurisdiction(city).responsible(IN_WEST, {EMS})
    assert ems.agency_ids == ("amb", "ems") and ems.district is None and ems.outside_m is None


def test_outside_every_district_the_nearest_of_that_kind_answers_with_its_distance():
    [fire] = Jurisdiction(tiny_city()).responsible(OUTSIDE, {FIRE})
    assert fire.agency_ids == ("fd",) and fire.district.district_id == "1"
    assert 140_000 < fire.outside_m < 160_000
    assert fire.to_json()["outside"] is True


def test_the_first_due_station_is_the_one_named_like_the_district_else_the_one_inside_it():
    agencies = (Agency("fd", "Fire", FIRE),)
    districts = DistrictIndex([District("fd", "7", "Seven", box(0, 0, 1, 1)), District("fd", "A", "Area A", box(1, 0, 2, 1)),
                               District("fd", "B", "Area B", box(2, 0, 3, 1))])
    stations = (Station("7", "fd", "Station 7", LatLon(0.5, 1.5)),     # named like district 7, sits in A
                Station("12", "fd", "Station 12", LatLon(0.5, 1.2)))
    j = Jurisdiction(City("Grid", agencies, stations, districts, ()))
    assert j.first_due[("fd", "7")] == "7"
    assert j.first_due[("fd", "A")] == "12"     # both lie in A: by id, "12" sorts before "7"
    assert j.first_due[("fd", "B")] is None


def test_where_districts_overlap_the_one_whose_first_due_station_is_nearest_owns_the_point():
    # drive-time catchments overlap; "13" sorts before "2" as text, but station 2 is the nearer
    agencies = (Agency("fd", "Fire", FIRE),)
    districts = DistrictIndex([District("fd", "13", "Catchment 13", box(0, 0, 2, 1)),
                               District("fd", "2", "Catchment 2", box(1, 0, 3, 1))])
    stations = (Station("13", "fd", "Station 13", LatLon(0.5, 0.2)), Station("2", "fd", "Station 2", LatLon(0.5, 1.8)))
    j = Jurisdiction(City("Overlap", agencies, stations, districts, ()))
    [fire] = j.responsible(LatLon(0.5, 1.6), {FIRE})
    assert fire.district.district_id == "2" and fire.first_due_station == "2"
    [fire] = j.responsible(LatLon(0.5, 1.05), {FIRE})     # 0.85 deg from station 13, 0.75 from station 2
    assert fire.first_due_station == "2"
    [fire] = j.responsible(LatLon(0.5, 0.9), {FIRE})      # only catchment 13 covers it
    assert fire.first_due_station == "13"
