"""From a typed command to the runtime: shared by every text-command adapter.

An adapter that reads commands as text (the console, Matrix's ``!circle ...``) hands each
one to :func:`handle_command` with who sent it and from which room. Unknown or malformed
commands are answered, privately, with the help the sender may use.
"""

from __future__ import annotations

from collections.abc import Callable

from facilitator.commands import Help, Parsed, help_lines, parse, to_event
from facilitator.engine import actions as A
from facilitator.engine import events as E
from facilitator.runtime.host import GroupInfo, Runtime


def _identity(person: str) -> str:
    return person


async def handle_command(
    runtime: Runtime,
    platform: str,
    room: str,
    by: str,
    name: str,
    text: str,
    *,
    resolve: Callable[[str], str] = _identity,
    group: GroupInfo | None = None,
    may_steer: bool = True,
    source: str | None = None,
) -> A.Outcome:
    """Carry out one command from ``by`` (display name ``name``) in ``room``.

    ``source`` is the platform's id of the message (see :meth:`Runtime.submit`): every reply
    to it is keyed from it, so a platform that deduplicates sends shows each reply once."""
    parsed = parse(text)
    hosted = runtime.circle_in(platform, room)
    steering = hosted is not None and by in hosted.circle.state.facilitators and may_steer
    could_start = hosted is None and may_steer
    if isinstance(parsed, Help):
        return await _help(runtime, platform, room, by, parsed.problem, steering or could_start, source)
    if parsed.name == "help":
        return await _help(runtime, platform, room, by, "", steering or could_start, source)
    if parsed.name == "scripts":
        names = ", ".join(runtime.library.names())
        return await runtime.say_private(platform, room, by, "scripts", source=source, names=names)
    if parsed.name == "start":
        if not may_steer:
            return await runtime.refuse(platform, room, by, "not_facilitator", source=source)
        return await runtime.open_circle(platform, room, parsed.args[0], by, name, group=group, source=source)
    if parsed.name == "consent" and hosted is not None:
        # Typed consent agrees to the text this circle showed (its script is pinned while it runs);
        # buttons on chat platforms carry the hash of the text they were sent with instead.
        parsed = Parsed("consent", (hosted.circle.script.consent.text_hash,))
    event = to_event(parsed, by, name, resolve)
    if isinstance(event, Help):
        return await _help(runtime, platform, room, by, event.problem, steering, source)
    if isinstance(event, E.STEERING_EVENTS) and not may_steer:
        return await runtime.refuse(platform, room, by, "not_facilitator", source=source)
    return await runtime.submit(platform, room, event, source=source)


async def _help(
    runtime: Runtime, platform: str, room: str, by: str, problem: str, steering: bool, source: str | None
) -> A.Outcome:
    prefix = runtime.hints.get(platform, {}).get("command_prefix", "")
    commands = ", ".join(prefix + line for line in help_lines(steering))
    template = "help_problem" if problem else "help"
    return await runtime.say_private(platform, room, by, template, source=source, problem=problem, commands=commands)
