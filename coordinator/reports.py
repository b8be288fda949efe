"""SQL reports for commanders over the event log and the unit tracks: what happened near a point.

- ``incidents_near``: incidents reported (event ``at``) in a time window within a radius of a point.
- ``units_near``: units whose sampled track came within a radius of a point in a window, each at
  its closest approach.

Both answer nearest first, in metres, never in degrees (DESIGN.md). One dialect switch, ``_spatial``:
PostgreSQL asks PostGIS (``geography`` columns of migration 0002, GiST-indexed: ``ST_DWithin`` and
``ST_Distance`` on the spheroid); SQLite filters a latitude/longitude bounding box in SQL and computes
exact great-circle distances here (``geo.haversine_m``, a sphere). The two differ by up to about
0.5 % at the radius edge. Reports read; they decide nothing and never sit on the dispatch path.

Functions here are synchronous I/O: callers on the event loop run them in a worker thread.
"""

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from geo import LatLon, haversine_m
from geo.coords import EARTH_RADIUS_M

from .log import UTCDateTime, format_at, unreachable


# -- what a report is asked and what it answers ------------------------------------------------------
@dataclass(frozen=True)
class Scope:
    """What an agency-scoped token may see: incidents involving ``agency`` (it was responsible, or one of
    its units was assigned), and the units in ``unit_ids`` (that agency's units)."""

    agency: str
    unit_ids: frozenset[str]


@dataclass(frozen=True)
class Area:
    point: LatLon
    radius_m: float
    frm: datetime
    to: datetime
    limit: int
    scope: Scope | None = None


@dataclass(frozen=True)
class IncidentNear:
    incident_id: str
    type: str
    priority: int
    address: str | None
    location: LatLon
    at: datetime
    distance_m: float
    agencies: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"incident_id": self.incident_id, "type": self.type, "priority": self.priority,
                "address": self.address, "location": self.location.to_json(), "at": format_at(self.at),
                "distance_m": round(self.distance_m, 1), "agencies": list(self.agencies)}


@dataclass(frozen=True)
class UnitNear:
    """A unit's closest approach: the sampled track point nearest the centre (the earliest such on a tie)."""

    unit_id: str
    location: LatLon
    at: datetime
    distance_m: float

    def to_json(self) -> dict[str, Any]:
        return {"unit_id": self.unit_id, "location": self.location.to_json(), "at": format_at(self.at),
                "distance_m": round(self.distance_m, 1)}


# Left out of the code's table definitions on purpose: migration 0002's derived, PostgreSQL-only
# columns and their indexes, and PostGIS's own table. Schema comparisons (Alembic's autogenerate,
# the migration test) pass this as ``include_object`` so as not to propose dropping them.
POSTGIS_ONLY = {"column": {"events.location", "track_points.position"},
                "index": {"ix_events_location", "ix_track_points_position"},
                "table": {"spatial_ref_sys"}}


def include_object(obj, name, type_, reflected, compare_to) -> bool:
    if type_ == "column":
        name = f"{obj.table.name}.{name}"
    return not (reflected and compare_to is None and name in POSTGIS_ONLY.get(type_, ()))


# -- the reports ------------------------------------------------------------------------------------
def incidents_near(engine: Engine, point: LatLon, radius_m: float, frm: datetime, to: datetime, limit: int,
                   scope: Scope | None = None) -> list[IncidentNear]:
    """Incidents whose ``IncidentReported`` event was written in [frm, to] within ``radius_m`` of ``point``,
    nearest first (then earliest)."""
    area = Area(point, radius_m, frm, to, limit, scope)
    return _reading(engine, lambda conn: _spatial(engine).incidents(conn, area))


def units_near(engine: Engine, point: LatLon, radius_m: float, frm: datetime, to: datetime, limit: int,
               scope: Scope | None = None) -> list[UnitNear]:
    """Units with a sampled track point in [frm, to] within ``radius_m`` of ``point``: one row per unit at
    its closest approach, nearest first."""
    area = Area(point, radius_m, frm, to, limit, scope)
    return _reading(engine, lambda conn: _spatial(engine).units(conn, area))


def _reading(engine: Engine, fn: Callable[[Connection], list]) -> list:
    try:
        with engine.connect() as conn:
            return fn(conn)
    except sa.exc.OperationalError as err:
        raise unreachable("The event log", err) from None


class Spatial(Protocol):
    def incidents(self, conn: Connection, area: Area) -> list[IncidentNear]: ...
    def units(self, conn: Connection, area: Area) -> list[UnitNear]: ...


def _spatial(engine: Engine) -> Spatial:
    """The one dialect switch of this module."""
    return PostGIS() if engine.dialect.name == "postgresql" else BoundingBox()


_NAMED = re.compile(r"(?<![:\w]):(\w+)")  # a bound name such as :frm, not a cast such as ::geography


def _typed(sql: str, params: dict[str, Any], prefix: str = "") -> sa.TextClause:
    """The statement with the parameters it names bound; times go through the log's UTC type both ways.
    ``prefix`` (say ``EXPLAIN``) goes in front, for looking at the plan."""
    named = set(_NAMED.findall(sql))
    bound = [sa.bindparam(name, value, type_=UTCDateTime() if isinstance(value, datetime) else None)
             for name, value in params.items() if name in named]
    return sa.text(f"{prefix} {sql}").bindparams(*bound).columns(at=UTCDateTime())


def _incident(data: dict[str, Any], at: datetime, distance_m: float) -> IncidentNear:
    return IncidentNear(data["incident_id"], data["incident_type"], data["priority"], data.get("address"),
                        LatLon.from_json(data["location"]), at, distance_m, tuple(data.get("agencies") or ()))


# -- PostgreSQL: PostGIS geography, GiST-indexed -------------------------------------------------------
_CENTRE = "ST_SetSRID(ST_MakePoint(:lon, :lat), 4326)::geography"


class PostGIS:
    """``ST_DWithin`` (which uses the GiST index) and ``ST_Distance`` on geography: metres on the spheroid."""

    SCOPE_INCIDENTS = """
        AND (e.data->'agencies' @> jsonb_build_array(CAST(:agency AS text))
             OR EXISTS (SELECT 1 FROM events a
                        WHERE a.incident_id = e.incident_id AND a.type = 'UnitAssigned'
                          AND a.data->>'unit_id' IN (SELECT jsonb_array_elements_text(CAST(:units AS jsonb)))))"""
    SCOPE_UNITS = "AND t.unit_id IN (SELECT jsonb_array_elements_text(CAST(:units AS jsonb)))"

    def incidents_query(self, area: Area, prefix: str = "") -> sa.TextClause:
        sql = f"""
            SELECT e.seq, e.at, e.data, ST_Distance(e.location, {_CENTRE}) AS distance_m
            FROM events e
            WHERE e.type = 'IncidentReported' AND e.location IS NOT NULL
              AND e.at BETWEEN :frm AND :to
              AND ST_DWithin(e.location, {_CENTRE}, :radius)
              {self.SCOPE_INCIDENTS if area.scope else ""}
            ORDER BY distance_m, e.at, e.seq
            LIMIT :limit"""
        return _typed(sql, _params(area), prefix)

    def units_query(self, area: Area, prefix: str = "") -> sa.TextClause:
        sql = f"""
            SELECT unit_id, at, lat, lon, distance_m FROM (
                SELECT DISTINCT ON (t.unit_id) t.unit_id, t.at, t.lat, t.lon,
                       ST_Distance(t.position, {_CENTRE}) AS distance_m
                FROM track_points t
                WHERE t.at BETWEEN :frm AND :to
                  AND ST_DWithin(t.position, {_CENTRE}, :radius)
                  {self.SCOPE_UNITS if area.scope else ""}
                ORDER BY t.unit_id, distance_m, t.at, t.id
            ) closest
            ORDER BY distance_m, at, unit_id
            LIMIT :limit"""
        return _typed(sql, _params(area), prefix)

    def incidents(self, conn: Connection, area: Area) -> list[IncidentNear]:
        return [_incident(row.data, row.at, row.distance_m) for row in conn.execute(self.incidents_query(area))]

    def units(self, conn: Connection, area: Area) -> list[UnitNear]:
        return [UnitNear(row.unit_id, LatLon(row.lat, row.lon), row.at, row.distance_m)
                for row in conn.execute(self.units_query(area))]


def _params(area: Area, **more: Any) -> dict[str, Any]:
    params = {"lat": area.point.lat, "lon": area.point.lon, "radius": float(area.radius_m),
              "frm": area.frm, "to": area.to, "limit": area.limit, **more}
    if area.scope is not None:
        params["agency"] = area.scope.agency
        params["units"] = json.dumps(sorted(area.scope.unit_ids))
    return params


# -- SQLite: a bounding box in SQL, exact distances here ----------------------------------------------
@dataclass(frozen=True)
class Box:
    """Latitude range and two longitude ranges (the second repeats the first unless the box crosses
    the antimeridian) holding every point within a radius on the haversine sphere."""

    lat_min: float
    lat_max: float
    lon_ranges: tuple[tuple[float, float], tuple[float, float]]


def bounding_box(point: LatLon, radius_m: float) -> Box:
    angle = radius_m / EARTH_RADIUS_M * (1 + 1e-6) + 1e-9  # radians, a hair wide against rounding
    lat_min, lat_max = point.lat - math.degrees(angle), point.lat + math.degrees(angle)
    if lat_min <= -90 or lat_max >= 90 or angle >= math.pi / 2:  # a pole lies inside: every longitude
        whole = (-180.0, 180.0)
        return Box(max(lat_min, -90.0), min(lat_max, 90.0), (whole, whole))
    reach = math.degrees(math.asin(min(1.0, math.sin(angle) / math.cos(math.radians(point.lat)))))
    west, east = point.lon - reach, point.lon + reach
    if west < -180:
        ranges = ((-180.0, east), (west + 360, 180.0))
    elif east > 180:
        ranges = ((west, 180.0), (-180.0, east - 360))
    else:
        ranges = ((west, east), (west, east))
    return Box(lat_min, lat_max, ranges)


def _box_params(area: Area) -> dict[str, Any]:
    box = bounding_box(area.point, area.radius_m)
    (w1, e1), (w2, e2) = box.lon_ranges
    return _params(area, lat_min=box.lat_min, lat_max=box.lat_max, w1=w1, e1=e1, w2=w2, e2=e2)


def _in_box(lat: str, lon: str) -> str:
    return f"{lat} BETWEEN :lat_min AND :lat_max AND ({lon} BETWEEN :w1 AND :e1 OR {lon} BETWEEN :w2 AND :e2)"


class BoundingBox:
    """The embedded default: no spatial index, the box cuts what Python measures with haversine."""

    SCOPE_INCIDENTS = """
        AND (EXISTS (SELECT 1 FROM json_each(e.data, '$.agencies') WHERE value = :agency)
             OR EXISTS (SELECT 1 FROM events a
                        WHERE a.incident_id = e.incident_id AND a.type = 'UnitAssigned'
                          AND json_extract(a.data, '$.unit_id') IN (SELECT value FROM json_each(:units))))"""
    SCOPE_UNITS = "AND t.unit_id IN (SELECT value FROM json_each(:units))"

    def incidents_query(self, area: Area, prefix: str = "") -> sa.TextClause:
        where = _in_box("json_extract(e.data, '$.location.lat')", "json_extract(e.data, '$.location.lon')")
        sql = f"""
            SELECT e.seq, e.at, e.data FROM events e
            WHERE e.type = 'IncidentReported' AND e.at BETWEEN :frm AND :to AND {where}
              {self.SCOPE_INCIDENTS if area.scope else ""}"""
        return _typed(sql, _box_params(area), prefix)

    def units_query(self, area: Area, prefix: str = "") -> sa.TextClause:
        sql = f"""
            SELECT t.id, t.unit_id, t.at, t.lat, t.lon FROM track_points t
            WHERE t.at BETWEEN :frm AND :to AND {_in_box("t.lat", "t.lon")}
              {self.SCOPE_UNITS if area.scope else ""}"""
        return _typed(sql, _box_params(area), prefix)

    def incidents(self, conn: Connection, area: Area) -> list[IncidentNear]:
        found = []
        for row in conn.execute(self.incidents_query(area)):
            data = json.loads(row.data)
            distance = haversine_m(area.point, LatLon.from_json(data["location"]))
            if distance <= area.radius_m:
                found.append((distance, row.at, row.seq, data))
        found.sort(key=lambda f: f[:3])
        return [_incident(data, at, distance) for distance, at, _, data in found[:area.limit]]

    def units(self, conn: Connection, area: Area) -> list[UnitNear]:
        return closest_approaches(
            ((row.unit_id, LatLon(row.lat, row.lon), row.at, row.id) for row in conn.execute(self.units_query(area))),
            area.point, area.radius_m, area.limit)


def closest_approaches(points, centre: LatLon, radius_m: float, limit: int) -> list[UnitNear]:
    """Per unit, its track point nearest ``centre`` within ``radius_m`` (earliest on a tie); nearest first."""
    best: dict[str, tuple[float, datetime, int, LatLon]] = {}
    for unit_id, where, at, ident in points:
        distance = haversine_m(centre, where)
        if distance <= radius_m and (unit_id not in best or (distance, at, ident) < best[unit_id][:3]):
            best[unit_id] = (distance, at, ident, where)
    ranked = sorted(best.items(), key=lambda item: (item[1][0], item[1][1], item[0]))
    return [UnitNear(unit_id, where, at, distance) for unit_id, (distance, at, _, where) in ranked[:limit]]
