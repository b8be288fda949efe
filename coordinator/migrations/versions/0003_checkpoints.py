"""Signed checkpoints of the log's head (``coordinator/checkpoints.py``): append-only like the events,
at most one per seq (the primary key: nodes signing the same head together keep the first).

Revision ID: 0003
Revises: 0002
"""
import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

SEQ = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "checkpoints",
        sa.Column("seq", SEQ, primary_key=True, autoincrement=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("at", sa.String(32), nullable=False),
        sa.Column("key_id", sa.String(32), nullable=False),
        sa.Column("signature", sa.String(128), nullable=False),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute("""
            CREATE FUNCTION checkpoints_append_only() RETURNS trigger AS $$
            BEGIN RAISE EXCEPTION 'the checkpoints are append-only'; END $$ LANGUAGE plpgsql""")
        op.execute("""CREATE TRIGGER checkpoints_append_only BEFORE UPDATE OR DELETE ON checkpoints
                      FOR EACH ROW EXECUTE FUNCTION checkpoints_append_only()""")
    else:
        for action in ("UPDATE", "DELETE"):
            op.execute(f"""CREATE TRIGGER checkpoints_no_{action.lower()} BEFORE {action} ON checkpoints
                           BEGIN SELECT RAISE(ABORT, 'the checkpoints are append-only'); END""")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TABLE checkpoints")
        op.execute("DROP FUNCTION IF EXISTS checkpoints_append_only()")
    else:
        op.drop_table("checkpoints")
