"""The engine's inputs: a closed set of frozen events, as in h11's ``_events.py``.

Every event that a person causes names who caused it (``by``), as a platform-neutral
member id chosen by the adapter (``"discord:1234"``, ``"matrix:@sam:example.org"``,
``"console:sam"``). Time is never part of an event: it is passed to
:meth:`facilitator.engine.circle.Circle.handle` beside it.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class PhasePrompt:
    """The prompt chosen for one phase when the circle opens (from a bank or inline)."""

    phase: int
    text: str
    prompt_id: str | None = None
    bank: str | None = None


@dataclass(frozen=True, slots=True)
class Open:
    """A facilitator opens the circle: people may now join and consent."""

    by: str
    name: str
    seed: int = 0
    prompts: tuple[PhasePrompt, ...] = ()


@dataclass(frozen=True, slots=True)
class Join:
    """Someone asks to join; they are asked for consent before anything is recorded."""

    by: str
    name: str
    anonymous: bool = False


@dataclass(frozen=True, slots=True)
class Consent:
    """Someone agrees to the consent text whose SHA-256 is ``text_hash``."""

    by: str
    text_hash: str


@dataclass(frozen=True, slots=True)
class Leave:
    """Someone leaves the circle (they may come back)."""

    by: str


@dataclass(frozen=True, slots=True)
class Erase:
    """Someone asked to be forgotten: they leave, and the circle keeps nothing of them (not even their name)."""

    by: str


@dataclass(frozen=True, slots=True)
class Withdraw:
    """Someone withdrew consent to attendance being recorded: if they come back, they are asked again."""

    by: str


@dataclass(frozen=True, slots=True)
class Begin:
    """A facilitator begins the first phase."""

    by: str


@dataclass(frozen=True, slots=True)
class Pause:
    """A facilitator pauses: every timer freezes."""

    by: str


@dataclass(frozen=True, slots=True)
class Resume:
    """A facilitator resumes a paused circle."""

    by: str


@dataclass(frozen=True, slots=True)
class Extend:
    """A facilitator lengthens the current phase (or the current turn) by ``minutes``."""

    by: str
    minutes: int


@dataclass(frozen=True, slots=True)
class Next:
    """A facilitator skips to the next phase."""

    by: str


@dataclass(frozen=True, slots=True)
class End:
    """A facilitator ends the circle now, with its closing words."""

    by: str


@dataclass(frozen=True, slots=True)
class Pass:
    """The holder passes (or, in popcorn, anyone who has not had a turn this round)."""

    by: str


@dataclass(frozen=True, slots=True)
class Done:
    """The holder has finished speaking."""

    by: str


@dataclass(frozen=True, slots=True)
class AskPiece:
    """In a popcorn round, someone asks for the talking piece."""

    by: str


@dataclass(frozen=True, slots=True)
class AssignRole:
    """A facilitator gives a role of the script (the presenter) to a participant."""

    by: str
    member: str
    role: str


@dataclass(frozen=True, slots=True)
class AddFacilitator:
    """A facilitator shares the steering with someone (a co-facilitator, a handover)."""

    by: str
    member: str


@dataclass(frozen=True, slots=True)
class StepIn:
    """Someone the platform trusts to steer in this room (a room moderator, say) steps in to
    facilitate: for when the facilitator has gone and the circle would otherwise be stuck."""

    by: str
    name: str


@dataclass(frozen=True, slots=True)
class Status:
    """Anyone asks where the circle is."""

    by: str


@dataclass(frozen=True, slots=True)
class Tick:
    """Time passes: everything due by ``now`` happens."""


@dataclass(frozen=True, slots=True)
class Recover:
    """The host restarted: catch up on missed deadlines in one step, with one message."""

    downtime: float = field(default=0.0)


Event = (
    Open
    | Join
    | Consent
    | Leave
    | Erase
    | Withdraw
    | Begin
    | Pause
    | Resume
    | Extend
    | Next
    | End
    | Pass
    | Done
    | AskPiece
    | AssignRole
    | AddFacilitator
    | StepIn
    | Status
    | Tick
    | Recover
)

STEERING_EVENTS: tuple[type, ...] = (Begin, Pause, Resume, Extend, Next, End, AssignRole, AddFacilitator)
"""Events only a facilitator may send."""

NEEDS_PERMISSION: tuple[type, ...] = (*STEERING_EVENTS, StepIn)
"""Events the platform must allow the sender (room power levels, Discord roles) before the engine sees them."""
