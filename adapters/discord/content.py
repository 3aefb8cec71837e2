"""What the bot's lines look like on Discord: plain, escaped text within Discord's limits.

Nothing a person typed can ping anyone: the client sends with ``AllowedMentions.none()``,
and a line that gives the piece allows exactly one user mention, the holder's. Markdown in
names and arguments is escaped so it shows as typed.
"""

from __future__ import annotations

import hashlib

import discord

from facilitator.front import clean_name as shared_clean_name
from facilitator.voice import MENTION, Line

PLATFORM = "discord"
MAX_MESSAGE = 2000
"""Discord refuses message content over 2,000 characters."""
MAX_NAME = 80


def member_id(user_id: int) -> str:
    """The engine's id for a Discord user."""
    return f"{PLATFORM}:{user_id}"


def user_of(member: str) -> int | None:
    """The Discord user id in an engine member id (None if it is not one)."""
    raw = member.removeprefix(f"{PLATFORM}:")
    return int(raw) if raw.isdigit() else None


def clean_name(name: str) -> str:
    """A display name as the engine keeps it, by the rule every platform shares
    (:func:`facilitator.front.clean_name`: one line, nothing invisible, no control character),
    at most 80 characters."""
    return shared_clean_name(name, MAX_NAME)


def text_of(line: Line) -> str:
    """The line's text with markdown escaped and the holder's mention as a real ``<@id>``."""
    parts = [discord.utils.escape_markdown(part) for part in line.text.split(MENTION)]
    user = user_of(line.mention) if line.mention else None
    mention = f"<@{user}>" if user is not None else discord.utils.escape_markdown(f"@{line.mention_name or ''}")
    return mention.join(parts)


def allowed_mentions(line: Line) -> discord.AllowedMentions:
    """Only the holder named by the line may be pinged; never everyone, here or a role."""
    user = user_of(line.mention) if line.mention else None
    if user is None:
        return discord.AllowedMentions.none()
    return discord.AllowedMentions(everyone=False, roles=False, replied_user=False, users=[discord.Object(id=user)])


def split(text: str, limit: int = MAX_MESSAGE) -> list[str]:
    """``text`` in pieces of at most ``limit`` characters, cut at a line break in the second half
    of a piece, else at a space (a cut never falls inside a word or a mention when it can be helped)."""
    pieces: list[str] = []
    rest = text
    while len(rest) > limit:
        cut = rest.rfind("\n", limit // 2, limit + 1)
        if cut <= 0:
            cut = rest.rfind(" ", 0, limit + 1)
        if cut <= 0:
            cut = limit
        pieces.append(rest[:cut].rstrip())
        rest = rest[cut:].lstrip()
    if rest or not pieces:
        pieces.append(rest)
    return pieces


def nonce(key: str, part: int = 0) -> str:
    """Discord's nonce for a line (at most 25 characters): the same line sent again after a
    crash or a 5xx is recognised, and Discord returns the first message instead of a second."""
    return hashlib.sha256(f"{key}/{part}".encode()).hexdigest()[:25]
