"""Schema changes go through Alembic migrations (facilitator/migrations), from the first release."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Connection

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


def alembic_config(url: str | None = None) -> Config:
    """An Alembic config pointing at our migrations (and at ``url`` if given)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if url:
        config.set_main_option("sqlalchemy.url", url)
    return config


def upgrade(connection: Connection) -> None:
    """Bring the database behind ``connection`` to the newest schema."""
    config = alembic_config()
    config.attributes["connection"] = connection
    command.upgrade(config, "head")
