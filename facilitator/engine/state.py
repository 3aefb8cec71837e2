"""The circle's state as plain data, so it can be stored after every event and restored.

Nothing here decides anything: :mod:`facilitator.engine.circle` owns every rule. The
state is a few small dataclasses that round-trip through JSON-ready dicts
(:meth:`CircleState.to_dict` / :meth:`CircleState.from_dict`). Deadlines are absolute
times on the host's clock (seconds since the epoch), so a restarted host can re-arm them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal

from facilitator.engine.events import PhasePrompt

MemberState = Literal["pending", "present", "left"]


class CircleStatus(StrEnum):
    """Where a circle is in its life."""

    NEW = "new"
    GATHERING = "gathering"
    RUNNING = "running"
    PAUSED = "paused"
    ENDED = "ended"


@dataclass(slots=True)
class Participant:
    """Someone who asked to join: pending consent, present, or left."""

    id: str
    name: str
    anonymous: bool
    state: MemberState = "pending"
    consented: bool = False
    order: int = 0
    roles: list[str] = field(default_factory=list)


@dataclass(slots=True)
class RoundState:
    """One round of the talking piece."""

    number: int
    queue: list[str]
    holder: str | None = None
    waiting: list[str] = field(default_factory=list)
    free_nudged: bool = False
    members: list[str] = field(default_factory=list)
    """Everyone in this round when it began (newcomers wait for the next one)."""


@dataclass(slots=True)
class CircleState:
    """Everything the engine needs to carry on after a restart."""

    status: CircleStatus = CircleStatus.NEW
    facilitators: list[str] = field(default_factory=list)
    participants: dict[str, Participant] = field(default_factory=dict)
    joins: int = 0
    seed: int = 0
    prompts: dict[int, PhasePrompt] = field(default_factory=dict)
    phase: int = -1
    ends_at: float | None = None
    reminders: list[float] = field(default_factory=list)
    paused_at: float | None = None
    round: RoundState | None = None
    started_at: float | None = None
    opened_at: float | None = None
    """When the circle opened: a circle left gathering closes :data:`~facilitator.engine.circle.IDLE_CLOSE_AFTER`
    later. None in snapshots from before it was kept (the engine sets it on ``Recover``)."""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready copy (written out field by field: it runs for every accepted event)."""
        rnd = self.round
        return {
            "status": self.status.value,
            "facilitators": list(self.facilitators),
            "participants": {
                k: {
                    "id": p.id,
                    "name": p.name,
                    "anonymous": p.anonymous,
                    "state": p.state,
                    "consented": p.consented,
                    "order": p.order,
                    "roles": list(p.roles),
                }
                for k, p in self.participants.items()
            },
            "joins": self.joins,
            "seed": self.seed,
            "prompts": {
                str(k): {"phase": v.phase, "text": v.text, "prompt_id": v.prompt_id, "bank": v.bank}
                for k, v in self.prompts.items()
            },
            "phase": self.phase,
            "ends_at": self.ends_at,
            "reminders": list(self.reminders),
            "paused_at": self.paused_at,
            "round": None
            if rnd is None
            else {
                "number": rnd.number,
                "queue": list(rnd.queue),
                "holder": rnd.holder,
                "waiting": list(rnd.waiting),
                "free_nudged": rnd.free_nudged,
                "members": list(rnd.members),
            },
            "started_at": self.started_at,
            "opened_at": self.opened_at,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CircleState:
        """Rebuild the state from :meth:`to_dict`'s output."""
        round_data = data.get("round")
        return cls(
            status=CircleStatus(data["status"]),
            facilitators=list(data["facilitators"]),
            participants={k: Participant(**v) for k, v in data["participants"].items()},
            joins=int(data["joins"]),
            seed=int(data["seed"]),
            prompts={int(k): PhasePrompt(**v) for k, v in data["prompts"].items()},
            phase=int(data["phase"]),
            ends_at=data["ends_at"],
            reminders=list(data["reminders"]),
            paused_at=data["paused_at"],
            round=RoundState(**round_data) if round_data else None,
            started_at=data.get("started_at"),
            opened_at=data.get("opened_at"),
        )

    def present(self) -> list[Participant]:
        """Participants in the circle now, in the order they joined."""
        return sorted((p for p in self.participants.values() if p.state == "present"), key=lambda p: p.order)
