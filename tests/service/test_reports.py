"""Spatial reports (incidents near, units near) on SQLite and on PostgreSQL + PostGIS, through the HTTP API,
checked against a brute-force haversine computation over what was fed in."""

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from coordinator import events as ev
from coordinator import migrations, reports
from coordinator.app import create_app
from coordinator.auth import issue
from coordinator.errors import Unavailable
from coordinator.handlers import Decision
from coordinator.log import format_at, make_engine, migrate, parse_at
from coordinator.settings import Settings, resolve_secret
from coordinator.tracks import track_points_table
from geo import LatLon, haversine_m
from geo.coords import EARTH_RADIUS_M

from ..adapters import BACKENDS, fresh_engine, fresh_log
from ..builders import Clock, tiny_city
from ..conftest import postgres_url

CENTRE = LatLon(37.75, -122.45)  # the middle of the tiny city
RADIUS_M = 2000.0
SPHEROID_SLACK = 0.005  # PostGIS measures on the spheroid, haversine on a sphere: up to ~0.5 % apart
POSTGRES = [b for b in BACKENDS if getattr(b, "values", None) == ("postgres",)]


def towards(start: LatLon, bearing_deg: float, distance_m: float) -> LatLon:
    """The point ``distance_m`` from ``start`` along ``bearing_deg`` on the haversine sphere."""
    angle, bearing = distance_m / EARTH_RADIUS_M, math.radians(bearing_deg)
    lat1, lon1 = math.radians(start.lat), math.radians(start.lon)
    lat2 = math.asin(math.sin(lat1) * math.cos(angle) + math.cos(lat1) * math.sin(angle) * math.cos(bearing))
    lon2 = lon1 + math.atan2(math.sin(bearing) * math.sin(angle) * math.cos(lat1),
                             math.cos(angle) - math.sin(lat1) * math.sin(lat2))
    return LatLon(math.degrees(lat2), (math.degrees(lon2) + 540) % 360 - 180)


def iso(value: datetime) -> str:
    return format_at(value)


@dataclass
class Service:
    backend: str
    client: TestClient
    clock: Clock
    mint: Callable[..., dict]

    @property
    def engine(self):
        return self.client.app.state.node.log.engine

    def get(self, path: str, headers: dict | None = None, **params):
        return self.client.get(path, params=params, headers=self.mint("commander") if headers is None else headers)


@pytest.fixture(params=BACKENDS)
def service(request, tmp_path):
    """The whole service (HTTP API, node, log, tracks) on a fresh SQLite file or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        settings = Settings(data_dir=tmp_path, poll_interval_s=0.2)
    else:
        fresh_engine(request.param, tmp_path).dispose()  # skips without CP_TEST_DATABASE_URL; empties the schema
        settings = Settings(data_dir=tmp_path, poll_interval_s=0.2, database_url=postgres_url(),
                            secret="reports-test-secret-0123456789")
    clock, secret = Clock(), resolve_secret(settings)

    def mint(role="dispatcher", agency=None, unit=None):
        return {"Authorization": "Bearer " + issue(secret, role, unit or role, int(clock().timestamp()), None,
                                                   agency, unit)}

    with TestClient(create_app(settings, clock=clock, city=tiny_city())) as client:
        yield Service(request.param, client, clock, mint)


# -- a scenario: incidents reported around the centre, units driving past ------------------------------
@dataclass(frozen=True)
class Reported:
    name: str
    id: str
    type: str
    location: LatLon
    at: datetime
    agencies: tuple[str, ...]


# name, type, bearing, metres from the centre; one minute apart, in this order
INCIDENTS = [
    ("early", "fall", 10, 400),                     # inside the radius, before the window
    ("a", "fall", 0, 150),                          # the window opens at its time exactly
    ("b", "robbery_in_progress", 90, 600),
    ("edge_out", "fall", 45, RADIUS_M * 1.05),      # 5 % beyond the radius: out on sphere and spheroid
    ("far", "medical_emergency", 135, 3500),
    ("c", "structure_fire", 200, 1200),
    ("edge_in", "vehicle_fire", 250, RADIUS_M * 0.95),  # 5 % inside the radius: in on both
    ("d", "cardiac_arrest", 300, 1700),             # the window closes at its time exactly
    ("late", "fall", 20, 500),                      # inside the radius, after the window
]


def report_incidents(s: Service) -> dict[str, Reported]:
    out = {}
    for name, kind, bearing, distance in INCIDENTS:
        s.clock.advance(minutes=1)
        where = towards(CENTRE, bearing, distance)
        response = s.client.post("/v1/incidents", json={"type": kind, "location": where.to_json(),
                                                       "address": f"{name} street"}, headers=s.mint("dispatcher"))
        assert response.status_code == 201, response.text
        body = response.json()
        out[name] = Reported(name, body["id"], kind, where, parse_at(body["opened_at"]), tuple(body["agencies"]))
        assert out[name].at == s.clock()  # the event's time is the clock's: the window bounds below are exact
    return out


def expected_incidents(reported, frm, to, visible=lambda r: True) -> list[tuple[str, float]]:
    """Brute force: every reported incident in [frm, to] within the radius by haversine, nearest first."""
    found = [(haversine_m(CENTRE, r.location), r.name) for r in reported.values()
             if frm <= r.at <= to and haversine_m(CENTRE, r.location) <= RADIUS_M and visible(r)]
    return [(name, distance) for distance, name in sorted(found)]


def answered(s: Service, reported, body) -> list[tuple[str, float]]:
    names = {r.id: r.name for r in reported.values()}
    return [(names[i["incident_id"]], i["distance_m"]) for i in body["incidents"]]


def assert_same(got: list[tuple[str, float]], want: list[tuple[str, float]]) -> None:
    assert [name for name, _ in got] == [name for name, _ in want]
    for (name, distance), (_, exact) in zip(got, want):
        assert distance == pytest.approx(exact, rel=SPHEROID_SLACK, abs=0.2), name


# unit: fixes as (bearing, metres) at successive 10 s steps inside the window (None: no fix at that step)
TRACKS = {
    "E1": [(0, 1500), (0, 800), (90, 300), (180, 900)],          # passes 300 m east of the centre
    "P1": [(270, 2500), (270, 1500), (270, 1800), None],          # closest 1500 m
    "M1": [(45, RADIUS_M * 1.05), (45, 2600), None, None],        # never within the radius
    "P2": [None, (160, 700), (160, 900), None],                   # 700 m in the window; 50 m after it
    "T1": [(10, 1000), (100, 1400), (10, 1000), None],            # the same point twice: the earlier fix counts
    "M2": [None, None, (300, 1950), (300, RADIUS_M * 1.2)],
}
BEFORE = {"E2": (0, 100)}               # inside the radius, a minute before the window
AFTER = {"P2": (0, 50), "E2": (0, 50)}  # inside the radius, a minute after it


def drive(s: Service) -> tuple[list[tuple[str, LatLon, datetime]], datetime, datetime]:
    """Send the position reports; return every fix sent, and the window's first and last fix times."""
    sent = []

    def fix(unit_id, bearing, distance):
        where = towards(CENTRE, bearing, distance)
        response = s.client.put(f"/v1/units/{unit_id}/position", json=where.to_json(), headers=s.mint("admin"))
        assert response.status_code == 200 and response.json()["sampled"], response.text
        sent.append((unit_id, where, s.clock()))

    s.clock.advance(minutes=1)
    for unit_id, (bearing, distance) in BEFORE.items():
        fix(unit_id, bearing, distance)
    s.clock.advance(minutes=1)
    start = s.clock()
    for step in range(4):
        for unit_id, track in TRACKS.items():
            if track[step] is not None:
                s.clock.advance(seconds=1)
                fix(unit_id, *track[step])
        s.clock.advance(seconds=10)
    end = sent[-1][2]
    s.clock.advance(minutes=1)
    for unit_id, (bearing, distance) in AFTER.items():
        fix(unit_id, bearing, distance)
    return sent, start, end


def expected_units(sent, frm, to, visible=lambda unit_id: True, radius_m=RADIUS_M) -> list[tuple[str, float, datetime]]:
    """Brute force: per unit its closest fix in [frm, to] within the radius (earliest on a tie), nearest first."""
    best = {}
    for unit_id, where, at in sent:
        distance = haversine_m(CENTRE, where)
        inside = frm <= at <= to and distance <= radius_m and visible(unit_id)
        if inside and (unit_id not in best or (distance, at) < best[unit_id]):
            best[unit_id] = (distance, at)
    return [(unit_id, distance, at) for unit_id, (distance, at) in sorted(best.items(), key=lambda b: (b[1], b[0]))]


# -- the reports answer what brute force says -----------------------------------------------------------
def test_incidents_near_are_the_reported_ones_in_the_window_and_radius_nearest_first(service):
    reported = report_incidents(service)
    frm, to = reported["a"].at, reported["d"].at
    response = service.get("/v1/reports/incidents-near", lat=CENTRE.lat, lon=CENTRE.lon, radius_m=RADIUS_M,
                           **{"from": iso(frm), "to": iso(to)})
    assert response.status_code == 200, response.text
    body = response.json()
    want = expected_incidents(reported, frm, to)
    assert [name for name, _ in want] == ["a", "b", "c", "d", "edge_in"]  # the scenario is what it claims
    assert_same(answered(service, reported, body), want)
    assert body["count"] == 5 and body["radius_m"] == RADIUS_M and body["from"] == iso(frm)
    first = body["incidents"][0]
    a = reported["a"]
    assert first == {"incident_id": a.id, "type": "fall", "priority": 3, "address": "a street",
                     "location": a.location.to_json(), "at": iso(a.at), "distance_m": first["distance_m"],
                     "agencies": list(a.agencies)}


def test_the_window_bounds_are_inclusive_to_the_microsecond(service):
    reported = report_incidents(service)
    a, d = reported["a"].at, reported["d"].at
    tick = timedelta(microseconds=1)
    for frm, to in [(a, d), (a + tick, d - tick), (a - tick, a), (d, d + tick), (a + tick, a + tick * 2)]:
        body = service.get("/v1/reports/incidents-near", lat=CENTRE.lat, lon=CENTRE.lon, radius_m=RADIUS_M,
                           **{"from": iso(frm), "to": iso(to)}).json()
        assert_same(answered(service, reported, body), expected_incidents(reported, frm, to))
    inner = service.get("/v1/reports/incidents-near", lat=CENTRE.lat, lon=CENTRE.lon, radius_m=RADIUS_M,
                        **{"from": iso(a + tick), "to": iso(d - tick)}).json()
    assert {name for name, _ in answered(service, reported, inner)} == {"b", "c", "edge_in"}


def test_limit_keeps_the_nearest_and_a_smaller_radius_drops_the_farther(service):
    reported = report_incidents(service)
    frm, to = reported["early"].at, reported["late"].at
    params = {"lat": CENTRE.lat, "lon": CENTRE.lon, "from": iso(frm), "to": iso(to)}
    top = service.get("/v1/reports/incidents-near", radius_m=RADIUS_M, limit=2, **params).json()
    assert [name for name, _ in answered(service, reported, top)] == ["a", "early"]
    small = service.get("/v1/reports/incidents-near", radius_m=1000, **params).json()
    assert [name for name, _ in answered(service, reported, small)] == ["a", "early", "late", "b"]
    # a point away from the centre: distances are measured from it, not from the centre
    other = towards(CENTRE, 200, 1200)
    near_c = service.get("/v1/reports/incidents-near", radius_m=300, **{**params, "lat": other.lat, "lon": other.lon})
    [only] = near_c.json()["incidents"]
    assert only["incident_id"] == reported["c"].id and only["distance_m"] < 1.0


def test_units_near_give_each_unit_its_closest_approach_in_the_window(service):
    sent, start, end = drive(service)
    response = service.get("/v1/reports/units-near", lat=CENTRE.lat, lon=CENTRE.lon, radius_m=RADIUS_M,
                           **{"from": iso(start), "to": iso(end)})
    assert response.status_code == 200, response.text
    got = response.json()["units"]
    want = expected_units(sent, start, end)
    assert [u for u, _, _ in want] == ["E1", "P2", "T1", "P1", "M2"]  # E2/M1 never count; P2's 50 m is too late
    assert [u["unit_id"] for u in got] == [u for u, _, _ in want]
    for row, (unit_id, distance, at) in zip(got, want):
        assert row["distance_m"] == pytest.approx(distance, rel=SPHEROID_SLACK), unit_id
        assert row["at"] == iso(at), unit_id  # the time of that closest point (T1: the earlier of its ties)
    assert {u["unit_id"]: u["agency_id"] for u in got} == {"E1": "fd", "P2": "pd", "T1": "fd", "P1": "pd", "M2": "ems"}
    later = service.get("/v1/reports/units-near", lat=CENTRE.lat, lon=CENTRE.lon, radius_m=RADIUS_M,
                        **{"from": iso(start), "to": iso(service.clock())}).json()["units"]
    want_later = expected_units(sent, start, service.clock())
    assert [u["unit_id"] for u in later] == [u for u, _, _ in want_later]
    # P2 and E2 stood at the same place at the same moment: a tie, broken by unit id
    assert [u["unit_id"] for u in later[:3]] == ["E2", "P2", "E1"]
    assert [u["distance_m"] for u in later[:3]] == pytest.approx([50, 50, 300], rel=SPHEROID_SLACK)


# -- who may ask, and what an agency's token sees ----------------------------------------------------
def test_an_agency_token_sees_only_incidents_involving_its_agency_and_only_its_units(service):
    reported = report_incidents(service)
    assigned = service.client.post(f"/v1/incidents/{reported['a'].id}/assignments", json={"unit_ids": ["P1"]},
                                   headers=service.mint("dispatcher"))
    assert assigned.status_code == 201, assigned.text  # a police unit sent to a fall: police are now involved
    frm, to = reported["early"].at, reported["late"].at
    params = {"lat": CENTRE.lat, "lon": CENTRE.lon, "radius_m": RADIUS_M, "from": iso(frm), "to": iso(to)}
    police = service.get("/v1/reports/incidents-near", service.mint("dispatcher", agency="pd"), **params).json()
    want = expected_incidents(reported, frm, to, lambda r: "pd" in r.agencies or r.name == "a")
    assert_same(answered(service, reported, police), want)
    names = [name for name, _ in want]
    assert "a" in names and "b" in names and "d" not in names and "early" not in names  # d: fire + EMS only
    everyone = service.get("/v1/reports/incidents-near", **params).json()
    assert len(everyone["incidents"]) > len(police["incidents"])

    sent, start, end = drive(service)
    units_params = {**params, "from": iso(start), "to": iso(end)}
    for agency in ("pd", "ems"):
        seen = service.get("/v1/reports/units-near", service.mint("dispatcher", agency=agency), **units_params)
        mine = {u.id for u in tiny_city().units if u.agency_id == agency}
        want_units = expected_units(sent, start, end, mine.__contains__)
        assert [u["unit_id"] for u in seen.json()["units"]] == [u for u, _, _ in want_units]
        assert want_units and all(u["agency_id"] == agency for u in seen.json()["units"])


def test_a_unit_token_may_not_read_reports_and_commanders_dispatchers_admins_may(service):
    now = service.clock()
    params = {"lat": CENTRE.lat, "lon": CENTRE.lon, "radius_m": 500, "from": iso(now - timedelta(hours=1)),
              "to": iso(now)}
    for path in ("/v1/reports/incidents-near", "/v1/reports/units-near"):
        refused = service.get(path, service.mint("unit", unit="E1"), **params)
        assert refused.status_code == 403 and "not a unit token" in refused.json()["message"]
        for role in ("commander", "dispatcher", "admin"):
            assert service.get(path, service.mint(role), **params).status_code == 200
        assert service.client.get(path, params=params).status_code == 401


# -- bad input: 4xx with a message a person understands (validation runs before any SQL) ----------------
GOOD = {"lat": 37.75, "lon": -122.45, "radius_m": 500, "from": "2026-11-26T19:00:00Z", "to": "2026-11-26T20:00:00Z"}


@pytest.mark.parametrize("path", ["/v1/reports/incidents-near", "/v1/reports/units-near"])
@pytest.mark.parametrize("change, status, says", [
    ({"radius_m": 0}, 422, "radius_m must be from 1 to 100,000 metres, got 0"),
    ({"radius_m": 1e9}, 422, "radius_m must be from 1 to 100,000 metres, got 1e+09"),
    ({"radius_m": "nan"}, 422, "radius_m must be from 1 to 100,000 metres, got nan"),
    ({"from": "2026-11-26T21:00:00Z"}, 422, "is after to"),
    ({"from": "2026-10-17T20:00:00Z"}, 422, "spans 40.0 days; a report covers at most 31 days"),
    ({"lat": 91}, 422, "latitude must be a number between -90 and 90, got 91.0"),
    ({"lon": -181}, 422, "longitude must be a number between -180 and 180"),
    ({"limit": 0}, 422, "limit must be from 1 to 1000, got 0"),
    ({"limit": 1001}, 422, "limit must be from 1 to 1000, got 1001"),
    ({"to": "2026-11-26T20:00:00"}, 422, "needs a time zone"),
    ({"from": "yesterday"}, 422, "is not an ISO 8601 time"),
    ({"lat": None}, 422, "query.lat: Field required"),
    ({"from": None}, 422, "query.from: Field required"),
    ({"radius_m": "wide"}, 422, "query.radius_m: Input should be a valid number"),
])
def test_bad_report_input_is_a_4xx_that_says_what_is_wrong(client, token, path, change, status, says):
    params = {k: v for k, v in {**GOOD, **change}.items() if v is not None}
    response = client.get(path, params=params, headers=token("commander"))
    assert response.status_code == status, response.text
    assert response.json()["error"] == "invalid" and says in response.json()["message"]


def test_the_edges_of_the_limits_are_accepted(client, token):
    edges = {**GOOD, "radius_m": 1, "limit": 1000, "from": "2026-10-26T20:00:00Z"}  # exactly 31 days
    assert client.get("/v1/reports/incidents-near", params=edges, headers=token("commander")).status_code == 200
    edges = {**GOOD, "radius_m": 100_000, "limit": 1, "from": GOOD["to"]}  # an instant
    assert client.get("/v1/reports/units-near", params=edges, headers=token("commander")).status_code == 200


def test_an_unreachable_database_is_unavailable_not_a_crash(tmp_path):
    at = datetime.fromisoformat("2026-11-26T20:00:00+00:00")
    engines = [sa.create_engine(f"sqlite:///{tmp_path / 'missing' / 'dir' / 'log.db'}"),
               make_engine("postgresql+psycopg://postgres@127.0.0.1:1/nowhere?connect_timeout=2")]
    for engine in engines:
        for report in (reports.incidents_near, reports.units_near):
            with pytest.raises(Unavailable, match="unreachable") as refused:
                report(engine, CENTRE, 500, at, at, 10)
            assert "127.0.0.1" not in refused.value.message  # where the database lives stays in the server's log
        engine.dispose()


# -- the bounding box of the embedded default never cuts a point inside the radius ---------------------
@pytest.mark.parametrize("centre", [CENTRE, LatLon(0, 179.9), LatLon(-10, -179.95), LatLon(89.5, 20),
                                    LatLon(-89.99, 0), LatLon(60, 0)])
@pytest.mark.parametrize("radius_m", [1, 2000, 100_000])
def test_the_bounding_box_holds_every_point_within_the_radius(centre, radius_m):
    box = reports.bounding_box(centre, radius_m)
    for bearing in range(0, 360, 5):
        for fraction in (0.5, 0.999, 1.0):
            p = towards(centre, bearing, radius_m * fraction)
            assert haversine_m(centre, p) == pytest.approx(radius_m * fraction, rel=1e-5)
            assert box.lat_min <= p.lat <= box.lat_max, (bearing, fraction, p)
            assert any(w <= p.lon <= e for w, e in box.lon_ranges), (bearing, fraction, p)
    assert box.lat_max - box.lat_min <= 2 * (math.degrees(radius_m / EARTH_RADIUS_M) * 1.0001 + 1e-7)  # not loose


# -- PostgreSQL: the generated geography columns and their GiST indexes ---------------------------------
@pytest.mark.parametrize("service", POSTGRES, indirect=True)
def test_postgres_fills_the_geography_columns_and_the_log_stays_append_only_and_verified(service):
    reported = report_incidents(service)
    sent, _, _ = drive(service)
    node = service.client.app.state.node
    records = node.log.read(0)
    with service.engine.connect() as conn:
        located = conn.execute(sa.text("SELECT count(*) FROM events WHERE location IS NOT NULL")).scalar()
        points = conn.execute(sa.text(
            "SELECT incident_id, ST_Y(location::geometry), ST_X(location::geometry) "
            "FROM events WHERE location IS NOT NULL")).all()
        tracks = conn.execute(sa.text(
            "SELECT count(*), count(position), max(abs(ST_Y(position::geometry) - lat) + "
            "abs(ST_X(position::geometry) - lon)) FROM track_points")).one()
        with pytest.raises(sa.exc.DBAPIError, match="append-only"):
            conn.execute(sa.text("UPDATE events SET actor = 'someone' WHERE seq = 1"))
    assert located == sum(1 for r in records if "location" in r.data) == len(INCIDENTS)
    assert {i: (lat, lon) for i, lat, lon in points} == {
        r.id: pytest.approx((r.location.lat, r.location.lon), abs=1e-12) for r in reported.values()}
    assert tracks[0] == tracks[1] == len(sent) and tracks[2] < 1e-12
    assert node.log.verify().ok


@pytest.mark.parametrize("backend", POSTGRES)
def test_postgres_migration_0002_adds_immutable_generated_columns_and_goes_down_and_up_again(backend, tmp_path):
    from alembic import command
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    engine = fresh_engine(backend, tmp_path)
    migrate(engine)
    generated = ("SELECT table_name || '.' || column_name FROM information_schema.columns "
                 "WHERE is_generated = 'ALWAYS' AND table_schema = 'public' ORDER BY 1")
    volatility = ("SELECT DISTINCT p.provolatile FROM pg_proc p WHERE p.proname IN ('st_makepoint', 'st_setsrid') "
                  "OR p.oid = (SELECT castfunc FROM pg_cast WHERE castsource = 'geometry'::regtype "
                  "AND casttarget = 'geography'::regtype)")
    with engine.connect() as conn:
        assert conn.execute(sa.text(generated)).scalars().all() == ["events.location", "track_points.position"]
        assert conn.execute(sa.text(volatility)).scalars().all() == ["i"]  # PostgreSQL would refuse anything else
    config = Config()
    config.set_main_option("script_location", str(Path(migrations.__file__).parent))
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "0001")
    with engine.connect() as conn:
        assert conn.execute(sa.text(generated)).scalars().all() == []
        assert conn.execute(sa.text("SELECT count(*) FROM pg_indexes WHERE indexname IN "
                                    "('ix_events_location', 'ix_track_points_position')")).scalar() == 0
    migrate(engine)
    with engine.connect() as conn:
        assert conn.execute(sa.text(generated)).scalars().all() == ["events.location", "track_points.position"]
        head = ScriptDirectory.from_config(config).get_current_head()  # migrate goes on past 0002 to the head
        assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar() == head
    engine.dispose()


@pytest.mark.parametrize("backend", POSTGRES)
def test_postgres_report_queries_use_the_gist_indexes_at_a_realistic_size(backend, tmp_path):
    log = fresh_log(backend, tmp_path, Clock())
    start = log.clock()
    # 20,000 track points of 200 units over a day across a 30 km square; 5,000 incidents over the same day
    points = []
    for n in range(20_000):
        where = towards(CENTRE, (n * 137.508) % 360, 15_000 * math.sqrt((n % 997) / 997))
        points.append({"unit_id": f"U{n % 200}", "at": start + timedelta(seconds=4.32 * n),
                       "lat": where.lat, "lon": where.lon, "heading": None, "speed": None})
    with log.engine.begin() as conn:
        conn.execute(track_points_table.insert(), points)
    incidents = []
    for batch in range(50):
        events = []
        for k in range(100):
            n = batch * 100 + k
            where = towards(CENTRE, (n * 222.5) % 360, 15_000 * math.sqrt((n % 991) / 991))
            events.append(ev.IncidentReported(f"i-{n}", "fall", 3, where.to_json(), iso(log.clock()), [], ["ems"]))
        log.append(Decision(tuple(events), {e.stream(): 0 for e in events}), "test:load")
        incidents += events
        log.clock.advance(seconds=1700)
    with log.engine.begin() as conn:
        conn.execute(sa.text("ANALYZE events"))
        conn.execute(sa.text("ANALYZE track_points"))
    area = reports.Area(CENTRE, 500, start, log.clock(), 100)
    spatial = reports.PostGIS()
    with log.engine.connect() as conn:
        unit_plan = "\n".join(conn.execute(spatial.units_query(area, "EXPLAIN")).scalars())
        incident_plan = "\n".join(conn.execute(spatial.incidents_query(area, "EXPLAIN")).scalars())
    assert "ix_track_points_position" in unit_plan and "Seq Scan" not in unit_plan, unit_plan
    assert "ix_events_location" in incident_plan and "Seq Scan on events" not in incident_plan, incident_plan
    # and the answers still match brute force at this size
    found = reports.units_near(log.engine, CENTRE, 500, start, log.clock(), 1000)
    brute = expected_units([(p["unit_id"], LatLon(p["lat"], p["lon"]), p["at"]) for p in points],
                           start, log.clock(), radius_m=500)
    want = {unit_id: distance for unit_id, distance, _ in brute}
    assert len(found) > 10 and {u.unit_id for u in found} == set(want)
    assert all(u.distance_m == pytest.approx(want[u.unit_id], rel=SPHEROID_SLACK, abs=0.5) for u in found)
    assert [u.distance_m for u in found] == sorted(u.distance_m for u in found)
    near = reports.incidents_near(log.engine, CENTRE, 500, start, log.clock(), 1000)
    exact = {e.incident_id: haversine_m(CENTRE, LatLon.from_json(e.location)) for e in incidents}
    assert len(near) > 5 and {i.incident_id for i in near} == {i for i, d in exact.items() if d <= 500}
    assert all(i.distance_m == pytest.approx(exact[i.incident_id], rel=SPHEROID_SLACK, abs=0.5) for i in near)
    log.engine.dispose()
