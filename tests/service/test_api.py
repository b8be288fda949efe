"""The HTTP API v1 on the embedded default (SQLite file + in-process bus), end to end."""

from ..builders import IN_EAST, IN_WEST


def report(client, headers, kind="structure_fire", where=IN_WEST, **extra):
    body = {"type": kind, "location": where.to_json(), **extra}
    response = client.post("/v1/incidents", json=body, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()


def assign(client, headers, incident_id, *unit_ids, expect=201):
    response = client.post(f"/v1/incidents/{incident_id}/assignments", json={"unit_ids": list(unit_ids)}, headers=headers)
    assert response.status_code == expect, response.text
    return response.json()


def head(client, headers) -> int:
    return client.get("/v1/events?limit=1", headers=headers).json()["head"]


class TestIntake:
    def test_a_report_answers_with_the_incident_and_its_districts(self, client, dispatcher):
        incident = report(client, dispatcher, address="1 Main St", description="smoke from roof")
        assert incident["status"] == "open" and incident["type_label"] == "Structure fire"
        assert {(d["agency_id"], d["district_id"]) for d in incident["districts"]} == {("pd", "WEST"), ("fd", "1"), ("ems", "Z1")}
        assert client.get(f"/v1/incidents/{incident['id']}", headers=dispatcher).json()["address"] == "1 Main St"
        listed = client.get("/v1/incidents?status=open", headers=dispatcher).json()
        assert [i["id"] for i in listed["incidents"]] == [incident["id"]]

    def test_the_same_idempotency_key_and_body_return_the_first_response(self, client, dispatcher):
        headers = {**dispatcher, "Idempotency-Key": "call-4711"}
        body = {"type": "cardiac_arrest", "location": IN_EAST.to_json()}
        first = client.post("/v1/incidents", json=body, headers=headers)
        again = client.post("/v1/incidents", json=body, headers=headers)
        assert first.status_code == again.status_code == 201
        assert again.json() == first.json()
        assert len(client.get("/v1/incidents", headers=dispatcher).json()["incidents"]) == 1

    def test_the_same_key_with_another_body_is_refused(self, client, dispatcher):
        headers = {**dispatcher, "Idempotency-Key": "call-4712"}
        client.post("/v1/incidents", json={"type": "cardiac_arrest", "location": IN_EAST.to_json()}, headers=headers)
        before = head(client, dispatcher)
        response = client.post("/v1/incidents", json={"type": "overdose", "location": IN_EAST.to_json()}, headers=headers)
        assert response.status_code == 422 and "different request" in response.json()["message"]
        assert head(client, dispatcher) == before


class TestAssignments:
    def test_assign_ack_and_the_unit_follows_its_lifecycle(self, client, dispatcher, token):
        incident = report(client, dispatcher)
        [made] = assign(client, dispatcher, incident["id"], "E1")["assignments"]
        assert client.get("/v1/units/E1", headers=dispatcher).json()["status"] == "dispatched"
        crew = token("unit", unit="E1")
        acked = client.post(f"/v1/assignments/{made['id']}/ack", headers=crew)
        assert acked.status_code == 200 and acked.json()["acknowledged_at"]
        for status in ("en_route", "on_scene", "available"):
            response = client.put("/v1/units/E1/status", json={"status": status}, headers=crew)
            assert response.status_code == 200, response.text
        unit = client.get("/v1/units/E1", headers=dispatcher).json()
        assert unit["status"] == "available" and unit["incident_id"] is None
        got = client.get(f"/v1/incidents/{incident['id']}", headers=dispatcher).json()
        assert got["assignments"][0]["end_reason"] == "cleared"

    def test_a_unit_taken_by_another_dispatcher_is_a_409_and_nothing_changes(self, client, dispatcher):
        first, second = report(client, dispatcher), report(client, dispatcher, where=IN_EAST)
        assign(client, dispatcher, first["id"], "E1")
        before = head(client, dispatcher)
        response = client.post(f"/v1/incidents/{second['id']}/assignments", json={"unit_ids": ["E2", "E1"]}, headers=dispatcher)
        assert response.status_code == 409
        assert response.json() == {"error": "conflict", "message": response.json()["message"]}
        assert "E1 is no longer available" in response.json()["message"]
        assert head(client, dispatcher) == before
        assert client.get("/v1/units/E2", headers=dispatcher).json()["status"] == "available"

    def test_cancel_frees_the_unit(self, client, dispatcher):
        incident = report(client, dispatcher)
        [made] = assign(client, dispatcher, incident["id"], "M1")["assignments"]
        response = client.post(f"/v1/assignments/{made['id']}/cancel", json={"reason": "patient refused"}, headers=dispatcher)
        assert response.status_code == 200 and response.json()["end_reason"] == "cancelled"
        assert client.get("/v1/units/M1", headers=dispatcher).json()["status"] == "available"

    def test_close_releases_units_and_the_timeline_tells_the_story_in_order(self, client, dispatcher):
        incident = report(client, dispatcher)
        assign(client, dispatcher, incident["id"], "E1", "T1")
        note = client.post(f"/v1/incidents/{incident['id']}/notes", json={"text": "fire knocked down"}, headers=dispatcher)
        assert note.status_code == 201 and note.json()["author"] == "dispatcher:dispatcher"
        closed = client.post(f"/v1/incidents/{incident['id']}/close", json={"disposition": "fire out"}, headers=dispatcher)
        assert closed.status_code == 200 and closed.json()["status"] == "closed"
        assert {u["status"] for u in client.get("/v1/units?agency=fd", headers=dispatcher).json()["units"]} == {"available"}
        events = client.get(f"/v1/incidents/{incident['id']}/timeline", headers=dispatcher).json()["events"]
        types = [e["type"] for e in events]
        assert types[0] == "IncidentReported" and types[-1] == "IncidentClosed"
        assert types.count("UnitStatusChanged") == 4 and "NoteAdded" in types
        assert [e["seq"] for e in events] == sorted(e["seq"] for e in events)


class TestTimeTravel:
    def test_state_at_a_past_moment_shows_the_city_as_it_stood(self, client, dispatcher, clock):
        incident = report(client, dispatcher)
        before_assign = clock.advance(minutes=1).isoformat()
        clock.advance(minutes=1)
        assign(client, dispatcher, incident["id"], "E1")
        client.put("/v1/units/E1/position", json={"lat": 37.76, "lon": -122.46}, headers=dispatcher)
        then = client.get("/v1/state", params={"at": before_assign}, headers=dispatcher).json()
        assert [i["id"] for i in then["incidents"]] == [incident["id"]]
        assert {u["id"]: u["status"] for u in then["units"]}["E1"] == "available"
        now = client.get("/v1/state", params={"at": clock.advance(seconds=1).isoformat()}, headers=dispatcher).json()
        e1 = next(u for u in now["units"] if u["id"] == "E1")
        assert e1["status"] == "dispatched" and e1["position"]["lat"] == 37.76

    def test_state_at_needs_a_time_zone(self, client, dispatcher):
        response = client.get("/v1/state", params={"at": "2026-11-26T02:14:00"}, headers=dispatcher)
        assert response.status_code == 422 and "time zone" in response.json()["message"]

    def test_events_after_a_seq_and_the_chain_verifies(self, client, dispatcher):
        report(client, dispatcher)
        events = client.get("/v1/events", params={"after": 0, "limit": 5000}, headers=dispatcher).json()["events"]
        assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
        assert [e["type"] for e in events[-2:]] == ["IncidentReported", "RecommendationMade"]
        assert set(events[0]) == {"seq", "id", "type", "at", "stream", "version", "actor", "data", "prev_hash", "hash"}
        later = client.get("/v1/events", params={"after": len(events) - 1}, headers=dispatcher).json()["events"]
        assert [e["seq"] for e in later] == [len(events)]
        verified = client.get("/v1/events/verify", headers=dispatcher).json()
        assert verified["ok"] and verified["checked"] == len(events)


class TestPositions:
    def test_positions_are_telemetry_and_do_not_enter_the_log(self, client, dispatcher, clock):
        before = head(client, dispatcher)
        for n in range(5):
            clock.advance(seconds=1)
            response = client.put("/v1/units/P1/position", json={"lat": 37.75 + n * 1e-5, "lon": -122.47}, headers=dispatcher)
            assert response.status_code == 200
        assert head(client, dispatcher) == before
        assert client.get("/v1/units/P1", headers=dispatcher).json()["position"]["lat"] == 37.75 + 4 * 1e-5

    def test_a_fix_from_a_clock_running_ahead_is_kept_at_our_time_and_does_not_block_later_fixes(self, client, dispatcher, clock):
        ahead = (clock() + __import__("datetime").timedelta(minutes=3)).isoformat()
        first = client.put("/v1/units/P1/position", json={"lat": 37.76, "lon": -122.47, "at": ahead}, headers=dispatcher)
        assert first.status_code == 200 and first.json()["position"]["at"] == "2026-11-26T20:00:00.000000Z"
        clock.advance(seconds=10)
        client.put("/v1/units/P1/position", json={"lat": 37.77, "lon": -122.47}, headers=dispatcher)
        assert client.get("/v1/units/P1", headers=dispatcher).json()["position"]["lat"] == 37.77

    def test_a_late_fix_does_not_move_the_unit_back(self, client, dispatcher, clock):
        client.put("/v1/units/P1/position", json={"lat": 37.76, "lon": -122.47}, headers=dispatcher)
        old = (clock() - __import__("datetime").timedelta(minutes=1)).isoformat()
        client.put("/v1/units/P1/position", json={"lat": 37.70, "lon": -122.47, "at": old}, headers=dispatcher)
        assert client.get("/v1/units/P1", headers=dispatcher).json()["position"]["lat"] == 37.76


class TestOperations:
    def test_health_readiness_and_metrics(self, client, dispatcher):
        assert client.get("/healthz").json() == {"status": "ok"}
        ready = client.get("/readyz")
        assert ready.status_code == 200 and ready.json()["log"] == "ok" and ready.json()["bus"] == "ok"
        assert ready.json()["status"] == "ready"
        report(client, dispatcher)
        text = client.get("/metrics").text
        assert 'commandpost_commands_total{command="ReportIncident",outcome="ok"} 1.0' in text
        assert "commandpost_bus_up 1.0" in text
        [batches] = [float(line.split()[1]) for line in text.splitlines() if line.startswith("commandpost_append_batches ")]
        assert batches >= 2  # the units commissioned at start, then the report
        assert client.get("/docs").status_code == 200
        assert "/v1/incidents" in client.get("/openapi.json").json()["paths"]

    def test_reference_lists_for_consoles(self, client, dispatcher):
        types = client.get("/v1/incident-types", headers=dispatcher).json()["incident_types"]
        assert len(types) >= 15
        agencies = client.get("/v1/agencies", headers=dispatcher).json()["agencies"]
        assert {a["kind"] for a in agencies} == {"police", "fire", "ems"}


class TestRetention:
    def test_closed_incidents_leave_the_live_picture_after_a_day_but_stay_in_the_log(self, client, dispatcher, clock):
        old = report(client, dispatcher)
        assign(client, dispatcher, old["id"], "E1")
        client.post(f"/v1/incidents/{old['id']}/close", json={"disposition": "out"}, headers=dispatcher)
        closed_at = clock().isoformat()
        clock.advance(hours=23)
        report(client, dispatcher)
        assert old["id"] in {i["id"] for i in client.get("/v1/incidents", headers=dispatcher).json()["incidents"]}
        clock.advance(hours=2)
        report(client, dispatcher)  # the next event after 24 h lets the old incident go
        node = client.app.state.node
        assert old["id"] not in node.state.incidents
        assert old["id"] not in {i["id"] for i in client.get("/v1/incidents", headers=dispatcher).json()["incidents"]}
        archived = client.get(f"/v1/incidents/{old['id']}", headers=dispatcher).json()
        assert archived["status"] == "closed" and archived["disposition"] == "out"
        assert archived["assignments"][0]["unit_id"] == "E1" and archived["assignments"][0]["end_reason"] == "incident_closed"
        assert client.get(f"/v1/incidents/{old['id']}/timeline", headers=dispatcher).json()["events"][-1]["type"] == "IncidentClosed"
        then = client.get("/v1/state", params={"at": closed_at}, headers=dispatcher).json()
        assert old["id"] in {i["id"] for i in then["incidents"]}
        from coordinator import state as st
        assert st.fold(node.log.iter_all()) == node.state


def test_a_retried_assignment_gets_the_first_answer_even_a_day_later(client, dispatcher, clock):
    incident = report(client, dispatcher)
    headers = {**dispatcher, "Idempotency-Key": "assign-1"}
    first = client.post(f"/v1/incidents/{incident['id']}/assignments", json={"unit_ids": ["E1"]}, headers=headers)
    client.post(f"/v1/incidents/{incident['id']}/close", headers=dispatcher)
    clock.advance(hours=25)
    report(client, dispatcher)  # the closed incident leaves the live picture
    again = client.post(f"/v1/incidents/{incident['id']}/assignments", json={"unit_ids": ["E1"]}, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
