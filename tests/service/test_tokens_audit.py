"""Tokens issued and revoked as events, refused everywhere once revoked; the audit of who did what, when."""

import pytest
from starlette.websockets import WebSocketDisconnect

from coordinator import state as st
from coordinator.auth import verify
from coordinator.log import format_at
from coordinator.settings import Settings

from ..adapters import BACKENDS, fresh_engine
from ..builders import IN_EAST, IN_WEST, T0, record
from ..conftest import postgres_url
from .test_api import assign, report


@pytest.fixture(params=BACKENDS)
def settings(request, tmp_path):
    """The conftest's client and token, on SQLite and on PostgreSQL (CP_TEST_DATABASE_URL)."""
    if request.param == "sqlite":
        return Settings(data_dir=tmp_path, snapshot_every=50, poll_interval_s=0.2)
    fresh_engine(request.param, tmp_path).dispose()  # skips without CP_TEST_DATABASE_URL; empties the schema
    return Settings(data_dir=tmp_path, snapshot_every=50, poll_interval_s=0.2, database_url=postgres_url(),
                    secret="tokens-and-audit-test-secret-0123456789")


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def head(client, headers) -> int:
    return client.get("/v1/events?limit=1", headers=headers).json()["head"]


@pytest.fixture
def admin(token):
    return token("admin")


def issue(client, admin, **body) -> dict:
    response = client.post("/v1/tokens", json=body, headers=admin)
    assert response.status_code == 201, response.text
    return response.json()


class TestIssuing:
    def test_an_administrator_issues_a_token_that_works_and_the_log_records_who_issued_it(self, client, admin, settings):
        issued = issue(client, admin, role="dispatcher", subject="carol", agency="fd", ttl_hours=8)
        me = client.get("/v1/me", headers=bearer(issued["token"])).json()
        assert (me["role"], me["subject"], me["agency"]) == ("dispatcher", "carol", "fd")
        assert me["expires_at"] == issued["expires_at"]
        [event] = [e for e in client.get("/v1/events", headers=admin).json()["events"] if e["type"] == "TokenIssued"]
        assert event["stream"] == f"token/{issued['id']}" and event["actor"] == "admin:admin"
        assert event["data"] == {"token_id": issued["id"], "role": "dispatcher", "subject": "carol", "agency": "fd",
                                 "unit": None, "expires_at": issued["expires_at"]}
        assert issued["token"] not in str(client.get("/v1/events", headers=admin).json())  # the secret is not logged

    @pytest.mark.parametrize("role", ["dispatcher", "commander", "unit"])
    def test_only_an_administrator_may_issue_and_nothing_is_written_otherwise(self, client, token, role):
        headers = token(role, unit="E1" if role == "unit" else None)
        before = head(client, token("admin"))
        refused = client.post("/v1/tokens", json={"role": "admin"}, headers=headers)
        assert refused.status_code == 403 and "administrator" in refused.json()["message"]
        assert head(client, token("admin")) == before

    @pytest.mark.parametrize("body, words", [
        ({"role": "king"}, "role"),
        ({"role": "unit"}, "needs 'unit'"),
        ({"role": "unit", "unit": "Z9"}, "No unit Z9"),
        ({"role": "dispatcher", "agency": "nowhere"}, "No agency nowhere"),
        ({"role": "dispatcher", "ttl_hours": 0}, "ttl_hours"),
        ({"role": "dispatcher", "ttl_hours": 10_000}, "ttl_hours"),
        ({"role": "dispatcher", "subject": "x" * 65}, "subject"),
        ({"role": "dispatcher", "scopes": ["all"]}, "scopes"),
    ])
    def test_a_bad_request_is_a_422_naming_the_field_and_writes_nothing(self, client, admin, body, words):
        before = head(client, admin)
        refused = client.post("/v1/tokens", json=body, headers=admin)
        assert refused.status_code == 422 and words in refused.json()["message"], refused.text
        assert head(client, admin) == before


class TestRevoking:
    def test_a_revoked_token_is_refused_on_every_path_from_then_on(self, client, admin, token):
        alice = token("dispatcher")
        alice_id = verify_id(client, alice)
        incident = report(client, alice)
        revoked = client.post(f"/v1/tokens/{alice_id}/revoke?minted_offline=true", json={"reason": "laptop stolen"}, headers=admin)
        assert revoked.status_code == 200 and revoked.json()["by"] == "admin:admin"
        for method, path, body in [("GET", "/v1/incidents", None), ("GET", "/v1/me", None),
                                   ("POST", f"/v1/incidents/{incident['id']}/notes", {"text": "still here?"}),
                                   ("POST", "/v1/incidents", {"type": "fall", "location": IN_EAST.to_json()})]:
            refused = client.request(method, path, json=body, headers=alice)
            assert refused.status_code == 401 and "revoked" in refused.json()["message"], (path, refused.text)
        assert [n["text"] for n in client.get(f"/v1/incidents/{incident['id']}", headers=admin).json()["notes"]] == []
        with pytest.raises(WebSocketDisconnect) as closed, \
                client.websocket_connect(f"/v1/stream?token={alice['Authorization'][7:]}") as ws:
            ws.receive_text()
        assert closed.value.code == 4401 and "revoked" in closed.value.reason

    def test_an_open_socket_of_a_revoked_token_is_closed_at_its_next_event(self, client, admin, token):
        alice = token("dispatcher")
        after = head(client, admin)
        with client.websocket_connect(f"/v1/stream?after={after}&token={alice['Authorization'][7:]}") as ws:
            report(client, admin)
            assert ws.receive_json()["type"] == "IncidentReported"
            client.post(f"/v1/tokens/{verify_id(client, alice)}/revoke?minted_offline=true", headers=admin)
            report(client, admin, where=IN_EAST)
            with pytest.raises(WebSocketDisconnect) as closed:
                while True:
                    ws.receive_json()
        assert closed.value.code == 4401 and "revoked" in closed.value.reason

    def test_a_replay_stops_when_its_token_is_revoked(self, client, clock, admin, token):
        chief = token("commander")
        start = clock.now
        report(client, admin)
        clock.advance(seconds=3)  # replayed at 1x: three seconds of wall time between the two reports
        report(client, admin, where=IN_EAST)
        window = f"from={format_at(start)}&to={format_at(clock.advance(seconds=1))}"
        reported = []
        with client.websocket_connect(f"/v1/replay?{window}&speed=1&token={chief['Authorization'][7:]}") as ws:
            while not reported:
                message = ws.receive_json()
                if message["type"] == "IncidentReported":
                    reported.append(message)
            client.post(f"/v1/tokens/{verify_id(client, chief)}/revoke?minted_offline=true", headers=admin)
            with pytest.raises(WebSocketDisconnect) as closed:
                while True:
                    reported.extend(m for m in [ws.receive_json()] if m["type"] == "IncidentReported")
        assert closed.value.code == 4401 and "revoked" in closed.value.reason
        assert len(reported) == 1  # the second report was never replayed to the revoked token

    def test_a_units_message_on_a_revoked_token_is_refused(self, client, admin, token):
        crew = token("unit", unit="E1")
        incident = report(client, admin)
        [made] = assign(client, admin, incident["id"], "E1")["assignments"]
        with client.websocket_connect(f"/v1/units/E1/stream?token={crew['Authorization'][7:]}") as ws:
            client.post(f"/v1/tokens/{verify_id(client, crew)}/revoke?minted_offline=true", headers=admin)
            ws.send_json({"type": "ack", "id": 1, "assignment_id": made["id"]})
            reply = next(m for m in iter(ws.receive_json, None) if m.get("type") in ("reply", "error"))
        assert reply["status"] == 401 and "revoked" in reply["message"]
        assert client.get(f"/v1/incidents/{incident['id']}", headers=admin).json()["assignments"][0]["acknowledged_at"] is None

    def test_revoking_twice_is_a_conflict_and_a_token_may_not_revoke_itself(self, client, admin, token):
        bob = token("commander")
        bob_id = verify_id(client, bob)
        assert client.post(f"/v1/tokens/{bob_id}/revoke?minted_offline=true", headers=admin).status_code == 200
        again = client.post(f"/v1/tokens/{bob_id}/revoke?minted_offline=true", headers=admin)
        assert again.status_code == 409 and "already revoked" in again.json()["message"]
        own = client.post(f"/v1/tokens/{verify_id(client, admin)}/revoke?minted_offline=true", headers=admin)
        assert own.status_code == 422 and "cannot revoke itself" in own.json()["message"]
        bad = client.post("/v1/tokens/not a token!/revoke", headers=admin)
        assert bad.status_code == 422
        typo = client.post("/v1/tokens/0123456789abcdef/revoke", headers=admin)  # never issued through the API
        assert typo.status_code == 404 and "minted_offline=true" in typo.json()["message"]

    def test_a_token_the_api_issued_is_revoked_by_its_id_alone(self, client, admin):
        issued = issue(client, admin, role="commander", subject="erin")
        assert client.post(f"/v1/tokens/{issued['id']}/revoke", headers=admin).status_code == 200
        assert client.get("/v1/me", headers=bearer(issued["token"])).status_code == 401

    def test_only_an_administrator_may_revoke(self, client, token):
        target = verify_id(client, token("dispatcher"))
        refused = client.post(f"/v1/tokens/{target}/revoke?minted_offline=true", headers=token("commander"))
        assert refused.status_code == 403 and "administrator" in refused.json()["message"]

    def test_revocations_survive_a_snapshot_and_a_restart(self):
        from coordinator import events as ev
        state = st.fold(record([ev.TokenRevoked(token_id="abc", reason="lost")], at=T0))
        assert st.copy(state).revoked == {"abc": state.revoked["abc"]}
        assert st.from_doc({k: v for k, v in st.to_doc(state).items() if k != "revoked"}).revoked == {}  # old snapshots

    def test_token_events_are_for_administrators_and_commanders_only(self, client, admin, token):
        issue(client, admin, role="dispatcher", subject="dave")
        def streams(headers):
            return {e["stream"].split("/")[0] for e in client.get("/v1/events", headers=headers).json()["events"]}
        assert "token" in streams(admin) and "token" in streams(token("commander"))
        assert "token" not in streams(token("dispatcher"))  # an unscoped dispatcher sees every incident, not tokens


def verify_id(client, headers) -> str:
    """The id of a token the tests' fixture minted (its jti)."""
    token_id = client.get("/v1/me", headers=headers).json()["token_id"]
    assert token_id
    return token_id


class TestAudit:
    def test_who_did_what_when_by_actor(self, client, clock, token):
        chief = token("commander")
        incident = report(client, token("dispatcher"))
        clock.advance(minutes=5)
        assign(client, token("admin"), incident["id"], "E1")
        doc = client.get("/v1/audit?actor=dispatcher:dispatcher", headers=chief).json()
        assert {e["actor"] for e in doc["entries"]} == {"dispatcher:dispatcher"}
        assert [e["type"] for e in doc["entries"]] == ["IncidentReported", "RecommendationMade"]
        assert all(set(e) == {"seq", "at", "actor", "type", "stream"} for e in doc["entries"])  # no incident data
        everyone = client.get("/v1/audit", headers=chief).json()["entries"]
        assert {"admin:admin", "dispatcher:dispatcher"} <= {e["actor"] for e in everyone}
        later = client.get("/v1/audit", params={"from": clock.now.isoformat()}, headers=chief).json()["entries"]
        assert {e["actor"] for e in later} == {"admin:admin"}  # the assignment, 5 minutes after the report

    def test_pages_follow_on_with_after_seq(self, client, token):
        admin = token("admin")
        for where in (IN_WEST, IN_EAST, IN_WEST):
            report(client, admin, "fall", where)
        first = client.get("/v1/audit?limit=2&actor=admin:admin", headers=admin).json()
        assert len(first["entries"]) == 2 and first["next_after_seq"] == first["entries"][-1]["seq"]
        rest = client.get(f"/v1/audit?actor=admin:admin&after_seq={first['next_after_seq']}", headers=admin).json()
        assert rest["entries"][0]["seq"] > first["next_after_seq"]

    @pytest.mark.parametrize("role", ["dispatcher", "unit"])
    def test_only_administrators_and_commanders_may_read_the_audit(self, client, token, role):
        refused = client.get("/v1/audit", headers=token(role, unit="E1" if role == "unit" else None))
        assert refused.status_code == 403 and "administrators and commanders" in refused.json()["message"]

    @pytest.mark.parametrize("query, words", [
        ("from=monday", "not an ISO 8601 time"),
        ("from=2026-11-27T00:00:00Z&to=2026-11-26T00:00:00Z", "is after to"),
        ("limit=0", "limit"), ("limit=5000", "limit"), ("after_seq=-1", "after_seq"),
        ("actor=" + "x" * 129, "actor"), ("actor=a%00b", "NUL"), ("after_seq=99999999999999999999", "after_seq"),
    ])
    def test_a_bad_question_is_a_422_in_plain_words(self, client, token, query, words):
        refused = client.get(f"/v1/audit?{query}", headers=token("admin"))
        assert refused.status_code == 422 and words in refused.json()["message"], refused.text


def test_a_token_carries_its_id_so_that_it_can_be_revoked(settings, token):
    from coordinator.settings import resolve_secret
    principal = verify(resolve_secret(settings), token("dispatcher")["Authorization"][7:], int(T0.timestamp()))
    assert principal.token_id and len(principal.token_id) == 16
