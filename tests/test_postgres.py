"""The same circle over a real PostgreSQL (for larger deployments). Resume on PostgreSQL is in
tests/test_resume.py and the migrations in tests/test_migrations.py (both run on either database)."""

from __future__ import annotations

import io

import pytest
from sqlalchemy.exc import DBAPIError

from facilitator.exports.filters import ExportFilter
from facilitator.exports.run import export
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
        assert len(host.store.consent_log(circle_id)) == 6  # agreement and attendance, each
        with pytest.raises(DBAPIError, match="append-only"), host.store.engine.begin() as conn:
            conn.execute(consent_table.delete())
        # Withdrawal, erasure and every export level work on PostgreSQL too.
        await host.console.say("Bea", "withdraw")
        await host.console.say("Cy", "forget me")
        exported = {}
        for level in ("attendance", "circle", "person"):
            out = io.BytesIO()
            export(host.store.engine, level, "csv", ExportFilter(), out)
            exported[level] = out.getvalue().decode("utf-8-sig")
        assert "Ada" in exported["attendance"] and "Bea" not in exported["attendance"]
        assert "Cy" not in exported["person"] and ",3,1,2," in exported["circle"]  # size 3: 1 named, 2 anonymous
        assert [e["decision"] for e in host.store.consent_log()][-2:] == ["withdrawn", "erased"]
    finally:
        await host.runtime.stop()
        host.store.close()
