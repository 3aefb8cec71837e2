"""The same circle over a real PostgreSQL (for larger deployments). Resume on PostgreSQL is in
tests/test_resume.py and the migrations in tests/test_migrations.py (both run on either database)."""

from __future__ import annotations

import pytest
from sqlalchemy.exc import DBAPIError

from facilitator.runtime.clock import ManualClock
from facilitator.storage.tables import consent_table
from tests.conftest import make_host
from tests.test_runtime import run_whole_circle


async def test_a_whole_circle_on_postgresql(postgres_url: str, clock: ManualClock) -> None:
    host = await make_host(postgres_url, clock)
    try:
        circle_id = await run_whole_circle(host, ["Ada", "Bea", "Cy"])
        rows = host.store.attendance_of(circle_id)
        assert [(r["display_name"], r["turns_spoken"], r["turns_passed"]) for r in rows] == [
            ("Ada", 2, 0),
            ("Bea", 0, 2),
            ("Cy", 2, 0),
        ]
        assert len(host.store.consent_log(circle_id)) == 3
        with pytest.raises(DBAPIError, match="append-only"), host.store.engine.begin() as conn:
            conn.execute(consent_table.delete())
    finally:
        await host.runtime.stop()
        host.store.close()
