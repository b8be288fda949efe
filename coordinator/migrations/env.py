"""Alembic environment: migrations run on the connection that ``log.migrate`` hands over."""

from alembic import context

from coordinator import tracks  # noqa: F401  (registers the telemetry tables on the metadata)
from coordinator.log import metadata
from coordinator.reports import include_object

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True,
                  include_object=include_object)
with context.begin_transaction():
    context.run_migrations()
