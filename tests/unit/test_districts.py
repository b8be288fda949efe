"""DistrictIndex.at(point): every district covering the point, borders included, in a fixed order."""

import pytest
from hypothesis import given
from hypothesis import strategies as st
from shapely.geometry import LineString, MultiPolygon, Point, Polygon, box

from geo import District, DistrictIndex, LatLon, haversine_m

# Two adjacent 1x1 degree squares of the police department sharing the border lon = 1.
WEST = District("pd", "west", "West beat", box(0, 0, 1, 1))
EAST = District("pd", "east", "East beat", box(1, 0, 2, 1))
# A fire district over both, with a square hole in the middle of the west square.
FIRE = District(
    "fd", "station_1", "Station 1 first-due",
    Polygon([(0, 0), (2, 0), (2, 1), (0, 1)], holes=[[(0.4, 0.4), (0.6, 0.4), (0.6, 0.6), (0.4, 0.6)]]),
)
# An EMS zone made of two islands.
ISLANDS = District("ems", "islands", "Islands", MultiPolygon([box(10, 10, 11, 11), box(12, 10, 13, 11)]))


def at(index, lat, lon):
    return [(d.agency_id, d.district_id) for d in index.at(LatLon(lat, lon))]


@pytest.fixture
def index():
    return DistrictIndex([ISLANDS, EAST, FIRE, WEST])


class TestAt:
    def test_a_point_inside_one_square_is_in_that_square_and_the_overlapping_fire_district(self, index):
        assert at(index, 0.5, 1.5) == [("fd", "station_1"), ("pd", "east")]

    def test_a_point_on_the_shared_border_belongs_to_both_squares(self, index):
        assert at(index, 0.5, 1.0) == [("fd", "station_1"), ("pd", "east"), ("pd", "west")]

    def test_a_shared_corner_on_the_outer_edge_belongs_to_both_squares(self, index):
        assert at(index, 0.0, 1.0) == [("fd", "station_1"), ("pd", "east"), ("pd", "west")]

    def test_a_point_on_the_outer_boundary_is_covered(self, index):
        assert at(index, 1.0, 0.0) == [("fd", "station_1"), ("pd", "west")]

    def test_a_point_in_a_hole_is_not_in_the_holed_district(self, index):
        assert at(index, 0.5, 0.5) == [("pd", "west")]

    def test_a_point_on_the_edge_of_a_hole_is_covered(self, index):
        assert at(index, 0.4, 0.5) == [("fd", "station_1"), ("pd", "west")]

    def test_each_part_of_a_multipolygon_counts(self, index):
        assert at(index, 10.5, 10.5) == [("ems", "islands")]
        assert at(index, 10.5, 12.5) == [("ems", "islands")]

    def test_the_gap_between_multipolygon_parts_is_outside(self, index):
        assert at(index, 10.5, 11.5) == []

    def test_a_point_far_away_is_in_no_district(self, index):
        assert at(index, -45.0, 100.0) == []

    def test_result_order_is_agency_then_district_whatever_the_input_order(self):
        forwards = DistrictIndex([WEST, EAST, FIRE])
        backwards = DistrictIndex([FIRE, EAST, WEST])
        assert at(forwards, 0.5, 1.0) == at(backwards, 0.5, 1.0)

    def test_an_empty_index_finds_nothing(self):
        assert DistrictIndex([]).at(LatLon(0.5, 0.5)) == []


class TestLookups:
    def test_for_agency_lists_that_agencys_districts_sorted(self, index):
        assert [d.district_id for d in index.for_agency("pd")] == ["east", "west"]
        assert index.for_agency("nobody") == []

    def test_get_by_agency_and_district(self, index):
        assert index.get("pd", "west") is WEST
        assert index.get("pd", "station_1") is None

    def test_len_and_iteration_in_sorted_order(self, index):
        assert len(index) == 4
        assert [(d.agency_id, d.district_id) for d in index] == [
            ("ems", "islands"), ("fd", "station_1"), ("pd", "east"), ("pd", "west"),
        ]

    def test_the_same_district_twice_is_refused(self):
        with pytest.raises(ValueError, match="district pd/west is defined twice"):
            DistrictIndex([WEST, WEST])


class TestDistrict:
    def test_refuses_a_non_polygon(self):
        with pytest.raises(ValueError, match="must be a Polygon or MultiPolygon, got LineString"):
            District("pd", "x", "X", LineString([(0, 0), (1, 1)]))

    def test_refuses_an_invalid_polygon(self):
        bowtie = Polygon([(0, 0), (1, 1), (1, 0), (0, 1)])
        with pytest.raises(ValueError, match="district pd/x has an invalid geometry: Self-intersection"):
            District("pd", "x", "X", bowtie)

    def test_refuses_an_empty_polygon(self):
        with pytest.raises(ValueError, match="empty geometry"):
            District("pd", "x", "X", Polygon())

    def test_refuses_an_empty_id(self):
        with pytest.raises(ValueError, match="non-empty district_id"):
            District("pd", "", "X", box(0, 0, 1, 1))


@given(
    lat=st.one_of(st.floats(-0.5, 1.5), st.sampled_from([0.0, 0.4, 0.5, 0.6, 1.0])),
    lon=st.one_of(st.floats(-0.5, 2.5), st.sampled_from([0.0, 0.4, 0.6, 1.0, 2.0])),
)
def test_at_agrees_with_checking_every_district_by_hand(lat, lon):
    districts = [WEST, EAST, FIRE, ISLANDS]
    expected = sorted(
        (d.agency_id, d.district_id) for d in districts if d.geometry.covers(Point(lon, lat))
    )
    assert at(DistrictIndex(districts), lat, lon) == expected


def test_nearest_district_is_measured_in_metres_across_the_antimeridian():
    west = District("fd", "WEST", "West of the line", box(179.0, -18.0, 179.5, -17.0))
    east = District("fd", "EAST", "East of the line", box(-179.9, -18.0, -179.5, -17.0))
    index = DistrictIndex([west, east])
    district, metres = index.nearest(LatLon(-17.5, 179.8))
    assert district.district_id == "EAST" and metres == pytest.approx(haversine_m(LatLon(-17.5, 179.8),
                                                                                   LatLon(-17.5, -179.9)), rel=1e-6)
    assert index.nearest(LatLon(-17.5, 180.0))[0].district_id == index.nearest(LatLon(-17.5, -180.0))[0].district_id


def test_nearest_district_outside_answers_in_metres_and_inside_is_zero():
    index = DistrictIndex([District("pd", "A", "A", box(0, 0, 1, 1)), District("pd", "B", "B", box(2, 0, 3, 1))])
    district, metres = index.nearest(LatLon(0.5, 1.9))
    assert district.district_id == "B" and metres == pytest.approx(haversine_m(LatLon(0.5, 1.9), LatLon(0.5, 2.0)))
    assert index.nearest(LatLon(0.5, 0.5)) == (index.get("pd", "A"), 0.0)
    assert index.nearest(LatLon(0.5, 0.5), accept=lambda d: d.district_id == "B")[0].district_id == "B"
    assert index.nearest(LatLon(0.5, 0.5), accept=lambda d: False) is None
