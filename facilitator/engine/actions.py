"""The engine's outputs: what to say (actions) and what to keep (records).

Actions are semantic: "give the piece to Sam until 10:04", never a platform message.
Adapters render them with the bot's words from prompts/voice.yaml (see
:mod:`facilitator.voice`) and add buttons or mentions as their platform allows.
An action with ``to`` set is private to that member (a consent ask, a refusal, a receipt).

Records are the facts storage keeps: attendance, turns spoken or passed, consent, prompt
use and the facilitator audit. Never what anybody said.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

PhaseKind = Literal["announce", "round", "open", "silence", "close"]
TurnOutcome = Literal["done", "passed", "time"]
IdleStatus = Literal["gathering", "paused"]

# ---------------------------------------------------------------- actions (to say)


@dataclass(frozen=True, slots=True)
class CircleOpened:
    """The circle is open for joining."""

    title: str
    summary: str | None
    anonymous_allowed: bool


@dataclass(frozen=True, slots=True)
class AskConsent:
    """Privately show ``to`` the group agreement and the exact consent text, and ask them to agree.

    Two consents, each tied to the hash of its own text: to the group's agreement (how the
    circle treats what is said) and to attendance being recorded (``text``)."""

    to: str
    text: str
    version: str
    text_hash: str
    anonymous: bool
    agreement: str = ""
    agreement_hash: str = ""


@dataclass(frozen=True, slots=True)
class ConsentReceipt:
    """Privately confirm to ``to`` what they agreed to."""

    to: str
    version: str
    text_hash: str
    anonymous: bool


@dataclass(frozen=True, slots=True)
class Joined:
    """Someone joined. Public, and deliberately nameless: the count only."""

    member: str
    present: int
    next_round: bool


@dataclass(frozen=True, slots=True)
class JoinCancelled:
    """``to`` had asked to join but not yet agreed, and left: told privately that nothing was
    recorded and that the circle has let go of them."""

    to: str


@dataclass(frozen=True, slots=True)
class LeftCircle:
    """Someone left. Public and nameless."""

    member: str
    present: int


@dataclass(frozen=True, slots=True)
class PhaseStarted:
    """A phase begins: its words, its prompt, and when it ends (None for a round)."""

    index: int
    count: int
    kind: PhaseKind
    name: str
    text: str | None
    prompt: str | None
    agreement: str | None
    ends_at: float | None
    length: int | None = None
    silent_roles: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class RoundStarted:
    """A round of the talking piece begins (``number`` of ``rounds``)."""

    number: int
    rounds: int
    speakers: int
    popcorn: bool


@dataclass(frozen=True, slots=True)
class GivePiece:
    """``member`` holds the talking piece until ``ends_at``.

    ``anonymous``: the holder attends anonymously, so the room is told the piece is with someone
    attending anonymously (no name, no mention) and the holder is told privately."""

    member: str
    name: str
    ends_at: float
    turn: int
    remaining_after: int
    anonymous: bool = False


@dataclass(frozen=True, slots=True)
class PieceFree:
    """Popcorn: the piece is in the middle; whoever wants it may ask."""

    ends_at: float
    waiting: int


@dataclass(frozen=True, slots=True)
class Nudge:
    """A gentle reminder: ``remaining`` seconds left (of the turn when ``member`` is set).

    ``anonymous``: the holder attends anonymously (the room line names and mentions no one)."""

    member: str | None
    name: str | None
    remaining: int
    kind: PhaseKind
    anonymous: bool = False


@dataclass(frozen=True, slots=True)
class TurnEnded:
    """A turn ended: said done, passed (never questioned), or its time ran out."""

    member: str
    name: str
    outcome: TurnOutcome


@dataclass(frozen=True, slots=True)
class RoundSkipped:
    """Nobody to hold the piece in this round, so it is skipped."""

    name: str


@dataclass(frozen=True, slots=True)
class TimeUp:
    """An open phase's time is up."""

    name: str


@dataclass(frozen=True, slots=True)
class SilenceCue:
    """The soft cue at the end of a silence."""

    name: str


@dataclass(frozen=True, slots=True)
class Paused:
    """Every timer is frozen."""

    remaining: int | None


@dataclass(frozen=True, slots=True)
class Resumed:
    """Timers run again."""

    remaining: int | None


@dataclass(frozen=True, slots=True)
class Extended:
    """The current phase (or turn) is longer by ``seconds``."""

    seconds: int
    remaining: int | None


@dataclass(frozen=True, slots=True)
class PhaseSkipped:
    """A facilitator moved on from a phase."""

    name: str


@dataclass(frozen=True, slots=True)
class RoleAssigned:
    """``member`` holds ``role`` (the presenter, say)."""

    member: str
    name: str
    role: str


@dataclass(frozen=True, slots=True)
class FacilitatorAdded:
    """``member`` now shares the steering."""

    member: str
    name: str


@dataclass(frozen=True, slots=True)
class SteppedIn:
    """``member`` (trusted by the platform to steer here) has stepped in to facilitate."""

    member: str
    name: str


@dataclass(frozen=True, slots=True)
class StatusReport:
    """Where the circle is, for ``to``."""

    to: str
    status: str
    phase: str | None
    kind: PhaseKind | None
    holder: str | None
    remaining: int | None
    present: int
    yours: bool = False
    """The piece is with ``to`` (someone attending anonymously may not have been told in the room)."""


@dataclass(frozen=True, slots=True)
class Back:
    """After a restart: one "we are back" message saying where the circle is.

    ``holder_anonymous``: the holder attends anonymously (not named or mentioned in the room;
    told privately that the piece is still with them)."""

    status: str
    phase: str | None
    kind: PhaseKind | None
    holder: str | None
    holder_name: str | None
    remaining: int | None
    downtime: int
    holder_anonymous: bool = False


@dataclass(frozen=True, slots=True)
class CircleEnded:
    """The circle ended; its attendance is final.

    ``idle``: nobody ended it: it was left ``gathering`` (never begun) or ``paused`` for
    ``idle_for`` seconds, and the engine closed it (see ``IDLE_CLOSE_AFTER``)."""

    title: str
    early: bool
    idle: IdleStatus | None = None
    idle_for: int = 0


@dataclass(frozen=True, slots=True)
class Refused:
    """An illegal move, refused with a reason (``code`` keys a template); nothing changed."""

    to: str
    code: str
    params: tuple[tuple[str, str], ...] = ()

    @property
    def detail(self) -> dict[str, str]:
        """The template parameters as a dict."""
        return dict(self.params)


Action = (
    CircleOpened
    | AskConsent
    | ConsentReceipt
    | Joined
    | JoinCancelled
    | LeftCircle
    | PhaseStarted
    | RoundStarted
    | GivePiece
    | PieceFree
    | Nudge
    | TurnEnded
    | RoundSkipped
    | TimeUp
    | SilenceCue
    | Paused
    | Resumed
    | Extended
    | PhaseSkipped
    | RoleAssigned
    | FacilitatorAdded
    | SteppedIn
    | StatusReport
    | Back
    | CircleEnded
    | Refused
)

# ---------------------------------------------------------------- records (to keep)


@dataclass(frozen=True, slots=True)
class ConsentGiven:
    """Append to the consent ledger: ``member`` agreed to the text with ``text_hash``.

    ``scope`` says which text: ``agreement`` (the group agreement) or ``attendance`` (that
    their attendance is recorded; for an anonymous attendee, that they are counted)."""

    member: str
    name: str
    anonymous: bool
    text_hash: str
    version: str
    at: float
    scope: str = "attendance"


@dataclass(frozen=True, slots=True)
class AttendanceStarted:
    """``member`` is in the circle from ``at``."""

    member: str
    name: str
    anonymous: bool
    at: float


@dataclass(frozen=True, slots=True)
class AttendanceEnded:
    """``member`` left (or the circle ended) at ``at``."""

    member: str
    at: float


@dataclass(frozen=True, slots=True)
class TurnRecorded:
    """``member`` spoke or passed (a count; never the words)."""

    member: str
    outcome: TurnOutcome


@dataclass(frozen=True, slots=True)
class PromptUsed:
    """A prompt from a bank was put to the group (for rotation)."""

    bank: str
    prompt_id: str
    at: float


@dataclass(frozen=True, slots=True)
class CircleStarted:
    """The first phase began."""

    at: float


@dataclass(frozen=True, slots=True)
class CircleFinished:
    """The circle ended at ``at``."""

    at: float
    idle: bool = False
    """Closed for being left open (as of ``at``, when it stopped meeting): no attendance of it
    may run past ``at``, not even one that ended earlier by a leave."""


@dataclass(frozen=True, slots=True)
class Audit:
    """A facilitator's accepted action, for the audit trail."""

    actor: str
    action: str
    detail: str
    at: float


Record = (
    ConsentGiven
    | AttendanceStarted
    | AttendanceEnded
    | TurnRecorded
    | PromptUsed
    | CircleStarted
    | CircleFinished
    | Audit
)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What handling one event produced: whether it was accepted, what to say, what to keep."""

    accepted: bool
    actions: tuple[Action, ...] = ()
    records: tuple[Record, ...] = field(default=())
