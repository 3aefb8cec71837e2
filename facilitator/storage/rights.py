"""A person's rights over what the store keeps: see it, withdraw, be forgotten; and retention.

- :func:`my_data`: everything kept about one person, as plain data (their member row, every
  attendance, every consent entry, the circles they facilitated).
- :func:`withdraw`: a ``withdrawn`` entry in the ledger, and every past attendance made
  anonymous (counted, never named) from that moment: the next export does not name them.
- :func:`forget`: an ``erased`` entry, attendance anonymous, their name and platform id gone
  from every table (the member row keeps only a random key, so the ledger's entries still
  count and name nobody), pending lines to them dropped, adapters' notes about them (Matrix's
  direct room) deleted; then the SQLite WAL is checkpointed, and with ``secure_delete`` on
  the old bytes are zeroed, so the file on disk no longer holds them.
- :func:`anonymise_before`: retention: named attendance older than a date becomes anonymous;
  the counts stay.

The consent ledger is append-only (triggers refuse UPDATE and DELETE): these functions only
ever add entries to it.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import delete, insert, select, update
from sqlalchemy.engine import Connection

from facilitator.storage.store import Store
from facilitator.storage.tables import adapter_state_table as adapter_state
from facilitator.storage.tables import attendance_table as attendance
from facilitator.storage.tables import audit_table as audit
from facilitator.storage.tables import circles_table as circles
from facilitator.storage.tables import consent_table as consent
from facilitator.storage.tables import groups_table as groups
from facilitator.storage.tables import members_table as members
from facilitator.storage.tables import outbox_table as outbox

ERASED_PREFIX = "erased:"


@dataclass(frozen=True, slots=True)
class Changed:
    """What a withdrawal or an erasure did."""

    known: bool
    """Whether anything was kept about the person at all."""
    attendances: int = 0
    """How many attendance rows no longer name them."""


def _member(conn: Connection, key: str) -> Any:
    return conn.execute(select(members).where(members.c.key == key)).first()


def _ledger(
    conn: Connection,
    store: Store,
    member_id: int,
    scope: str,
    decision: str,
    text_hash: str,
    at: float,
    via: str,
    version: str = "",
) -> None:
    conn.execute(
        insert(consent).values(
            member_id=member_id,
            anonymous=False,
            scope=scope,
            decision=decision,
            text_hash=text_hash,
            text_version=version,
            at=at,
            circle_id=None,
            group_id=None,
            via=via,
            lawful_basis=store.lawful_basis,
        )
    )


def _anonymise(conn: Connection, member_id: int) -> int:
    result = conn.execute(
        update(attendance).where(attendance.c.member_id == member_id).values(member_id=None, anonymous=True)
    )
    return int(result.rowcount)


def my_data(store: Store, key: str) -> dict[str, Any] | None:
    """Everything kept about ``key`` (None if nothing is)."""
    with store.engine.connect() as conn:
        person = _member(conn, key)
        if person is None:
            return None
        attended = conn.execute(
            select(
                attendance.c.circle_id,
                circles.c.title,
                circles.c.script_name,
                groups.c.name.label("group"),
                groups.c.room,
                groups.c.platform,
                attendance.c.joined_at,
                attendance.c.left_at,
                attendance.c.turns_spoken,
                attendance.c.turns_passed,
            )
            .select_from(
                attendance.join(circles, circles.c.id == attendance.c.circle_id).join(
                    groups, groups.c.id == circles.c.group_id
                )
            )
            .where(attendance.c.member_id == person.id)
            .order_by(attendance.c.id)
        )
        ledger = conn.execute(
            select(
                consent.c.scope,
                consent.c.decision,
                consent.c.text_hash,
                consent.c.text_version,
                consent.c.at,
                consent.c.circle_id,
                consent.c.via,
                consent.c.lawful_basis,
            )
            .where(consent.c.member_id == person.id)
            .order_by(consent.c.id)
        )
        facilitated = conn.execute(
            select(circles.c.id, circles.c.title, circles.c.started_at, circles.c.ended_at)
            .where(circles.c.facilitator_id == person.id)
            .order_by(circles.c.opened_at)
        )
        actions = conn.execute(
            select(audit.c.circle_id, audit.c.action, audit.c.detail, audit.c.at)
            .where(audit.c.actor_id == person.id)
            .order_by(audit.c.id)
        )
        return {
            "person": {
                "platform_id": person.key,
                "platform": person.platform,
                "display_name": person.display_name,
                "first_seen": person.created_at,
            },
            "attendance": [dict(row._mapping) for row in attended],
            "consent": [dict(row._mapping) for row in ledger],
            "circles_facilitated": [dict(row._mapping) for row in facilitated],
            "facilitator_actions": [dict(row._mapping) for row in actions],
            "not_kept": "Nothing anyone said in a circle is ever stored: only who attended, when, "
            "how many turns they spoke or passed, and what they agreed to.",
        }


def withdraw(store: Store, key: str, at: float, via: str) -> Changed:
    """``key`` withdraws consent to attendance being recorded: past attendance becomes anonymous."""
    with store.engine.begin() as conn:
        person = _member(conn, key)
        if person is None:
            return Changed(False)
        latest = conn.execute(
            select(consent.c.text_hash, consent.c.text_version)
            .where(consent.c.member_id == person.id, consent.c.scope == "attendance", consent.c.decision == "given")
            .order_by(consent.c.id.desc())
            .limit(1)
        ).first()
        text_hash, version = (latest.text_hash, latest.text_version) if latest is not None else ("", "")
        _ledger(conn, store, person.id, "attendance", "withdrawn", text_hash, at, via, version)
        return Changed(True, _anonymise(conn, person.id))


def forget(store: Store, key: str, at: float, via: str) -> Changed:
    """Erase ``key``'s name and platform id from every table, keeping counts (see the module)."""
    with store.engine.begin() as conn:
        person = _member(conn, key)
        known = person is not None
        count = 0
        if person is not None:
            _ledger(conn, store, person.id, "all", "erased", "", at, via)
            count = _anonymise(conn, person.id)
            conn.execute(update(circles).where(circles.c.facilitator_id == person.id).values(facilitator_id=None))
            conn.execute(update(audit).where(audit.c.actor_id == person.id).values(actor_id=None))
            tombstone = ERASED_PREFIX + secrets.token_hex(12)
            conn.execute(update(members).where(members.c.id == person.id).values(key=tombstone, display_name=None))
        _drop_outbox(conn, key, person.display_name if person is not None else None)
        _drop_notes(conn, key)
    store.forget_cached(key)
    return Changed(known, count)


def _drop_outbox(conn: Connection, key: str, name: str | None) -> None:
    """Delete waiting lines addressed to or mentioning the person, or whose words name them (their
    name as a whole word: "... after Quillfeather"). A line to someone else dropped because it
    shares a word with the name is a small loss; a line that names the erased person is not."""
    named = re.compile(rf"(?<!\w){re.escape(name)}(?!\w)") if name else None
    doomed = []
    for row in conn.execute(select(outbox.c.id, outbox.c.lines_json)):
        lines = orjson.loads(row.lines_json)
        if any(
            line.get("to") == key
            or line.get("mention") == key
            or (name and line.get("mention_name") == name)
            or (named is not None and named.search(str(line.get("text", ""))))
            for line in lines
        ):
            doomed.append(row.id)
    if doomed:
        conn.execute(delete(outbox).where(outbox.c.id.in_(doomed)))


def _drop_notes(conn: Connection, key: str) -> None:
    """Delete adapters' notes about the person: keys ending ``:<their id>`` and values equal to it."""
    platform_id = key.split(":", 1)[-1]
    doomed = [
        row.key
        for row in conn.execute(select(adapter_state.c.key, adapter_state.c.value))
        if row.key.endswith(":" + platform_id) or row.value == platform_id
    ]
    if doomed:
        conn.execute(delete(adapter_state).where(adapter_state.c.key.in_(doomed)))


def forget_notes(store: Store, key: str) -> None:
    """Delete adapters' notes about ``key`` again (answering them may have made a new direct room)."""
    with store.engine.begin() as conn:
        _drop_notes(conn, key)


def anonymise_before(store: Store, cutoff: float) -> int:
    """Retention: attendance that began before ``cutoff`` no longer names anyone. Returns rows changed."""
    with store.engine.begin() as conn:
        result = conn.execute(
            update(attendance)
            .where(attendance.c.joined_at < cutoff, attendance.c.member_id.is_not(None))
            .values(member_id=None, anonymous=True)
        )
        ended = select(circles.c.id).where(circles.c.ended_at < cutoff)
        unlinked = conn.execute(
            update(circles)
            .where(circles.c.id.in_(ended), circles.c.facilitator_id.is_not(None))
            .values(facilitator_id=None)
        ).rowcount
        unlinked += conn.execute(
            update(audit).where(audit.c.circle_id.in_(ended), audit.c.actor_id.is_not(None)).values(actor_id=None)
        ).rowcount
        changed = int(result.rowcount)
    if changed or unlinked:
        store.checkpoint()
    return changed


def ledger(store: Store, since: float | None = None, until: float | None = None) -> list[dict[str, Any]]:
    """The whole consent ledger for an audit, oldest first, with names, groups and rooms."""
    query = (
        select(
            consent.c.id,
            consent.c.at,
            consent.c.decision,
            consent.c.scope,
            consent.c.text_hash,
            consent.c.text_version,
            consent.c.lawful_basis,
            consent.c.anonymous,
            consent.c.via,
            consent.c.circle_id,
            members.c.key,
            members.c.display_name,
            groups.c.name.label("group"),
            groups.c.room,
        )
        .select_from(
            consent.outerjoin(members, members.c.id == consent.c.member_id).outerjoin(
                groups, groups.c.id == consent.c.group_id
            )
        )
        .order_by(consent.c.id)
    )
    if since is not None:
        query = query.where(consent.c.at >= since)
    if until is not None:
        query = query.where(consent.c.at < until)
    with store.engine.connect() as conn:
        return [dict(row._mapping) for row in conn.execute(query)]
