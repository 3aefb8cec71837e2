"""What people can do about their records on Discord, and coordinators' exports: ``/circle mydata``,
``withdraw``, ``forget-me`` and ``export``. Every answer, and above all every file, reaches only the
person who asked (an ephemeral answer, or a direct message): never the circle's channel.

The real discord.py client against the loopback Discord (tests/discord_fake), as in
tests/test_discord_circle.py.
"""

from __future__ import annotations

import csv
import io
import json

import openpyxl
import pytest
from sqlalchemy import select

import adapters.discord.adapter as discord_adapter
from adapters.discord.commands import export_text
from facilitator.config import GroupConfig
from facilitator.exports.filters import ExportFilter
from facilitator.exports.run import export
from facilitator.storage.tables import members_table
from facilitator.voice import Attachment, Line
from tests.discord_fake import Interaction, Message
from tests.discord_people import GROUP, Guild, guild

__all__ = ["guild"]


async def _a_circle(g: Guild) -> str:
    """Fran runs check-in-30 with Ada and Bea (both consent), and ends it after the first turn begins."""
    await (await g.slash(g.fran, "start", script="check-in-30")).response()
    for who in (g.ada, g.bea):
        await (await g.slash(who, "join")).response()
        await (await g.slash(who, "consent")).response()
    await (await g.slash(g.fran, "begin")).response()
    await g.settle_time(120)  # the welcome and the agreement
    hosted = g.hosted()
    assert hosted is not None and hosted.circle.holder == f"discord:{g.ada.id}"
    await (await g.slash(g.fran, "end")).response()
    assert g.hosted() is None
    return hosted.id


def _files(g: Guild) -> list[Message]:
    """Every message the bot sent with a file, anywhere."""
    return [m for m in g.fake.messages() if m.files]


def _nothing_public(g: Guild) -> None:
    """The channel shows no file, and none of the private answers."""
    public = g.fake.messages(g.channel, ephemeral=False)
    assert not [m for m in public if m.files or m.attachments]
    text = " ".join(m.content for m in public)
    for private in ("everything kept about you", "export", "withdrawn", "erased", "coordinators"):
        assert private not in text


async def _answer(inter: Interaction) -> Message:
    """The ephemeral message that answered ``inter`` (its response, filled in if deferred)."""
    response = await inter.response()
    assert response.ephemeral
    message = await inter.wait_original()
    assert message.ephemeral and message.interaction_user is not None
    return message


def _csv(g: Guild) -> list[dict[str, str]]:
    out = io.BytesIO()
    export(g.store.engine, "attendance", "csv", ExportFilter(), out)
    return list(csv.DictReader(io.StringIO(out.getvalue().decode("utf-8-sig"))))


async def test_mydata_is_a_file_only_its_owner_sees(guild: Guild) -> None:
    g = guild
    circle_id = await _a_circle(g)
    inter = await g.slash(g.ada, "mydata")
    answer = await _answer(inter)
    assert "Here is everything kept about you" in answer.content
    assert answer.interaction_user is not None and answer.interaction_user.id == g.ada.id
    file = answer.file("my-data.json")
    assert file is not None and file.content_type == "application/json"
    assert [a["filename"] for a in answer.attachments] == ["my-data.json"]
    data = json.loads(file.data)
    assert data["person"]["display_name"] == "Ada" and data["person"]["platform_id"] == f"discord:{g.ada.id}"
    assert [a["circle_id"] for a in data["attendance"]] == [circle_id]
    assert data["attendance"][0]["group"] == GROUP
    assert "Bea" not in file.data.decode()  # only what is kept about Ada
    assert _files(g) == [answer]  # the only file anywhere
    assert g.fake.dms(g.ada) == []  # answered in place, not by direct message
    _nothing_public(g)

    # In a direct message with the bot too; someone nothing is kept about gets no file.
    direct = await _answer(await g.fake.dm_slash(g.bea, "circle", "mydata"))
    bea = direct.file("my-data.json")
    assert bea is not None and json.loads(bea.data)["person"]["display_name"] == "Bea"
    nobody = await _answer(await g.slash(g.cy, "mydata"))
    assert nobody.content.startswith("Nothing is kept about you") and not nobody.files
    _nothing_public(g)


async def test_a_file_after_a_deferral_fills_the_private_answer(guild: Guild, monkeypatch: pytest.MonkeyPatch) -> None:
    g = guild
    await _a_circle(g)
    monkeypatch.setattr(discord_adapter, "DEFER_AFTER", 0.0)  # every answer comes after a deferral
    inter = await g.slash(g.bea, "mydata")
    first = await inter.response()
    assert first.type == 5 and first.ephemeral  # "thinking", privately
    answer = await inter.wait_original(lambda m: not m.loading and bool(m.files))
    assert answer.ephemeral and answer.file("my-data.json") is not None
    assert "everything kept about you" in answer.content
    assert [e.via for e in answer.edits] == ["edit_original"] and inter.followups == []
    assert _files(g) == [answer]
    _nothing_public(g)


async def test_a_file_with_no_command_to_answer_goes_by_direct_message(guild: Guild) -> None:
    g = guild
    line = Line("Your file.", to=f"discord:{g.ada.id}", attachment=Attachment("note.txt", b"hello", "text/plain"))
    outcome = await g.runtime.send_private_file("discord", str(g.channel.id), line.to or "", line)
    assert outcome.accepted
    dm = await g.fake.wait_for_message(lambda m: bool(m.files), channel=g.fake.dm_channel(g.ada))
    assert dm.content == "Your file." and dm.file("note.txt") is not None
    assert dm.files[0].data == b"hello"
    _nothing_public(g)
    # A line for the channel never carries a file, even if one were given.
    await g.adapter.send(str(g.channel.id), [Line("To everyone.", attachment=Attachment("x.txt", b"x", "text/plain"))])
    posted = await g.posted("To everyone.")
    assert not posted.files and not posted.attachments


async def test_withdraw_then_exports_no_longer_name_me(guild: Guild) -> None:
    g = guild
    await _a_circle(g)
    assert {row["person"] for row in _csv(g)} == {"Ada", "Bea"}
    answer = await _answer(await g.slash(g.ada, "withdraw"))
    assert answer.content.startswith("Done: your consent to attendance being recorded is withdrawn")
    assert not answer.files
    rows = _csv(g)
    assert sorted(row["person"] for row in rows) == ["", "Bea"]
    assert sorted(row["anonymous"] for row in rows) == ["no", "yes"]
    _nothing_public(g)


async def test_forget_me_erases_my_name_and_id(guild: Guild) -> None:
    g = guild
    await _a_circle(g)
    answer = await _answer(await g.slash(g.ada, "forget-me"))
    assert "erased from every record" in answer.content
    with g.store.engine.connect() as conn:
        people = conn.execute(select(members_table.c.key, members_table.c.display_name)).all()
    assert f"discord:{g.ada.id}" not in {key for key, _ in people}
    assert "Ada" not in {name for _, name in people}
    assert f"discord:{g.bea.id}" in {key for key, _ in people}  # only Ada
    again = await _answer(await g.slash(g.ada, "mydata"))
    assert again.content.startswith("Nothing is kept about you") and not again.files
    _nothing_public(g)


async def test_a_coordinator_gets_an_xlsx_export_privately(guild: Guild) -> None:
    g = guild
    await _a_circle(g)
    g.coordinate(g.cy)
    answer = await _answer(await g.slash(g.cy, "export", format="xlsx"))
    assert answer.content.startswith("Here is your attendance export") and GROUP in answer.content
    assert len(answer.files) == 1
    file = answer.files[0]
    assert file.filename.startswith("attendance-") and file.filename.endswith(".xlsx")
    book = openpyxl.load_workbook(io.BytesIO(file.data), read_only=True)
    rows = [list(row) for row in book.worksheets[0].iter_rows(values_only=True)]
    assert "person" in rows[0] and len(rows) == 3  # a heading and a row each for Ada and Bea
    people = {row[rows[0].index("person")] for row in rows[1:]}
    assert people == {"Ada", "Bea"}
    assert _files(g) == [answer]
    _nothing_public(g)


async def test_only_coordinators_export_and_only_their_groups(guild: Guild) -> None:
    g = guild
    await _a_circle(g)
    # Fran coordinates another group; nobody coordinates the channel's group but Cy.
    elsewhere = g.fake.channel("elsewhere")
    other = GroupConfig(
        name="South East circles", region="South East", discord_channels=(elsewhere.id,), coordinators=(g.fran.id,)
    )
    g.coordinate(g.cy, others=[other])

    refused = await _answer(await g.slash(g.ada, "export"))
    assert refused.content.startswith("Exports are for the coordinators") and not refused.files
    outside = await _answer(await g.slash(g.fran, "export", format="csv", group=GROUP))
    assert "you may export South East circles; not North West check-ins" in outside.content
    assert not outside.files
    # Fran's own group has held no circle: an export of it names nobody from this one.
    own = await _answer(await g.slash(g.fran, "export"))
    assert len(own.files) == 1 and b"Ada" not in own.files[0].data
    # Cy's export of the group by name, with dates.
    mine = await _answer(
        await g.slash(g.cy, "export", level="person", since="2020-01-01", until="2099-12-31", group=GROUP)
    )
    assert mine.files and mine.files[0].filename.startswith("person-")
    assert {row["person"] for row in csv.DictReader(io.StringIO(mine.files[0].data.decode("utf-8-sig")))} >= {
        "Ada",
        "Bea",
    }
    assert not [m for m in _files(g) if m.interaction_user is None or m.interaction_user.id not in (g.fran.id, g.cy.id)]
    _nothing_public(g)


def _registered(g: Guild) -> dict[str, dict[str, object]]:
    (circle,) = [c for c in g.fake.commands() if c["name"] == "circle"]
    return {o["name"]: o for o in circle["options"]}


async def test_the_records_commands_are_registered_for_servers_and_direct_messages(guild: Guild) -> None:
    g = guild
    (circle,) = [c for c in g.fake.commands() if c["name"] == "circle"]
    assert sorted(circle["contexts"]) == [0, 1]
    options = _registered(g)
    assert {"mydata", "withdraw", "forget-me", "export"} <= set(options)
    assert "Erase" in str(options["forget-me"]["description"])
    export_options = {o["name"]: o for o in options["export"]["options"]}  # type: ignore[attr-defined]
    assert list(export_options) == ["level", "format", "since", "until", "group"]
    assert [c["value"] for c in export_options["level"]["choices"]] == ["attendance", "circle", "person"]
    assert [c["value"] for c in export_options["format"]["choices"]] == ["csv", "xlsx", "json"]
    assert not any(o.get("required") for o in export_options.values())


def test_export_options_become_the_typed_command() -> None:
    assert export_text(None, None, None, None, None) == "export"
    assert export_text("circle", "xlsx", "2026-01-01", "2026-03-31", " North  West ") == (
        "export circle xlsx 2026-01-01 2026-03-31 group North West"
    )
    assert export_text(None, "json", None, "2026-03-31", None) == "export json 1970-01-01 2026-03-31"
    assert export_text(None, None, " 2026-01-01 ", None, "") == "export 2026-01-01"


async def test_a_coordinator_sees_their_groups_offered(guild: Guild) -> None:
    g = guild
    g.coordinate(g.cy)
    typing = await g.fake.autocomplete(g.cy, g.channel, "circle", "export", {"group": "north"}, focused="group")
    await typing.response()
    assert typing.choices is not None and [c["value"] for c in typing.choices] == [GROUP]
    nobody = await g.fake.autocomplete(g.ada, g.channel, "circle", "export", {"group": ""}, focused="group")
    await nobody.response()
    assert nobody.choices == []
