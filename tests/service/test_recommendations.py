"""Recommendations through the API: at intake, recomputed now, following moves and status changes,
surviving a restart, re-derivable from the log, auto-dispatch by policy, duplicates flagged."""

import dataclasses

import pytest
from fastapi.testclient import TestClient

from coordinator.app import create_app
from coordinator.handlers import rederive
from coordinator.settings import from_env
from geo import LatLon

from ..builders import IN_EAST, IN_WEST, tiny_city
from .test_api import assign, report

NEAR_WEST = LatLon(IN_WEST.lat, IN_WEST.lon + 0.002)   # ~180 m east of IN_WEST


def units_for(recommendation, capability):
    [line] = [x for x in recommendation["lines"] if x["capability"] == capability]
    return [u["unit_id"] for u in line["units"]]


def test_the_report_answers_with_its_recommendation_and_reasons(client, dispatcher):
    incident = report(client, dispatcher)
    rec = incident["recommendation"]
    assert rec["trigger"] == "intake" and rec["shortfall"] == []
    assert units_for(rec, "engine") == ["E1", "E2", "E3"] and units_for(rec, "truck") == ["T1"]
    engine = rec["lines"][[x["capability"] for x in rec["lines"]].index("engine")]["units"][0]
    assert engine["reason"] == "E1: 1.8 km, ETA 4 min 23 s incl. 1 min 20 s turnout, first-due station 1"
    assert engine["eta_s"] > 0 and engine["distance_m"] == pytest.approx(1758, abs=2)
    assert [r["kind"] for r in rec["responsible"]] == ["ems", "fire", "police"]


def test_get_recommendation_recomputes_now_counting_units_already_assigned(client, dispatcher):
    incident = report(client, dispatcher)
    assign(client, dispatcher, incident["id"], "E1", "E2")
    now = client.get(f"/v1/incidents/{incident['id']}/recommendation", headers=dispatcher).json()
    [engine] = [x for x in now["lines"] if x["capability"] == "engine"]
    assert engine["already_assigned"] == 2 and [u["unit_id"] for u in engine["units"]] == ["E3"]
    assert now["incident_id"] == incident["id"] and now["seq"] > 0


def test_a_position_report_and_a_status_change_move_the_recommendation(client, dispatcher, token):
    admin = token("admin")
    moved = client.put("/v1/units/E3/position", json=NEAR_WEST.to_json(), headers=admin)
    assert moved.status_code == 200, moved.text
    client.put("/v1/units/E1/status", json={"status": "out_of_service"}, headers=admin)
    incident = report(client, dispatcher, kind="vehicle_fire")
    assert units_for(incident["recommendation"], "engine") == ["E3"]
    line = incident["recommendation"]["lines"][0]
    assert line["capability"] == "engine" and line["units"][0]["distance_m"] < 250
    assert "turnout" not in line["units"][0]["reason"]       # out of quarters: already rolling
    client.put("/v1/units/E1/status", json={"status": "available"}, headers=admin)
    again = client.get(f"/v1/incidents/{incident['id']}/recommendation", headers=dispatcher).json()
    assert units_for(again, "engine") == ["E3"]      # still nearer than E1 at the station


def test_a_plan_bigger_than_the_fleet_reports_its_shortfall_line_by_line(client, dispatcher):
    incident = report(client, dispatcher, kind="mass_casualty")
    short = {(s["kind"], s["capability"]): s["missing"] for s in incident["recommendation"]["shortfall"]}
    assert ("fire", "engine") not in short and short[("fire", "chief")] == 1
    assert short[("ems", "als")] == 2 and short[("police", "patrol")] == 2    # the tiny city has 2 medics, 2 patrols
    assert short[("ems", "bls")] == 2 and short[("fire", "rescue")] == 1


def test_closed_unknown_and_out_of_scope_incidents(client, dispatcher, token):
    incident = report(client, dispatcher)
    client.post(f"/v1/incidents/{incident['id']}/close", headers=dispatcher)
    closed = client.get(f"/v1/incidents/{incident['id']}/recommendation", headers=dispatcher)
    assert closed.status_code == 409 and "closed" in closed.json()["message"]
    assert client.get("/v1/incidents/nope/recommendation", headers=dispatcher).status_code == 404
    robbery = report(client, dispatcher, kind="robbery_in_progress", where=IN_EAST)
    fire = token("dispatcher", agency="fd")
    assert client.get(f"/v1/incidents/{robbery['id']}/recommendation", headers=fire).status_code == 403


def test_every_logged_recommendation_rederives_from_its_own_inputs(client, dispatcher, token):
    admin = token("admin")
    for n in range(6):
        client.put("/v1/units/E2/position", json={"lat": IN_WEST.lat, "lon": IN_WEST.lon + 0.01 * n}, headers=admin)
        first = report(client, dispatcher, kind="structure_fire" if n % 2 else "cardiac_arrest")
        if n % 3 == 0:
            picks = [u["unit_id"] for line in first["recommendation"]["lines"] for u in line["units"]]
            assign(client, dispatcher, first["id"], *picks[:2])
    events = client.get("/v1/events", params={"limit": 5000}, headers=dispatcher).json()["events"]
    made = [e for e in events if e["type"] == "RecommendationMade"]
    assert len(made) == 6
    catalog = client.app.state.node.catalog
    for event in made:
        assert rederive(event["data"], catalog).to_json()["lines"] == event["data"]["lines"]


def test_after_a_restart_the_fleet_index_holds_the_last_positions_and_statuses(settings, clock, token):
    admin, headers = token("admin"), token("dispatcher")
    with TestClient(create_app(settings, clock=clock, city=tiny_city())) as client:
        client.put("/v1/units/E3/position", json=NEAR_WEST.to_json(), headers=admin)
        client.put("/v1/units/E1/status", json={"status": "out_of_service"}, headers=admin)
    with TestClient(create_app(settings, clock=clock)) as client:
        incident = report(client, headers, kind="vehicle_fire")
        assert units_for(incident["recommendation"], "engine") == ["E3"]


def test_auto_dispatch_by_policy_assigns_the_recommended_units_at_intake(tmp_path, clock, token):
    settings = from_env({"CP_DATA_DIR": str(tmp_path), "CP_AUTO_DISPATCH": "cardiac_arrest:1"})
    with TestClient(create_app(settings, clock=clock, city=tiny_city())) as client:
        headers = token("dispatcher")
        urgent = report(client, headers, kind="cardiac_arrest")
        assert sorted(a["unit_id"] for a in urgent["assignments"]) == ["E1", "M1", "M2"]
        assert client.get("/v1/units/M1", headers=headers).json()["status"] == "dispatched"
        calm = report(client, headers, kind="cardiac_arrest", priority=3)
        assert calm["assignments"] == []


@pytest.mark.parametrize("value, message", [
    ("cardiac_arrest", "must read TYPE:PRIORITY"), ("cardiac_arrest:0", "priority from 1 to 5"),
    ("volcano:1", "unknown incident types: volcano"), (":2", "must read TYPE:PRIORITY"),
    ("radius:-5", "CP_DUPLICATE_RADIUS_M must be a number from 0 to 100,000"),
    ("radius:nan", "CP_DUPLICATE_RADIUS_M must be a number from 0 to 100,000"),
    ("window:1e13", "CP_DUPLICATE_WINDOW_MIN must be a number from 0 to 10,080"),
    ("cardiac_arrest:1,cardiac_arrest:5", "names 'cardiac_arrest' twice"),
    ("window:ten", "CP_DUPLICATE_WINDOW_MIN must be a number"),
])
def test_a_bad_dispatch_policy_is_refused_at_start_with_a_message(tmp_path, clock, value, message):
    name, _, raw = value.partition(":") if value.startswith(("radius:", "window:")) else ("", "", "")
    env = {"CP_DATA_DIR": str(tmp_path)}
    if name:
        env["CP_DUPLICATE_RADIUS_M" if name == "radius" else "CP_DUPLICATE_WINDOW_MIN"] = raw
    else:
        env["CP_AUTO_DISPATCH"] = value
    with pytest.raises(ValueError, match=message):
        settings = from_env(env)
        with TestClient(create_app(settings, clock=clock, city=tiny_city())):
            pass


def test_a_second_report_nearby_is_flagged_as_a_possible_duplicate(client, dispatcher):
    first = report(client, dispatcher, kind="fire_alarm")
    second = report(client, dispatcher, kind="structure_fire", where=NEAR_WEST)
    assert second["possible_duplicate_of"] == [first["id"]] and first["possible_duplicate_of"] == []
    medical = report(client, dispatcher, kind="fall", where=NEAR_WEST)
    assert medical["possible_duplicate_of"] == []


def test_duplicate_radius_and_window_are_configurable(tmp_path, clock, token):
    settings = dataclasses.replace(from_env({"CP_DATA_DIR": str(tmp_path), "CP_DUPLICATE_RADIUS_M": "50",
                                             "CP_DUPLICATE_WINDOW_MIN": "5"}))
    with TestClient(create_app(settings, clock=clock, city=tiny_city())) as client:
        headers = token("dispatcher")
        report(client, headers, kind="fire_alarm")
        assert report(client, headers, kind="fire_alarm", where=NEAR_WEST)["possible_duplicate_of"] == []
        clock.advance(minutes=6)
        assert report(client, headers, kind="fire_alarm")["possible_duplicate_of"] == []


def test_a_scoped_console_never_reads_other_agencies_unit_positions_from_a_recommendation(client, dispatcher, token):
    report(client, dispatcher)
    police = token("dispatcher", agency="pd")
    events = client.get("/v1/events", params={"limit": 5000}, headers=police).json()["events"]
    [made] = [e for e in events if e["type"] == "RecommendationMade"]
    assert {u["agency_id"] for u in made["data"]["inputs"]["units"]} == {"pd"}
    assert made["redacted"] == ["data.inputs.units"]
    everything = client.get("/v1/events", params={"limit": 5000}, headers=token("commander")).json()["events"]
    [whole] = [e for e in everything if e["type"] == "RecommendationMade"]
    assert {u["agency_id"] for u in whole["data"]["inputs"]["units"]} == {"ems", "fd", "pd"} and "redacted" not in whole
