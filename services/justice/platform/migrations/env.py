"""Alembic environment: plain versioned migrations, run online against one URL."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool, text

from justice.platform.leadership import lock_key

MIGRATION_LOCK = lock_key("justice-migrate")

url = context.config.get_main_option("sqlalchemy.url")
assert url is not None
engine = create_engine(url, poolclass=pool.NullPool)
with engine.connect() as connection:
    context.configure(connection=connection, render_as_batch=connection.dialect.name == "sqlite")
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            # Processes starting together migrate one after the other (held to the commit);
            # the later ones then find the schema at head. Per schema, like the audit lock.
            connection.execute(
                text("SELECT pg_advisory_xact_lock(:key # hashtext(current_schema()))"),
                {"key": MIGRATION_LOCK},
            )
        context.run_migrations()
engine.dispose()
