"""The bot's words: turns engine actions into plain text from prompts/voice.yaml.

Every adapter renders through here, so a circle reads the same on Discord, on Matrix
and in a terminal. The output is plain text plus routing: who it is for (``to``, for
private messages) and whom to mention (``mention``, the piece holder; never one attending
anonymously, who is told privately instead). Adapters turn
``{mention}`` into a platform mention and escape everything else for their platform.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import yaml

from facilitator.engine import actions as A
from facilitator.engine.circle import IDLE_CLOSE_AFTER
from facilitator.paths import prompts_root
from facilitator.script.durations import format_duration

MENTION = "\x00mention\x00"
"""Stands in the text where the adapter puts its mention of ``Line.mention``."""


@dataclass(frozen=True, slots=True)
class Attachment:
    """A file the bot hands someone privately (a coordinator's export, someone's own data)."""

    name: str
    """The file name the person sees (``attendance-2026-11.csv``)."""
    data: bytes
    mime: str
    """Its media type (``text/csv``, ``application/json``...)."""


@dataclass(frozen=True, slots=True)
class Line:
    """One thing the bot says: to the room (``to`` is None) or privately to ``to``."""

    text: str
    to: str | None = None
    mention: str | None = None
    mention_name: str | None = None
    key: str = ""
    """A stable id for this line, set by the runtime: adapters whose platform deduplicates sends
    (Matrix transaction ids) send with it, so a line sent again after a crash appears once."""
    offer: tuple[str, ...] = ()
    """Shortcuts a platform may attach (Discord buttons): ``join``, ``join_anonymous``,
    ``consent:HASH``, ``done``, ``pass``. Each has a typed command too, and the line says it."""
    attachment: Attachment | None = None
    """A file that goes with a private line (never with a line to the room). Lines with a file
    are sent directly, not through the outbox: if sending fails, the person asks again."""

    def plain(self) -> str:
        """The text with the mention written as ``@name`` (for logs and the console)."""
        return self.text.replace(MENTION, f"@{self.mention_name or self.mention or ''}")


class Voice:
    """The templates, loaded once from a YAML file of ``key: template``."""

    def __init__(self, templates: Mapping[str, str]) -> None:
        self.templates = dict(templates)

    @classmethod
    def load(cls, path: Path | None = None) -> Voice:
        """Load prompts/voice.yaml (or ``path``)."""
        return _load_voice(str(path or prompts_root() / "voice.yaml"))

    def say(self, key: str, **params: object) -> str:
        """Fill template ``key`` as a whole line (stray spaces stripped); a missing key shows the key."""
        return self.fragment(key, **params).strip()

    def fragment(self, key: str, **params: object) -> str:
        """Fill template ``key`` keeping its spaces (a part of a line, like " (2m left)")."""
        template = self.templates.get(key)
        if template is None:
            return key
        safe = {k: str(v) for k, v in params.items()}
        return template.format_map(_Missing(safe))

    def render(self, action: A.Action, hints: Mapping[str, str] | None = None) -> list[Line]:
        """The lines for one action. ``hints`` fill platform words (``join_hint``...)."""
        h = {"join_hint": "join", "consent_hint": "say consent", **(hints or {})}
        s = self.say
        match action:
            case A.CircleOpened():
                text = s("circle_opened", title=action.title, summary=action.summary or "", **h)
                offer: tuple[str, ...] = ("join",)
                if action.anonymous_allowed:
                    text += " " + s("circle_opened_anonymous")
                    offer += ("join_anonymous",)
                return [Line(text, offer=offer)]
            case A.AskConsent():
                agreement = action.agreement.strip()
                text = s("ask_consent", version=action.version, text=action.text.strip(), agreement=agreement, **h)
                if action.anonymous:
                    text += "\n" + s("ask_consent_anonymous")
                return [Line(text, to=action.to, offer=(f"consent:{action.text_hash}",))]
            case A.ConsentReceipt():
                key = "consent_receipt_anonymous" if action.anonymous else "consent_receipt"
                return [Line(s(key, version=action.version, short_hash=action.text_hash[:12]), to=action.to)]
            case A.Joined():
                key = "joined_next_round" if action.next_round else "joined"
                return [Line(s(key, present=action.present))]
            case A.JoinCancelled():
                return [Line(s("join_cancelled"), to=action.to)]
            case A.LeftCircle():
                return [Line(s("left", present=action.present))]
            case A.PhaseStarted():
                return [Line(self._phase_text(action))]
            case A.RoundStarted():
                key = "round_started_popcorn" if action.popcorn else "round_started"
                return [Line(s(key, number=action.number, rounds=action.rounds, speakers=action.speakers))]
            case A.GivePiece():
                length = format_duration(action.turn)
                if action.anonymous:  # the room hears no name and no mention; the holder is told privately
                    return [
                        Line(s("give_piece_anonymous", length=length), offer=("done", "pass")),
                        Line(s("give_piece_private", length=length), to=action.member, offer=("done", "pass")),
                    ]
                text = s("give_piece", mention=MENTION, length=length)
                return [Line(text, mention=action.member, mention_name=action.name, offer=("done", "pass"))]
            case A.PieceFree():
                return [Line(s("piece_free", waiting=action.waiting))]
            case A.Nudge():
                remaining = format_duration(action.remaining)
                if action.member is not None and action.anonymous:
                    return [
                        Line(s("nudge.turn_anonymous", remaining=remaining)),
                        Line(s("nudge.turn_private", remaining=remaining), to=action.member),
                    ]
                if action.member is not None:
                    text = s("nudge.turn", mention=MENTION, remaining=remaining)
                    return [Line(text, mention=action.member, mention_name=action.name)]
                key = "nudge.open" if action.kind == "open" else "nudge.other"
                return [Line(s(key, remaining=remaining))]
            case A.TurnEnded():
                return [Line(s(f"turn_ended.{action.outcome}"))]
            case A.RoundSkipped():
                return [Line(s("round_skipped", name=action.name))]
            case A.TimeUp():
                return [Line(s("time_up", name=action.name))]
            case A.SilenceCue():
                return [Line(s("silence_cue", name=action.name))]
            case A.Paused():
                held = self._remaining("paused_remaining", action.remaining)
                return [Line(s("paused", remaining_note=held, idle=format_duration(round(IDLE_CLOSE_AFTER))))]
            case A.Resumed():
                return [Line(s("resumed", remaining_note=self._remaining("resumed_remaining", action.remaining)))]
            case A.Extended():
                note = self._remaining("resumed_remaining", action.remaining)
                return [Line(s("extended", length=format_duration(action.seconds), remaining_note=note))]
            case A.PhaseSkipped():
                return [Line(s("phase_skipped", name=action.name))]
            case A.RoleAssigned():
                text = s("role_assigned", mention=MENTION, role=action.role)
                return [Line(text, mention=action.member, mention_name=action.name)]
            case A.FacilitatorAdded():
                text = s("facilitator_added", mention=MENTION)
                return [Line(text, mention=action.member, mention_name=action.name)]
            case A.SteppedIn():
                text = s("stepped_in", mention=MENTION)
                return [Line(text, mention=action.member, mention_name=action.name)]
            case A.StatusReport():
                return [Line(self._status_text(action), to=action.to)]
            case A.Back():
                return self._back_lines(action)
            case A.CircleEnded():
                if action.idle is not None:  # nobody ended it: it was left open (never begun, or paused)
                    length = format_duration(action.idle_for)
                    return [Line(s(f"circle_ended_idle.{action.idle}", title=action.title, length=length))]
                key = "circle_ended_early" if action.early else "circle_ended"
                return [Line(s(key, title=action.title))]
            case A.Refused():
                detail = action.detail
                key = f"refused.{action.code}"
                # ``about="them"``: the refusal is about someone the sender named, not the sender.
                about = detail.pop("about", "")
                if about and f"{key}.{about}" in self.templates:
                    key = f"{key}.{about}"
                return [Line(s(key, **{**h, **detail}), to=action.to or None)]
        raise TypeError(f"the voice cannot say {type(action).__name__}")

    def _remaining(self, key: str, remaining: int | None) -> str:
        return self.fragment(key, remaining=format_duration(remaining)) if remaining is not None else ""

    def _phase_text(self, action: A.PhaseStarted) -> str:
        s = self.say
        length = format_duration(action.length or 0)
        parts = [s(f"phase.{action.kind}", name=action.name, text=action.text or "", length=length)]
        if action.agreement:
            parts.append(s("phase_agreement", agreement=action.agreement.strip()))
        if action.prompt:
            parts.append(s("phase_prompt", prompt=action.prompt))
        if action.silent_roles:
            parts.append(s("phase_silent_roles", roles=" and ".join(action.silent_roles)))
        return "\n".join(p for p in parts if p)

    def _status_text(self, action: A.StatusReport) -> str:
        s = self.say
        if action.status == "waiting":
            return s("status_waiting", position=action.present, holder=action.holder or "")
        where = ""
        if action.phase:
            where = (
                s(
                    "status_where",
                    phase=action.phase,
                    holder_note=(
                        s("status_holder_you")
                        if action.yours
                        else s("status_holder", holder=action.holder)
                        if action.holder
                        else ""
                    ),
                    remaining_note=self._remaining("status_remaining", action.remaining),
                )
                + " "
            )
        return s("status", status=action.status, where=where, present=action.present)

    def _back_lines(self, action: A.Back) -> list[Line]:
        s = self.say
        anonymous = action.holder is not None and action.holder_anonymous
        where = ""
        if action.phase:
            holder_note = ""
            if action.holder:
                holder_note = s("back_holder_anonymous") if anonymous else s("back_holder", mention=MENTION)
            where = (
                s(
                    "back_where",
                    phase=action.phase,
                    holder_note=holder_note,
                    remaining_note=self._remaining("status_remaining", action.remaining),
                )
                + " "
            )
        text = s("back", downtime=format_duration(action.downtime), where=where)
        if not anonymous:
            return [Line(text, mention=action.holder, mention_name=action.holder_name)]
        assert action.holder is not None
        note = self._remaining("status_remaining", action.remaining)
        private = Line(s("back_private", remaining_note=note), to=action.holder, offer=("done", "pass"))
        return [Line(text), private]


class _Missing(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return ""


@lru_cache(maxsize=8)
def _load_voice(path: str) -> Voice:
    with open(path, encoding="utf-8") as handle:
        data = yaml.safe_load(handle)
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise ValueError(f"{path}: every entry must be 'key: template text'")
    return Voice(data)
