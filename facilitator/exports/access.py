"""Who may export what: coordinators by group or by region, from the serve configuration.

A coordinator named under a group may export that group; one named under a region may
export every group whose ``region`` is that region. Nobody else may export anything through
the configuration or in chat. (Whoever can read the database file itself has everything: the
CLI without ``--config`` is the database administrator's tool, see docs/privacy.md.)
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.engine import Connection

from facilitator.config import GroupConfig, ServeConfig
from facilitator.storage.tables import groups_table as groups


class NotAllowed(Exception):
    """A coordinator asked for something outside what they coordinate; the message says what they may ask for."""


@dataclass(frozen=True, slots=True)
class Coordination:
    """What one person coordinates."""

    who: str
    groups: tuple[GroupConfig, ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(g.name for g in self.groups)


def coordination(config: ServeConfig, who: str) -> Coordination:
    """The groups ``who`` coordinates (directly or through their regions), in the config's order."""
    regions = {r.name for r in config.regions if who in r.coordinators}
    mine = tuple(g for g in config.groups if who in g.coordinators or (g.region is not None and g.region in regions))
    return Coordination(who, mine)


def has_coordinators(config: ServeConfig) -> bool:
    """Whether the configuration names any coordinator at all."""
    return any(g.coordinators for g in config.groups) or bool(config.regions)


def platform_rooms(group: GroupConfig) -> list[tuple[str, str]]:
    """A configured group's rooms as the database keys them: (platform, room)."""
    return [("matrix", room) for room in group.matrix_rooms] + [("discord", str(c)) for c in group.discord_channels]


def allowed_group_ids(
    conn: Connection, mine: Coordination, asked_groups: tuple[str, ...] = (), asked_regions: tuple[str, ...] = ()
) -> frozenset[int]:
    """The stored groups ``mine`` may export, or NotAllowed naming what was asked for beyond them."""
    if not mine.groups:
        raise NotAllowed(
            f"{mine.who} is not a coordinator of any group: ask whoever runs the bot to add you "
            "under a group's or a region's 'coordinators'"
        )
    outside = [name for name in asked_groups if name not in mine.names]
    regions = {g.region for g in mine.groups if g.region}
    outside += [f"region {name}" for name in asked_regions if name not in regions]
    if outside:
        raise NotAllowed(
            f"you may export {', '.join(mine.names)}; not {', '.join(outside)} "
            "(ask that group's coordinator, or whoever runs the bot)"
        )
    rooms = [pair for group in mine.groups for pair in platform_rooms(group)]
    ids: set[int] = set()
    for platform, room in rooms:
        row = conn.execute(select(groups.c.id).where(groups.c.platform == platform, groups.c.room == room)).first()
        if row is not None:
            ids.add(int(row[0]))
    return frozenset(ids)
