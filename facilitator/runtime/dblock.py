"""One process per SQLite database: a second one would drive the same circles twice.

The runtime takes an exclusive lock on ``<database>.lock`` while it runs. A second
``facilitator`` over the same file stops with a clear message instead of doubling turns.
(PostgreSQL deployments run one bot process per database too; see the README.)
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import IO

from sqlalchemy.engine import make_url


class DatabaseInUse(RuntimeError):
    """Another process is running circles over this database."""


def lock_path(url: str) -> Path | None:
    """The lock file for a SQLite file URL; None for memory or server databases."""
    parsed = make_url(url)
    if not parsed.drivername.startswith("sqlite") or not parsed.database or parsed.database == ":memory:":
        return None
    return Path(parsed.database + ".lock")


class ProcessLock:
    """An exclusive, non-blocking lock on a database's lock file (released on close or exit)."""

    def __init__(self, url: str) -> None:
        self.path = lock_path(url)
        self._handle: IO[str] | None = None

    def acquire(self) -> None:
        if self.path is None or self._handle is not None:
            return
        handle = open(self.path, "a+", encoding="utf-8")  # noqa: SIM115  (held until release)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise DatabaseInUse(
                f"another facilitator process is running circles over {self.path.with_suffix('')}; "
                "stop it first, or give this one its own database with --db"
            ) from None
        handle.truncate(0)
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self._handle = handle

    def release(self) -> None:
        if self._handle is not None:
            fcntl.flock(self._handle, fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None
