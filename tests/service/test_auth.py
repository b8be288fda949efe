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


def test_an_agency_dispatcher_may_not_change_an_incident_outside_its_scope(client, token):
    police, fire = token("dispatcher", agency="pd"), token("dispatcher", agency="fd")
    burglary = client.post("/v1/incidents", json={"type": "burglary_in_progress", "location": IN_WEST.to_json()}, headers=police).json()
    client.post(f"/v1/incidents/{burglary['id']}/assignments", json={"unit_ids": ["P1"]}, headers=police)
    head = client.get("/v1/events?limit=1", headers=police).json()["head"]
    for method, path, body in [("POST", "notes", {"text": "not ours"}), ("POST", "close", None),
                               ("POST", "assignments", {"unit_ids": ["E1"]})]:
        response = client.request(method, f"/v1/incidents/{burglary['id']}/{path}", json=body, headers=fire)
        assert response.status_code == 403 and "outside this token's scope" in response.json()["message"], path
    assert client.get("/v1/events?limit=1", headers=police).json()["head"] == head
    assert client.get("/v1/units/P1", headers=police).json()["status"] == "dispatched"


def test_two_tokens_with_one_name_in_different_agencies_do_not_share_idempotency_keys(client, token, settings, clock):
    from coordinator.auth import issue
    secret = resolve(settings)
    alice_pd = {"Authorization": "Bearer " + issue(secret, "dispatcher", "alice", int(clock().timestamp()), agency="pd")}
    alice_fd = {"Authorization": "Bearer " + issue(secret, "dispatcher", "alice", int(clock().timestamp()), agency="fd")}
    body = {"type": "structure_fire", "location": IN_WEST.to_json()}
    first = client.post("/v1/incidents", json=body, headers={**alice_pd, "Idempotency-Key": "k"}).json()
    second = client.post("/v1/incidents", json=body, headers={**alice_fd, "Idempotency-Key": "k"}).json()
    assert first["id"] != second["id"]


def resolve(settings):
    from coordinator.settings import resolve_secret
    return resolve_secret(settings)


def test_an_agency_console_still_reads_the_history_of_its_incidents_after_they_leave_the_live_picture(client, token, clock):
    fire = token("dispatcher", agency="fd")
    incident = client.post("/v1/incidents", json={"type": "fire_alarm", "location": IN_WEST.to_json()}, headers=fire).json()
    client.post(f"/v1/incidents/{incident['id']}/close", headers=fire)
    clock.advance(hours=25)
    client.post("/v1/incidents", json={"type": "fire_alarm", "location": IN_WEST.to_json()}, headers=fire)
    assert incident["id"] not in client.app.state.node.state.incidents
    seen = client.get("/v1/events", params={"limit": 5000}, headers=fire).json()["events"]
    mine = [e["type"] for e in seen if e["stream"] == f"incident/{incident['id']}"]
    assert mine == ["IncidentReported", "RecommendationMade", "IncidentClosed"]
    police = token("dispatcher", agency="pd")
    assert not [e for e in client.get("/v1/events", params={"limit": 5000}, headers=police).json()["events"]
                if e["stream"] == f"incident/{incident['id']}"]


def test_tokens_with_odd_bytes_or_oversized_subjects_are_401_not_500(client, settings, clock):
    assert client.get("/v1/incidents", headers={"Authorization": "Bearer cp1.abc.\u00e9".encode()}).status_code == 401
    import base64
    import hashlib
    import hmac
    import json
    payload = base64.urlsafe_b64encode(json.dumps({"role": "admin", "sub": "x" * 500}).encode()).rstrip(b"=").decode()
    sig = base64.urlsafe_b64encode(hmac.new(resolve(settings).encode(), f"cp1.{payload}".encode(), hashlib.sha256).digest()).rstrip(b"=").decode()
    response = client.get("/v1/incidents", headers={"Authorization": f"Bearer cp1.{payload}.{sig}"})
    assert response.status_code == 401 and "too long" in response.json()["message"]
