"""AVL telemetry: where units are. Not decisions, so not in the hash-chained log.

The latest position of every unit lives in memory; a sampled track (at most one point per
unit every ``min_interval_s`` unless it moved ``min_distance_m``) is kept for replay.
"""

import threading
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from geo import LatLon, haversine_m

from .log import UTCDateTime, format_at, metadata, parse_at, unreachable

track_points_table = sa.Table(
    "track_points", metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("unit_id", sa.String(64), nullable=False),
    sa.Column("at", UTCDateTime(), nullable=False),
    sa.Column("lat", sa.Float(), nullable=False),
    sa.Column("lon", sa.Float(), nullable=False),
    sa.Column("heading", sa.Float(), nullable=True),
    sa.Column("speed", sa.Float(), nullable=True),
    sa.Index("ix_track_points_unit_at", "unit_id", "at"),
)


@dataclass(frozen=True)
class Fix:
    location: LatLon
    at: datetime
    heading: float | None = None
    speed: float | None = None

    def to_json(self) -> dict:
        return {**self.location.to_json(), "at": format_at(self.at), "heading": self.heading, "speed": self.speed}

    @classmethod
    def from_json(cls, doc: dict) -> "Fix":
        return cls(LatLon(doc["lat"], doc["lon"]), parse_at(doc["at"]), doc.get("heading"), doc.get("speed"))


class Tracks:
    def __init__(self, engine: Engine, min_interval_s: float = 5.0, min_distance_m: float = 30.0):
        self.engine = engine
        self.min_interval_s = min_interval_s
        self.min_distance_m = min_distance_m
        self.latest: dict[str, Fix] = {}
        self._sampled: dict[str, Fix] = {}
        self._lock = threading.Lock()
        self._seen_id = 0

    def load(self) -> None:
        """Latest stored point of every unit (start-up)."""
        c = track_points_table.c
        newest = sa.select(c.unit_id, sa.func.max(c.id).label("id")).group_by(c.unit_id).subquery()
        query = sa.select(track_points_table).join(newest, track_points_table.c.id == newest.c.id)
        with self.engine.connect() as conn:
            for row in conn.execute(query):
                fix = _fix(row)
                self.latest[row.unit_id] = self._sampled[row.unit_id] = fix
                self._seen_id = max(self._seen_id, row.id)

    def refresh(self) -> list[tuple[str, Fix]]:
        """Points stored (by other nodes) since the last look; each newer than the latest fix held
        becomes the latest. Returns those. Latest-wins telemetry: a point whose id a slower commit
        took below one already seen is skipped, and the unit's next stored point heals it."""
        c = track_points_table.c
        try:
            with self.engine.connect() as conn:
                rows = conn.execute(sa.select(track_points_table).where(c.id > self._seen_id).order_by(c.id)).all()
        except sa.exc.OperationalError as err:
            raise unreachable("The track store", err) from None
        changed = []
        with self._lock:
            for row in rows:
                self._seen_id = max(self._seen_id, row.id)
                fix = _fix(row)
                current = self.latest.get(row.unit_id)
                if current is None or fix.at > current.at:
                    self.latest[row.unit_id] = self._sampled[row.unit_id] = fix
                    changed.append((row.unit_id, fix))
        return changed

    def should_sample(self, unit_id: str, fix: Fix) -> bool:
        last = self._sampled.get(unit_id)
        return (last is None or (fix.at - last.at).total_seconds() >= self.min_interval_s
                or haversine_m(last.location, fix.location) >= self.min_distance_m)

    def record(self, unit_id: str, fix: Fix) -> bool:
        """Keep the fix as latest; store it if the sampling rule says so. Returns whether it was stored.

        A fix older than the latest one (a late packet over a flaky link) is ignored.
        """
        with self._lock:  # worker threads: an older fix must never overwrite a newer one
            current = self.latest.get(unit_id)
            if current is not None and fix.at < current.at:
                return False
            sample = self.should_sample(unit_id, fix)
            if sample:
                try:
                    with self.engine.begin() as conn:
                        conn.execute(track_points_table.insert().values(
                            unit_id=unit_id, at=fix.at, lat=fix.location.lat, lon=fix.location.lon,
                            heading=fix.heading, speed=fix.speed))
                except sa.exc.OperationalError as err:  # the fix is not kept: the device sends it again
                    raise unreachable("The track store", err) from None
                self._sampled[unit_id] = fix
            self.latest[unit_id] = fix  # only once the sample, if any, is stored
            return sample

    def observe(self, unit_id: str, fix: Fix) -> bool:
        """A fix another node received (and stored if it sampled it): the latest here if it is newer."""
        with self._lock:
            current = self.latest.get(unit_id)
            if current is not None and fix.at <= current.at:
                return False
            self.latest[unit_id] = fix
            return True

    def positions_at(self, at: datetime) -> dict[str, Fix]:
        """Each unit's last stored point at or before ``at`` (for the state-at-a-time view)."""
        c = track_points_table.c
        newest = (sa.select(c.unit_id, sa.func.max(c.at).label("at")).where(c.at <= at)
                  .group_by(c.unit_id).subquery())
        query = sa.select(track_points_table).join(
            newest, sa.and_(c.unit_id == newest.c.unit_id, c.at == newest.c.at))
        with self.engine.connect() as conn:
            return {row.unit_id: _fix(row)
                    for row in conn.execute(query)}


def _fix(row) -> Fix:
    return Fix(LatLon(row.lat, row.lon), row.at, row.heading, row.speed)
