"""Whether a database URL can be used, in a sentence: shared by the serve configuration's
``database:`` and the commands' ``--db``. The URL itself is never repeated: it may hold a password.
"""

from __future__ import annotations

DATABASES = ("sqlite", "sqlite+pysqlite", "postgresql", "postgresql+psycopg")
"""The database URL schemes facilitator can use: SQLite (Python's own driver) and PostgreSQL (psycopg 3)."""


def how(here: str) -> str:
    """How to write a database URL, a relative file being relative to ``here``."""
    return (
        f"write sqlite:///facilitator.db (a file {here}), sqlite:////full/path/facilitator.db, "
        "or postgresql://user@host/name"
    )


def url_problem(value: str, *, here: str, memory: bool) -> str | None:
    """What is wrong with ``value`` as a database URL, or None. ``here`` says where a relative
    SQLite file is taken from; ``memory`` allows SQLite in memory (lost when the process ends)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        url = make_url(value)
    except (ArgumentError, ValueError):
        if "://" not in value:
            file = value.removeprefix("sqlite:").lstrip("/") if value.startswith("sqlite:") else value
            return (
                f"{value!r} is not a database URL; for a SQLite file write sqlite:///{file or 'facilitator.db'} "
                f"(three slashes, then the file, {here}), or for PostgreSQL postgresql://user@host/name"
            )
        return (
            "this database URL cannot be read (a port must be digits; write @ : / in a password "
            f"as %40 %3A %2F); {how(here)}"
        )
    backend = url.get_backend_name()
    if backend not in ("sqlite", "postgresql"):
        return f"{url.drivername}:// is not a database facilitator can use; {how(here)}"
    if url.drivername not in DATABASES:
        example = "postgresql://user@host/name (psycopg 3)" if backend == "postgresql" else "sqlite:///facilitator.db"
        return f"{url.drivername}:// names a driver facilitator does not have; write {example}"
    if backend == "sqlite" and url.host:
        file = "/".join(part for part in (url.host, url.database) if part)
        return f"a SQLite URL has three slashes before its file: write sqlite:///{file} ({here})"
    if not memory and backend == "sqlite" and url.database in (None, "", ":memory:"):
        return (
            f"{url.drivername}:// with no file keeps everything in memory, lost when serve stops; "
            f"name a file, e.g. sqlite:///facilitator.db ({here})"
        )
    return None
