"""LatLon refuses anything that is not a real point on Earth; distances are in metres."""

import math

import pytest

from geo import LatLon, haversine_m

SF_CITY_HALL = LatLon(37.77919, -122.41914)
SF_FERRY_BUILDING = LatLon(37.79554, -122.39363)


class TestLatLon:
    def test_keeps_its_coordinates_as_floats(self):
        p = LatLon(47, -122)
        assert (p.lat, p.lon) == (47.0, -122.0)
        assert isinstance(p.lat, float) and isinstance(p.lon, float)

    def test_accepts_the_extremes(self):
        assert LatLon(-90, -180) and LatLon(90, 180)

    def test_is_frozen_and_hashable(self):
        p = LatLon(1.0, 2.0)
        with pytest.raises(AttributeError):
            p.lat = 3.0  # type: ignore[misc]
        assert {p, LatLon(1.0, 2.0)} == {p}

    @pytest.mark.parametrize(
        "lat, lon, message",
        [
            (95.0, 0.0, "latitude must be a number between -90 and 90, got 95.0"),
            (-90.5, 0.0, "latitude must be a number between -90 and 90, got -90.5"),
            (0.0, 180.5, "longitude must be a number between -180 and 180, got 180.5"),
            (0.0, -200, "longitude must be a number between -180 and 180, got -200.0"),
            (math.nan, 0.0, "latitude must be a number between -90 and 90, got nan"),
            (0.0, math.inf, "longitude must be a number between -180 and 180, got inf"),
            (-math.inf, 0.0, "latitude must be a number between -90 and 90, got -inf"),
            (True, 0.0, "latitude must be a number between -90 and 90, got True"),
            (0.0, False, "longitude must be a number between -180 and 180, got False"),
            ("47.6", 0.0, "latitude must be a number between -90 and 90, got '47.6'"),
            (None, 0.0, "latitude must be a number between -90 and 90, got None"),
        ],
    )
    def test_rejects_anything_but_a_finite_in_range_number(self, lat, lon, message):
        with pytest.raises(ValueError) as caught:
            LatLon(lat, lon)
        assert str(caught.value) == message

    def test_json_round_trip(self):
        p = LatLon(47.6205, -122.3493)
        assert p.to_json() == {"lat": 47.6205, "lon": -122.3493}
        assert LatLon.from_json(p.to_json()) == p

    def test_from_json_names_the_missing_keys(self):
        with pytest.raises(ValueError, match="missing: lon"):
            LatLon.from_json({"lat": 1.0})
        with pytest.raises(ValueError, match="missing: lat, lon"):
            LatLon.from_json({})

    def test_from_json_validates_the_values(self):
        with pytest.raises(ValueError, match="latitude must be a number"):
            LatLon.from_json({"lat": 123, "lon": 0})

    def test_from_json_refuses_a_non_object(self):
        with pytest.raises(ValueError, match="must be an object"):
            LatLon.from_json([1.0, 2.0])  # type: ignore[arg-type]

    def test_position_is_geojson_order_lon_then_lat(self):
        assert LatLon(47.6, -122.3).position() == [-122.3, 47.6]


class TestHaversine:
    def test_same_point_is_zero(self):
        assert haversine_m(SF_CITY_HALL, SF_CITY_HALL) == 0.0

    def test_sf_city_hall_to_ferry_building_is_about_2_9_km(self):
        assert haversine_m(SF_CITY_HALL, SF_FERRY_BUILDING) == pytest.approx(2_900, abs=100)

    def test_one_degree_of_latitude_is_about_111_2_km(self):
        assert haversine_m(LatLon(0, 0), LatLon(1, 0)) == pytest.approx(111_195, abs=5)

    def test_one_degree_of_longitude_shrinks_with_latitude(self):
        at_equator = haversine_m(LatLon(0, 0), LatLon(0, 1))
        at_60_north = haversine_m(LatLon(60, 0), LatLon(60, 1))
        assert at_60_north == pytest.approx(at_equator / 2, rel=1e-3)

    def test_is_symmetric(self):
        assert haversine_m(SF_CITY_HALL, SF_FERRY_BUILDING) == haversine_m(
            SF_FERRY_BUILDING, SF_CITY_HALL
        )

    def test_antipodes_are_half_the_circumference(self):
        assert haversine_m(LatLon(0, 0), LatLon(0, 180)) == pytest.approx(math.pi * 6_371_008.8)

    def test_crosses_the_antimeridian_the_short_way(self):
        assert haversine_m(LatLon(0, 179.5), LatLon(0, -179.5)) == pytest.approx(111_195, abs=5)


def test_negative_zero_is_stored_as_zero():
    import math
    point = LatLon(-0.0, -0.0)
    assert math.copysign(1, point.lat) == 1 and math.copysign(1, point.lon) == 1
