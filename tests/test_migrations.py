"""Schema changes go through Alembic: the migrations build exactly the tables the code declares."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from facilitator.engine.circle import Circle
from facilitator.runtime.library import ScriptLibrary
from facilitator.storage.migrate import HEAD, alembic_config, revision
from facilitator.storage.store import Store, make_engine
from facilitator.storage.tables import metadata

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("url_fixture", ["db_url", "postgres_url"])
def test_the_migrations_match_the_tables(url_fixture: str, request: pytest.FixtureRequest) -> None:
    store = Store(request.getfixturevalue(url_fixture))  # runs the migrations
    try:
        with store.engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), metadata)
        assert diff == [], f"the tables and the migrations differ; add a migration: {diff}"
    finally:
        store.close()


def test_head_is_the_newest_migration() -> None:
    """``migrate.HEAD`` lets an up-to-date database open without Alembic: it must be the real head."""
    from alembic.script import ScriptDirectory

    assert ScriptDirectory.from_config(alembic_config()).get_current_head() == HEAD


def test_a_database_at_an_older_revision_is_still_upgraded(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = make_engine(url)
    with engine.begin() as conn:
        config = alembic_config()
        config.attributes["connection"] = conn
        command.upgrade(config, "0003")
        assert revision(conn) == "0003"
    engine.dispose()
    store = Store(url)
    with store.engine.connect() as conn:
        assert revision(conn) == HEAD
        assert "lawful_basis" in {c["name"] for c in inspect(conn).get_columns("consent")}
    store.close()


def test_opening_the_store_twice_does_not_migrate_twice(db_url: str) -> None:
    Store(db_url).close()
    store = Store(db_url)
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM alembic_version").scalar() == 1
    store.close()


def test_upgrading_a_first_release_database_keeps_its_open_circle(tmp_path: Path) -> None:
    """A database made by release 0001, with a circle under way, upgrades and resumes."""
    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = make_engine(url)
    with engine.begin() as conn:
        config = alembic_config()
        config.attributes["connection"] = conn
        command.upgrade(config, "0001")
        conn.exec_driver_sql("INSERT INTO \"group\" (id, platform, room, timezone) VALUES (1, 'console', 'r', 'UTC')")
        script_text = (ROOT / "sessions" / "check-in-30.yaml").read_text(encoding="utf-8")
        conn.exec_driver_sql(
            "INSERT INTO circle (id, group_id, script_name, title, script_hash, script_text, status, opened_at,"
            " updated_at, state_json) VALUES ('c1', 1, 'check-in-30', 'Check-in', 'h1', ?, 'gathering', 0, 0, ?)",
            (script_text, json.dumps(Circle(ScriptLibrary().get("check-in-30").script).snapshot())),
        )
    engine.dispose()
    store = Store(url)  # upgrades to the newest schema
    try:
        [row] = store.open_circles()
        assert row.id == "c1" and row.script_text == script_text
    finally:
        store.close()
