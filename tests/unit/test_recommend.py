"""Recommendations: nearest by ETA, each unit once, specific lines first, mutual aid, shortfall,
coverage cost, and exactness against brute force (the fleet index and a plain list agree)."""

import math

from hypothesis import given, settings
from hypothesis import strategies as hs
from shapely.geometry import box

from agencies.city import City
from agencies.jurisdiction import Jurisdiction
from agencies.model import Agency, AgencyKind, Station
from agencies.plans import PlanLine, ResponsePlan, load_plans
from agencies.recommend import Candidate, CandidateList, duration_text, recommend
from geo import (
    District,
    DistrictIndex,
    FleetIndex,
    LatLon,
    StraightLineTravel,
    haversine_m,
)

PLANS = load_plans()
FIRE, EMS = AgencyKind.FIRE, AgencyKind.EMS
# Two fire departments side by side (west: fd, first-due areas 1 and 2; east: fd2), one EMS citywide.
CITY = City(
    "Two towns",
    (Agency("fd", "West Fire", FIRE), Agency("fd2", "East Fire", FIRE), Agency("ems", "County EMS", EMS)),
    (Station("1", "fd", "Station 1", LatLon(37.75, -122.49)), Station("2", "fd", "Station 2", LatLon(37.75, -122.46)),
     Station("9", "fd2", "Station 9", LatLon(37.75, -122.41))),
    DistrictIndex([District("fd", "1", "First due 1", box(-122.50, 37.70, -122.475, 37.80)),
                   District("fd", "2", "First due 2", box(-122.475, 37.70, -122.45, 37.80)),
                   District("fd2", "9", "East town", box(-122.45, 37.70, -122.40, 37.80))]),
    (),
)
WHERE = LatLon(37.75, -122.485)   # in first-due area 1
TRAVEL = StraightLineTravel(road_factor=1.3, speeds_kmh={"engine": 45, "truck": 40, "als": 50, "bls": 50})
JURISDICTION = Jurisdiction(CITY)


def unit(unit_id, agency, unit_type, lat, lon, station=None):
    return Candidate(unit_id, agency, unit_type, station, LatLon(lat, lon),
                     frozenset(PLANS.unit_type(unit_type).capabilities))


def plan(*lines):
    return ResponsePlan(tuple(PlanLine(kind, capability, count) for kind, capability, count in lines))


def run(units, *lines, where=WHERE, travel=TRAVEL, **kw):
    p = plan(*lines)
    responsible = JURISDICTION.responsible(where, p.kinds())
    providers = {line.capability: PLANS.providers(line.capability) for line in p.lines}
    return recommend(p, where, responsible, CandidateList(units), travel, JURISDICTION, providers, **kw)


def picked(result):
    return {line.capability: [p.unit_id for p in line.picks] for line in result.lines}


def test_fills_each_line_nearest_first_with_a_reason_naming_distance_eta_and_first_due_station():
    units = [unit("E1", "fd", "engine", 37.75, -122.49, "1"), unit("E2", "fd", "engine", 37.75, -122.46, "2"),
             unit("E3", "fd", "engine", 37.76, -122.47, "2")]
    result = run(units, (FIRE, "engine", 2))
    assert picked(result) == {"engine": ["E1", "E3"]}
    first = result.lines[0].picks[0]
    assert first.reason == f"E1: {first.distance_m:.0f} m, ETA {duration_text(first.eta_s)}, first-due station 1"
    assert math.isclose(first.eta_s, first.distance_m * 1.3 / (45 / 3.6))
    assert result.lines[0].picks[1].reason.endswith("station 2") and result.shortfall == []


def test_ranks_by_eta_not_distance_a_faster_unit_farther_away_wins():
    fast = StraightLineTravel(road_factor=1.3, speeds_kmh={"als": 90, "bls": 30})
    units = [unit("B1", "ems", "bls", 37.75, -122.480, None),     # ~440 m, slow
             unit("M1", "ems", "als", 37.75, -122.475, None)]     # ~880 m, three times as fast
    result = run(units, (EMS, "bls", 1), travel=fast)
    assert picked(result) == {"bls": ["M1"]}


def test_a_unit_in_quarters_pays_its_turnout_time_so_one_already_rolling_may_beat_it():
    home = unit("E1", "fd", "engine", 37.75, -122.49, "1")                       # ~440 m, in its station
    rolling = unit("E2", "fd", "engine", 37.75, -122.478, "2")                   # ~620 m, on the road
    home = Candidate(*[getattr(home, f) for f in ("unit_id", "agency_id", "unit_type", "station_id",
                                                  "location", "capabilities")], in_quarters=True)
    result = run([home, rolling], (FIRE, "engine", 2), turnout_s={"engine": 80})
    first, second = result.lines[0].picks
    assert (first.unit_id, second.unit_id) == ("E2", "E1")
    assert math.isclose(second.eta_s, 80 + TRAVEL.eta_s(home.location, WHERE, "engine"))
    assert "incl. 1 min 20 s turnout" in second.reason and "turnout" not in first.reason


def test_never_one_unit_twice_and_specific_lines_go_first():
    # the medic is nearest and could fill both lines; the ALS line (only medics) takes it first
    units = [unit("M1", "ems", "als", 37.75, -122.486), unit("A1", "ems", "bls", 37.75, -122.46)]
    result = run(units, (EMS, "als", 1), (EMS, "bls", 1))
    assert picked(result) == {"als": ["M1"], "bls": ["A1"]}
    assert len({p.unit_id for p in result.picks}) == len(result.picks)


def test_when_the_responsible_agency_is_short_mutual_aid_fills_in_flagged_and_explained():
    units = [unit("E1", "fd", "engine", 37.75, -122.49, "1"), unit("E9", "fd2", "engine", 37.75, -122.41, "9"),
             unit("M1", "ems", "als", 37.75, -122.486)]   # an EMS unit never fills a fire line
    result = run(units, (FIRE, "engine", 2))
    first, second = result.lines[0].picks
    assert (first.unit_id, first.mutual_aid) == ("E1", False)
    assert (second.unit_id, second.mutual_aid) == ("E9", True)
    assert "mutual aid from East Fire (West Fire has no engine available)" in second.reason


def test_a_shortfall_is_reported_line_by_line():
    result = run([unit("E1", "fd", "engine", 37.75, -122.49, "1")], (FIRE, "engine", 3), (FIRE, "truck", 1))
    assert result.shortfall == [{"kind": "fire", "capability": "engine", "missing": 2},
                                {"kind": "fire", "capability": "truck", "missing": 1}]
    assert result.to_json()["lines"][0]["short"] == 2


def test_units_already_on_the_incident_count_and_excluded_units_are_skipped():
    units = [unit("E1", "fd", "engine", 37.75, -122.49, "1"), unit("E2", "fd", "engine", 37.75, -122.46, "2")]
    result = run(units, (FIRE, "engine", 2), already=[("fd", frozenset({"engine", "fire_suppression"}))],
                 exclude=["E1"])
    assert picked(result) == {"engine": ["E2"]} and result.lines[0].already == 1


def test_coverage_cost_names_districts_left_without_the_capability():
    lone = [unit("E1", "fd", "engine", 37.75, -122.49, "1"), unit("E2", "fd", "engine", 37.75, -122.46, "2")]
    cost = run(lone, (FIRE, "engine", 1)).coverage_cost
    assert cost == ({"agency_id": "fd", "district_id": "1", "district_name": "First due 1", "capability": "engine",
                     "left_by": ["E1"]},)
    backed_up = lone + [unit("E4", "fd", "engine", 37.72, -122.495, "1")]
    assert run(backed_up, (FIRE, "engine", 1)).coverage_cost == ()


def test_outside_every_district_the_nearest_one_answers_and_the_reason_says_so():
    far = LatLon(37.75, -122.52)   # ~1.8 km west of the west town
    result = run([unit("E1", "fd", "engine", 37.75, -122.49, "1")], (FIRE, "engine", 1), where=far)
    [resp] = result.responsible
    assert resp.agency_ids == ("fd",) and resp.district.district_id == "1"
    assert 1700 < resp.outside_m < 1900
    assert "outside the nearest district (First due 1)" in result.picks[0].reason


UNIT_TYPES = ["engine", "truck", "als", "bls", "rescue"]
AGENCY_OF = {"engine": "fd", "truck": "fd", "rescue": "fd", "als": "ems", "bls": "ems"}
fleet_units = hs.lists(hs.tuples(hs.sampled_from(UNIT_TYPES), hs.floats(37.70, 37.80), hs.floats(-122.50, -122.40),
                                 hs.booleans(), hs.booleans()), max_size=40)
TURNOUT = {"engine": 80.0, "truck": 80.0, "rescue": 80.0, "als": 60.0}


@settings(max_examples=150, deadline=None)
@given(fleet_units, hs.floats(37.70, 37.80), hs.floats(-122.50, -122.40))
def test_the_fleet_index_and_brute_force_agree_and_the_considered_units_rederive_the_same_answer(rows, lat, lon):
    units = [Candidate(f"U{n}", "fd2" if east and AGENCY_OF[t] == "fd" else AGENCY_OF[t], t, None, LatLon(a, o),
                       frozenset(PLANS.unit_type(t).capabilities), in_quarters)
             for n, (t, a, o, east, in_quarters) in enumerate(rows)]
    index = FleetIndex(cell_m=700)
    for u in units:
        index.put(u.unit_id, u.location, [*u.capabilities, *(f"{u.agency_id}/{c}" for c in u.capabilities)])
    by_id = {u.unit_id: u for u in units}

    class Indexed:
        def nearest(self, capability, point, agency_id=None):
            tag = capability if agency_id is None else f"{agency_id}/{capability}"
            return ((m, by_id[i]) for m, i in index.iter_nearest(tag, point))

    where = LatLon(lat, lon)
    lines = ((FIRE, "engine", 3), (FIRE, "rescue", 1), (FIRE, "truck", 1), (EMS, "als", 1), (EMS, "bls", 2))
    p = plan(*lines)
    responsible = JURISDICTION.responsible(where, p.kinds())
    spec = {line.capability: PLANS.providers(line.capability) for line in p.lines}
    live = recommend(p, where, responsible, Indexed(), TRAVEL, JURISDICTION, spec, turnout_s=TURNOUT)
    brute = recommend(p, where, responsible, CandidateList(units), TRAVEL, JURISDICTION, spec, turnout_s=TURNOUT)
    again = recommend(p, where, responsible, CandidateList(live.considered), TRAVEL, JURISDICTION, spec,
                      turnout_s=TURNOUT)
    assert live.to_json() == brute.to_json() == again.to_json()
    # and each single line is the true optimum by (ETA, unit id) among eligible units
    engines = sorted((TRAVEL.eta_s(u.location, where, u.unit_type) + (80 if u.in_quarters else 0), u.unit_id)
                     for u in units
                     if "engine" in u.capabilities and u.agency_id == responsible[1].agency_ids[0])
    own = [p.unit_id for p in live.lines[2].picks if not p.mutual_aid]
    assert own == [i for _, i in engines[:3]]
    for pick in live.picks:
        assert math.isclose(pick.distance_m, haversine_m(by_id[pick.unit_id].location, where))


def test_units_already_on_scene_are_matched_to_lines_whatever_order_they_are_listed_in():
    both, medic_only = ("ems", frozenset({"als", "transport"})), ("ems", frozenset({"als"}))
    for already in ([both, medic_only], [medic_only, both]):
        result = run([], (EMS, "als", 1), (EMS, "transport", 1), already=already)
        assert [line.already for line in result.lines] == [1, 1] and result.shortfall == []


def test_a_call_far_outside_the_city_reads_only_the_units_it_needs_not_the_whole_fleet():
    engines = [unit(f"E{n}", "fd", "engine", 37.70 + 0.001 * n, -122.49, "1") for n in range(100)]
    null_island = LatLon(0.0, 0.0)     # a failed geocode, 13,000 km away
    result = run(engines, (FIRE, "engine", 1), where=null_island)
    nearest = min(engines, key=lambda u: haversine_m(u.location, null_island))
    assert [p.unit_id for p in result.picks] == [nearest.unit_id] and len(result.considered) <= 3


def test_mutual_aid_reads_only_agencies_of_the_same_kind():
    # fd has no engine free; the only other fire agency is fd2: an EMS unit never enters the search
    result = run([unit("E9", "fd2", "engine", 37.75, -122.41, "9"), unit("M1", "ems", "als", 37.75, -122.486)],
                 (FIRE, "engine", 1))
    assert [(p.unit_id, p.mutual_aid) for p in result.picks] == [("E9", True)]
    assert {u.unit_id for u in result.considered} == {"E9"}
