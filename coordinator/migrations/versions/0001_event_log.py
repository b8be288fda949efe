"""Event log, idempotency keys, snapshots, the city document and unit tracks.

Revision ID: 0001
Revises:
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

from coordinator.log import UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

SEQ = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "events",
        sa.Column("seq", SEQ, primary_key=True, autoincrement=False),
        sa.Column("id", sa.String(36), nullable=False, unique=True),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("stream", sa.String(128), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("data", sa.JSON().with_variant(JSONB(), "postgresql"), nullable=False),
        sa.Column("incident_id", sa.String(64), nullable=True),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.UniqueConstraint("stream", "version", name="uq_events_stream_version"),
    )
    op.create_index("ix_events_at", "events", ["at"])
    op.create_index("ix_events_incident_id", "events", ["incident_id"])
    _forbid_rewrites()
    op.create_table(
        "idempotency_keys",
        sa.Column("key", sa.String(200), primary_key=True),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column("first_seq", SEQ, nullable=False),
        sa.Column("last_seq", SEQ, nullable=False),
    )
    op.create_table(
        "snapshots",
        sa.Column("seq", SEQ, primary_key=True, autoincrement=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("state", sa.Text(), nullable=False),
    )
    op.create_index("ix_snapshots_at", "snapshots", ["at"])
    op.create_table(
        "city",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("doc", sa.Text(), nullable=False),
    )
    op.create_table(
        "track_points",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("unit_id", sa.String(64), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("lat", sa.Float(), nullable=False),
        sa.Column("lon", sa.Float(), nullable=False),
        sa.Column("heading", sa.Float(), nullable=True),
        sa.Column("speed", sa.Float(), nullable=True),
    )
    op.create_index("ix_track_points_unit_at", "track_points", ["unit_id", "at"])


def _forbid_rewrites() -> None:
    """The log is append-only: UPDATE and DELETE on events fail unless someone drops the trigger first."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute("""
            CREATE FUNCTION events_append_only() RETURNS trigger AS $$
            BEGIN RAISE EXCEPTION 'the event log is append-only'; END $$ LANGUAGE plpgsql""")
        op.execute("""CREATE TRIGGER events_append_only BEFORE UPDATE OR DELETE ON events
                      FOR EACH ROW EXECUTE FUNCTION events_append_only()""")
    else:
        for action in ("UPDATE", "DELETE"):
            op.execute(f"""CREATE TRIGGER events_no_{action.lower()} BEFORE {action} ON events
                           BEGIN SELECT RAISE(ABORT, 'the event log is append-only'); END""")


def downgrade() -> None:
    for table in ("track_points", "city", "snapshots", "idempotency_keys", "events"):
        op.drop_table(table)
