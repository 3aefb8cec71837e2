"""From a typed command to the runtime: shared by every text-command adapter.

An adapter that reads commands as text (the console, Matrix's ``!circle ...``) hands each
one to :func:`handle_command` with who sent it and from which room. Unknown or malformed
commands are answered, privately, with the help the sender may use.
"""

from __future__ import annotations

from collections.abc import Callable

from facilitator import rights
from facilitator.commands import COMMANDS, Help, Parsed, help_lines, parse, to_event
from facilitator.engine import actions as A
from facilitator.engine import events as E
from facilitator.rights import RIGHTS_COMMANDS
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
    direct: bool = False,
) -> A.Outcome:
    """Carry out one command from ``by`` (display name ``name``) in ``room``.

    ``may_steer`` is the platform's word on whether ``by`` may start and steer circles here
    (room power levels, Discord roles). ``direct`` marks a one-to-one room with the bot: no
    circle meets there, so only ``help`` and ``scripts`` are answered, with a pointer back.
    ``source`` is the platform's id of the message (see :meth:`Runtime.submit`): every reply
    to it is keyed from it, so a platform that deduplicates sends shows each reply once."""
    parsed = parse(text)
    if isinstance(parsed, Parsed) and parsed.name in RIGHTS_COMMANDS:
        return await rights.handle(runtime, platform, room, by, parsed, source)
    if direct:
        return await _direct(runtime, platform, room, by, parsed, source, _coordinates(runtime, by))
    hosted = runtime.circle_in(platform, room)
    steering = hosted is not None and by in hosted.circle.state.facilitators and may_steer
    could_start = hosted is None and may_steer
    may_step_in = hosted is not None and may_steer and by not in hosted.circle.state.facilitators
    if isinstance(parsed, Help) or parsed.name == "help":
        problem = parsed.problem if isinstance(parsed, Help) else ""
        return await _help(
            runtime,
            platform,
            room,
            by,
            problem,
            help_lines(steering or could_start, may_step_in, _coordinates(runtime, by)),
            source,
        )
    if parsed.name == "scripts":
        return await _scripts(runtime, platform, room, by, source)
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
        usages = help_lines(steering, may_step_in, _coordinates(runtime, by))
        return await _help(runtime, platform, room, by, event.problem, usages, source)
    if isinstance(event, E.NEEDS_PERMISSION) and not may_steer:
        return await runtime.refuse(platform, room, by, "not_facilitator", source=source)
    return await runtime.submit(platform, room, event, source=source)


DIRECT_COMMANDS = ["help", "scripts", "mydata", "withdraw", "forget me"]
"""What a one-to-one room with the bot answers: no circle meets there, but what is kept about me does."""


def _coordinates(runtime: Runtime, by: str) -> bool:
    """Whether ``by`` coordinates a group (asked only when help is shown: not on every command)."""
    config = runtime.config
    if config is None:
        return False
    from facilitator.exports.access import coordination

    return bool(coordination(config, by).groups)


def _direct_commands(coordinator: bool) -> list[str]:
    export = [spec.usage for spec in COMMANDS if spec.name == "export"]
    return DIRECT_COMMANDS + export if coordinator else DIRECT_COMMANDS


async def _direct(
    runtime: Runtime,
    platform: str,
    room: str,
    by: str,
    parsed: Parsed | Help,
    source: str | None,
    coordinator: bool,
) -> A.Outcome:
    if isinstance(parsed, Parsed) and parsed.name == "scripts":
        return await _scripts(runtime, platform, room, by, source)
    usages = _direct_commands(coordinator)
    if isinstance(parsed, Help) or parsed.name == "help":
        problem = parsed.problem if isinstance(parsed, Help) else ""
        return await _help(runtime, platform, room, by, problem, usages, source)
    commands = _listed(runtime, platform, usages)
    return await runtime.say_private(platform, room, by, "direct_room", source=source, commands=commands)


async def _scripts(runtime: Runtime, platform: str, room: str, by: str, source: str | None) -> A.Outcome:
    names = ", ".join(runtime.library.names())
    return await runtime.say_private(platform, room, by, "scripts", source=source, names=names)


def _listed(runtime: Runtime, platform: str, usages: list[str]) -> str:
    prefix = runtime.hints.get(platform, {}).get("command_prefix", "")
    return ", ".join(prefix + usage for usage in usages)


async def _help(
    runtime: Runtime, platform: str, room: str, by: str, problem: str, usages: list[str], source: str | None
) -> A.Outcome:
    commands = _listed(runtime, platform, usages)
    template = "help_problem" if problem else "help"
    return await runtime.say_private(platform, room, by, template, source=source, problem=problem, commands=commands)
