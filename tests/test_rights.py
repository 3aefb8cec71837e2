"""What a participant can do about their records: see them, withdraw, be forgotten; and retention."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select
from sqlalchemy.exc import DBAPIError

from adapters.console import member_id
from facilitator.cli import main
from facilitator.exports.filters import ExportFilter
from facilitator.exports.run import export
from facilitator.storage.rights import anonymise_before
from facilitator.storage.tables import consent_table, members_table
from tests.conftest import Host, in_the_check_in_round
from tests.test_runtime import run_whole_circle

NAME = "Zephyrine Quillfeather"


def _csv(host: Host, level: str = "attendance") -> list[dict[str, str]]:
    out = io.BytesIO()
    export(host.store.engine, level, "csv", ExportFilter(), out)  # type: ignore[arg-type]
    return list(csv.DictReader(io.StringIO(out.getvalue().decode("utf-8-sig"))))


def _private(host: Host, who: str) -> list[str]:
    return [line.plain() for line in host.console.transcript if line.to == member_id(who)]


async def test_mydata_hands_me_a_file_of_everything_kept_about_me(host: Host, tmp_path: Path) -> None:
    await run_whole_circle(host, ["Ada", "Bea"])
    await host.console.say("Bea", "mydata")
    line = host.console.transcript[-1]
    assert line.to == member_id("Bea") and line.attachment is not None
    assert "2 attendance records" not in line.text  # one circle, one attendance
    data = json.loads(line.attachment.data)
    assert data["person"]["display_name"] == "Bea" and data["person"]["platform_id"] == "console:bea"
    assert len(data["attendance"]) == 1 and data["attendance"][0]["turns_passed"] == 2
    assert [(e["scope"], e["decision"]) for e in data["consent"]] == [("agreement", "given"), ("attendance", "given")]
    assert data["consent"][0]["at"].endswith("+00:00")  # times readable, not epoch seconds
    saved = tmp_path / "files" / "bea" / "my-data.json"  # her own folder, for her eyes only
    assert json.loads(saved.read_bytes()) == data and saved.stat().st_mode & 0o777 == 0o600
    assert saved.parent.stat().st_mode & 0o777 == 0o700
    await host.console.say("Ada", "mydata")  # someone else at the same terminal: their own file
    assert json.loads((tmp_path / "files" / "ada" / "my-data.json").read_bytes())["person"]["display_name"] == "Ada"
    await host.console.say("Bea", "mydata")  # asked again: a second file, the first one kept
    assert json.loads(saved.read_bytes()) == data
    assert (tmp_path / "files" / "bea" / "my-data-2.json").stat().st_mode & 0o777 == 0o600
    await host.console.say("Nobody", "mydata")
    assert _private(host, "Nobody")[-1].startswith("Nothing is kept about you here")


async def test_withdraw_makes_my_past_attendance_anonymous_from_the_next_export(host: Host) -> None:
    circle_id = await run_whole_circle(host, ["Ada", "Bea", "Cy"])
    assert "Bea" in {row["person"] for row in _csv(host)}
    outcome = await host.console.say("Bea", "withdraw")
    assert outcome.accepted
    assert "Your past attendance (1 record) no longer names you" in _private(host, "Bea")[-1]
    rows = _csv(host)
    assert [row["person"] for row in rows] == ["Ada", "", "Cy"]
    assert [row["anonymous"] for row in rows] == ["no", "yes", "no"]
    assert [row["turns_passed"] for row in rows] == ["0", "2", "0"]  # counts stay
    people = _csv(host, "person")
    assert [row["person"] for row in people] == ["Ada", "Cy", "Anonymous attendance (counted, not named)"]
    assert people[-1]["circles"] == "1"
    circles = _csv(host, "circle")
    assert (circles[0]["size"], circles[0]["named"], circles[0]["anonymous"]) == ("3", "2", "1")
    ledger = host.store.consent_log()
    assert (ledger[-1]["display_name"], ledger[-1]["scope"], ledger[-1]["decision"]) == (
        "Bea",
        "attendance",
        "withdrawn",
    )
    script = host.runtime.library.get("check-in-30").script
    assert ledger[-1]["text_hash"] == script.consent.text_hash  # the text withdrawn from
    assert ledger[-1]["text_version"] == script.consent.version  # and its version, for an audit
    assert host.store.attendance_of(circle_id)[1]["display_name"] is None


async def test_forget_me_leaves_no_name_or_id_in_the_database_file_its_wal_or_an_export(
    host: Host, db_url: str, tmp_path: Path
) -> None:
    await run_whole_circle(host, ["Ada", NAME, "Cy"])  # a finished circle with her in it
    c = host.console
    await c.say("Fran", "start check-in-30")
    for name in ("Ada", NAME):
        await c.say(name, "join")
        await c.say(name, "consent")
    await c.say("Fran", "begin")
    await c.say(NAME, "mydata")  # her data was handed over (to her only)
    await c.say("Ada", "mydata")
    hers, adas = c.folder_of(member_id(NAME)), c.folder_of(member_id("Ada"))
    assert hers.parent == adas.parent == tmp_path / "files" and b"Quillfeather" in (hers / "my-data.json").read_bytes()
    await c.say(NAME, "forget")
    assert "type: forget me" in _private(host, NAME)[-1]  # one word alone does not erase
    outcome = await c.say(NAME, "forget me")
    assert outcome.accepted
    assert _private(host, NAME)[-1].startswith("Done: your name and platform id are erased")
    hosted = host.runtime.circle_in("console", "room-1")
    assert hosted is not None and member_id(NAME) not in hosted.circle.state.participants
    _nowhere_on_disk(db_url)  # at once: not only after the circle ends (which checkpoints anyway)
    assert not hers.exists() and (adas / "my-data.json").exists()  # the file saved for her went too
    await c.say("Fran", "end")
    _nowhere_on_disk(db_url)
    exports = b"".join(
        _export_bytes(host, level, fmt) for level in ("attendance", "circle", "person") for fmt in ("csv", "json")
    )
    ledger = CliRunner().invoke(main, ["consent-log", "--db", db_url]).output.encode()
    for where, data in (("exports", exports), ("consent log", ledger)):
        assert b"zephyrine" not in data.lower(), where
        assert b"quillfeather" not in data.lower(), where
    assert b"Ada" in exports and b"(erased)" in ledger  # the rest is still there
    rows = _csv(host)
    assert sum(row["anonymous"] == "yes" for row in rows) == 2  # both her attendances, counted
    with host.store.engine.connect() as conn:
        keys = [r[0] for r in conn.execute(select(members_table.c.key))]
    assert member_id(NAME) not in keys


def _nowhere_on_disk(db_url: str) -> None:
    path = Path(db_url.removeprefix("sqlite:///"))
    wal = path.with_name(path.name + "-wal")
    raw = (path.read_bytes() + (wal.read_bytes() if wal.exists() else b"")).lower()
    assert b"zephyrine" not in raw and b"quillfeather" not in raw


def _export_bytes(host: Host, level: str, fmt: str) -> bytes:
    out = io.BytesIO()
    export(host.store.engine, level, fmt, ExportFilter(), out)  # type: ignore[arg-type]
    return out.getvalue()


async def test_a_facilitator_running_a_circle_is_asked_to_close_it_before_being_forgotten(host: Host) -> None:
    await host.console.say("Fran", "start check-in-30")
    outcome = await host.console.say("Fran", "forget me")
    assert not outcome.accepted
    assert "You are facilitating a circle that is running now (in room-1)" in _private(host, "Fran")[-1]


async def test_the_ledger_only_grows_withdrawal_and_erasure_add_entries_and_change_none(host: Host) -> None:
    await run_whole_circle(host, ["Ada", "Bea"])
    with host.store.engine.connect() as conn:
        before = [tuple(r) for r in conn.execute(select(consent_table).order_by(consent_table.c.id))]
    await host.console.say("Ada", "withdraw")
    await host.console.say("Bea", "forget me")
    with host.store.engine.connect() as conn:
        rows = list(conn.execute(select(consent_table).order_by(consent_table.c.id)))
    after = [tuple(r) for r in rows]
    assert after[: len(before)] == before
    assert [(r.scope, r.decision) for r in rows[len(before) :]] == [("attendance", "withdrawn"), ("all", "erased")]
    with pytest.raises(DBAPIError, match="append-only"), host.store.engine.begin() as conn:
        conn.execute(consent_table.update().where(consent_table.c.id == before[0][0]).values(text_hash="0" * 64))
    log = CliRunner().invoke(main, ["consent-log", "--db", host.store.url])
    assert log.exit_code == 0
    lines = log.output.splitlines()
    assert len(lines) == len(after)
    assert "withdrawn attendance: Ada (console:ada)" in lines[-2]
    assert "erased all: (erased);" in lines[-1]
    assert "given agreement: (erased);" in log.output  # Bea's earlier entries name nobody now


async def test_retention_anonymises_old_attendance_and_keeps_the_counts(host: Host) -> None:
    await run_whole_circle(host, ["Ada", "Bea"])
    host.clock.advance(40 * 86400)
    await run_whole_circle(host, ["Cy"])
    changed = anonymise_before(host.store, host.clock.now() - 30 * 86400)
    assert changed == 2
    rows = _csv(host)
    assert [(row["person"], row["anonymous"]) for row in rows] == [("", "yes"), ("", "yes"), ("Cy", "no")]
    circles = _csv(host, "circle")
    assert [(c["size"], c["facilitator"]) for c in circles] == [("2", ""), ("1", "Fran")]
    assert anonymise_before(host.store, host.clock.now() - 30 * 86400) == 0  # nothing left to do


async def test_forget_me_sent_with_other_commands_still_erases_everything(host: Host) -> None:
    """Commands that arrive together (Discord runs them at once): writes accepted before the erasure
    must not bring the name back after it."""
    import asyncio

    c = host.console
    await c.say("Fran", "start check-in-30")
    await c.say(NAME, "join")
    await asyncio.gather(c.say(NAME, "consent"), c.say("Fran", "end"), c.say(NAME, "forget me"))
    await c.say("Fran", "start check-in-30")
    await asyncio.gather(c.say("Fran", "end"), c.say("Fran", "forget me"))
    await host.runtime.writer.drain()
    with host.store.engine.connect() as conn:
        people = [tuple(r) for r in conn.execute(select(members_table.c.key, members_table.c.display_name))]
    assert all(not key.startswith("console:") and name is None for key, name in people), people


async def test_after_withdrawing_someone_who_steps_out_and_back_is_asked_again(host: Host) -> None:
    await host.console.say("Fran", "start check-in-30")
    for name in ("Ada", "Bea"):
        await host.console.say(name, "join")
        await host.console.say(name, "consent")
    await host.console.say("Bea", "withdraw")
    await host.console.say("Bea", "leave")
    await host.console.say("Bea", "join")
    assert _private(host, "Bea")[-1].startswith("Before you join, two things to agree to")
    hosted = host.runtime.circle_in("console", "room-1")
    assert hosted is not None
    assert [r["display_name"] for r in host.store.attendance_of(hosted.id)] == ["Ada", None]


def test_forgetting_one_person_leaves_everyone_elses_lines_and_notes(tmp_path: Path) -> None:
    from facilitator.storage.rights import forget
    from facilitator.storage.store import Outgoing, Store, Write

    store = Store(f"sqlite:///{tmp_path / 'n.db'}")
    try:
        store.set_values(
            {
                "matrix:@bot:example.org:dm:@to:example.org": "!one:example.org",
                "matrix:@bot:example.org:dm:@to:example.org.uk": "!two:example.org",
                "matrix:@bot:example.org:dm-room:!one:example.org": "@to:example.org",
            }
        )
        group = store.ensure_group("matrix", "!circle:example.org")
        for n, to in enumerate(("matrix:@to:example.org", "matrix:@ada:example.org")):
            line = {"text": "Thank you. Your consent is recorded.", "to": to, "mention": None, "mention_name": None}
            outgoing = Outgoing("matrix", "!circle:example.org", f"k{n}", [line], 1.0)
            store.apply([Write(f"c{n}", group, "matrix", "x", {}, None, 1.0, (), outgoing=outgoing)])
    except Exception:
        store.close()
        raise
    forget(store, "matrix:@to:example.org", 2.0, "matrix")  # someone called "To", with nothing kept
    assert [o.key for o in store.pending_outbox(["matrix"])] == ["k1"]  # Ada's receipt is still to be said
    assert store.get_value("matrix:@bot:example.org:dm:@to:example.org") is None
    assert store.get_value("matrix:@bot:example.org:dm-room:!one:example.org") is None
    assert store.get_value("matrix:@bot:example.org:dm:@to:example.org.uk") == "!two:example.org"
    store.close()


async def test_forget_me_in_the_console_removes_only_that_persons_files(host: Host, tmp_path: Path) -> None:
    """Whatever a name is, its folder is its own: never the folder that holds everyone's."""
    c = host.console
    await run_whole_circle(host, ["Ada", ".."])
    await c.say("Ada", "mydata")
    await c.say("..", "mydata")
    odd = c.folder_of(member_id(".."))
    assert odd.parent == c.files and odd.name != ".." and (odd / "my-data.json").exists()
    for strange in ("console:", "console:.", "console:../x", "console:a/b"):
        assert c.folder_of(strange).parent == c.files and c.folder_of(strange) != c.files
    await c.say("..", "forget me")
    assert not odd.exists() and (c.folder_of(member_id("Ada")) / "my-data.json").exists()


@pytest.mark.parametrize(
    "between",
    [
        ["leave", "join anonymous", "consent"],  # named, then anonymous
        ["withdraw", "leave", "join", "consent"],  # withdrew, then joined again with her name
        ["forget me", "join", "consent"],  # forgotten, then joined again
    ],
    ids=["anonymous-after-named", "named-after-withdraw", "named-after-forget"],
)
async def test_an_unnamed_stint_is_never_linked_to_a_named_one_in_the_same_circle(
    host: Host, between: list[str]
) -> None:
    """Rows of one circle share a seat only when they are one person's and equally (un)named: an
    anonymous or withdrawn row that shared a seat with a named one would say who it was."""
    from facilitator.storage.tables import attendance_table as attendance

    c = host.console
    await in_the_check_in_round(host, ("Ada", NAME))
    for text in between:
        await c.say(NAME, text)
    await c.say("Fran", "end")
    await host.runtime.writer.drain()
    with host.store.engine.connect() as conn:
        rows = conn.execute(select(attendance.c.member_id, attendance.c.seat)).all()
    named = {seat for member, seat in rows if member is not None}
    unnamed = {seat for member, seat in rows if member is None}
    assert len(rows) == 3 and len(named) == 2 and len(unnamed) == 1
    assert not named & unnamed
    [circle] = _csv(host, "circle")
    assert (circle["size"], circle["named"], circle["anonymous"]) == ("3", "2", "1")


def test_a_database_error_is_logged_without_the_names_and_ids_it_was_writing(tmp_path: Path) -> None:
    """SQLAlchemy puts a failed statement's parameters in its message, and so in the log, where
    forget me cannot reach: the store's engines leave them out."""
    from sqlalchemy import text

    from facilitator.storage.store import make_engine

    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    try:
        with pytest.raises(DBAPIError) as failed, engine.begin() as conn:
            conn.execute(text("INSERT INTO nowhere VALUES (:name)"), {"name": NAME})
        assert NAME not in str(failed.value) and "hidden" in str(failed.value)
    finally:
        engine.dispose()


def test_forget_me_drops_waiting_lines_whose_words_name_the_person(tmp_path: Path) -> None:
    """A line to someone else can name them in its text ("... after Quillfeather"): waiting in the
    outbox for a platform that was down, it would bring the name back after the erasure."""
    from sqlalchemy import insert

    from facilitator.storage.rights import forget
    from facilitator.storage.store import Outgoing, Store, Write

    store = Store(f"sqlite:///{tmp_path / 'n.db'}")
    try:
        with store.engine.begin() as conn:
            row = {"key": "matrix:@q:example.org", "platform": "matrix", "display_name": NAME, "created_at": 1.0}
            conn.execute(insert(members_table).values(**row))
        group = store.ensure_group("matrix", "!circle:example.org")
        texts = (f"You are number 1 to hold the piece next, after {NAME}.", "You are number 1, after Zephyrineo.")
        for n, text in enumerate(texts):
            line = {"text": text, "to": "matrix:@bea:example.org", "mention": None, "mention_name": None}
            outgoing = Outgoing("matrix", "!circle:example.org", f"k{n}", [line], 1.0)
            store.apply([Write(f"c{n}", group, "matrix", "x", {}, None, 1.0, (), outgoing=outgoing)])
        forget(store, "matrix:@q:example.org", 2.0, "matrix")
        assert [o.key for o in store.pending_outbox(["matrix"])] == ["k1"]  # a longer word is not her name
    finally:
        store.close()
