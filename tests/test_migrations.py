"""Schema changes go through Alembic: the migrations build exactly the tables the code declares."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text

from facilitator.engine.circle import Circle
from facilitator.runtime.library import ScriptLibrary
from facilitator.storage.migrate import HEAD, alembic_config, revision
from facilitator.storage.statements import END_ATTENDANCE, UNLINK_UNNAMED
from facilitator.storage.store import Store, make_engine, seat_of
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


@pytest.mark.parametrize("url_fixture", ["db_url", "postgres_url"])
def test_upgrading_unlinks_unnamed_rows_from_named_rows_with_their_seat(
    url_fixture: str, request: pytest.FixtureRequest
) -> None:
    """Rows written before 0005 gave one person's named and anonymous stints one seat: the upgrade
    gives the closed unnamed ones a seat of their own (one per circle and old seat), keeps the seats
    no named row shares, and leaves an open row for the running circle to find (unlinked later)."""
    url = request.getfixturevalue(url_fixture)
    engine = make_engine(url)
    running_seat = seat_of("salt3", "console:ada")
    with engine.begin() as conn:
        config = alembic_config()
        config.attributes["connection"] = conn
        command.upgrade(config, "0004")
        conn.execute(text("INSERT INTO \"group\" (id, platform, room, timezone) VALUES (1, 'console', 'r', 'UTC')"))
        conn.execute(
            text("INSERT INTO member (id, key, platform, created_at) VALUES (:id, :key, 'console', 0)"),
            [{"id": 1, "key": "console:ada"}, {"id": 2, "key": "console:bea"}],
        )
        conn.execute(
            text(
                "INSERT INTO circle (id, group_id, script_name, title, script_hash, status, opened_at, updated_at,"
                " seat_salt, state_json) VALUES (:id, 1, 's', 't', 'h', :status, 0, 0, :salt, '{}')"
            ),
            [
                {"id": "c1", "status": "ended", "salt": None},
                {"id": "c2", "status": "ended", "salt": None},
                {"id": "c3", "status": "running", "salt": "salt3"},
            ],
        )
        rows = [
            # c1: Ada by name, then twice anonymously, under one seat; Bea by name, seat "s3".
            (1, "c1", 1, False, "s1", 100.0),
            (2, "c1", None, True, "s1", 200.0),
            (3, "c1", None, True, "s1", 300.0),
            (4, "c1", 2, False, "s3", 100.0),
            # c2: someone anonymous, twice; seat "s3" is named only in another circle. Bea by name
            # and then anonymously, that row left open though the circle has ended.
            (5, "c2", None, True, "s3", 100.0),
            (6, "c2", None, True, "s3", 200.0),
            (9, "c2", 2, False, "s9", 100.0),
            (10, "c2", None, True, "s9", None),
            # c3, running: Ada by name, then anonymously, still there.
            (7, "c3", 1, False, running_seat, 100.0),
            (8, "c3", None, True, running_seat, None),
        ]
        conn.execute(
            text(
                "INSERT INTO attendance (id, circle_id, member_id, anonymous, seat, joined_at, left_at,"
                " turns_spoken, turns_passed) VALUES (:id, :circle, :member, :anonymous, :seat, 0, :left, 0, 0)"
            ),
            [
                {"id": i, "circle": c, "member": m, "anonymous": a, "seat": seat, "left": left}
                for i, c, m, a, seat, left in rows
            ],
        )
    engine.dispose()

    store = Store(url)  # upgrades to the newest schema
    try:
        with store.engine.begin() as conn:
            assert revision(conn) == HEAD
            seats = {i: seat for i, seat in conn.execute(text("SELECT id, seat FROM attendance"))}
            assert seats[1] == "s1" and seats[4] == "s3" and seats[7] == running_seat  # named rows keep theirs
            assert seats[2] != "s1" and seats[2] == seats[3] and len(seats[2]) == 32  # unlinked, still one person
            assert seats[5] == seats[6] == "s3"  # no named row of their circle shares it
            assert seats[10] != "s9" and seats[9] == "s9"  # open, but its circle has ended: nothing looks for it
            assert seats[8] == running_seat  # open: the running circle finds it by seat
            # The running circle closes it, and Ada's next named stint there unlinks it (what the store runs).
            found = {
                "b_circle": "c3",
                "b_seat": running_seat,
                "b_seat_anonymous": seat_of("salt3", "console:ada", True),
            }
            assert conn.execute(END_ATTENDANCE, {**found, "b_at": 400.0}).rowcount == 1
            unlink = {"b_circle": "c3", "b_seat": running_seat, "b_new_seat": "f" * 32}
            assert conn.execute(UNLINK_UNNAMED, unlink).rowcount == 1
            assert conn.execute(text("SELECT seat FROM attendance WHERE id = 8")).scalar() == "f" * 32
    finally:
        store.close()
