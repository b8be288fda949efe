"""Real San Francisco calls through the whole system.

The first day of the city-wide week (New Year's Eve 2016) is replayed through the HTTP
API in time order: each call reported at its real location and time (local Pacific time,
converted to UTC), its real units assigned at their dispatch times, then moved through
en route / on scene / transporting / at hospital / available at their real times, and
the call closed after its last unit cleared. Real data disagrees with a strict lifecycle
(timestamps that run backwards, units re-sent before they cleared): those requests must
be refused with a 4xx and a reason, never a 500, and the log must stay whole.
"""

import csv
from collections import Counter, defaultdict
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient

from coordinator import state as st
from coordinator.app import create_app
from coordinator.importer import load_manifest
from coordinator.settings import Settings

from ..builders import Clock
from ..realcity import SF_CALLS, require_shared_data, sf_manifest

pytestmark = pytest.mark.realdata
PACIFIC = ZoneInfo("America/Los_Angeles")
CALL_TYPES = {
    "Medical Incident": "medical_emergency", "Alarms": "fire_alarm", "Structure Fire": "structure_fire",
    "Traffic Collision": "traffic_collision_injury", "Outside Fire": "brush_fire", "Vehicle Fire": "vehicle_fire",
    "Water Rescue": "water_rescue", "Gas Leak (Natural and LP Gases)": "gas_leak", "HazMat": "hazmat",
    "Fuel Spill": "hazmat", "Industrial Accidents": "technical_rescue", "Elevator / Escalator Rescue": "technical_rescue",
    "Confined Space / Structure Collapse": "technical_rescue", "Electrical Hazard": "electrical_hazard",
    "Odor (Strange / Unknown)": "smoke_odor_investigation", "Smoke Investigation (Outside)": "smoke_odor_investigation",
    "Citizen Assist / Service Call": "public_assist", "Other": "public_assist",
}
STEPS = [("Dispatch DtTm", "assign"), ("Response DtTm", "en_route"), ("On Scene DtTm", "on_scene"),
         ("Transport DtTm", "transporting"), ("Hospital DtTm", "at_hospital"), ("Available DtTm", "available")]
ORDER = {"report": 0, "assign": 1, "en_route": 2, "on_scene": 3, "transporting": 4, "at_hospital": 5,
         "available": 6, "close": 7}


def local(text: str) -> datetime | None:
    if not text:
        return None
    return datetime.strptime(text, "%m/%d/%Y %I:%M:%S %p").replace(tzinfo=PACIFIC).astimezone(timezone.utc)


def first_day_actions(data) -> tuple[list[tuple], dict]:
    calls: dict[str, list[dict]] = defaultdict(list)
    with (data / "sf" / SF_CALLS).open(encoding="utf-8-sig", newline="") as f:
        for row in csv.DictReader(f):
            calls[row["Call Number"]].append(row)
    start = min(local(rows[0]["Received DtTm"]) for rows in calls.values())
    actions, facts = [], {}
    for number, rows in calls.items():
        received = local(rows[0]["Received DtTm"])
        if received >= start + timedelta(days=1):
            continue
        lat, lon = (float(x) for x in rows[0]["Location"].strip("()").split(","))
        facts[number] = {"type": CALL_TYPES[rows[0]["Call Type"]], "lat": lat, "lon": lon, "at": received,
                         "address": rows[0]["Address"]}
        actions.append((received, ORDER["report"], number, None, "report"))
        last = received
        for row in sorted(rows, key=lambda r: int(r["Unit sequence in call dispatch"] or 0)):
            for column, step in STEPS:
                when = local(row[column])
                if when is not None:
                    actions.append((when, ORDER[step], number, row["Unit ID"], step))
                    last = max(last, when)
        actions.append((last, ORDER["close"], number, None, "close"))
    actions.sort(key=lambda a: (a[0], a[1], a[2], a[3] or ""))
    return actions, facts


def test_a_real_day_of_san_francisco_calls(tmp_path):
    data = require_shared_data()
    (tmp_path / "city").mkdir()
    city = load_manifest(sf_manifest(tmp_path / "city"))
    actions, facts = first_day_actions(data)
    clock = Clock(actions[0][0])
    settings = Settings(data_dir=tmp_path / "data", snapshot_every=500)
    outcomes: Counter = Counter()
    incident_of: dict[str, str] = {}
    assignment_of: dict[tuple[str, str], str] = {}
    with TestClient(create_app(settings, clock=clock, city=city)) as client:
        from coordinator.auth import issue
        from coordinator.settings import resolve_secret
        headers = {"Authorization": "Bearer " + issue(resolve_secret(settings), "dispatcher", "replay",
                                                       int(actions[0][0].timestamp()))}
        for when, _, number, unit, step in actions:
            clock.now = max(clock.now, when)
            if step == "report":
                f = facts[number]
                response = client.post("/v1/incidents", headers=headers, json={
                    "type": f["type"], "location": {"lat": f["lat"], "lon": f["lon"]}, "address": f["address"],
                    "reported_at": f["at"].isoformat()})
                if response.status_code == 201:
                    incident_of[number] = response.json()["id"]
            elif number not in incident_of:
                continue
            elif step == "assign":
                response = client.post(f"/v1/incidents/{incident_of[number]}/assignments", headers=headers,
                                       json={"unit_ids": [unit]})
                if response.status_code == 201:
                    assignment_of[number, unit] = response.json()["assignments"][0]["id"]
            elif step == "close":
                response = client.post(f"/v1/incidents/{incident_of[number]}/close", headers=headers)
            else:
                if (number, unit) not in assignment_of:
                    continue  # the unit was never ours on this call: its later statuses are not either
                response = client.put(f"/v1/units/{unit}/status", headers=headers, json={"status": step})
            outcomes[step, response.status_code] += 1
            assert response.status_code < 500, (step, number, unit, response.text)
            assert response.status_code in (200, 201) or response.json()["message"]

        node = client.app.state.node
        reports = sum(n for (step, code), n in outcomes.items() if step == "report")
        assert outcomes["report", 201] == reports == len(facts) > 400  # every real call is taken in
        assigned = outcomes["assign", 201] / sum(n for (s, _), n in outcomes.items() if s == "assign")
        assert assigned > 0.99, outcomes  # the rest: units not in the imported fleet (404)
        refused = sum(n for (s, code), n in outcomes.items() if s not in ("report", "assign") and code == 422)
        assert refused < 10, outcomes  # real timestamps that run backwards (hospital before transport)
        assert outcomes["close", 200] == len(incident_of)
        assert st.fold(node.log.iter_all()) == node.state
        assert node.log.verify().ok
        evening = local("12/31/2016 09:00:00 PM").isoformat()
        then = client.get("/v1/state", params={"at": evening, "status": "open"}, headers=headers).json()
        assert 0 < len(then["incidents"]) < 100
        busy = [u for u in then["units"] if u["status"] != "available"]
        assert busy and all(u["incident_id"] for u in busy if u["status"] != "out_of_service")
