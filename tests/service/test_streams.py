"""Websockets through the app (Starlette's test client): backlog then live, resume, refusals with
their close codes, scopes, a socket that falls behind, a unit's messages, and replay."""

import json

import pytest
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from coordinator.app import create_app
from coordinator.settings import from_env

from ..builders import IN_EAST, tiny_city
from .test_api import assign, head, report

UNITS = 9  # the tiny city's units: commissioned at start, seq 1..9


def receive(ws, n):
    return [ws.receive_json() for _ in range(n)]


def closed_with(ws) -> tuple[int, str]:
    with pytest.raises(WebSocketDisconnect) as caught:
        ws.receive_json()
    return caught.value.code, caught.value.reason


class TestConsoleStream:
    def test_the_backlog_after_a_seq_then_live_events_each_once_in_order(self, client, dispatcher):
        with client.websocket_connect("/v1/stream?after=0", headers=dispatcher) as ws:
            backlog = receive(ws, UNITS)
            assert [e["seq"] for e in backlog] == list(range(1, UNITS + 1))
            assert {e["type"] for e in backlog} == {"UnitCommissioned"}
            incident = report(client, dispatcher)
            live = receive(ws, 2)
            assert [(e["seq"], e["type"]) for e in live] == [(10, "IncidentReported"), (11, "RecommendationMade")]
            assert live[0]["data"]["incident_id"] == incident["id"] and live[0]["hash"]

    def test_reconnecting_with_the_last_seq_received_gives_every_later_event_once(self, client, dispatcher):
        with client.websocket_connect("/v1/stream?after=0", headers=dispatcher) as ws:
            receive(ws, UNITS)
            report(client, dispatcher)
            last = receive(ws, 1)[0]["seq"]            # the client drops here, one event unread
        incident = report(client, dispatcher)           # happens while it is away
        with client.websocket_connect(f"/v1/stream?after={last}", headers=dispatcher) as ws:
            resumed = receive(ws, 3)
            assert [e["seq"] for e in resumed] == [last + 1, last + 2, last + 3]
            assign(client, dispatcher, incident["id"], "E1")
            assert [e["seq"] for e in receive(ws, 2)] == [last + 4, last + 5]

    def test_a_browser_may_pass_the_token_as_a_query_parameter(self, client, dispatcher):
        token = dispatcher["Authorization"].split()[1]
        with client.websocket_connect(f"/v1/stream?after={UNITS - 1}&token={token}") as ws:
            assert receive(ws, 1)[0]["seq"] == UNITS

    @pytest.mark.parametrize("path, headers, code, words", [
        ("/v1/stream", {}, 4401, "A token is needed"),
        ("/v1/stream?token=cp1.forged.token", {}, 4401, ""),
        ("/v1/stream", {"Authorization": "Basic abc"}, 4401, "Bearer"),
        ("/v1/stream?after=-1", "dispatcher", 4400, "whole number"),
        ("/v1/stream?after=abc", "dispatcher", 4400, "whole number"),
        ("/v1/stream?after=99999999999999999999", "dispatcher", 4400, "whole number"),
        ("/v1/stream?after=12", "dispatcher", 4400, "beyond the log's last seq 9"),
        ("/v1/units/NOPE/stream", "dispatcher", 4404, "No unit NOPE"),
        ("/v1/units/E1/stream", "unit:M1", 4403, "outside this token's scope"),
        ("/v1/units/E1/stream", "police", 4403, "outside this token's scope"),
        ("/v1/replay?to=2026-11-26T21:00:00Z", "commander", 4400, "from= and to="),
        ("/v1/replay?from=yesterday&to=2026-11-26T21:00:00Z", "commander", 4400, "ISO 8601"),
        ("/v1/replay?from=2026-11-26T21:00:00Z&to=2026-11-26T20:00:00Z", "commander", 4400, "before"),
        ("/v1/replay?from=2026-11-26T20:00:00Z&to=2026-11-26T21:00:00Z&speed=-2", "commander", 4400, "speed"),
    ])
    def test_a_refused_socket_is_closed_with_a_documented_code_and_a_reason(self, client, token, path, headers,
                                                                            code, words):
        if headers == "dispatcher":
            headers = token("dispatcher")
        elif headers == "commander":
            headers = token("commander")
        elif headers == "police":
            headers = token("dispatcher", agency="pd")
        elif headers == "unit:M1":
            headers = token("unit", unit="M1")
        with client.websocket_connect(path, headers=headers) as ws:
            got, reason = closed_with(ws)
        assert got == code and words in reason


class TestScopes:
    def test_an_agency_console_sees_its_units_and_the_incidents_its_agency_is_involved_in(self, client, dispatcher,
                                                                                         token):
        fire = token("dispatcher", agency="fd")
        robbery = report(client, dispatcher, kind="robbery_in_progress", where=IN_EAST)   # police only
        blaze = report(client, dispatcher, kind="structure_fire")
        with client.websocket_connect("/v1/stream?after=0", headers=fire) as ws:
            seen = receive(ws, 5 + 2)            # E1 E2 E3 T1 B1 commissioned, then the fire's two events
            assert all(e["data"].get("agency_id", "fd") == "fd" for e in seen if e["type"] == "UnitCommissioned")
            assert {e["data"]["incident_id"] for e in seen if e["stream"].startswith("incident/")} == {blaze["id"]}
            assert robbery["id"] not in json.dumps(seen)
            made = seen[-1]
            assert made["type"] == "RecommendationMade" and made["redacted"] == ["data.inputs.units"]
            assert {u["agency_id"] for u in made["data"]["inputs"]["units"]} == {"fd"}

    def test_a_unit_sees_only_its_own_assignments_and_cancellations(self, client, dispatcher, token):
        incident = report(client, dispatcher)
        with client.websocket_connect("/v1/units/E1/stream?after=0", headers=token("unit", unit="E1")) as ws:
            assert receive(ws, 1)[0]["type"] == "UnitCommissioned"
            assign(client, dispatcher, incident["id"], "E2")           # someone else's
            made = assign(client, dispatcher, incident["id"], "E1")["assignments"][0]
            intro, *got = receive(ws, 3)
            # the crew learns where to go with its assignment, not by another request
            assert intro["type"] == "incident_in_scope" and intro["incident"]["id"] == incident["id"]
            assert intro["incident"]["location"] == incident["location"] and intro["incident"]["type"] == "structure_fire"
            assert [(e["type"], e["data"]["unit_id"]) for e in got] == [("UnitAssigned", "E1"),
                                                                        ("UnitStatusChanged", "E1")]
            client.post(f"/v1/assignments/{made['id']}/cancel", headers=dispatcher)
            ended = receive(ws, 2)
            assert [e["type"] for e in ended] == ["AssignmentEnded", "UnitStatusChanged"]
            assert ended[0]["data"]["reason"] == "cancelled"


    def test_an_incident_entering_an_agency_scope_mid_stream_is_introduced_before_its_events(self, client,
                                                                                               dispatcher, token):
        police = token("dispatcher", agency="pd")
        with client.websocket_connect(f"/v1/stream?after={UNITS}", headers=police) as ws:
            arrest = report(client, dispatcher, kind="cardiac_arrest")           # fire and EMS only
            client.post(f"/v1/incidents/{arrest['id']}/notes", json={"text": "door code 1234"}, headers=dispatcher)
            assign(client, dispatcher, arrest["id"], "P1")                        # now police are involved
            intro, assigned, status = receive(ws, 3)
        assert intro["type"] == "incident_in_scope" and intro["incident"]["id"] == arrest["id"]
        assert intro["incident"]["notes"][0]["text"] == "door code 1234" and intro["as_of_seq"] >= assigned["seq"] - 1
        assert (assigned["type"], status["type"]) == ("UnitAssigned", "UnitStatusChanged")


class TestSlowConsumer:
    def test_a_socket_that_falls_behind_is_closed_with_resync_and_its_last_seq(self, client, dispatcher):
        incident = report(client, dispatcher)
        assign(client, dispatcher, incident["id"], "E1", "E2", "E3")
        start = head(client, dispatcher)
        client.app.state.hub.queue_size = 4       # closing releases 3 units at once: 7 events in one go
        with client.websocket_connect(f"/v1/stream?after={start}", headers=dispatcher) as slow:
            with client.websocket_connect(f"/v1/stream?after={start}", headers=dispatcher):
                client.post(f"/v1/incidents/{incident['id']}/close", headers=dispatcher)
                assert closed_with(slow) == (4409, f"resync after={start}")
        client.app.state.hub.queue_size = 1000
        with client.websocket_connect(f"/v1/stream?after={start}", headers=dispatcher) as again:
            assert [e["seq"] for e in receive(again, 7)] == list(range(start + 1, start + 8))


class TestUnitMessages:
    def test_ack_status_and_position_each_get_a_reply_with_their_correlation_id(self, client, dispatcher, token):
        incident = report(client, dispatcher)
        assignment = assign(client, dispatcher, incident["id"], "E1")["assignments"][0]
        with client.websocket_connect(f"/v1/units/E1/stream?after={head(client, dispatcher)}",
                                      headers=token("unit", unit="E1")) as ws:
            ws.send_json({"type": "ack", "id": "a-1", "assignment_id": assignment["id"]})
            replies = {}
            while "a-1" not in replies:
                message = ws.receive_json()
                if message["type"] == "reply":
                    replies[message["id"]] = message
            assert replies["a-1"]["assignment"]["acknowledged_at"] is not None
            ws.send_json({"type": "status", "id": 2, "status": "en_route"})
            ws.send_json({"type": "position", "id": "p", "lat": 37.751, "lon": -122.46})
            while len(replies) < 3:
                message = ws.receive_json()
                if message["type"] == "reply":
                    replies[message["id"]] = message
            assert replies[2]["status"] == "en_route" and "sampled" in replies["p"]
        unit = client.get("/v1/units/E1", headers=dispatcher).json()
        assert unit["status"] == "en_route" and unit["position"]["lat"] == 37.751

    @pytest.mark.parametrize("message, words", [
        ("not json", "must be a JSON object"),
        ("[" * 5000 + "]" * 5000, "must be a JSON object"),          # nested too deep for the parser
        ("[1, 2]", "must be a JSON object"),
        ('{"type": "fly", "id": "x"}', "Unknown message type 'fly'"),
        ('{"type": "ack", "id": "x"}', "needs assignment_id"),
        ('{"type": "ack", "id": "x", "assignment_id": "nope"}', "No assignment nope"),
        ('{"type": "status", "id": "x", "status": "flying"}', "flying"),
        ('{"type": "status", "id": "x", "status": "dispatched"}', "by assigning it"),
        ('{"type": "position", "id": "x", "lat": 91, "lon": 0}', "lat"),
        ('{"type": "position", "id": "x", "lat": "NaN", "lon": 0}', "lat"),
        ('{"type": "position", "id": {"a": 1}, "lat": 1, "lon": 0}', "id must be a string or a number"),
    ])
    def test_a_bad_message_gets_an_error_naming_what_is_wrong_and_changes_nothing(self, client, dispatcher,
                                                                                  token, message, words):
        before = head(client, dispatcher)
        with client.websocket_connect(f"/v1/units/E1/stream?after={before}", headers=token("unit", unit="E1")) as ws:
            ws.send_text(message)
            error = ws.receive_json()
        assert error["type"] == "error" and words in error["message"] and 400 <= error["status"] < 500
        assert head(client, dispatcher) == before
        assert client.get("/v1/units/E1", headers=dispatcher).json()["position"] is None

    def test_a_unit_cannot_acknowledge_another_units_assignment(self, client, dispatcher, token):
        incident = report(client, dispatcher)
        other = assign(client, dispatcher, incident["id"], "E2")["assignments"][0]
        with client.websocket_connect(f"/v1/units/E1/stream?after={head(client, dispatcher)}",
                                      headers=token("unit", unit="E1")) as ws:
            ws.send_json({"type": "ack", "id": 1, "assignment_id": other["id"]})
            error = ws.receive_json()
        assert error["type"] == "error" and "not unit E1's" in error["message"]


class TestReplay:
    def test_a_window_is_replayed_in_order_then_closed_normally(self, client, dispatcher, clock, token):
        report(client, dispatcher)
        clock.advance(minutes=10)
        later = report(client, dispatcher, kind="fall")
        clock.advance(minutes=10)
        frm, to = "2026-11-26T20:05:00Z", "2026-11-26T20:15:00Z"
        with client.websocket_connect(f"/v1/replay?from={frm}&to={to}&speed=0", headers=token("commander")) as ws:
            got = receive(ws, 3)
            assert [e["type"] for e in got[:2]] == ["IncidentReported", "RecommendationMade"]
            assert got[0]["data"]["incident_id"] == later["id"]
            assert got[2] == {"type": "replay_end", "from": "2026-11-26T20:05:00.000000Z",
                              "to": "2026-11-26T20:15:00.000000Z", "events": 2}
            assert closed_with(ws) == (1000, "replay finished")

    def test_a_scoped_replay_shows_only_what_the_scope_may_see(self, client, dispatcher, token):
        report(client, dispatcher, kind="robbery_in_progress", where=IN_EAST)
        frm, to = "2026-11-26T19:00:00Z", "2026-11-26T21:00:00Z"
        with client.websocket_connect(f"/v1/replay?from={frm}&to={to}&speed=0",
                                      headers=token("dispatcher", agency="ems")) as ws:
            messages = []
            while not messages or messages[-1].get("type") != "replay_end":
                messages.append(ws.receive_json())
        assert {m["type"] for m in messages[:-1]} == {"UnitCommissioned"}
        assert {m["data"]["agency_id"] for m in messages[:-1]} == {"ems"}


def test_position_reports_reach_consoles_as_telemetry(client, dispatcher, token):
    with client.websocket_connect(f"/v1/stream?after={UNITS}", headers=dispatcher) as ws:
        client.put("/v1/units/M1/position", json={"lat": 37.76, "lon": -122.44}, headers=token("admin"))
        message = ws.receive_json()
    assert message["type"] == "telemetry" and message["unit_id"] == "M1" and message["position"]["lat"] == 37.76


@pytest.mark.parametrize("name, raw, words", [
    ("CP_SOCKET_QUEUE", "50", "CP_SOCKET_QUEUE must be a whole number from 200 to 100,000"),
    ("CP_SOCKET_QUEUE", "lots", "CP_SOCKET_QUEUE must be a number"),
    ("CP_TELEMETRY_INTERVAL_S", "0", "CP_TELEMETRY_INTERVAL_S must be a number of seconds from 0.05 to 60"),
    ("CP_TELEMETRY_INTERVAL_S", "nan", "CP_TELEMETRY_INTERVAL_S must be a number of seconds"),
])
def test_socket_settings_are_bounded_with_a_message(tmp_path, name, raw, words):
    with pytest.raises(ValueError, match=words):
        from_env({"CP_DATA_DIR": str(tmp_path), name: raw})


def test_the_socket_queue_and_telemetry_interval_come_from_the_settings(tmp_path, clock):
    settings = from_env({"CP_DATA_DIR": str(tmp_path), "CP_SOCKET_QUEUE": "250", "CP_TELEMETRY_INTERVAL_S": "0.5"})
    with TestClient(create_app(settings, clock=clock, city=tiny_city())) as client:
        hub = client.app.state.hub
        assert (hub.queue_size, hub.telemetry_interval_s) == (250, 0.5)
