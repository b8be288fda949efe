"""Event logs on each backend, fresh per test: SQLite always, PostgreSQL when CP_TEST_DATABASE_URL is set."""

import pytest
import sqlalchemy as sa

from coordinator.log import EventLog, make_engine, migrate

from .conftest import service_url

BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


def fresh_engine(backend: str, tmp_path):
    if backend == "sqlite":
        return make_engine(f"sqlite:///{tmp_path / 'log.db'}")
    engine = make_engine(service_url("CP_TEST_DATABASE_URL", "PostgreSQL contract"))
    empty(engine)
    return engine


def fresh_log(backend: str, tmp_path, clock) -> EventLog:
    engine = fresh_engine(backend, tmp_path)
    migrate(engine)
    return EventLog(engine, clock)


def empty(engine) -> None:
    """A PostgreSQL database as a first start finds it: every table but PostGIS's own (dropping the
    extension with the schema costs ~1 s a test; the migration creates it if it is missing)."""
    with engine.begin() as conn:
        conn.execute(sa.text("""
            DO $$ DECLARE t record; BEGIN
              FOR t IN SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'spatial_ref_sys'
              LOOP EXECUTE format('DROP TABLE public.%I CASCADE', t.tablename); END LOOP;
            END $$"""))
        conn.execute(sa.text("DROP FUNCTION IF EXISTS events_append_only() CASCADE"))
        conn.execute(sa.text("DROP FUNCTION IF EXISTS checkpoints_append_only() CASCADE"))
