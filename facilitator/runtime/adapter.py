"""The adapter contract: the few methods a chat platform needs to carry circles.

Kept as small as opsdroid's connector: connect (and start listening), send, disconnect.
Adapters turn their platform's input into engine events and call
:meth:`facilitator.runtime.host.Runtime.submit`; the runtime sends back rendered
:class:`~facilitator.voice.Line` s. A line with ``to`` set is private: the adapter must
deliver it only to that person (ephemeral reply, direct message), never to the room.

An adapter that keeps anything about a person outside the database (files it saved for
them, a direct room it holds with them) also implements :class:`Forgets`, so that
``forget me`` reaches it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from facilitator.voice import Line

if TYPE_CHECKING:
    from facilitator.runtime.host import Runtime


class Adapter(Protocol):
    """A chat platform as the runtime sees it."""

    platform: str

    async def connect(self, runtime: Runtime) -> None:
        """Connect and begin passing the platform's events to ``runtime``."""

    async def send(self, room: str, lines: Sequence[Line]) -> None:
        """Deliver ``lines`` for ``room``: public ones to the room, private ones to their person."""

    async def disconnect(self) -> None:
        """Stop listening and close connections."""


@runtime_checkable
class Forgets(Protocol):
    """An adapter that keeps something about people outside the database."""

    async def forget(self, member: str) -> None:
        """Let go of everything kept about ``member`` outside the database (called after ``forget
        me`` is answered, so the answer still reaches them). Must not raise for someone unknown."""
