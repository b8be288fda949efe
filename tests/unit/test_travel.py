"""StraightLineTravel: ETA = great-circle metres x road factor / speed, with an exact lower bound."""

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from geo import LatLon, StraightLineTravel, TravelModel, haversine_m

STATION = LatLon(52.5200, 13.4050)
INCIDENT = LatLon(52.5300, 13.4500)
SPEEDS = {"engine": 50.0, "ambulance": 70, "patrol": 60.0}


def test_eta_is_distance_times_road_factor_over_speed_of_the_unit_type():
    travel = StraightLineTravel(road_factor=1.5, speeds_kmh=SPEEDS, default_speed_kmh=30.0)
    metres = haversine_m(STATION, INCIDENT)
    assert travel.eta_s(STATION, INCIDENT, "ambulance") == pytest.approx(metres * 1.5 / (70 / 3.6))
    assert travel.eta_s(STATION, INCIDENT, "engine") == pytest.approx(metres * 1.5 * 3.6 / 50)


def test_ten_km_at_60_kmh_with_no_detour_is_ten_minutes():
    travel = StraightLineTravel(road_factor=1.0, default_speed_kmh=60.0)
    ten_km_north = LatLon(STATION.lat + math.degrees(10_000 / 6_371_008.8), STATION.lon)
    assert travel.eta_s(STATION, ten_km_north, "anything") == pytest.approx(600.0)


def test_an_unknown_unit_type_travels_at_the_default_speed():
    travel = StraightLineTravel(speeds_kmh=SPEEDS, default_speed_kmh=35.0)
    assert travel.speed_kmh("hovercraft") == 35.0
    assert travel.speed_kmh("ambulance") == 70.0
    assert travel.eta_s(STATION, INCIDENT, "hovercraft") == travel.eta_s(STATION, INCIDENT, "nope")


def test_the_defaults_are_a_road_factor_of_1_3_and_40_kmh():
    travel = StraightLineTravel()
    assert (travel.road_factor, travel.default_speed_kmh, dict(travel.speeds_kmh)) == (1.3, 40.0, {})
    assert travel.eta_s(STATION, STATION, "engine") == 0.0


@settings(max_examples=200, deadline=None)
@given(
    speeds=st.dictionaries(st.sampled_from(["engine", "ambulance", "patrol", "ladder"]),
                           st.floats(1, 300), max_size=4),
    default=st.floats(1, 300),
    road_factor=st.floats(1, 3),
    a=st.tuples(st.floats(-90, 90), st.floats(-180, 180)),
    b=st.tuples(st.floats(-90, 90), st.floats(-180, 180)),
)
def test_min_eta_is_a_lower_bound_for_every_unit_type_to_the_last_bit(speeds, default, road_factor, a, b):
    travel = StraightLineTravel(road_factor, speeds, default)
    origin, destination = LatLon(*a), LatLon(*b)
    bound = travel.min_eta_s(haversine_m(origin, destination))
    etas = [travel.eta_s(origin, destination, t) for t in [*speeds, "unlisted"]]
    assert all(bound <= eta for eta in etas)
    assert bound == min(etas)  # and it is tight: the fastest type arrives exactly then


def test_min_eta_uses_the_fastest_speed_including_the_default():
    assert StraightLineTravel(1.0, {"slow": 10.0}, 72.0).min_eta_s(1000.0) == pytest.approx(50.0)
    assert StraightLineTravel(1.0, {"fast": 72.0}, 10.0).min_eta_s(1000.0) == pytest.approx(50.0)


def test_it_is_a_travel_model():
    assert isinstance(StraightLineTravel(), TravelModel)


def test_describe_is_json_safe_with_speeds_sorted_and_from_description_builds_the_same_model():
    travel = StraightLineTravel(1.4, SPEEDS, 45)
    described = travel.describe()
    assert described == {"model": "straight_line", "road_factor": 1.4, "default_speed_kmh": 45.0,
                         "speeds_kmh": {"ambulance": 70.0, "engine": 50.0, "patrol": 60.0}}
    assert list(described["speeds_kmh"]) == ["ambulance", "engine", "patrol"]
    again = StraightLineTravel.from_description(json.loads(json.dumps(described)))
    assert again == travel and hash(again) == hash(travel)
    assert again.eta_s(STATION, INCIDENT, "patrol") == travel.eta_s(STATION, INCIDENT, "patrol")


def test_the_model_cannot_be_changed_after_it_is_built_not_even_through_the_dict_it_was_given():
    speeds = {"engine": 50.0}
    travel = StraightLineTravel(speeds_kmh=speeds)
    speeds["engine"] = 500.0
    assert travel.speed_kmh("engine") == 50.0
    with pytest.raises(TypeError):
        travel.speeds_kmh["engine"] = 1.0  # type: ignore[index]
    with pytest.raises(AttributeError):
        travel.road_factor = 1.0  # type: ignore[misc]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"road_factor": 0.9}, "road_factor must be a finite number >= 1, got 0.9"),
        ({"road_factor": math.nan}, "road_factor must be a finite number >= 1, got nan"),
        ({"road_factor": math.inf}, "road_factor must be a finite number >= 1, got inf"),
        ({"road_factor": "1.3"}, "road_factor must be a finite number >= 1, got '1.3'"),
        ({"road_factor": True}, "road_factor must be a finite number >= 1, got True"),
        ({"default_speed_kmh": 0}, "default_speed_kmh must be a finite number > 0, got 0"),
        ({"default_speed_kmh": -40.0}, "default_speed_kmh must be a finite number > 0, got -40.0"),
        ({"speeds_kmh": {"engine": 0.0}}, "the speed of unit type 'engine' must be a finite number > 0, got 0.0"),
        ({"speeds_kmh": {"engine": math.inf}}, "the speed of unit type 'engine' must be a finite number > 0"),
        ({"speeds_kmh": {"engine": None}}, "the speed of unit type 'engine' must be a finite number > 0, got None"),
        ({"speeds_kmh": {"": 50.0}}, "speeds_kmh keys must be non-empty unit type ids, got ''"),
        ({"speeds_kmh": {7: 50.0}}, "speeds_kmh keys must be non-empty unit type ids, got 7"),
        ({"speeds_kmh": [("engine", 50.0)]}, "speeds_kmh must map unit type ids to km/h, got list"),
    ],
)
def test_bad_parameters_are_refused_with_a_message_that_says_what_is_wrong(kwargs, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        StraightLineTravel(**kwargs)


@pytest.mark.parametrize(
    "description, message",
    [
        ([1.3, 40.0], "a travel model description must be an object, got list"),
        ({"model": "road_network"}, "not a straight-line travel model description: model is 'road_network'"),
        ({"model": "straight_line", "road_factor": 1.3, "default_speed_kmh": 40.0},
         "missing: speeds_kmh; unknown: -"),
        ({"model": "straight_line", "road_factor": 1.3, "default_speed_kmh": 40.0, "speeds_kmh": {},
          "speed_limit": 50}, "missing: -; unknown: speed_limit"),
        ({"model": "straight_line", "road_factor": 0.5, "default_speed_kmh": 40.0, "speeds_kmh": {}},
         "road_factor must be a finite number >= 1, got 0.5"),
    ],
)
def test_a_bad_description_is_refused_rather_than_guessed_at(description, message):
    with pytest.raises(ValueError, match=message):
        StraightLineTravel.from_description(description)
