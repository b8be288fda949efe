"""The websockets over a real uvicorn on 127.0.0.1, with real clients (``websockets`` and ``httpx``):
resume after a dropped connection, a console that stops reading while the others keep their latency,
the ack watchdog driven by the injected clock, and the push of an assignment to its unit.

The server runs in a thread with its own event loop, configured as ``commandpost serve`` configures it;
the test's clients run in the test's loop. Every scenario is bounded in time.
"""

import asyncio
import contextlib
import json
import socket
import statistics
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace

import httpx
import pytest
import uvicorn
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from coordinator.app import create_app

from ..builders import IN_WEST, tiny_city

UNITS = 9                 # the tiny city's units, commissioned at start: seq 1..9
FLEET = ["E1", "E2", "E3", "T1", "B1", "M1", "M2", "P1", "P2"]
SCENARIO_S = 15.0         # no scenario may take longer; each takes a few seconds
WAIT_S = 5.0              # the longest wait for any one message


# -- the server -----------------------------------------------------------------------------------
@contextlib.contextmanager
def served(app, send_buffer: int | None = None) -> Iterator["Live"]:
    """Run ``app`` under uvicorn on a free loopback port.

    ``send_buffer`` fixes the kernel send buffer of every accepted socket (they inherit it from the
    listening one). Loopback's 64 KiB MTU makes Linux start each socket's at several MB (3.9 MB on the
    machine this was written on), which swallows a whole burst for a client that reads nothing and so
    never lets the server feel it; a socket on a real network starts nearer 16 KiB."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if send_buffer is not None:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, send_buffer)
    listener.bind(("127.0.0.1", 0))
    config = uvicorn.Config(app, ws_per_message_deflate=False, ws_ping_interval=20.0, ws_ping_timeout=20.0,
                            ws_max_size=64 * 1024, lifespan="on", log_level="warning", log_config=None,
                            timeout_graceful_shutdown=3)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, name="uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive(), "uvicorn stopped during start-up (see the log above)"
        assert time.monotonic() < deadline, "uvicorn did not start within 10 s"
        time.sleep(0.01)
    try:
        yield Live(app, *listener.getsockname())
    finally:
        server.should_exit = True
        thread.join(10)
        assert not thread.is_alive(), "uvicorn did not shut down within 10 s"


@dataclass
class Live:
    app: object
    host: str
    port: int

    def http(self, headers) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=f"http://{self.host}:{self.port}", headers=headers, timeout=WAIT_S,
                                 trust_env=False)

    def socket(self, path: str, headers, **options):
        return connect(f"ws://{self.host}:{self.port}{path}", additional_headers=headers, compression=None,
                       proxy=None, open_timeout=WAIT_S, **options)


@pytest.fixture
def live(settings, clock):
    with served(create_app(settings, clock=clock, city=tiny_city())) as server:
        yield server


def run(scenario) -> object:
    return asyncio.run(asyncio.wait_for(scenario, SCENARIO_S))


# -- the client's side ----------------------------------------------------------------------------
def spot(n: int) -> dict[str, float]:
    """The n-th point of a grid over the tiny city, 260 m or more apart: never a possible duplicate."""
    return {"lat": round(37.701 + 0.003 * (n % 33), 6), "lon": round(-122.499 + 0.003 * (n // 33 % 33), 6)}


async def report(http, n: int = 0, kind: str = "structure_fire", where: dict | None = None) -> dict:
    response = await http.post("/v1/incidents", json={"type": kind, "location": where or spot(n)})
    assert response.status_code == 201, response.text
    return response.json()


async def assign(http, incident_id: str, *unit_ids: str) -> list[dict]:
    response = await http.post(f"/v1/incidents/{incident_id}/assignments", json={"unit_ids": list(unit_ids)})
    assert response.status_code == 201, response.text
    return response.json()["assignments"]


async def close(http, incident_id: str) -> None:
    response = await http.post(f"/v1/incidents/{incident_id}/close")
    assert response.status_code == 200, response.text


async def head(http) -> int:
    response = await http.get("/v1/events", params={"limit": 1})
    assert response.status_code == 200, response.text
    return response.json()["head"]


async def next_event(ws: ClientConnection, timeout: float = WAIT_S) -> dict:
    """The next event on a stream (telemetry and replies to a unit's messages are passed over)."""
    while True:
        message = json.loads(await asyncio.wait_for(ws.recv(), timeout))
        if "seq" in message:
            return message


async def events_until(ws: ClientConnection, last_seq: int) -> list[dict]:
    got = []
    while not got or got[-1]["seq"] < last_seq:
        got.append(await next_event(ws))
    return got


async def until_closed(ws: ClientConnection) -> tuple[list[dict], int | None, str | None]:
    """Everything the server sent before it closed the socket, and the close code and reason."""
    got = []
    try:
        while True:
            got.append(await next_event(ws))
    except ConnectionClosed:
        return got, ws.close_code, ws.close_reason
    except TimeoutError:
        raise AssertionError(f"the server sent {len(got)} events (up to seq {seqs(got)[-1:]}) and then "
                             f"nothing for {WAIT_S} s, without closing the socket") from None


async def first(ws: ClientConnection, kind: str, why: str) -> list[dict]:
    """The events up to and including the first of type ``kind``."""
    got = []
    try:
        while not got or got[-1]["type"] != kind:
            got.append(await next_event(ws))
    except TimeoutError:
        raise AssertionError(f"no {kind} within {WAIT_S} s {why}; got {[e['type'] for e in got]}") from None
    return got


async def pull_the_plug(ws: ClientConnection) -> None:
    """The TCP connection goes, with no websocket closing handshake (a tunnel, a dead battery)."""
    ws.transport.abort()
    await ws.wait_closed()


def seqs(events: list[dict]) -> list[int]:
    return [e["seq"] for e in events]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# -- resume ---------------------------------------------------------------------------------------
def test_a_console_that_drops_and_resumes_five_times_gets_every_event_once_in_order(live, dispatcher):
    async def scenario():
        async with live.http(dispatcher) as http:
            stop = asyncio.Event()

            async def keep_reporting():           # EMS calls all along; every third one is handled and closed
                n = 100
                while not stop.is_set():
                    incident = await report(http, n, kind="cardiac_arrest")
                    if n % 3 == 0:
                        await assign(http, incident["id"], "M1")
                        await close(http, incident["id"])
                    n += 1
                    await asyncio.sleep(0.005)

            reporter = asyncio.create_task(keep_reporting())
            connections, last = [], 0
            for cycle, wanted in enumerate([5, 23, 1, 40, 12]):
                async with live.socket(f"/v1/stream?after={last}", dispatcher) as ws:
                    backlog_to = await head(http)
                    got = [await next_event(ws)]
                    while len(got) < wanted or got[-1]["seq"] <= backlog_to:   # the backlog, then live
                        got.append(await next_event(ws))
                    await pull_the_plug(ws)
                connections.append(got)
                last = got[-1]["seq"]
                fire = await report(http, cycle, kind="structure_fire")   # while it is away
                await assign(http, fire["id"], "E1", "E2")
                await close(http, fire["id"])
            stop.set()
            await reporter
            final = await head(http)
            async with live.socket(f"/v1/stream?after={last}", dispatcher) as ws:
                backlog = await events_until(ws, final)
                incident = await report(http, 999)
                live_events = [await next_event(ws), await next_event(ws)]
            connections.append(backlog + live_events)
            return connections, final, incident

    connections, final, incident = run(scenario())
    resumed_from = 0
    for got in connections:                       # each connection: the next seq after the last one received, then +1
        assert seqs(got) == list(range(resumed_from + 1, resumed_from + 1 + len(got)))
        resumed_from = got[-1]["seq"]
    received = [seq for got in connections for seq in seqs(got)]
    assert len(received) == len(set(received))
    assert set(received) == set(range(1, final + 3))
    assert [(e["type"], e["data"]["incident_id"]) for e in connections[-1][-2:]] == [
        ("IncidentReported", incident["id"]), ("RecommendationMade", incident["id"])]
    calls = [e for got in connections for e in got if e["type"] == "IncidentReported"
             and e["data"]["incident_type"] == "cardiac_arrest"]
    assert len(calls) >= 10                         # the reporter kept going while the console came and went


# -- slow consumers -------------------------------------------------------------------------------
def step_of(event: dict) -> str:
    """Which of a response cycle's requests recorded the event: report, assign or close."""
    if event["type"] in ("IncidentReported", "RecommendationMade"):
        return "report"
    if event["type"] == "UnitAssigned" or event["data"].get("status") == "dispatched":
        return "assign"
    return "close"


def test_a_console_that_stops_reading_is_closed_with_resync_while_the_others_keep_their_latency(
        settings, clock, dispatcher, record_property):
    """A fire answered by the whole fleet and closed is 39 events in three requests (report 2, assign 18,
    close 19); 55 of them make 2,145 events, about 1.3 MB. The slow console reads nothing meanwhile: once
    the buffers between it and the server are full, the server's send to it waits and its queue of 250
    overflows. When it reads again it gets the events that got through, then a 4409 close naming the last
    of them; it resumes from there."""
    app = create_app(replace(settings, socket_queue=250, rate_intake_per_min=0), clock=clock, city=tiny_city())
    fires = 55

    async def scenario(live: Live):
        narrow = socket.socket(socket.AF_INET, socket.SOCK_STREAM)    # a slow link: a small receive window
        narrow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)
        narrow.connect((live.host, live.port))
        narrow.setblocking(False)
        arrivals: list[dict[int, float]] = [{}, {}, {}]
        answered: dict[tuple[str, str], float] = {}

        async def keep_reading(ws, seen: dict[int, float], events: list[dict]):
            while True:
                event = await next_event(ws, timeout=SCENARIO_S)
                seen[event["seq"]] = time.monotonic()
                events.append(event)

        async with contextlib.AsyncExitStack() as stack:
            http = await stack.enter_async_context(live.http(dispatcher))
            slow = await stack.enter_async_context(live.socket(f"/v1/stream?after={UNITS}", dispatcher, sock=narrow))
            fast = [await stack.enter_async_context(live.socket(f"/v1/stream?after={UNITS}", dispatcher))
                    for _ in arrivals]
            fast_events: list[list[dict]] = [[] for _ in fast]
            readers = [asyncio.create_task(keep_reading(ws, seen, events))
                       for ws, seen, events in zip(fast, arrivals, fast_events)]
            started = time.monotonic()
            for n in range(fires):
                incident = await report(http, n)
                answered[incident["id"], "report"] = time.monotonic()
                await assign(http, incident["id"], *FLEET)
                answered[incident["id"], "assign"] = time.monotonic()
                await close(http, incident["id"])
                answered[incident["id"], "close"] = time.monotonic()
            produced_s = time.monotonic() - started
            final = await head(http)
            while any(max(seen, default=0) < final for seen in arrivals):
                assert time.monotonic() - started < SCENARIO_S - 5, "a fast console fell behind"
                await asyncio.sleep(0.01)
            for reader in readers:
                reader.cancel()
            await asyncio.gather(*readers, return_exceptions=True)

            behind, code, reason = await until_closed(slow)   # it reads again: what got through, then the close
            resumed_after = int(reason.rpartition("=")[2]) if reason.startswith("resync after=") else None
            async with live.socket(f"/v1/stream?after={resumed_after}", dispatcher) as again:
                caught_up = await events_until(again, final)
                extra = await report(http, fires)
                caught_up.append(await next_event(again))
            return final, produced_s, arrivals, fast_events, answered, behind, code, reason, caught_up, extra

    with served(app, send_buffer=16 * 1024) as live:
        final, produced_s, arrivals, fast_events, answered, behind, code, reason, caught_up, extra = run(
            scenario(live))

    assert final == UNITS + fires * 39
    for events in fast_events:
        assert seqs(events) == list(range(UNITS + 1, final + 1))
    delays = [seen[e["seq"]] - answered[e["data"]["incident_id"], step_of(e)]
              for seen, events in zip(arrivals, fast_events) for e in events]
    p50, p99, worst = (percentile(delays, q) for q in (0.5, 0.99, 1.0))
    record_property("produced_s", round(produced_s, 3))
    record_property("fast_delay_ms_p50_p99_max", [round(1000 * x, 1) for x in (p50, p99, worst)])
    assert p99 < 1.0 and worst < 2.0, f"fast consoles waited: p50 {p50:.3f} s, p99 {p99:.3f} s, max {worst:.3f} s"

    assert code == 4409 and reason == f"resync after={behind[-1]['seq']}"
    assert seqs(behind) == list(range(UNITS + 1, behind[-1]["seq"] + 1))
    assert behind[-1]["seq"] < final - 250        # it fell behind by more than its queue holds
    record_property("slow_console_closed_after", behind[-1]["seq"])
    assert seqs(caught_up) == list(range(behind[-1]["seq"] + 1, final + 2))
    assert caught_up[-1]["data"]["incident_id"] == extra["id"]


# -- the ack watchdog -----------------------------------------------------------------------------
def proposed(recommendation: dict, capability: str) -> list[str]:
    [line] = [x for x in recommendation["data"]["lines"] if x["capability"] == capability]
    return [u["unit_id"] for u in line["units"]]


async def after_a_watchdog_pass(http, ws: ClientConnection, n: int) -> list[dict]:
    """Let the watchdog (a pass every second) look at least once, then read the console up to a new report."""
    await asyncio.sleep(1.5)
    marker = await report(http, 500 + n, kind="fall")
    got = [await next_event(ws)]
    while got[-1]["type"] != "IncidentReported" or got[-1]["data"]["incident_id"] != marker["id"]:
        got.append(await next_event(ws))
    return got


def test_an_assignment_not_acknowledged_in_time_is_flagged_with_another_unit_and_an_acked_one_never(
        live, dispatcher, token, clock, settings):
    assert settings.ack_timeout_s == 30.0

    async def scenario():
        async with live.http(dispatcher) as http:
            start = await head(http)
            async with live.socket(f"/v1/stream?after={start}", dispatcher) as console, \
                    live.socket(f"/v1/units/E1/stream?after={start}", token("unit", unit="E1")) as silent, \
                    live.socket(f"/v1/units/P1/stream?after={start}", token("unit", unit="P1")) as crew:
                fire = await report(http, kind="vehicle_fire", where=IN_WEST.to_json())
                made = {a["unit_id"]: a for a in await assign(http, fire["id"], "E1", "P1")}
                to_e1, to_p1 = await next_event(silent), await next_event(crew)
                await crew.send(json.dumps({"type": "ack", "id": "ack-1", "assignment_id": made["P1"]["id"]}))
                reply = json.loads(await asyncio.wait_for(crew.recv(), WAIT_S))
                while reply.get("type") != "reply":          # AssignmentAcknowledged comes first
                    reply = json.loads(await asyncio.wait_for(crew.recv(), WAIT_S))
                clock.advance(seconds=29)
                early = await after_a_watchdog_pass(http, console, 1)
                clock.advance(seconds=2)
                flagged = await first(console, "AssignmentUnacknowledged", "after the clock passed the 30 s ack "
                                      "timeout (is watch_acks running in the app's lifespan?)")
                flagged.append(await next_event(console))
                clock.advance(minutes=10)
                later = await after_a_watchdog_pass(http, console, 2)
            flags = [e for e in (await http.get("/v1/events", params={"after": start, "limit": 5000})).json()["events"]
                     if e["type"] == "AssignmentUnacknowledged"]
            incident = (await http.get(f"/v1/incidents/{fire['id']}")).json()
            return made, to_e1, to_p1, reply, early, flagged, later, flags, incident

    made, to_e1, to_p1, reply, early, flagged, later, flags, incident = run(scenario())
    assert (to_e1["type"], to_e1["data"]["assignment_id"]) == ("UnitAssigned", made["E1"]["id"])
    assert (to_p1["type"], to_p1["data"]["assignment_id"]) == ("UnitAssigned", made["P1"]["id"])
    assert reply["id"] == "ack-1" and reply["assignment"]["acknowledged_at"] is not None
    assert "AssignmentUnacknowledged" not in {e["type"] for e in early}          # 29 s: not yet
    unacked, replacement = flagged[-2:]
    assert unacked["data"]["assignment_id"] == made["E1"]["id"] and unacked["data"]["unit_id"] == "E1"
    assert unacked["data"]["waited_s"] >= 30
    assert replacement["type"] == "RecommendationMade" and replacement["data"]["trigger"] == "unacknowledged"
    assert replacement["data"]["incident_id"] == incident["id"]
    assert proposed(replacement, "engine") and "E1" not in proposed(replacement, "engine")
    assert "AssignmentUnacknowledged" not in {e["type"] for e in later}          # ten minutes on: P1 acked
    assert [f["data"]["assignment_id"] for f in flags] == [made["E1"]["id"]]
    states = {a["unit_id"]: a for a in incident["assignments"]}
    assert states["E1"]["active"] and states["E1"]["unacknowledged_at"] is not None
    assert states["P1"]["acknowledged_at"] is not None and states["P1"]["unacknowledged_at"] is None


# -- intake to the unit ---------------------------------------------------------------------------
def test_a_units_socket_gets_its_assignment_as_soon_as_the_post_returns(live, dispatcher, token, record_property):
    async def scenario():
        delays, round_trips = [], []
        async with live.http(dispatcher) as http:
            start = await head(http)
            async with live.socket(f"/v1/units/M1/stream?after={start}", token("unit", unit="M1")) as unit:
                for n in range(20):
                    incident = await report(http, n, kind="cardiac_arrest")
                    asked = time.monotonic()
                    [made] = await assign(http, incident["id"], "M1")
                    answered = time.monotonic()
                    pushed = [await next_event(unit)]
                    delays.append(time.monotonic() - answered)
                    round_trips.append(time.monotonic() - asked)
                    pushed.append(await next_event(unit))
                    assert [(e["type"], e["data"]["unit_id"]) for e in pushed] == [("UnitAssigned", "M1"),
                                                                                  ("UnitStatusChanged", "M1")]
                    assert pushed[0]["data"]["assignment_id"] == made["id"]
                    assert pushed[1]["data"]["status"] == "dispatched"
                    await close(http, incident["id"])
                    assert [e["type"] for e in (await next_event(unit), await next_event(unit))] == [
                        "AssignmentEnded", "UnitStatusChanged"]
        return delays, round_trips

    delays, round_trips = run(scenario())
    record_property("unit_push_after_2xx_ms_median_max", [round(1000 * statistics.median(delays), 2),
                                                          round(1000 * max(delays), 2)])
    record_property("unit_push_after_post_sent_ms_median_max", [round(1000 * statistics.median(round_trips), 2),
                                                                round(1000 * max(round_trips), 2)])
    assert max(delays) < 1.0, f"the unit heard of its assignment {max(delays):.3f} s after the POST returned"
