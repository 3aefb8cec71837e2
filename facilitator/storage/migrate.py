"""Schema changes go through Alembic migrations (facilitator/migrations), from the first release."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"
HEAD = "0005"
"""The newest migration's revision (a test checks it is Alembic's head): a database already
there is not upgraded, and Alembic, a quarter of a second to import, is not loaded at all."""


def alembic_config(url: str | None = None) -> Config:
    """An Alembic config pointing at our migrations (and at ``url`` if given)."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if url:
        config.set_main_option("sqlalchemy.url", url)
    return config


def revision(connection: Connection) -> str | None:
    """The revision the database behind ``connection`` is at (None before the first migration)."""
    if not inspect(connection).has_table("alembic_version"):
        return None
    found = connection.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    return found[0] if len(found) == 1 else None


def upgrade(connection: Connection) -> None:
    """Bring the database behind ``connection`` to the newest schema."""
    if revision(connection) == HEAD:
        return
    from alembic import command

    config = alembic_config()
    config.attributes["connection"] = connection
    command.upgrade(config, "head")
