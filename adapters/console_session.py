"""``facilitator console``: a person types as the facilitator and as participants.

Type a command as in chat (``start check-in-30``, ``join``, ``consent``, ``begin``, ``pass``,
``done``...). Switch who is speaking with ``as NAME``, or speak once as someone else with
``NAME: command``. ``quit`` (or end of input) leaves; an open circle is kept in the database
and carries on the next time the console (or a bot) starts over it.
"""

from __future__ import annotations

import asyncio
import re
from typing import TextIO

from adapters.console import ConsoleAdapter
from facilitator.runtime.host import Runtime
from facilitator.storage.store import Store

# Names are one word, so that "role NAME presenter" can name anyone.
_AS = re.compile(r"^as\s+([^\W\d_][\w.-]{0,39})$", re.IGNORECASE)
_ONCE = re.compile(r"^([^\W\d_][\w.-]{0,39}):\s*(.+)$")

INTRO = (
    "facilitator console. You are typing as {speaker}. Try: start check-in-30, then 'as Sam', join, consent,\n"
    "and 'as {speaker}' again to begin. 'NAME: command' speaks once as NAME. 'help' lists commands; 'quit' leaves.\n"
)


async def run_console(
    inp: TextIO, out: TextIO, *, speaker: str = "Facilitator", room: str = "terminal", database_url: str
) -> None:
    """Read commands from ``inp`` until it ends (or ``quit``), running the circle on the wall clock."""
    store = Store(database_url)
    console = ConsoleAdapter(out, room=room)
    runtime = Runtime(store, adapters=[console])
    await runtime.start()
    loop = asyncio.get_running_loop()
    out.write(INTRO.format(speaker=speaker))
    try:
        while True:
            out.write(f"({speaker}) > ")
            out.flush()
            raw = await loop.run_in_executor(None, inp.readline)
            if not raw:
                break
            text = raw.strip()
            if not text:
                continue
            if text.lower() in ("quit", "exit"):
                break
            switch = _AS.match(text)
            if switch:
                speaker = switch.group(1).strip()
                continue
            if text.lower().startswith("as "):
                out.write("Names are one word here (like Sam, or Sam-J), so that commands can name anyone.\n")
                continue
            once = _ONCE.match(text)
            if once:
                await console.say(once.group(1).strip(), once.group(2))
            else:
                await console.say(speaker, text)
    finally:
        await runtime.stop()
        store.close()
