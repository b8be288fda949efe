"""What a 2xx acknowledged survives a restart; start-up resumes from the latest snapshot."""

import json
from dataclasses import replace

from fastapi.testclient import TestClient

from coordinator import state as st
from coordinator.app import create_app

from ..builders import IN_WEST, tiny_city


def test_a_restarted_node_serves_exactly_the_state_it_acknowledged(settings, clock, token):
    settings = replace(settings, rate_intake_per_min=0)  # 60 reports at one instant of the test clock
    headers = token("dispatcher")
    with TestClient(create_app(settings, clock=clock, city=tiny_city())) as client:
        ids = [client.post("/v1/incidents", json={"type": "cardiac_arrest", "location": IN_WEST.to_json()},
                           headers=headers).json()["id"] for _ in range(60)]
        client.post(f"/v1/incidents/{ids[0]}/assignments", json={"unit_ids": ["M1"]}, headers=headers)
        before = client.app.state.node.state
        snapshot = client.app.state.node.log.latest_snapshot()
    assert snapshot is not None and 0 < snapshot[0] < before.seq  # a snapshot, then more events after it
    assert st.from_doc(json.loads(snapshot[1])).seq == snapshot[0]

    with TestClient(create_app(settings, clock=clock)) as client:  # no city given: the stored one is used
        after = client.app.state.node.state
        assert after == before
        assert client.get(f"/v1/incidents/{ids[0]}", headers=headers).json()["assignments"][0]["unit_id"] == "M1"
        assert client.get("/v1/units", headers=headers).json()["total"] == len(tiny_city().units)
        assert client.get("/v1/events/verify", headers=headers).json()["ok"]


def test_the_embedded_default_generates_the_demo_city(tmp_path, clock):
    from coordinator.settings import Settings
    with TestClient(create_app(Settings(data_dir=tmp_path), clock=clock)) as client:
        node = client.app.state.node
        assert node.catalog.city.name.startswith("Demo")
        assert len(node.state.units) == len(node.catalog.city.units) >= 140
        assert {a.kind for a in node.catalog.city.agencies} == {"police", "fire", "ems"}
