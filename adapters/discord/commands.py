"""``/circle``: every engine command as a slash subcommand, with described options.

Each subcommand only turns its options into the same command words every platform uses
(``facilitator/commands.py``) and hands them to the adapter: who may do what is decided
there, on every command (Discord's ``default_permissions`` is only a hint admins can
override, and it does not apply to subcommands).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

import discord
from discord import app_commands

from facilitator.engine.circle import MAX_EXTEND_MINUTES

if TYPE_CHECKING:
    from adapters.discord.adapter import DiscordAdapter


class HasAdapter(Protocol):
    adapter: DiscordAdapter


def _adapter(interaction: discord.Interaction[Any]) -> DiscordAdapter:
    client: HasAdapter = interaction.client
    return client.adapter


async def _run(interaction: discord.Interaction[Any], text: str) -> None:
    await _adapter(interaction).command(interaction, text)


def _person(member: discord.Member | discord.User) -> str:
    return f"discord:{member.id}"


EARLIEST = "1970-01-01"
"""The first day when only ``until`` is given: the typed command takes its dates in order
(``FROM [TO]``), and no circle is older than this."""


def export_text(level: str | None, fmt: str | None, since: str | None, until: str | None, group: str | None) -> str:
    """``/circle export``'s options as the typed command: ``export LEVEL FORMAT SINCE UNTIL group NAME``."""
    first = "".join((since or "").split())  # a date is one word
    last = "".join((until or "").split())
    words = ["export", level or "", fmt or "", first or (EARLIEST if last else ""), last]
    name = " ".join((group or "").split())
    if name:
        words += ["group", name]
    return " ".join(w for w in words if w)


class CircleCommands(app_commands.Group):
    """The ``/circle`` command and its subcommands."""

    def __init__(self) -> None:
        super().__init__(
            name="circle",
            description="Reflective circles: join, take turns, and keep time with care",
            # Offered in direct messages too, where the bot answers politely what it can do there.
            allowed_contexts=app_commands.AppCommandContext(guild=True, dm_channel=True),
        )

    @app_commands.command(description="Open a circle in this channel from a script (facilitators)")
    @app_commands.describe(script="The script to run; start typing to see them")
    async def start(self, interaction: discord.Interaction[Any], script: str) -> None:
        await _run(interaction, f"start {script}")

    @start.autocomplete("script")
    async def _scripts_for(self, interaction: discord.Interaction[Any], current: str) -> list[app_commands.Choice[str]]:
        names = _adapter(interaction).script_names()
        wanted = current.casefold()
        return [app_commands.Choice(name=n, value=n) for n in names if wanted in n.casefold()][:25]

    @app_commands.command(description="List the scripts on offer")
    async def scripts(self, interaction: discord.Interaction[Any]) -> None:
        await _run(interaction, "scripts")

    @app_commands.command(description="Ask to join the circle; you see exactly what is recorded first")
    @app_commands.describe(anonymous="Be counted, never named (where the script allows it)")
    async def join(self, interaction: discord.Interaction[Any], anonymous: bool = False) -> None:
        await _run(interaction, "join anonymous" if anonymous else "join")

    @app_commands.command(description="Agree to the consent text you were shown; only then is attendance recorded")
    async def consent(self, interaction: discord.Interaction[Any]) -> None:
        await _run(interaction, "consent")

    @app_commands.command(description="Step out of the circle (you may come back)")
    async def leave(self, interaction: discord.Interaction[Any]) -> None:
        await _run(interaction, "leave")

    @app_commands.command(name="pass", description="Pass the talking piece on; always welcome, never questioned")
    async def pass_(self, interaction: discord.Interaction[Any]) -> None:
        await _run(interaction, "pass")

    @app_commands.command(description="Finish your turn with the talking piece")
    async def done(self, interaction: discord.Interaction[Any]) -> None:
        await _run(interaction, "done")

    @app_commands.command(description="In a popcorn round, ask for the talking piece")
    async def ask(self, interaction: discord.Interaction[Any]) -> None:
        await _run(interaction, "ask")

    @app_commands.command(description="Where the circle is, privately")
    async def status(self, interaction: discord.Interaction[Any]) -> None:
        await _run(interaction, "status")

    @app_commands.command(description="Begin the first phase (facilitators)")
    async def begin(self, interaction: discord.Interaction[Any]) -> None:
        await _run(interaction, "begin")

    @app_commands.command(description="Pause and hold the time (facilitators)")
    async def pause(self, interaction: discord.Interaction[Any]) -> None:
        await _run(interaction, "pause")

    @app_commands.command(description="Carry on after a pause (facilitators)")
    async def resume(self, interaction: discord.Interaction[Any]) -> None:
        await _run(interaction, "resume")

    @app_commands.command(description="Give the current phase (or turn) more minutes (facilitators)")
    @app_commands.describe(minutes="How many minutes more")
    async def extend(
        self, interaction: discord.Interaction[Any], minutes: app_commands.Range[int, 1, MAX_EXTEND_MINUTES]
    ) -> None:
        await _run(interaction, f"extend {minutes}")

    @app_commands.command(name="next", description="Move on to the next phase (facilitators)")
    async def next_(self, interaction: discord.Interaction[Any]) -> None:
        await _run(interaction, "next")

    @app_commands.command(description="Close the circle now (facilitators)")
    async def end(self, interaction: discord.Interaction[Any]) -> None:
        await _run(interaction, "end")

    @app_commands.command(description="Give someone a role of the script, like the presenter (facilitators)")
    @app_commands.describe(person="Who takes the role", role="The role, as the script names it")
    async def role(self, interaction: discord.Interaction[Any], person: discord.User, role: str) -> None:
        await _run(interaction, f"role {_person(person)} {role}")

    @app_commands.command(description="Share the facilitation with someone in the circle (facilitators)")
    @app_commands.describe(person="Who shares the steering")
    async def cofacilitator(self, interaction: discord.Interaction[Any], person: discord.User) -> None:
        await _run(interaction, f"cofacilitator {_person(person)}")

    @app_commands.command(name="step-in", description="The facilitator has gone: take over the steering (moderators)")
    async def step_in(self, interaction: discord.Interaction[Any]) -> None:
        await _run(interaction, "step in")

    @app_commands.command(description="Everything kept about you, as a file only you see")
    async def mydata(self, interaction: discord.Interaction[Any]) -> None:
        await _run(interaction, "mydata")

    @app_commands.command(description="Withdraw consent: your past attendance is no longer named in exports")
    async def withdraw(self, interaction: discord.Interaction[Any]) -> None:
        await _run(interaction, "withdraw")

    @app_commands.command(
        name="forget-me",
        description="Erase your name and Discord id from every record here, for good (cannot be undone)",
    )
    async def forget_me(self, interaction: discord.Interaction[Any]) -> None:
        await _run(interaction, "forget me")

    @app_commands.command(description="Attendance as a file only you see (coordinators of a group or region)")
    @app_commands.rename(fmt="format")
    @app_commands.describe(
        level="One row per attendance (the default), per circle, or per person",
        fmt="The file's format (CSV by default)",
        since="First day included, YYYY-MM-DD",
        until="Last day included, YYYY-MM-DD",
        group="Only this group you coordinate, by its name (all of yours otherwise)",
    )
    @app_commands.choices(
        level=[app_commands.Choice(name=n, value=n) for n in ("attendance", "circle", "person")],
        fmt=[app_commands.Choice(name=n, value=n) for n in ("csv", "xlsx", "json")],
    )
    async def export(
        self,
        interaction: discord.Interaction[Any],
        level: str | None = None,
        fmt: str | None = None,
        since: str | None = None,
        until: str | None = None,
        group: str | None = None,
    ) -> None:
        await _run(interaction, export_text(level, fmt, since, until, group))

    @export.autocomplete("group")
    async def _groups_for(self, interaction: discord.Interaction[Any], current: str) -> list[app_commands.Choice[str]]:
        names = _adapter(interaction).coordinated_groups(interaction.user.id)
        wanted = current.casefold()
        return [app_commands.Choice(name=n[:100], value=n[:100]) for n in names if wanted in n.casefold()][:25]

    @app_commands.command(description="What you can do here")
    async def help(self, interaction: discord.Interaction[Any]) -> None:
        await _run(interaction, "help")
