"""Names as every platform hands them over (one rule everywhere: nothing invisible, nothing that
cannot be saved), spreadsheets that see past invisible characters, and refusals to someone the
platform does not let steer that say the true reason."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path

import openpyxl
import pytest

from adapters.console import member_id
from adapters.discord.content import clean_name as discord_name
from adapters.matrix.content import clean_name as matrix_name
from adapters.matrix.content import notice
from facilitator.config import load_config
from facilitator.engine import events as E
from facilitator.exports.cells import neutralised
from facilitator.exports.filters import ExportFilter
from facilitator.exports.run import export
from facilitator.front import handle_command
from facilitator.runtime.clock import ManualClock
from facilitator.runtime.host import Runtime
from facilitator.storage.store import Store
from facilitator.voice import MENTION, Line
from tests.conftest import Host, in_the_check_in_round
from tests.test_exports import CONFIG, NORTH, Recorder

POWER = "a power level of 50 or more"
"""What the Matrix adapter says steering takes, with the default steer level."""


def private_to(host: Host, name: str) -> list[str]:
    return [line.plain() for line in host.console.transcript if line.to == member_id(name)]


async def typed(
    host: Host, name: str, text: str, *, display: str = "", may_steer: bool = True, needs: str = ""
) -> None:
    """``name`` types ``text`` as a chat platform hands it over (display name ``display``)."""
    await handle_command(
        host.runtime,
        "console",
        "room-1",
        member_id(name),
        display or name,
        text,
        resolve=member_id,
        may_steer=may_steer,
        steer_needs=needs,
    )


# ---------------------------------------------------------------------------- lone surrogates


async def test_a_name_with_a_lone_surrogate_joins_on_the_console(host: Host) -> None:
    c = host.console
    await c.say("Fran", "start check-in-30")
    await c.say("Ada\udcff", "join")  # what a terminal hands over for bytes that are not UTF-8
    await c.say("Ada\udcff", "consent")
    assert not any("could not be saved" in line for line in host.said())
    hosted = host.runtime.circle_in("console", "room-1")
    assert hosted is not None
    ada = hosted.circle.state.participants[member_id("Ada")]
    assert ada.name == "Ada" and ada.state == "present"


async def test_names_with_a_lone_surrogate_are_cleaned_at_the_front_door_for_every_platform(host: Host) -> None:
    """Whatever an adapter hands over, the runtime keeps a state it can save."""
    await typed(host, "Fran", "start check-in-30", display="Fran\ud800")
    await typed(host, "Bea", "join", display="Bea\udcff")
    await typed(host, "Bea", "consent", display="Bea\udcff")
    await typed(host, "Mo", "step in", display="\udcffMo")
    assert not any("could not be saved" in line for line in host.said())
    hosted = host.runtime.circle_in("console", "room-1")
    assert hosted is not None
    assert hosted.circle.state.participants[member_id("Bea")].name == "Bea"
    assert member_id("Mo") in hosted.circle.state.facilitators
    assert any("Mo has stepped in" in line for line in host.said())


async def test_a_lone_surrogate_in_a_command_is_answered_with_words_that_can_be_sent(host: Host) -> None:
    await in_the_check_in_round(host)
    await typed(host, "Fran", "role Ada pres\udcffenter")
    told = private_to(host, "Fran")[-1]
    assert "no role called presenter" in told
    for line in host.console.transcript:
        line.text.encode("utf-8")  # a platform could send every line


# ---------------------------------------------------------------------------- one rule for names


@pytest.mark.parametrize("clean", [matrix_name, discord_name], ids=["matrix", "discord"])
@pytest.mark.parametrize(
    ("typed_name", "kept"),
    [
        ("Ada\u2028Lovelace", "Ada Lovelace"),  # line separator: a line break in a mention
        ("Ada\u2029Lovelace", "Ada Lovelace"),  # paragraph separator
        ("\ufeff=Ada", "=Ada"),  # byte order mark
        ("Ada\u00adLovelace", "AdaLovelace"),  # soft hyphen
        ("A\u034fda", "Ada"),  # combining grapheme joiner
        ("Ada\U000e0041\U000e0042", "Ada"),  # tag characters
        ("Ada\udcff", "Ada"),  # a lone surrogate
        ("\u202eAda\u200b", "Ada"),  # direction override, zero-width space
        ("Ada\nLovelace\t\x07", "Ada Lovelace"),
        ("Ada\u00a0 Lovelace", "Ada Lovelace"),  # spaces of any kind: one ordinary space
        ("\u3164", "someone"),  # a Hangul filler alone shows as nothing
        ("Zoë 李 🌱", "Zoë 李 🌱"),
    ],
)
def test_every_platform_keeps_the_same_visible_one_line_name(
    clean: Callable[[str], str], typed_name: str, kept: str
) -> None:
    assert clean(typed_name) == kept


def test_a_matrix_mention_of_a_name_with_a_line_separator_stays_on_one_line() -> None:
    line = Line(f"{MENTION}, the piece is with you.", mention="matrix:@ada:example.org", mention_name="Ada\u2028Lo")
    content = notice(line)
    assert content["body"] == "Ada Lo, the piece is with you."
    assert "\u2028" not in content["formatted_body"]


def test_long_names_end_in_an_ellipsis_within_each_platforms_limit() -> None:
    long = "A" * 100
    assert len(matrix_name(long)) == 64 and matrix_name(long).endswith("…")
    assert len(discord_name(long)) == 80 and discord_name(long).endswith("…")


# ---------------------------------------------------------------------------- spreadsheets


@pytest.mark.parametrize(
    "name", ['\ufeff=HYPERLINK("http://evil.example")', "\u200b\u200b-2+3", " @SUM(1)", "\u00a0+1"]
)
def test_a_formula_behind_invisible_characters_is_kept_as_text(name: str) -> None:
    assert neutralised(name) == "'" + name


@pytest.fixture
async def grouped(tmp_path: Path) -> AsyncIterator[Runtime]:
    config_path = tmp_path / "serve.yaml"
    config_path.write_text(CONFIG, encoding="utf-8")
    config = load_config(config_path)
    store = Store(f"sqlite:///{tmp_path / 'x.db'}")
    store.sync_groups(config)
    clock = ManualClock(start=datetime(2027, 1, 31, 20, 0, tzinfo=UTC).timestamp())
    runtime = Runtime(store, clock=clock, adapters=[Recorder()], config=config)
    await runtime.start()
    group = config.group_of(NORTH)
    assert group is not None
    await runtime.group_id("matrix", NORTH, group.info())
    yield runtime
    await runtime.stop()
    store.close()


async def test_a_name_kept_before_names_were_cleaned_is_plain_text_in_csv_and_xlsx(grouped: Runtime) -> None:
    runtime = grouped
    hostile = '\ufeff=HYPERLINK("http://evil.example","Ada")'
    ada, fran = "matrix:@ada:example.org", "matrix:@fran:example.org"
    await handle_command(runtime, "matrix", NORTH, fran, "Fran", "start check-in-30")
    await runtime.submit("matrix", NORTH, E.Join(ada, hostile))  # as an older version kept it
    await handle_command(runtime, "matrix", NORTH, ada, "Ada", "consent")
    await handle_command(runtime, "matrix", NORTH, fran, "Fran", "begin")
    await handle_command(runtime, "matrix", NORTH, fran, "Fran", "end")

    out = io.BytesIO()
    export(runtime.store.engine, "attendance", "csv", ExportFilter(), out)
    rows = list(csv.DictReader(io.StringIO(out.getvalue().decode("utf-8-sig"))))
    assert [row["person"] for row in rows] == ["'" + hostile]

    out = io.BytesIO()
    export(runtime.store.engine, "attendance", "xlsx", ExportFilter(), out)
    sheet = openpyxl.load_workbook(out).active
    assert sheet is not None
    cell = next(sheet.iter_rows(min_row=2))[7]
    assert cell.data_type == "s" and cell.value == "'" + hostile


# ---------------------------------------------------------------------------- steering without the room's permission


async def test_a_cofacilitator_without_the_rooms_permission_is_told_so(host: Host) -> None:
    hosted = await in_the_check_in_round(host)
    await typed(host, "Fran", "cofacilitator Ada")
    assert member_id("Ada") in hosted.circle.state.facilitators
    await typed(host, "Ada", "pause", may_steer=False, needs=POWER)
    told = private_to(host, "Ada")[-1]
    assert told.startswith("You facilitate this circle, but steering it in this room also needs " + POWER)
    assert "room admin" in told and "Only a facilitator" not in told
    assert hosted.circle.status.value == "running"


async def test_starting_without_the_rooms_permission_says_what_it_takes(host: Host) -> None:
    await typed(host, "Ada", "start check-in-30", may_steer=False, needs=POWER)
    told = private_to(host, "Ada")[-1]
    assert told.startswith(f"Starting a circle in this room needs {POWER}") and "room admin" in told
    assert host.runtime.circle_in("console", "room-1") is None
    for command in ("begin", "step in", "end"):
        await typed(host, "Ada", command, may_steer=False, needs=POWER)
        told = private_to(host, "Ada")[-1]
        assert told.startswith("There is no open circle here to steer"), command
        assert POWER in told and "Only a facilitator" not in told, command


async def test_stepping_in_without_the_rooms_permission_says_what_it_takes(host: Host) -> None:
    hosted = await in_the_check_in_round(host)
    await typed(host, "Ada", "step in", may_steer=False, needs=POWER)
    assert private_to(host, "Ada")[-1].startswith(f"Stepping in to facilitate needs {POWER} in this room")
    assert member_id("Ada") not in hosted.circle.state.facilitators
    await typed(host, "Ada", "end", may_steer=False)  # not a facilitator: that is the reason
    assert private_to(host, "Ada")[-1].startswith("Only a facilitator of this circle")


async def test_a_platform_that_does_not_say_what_steering_takes_gets_general_words(host: Host) -> None:
    await typed(host, "Ada", "start check-in-30", may_steer=False)
    assert private_to(host, "Ada")[-1].startswith("Starting a circle in this room needs this room's permission")


@pytest.mark.parametrize(
    "name",
    [
        "علی\u200cرضا",  # Persian: the non-joiner keeps the letters apart
        "ශ්\u200dරී",  # Sinhala: the joiner makes the conjunct
        "👨\u200d👩\u200d👧",  # a family, one emoji
        "🏳️\u200d🌈",  # the rainbow flag
        "\U0001f3f4\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f",  # Scotland's flag
    ],
)
def test_joiners_and_flag_tags_that_spell_a_name_are_kept(name: str) -> None:
    from facilitator.front import clean_name

    assert clean_name(name) == name
    assert clean_name("\u200d" + name + "\u200c") == name  # at either end they spell nothing: dropped
