"""The commands about records, in any room or in a direct message: the same on every platform.

- ``mydata``: everything kept about me, as a JSON file, privately.
- ``withdraw``: my attendance is no longer named, from the next export on (one word, as easy
  as consenting was).
- ``forget me``: my name and platform id are erased (see :mod:`facilitator.storage.rights`);
  if I am in a circle that is running, it lets me go first and keeps nothing of me.
- ``export``: a coordinator's attendance export, as a file, privately; only the groups they
  coordinate (see :mod:`facilitator.exports.access`).

Every answer is private (an ephemeral reply or a direct message), never in the circle's room.
"""

from __future__ import annotations

import asyncio
import io
import re
from dataclasses import replace
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

import orjson

from facilitator.commands import Parsed
from facilitator.engine import actions as A
from facilitator.engine import events as E
from facilitator.exports.filters import ExportFilter, parse_day
from facilitator.exports.levels import LEVELS, Level
from facilitator.exports.writers import FORMATS, Format
from facilitator.storage import rights
from facilitator.voice import Attachment, Line

if TYPE_CHECKING:
    from facilitator.runtime.host import Runtime

RIGHTS_COMMANDS = frozenset({"mydata", "withdraw", "forget", "export"})
MAX_CHAT_EXPORT = 8 * 1024 * 1024
"""The largest export sent in chat (Discord takes 10 MB from a bot; Matrix servers usually
more): bigger ones are refused with a pointer to the command line."""
MIME = {
    "csv": "text/csv",
    "json": "application/json",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}
_TIMES = frozenset({"at", "joined_at", "left_at", "started_at", "ended_at", "first_seen"})


async def handle(runtime: Runtime, platform: str, room: str, by: str, parsed: Parsed, source: str | None) -> A.Outcome:
    """Carry out one of :data:`RIGHTS_COMMANDS` for ``by``; every answer is private."""
    if parsed.name == "mydata":
        return await _my_data(runtime, platform, room, by, source)
    if parsed.name == "withdraw":
        for hosted in runtime.circles:  # a circle they are in asks again before naming them (after a rejoin)
            if by in hosted.circle.state.participants:
                await runtime.submit(hosted.platform, hosted.room, E.Withdraw(by))
        await runtime.writer.drain()  # their records already accepted are kept before they are unnamed
        changed = await runtime.writer.call(rights.withdraw, runtime.store, by, runtime.clock.now(), platform)
        template = "withdrawn" if changed.known else "nothing_kept"
        past = counted(changed.attendances, "record")
        return await runtime.say_private(platform, room, by, template, source=source, count=past)
    if parsed.name == "forget":
        if [a.lower() for a in parsed.args] != ["me"]:
            return await runtime.say_private(platform, room, by, "forget_confirm", source=source)
        return await _forget(runtime, platform, room, by, source)
    return await _export(runtime, platform, room, by, parsed.args, source)


def counted(n: int, one: str, many: str | None = None) -> str:
    """``1 consent entry``, ``2 consent entries``."""
    return f"{n} {one if n == 1 else many or one + 's'}"


class TooBig(Exception):
    """A chat export grew past :data:`MAX_CHAT_EXPORT`."""


class _Capped(io.BytesIO):
    """An in-memory file that refuses to grow past :data:`MAX_CHAT_EXPORT` (memory stays bounded)."""

    def write(self, data: Any) -> int:
        if self.tell() + len(data) > MAX_CHAT_EXPORT:
            raise TooBig
        return super().write(data)


def _readable(value: Any, key: str = "") -> Any:
    if isinstance(value, dict):
        return {k: _readable(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_readable(v) for v in value]
    if key in _TIMES and isinstance(value, (int, float)):
        return datetime.fromtimestamp(value, UTC).isoformat(timespec="seconds")
    return value


async def _my_data(runtime: Runtime, platform: str, room: str, by: str, source: str | None) -> A.Outcome:
    found = await runtime.writer.call(rights.my_data, runtime.store, by)
    if found is None:
        return await runtime.say_private(platform, room, by, "nothing_kept", source=source)
    data = orjson.dumps(_readable(found), option=orjson.OPT_INDENT_2)
    attachment = Attachment("my-data.json", data, "application/json")
    counts = {
        "attendances": counted(len(found["attendance"]), "attendance record"),
        "entries": counted(len(found["consent"]), "consent entry", "consent entries"),
    }
    text = runtime.voice.say("my_data", **counts)
    return await runtime.send_private_file(platform, room, by, Line(text, to=by, attachment=attachment), source)


async def _forget(runtime: Runtime, platform: str, room: str, by: str, source: str | None) -> A.Outcome:
    for hosted in runtime.circles:
        # Only the last facilitator holds a circle up: the others' steering stays with them.
        if hosted.circle.state.facilitators == [by]:
            return await runtime.refuse(platform, room, by, "facilitating_now", source=source, where=hosted.room)
    for hosted in runtime.circles:
        state = hosted.circle.state
        if by in state.participants or by in state.facilitators:  # the engine lets them go from both
            outcome = await runtime.submit(hosted.platform, hosted.room, E.Erase(by))
            if not outcome.accepted:
                return outcome
    await runtime.writer.drain()  # nothing accepted before may name them again after the erasure
    changed = await runtime.writer.call(rights.forget, runtime.store, by, runtime.clock.now(), platform)
    clean = await _checkpointed(runtime)
    template = "nothing_kept" if not changed.known else "forgotten" if clean else "forgotten_soon"
    outcome = await runtime.say_private(platform, room, by, template, source=source)
    # Answering may have opened a direct room and noted it (Matrix): that note goes too.
    await runtime.writer.call(rights.forget_notes, runtime.store, by)
    await _checkpointed(runtime)
    await runtime.forget_outside(by)  # files saved for them, the direct room the bot holds with them
    return outcome


CHECKPOINT_TRIES = 120
CHECKPOINT_PAUSE = 0.5


async def _checkpointed(runtime: Runtime) -> bool:
    """Fold the WAL into the file (old bytes gone), retrying while a reader (an export) holds it."""
    for attempt in range(CHECKPOINT_TRIES):
        if await runtime.writer.call(runtime.store.checkpoint):
            return True
        if attempt + 1 < CHECKPOINT_TRIES:
            await asyncio.sleep(CHECKPOINT_PAUSE)  # a real reader finishing, not a timer of the circle's
    return False


EXPORT_USAGE = "export [attendance|circle|person] [csv|xlsx|json] [FROM [TO]] [group NAME]"
DATE_LIKE = re.compile(r"^\d")
"""A word that begins with a digit is meant as a date (31/03/2026 is told how to write one)."""


def _export_request(args: tuple[str, ...]) -> tuple[Level, Format, ExportFilter] | str:
    """``export [LEVEL] [FORMAT] [FROM [TO]] [group NAME]``: the request, or what was wrong."""
    level: Level = "attendance"
    fmt: Format = "csv"
    days: list[date] = []
    groups: tuple[str, ...] = ()
    words = list(args)
    while words:
        word = words.pop(0)
        lowered = word.lower()
        if lowered == "group":
            if not words:
                return "export group needs the group's name, like: export group North West check-ins"
            groups = (" ".join(words),)
            break
        if lowered in LEVELS:
            level = lowered
        elif lowered in FORMATS:
            fmt = lowered
        elif len(days) < 2 and DATE_LIKE.match(word):  # only what looks like a date is read as one
            try:
                days.append(parse_day(word, "the date"))
            except ValueError as error:
                return str(error)
        else:
            return f"export does not know {word[:40]!r}: {EXPORT_USAGE}"
    since = days[0] if days else None
    until = days[1] if len(days) > 1 else None
    if since and until and since > until:
        return f"the dates are the wrong way round ({since} is after {until})"
    return level, fmt, ExportFilter(groups=groups, since=since, until=until)


async def _export(
    runtime: Runtime, platform: str, room: str, by: str, args: tuple[str, ...], source: str | None
) -> A.Outcome:
    from facilitator.exports.access import NotAllowed, allowed_group_ids, coordination
    from facilitator.exports.run import export

    config = runtime.config
    mine = coordination(config, by) if config is not None else None
    if mine is None or not mine.groups:
        return await runtime.refuse(platform, room, by, "not_coordinator", source=source)
    request = _export_request(args)
    if isinstance(request, str):
        return await runtime.say_private(platform, room, by, "export_problem", source=source, problem=request)
    level, fmt, wanted = request

    def run() -> bytes | str:
        with runtime.store.engine.connect() as conn:
            try:
                ids = allowed_group_ids(conn, mine, wanted.groups)
            except NotAllowed as error:
                return str(error)
        out = _Capped()
        export(runtime.store.engine, level, fmt, replace(wanted, group_ids=ids), out)
        return out.getvalue()

    try:
        made = await asyncio.to_thread(run)
    except TooBig:
        size = f"more than {MAX_CHAT_EXPORT // 1_048_576} MB"
        return await runtime.say_private(platform, room, by, "export_too_big", source=source, size=size)
    if isinstance(made, str):
        return await runtime.say_private(platform, room, by, "export_problem", source=source, problem=made)
    stamp = datetime.fromtimestamp(runtime.clock.now(), UTC).strftime("%Y-%m-%d")
    name = f"{level}-{stamp}.{fmt}"
    text = runtime.voice.say("export_ready", level=level, what=wanted.describe(), groups=", ".join(mine.names))
    line = Line(text, to=by, attachment=Attachment(name, made, MIME[fmt]))
    return await runtime.send_private_file(platform, room, by, line, source)
