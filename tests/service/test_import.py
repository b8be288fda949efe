"""Importing a city from a manifest: small files made here, then Seattle and San Francisco for real."""
import csv
import json
import re
from pathlib import Path

import pytest

from coordinator.importer import load_manifest
from geo.coords import LatLon, haversine_m
from tests.realcity import require_shared_data, seattle_manifest, sf_manifest

SFFD_DISTINCT_UNITS = 178


@pytest.fixture
def shared() -> Path:
    return require_shared_data()


# -- small files ----------------------------------------------------------------------------

SQUARE = {"type": "FeatureCollection", "features": [
    {"type": "Feature", "properties": {"beat": "B1", "label": "Beat One"},
     "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 1], [0, 0]]]}}]}


def write_city(tmp_path: Path, units: str = "unit_id,type,station\nE1,engine,2\n", **fire) -> Path:
    """A police agency with one beat, a fire agency with a BOM-headed stations CSV and a units CSV."""
    (tmp_path / "beats.geojson").write_text(json.dumps(SQUARE))
    (tmp_path / "stations.csv").write_text("\ufeffLng,Lat,STNID\n0.25,0.5,SFD 2\n0.75,0.5,SFD 3\n", encoding="utf-8")
    (tmp_path / "units.csv").write_text(units)
    agency = {"id": "fd", "name": "Fire", "kind": "fire", "stations": "stations.csv", "station_id": "STNID",
              "station_id_pattern": "SFD (\\w+)", "units": "units.csv"} | fire
    lines = ['name = "Small"', "[[agencies]]", 'id = "pd"', 'name = "Police"', 'kind = "police"',
             'districts = "beats.geojson"', 'district_id = "beat"', 'district_name = "label"', "[[agencies]]"]
    lines += [f"{key} = {json.dumps(value)}" for key, value in agency.items() if value is not None]
    path = tmp_path / "city.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


class TestManifest:
    def test_a_small_city_loads(self, tmp_path):
        city = load_manifest(write_city(tmp_path))
        assert city.name == "Small"
        assert [(d.agency_id, d.district_id, d.name) for d in city.districts] == [("pd", "B1", "Beat One")]
        assert [(s.id, s.name, s.location) for s in city.stations] == [
            ("2", "SFD 2", LatLon(0.5, 0.25)), ("3", "SFD 3", LatLon(0.5, 0.75))]
        (unit,) = city.units
        assert (unit.id, unit.agency_id, unit.type, unit.station_id, unit.home) == ("E1", "fd", "engine", "2",
                                                                                   LatLon(0.5, 0.25))

    def test_a_unit_without_a_listed_station_lives_at_its_lat_lon(self, tmp_path):
        city = load_manifest(write_city(tmp_path, units="unit_id,type,station,lat,lon\nFB1,boat,35,0.9,0.1\n"))
        assert [(u.id, u.station_id, u.home) for u in city.units] == [("FB1", None, LatLon(0.9, 0.1))]

    @pytest.mark.parametrize("units, message", [
        ("unit_id,type\nE1,engine\n", r"units.csv: missing column\(s\) 'station'"),
        ("unit_id,type,station\nE1,engine,9\n", r"units.csv line 2 \(unit 'E1'\): station '9' is unknown and the row has no lat/lon"),
        ("unit_id,type,station\nE1,engine,2\nE1,truck,3\n", r"units.csv line 3 \(unit 'E1'\): unit id 'E1' is listed twice"),
        ("unit_id,type,station\nE1,spaceship,2\n", r"units.csv line 2 \(unit 'E1'\): unknown unit type 'spaceship'"),
        ("unit_id,type,station\nM1,als,2\n", r"units.csv line 2 \(unit 'M1'\): type 'als' is for ems agencies, but agency 'fd' is fire"),
        ("unit_id,type,station,lat,lon\nE1,engine,,north,0\n", r"units.csv line 2 \(unit 'E1'\): lat/lon must be numbers"),
    ])
    def test_a_bad_units_row_is_named(self, tmp_path, units, message):
        with pytest.raises(ValueError, match=message):
            load_manifest(write_city(tmp_path, units=units))

    @pytest.mark.parametrize("fire, message", [
        (dict(kind="sheriff"), r"city.toml: agencies\[1\] \('fd'\): unknown agency kind 'sheriff'"),
        (dict(station_id="NOPE"), r"stations.csv: missing column\(s\) 'NOPE'; columns: Lng, Lat, STNID"),
        (dict(stations="nowhere.csv"), r"city.toml: agency 'fd': stations file .*nowhere.csv does not exist"),
        (dict(station_id_pattern="Station #(\\d+)"), r"stations.csv line 2: station id 'SFD 2' does not match"),
        (dict(station_id_pattern="SFD \\w+"), re.escape("station_id_pattern 'SFD \\w+' needs a group")),
        (dict(stations_file="x"), r"unknown key\(s\) 'stations_file'"),
        (dict(name=None), r"'name' is required"),
    ])
    def test_a_bad_agency_is_named(self, tmp_path, fire, message):
        with pytest.raises(ValueError, match=message):
            load_manifest(write_city(tmp_path, **fire))

    def test_stations_need_coordinate_columns(self, tmp_path):
        path = write_city(tmp_path)
        (tmp_path / "stations.csv").write_text("east,north,STNID\n0.25,0.5,SFD 2\n")
        with pytest.raises(ValueError, match="no longitude/latitude columns .* columns: east, north, STNID"):
            load_manifest(path)

    def test_a_missing_manifest_is_named(self, tmp_path):
        with pytest.raises(ValueError, match="manifest .*absent.toml does not exist"):
            load_manifest(tmp_path / "absent.toml")


# -- Seattle --------------------------------------------------------------------------------

@pytest.fixture
def seattle(shared, tmp_path):
    return load_manifest(seattle_manifest(tmp_path))


@pytest.mark.realdata
class TestSeattle:
    def test_all_51_spd_beats_load(self, seattle):
        beats = seattle.districts.for_agency("spd")
        assert len(beats) == 51
        assert {"B1", "K3", "W3"} <= {b.district_id for b in beats}

    def test_a_known_call_resolves_to_its_beat(self, seattle, shared):
        with (shared / "seattle" / "fire_911_calls_2017-03.csv").open(encoding="utf-8-sig", newline="") as f:
            call = next(r for r in csv.DictReader(f) if r["Incident Number"] == "F170020874")
        assert call["Address"] == "223 Yesler Way"      # Pioneer Square, West precinct
        point = LatLon(float(call["Latitude"]), float(call["Longitude"]))
        assert [(d.agency_id, d.district_id) for d in seattle.districts.at(point)] == [("spd", "K3")]

    def test_every_march_call_lies_in_exactly_one_beat(self, seattle, shared):
        with (shared / "seattle" / "fire_911_calls_2017-03.csv").open(encoding="utf-8-sig", newline="") as f:
            calls = list(csv.DictReader(f))
        counts = {len(seattle.districts.at(LatLon(float(c["Latitude"]), float(c["Longitude"])))) for c in calls}
        assert len(calls) == 8310 and counts == {1}

    def test_stations_sit_where_the_stations_csv_puts_them(self, seattle, shared):
        stations = {s.id: s for s in seattle.stations}
        assert len(stations) == 36 and {"2", "41", "HQ", "HMC"} <= set(stations)
        # the apparatus file gives station 2 HQ's coordinates; the city GIS layer does not
        assert haversine_m(stations["2"].location, stations["HQ"].location) > 1500

    def test_front_line_apparatus_become_units(self, seattle):
        units = {u.id: u for u in seattle.units}
        assert (units["E10"].type, units["E10"].station_id) == ("engine", "10")
        assert (units["L1"].type, units["M1"].type, units["A2"].type, units["B2"].type) == (
            "truck", "als", "bls", "chief")
        assert units["M1"].agency_id == "sfd-medic" and units["M1"].station_id == "HMC"
        assert sum(u.type == "engine" for u in units.values()) == 32
        assert "E90" not in units      # a reserve


# -- San Francisco --------------------------------------------------------------------------

@pytest.fixture
def san_francisco(shared, tmp_path):
    return load_manifest(sf_manifest(tmp_path))


@pytest.mark.realdata
class TestSanFrancisco:
    def test_the_ten_historical_sfpd_districts_load(self, san_francisco):
        assert sorted(d.district_id for d in san_francisco.districts.for_agency("sfpd")) == [
            "BAYVIEW", "CENTRAL", "INGLESIDE", "MISSION", "NORTHERN", "PARK", "RICHMOND", "SOUTHERN",
            "TARAVAL", "TENDERLOIN"]

    def test_fire_stations_lie_in_their_police_districts(self, san_francisco):
        stations = {s.id: s for s in san_francisco.stations}
        assert len(stations) == 42

        def police(station_id):
            return [d.district_id for d in san_francisco.districts.at(stations[station_id].location)
                    if d.agency_id == "sfpd"]
        assert police("1") == ["SOUTHERN"]      # 676 Howard St
        assert police("15") == ["INGLESIDE"]    # 1000 Ocean Ave

    def test_most_of_the_weeks_units_are_fielded(self, san_francisco):
        sffd = [u for u in san_francisco.units if u.agency_id in ("sffd", "sffd-ems")]
        assert 100 < len(sffd) < SFFD_DISTINCT_UNITS
        units = {u.id: u for u in san_francisco.units}
        assert (units["E01"].station_id, units["T15"].station_id) == ("1", "15")
        assert units["55"].type == "als" and units["55"].agency_id == "sffd-ems"
        assert units["E35"].station_id is None and units["E35"].home.lat == pytest.approx(37.7902, abs=1e-4)

    def test_police_districts_agree_with_the_2013_incident_labels(self, san_francisco, shared):
        with (shared / "sf" / "sfpd_incidents_2013_12.csv").open(encoding="utf-8-sig", newline="") as f:
            rows = list(csv.DictReader(f))
        agree = sum(r["PdDistrict"] in {d.district_id for d in san_francisco.districts.at(
            LatLon(float(r["lat"]), float(r["lng"]))) if d.agency_id == "sfpd"} for r in rows)
        assert len(rows) == 9030 and agree >= 8800     # PROVENANCE: 97.5 % agree

    def test_a_broken_real_manifest_names_the_problem(self, shared, tmp_path):
        path = sf_manifest(tmp_path)
        path.write_text(path.read_text().replace('district_id = "district"', 'district_id = "precinct"', 1))
        with pytest.raises(ValueError, match="sfpd_districts_historical.geojson: feature 0 has no 'precinct'"):
            load_manifest(path)
