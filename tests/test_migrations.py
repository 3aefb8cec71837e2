"""Schema changes go through Alembic: the migrations build exactly the tables the code declares."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlmodel import SQLModel

import facilitator.storage.tables  # noqa: F401  (registers the tables)
from facilitator.storage.store import Store


@pytest.mark.parametrize("url_fixture", ["db_url", "postgres_url"])
def test_the_migrations_match_the_tables(url_fixture: str, request: pytest.FixtureRequest) -> None:
    store = Store(request.getfixturevalue(url_fixture))  # runs the migrations
    try:
        with store.engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), SQLModel.metadata)
        assert diff == [], f"the tables and the migrations differ; add a migration: {diff}"
    finally:
        store.close()


def test_opening_the_store_twice_does_not_migrate_twice(db_url: str) -> None:
    Store(db_url).close()
    store = Store(db_url)
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM alembic_version").scalar() == 1
    store.close()
