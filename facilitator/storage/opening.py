"""Opening a database the commands were pointed at, with a sentence for every way it can be wrong.

``serve`` and ``demo`` make their database on first use. The commands that only read it
(``export``, ``report``, ``consent-log``) must not: a mistyped ``--db``, or running them
from the wrong folder, would otherwise make a new empty database and report "0 rows" as if
that were the truth, or add our tables to another program's SQLite file.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterator

from facilitator.storage.store import Store


class DatabaseProblem(Exception):
    """The database cannot be used; the message says why and what to do."""


def url_problem(url: str) -> str | None:
    """What is wrong with ``url`` as a ``--db`` URL, or None."""
    from facilitator.storage.urls import url_problem as problem_of

    return problem_of(url, here="in the folder you are in", memory=True)


def sqlite_path(url: str) -> str | None:
    """The file of a SQLite URL (None for other databases, or SQLite in memory)."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return parsed.database


def database_files(url: str) -> list[str]:
    """The files a SQLite database at ``url`` is kept in (the file, its WAL, its journal, our lock)."""
    path = sqlite_path(url)
    if path is None:
        return []
    return [path, f"{path}-wal", f"{path}-shm", f"{path}-journal", f"{path}.lock"]


def open_existing(url: str) -> Store:
    """The store at ``url``, which must already be a facilitator database (an older one is
    brought up to date first). Raises :class:`DatabaseProblem` with a sentence otherwise."""
    problem = url_problem(url)
    if problem is not None:
        raise DatabaseProblem(problem)
    path = sqlite_path(url)
    if path is not None:
        where = os.path.abspath(path)
        try:
            found = os.stat(path)
        except OSError:
            raise DatabaseProblem(
                f"there is no database at {where}: check --db or FACILITATOR_DATABASE_URL "
                "(a relative path is from the folder you are in)"
            ) from None
        if not stat.S_ISREG(found.st_mode):
            raise DatabaseProblem(f"{where} is not a database file (it is a folder or a device): check --db")
        if found.st_size == 0:
            raise DatabaseProblem(f"{where} is empty: no circle has been kept there yet; check --db")
    return _checked(url)


def open_or_create(url: str) -> Store:
    """The store at ``url``, made if new (``serve``, ``demo``). Raises :class:`DatabaseProblem`."""
    problem = url_problem(url)
    if problem is not None:
        raise DatabaseProblem(problem)
    return _checked(url, create=True)


def _checked(url: str, *, create: bool = False) -> Store:
    if not create:
        _must_be_ours(url)
    with _said_plainly(url):
        return Store(url)


@contextlib.contextmanager
def _said_plainly(url: str) -> Iterator[None]:
    """The database's own errors while opening ``url`` as a :class:`DatabaseProblem` sentence."""
    from sqlalchemy.exc import DatabaseError, OperationalError

    try:
        yield
    except OperationalError as error:
        raise DatabaseProblem(f"cannot open the database at {_shown(url)}: {_first_line(error)}") from None
    except DatabaseError as error:
        raise DatabaseProblem(f"{_shown(url)} is not a database facilitator can read: {_first_line(error)}") from None
    except Exception as error:  # Alembic (imported only when migrating): a revision this version does not know
        if type(error).__name__ == "CommandError":
            raise DatabaseProblem(
                f"the database at {_shown(url)} was made by a newer facilitator ({error}): upgrade facilitator"
            ) from None
        raise


def _must_be_ours(url: str) -> None:
    """Refuse a database that facilitator never made (no migration table): nothing is added to it."""
    from sqlalchemy import create_engine, inspect

    engine = create_engine(url)  # without the store's pragmas: WAL mode would be written into the file
    try:
        with _said_plainly(url), engine.connect() as conn:
            ours = inspect(conn).has_table("alembic_version")
    finally:
        engine.dispose()
    if not ours:
        raise DatabaseProblem(
            f"the database at {_shown(url)} holds no facilitator records (it was made by something else, "
            "or is empty): check --db"
        )


def _shown(url: str) -> str:
    """``url`` without its password, for a message."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def _first_line(error: Exception) -> str:
    """The driver's own words, without SQLAlchemy's statement and background link."""
    orig = getattr(error, "orig", None)
    return str(orig if orig is not None else error).splitlines()[0]
