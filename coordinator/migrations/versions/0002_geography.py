"""PostGIS ``geography`` columns for incident and unit positions, for SQL reports.

On PostgreSQL:

- ``events.location geography(Point,4326)``: a STORED generated column computed from
  ``data->'location'->>'lat'/'lon'`` (NULL when the event carries no location, or one that is not a
  pair of in-range numbers, so a derived column can never make an append fail). A generated column
  is filled by the database at INSERT and never needs an UPDATE, so the append-only trigger stays
  as it is. The hash chain covers the event's fields (``data`` among them), not derived columns:
  ``location`` is recomputed from ``data`` and is only as trustworthy as the ``data`` that ``verify``
  checks; nothing reads it to decide anything. Partial GiST index ``WHERE location IS NOT NULL``
  (only ``IncidentReported`` events have a location).
- ``track_points.position geography(Point,4326)``: STORED generated from ``lat``/``lon``, GiST index.

The expressions use only IMMUTABLE functions (jsonb operators, casts, ``ST_MakePoint``, ``ST_SetSRID``,
the geometry -> geography cast), as PostgreSQL demands of a generated column. The code's table
definitions (``coordinator/log.py``, ``coordinator/tracks.py``) do not name these columns: inserts
leave them out and the database computes them; ``coordinator/reports.py`` reads them by name.

Distances and orderings use ``geography`` (metres on the spheroid), never degrees (DESIGN.md,
"Decisions already measured"). PostGIS serves reports only, never the dispatch decision path.

On SQLite nothing changes: it has no PostGIS (SpatiaLite would be a native extension to ship
and load on every connection of the embedded default) and its reports filter by a bounding box on
the JSON and plain lat/lon columns, then compute exact distances in Python (``coordinator/reports.py``).

Revision ID: 0002
Revises: 0001
"""
import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def _point(lat: str, lon: str) -> str:
    """A WGS 84 geography point from two float8 SQL expressions (PostGIS takes x = lon, y = lat)."""
    return f"ST_SetSRID(ST_MakePoint({lon}, {lat}), 4326)::geography"


_LAT, _LON = "data->'location'->'lat'", "data->'location'->'lon'"
# Nested CASE: PostgreSQL may evaluate the terms of one AND in any order, and casting a JSON string
# to numeric raises; the outer CASE guarantees the inner one only ever sees numbers.
EVENT_LOCATION = f"""
    CASE WHEN jsonb_typeof({_LAT}) = 'number' AND jsonb_typeof({_LON}) = 'number' THEN
        CASE WHEN ({_LAT})::numeric BETWEEN -90 AND 90 AND ({_LON})::numeric BETWEEN -180 AND 180 THEN
            {_point(f"({_LAT})::float8", f"({_LON})::float8")}
        END
    END"""
TRACK_POSITION = _point("lat", "lon")  # lat/lon are NOT NULL floats the code has already range-checked


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return  # SQLite: no PostGIS; reports use bounding boxes and haversine there (see the docstring)
    _ensure_postgis(bind)
    op.execute(f"ALTER TABLE events ADD COLUMN location geography(Point, 4326) "
               f"GENERATED ALWAYS AS ({EVENT_LOCATION}) STORED")
    op.execute("CREATE INDEX ix_events_location ON events USING gist (location) WHERE location IS NOT NULL")
    op.execute(f"ALTER TABLE track_points ADD COLUMN position geography(Point, 4326) "
               f"GENERATED ALWAYS AS ({TRACK_POSITION}) STORED")
    op.execute("CREATE INDEX ix_track_points_position ON track_points USING gist (position)")


def _ensure_postgis(bind) -> None:
    available = bind.execute(sa.text("SELECT 1 FROM pg_available_extensions WHERE name = 'postgis'")).first()
    if available is None:
        raise RuntimeError(
            "PostgreSQL has no PostGIS extension to create; commandpost's production schema needs it for "
            "its spatial reports. Install PostGIS on the database server (Debian/Ubuntu: "
            "apt-get install postgresql-<version>-postgis-3; or use the postgis/postgis image), then start again.")
    try:
        with bind.begin_nested():
            bind.execute(sa.text("CREATE EXTENSION IF NOT EXISTS postgis"))
    except sa.exc.DBAPIError as err:
        raise RuntimeError(
            f"Could not create the PostGIS extension ({err.orig}). commandpost's production schema needs it: "
            "install PostGIS and have a superuser run 'CREATE EXTENSION postgis' in this database, "
            "then start again.") from None


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    # DROP COLUMN only marks the column dropped (no table rewrite, no row trigger). The extension stays:
    # other schemas or tools may use it.
    op.execute("DROP INDEX IF EXISTS ix_track_points_position")
    op.execute("ALTER TABLE track_points DROP COLUMN IF EXISTS position")
    op.execute("DROP INDEX IF EXISTS ix_events_location")
    op.execute("ALTER TABLE events DROP COLUMN IF EXISTS location")
