"""Typed models of a session script: what a circle is made of, validated at load.

A script is a sequence of timed phases (announce, round, open, silence, close), the exact
consent text participants agree to, and the group agreement. The models are strict: an
unknown key is an error (the loader adds "did you mean"), durations need a unit, and the
cross-field rules a facilitator would expect are checked here (a script ends with exactly
one close; a phase may only name roles the script declares; no duration, and no phase as
planned, is longer than a day, and no whole script longer than a week).
"""

from __future__ import annotations

import hashlib
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema, model_validator

from facilitator.script.durations import (
    DURATION_PATTERN,
    MAX_SCRIPT_SECONDS,
    MAX_SCRIPT_TEXT,
    MAX_SECONDS,
    MAX_TEXT,
    format_duration,
    parse_duration,
)

Duration = Annotated[
    int,
    BeforeValidator(parse_duration),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": DURATION_PATTERN,
            "description": 'A length of time with a unit: "90s", "5m", "1h30m"; at most 24h.',
            "examples": ["90s", "5m", "1h30m"],
        }
    ),
]
"""Seconds, written in scripts as ``"90s"``, ``"5m"`` or ``"1h30m"``."""

Name = Annotated[str, Field(min_length=1, max_length=80)]
Text = Annotated[str, Field(min_length=1, max_length=4000)]
RoleName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]{0,31}$")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PromptRef(_Strict):
    """A prompt drawn from a bank in prompts/banks; ``id`` pins one prompt of the bank."""

    bank: Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]*$")]
    id: str | None = None


Prompt = Text | PromptRef


class Consent(_Strict):
    """The exact words a participant agrees to before anything about them is recorded."""

    version: Annotated[str, Field(min_length=1, max_length=40)]
    text: Text

    @property
    def text_hash(self) -> str:
        """SHA-256 of the exact text shown (without the blank lines YAML may leave around it, as
        the bot shows it), stored with every consent record: an auditor can hash what was shown."""
        return hashlib.sha256(self.text.strip().encode("utf-8")).hexdigest()


class Role(_Strict):
    """A role some phases give to one participant (the presenter in a case reflection)."""

    name: RoleName
    description: Text


class AnnouncePhase(_Strict):
    """The bot says something (welcome, the agreement, a thanks), then waits ``duration``."""

    kind: Literal["announce"]
    name: Name = "Announcement"
    text: Text
    duration: Duration = 0
    show_agreement: bool = False


class RoundPhase(_Strict):
    """The talking piece goes round: one holder at a time, each with ``turn`` to speak."""

    kind: Literal["round"]
    name: Name = "Round"
    text: Text | None = None
    prompt: Prompt | None = None
    turn: Duration
    order: Literal["join", "random", "popcorn"] = "join"
    rounds: Annotated[int, Field(ge=1, le=10)] = 1
    remind_before: list[Duration] = Field(default_factory=list)
    speakers: list[RoleName] | None = None
    silent: list[RoleName] = Field(default_factory=list)

    @model_validator(mode="after")
    def _turn_positive(self) -> RoundPhase:
        if self.turn <= 0:
            raise ValueError("turn must be longer than 0s")
        return self


class OpenPhase(_Strict):
    """A timed open reflection on a prompt, with gentle reminders before the end."""

    kind: Literal["open"]
    name: Name = "Open reflection"
    text: Text | None = None
    prompt: Prompt | None = None
    duration: Duration
    remind_before: list[Duration] = Field(default_factory=list)
    silent: list[RoleName] = Field(default_factory=list)


class SilencePhase(_Strict):
    """A timed pause with a soft cue at the end. No one is called on."""

    kind: Literal["silence"]
    name: Name = "Silence"
    text: Text | None = None
    duration: Duration


class ClosePhase(_Strict):
    """Closing words; the circle ends and its attendance is final."""

    kind: Literal["close"]
    name: Name = "Close"
    text: Text
    duration: Duration = 0


Phase = Annotated[
    AnnouncePhase | RoundPhase | OpenPhase | SilencePhase | ClosePhase,
    Field(discriminator="kind"),
]


class Script(_Strict):
    """A whole session script, as in sessions/*.yaml."""

    title: Name
    summary: Text | None = None
    format: Annotated[str, Field(max_length=40)] | None = None
    expected_participants: Annotated[int, Field(ge=1, le=100)] = 8
    allow_anonymous: bool = False
    agreement: Text
    consent: Consent
    roles: list[Role] = Field(default_factory=list)
    phases: Annotated[list[Phase], Field(min_length=1, max_length=100)]

    @model_validator(mode="after")
    def _shape(self) -> Script:
        kinds = [p.kind for p in self.phases]
        if kinds[-1] != "close":
            raise ValueError("the last phase must be a close phase, so every circle ends with closing words")
        if kinds.count("close") > 1:
            raise ValueError("a script has exactly one close phase, at the end")
        declared = {r.name for r in self.roles}
        for index, phase in enumerate(self.phases):
            used: list[str] = []
            if isinstance(phase, RoundPhase):
                used = list(phase.speakers or []) + phase.silent
            elif isinstance(phase, OpenPhase):
                used = phase.silent
            for role in used:
                if role not in declared:
                    raise ValueError(
                        f"phase {index + 1} ({phase.name}) names role {role!r}, "
                        f"which the script does not declare under 'roles'"
                    )
            remind = getattr(phase, "remind_before", [])
            length = phase.turn if isinstance(phase, RoundPhase) else getattr(phase, "duration", 0)
            for before in remind:
                if before <= 0 or before >= length:
                    raise ValueError(
                        f"phase {index + 1} ({phase.name}): a reminder {before}s before the end "
                        f"must fall inside its {length}s"
                    )
        self._within_limits()
        return self

    def _within_limits(self) -> None:
        """Each phase as planned (``check``'s timeline) is at most a day; the whole script a week."""
        total, estimated = 0, False
        for index, phase in enumerate(self.phases):
            length = planned_length(phase, self.expected_participants)
            total += length
            where = f"phase {index + 1} ({phase.name})"
            if isinstance(phase, RoundPhase):
                estimated = estimated or not phase.speakers
                if length > MAX_SECONDS:
                    speakers = len(phase.speakers) if phase.speakers else self.expected_participants
                    plan = f"{speakers} {'person' if speakers == 1 else 'people'} × {format_duration(phase.turn)}"
                    plan += f" × {phase.rounds} rounds" if phase.rounds > 1 else ""
                    plan += "" if phase.speakers else ", from expected_participants"
                    raise ValueError(
                        f"{where} is planned at about {format_duration(length)} ({plan}); a phase may last at "
                        f"most {MAX_TEXT}, so shorten its turn or have fewer rounds"
                    )
            if total > MAX_SCRIPT_SECONDS:
                counted = f" (a round counted as {self.expected_participants} people)" if estimated else ""
                raise ValueError(
                    f"{where} brings the circle to about {format_duration(total)}{counted}; a whole circle "
                    f"may last at most {MAX_SCRIPT_TEXT}, so shorten its phases or turns"
                )

    @property
    def agreement_hash(self) -> str:
        """SHA-256 of the group agreement's exact text as shown (stripped, as the bot shows it),
        kept with each agreement consent."""
        return hashlib.sha256(self.agreement.strip().encode("utf-8")).hexdigest()

    @property
    def required_roles(self) -> list[str]:
        """Roles some phase needs filled before the circle can begin."""
        needed: list[str] = []
        for phase in self.phases:
            if isinstance(phase, RoundPhase) and phase.speakers:
                needed += [r for r in phase.speakers if r not in needed]
        return needed


PhaseModel = AnnouncePhase | RoundPhase | OpenPhase | SilencePhase | ClosePhase


def planned_length(phase: PhaseModel, expected_participants: int) -> int:
    """Seconds a phase is planned to take; a round is estimated as turn × speakers × rounds, the
    speakers being its ``speakers`` roles, or else the script's ``expected_participants``."""
    if isinstance(phase, RoundPhase):
        speakers = len(phase.speakers) if phase.speakers else expected_participants
        return phase.turn * speakers * phase.rounds
    return phase.duration
