"""Alembic environment for Docket's store: runs migrations on the connection serving.store.db.migrate passes in.

No alembic.ini is needed: `migrate(engine)` builds the configuration in code and
hands over a connection already inside its transaction (and, on PostgreSQL,
holding the migration lock). Run without one (e.g. from a developer's own
Config), it connects to DOCKET_DATABASE_URL.
"""
from __future__ import annotations

from alembic import context

from serving.store.tables import metadata


def _run(connection) -> None:
    context.configure(connection=connection, target_metadata=metadata)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    from config.settings import Settings
    from serving.store.db import make_engine, writing

    engine = make_engine(Settings.from_env().database_url)
    try:
        with writing(engine) as conn:
            _run(conn)
    finally:
        engine.dispose()


if context.is_offline_mode():
    raise SystemExit("Docket's migrations run online only: call serving.store.db.migrate(engine)")
run_migrations_online()
