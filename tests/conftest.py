"""Shared fixtures: a runtime on a manual clock over a real SQLite file, and its console."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from adapters.console import ConsoleAdapter, member_id
from facilitator.runtime.clock import ManualClock
from facilitator.runtime.host import Hosted, Runtime
from facilitator.storage.store import Store
from tests.synapse_server import SynapseServer


@dataclass
class Host:
    """A runtime with its store, clock and console, as a test drives them."""

    runtime: Runtime
    store: Store
    clock: ManualClock
    console: ConsoleAdapter

    def said(self) -> list[str]:
        """Everything said so far, as plain text."""
        return [line.plain() for line in self.console.transcript]


async def make_host(db_url: str, clock: ManualClock, files: Path | None = None) -> Host:
    """Start a runtime over ``db_url`` (resuming whatever is stored there); the console saves the
    files it hands people under ``files`` (a new temporary folder if not given)."""
    import io
    import tempfile

    store = Store(db_url)
    files = files or Path(tempfile.mkdtemp(prefix="facilitator-files-"))
    console = ConsoleAdapter(io.StringIO(), room="room-1", files=files)
    runtime = Runtime(store, clock=clock, adapters=[console])
    await runtime.start()
    await runtime.settle()
    return Host(runtime, store, clock, console)


async def in_the_check_in_round(host: Host, people: tuple[str, ...] = ("Ada", "Bea")) -> Hosted:
    """Fran opens check-in-30, ``people`` join and consent, and the check-in round begins (Ada holds)."""
    c = host.console
    await c.say("Fran", "start check-in-30")
    for name in people:
        await c.say(name, "join")
        await c.say(name, "consent")
    await c.say("Fran", "begin")
    host.clock.advance(120)  # the welcome and the agreement
    await host.runtime.settle()
    hosted = host.runtime.circle_in("console", "room-1")
    assert hosted is not None and hosted.circle.holder == member_id(people[0])
    return hosted


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'circles.db'}"


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(start=1_800_000_000.0)


@pytest.fixture
async def host(db_url: str, clock: ManualClock, tmp_path: Path) -> AsyncIterator[Host]:
    made = await make_host(db_url, clock, tmp_path / "files")
    yield made
    await made.runtime.stop()
    made.store.close()


@pytest.fixture(scope="session")
def postgres_server_url() -> Iterator[str]:
    """A PostgreSQL server for the whole session (see tests/postgres_server.py)."""
    from tests.postgres_server import postgres_server

    with postgres_server() as url:
        yield url


@pytest.fixture
def postgres_url(postgres_server_url: str, request: pytest.FixtureRequest) -> str:
    """A fresh, empty PostgreSQL database for one test."""
    import re

    from sqlalchemy import create_engine

    name = "t_" + re.sub(r"[^a-z0-9]", "_", request.node.name.lower())[:50]
    admin = create_engine(postgres_server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}"')
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    admin.dispose()
    return postgres_server_url.rsplit("/", 1)[0] + f"/{name}"


def synapse_python() -> str | None:
    """The Python of Synapse's own virtualenv, if Synapse is installed (``./dev test`` does it)."""
    import os

    configured = os.environ.get("FACILITATOR_SYNAPSE_PYTHON")
    if configured:
        return configured
    default = Path(__file__).resolve().parent.parent / ".venv-synapse" / "bin" / "python"
    return str(default) if default.exists() else None


@pytest.fixture(scope="session")
def synapse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SynapseServer]:
    """A real Synapse homeserver for the whole session (see tests/synapse_server.py)."""
    import os

    python = synapse_python()
    if python is None or not Path(python).exists():
        message = "Synapse is not installed: run ./dev test (it installs Synapse into .venv-synapse/)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    server = SynapseServer(tmp_path_factory.mktemp("synapse"), python)
    server.start()
    try:
        yield server
    finally:
        server.stop()
