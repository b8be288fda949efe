"""Reading district and point FeatureCollections, and writing districts back out."""

import json

import pytest
from shapely.geometry import MultiPolygon, Polygon

from geo import DistrictIndex, LatLon
from geo.geojson import (
    districts_from_features,
    districts_to_features,
    read_districts,
    read_points,
)

from ..realcity import shared_data


def square(x0, y0, x1, y1):
    return [[[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]]


def feature(geometry_type, coordinates, **properties):
    return {
        "type": "Feature",
        "properties": properties,
        "geometry": {"type": geometry_type, "coordinates": coordinates},
    }


def collection(*features):
    return {"type": "FeatureCollection", "features": list(features)}


class TestReadDistricts:
    def test_reads_polygons_and_multipolygons_with_id_and_name(self):
        doc = collection(
            feature("Polygon", square(0, 0, 1, 1), beat="B1", label="Ballard 1"),
            feature("MultiPolygon", [square(2, 0, 3, 1), square(4, 0, 5, 1)], beat="B2", label="Ballard 2"),
        )
        b1, b2 = read_districts(doc, "spd", id_property="beat", name_property="label")
        assert (b1.agency_id, b1.district_id, b1.name) == ("spd", "B1", "Ballard 1")
        assert isinstance(b1.geometry, Polygon) and b1.geometry.area == 1
        assert isinstance(b2.geometry, MultiPolygon) and b2.geometry.area == 2

    def test_the_name_defaults_to_the_id(self):
        doc = collection(
            feature("Polygon", square(0, 0, 1, 1), id=7),
            feature("Polygon", square(1, 0, 2, 1), id=8, label=None),
        )
        seven, eight = read_districts(doc, "fd", id_property="id", name_property="label")
        assert (seven.district_id, seven.name) == ("7", "7")
        assert eight.name == "8"

    def test_features_sharing_an_id_become_one_district(self):
        doc = collection(
            feature("Polygon", square(0, 0, 1, 1), zone="A"),
            feature("Polygon", square(1, 0, 2, 1), zone="A"),
            feature("Polygon", square(5, 5, 6, 6), zone="A"),
        )
        [zone] = read_districts(doc, "ems", id_property="zone")
        assert zone.geometry.area == pytest.approx(3)
        assert DistrictIndex([zone]).at(LatLon(5.5, 5.5)) == [zone]

    def test_a_ring_touching_itself_is_repaired_keeping_its_area(self):
        touching = [[[0, 0], [2, 0], [1, 1], [2, 2], [0, 2], [1, 1], [0, 0]]]  # as two SFPD districts do
        [d] = read_districts(collection(feature("Polygon", touching, id="x")), "pd", "id")
        assert d.geometry.is_valid
        assert d.geometry.geom_type in ("Polygon", "MultiPolygon")
        assert d.geometry.area == pytest.approx(2)

    def test_a_bowtie_is_refused_since_repair_would_change_what_it_covers(self):
        bowtie = [[[0, 0], [2, 2], [2, 0], [0, 2], [0, 0]]]
        with pytest.raises(ValueError, match=r"feature 0 \(district 'x'\) crosses itself \(Self-intersection\[1 1\]\)"):
            read_districts(collection(feature("Polygon", bowtie, id="x")), "pd", "id")

    def test_refuses_something_that_is_not_a_feature_collection(self):
        with pytest.raises(ValueError, match="expected a GeoJSON FeatureCollection, got 'Feature'"):
            read_districts(feature("Polygon", square(0, 0, 1, 1), id="x"), "pd", "id")

    def test_names_the_feature_and_property_when_the_id_is_missing(self):
        doc = collection(feature("Polygon", square(0, 0, 1, 1), id="a"), feature("Polygon", square(1, 0, 2, 1)))
        with pytest.raises(ValueError, match="feature 1 has no 'id' property"):
            read_districts(doc, "pd", "id")

    def test_refuses_a_non_polygon_geometry(self):
        doc = collection(feature("LineString", [[0, 0], [1, 1]], id="road"))
        expected = "feature 0 \\(district 'road'\\) must be a Polygon or MultiPolygon, got 'LineString'"
        with pytest.raises(ValueError, match=expected):
            read_districts(doc, "pd", "id")

    def test_refuses_projected_coordinates(self):
        doc = collection(feature("Polygon", square(1_270_000, 220_000, 1_271_000, 221_000), id="x"))
        with pytest.raises(ValueError, match="outside WGS 84 longitude/latitude"):
            read_districts(doc, "pd", "id")

    def test_refuses_a_polygon_with_no_area(self):
        flat = [[[0, 0], [1, 1], [2, 2], [0, 0]]]
        with pytest.raises(ValueError, match="district 'x' has no area"):
            read_districts(collection(feature("Polygon", flat, id="x")), "pd", "id")

    def test_refuses_an_empty_collection(self):
        with pytest.raises(ValueError, match="contains no districts"):
            read_districts(collection(), "pd", "id")


class TestDistrictFeatures:
    def test_round_trip_through_json_is_exact(self):
        doc = collection(
            feature("Polygon", [square(0, 0, 4, 4)[0], [[1, 1], [1, 2], [2, 2], [2, 1], [1, 1]]], id="holed"),
            feature("MultiPolygon", [square(5, 5, 6, 6), square(7, 7, 8.25, 8.125)], id="multi", name="Multi"),
        )
        districts = read_districts(doc, "fd", "id", "name")
        features = districts_to_features(districts)
        assert json.loads(json.dumps(features)) == features
        assert features[1]["properties"] == {"agency_id": "fd", "district_id": "multi", "name": "Multi"}
        assert districts_from_features(json.loads(json.dumps(features))) == districts

    def test_from_features_names_missing_properties(self):
        with pytest.raises(ValueError, match="feature 0 lacks district properties: agency_id, name"):
            districts_from_features([feature("Polygon", square(0, 0, 1, 1), district_id="x")])


class TestReadPoints:
    def test_reads_properties_and_location(self):
        doc = collection(feature("Point", [-122.3493, 47.6205], name="Space Needle"))
        assert read_points(doc) == [({"name": "Space Needle"}, LatLon(47.6205, -122.3493))]

    def test_refuses_a_non_point(self):
        doc = collection(feature("Point", [0, 0]), feature("Polygon", square(0, 0, 1, 1)))
        with pytest.raises(ValueError, match="feature 1 must be a Point, got 'Polygon'"):
            read_points(doc)

    def test_refuses_swapped_or_bad_coordinates_naming_the_feature(self):
        with pytest.raises(ValueError, match="feature 0: latitude must be a number between -90 and 90, got -122.3"):
            read_points(collection(feature("Point", [47.6, -122.3])))


@pytest.fixture(scope="module")
def beats():
    if shared_data() is None:
        pytest.skip("../shared/data is absent beside the repository: the Seattle beats are read from there")
    path = shared_data() / "seattle" / "spd_beats.geojson"
    return read_districts(json.loads(path.read_text()), "spd", id_property="name")


@pytest.mark.realdata
class TestSeattleBeats:
    def test_all_51_beats_load(self, beats):
        assert len(beats) == 51
        assert {b.district_id for b in beats} >= {"B1", "K1", "M1", "Q3", "W3"}
        assert all(b.geometry.is_valid for b in beats)

    @pytest.mark.parametrize(
        "place, lat, lon, beat",
        [("Space Needle", 47.6205, -122.3493, "Q3"), ("Pike Place Market", 47.6097, -122.3422, "M1")],
    )
    def test_a_known_place_resolves_to_its_beat(self, beats, place, lat, lon, beat):
        assert [d.district_id for d in DistrictIndex(beats).at(LatLon(lat, lon))] == [beat]
