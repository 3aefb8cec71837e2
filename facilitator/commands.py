"""The circle's commands, parsed the same way on every platform.

Matrix reads ``!circle pass``, the console reads ``pass``, Discord's slash command
``/circle pass`` arrives already split: all of them end up here, so a command means the
same everywhere. Parsing never raises: anything unknown becomes a :class:`Help` answer.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from facilitator.engine import events as E


@dataclass(frozen=True, slots=True)
class CommandSpec:
    """A command: its words, its arguments and who may use it."""

    name: str
    usage: str
    steering: bool
    """Only for facilitators (and whoever may start a circle)."""
    aliases: tuple[str, ...] = ()
    needs: int = 0
    """How many arguments it must have."""
    stepping_in: bool = False
    """Only for someone the platform lets steer who is not (yet) a facilitator of the circle."""
    coordinating: bool = False
    """Only for coordinators (exports)."""


COMMANDS: tuple[CommandSpec, ...] = (
    CommandSpec("start", "start SCRIPT", True, needs=1),
    CommandSpec("scripts", "scripts", False),
    CommandSpec("join", "join [anonymous]", False),
    CommandSpec("consent", "consent", False, ("agree",)),
    CommandSpec("leave", "leave", False),
    CommandSpec("pass", "pass", False),
    CommandSpec("done", "done", False),
    CommandSpec("ask", "ask", False, ("me",)),
    CommandSpec("status", "status", False),
    CommandSpec("begin", "begin", True),
    CommandSpec("pause", "pause", True),
    CommandSpec("resume", "resume", True),
    CommandSpec("extend", "extend MINUTES", True, needs=1),
    CommandSpec("next", "next", True, ("skip",)),
    CommandSpec("end", "end", True),
    CommandSpec("role", "role PERSON ROLE", True, needs=2),
    CommandSpec("cofacilitator", "cofacilitator PERSON", True, ("share",), needs=1),
    CommandSpec("stepin", "step in", True, ("step", "step-in", "takeover"), stepping_in=True),
    CommandSpec("mydata", "mydata", False, ("my-data", "data")),
    CommandSpec("withdraw", "withdraw", False),
    CommandSpec("forget", "forget me", False),
    CommandSpec(
        "export", "export [attendance|circle|person] [csv|xlsx|json] [FROM [TO]] [group NAME]", False, coordinating=True
    ),
    CommandSpec("help", "help", False),
)

_BY_WORD = {word: spec for spec in COMMANDS for word in (spec.name, *spec.aliases)}
MAX_COMMAND_LENGTH = 500


@dataclass(frozen=True, slots=True)
class Parsed:
    """A recognised command and its arguments."""

    name: str
    args: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Help:
    """Not a command we know (or a malformed one): answer with help, and why."""

    problem: str


def parse(text: str) -> Parsed | Help:
    """Split a command line (without any platform prefix) into a command and its arguments."""
    if len(text) > MAX_COMMAND_LENGTH:
        return Help("that message is too long to be a command")
    words = text.strip().split()
    if not words:
        return Help("")
    if words[0].lower() == "forget-me":  # Discord's name for it, typed elsewhere
        words = ["forget", "me", *words[1:]]
    spec = _BY_WORD.get(words[0].lower())
    if spec is None:
        return Help(f"there is no command {words[0][:40]!r}")
    args = tuple(words[1:])
    if len(args) < spec.needs:
        return Help(f"{spec.name} needs more: {spec.usage}")
    return Parsed(spec.name, args)


def help_lines(steering: bool, may_step_in: bool = False, coordinator: bool = False) -> list[str]:
    """The usages a person may use (facilitators see the steering ones too; someone the platform
    lets steer, in a circle they do not facilitate, sees ``step in``; coordinators ``export``)."""
    return [
        spec.usage
        for spec in COMMANDS
        if (coordinator if spec.coordinating else may_step_in if spec.stepping_in else steering or not spec.steering)
    ]


def to_event(parsed: Parsed, by: str, name: str, resolve: Callable[[str], str]) -> E.Event | Help:
    """The engine event for a parsed command. ``resolve`` turns a PERSON argument into a member id."""
    args = parsed.args
    match parsed.name:
        case "join":
            anonymous = bool(args) and args[0].lower() in ("anonymous", "anon", "anonymously")
            if args and not anonymous:
                return Help("join takes nothing, or 'anonymous'")
            return E.Join(by, name, anonymous)
        case "consent":
            return E.Consent(by, args[0] if args else "")
        case "leave":
            return E.Leave(by)
        case "pass":
            return E.Pass(by)
        case "done":
            return E.Done(by)
        case "ask":
            return E.AskPiece(by)
        case "status":
            return E.Status(by)
        case "begin":
            return E.Begin(by)
        case "pause":
            return E.Pause(by)
        case "resume":
            return E.Resume(by)
        case "extend":
            match = re.fullmatch(r"(\d+)\s*(m|min|mins|minutes?)?", args[0].lower())  # the engine says the range
            if not match:
                return Help("extend takes a whole number of minutes, like: extend 5")
            return E.Extend(by, int(match.group(1)))
        case "next":
            return E.Next(by)
        case "end":
            return E.End(by)
        case "role":
            return E.AssignRole(by, resolve(args[0]), args[1].lower())
        case "cofacilitator":
            return E.AddFacilitator(by, resolve(args[0]))
        case "stepin":
            if args and [a.lower() for a in args] != ["in"]:
                return Help("step in takes nothing more")
            return E.StepIn(by, name)
    return Help(f"{parsed.name} is answered by the adapter")
