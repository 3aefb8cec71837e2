"""From a typed command to the runtime: shared by every text-command adapter.

An adapter that reads commands as text (the console, Matrix's ``!circle ...``) hands each
one to :func:`handle_command` with who sent it and from which room. Unknown or malformed
commands are answered, privately, with the help the sender may use.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable

from facilitator import rights
from facilitator.commands import COMMANDS, Help, Parsed, help_lines, parse, to_event
from facilitator.engine import actions as A
from facilitator.engine import events as E
from facilitator.rights import RIGHTS_COMMANDS
from facilitator.runtime.host import GroupInfo, Hosted, Runtime

MAX_NAME = 80
"""The longest display name the engine keeps (a platform may keep less)."""

UNSHOWN = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
"""Unicode categories never kept in a name: controls, invisible format characters (zero-width
spaces, direction marks, soft hyphens, byte order marks, tag characters), lone surrogates (no
encoder takes them: a name holding one could never be saved) and line or paragraph breaks."""

BLANK_LETTERS = frozenset("\u034f\u115f\u1160\u17b4\u17b5\u3164\uffa0")
"""Characters that are letters or marks to Unicode yet show as nothing (the grapheme joiner,
Hangul fillers, Khmer inherent vowels): a name made of them would look empty."""


def clean_text(text: str) -> str:
    """Typed text with any lone surrogate dropped: nothing else changes, but what is left can
    always be encoded, stored and sent (a platform or a terminal can hand over a lone one)."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "".join(ch for ch in text if not "\ud800" <= ch <= "\udfff")
    return text


JOINERS = frozenset("\u200c\u200d")
"""Zero-width non-joiner and joiner: kept between two shown characters (Persian and Indic
spellings, emoji sequences such as a family or a rainbow flag), dropped anywhere else."""
BLACK_FLAG = "\U0001f3f4"


def _is_tag(ch: str) -> bool:
    return 0xE0020 <= ord(ch) <= 0xE007F


def _shown(ch: str) -> bool:
    return not ch.isspace() and ch not in BLANK_LETTERS and unicodedata.category(ch) not in UNSHOWN


def clean_name(name: str, limit: int = MAX_NAME) -> str:
    """A display name fit to keep and show, the same rule on every platform: one line, each run
    of spaces (of any kind) one ordinary space, no control, invisible or line-breaking character
    (see :data:`UNSHOWN`), at most ``limit`` characters (longer ones end in an ellipsis), and
    ``someone`` when nothing visible is left."""
    kept: list[str] = []
    for i, ch in enumerate(name):
        if ch.isspace():
            kept.append(" ")
        elif ch in JOINERS and kept and _shown(kept[-1]) and i + 1 < len(name) and _shown(name[i + 1]):
            kept.append(ch)  # ZWNJ/ZWJ between letters or emoji: part of how the name is spelt
        elif _is_tag(ch) and kept and (kept[-1] == BLACK_FLAG or _is_tag(kept[-1])):
            kept.append(ch)  # a subdivision flag's tags (Scotland, Wales)
        elif _shown(ch):
            kept.append(ch)
    cleaned = " ".join("".join(kept).split()) or "someone"
    return cleaned if len(cleaned) <= limit else cleaned[: limit - 1].rstrip() + "\u2026"


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
    steer_needs: str = "",
    source: str | None = None,
    direct: bool = False,
) -> A.Outcome:
    """Carry out one command from ``by`` (display name ``name``) in ``room``.

    ``may_steer`` is the platform's word on whether ``by`` may start and steer circles here
    (room power levels, Discord roles); ``steer_needs`` says in its words what that takes
    (``a power level of 50 or more in this room``), for the refusal that tells someone without
    it (the voice's general words if not given). ``direct`` marks a one-to-one room with the
    bot: no circle meets there, so only ``help`` and ``scripts`` are answered, with a pointer
    back. ``source`` is the platform's id of the message (see :meth:`Runtime.submit`): every
    reply to it is keyed from it, so a platform that deduplicates sends shows each reply once.

    The display name is cleaned here (:func:`clean_name`) and the text and sender of any lone
    surrogate (:func:`clean_text`), for every platform: nothing typed can make a state that
    cannot be saved."""
    by, name, text = clean_text(by), clean_name(name), clean_text(text)
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
        if not may_steer:  # whether or not a circle is open here (one closing just now would make room)
            needs = steer_needs or _needs(runtime)
            return await runtime.refuse(platform, room, by, "start_needs_permission", source=source, needs=needs)
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
        return await runtime.refuse(
            platform, room, by, _why_not(hosted, by, event), source=source, needs=steer_needs or _needs(runtime)
        )
    return await runtime.submit(platform, room, event, source=source)


def _needs(runtime: Runtime) -> str:
    return runtime.voice.say("steer_needs")


def _why_not(hosted: Hosted | None, by: str, event: E.Event) -> str:
    """The true reason a steering command from someone the platform does not let steer here is
    refused (the code of its ``refused.`` template)."""
    if hosted is None:
        return "no_circle_needs_permission"  # nothing to steer, and they could not start one either
    if by in hosted.circle.state.facilitators:
        return "facilitator_needs_permission"  # a co-facilitator, or their power in the room went down
    if isinstance(event, E.StepIn):
        return "step_in_needs_permission"
    return "not_facilitator"


PRIVATE_TURN_COMMANDS = frozenset({"done", "pass"})
"""What the piece's holder may also say in their direct room with the bot."""

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
    if isinstance(parsed, Parsed) and parsed.name in PRIVATE_TURN_COMMANDS:
        # The piece's holder may finish their turn from here: someone attending anonymously
        # need not say anything in the room to pass (the room is told only that the piece moved).
        held = [h for h in runtime.circles if h.platform == platform and h.circle.holder == by]
        if len(held) == 1:
            event = to_event(parsed, by, "", lambda person: person)
            if not isinstance(event, Help):
                return await runtime.submit(held[0].platform, held[0].room, event, source=source)
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
