"""Every route but health needs a signed token; scopes decide what each token may see and do."""

import pytest

from ..builders import IN_WEST


def report(client, headers):
    response = client.post("/v1/incidents", json={"type": "structure_fire", "location": IN_WEST.to_json()}, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()["id"]


@pytest.mark.parametrize("headers,says", [
    ({}, "Authorization: Bearer"),
    ({"Authorization": "Basic dXNlcjpwYXNz"}, "Bearer <token>"),
    ({"Authorization": "Bearer not-a-token"}, "not a commandpost token"),
    ({"Authorization": "Bearer cp1.eyJyb2xlIjoiYWRtaW4iLCJzdWIiOiJtYWxsb3J5In0.forged"}, "signature does not match"),
], ids=["missing", "basic", "garbage", "forged"])
def test_requests_without_a_valid_token_are_401(client, headers, says):
    for method, path in [("GET", "/v1/incidents"), ("POST", "/v1/incidents"), ("GET", "/v1/events/verify")]:
        response = client.request(method, path, headers=headers, json={})
        assert response.status_code == 401, (path, response.text)
        assert says in response.json()["message"] and response.headers["WWW-Authenticate"] == "Bearer"


def test_an_expired_token_is_401(client, token, clock):
    headers = token("dispatcher", ttl_s=60)
    assert client.get("/v1/incidents", headers=headers).status_code == 200
    clock.advance(minutes=2)
    response = client.get("/v1/incidents", headers=headers)
    assert response.status_code == 401 and "expired" in response.json()["message"]


def test_a_token_signed_with_another_secret_is_refused(client, clock):
    from coordinator.auth import issue
    forged = issue("another-secret-entirely-0123456789", "admin", "mallory", int(clock().timestamp()))
    assert client.get("/v1/incidents", headers={"Authorization": f"Bearer {forged}"}).status_code == 401


def test_health_needs_no_token(client):
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 200
    assert client.get("/metrics").status_code == 200


def test_a_unit_acts_only_for_itself(client, dispatcher, token):
    incident_id = report(client, dispatcher)
    made = client.post(f"/v1/incidents/{incident_id}/assignments", json={"unit_ids": ["E1", "E2"]}, headers=dispatcher).json()
    e1, e2 = made["assignments"]
    crew = token("unit", unit="E1")
    assert client.post(f"/v1/assignments/{e2['id']}/ack", headers=crew).status_code == 403
    assert client.put("/v1/units/E2/status", json={"status": "en_route"}, headers=crew).status_code == 403
    assert client.put("/v1/units/E2/position", json={"lat": 37.7, "lon": -122.4}, headers=crew).status_code == 403
    assert client.post("/v1/incidents", json={"type": "structure_fire", "location": IN_WEST.to_json()}, headers=crew).status_code == 403
    assert client.post(f"/v1/incidents/{incident_id}/assignments", json={"unit_ids": ["E3"]}, headers=crew).status_code == 403
    assert client.get("/v1/units/E2", headers=crew).status_code == 403
    assert client.post(f"/v1/assignments/{e1['id']}/ack", headers=crew).status_code == 200
    assert client.put("/v1/units/E1/status", json={"status": "en_route"}, headers=crew).status_code == 200
    assert client.post(f"/v1/incidents/{incident_id}/notes", json={"text": "on our way"}, headers=crew).status_code == 201
    seen = client.get("/v1/events", params={"limit": 5000}, headers=crew).json()["events"]
    assert seen and all(e["data"].get("unit_id") == "E1" for e in seen)
    assert client.get("/v1/units", headers=crew).json()["total"] == 1
    assert client.get("/v1/events/verify", headers=crew).status_code == 403


def test_an_agency_dispatcher_sees_and_commands_its_own_agency(client, dispatcher, token):
    police = token("dispatcher", agency="pd")
    fire_only = client.post("/v1/incidents", json={"type": "fire_alarm", "location": IN_WEST.to_json()}, headers=dispatcher).json()
    robbery = client.post("/v1/incidents", json={"type": "robbery_in_progress", "location": IN_WEST.to_json()}, headers=police).json()
    listed = {i["id"] for i in client.get("/v1/incidents", headers=police).json()["incidents"]}
    assert robbery["id"] in listed and fire_only["id"] not in listed
    assert client.get(f"/v1/incidents/{fire_only['id']}", headers=police).status_code == 403
    assert {u["agency_id"] for u in client.get("/v1/units", headers=police).json()["units"]} == {"pd"}
    refused = client.post(f"/v1/incidents/{robbery['id']}/assignments", json={"unit_ids": ["E1"]}, headers=police)
    assert refused.status_code == 403 and "E1" in refused.json()["message"]
    assert client.post(f"/v1/incidents/{robbery['id']}/assignments", json={"unit_ids": ["P1"]}, headers=police).status_code == 201


def test_commanders_see_everything(client, dispatcher, token):
    incident_id = report(client, dispatcher)
    commander = token("commander")
    assert client.get(f"/v1/incidents/{incident_id}", headers=commander).status_code == 200
    assert client.get("/v1/units", headers=commander).json()["total"] == 9
