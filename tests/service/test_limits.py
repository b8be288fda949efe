"""Hostile input: body and frame size limits, and per-token rate limits on intake and positions.

A refused request gets a 4xx with a plain message and changes nothing; a 429 says when to try again
(``Retry-After`` in whole seconds). The limits follow the app's clock, so the tests wait by advancing it.
"""

import asyncio
import json

import pytest
from fastapi.testclient import TestClient
from websockets.exceptions import ConnectionClosed

from coordinator.app import create_app
from coordinator.settings import Settings, from_env

from ..builders import tiny_city
from .test_streams_loopback import run, served

GOOD = {"type": "structure_fire", "location": {"lat": 37.75, "lon": -122.47}}


def spot(n: int) -> dict:
    return {"type": "structure_fire", "location": {"lat": round(37.701 + 0.003 * (n % 33), 6), "lon": -122.47}}


def head(client, headers) -> int:
    return client.get("/v1/events?limit=1", headers=headers).json()["head"]


def incidents(client, headers) -> int:
    return client.get("/v1/incidents", headers=headers).json()["total"]


# -- sizes ------------------------------------------------------------------------------------------
def test_an_oversized_report_is_413_and_nothing_is_written(client, dispatcher):
    before, count = head(client, dispatcher), incidents(client, dispatcher)
    big = json.dumps({**GOOD, "description": "x" * (Settings().max_body_bytes + 1)}).encode()
    response = client.post("/v1/incidents", content=big, headers={**dispatcher, "Content-Type": "application/json"})
    assert response.status_code == 413
    assert response.json() == {"error": "too_large", "message": "The request body is larger than 65536 bytes"}
    assert (head(client, dispatcher), incidents(client, dispatcher)) == (before, count)


def test_a_chunked_body_without_a_length_is_cut_off_at_the_limit(client, dispatcher):
    before = head(client, dispatcher)
    big = json.dumps({**GOOD, "description": "x" * 100_000}).encode()
    sent = []

    def chunks():
        for start in range(0, len(big), 16_384):
            sent.append(start)
            yield big[start:start + 16_384]

    response = client.post("/v1/incidents", content=chunks(), headers={**dispatcher, "Content-Type": "application/json"})
    assert response.request.headers.get("content-length") is None
    assert response.request.headers["transfer-encoding"] == "chunked"
    assert response.status_code == 413 and response.json()["error"] == "too_large"
    assert head(client, dispatcher) == before


def test_a_websocket_frame_over_64_kib_closes_the_socket_with_1009(settings, clock, token):
    """The frame limit is uvicorn's (``ws_max_size``, as ``commandpost serve`` sets it): a real server."""
    app = create_app(settings, clock=clock, city=tiny_city())
    unit = token("unit", unit="E1")

    async def scenario(live):
        async with live.socket("/v1/units/E1/stream?after=0", unit, max_size=None) as ws:
            await ws.send(json.dumps({"type": "position", "id": "small", "lat": 37.75, "lon": -122.47}))
            while json.loads(await asyncio.wait_for(ws.recv(), 5)).get("id") != "small":
                pass
            await ws.send(json.dumps({"type": "position", "id": "big", "pad": "x" * (64 * 1024)}))
            with pytest.raises(ConnectionClosed) as closed:
                while True:
                    await asyncio.wait_for(ws.recv(), 5)
            return closed.value.rcvd.code if closed.value.rcvd else None

    with served(app) as live:
        assert run(scenario(live)) == 1009


# -- intake rate ------------------------------------------------------------------------------------
def test_the_31st_report_in_a_burst_is_429_with_retry_after_and_nothing_written(client, dispatcher, token, clock):
    for n in range(30):
        assert client.post("/v1/incidents", json=spot(n), headers=dispatcher).status_code == 201
    before, count = head(client, dispatcher), incidents(client, dispatcher)

    refused = client.post("/v1/incidents", json=spot(30), headers=dispatcher)
    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == "1"
    assert refused.json() == {"error": "rate_limited",
                              "message": "Too many reports from this token: at most 120 a minute; try again in 1 s"}
    assert (head(client, dispatcher), incidents(client, dispatcher)) == (before, count)

    other = token("dispatcher", agency="fd")  # another token is not affected
    assert client.post("/v1/incidents", json=spot(31), headers=other).status_code == 201

    clock.advance(seconds=0.4)  # 120 a minute: a token comes back every 0.5 s
    assert client.post("/v1/incidents", json=spot(32), headers=dispatcher).status_code == 429
    clock.advance(seconds=0.1)
    assert client.post("/v1/incidents", json=spot(33), headers=dispatcher).status_code == 201
    assert client.post("/v1/incidents", json=spot(34), headers=dispatcher).status_code == 429
    clock.advance(minutes=1)  # a quiet minute refills the whole burst
    assert all(client.post("/v1/incidents", json=spot(40 + n), headers=dispatcher).status_code == 201
               for n in range(30))


def test_retry_after_counts_whole_seconds_up(tmp_path, clock, token):
    settings = Settings(data_dir=tmp_path, rate_intake_per_min=6, rate_intake_burst=1)  # one every 10 s
    with TestClient(create_app(settings, clock=clock, city=tiny_city())) as client:
        headers = token("dispatcher")
        assert client.post("/v1/incidents", json=GOOD, headers=headers).status_code == 201
        clock.advance(seconds=2.5)
        refused = client.post("/v1/incidents", json=spot(1), headers=headers)
        assert refused.status_code == 429 and refused.headers["Retry-After"] == "8"
        assert refused.json()["message"].endswith("at most 6 a minute; try again in 8 s")


def test_a_limit_of_zero_turns_it_off(tmp_path, clock, token):
    settings = Settings(data_dir=tmp_path, rate_intake_per_min=0, rate_position_per_s=0)
    with TestClient(create_app(settings, clock=clock, city=tiny_city())) as client:
        headers, unit = token("dispatcher"), token("unit", unit="E1")
        assert all(client.post("/v1/incidents", json=spot(n), headers=headers).status_code == 201 for n in range(40))
        assert all(client.put("/v1/units/E1/position", json={"lat": 37.75, "lon": -122.47}, headers=unit)
                   .status_code == 200 for _ in range(20))


# -- position rate ----------------------------------------------------------------------------------
def test_the_11th_position_in_a_burst_is_429_and_not_stored(client, dispatcher, token, clock):
    unit = token("unit", unit="E1")
    for n in range(10):
        response = client.put("/v1/units/E1/position", json={"lat": 37.75 + n / 10_000, "lon": -122.47}, headers=unit)
        assert response.status_code == 200, response.text
    refused = client.put("/v1/units/E1/position", json={"lat": 37.76, "lon": -122.47}, headers=unit)
    assert refused.status_code == 429 and refused.headers["Retry-After"] == "1"
    assert refused.json() == {"error": "rate_limited", "message": "Too many position reports from this token: "
                                                                  "at most 2 a second; try again in 1 s"}
    assert client.get("/v1/units/E1", headers=dispatcher).json()["position"]["lat"] == 37.7509

    other = token("unit", unit="E2")
    assert client.put("/v1/units/E2/position", json={"lat": 37.76, "lon": -122.47}, headers=other).status_code == 200
    clock.advance(seconds=0.5)
    assert client.put("/v1/units/E1/position", json={"lat": 37.76, "lon": -122.47}, headers=unit).status_code == 200
    assert client.get("/v1/units/E1", headers=dispatcher).json()["position"]["lat"] == 37.76


def test_a_unit_socket_over_its_position_rate_gets_a_429_reply_and_stays_open(client, dispatcher, token, clock):
    unit = token("unit", unit="E1")
    after = head(client, dispatcher)
    with client.websocket_connect(f"/v1/units/E1/stream?after={after}", headers=unit) as ws:
        def send(ident, lat):
            ws.send_json({"type": "position", "id": ident, "lat": lat, "lon": -122.47})
            while True:
                message = ws.receive_json()
                if message.get("id") == ident:
                    return message

        assert all(send(n, 37.75)["type"] == "reply" for n in range(10))
        error = send("over", 37.76)
        assert error == {"type": "error", "id": "over", "error": "rate_limited", "status": 429,
                         "message": "Too many position reports from this token: at most 2 a second; try again in 1 s",
                         "retry_after_s": 0.5}
        assert client.get("/v1/units/E1", headers=dispatcher).json()["position"]["lat"] == 37.75
        ws.send_json({"type": "status", "id": "s", "status": "out_of_service"})  # only positions are limited
        while (message := ws.receive_json()).get("id") != "s":
            pass
        assert message["type"] == "reply"
        clock.advance(seconds=0.5)
        assert send("again", 37.77)["type"] == "reply"  # the same socket, still open
    assert client.get("/v1/units/E1", headers=dispatcher).json()["position"]["lat"] == 37.77


def test_rest_and_socket_positions_share_a_tokens_budget(client, token):
    unit = token("unit", unit="E1")
    for _ in range(10):
        assert client.put("/v1/units/E1/position", json={"lat": 37.75, "lon": -122.47}, headers=unit).status_code == 200
    with client.websocket_connect("/v1/units/E1/stream?after=0", headers=unit) as ws:
        ws.send_json({"type": "position", "id": "p", "lat": 37.75, "lon": -122.47})
        while (message := ws.receive_json()).get("id") != "p":
            pass
    assert message["status"] == 429


# -- settings ---------------------------------------------------------------------------------------
def test_the_defaults_are_per_token_and_generous_for_people():
    defaults = from_env({})
    assert (defaults.rate_intake_per_min, defaults.rate_intake_burst) == (120, 30)
    assert (defaults.rate_position_per_s, defaults.rate_position_burst) == (2.0, 10)
    chosen = from_env({"CP_RATE_INTAKE_PER_MIN": "0", "CP_RATE_POSITION_PER_S": "0.5", "CP_RATE_POSITION_BURST": "3"})
    assert (chosen.rate_intake_per_min, chosen.rate_position_per_s, chosen.rate_position_burst) == (0, 0.5, 3)


@pytest.mark.parametrize("name, raw, words", [
    ("CP_RATE_INTAKE_PER_MIN", "-1", "CP_RATE_INTAKE_PER_MIN must be a whole number of reports a minute from 0 to"),
    ("CP_RATE_INTAKE_PER_MIN", "lots", "CP_RATE_INTAKE_PER_MIN must be a number"),
    ("CP_RATE_INTAKE_PER_MIN", "1.5", "CP_RATE_INTAKE_PER_MIN must be a number"),
    ("CP_RATE_INTAKE_BURST", "0", "CP_RATE_INTAKE_BURST must be a whole number of reports from 1 to"),
    ("CP_RATE_POSITION_PER_S", "nan", "CP_RATE_POSITION_PER_S must be a number of positions a second from 0 to"),
    ("CP_RATE_POSITION_PER_S", "inf", "CP_RATE_POSITION_PER_S must be"),
    ("CP_RATE_POSITION_BURST", "0", "CP_RATE_POSITION_BURST must be a whole number of positions from 1 to"),
])
def test_a_bad_rate_setting_is_refused_with_its_name(name, raw, words):
    with pytest.raises(ValueError) as refused:
        from_env({name: raw})
    assert words in str(refused.value)


def test_limits_are_per_app(tmp_path, clock, token):
    """Each app (each node) keeps its own buckets: a fresh one starts full."""
    settings = Settings(data_dir=tmp_path, rate_intake_burst=1)
    with TestClient(create_app(settings, clock=clock, city=tiny_city())) as client:
        assert client.post("/v1/incidents", json=GOOD, headers=token()).status_code == 201
        assert client.post("/v1/incidents", json=spot(1), headers=token()).status_code == 429
    with TestClient(create_app(settings, clock=clock, city=tiny_city())) as client:
        assert client.post("/v1/incidents", json=spot(2), headers=token()).status_code == 201
