"""Fixtures for unit tests that need a store: one fresh, migrated database per test, SQLite always and
PostgreSQL when DOCKET_TEST_POSTGRES_URL is set."""
from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, text

from serving.store import make_engine, migrate

PG_URL = os.environ.get("DOCKET_TEST_POSTGRES_URL")



def _sqlite(tmp_path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'docket.db'}")
    migrate(engine)
    yield engine
    engine.dispose()


def _postgres() -> Iterator[Engine]:
    """A schema of its own per test, dropped afterwards, so tests never see each other's rows."""
    schema = f"docket_test_{uuid.uuid4().hex}"
    admin = make_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    engine = make_engine(PG_URL, connect_args={"options": f"-csearch_path={schema}"})
    try:
        migrate(engine)
        yield engine
    finally:
        engine.dispose()
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.skipif(
    not PG_URL, reason="set DOCKET_TEST_POSTGRES_URL to run store tests on PostgreSQL"))])
def engine(request, tmp_path) -> Iterator[Engine]:
    yield from (_sqlite(tmp_path) if request.param == "sqlite" else _postgres())


