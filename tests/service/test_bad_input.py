"""Bad input gets a 4xx with a message a person understands, never a 500, and changes nothing."""

import json

import pytest

GOOD = {"type": "structure_fire", "location": {"lat": 37.75, "lon": -122.47}}


def head(client, headers):
    return client.get("/v1/events?limit=1", headers=headers).json()["head"]


def raw(client, method, path, content, headers, content_type="application/json"):
    return client.request(method, path, content=content, headers={**headers, "Content-Type": content_type})


REPORTS = [
    ("malformed JSON", b'{"type": "structure_fire", "location": ', 422, "JSON"),
    ("not an object", b'["structure_fire"]', 422, "dictionary"),
    ("NaN latitude", b'{"type": "structure_fire", "location": {"lat": NaN, "lon": -122.4}}', 422, "location.lat"),
    ("Infinity longitude", b'{"type": "structure_fire", "location": {"lat": 37.7, "lon": Infinity}}', 422, "location.lon"),
    ("latitude out of range", json.dumps({**GOOD, "location": {"lat": 91, "lon": -122.4}}).encode(), 422, "less than or equal to 90"),
    ("longitude out of range", json.dumps({**GOOD, "location": {"lat": 37.7, "lon": -181}}).encode(), 422, "greater than or equal to -180"),
    ("coordinates as strings", json.dumps({**GOOD, "location": {"lat": "north", "lon": -122.4}}).encode(), 422, "location.lat"),
    ("missing location", json.dumps({"type": "structure_fire"}).encode(), 422, "location: Field required"),
    ("unknown incident type", json.dumps({**GOOD, "type": "volcano"}).encode(), 422, "unknown incident type 'volcano'"),
    ("empty incident type", json.dumps({**GOOD, "type": "  "}).encode(), 422, "type"),
    ("priority zero", json.dumps({**GOOD, "priority": 0}).encode(), 422, "priority"),
    ("priority six", json.dumps({**GOOD, "priority": 6}).encode(), 422, "priority"),
    ("priority as text", json.dumps({**GOOD, "priority": "high"}).encode(), 422, "priority"),
    ("unknown field", json.dumps({**GOOD, "severity": 3}).encode(), 422, "severity"),
    ("reported_at without zone", json.dumps({**GOOD, "reported_at": "2026-11-26T02:14:00"}).encode(), 422, "time zone"),
    ("reported_at in year 1", json.dumps({**GOOD, "reported_at": "0001-01-01T00:00:00+01:00"}).encode(), 422, "between 1970 and 2100"),
    ("reported_at in year 9999", json.dumps({**GOOD, "reported_at": "9999-12-31T23:59:59-01:00"}).encode(), 422, "between 1970 and 2100"),
    ("reported_at next year", json.dumps({**GOOD, "reported_at": "2027-11-26T20:00:00Z"}).encode(), 422, "in the future"),
    ("description too long", json.dumps({**GOOD, "description": "x" * 4001}).encode(), 422, "description"),
    ("empty body", b"", 422, "body"),
    ("NUL byte in the description", json.dumps({**GOOD, "description": "a\u0000b"}).encode(), 422, "NUL"),
    ("NUL byte in the address", json.dumps({**GOOD, "address": "\u0000"}).encode(), 422, "NUL"),
]


@pytest.mark.parametrize("name,body,status,says", REPORTS, ids=[r[0] for r in REPORTS])
def test_bad_reports_are_refused_and_change_nothing(client, dispatcher, name, body, status, says):
    before = head(client, dispatcher)
    response = raw(client, "POST", "/v1/incidents", body, dispatcher)
    assert response.status_code == status, response.text
    assert says in response.json()["message"]
    assert head(client, dispatcher) == before


def test_an_oversized_body_is_413_before_it_is_read(client, dispatcher):
    before = head(client, dispatcher)
    big = json.dumps({**GOOD, "description": "x" * 200_000}).encode()
    response = raw(client, "POST", "/v1/incidents", big, dispatcher)
    assert response.status_code == 413 and "larger than" in response.json()["message"]
    chunked = client.post("/v1/incidents", content=iter([big[:40_000], big[40_000:]]),
                          headers={**dispatcher, "Content-Type": "application/json"})
    assert chunked.status_code == 413
    assert head(client, dispatcher) == before


def incident(client, headers):
    return client.post("/v1/incidents", json=GOOD, headers=headers).json()["id"]


def test_unknown_ids_are_404_with_the_id_named(client, dispatcher):
    cases = [
        ("GET", "/v1/incidents/nope", None), ("GET", "/v1/units/X99", None),
        ("POST", "/v1/incidents/nope/assignments", {"unit_ids": ["E1"]}),
        ("POST", "/v1/incidents/nope/notes", {"text": "hi"}), ("POST", "/v1/incidents/nope/close", None),
        ("POST", "/v1/assignments/nope/ack", None), ("POST", "/v1/assignments/nope/cancel", None),
        ("PUT", "/v1/units/X99/status", {"status": "available"}),
        ("PUT", "/v1/units/X99/position", {"lat": 37.7, "lon": -122.4}),
    ]
    before = head(client, dispatcher)
    for method, path, body in cases:
        response = client.request(method, path, json=body, headers=dispatcher)
        assert response.status_code == 404, (method, path, response.text)
        assert response.json()["error"] == "not_found" and ("nope" in response.json()["message"] or "X99" in response.json()["message"])
    assert head(client, dispatcher) == before


def test_an_unknown_unit_in_an_assignment_is_404_and_no_unit_is_sent(client, dispatcher):
    incident_id = incident(client, dispatcher)
    before = head(client, dispatcher)
    response = client.post(f"/v1/incidents/{incident_id}/assignments", json={"unit_ids": ["E1", "GHOST"]}, headers=dispatcher)
    assert response.status_code == 404 and "GHOST" in response.json()["message"]
    assert head(client, dispatcher) == before
    assert client.get("/v1/units/E1", headers=dispatcher).json()["status"] == "available"


@pytest.mark.parametrize("body,says", [
    ({"unit_ids": []}, "unit_ids"),
    ({"unit_ids": ["E1", "E1"]}, "twice"),
    ({"unit_ids": "E1"}, "unit_ids"),
    ({"units": ["E1"]}, "unit_ids"),
], ids=["empty list", "duplicate unit", "not a list", "wrong field name"])
def test_bad_assignments_are_refused(client, dispatcher, body, says):
    incident_id = incident(client, dispatcher)
    before = head(client, dispatcher)
    response = client.post(f"/v1/incidents/{incident_id}/assignments", json=body, headers=dispatcher)
    assert response.status_code == 422 and says in response.json()["message"]
    assert head(client, dispatcher) == before


@pytest.mark.parametrize("status,says", [
    ("on_scene", "cannot go from available to on_scene"),
    ("dispatched", "assigning it to an incident"),
    ("flying", "unknown unit status 'flying'"),
    ("available", "already available"),
])
def test_illegal_status_changes_are_refused(client, dispatcher, status, says):
    before = head(client, dispatcher)
    response = client.put("/v1/units/E1/status", json={"status": status}, headers=dispatcher)
    assert response.status_code == 422 and says in response.json()["message"]
    assert head(client, dispatcher) == before


@pytest.mark.parametrize("body,says", [
    ({"lat": 95, "lon": -122.4}, "lat"), ({"lat": 37.7, "lon": 200}, "lon"),
    ({"lat": 37.7, "lon": -122.4, "heading": 400}, "heading"),
    ({"lat": 37.7, "lon": -122.4, "at": "2026-11-26T20:00:00"}, "time zone"),
    ({"lat": 37.7, "lon": -122.4, "at": "2030-01-01T00:00:00Z"}, "in the future"),
    ({"lat": 37.7, "lon": -122.4, "at": "0001-01-01T00:00:00+01:00"}, "between 1970 and 2100"),
], ids=["lat", "lon", "heading", "naive time", "future", "year one"])
def test_bad_positions_are_refused(client, dispatcher, body, says):
    response = client.put("/v1/units/E1/position", json=body, headers=dispatcher)
    assert response.status_code == 422 and says in response.json()["message"]
    assert client.get("/v1/units/E1", headers=dispatcher).json()["position"] is None


@pytest.mark.parametrize("query,says", [
    ({"at": "yesterday"}, "not an ISO 8601 time"), ({}, "at: Field required"),
    ({"at": "0001-01-01T00:00:00+01:00"}, "between 1970 and 2100"),
    ({"at": "9999-12-31T23:59:59-01:00"}, "between 1970 and 2100"),
])
def test_bad_state_queries(client, dispatcher, query, says):
    response = client.get("/v1/state", params=query, headers=dispatcher)
    assert response.status_code == 422 and says in response.json()["message"]
    assert client.get("/v1/units", headers=dispatcher).status_code == 200


def test_a_lowercase_z_is_utc_too(client, dispatcher, clock):
    response = client.get("/v1/state", params={"at": clock().strftime("%Y-%m-%dT%H:%M:%Sz")}, headers=dispatcher)
    assert response.status_code == 200


@pytest.mark.parametrize("query", [{"after": -1}, {"limit": 0}, {"limit": 100000}, {"after": "abc"},
                                   {"after": "100000000000000000000000000000"}])
def test_bad_event_queries(client, dispatcher, query):
    response = client.get("/v1/events", params=query, headers=dispatcher)
    assert response.status_code == 422 and response.json()["message"]


def test_closing_twice_and_noting_nothing(client, dispatcher):
    incident_id = incident(client, dispatcher)
    assert client.post(f"/v1/incidents/{incident_id}/close", headers=dispatcher).status_code == 200
    again = client.post(f"/v1/incidents/{incident_id}/close", headers=dispatcher)
    assert again.status_code == 409 and "already closed" in again.json()["message"]
    empty = client.post(f"/v1/incidents/{incident_id}/notes", json={"text": "   "}, headers=dispatcher)
    assert empty.status_code == 422


def test_unknown_paths_and_methods_answer_in_the_same_shape(client, dispatcher):
    missing = client.get("/v1/nowhere", headers=dispatcher)
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"
    wrong = client.delete("/v1/incidents", headers=dispatcher)
    assert wrong.status_code == 405 and wrong.json()["message"]


def test_a_long_idempotency_key_is_fine_and_an_overlong_one_refused(client, dispatcher):
    ok = client.post("/v1/incidents", json=GOOD, headers={**dispatcher, "Idempotency-Key": "k" * 200})
    assert ok.status_code == 201
    too_long = client.post("/v1/incidents", json=GOOD, headers={**dispatcher, "Idempotency-Key": "k" * 201})
    assert too_long.status_code == 422 and "Idempotency-Key" in too_long.json()["message"]
