"""The circle state machine: every rule that changes a circle lives in this module.

Theory of operation
-------------------

A :class:`Circle` is a script plus a :class:`~facilitator.engine.state.CircleState`.
It does no I/O and never reads a clock: the host calls ``handle(event, now)`` and gets
an :class:`~facilitator.engine.actions.Outcome` back: whether the event was accepted,
the actions to carry out (things to say, privately or to the room) and the records to
keep. An illegal move is refused with a reason and changes nothing.

The circle's life is ``new -> gathering -> running <-> paused -> ended``. Which event
is legal in which status is the table :data:`TRANSITIONS` (printable as a diagram with
:func:`diagram`); refusals for the illegal pairs are in :data:`REFUSALS`. Steering events
(begin, pause, resume, extend, next, end, roles, co-facilitators) need a facilitator.

A circle nobody looks after does not stay open for ever: one left ``gathering`` (never begun)
for :data:`IDLE_CLOSE_AFTER` since it opened, or ``paused`` for as long since the pause, is
closed by the engine at that deadline, as ``End`` would close it but without the closing
words: the room is told it was left open and can be started again.

Inside ``running``, the current phase has one deadline (``ends_at``: the end of the phase,
or of the current turn in a round) and the reminders before it. ``Tick`` processes every
deadline that is due, each at its own time, so a late tick never shortens the next phase.
``Recover`` does the same after a restart but keeps only the records and says one
"we are back" message instead of a burst of stale announcements.

Rules a facilitator would expect: only facilitators steer; only the holder says done;
a pass is always accepted on your own turn (and, in popcorn, from anyone who has not had
a turn this round); someone who leaves mid-round is skipped; someone who joins mid-round
speaks from the next round; an empty round is skipped; pause freezes every timer; extend
lengthens the current phase (in a round, the current turn).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from facilitator.engine import actions as A
from facilitator.engine import events as E
from facilitator.engine.state import CircleState, CircleStatus, Participant, RoundState
from facilitator.script.models import (
    AnnouncePhase,
    ClosePhase,
    OpenPhase,
    PhaseModel,
    RoundPhase,
    Script,
    SilencePhase,
)

S = CircleStatus
_LIVE = (S.GATHERING, S.RUNNING, S.PAUSED)
_ALL = (S.NEW, *_LIVE, S.ENDED)

MAX_EXTEND_MINUTES = 120

IDLE_CLOSE_AFTER = 12 * 3600.0
"""Seconds a circle may stay gathering (from its opening) or paused (from the pause) before the
engine closes it: it would otherwise hold its room, and the names of those who joined, for ever."""

TRANSITIONS: dict[tuple[CircleStatus, type], str] = {
    (S.NEW, E.Open): "_open",
    **{(s, E.Join): "_join" for s in _LIVE},
    **{(s, E.Consent): "_consent" for s in _LIVE},
    **{(s, E.Leave): "_leave" for s in _LIVE},
    **{(s, E.Erase): "_erase" for s in _LIVE},
    **{(s, E.Withdraw): "_withdraw" for s in _LIVE},
    **{(s, E.AssignRole): "_assign_role" for s in _LIVE},
    **{(s, E.AddFacilitator): "_add_facilitator" for s in _LIVE},
    **{(s, E.StepIn): "_step_in" for s in _LIVE},
    (S.GATHERING, E.Begin): "_begin",
    (S.RUNNING, E.Pause): "_pause",
    (S.PAUSED, E.Resume): "_resume",
    (S.RUNNING, E.Extend): "_extend",
    (S.PAUSED, E.Extend): "_extend",
    (S.RUNNING, E.Next): "_next",
    **{(s, E.End): "_end" for s in _LIVE},
    (S.RUNNING, E.Pass): "_pass",
    (S.PAUSED, E.Pass): "_pass",
    (S.RUNNING, E.Done): "_done",
    (S.PAUSED, E.Done): "_done",
    (S.RUNNING, E.AskPiece): "_ask_piece",
    **{(s, E.Status): "_status" for s in _ALL},
    **{(s, E.Tick): "_tick" for s in _ALL},
    **{(s, E.Recover): "_recover" for s in _ALL},
}
"""(status, event type) -> handler. A pair not in the table is refused."""

REFUSALS: dict[tuple[CircleStatus, type], str] = {
    (S.GATHERING, E.Pause): "not_begun",
    (S.GATHERING, E.Resume): "not_begun",
    (S.GATHERING, E.Extend): "not_begun",
    (S.GATHERING, E.Next): "not_begun",
    (S.GATHERING, E.Pass): "not_begun",
    (S.GATHERING, E.Done): "not_begun",
    (S.GATHERING, E.AskPiece): "not_begun",
    (S.RUNNING, E.Begin): "already_begun",
    (S.PAUSED, E.Begin): "already_begun",
    (S.RUNNING, E.Resume): "not_paused",
    (S.PAUSED, E.Pause): "already_paused",
    (S.PAUSED, E.Next): "paused",
    (S.PAUSED, E.AskPiece): "paused",
    **{(s, E.Open): "already_open" for s in _LIVE},
}
"""Reasons for the illegal pairs a person is likely to try; others get ``not_open`` or ``ended``."""


def diagram() -> str:
    """The transition table as a Mermaid state diagram (docs/engine.md shows it)."""
    moves = {
        "_open": S.GATHERING,
        "_begin": S.RUNNING,
        "_pause": S.PAUSED,
        "_resume": S.RUNNING,
        "_end": S.ENDED,
    }
    edges: dict[tuple[str, str], list[str]] = {}
    for (status, event), handler in TRANSITIONS.items():
        target = moves.get(handler, status)
        edges.setdefault((status.value, target.value), []).append(event.__name__)
    lines = ["stateDiagram-v2", "    [*] --> new"]
    lines += [f"    {src} --> {dst}: {', '.join(names)}" for (src, dst), names in edges.items()]
    lines.append("    running --> ended: Tick (close phase ends)")
    idle = f"Tick (left {IDLE_CLOSE_AFTER / 3600:g} h)"
    lines.append(f"    gathering --> ended: {idle}")
    lines.append(f"    paused --> ended: {idle}")
    lines.append("    ended --> [*]")
    return "\n".join(lines)


class Refusal(Exception):
    """Raised inside a handler before it changes anything; becomes a Refused action."""

    def __init__(self, code: str, **params: str) -> None:
        super().__init__(code)
        self.code = code
        self.params = params


@dataclass
class _Out:
    actions: list[A.Action] = field(default_factory=list)
    records: list[A.Record] = field(default_factory=list)

    def say(self, action: A.Action) -> None:
        self.actions.append(action)

    def keep(self, record: A.Record) -> None:
        self.records.append(record)


class Circle:
    """One circle: its script, its state, and the rules. Pure: no I/O, no clock."""

    def __init__(self, script: Script, state: CircleState | None = None) -> None:
        self.script = script
        self.state = state if state is not None else CircleState()

    # ------------------------------------------------------------------ public API

    @classmethod
    def restore(cls, script: Script, data: dict[str, Any]) -> Circle:
        """A circle from a stored snapshot (see :meth:`snapshot`)."""
        return cls(script, CircleState.from_dict(data))

    def snapshot(self) -> dict[str, Any]:
        """The state as JSON-ready data, stored after every accepted event."""
        return self.state.to_dict()

    @property
    def status(self) -> CircleStatus:
        """Where the circle is in its life."""
        return self.state.status

    @property
    def phase(self) -> PhaseModel | None:
        """The current phase's script entry, if the circle has begun."""
        if 0 <= self.state.phase < len(self.script.phases):
            return self.script.phases[self.state.phase]
        return None

    @property
    def holder(self) -> str | None:
        """Who holds the talking piece now, if anyone."""
        return self.state.round.holder if self.state.round else None

    @property
    def next_deadline(self) -> float | None:
        """When :meth:`handle` next needs a ``Tick``; None if no timer runs.

        Gathering and paused circles have one: the moment they have been left idle for
        :data:`IDLE_CLOSE_AFTER` (from the opening, or from the pause)."""
        st = self.state
        if st.status is S.GATHERING:
            return None if st.opened_at is None else st.opened_at + IDLE_CLOSE_AFTER
        if st.status is S.PAUSED:
            return None if st.paused_at is None else st.paused_at + IDLE_CLOSE_AFTER
        if st.status is not S.RUNNING or st.ends_at is None:
            return None
        if st.reminders and st.reminders[0] < st.ends_at:
            return st.reminders[0]
        return st.ends_at

    def due(self, now: float) -> bool:
        """Whether a deadline has come by ``now``: a host sends ``Tick`` before any other event then.

        An event is judged against the circle as it stands; a pause that arrives just after a turn
        ran out must find the piece already passed on.
        """
        deadline = self.next_deadline
        return deadline is not None and deadline <= now

    def remaining(self, now: float) -> int | None:
        """Seconds left in the current phase (or turn); frozen while paused."""
        st = self.state
        if st.ends_at is None:
            return None
        ref = st.paused_at if st.status is S.PAUSED and st.paused_at is not None else now
        return max(0, round(st.ends_at - ref))

    def handle(self, event: E.Event, now: float) -> A.Outcome:
        """Apply ``event`` at time ``now``; refuse it, changing nothing, if it is illegal."""
        key = (self.state.status, type(event))
        handler_name = TRANSITIONS.get(key)
        by = getattr(event, "by", "")
        if handler_name is None:
            code = REFUSALS.get(key) or ("ended" if self.state.status is S.ENDED else "not_open")
            return self._refused(by, Refusal(code))
        if isinstance(event, E.STEERING_EVENTS) and by not in self.state.facilitators:
            return self._refused(by, Refusal("not_facilitator"))
        handler: Callable[[Any, float, _Out], None] = getattr(self, handler_name)
        out = _Out()
        try:
            handler(event, now, out)
        except Refusal as refusal:
            return self._refused(by, refusal)
        if isinstance(event, (E.Open, *E.NEEDS_PERMISSION)):
            out.keep(A.Audit(by, type(event).__name__.lower(), _audit_detail(event), now))
        if not isinstance(event, E.Recover):
            self._run_due(now, out)
        return A.Outcome(True, tuple(out.actions), tuple(out.records))

    # ------------------------------------------------------------------ helpers

    def _refused(self, by: str, refusal: Refusal) -> A.Outcome:
        params = tuple(sorted(refusal.params.items()))
        return A.Outcome(False, (A.Refused(by, refusal.code, params),), ())

    def _member(self, member: str, by: str) -> Participant:
        """``member``, present in the circle; refused if not (said to ``by`` about themselves or
        about someone else: ``about="them"`` picks the words for another person)."""
        person = self.state.participants.get(member)
        if person is None or person.state != "present":
            if member == by:
                raise Refusal("not_in_circle")
            raise Refusal("not_in_circle", about="them")
        return person

    def _anonymous(self, member: str | None) -> bool:
        """Whether ``member`` attends anonymously (never named or mentioned in the room)."""
        person = self.state.participants.get(member) if member is not None else None
        return person is not None and person.anonymous

    def _name(self, member: str) -> str:
        person = self.state.participants.get(member)
        return (person.name or "someone") if person else "someone"

    def _at(self, now: float) -> float:
        """The time a new timer starts from: frozen at the pause while paused."""
        st = self.state
        return st.paused_at if st.status is S.PAUSED and st.paused_at is not None else now

    def _round_phase(self) -> RoundPhase:
        phase = self.phase
        if not isinstance(phase, RoundPhase) or self.state.round is None:
            raise Refusal("no_round")
        return phase

    # ------------------------------------------------------------------ joining

    def _open(self, ev: E.Open, now: float, out: _Out) -> None:
        st = self.state
        st.status = S.GATHERING
        st.opened_at = now
        st.facilitators = [ev.by]
        st.seed = ev.seed
        st.prompts = {p.phase: p for p in ev.prompts}
        out.say(A.CircleOpened(self.script.title, self.script.summary, self.script.allow_anonymous))

    def _join(self, ev: E.Join, now: float, out: _Out) -> None:
        st = self.state
        person = st.participants.get(ev.by)
        if person is not None and person.state == "present":
            raise Refusal("already_joined")
        if ev.anonymous and not self.script.allow_anonymous:
            raise Refusal("anonymous_not_allowed")
        if ev.anonymous and ev.by in st.facilitators:
            # The room knows who facilitates, and steering is recorded by name.
            raise Refusal("facilitator_anonymous")
        if person is not None and person.state == "left" and person.consented and person.anonymous == ev.anonymous:
            person.state = "present"
            self._arrive(person, now, out)
            return
        # An anonymous attendee's name is never kept, not even in the live state.
        name = "" if ev.anonymous else (ev.name[:80] or "someone")
        st.participants[ev.by] = Participant(ev.by, name, ev.anonymous)
        consent, script = self.script.consent, self.script
        out.say(
            A.AskConsent(
                ev.by,
                consent.text,
                consent.version,
                consent.text_hash,
                ev.anonymous,
                script.agreement,
                script.agreement_hash,
            )
        )

    def _consent(self, ev: E.Consent, now: float, out: _Out) -> None:
        person = self.state.participants.get(ev.by)
        if person is None or person.state == "left":
            raise Refusal("join_first")
        if person.state == "present":
            raise Refusal("already_joined")
        consent = self.script.consent
        if ev.text_hash != consent.text_hash:
            raise Refusal("consent_changed", version=consent.version)
        person.state = "present"
        person.consented = True
        agreement_hash = self.script.agreement_hash
        keep = (person.id, person.name, person.anonymous)
        out.keep(A.ConsentGiven(*keep, agreement_hash, consent.version, now, scope="agreement"))
        out.keep(A.ConsentGiven(*keep, consent.text_hash, consent.version, now, scope="attendance"))
        out.say(A.ConsentReceipt(person.id, consent.version, consent.text_hash, person.anonymous))
        self._arrive(person, now, out)

    def _arrive(self, person: Participant, now: float, out: _Out) -> None:
        st = self.state
        st.joins += 1
        person.order = st.joins
        out.keep(A.AttendanceStarted(person.id, person.name, person.anonymous, now))
        mid_round = st.round is not None and st.status is not S.GATHERING
        out.say(A.Joined(person.id, len(st.present()), mid_round))

    def _leave(self, ev: E.Leave, now: float, out: _Out) -> None:
        st = self.state
        person = st.participants.get(ev.by)
        if person is None or person.state == "left":
            raise Refusal("not_in_circle")
        if person.state == "pending":
            # Asked to join, never agreed: nothing was recorded; the circle lets go of their name.
            del st.participants[ev.by]
            out.say(A.JoinCancelled(ev.by))
            return
        person.state = "left"
        out.keep(A.AttendanceEnded(person.id, now))
        out.say(A.LeftCircle(person.id, len(st.present())))
        rnd = st.round
        if rnd is not None:
            if ev.by in rnd.queue:
                rnd.queue.remove(ev.by)
            if ev.by in rnd.waiting:
                rnd.waiting.remove(ev.by)
            if rnd.holder == ev.by:
                self._give_next(self._at(now), out)
            elif self._popcorn() and rnd.holder is None and not rnd.queue:
                self._round_finished(self._at(now), out)

    def _erase(self, ev: E.Erase, now: float, out: _Out) -> None:
        st = self.state
        facilitating = ev.by in st.facilitators
        if facilitating and len(st.facilitators) == 1:
            raise Refusal("facilitating_now")  # the last one: someone must close it or step in first
        person = st.participants.get(ev.by)
        if person is None and not facilitating:
            raise Refusal("not_in_circle")
        if facilitating:  # others still hold the steering, so this one can go
            st.facilitators.remove(ev.by)
        if person is None:
            return
        if person.state == "present":  # one still waiting to consent had nothing recorded
            self._leave(E.Leave(ev.by), now, out)
        st.participants.pop(ev.by, None)
        if st.round is not None and ev.by in st.round.members:
            st.round.members.remove(ev.by)

    def _withdraw(self, ev: E.Withdraw, now: float, out: _Out) -> None:
        person = self.state.participants.get(ev.by)
        if person is None:
            raise Refusal("not_in_circle")
        person.consented = False

    def _assign_role(self, ev: E.AssignRole, now: float, out: _Out) -> None:
        declared = [r.name for r in self.script.roles]
        if ev.role not in declared:
            raise Refusal("unknown_role", role=ev.role, roles=", ".join(declared) or "none")
        person = self._member(ev.member, ev.by)
        if person.anonymous:
            # The role is said in the room with who holds it, which would name them.
            raise Refusal("anonymous_role", role=ev.role)
        for other in self.state.participants.values():
            if ev.role in other.roles:
                other.roles.remove(ev.role)
        person.roles.append(ev.role)
        out.say(A.RoleAssigned(person.id, person.name, ev.role))

    def _add_facilitator(self, ev: E.AddFacilitator, now: float, out: _Out) -> None:
        if ev.member == ev.by:
            raise Refusal("already_facilitating")
        if ev.member in self.state.facilitators:
            raise Refusal("already_facilitator")
        person = self._member(ev.member, ev.by)
        if person.anonymous:
            raise Refusal("anonymous_facilitator", about="them")
        self.state.facilitators.append(person.id)
        out.say(A.FacilitatorAdded(person.id, person.name))

    def _step_in(self, ev: E.StepIn, now: float, out: _Out) -> None:
        # The platform has checked that ``by`` may steer in this room; the room is told, and the
        # audit log keeps who stepped in. The facilitators already named keep their part.
        if ev.by in self.state.facilitators:
            raise Refusal("already_facilitating")
        person = self.state.participants.get(ev.by)
        if person is not None and person.anonymous:
            # Whether they are here now, waiting to consent or have left: the room is told who
            # steps in, and steering is recorded by name.
            raise Refusal("anonymous_facilitator")
        name = (person.name if person is not None and person.name else ev.name[:80]) or "someone"
        self.state.facilitators.append(ev.by)
        out.say(A.SteppedIn(ev.by, name))

    # ------------------------------------------------------------------ steering

    def _begin(self, ev: E.Begin, now: float, out: _Out) -> None:
        st = self.state
        for role in self.script.required_roles:
            if not any(role in p.roles for p in st.present()):
                raise Refusal("role_needed", role=role)
        st.status = S.RUNNING
        st.started_at = now
        out.keep(A.CircleStarted(now))
        self._start_phase(0, now, out)

    def _pause(self, ev: E.Pause, now: float, out: _Out) -> None:
        st = self.state
        st.status = S.PAUSED
        st.paused_at = now
        out.say(A.Paused(self.remaining(now)))

    def _resume(self, ev: E.Resume, now: float, out: _Out) -> None:
        st = self.state
        shift = now - (st.paused_at if st.paused_at is not None else now)
        st.status = S.RUNNING
        st.paused_at = None
        if st.ends_at is not None:
            st.ends_at += shift
        st.reminders = [r + shift for r in st.reminders]
        out.say(A.Resumed(self.remaining(now)))

    def _extend(self, ev: E.Extend, now: float, out: _Out) -> None:
        st = self.state
        if not 1 <= ev.minutes <= MAX_EXTEND_MINUTES:
            raise Refusal("bad_extend", most=str(MAX_EXTEND_MINUTES))
        if st.ends_at is None:
            raise Refusal("nothing_to_extend")
        seconds = ev.minutes * 60
        st.ends_at += seconds
        # Reminders are counted back from the new end, including any already given.
        phase = self.phase
        before: list[int] = []
        if isinstance(phase, OpenPhase) or (isinstance(phase, RoundPhase) and self.holder is not None):
            before = phase.remind_before
        start = self._at(now)
        st.reminders = sorted(t for t in (st.ends_at - r for r in before) if t > start)
        out.say(A.Extended(seconds, self.remaining(now)))

    def _next(self, ev: E.Next, now: float, out: _Out) -> None:
        phase = self.phase
        assert phase is not None
        if isinstance(phase, ClosePhase):
            self._finish(now, out, early=False)
            return
        out.say(A.PhaseSkipped(phase.name))
        self._advance(now, out)

    def _end(self, ev: E.End, now: float, out: _Out) -> None:
        st = self.state
        close_index = len(self.script.phases) - 1
        if st.phase != close_index:
            st.status = S.RUNNING
            self._announce_phase(close_index, None, out)
        self._finish(now, out, early=True)

    # ------------------------------------------------------------------ the talking piece

    def _pass(self, ev: E.Pass, now: float, out: _Out) -> None:
        self._round_phase()
        rnd = self.state.round
        assert rnd is not None
        if rnd.holder == ev.by:
            self._end_turn("passed", self._at(now), out)
            return
        if self._popcorn() and ev.by in rnd.queue:
            self._member(ev.by, ev.by)
            rnd.queue.remove(ev.by)
            if ev.by in rnd.waiting:
                rnd.waiting.remove(ev.by)
            out.keep(A.TurnRecorded(ev.by, "passed"))
            out.say(A.TurnEnded(ev.by, self._name(ev.by), "passed"))
            if rnd.holder is None and not rnd.queue:
                self._round_finished(self._at(now), out)
            return
        self._not_your_turn(ev.by)

    def _done(self, ev: E.Done, now: float, out: _Out) -> None:
        self._round_phase()
        if self.holder != ev.by:
            self._not_your_turn(ev.by)
        self._end_turn("done", self._at(now), out)

    def _not_your_turn(self, member: str) -> None:
        self._member(member, member)
        holder = self.holder
        if holder is None:
            raise Refusal("piece_free")
        raise Refusal("not_holder", holder=self._name(holder))

    def _ask_piece(self, ev: E.AskPiece, now: float, out: _Out) -> None:
        self._round_phase()
        rnd = self.state.round
        assert rnd is not None
        if not self._popcorn():
            raise Refusal("not_popcorn")
        self._member(ev.by, ev.by)
        if rnd.holder == ev.by:
            raise Refusal("already_holding")
        if ev.by not in rnd.members:
            raise Refusal("next_round")
        if ev.by not in rnd.queue:
            raise Refusal("had_turn")
        if rnd.holder is None:
            rnd.queue.remove(ev.by)
            self._give(ev.by, now, out)
            return
        if ev.by in rnd.waiting:
            raise Refusal("already_waiting", position=str(rnd.waiting.index(ev.by) + 1))
        rnd.waiting.append(ev.by)
        out.say(A.StatusReport(ev.by, "waiting", None, None, self._name(rnd.holder), None, len(rnd.waiting)))

    # ------------------------------------------------------------------ time

    def _status(self, ev: E.Status, now: float, out: _Out) -> None:
        phase = self.phase
        holder = self.holder
        out.say(
            A.StatusReport(
                ev.by,
                self.state.status.value,
                phase.name if phase else None,
                phase.kind if phase else None,
                self._name(holder) if holder else None,
                self.remaining(now),
                len(self.state.present()),
                yours=holder is not None and holder == ev.by,
            )
        )

    def _tick(self, ev: E.Tick, now: float, out: _Out) -> None:
        """Nothing to do here: :meth:`handle` runs every due deadline after any event."""

    def _recover(self, ev: E.Recover, now: float, out: _Out) -> None:
        st = self.state
        if st.status in (S.NEW, S.ENDED):
            return
        if st.status is S.GATHERING and st.opened_at is None:
            # A snapshot from before the opening time was kept: count from its last change
            # (when it was stored), which is never earlier than the opening.
            st.opened_at = now - ev.downtime
        caught_up = _Out()
        self._run_due(now, caught_up)
        out.records.extend(caught_up.records)
        ended = [a for a in caught_up.actions if isinstance(a, A.CircleEnded)]
        if st.status is S.GATHERING or (ended and ended[0].idle is not None):
            # Nothing was under way, so nothing was missed: say nothing, or only that it was closed.
            out.actions.extend(ended)
            return
        phase = self.phase
        holder = self.holder
        out.say(
            A.Back(
                self.state.status.value,
                phase.name if phase else None,
                phase.kind if phase else None,
                holder,
                self._name(holder) if holder else None,
                self.remaining(now),
                round(ev.downtime),
                self._anonymous(holder),
            )
        )
        out.actions.extend(ended)

    def _run_due(self, now: float, out: _Out) -> None:
        """Process every deadline due by ``now``, each at its own time."""
        st = self.state
        while st.status in _LIVE:
            due = self.next_deadline
            if due is None or due > now:
                return
            if st.status is not S.RUNNING:
                self._close_idle(due, now, out)
                return
            if st.reminders and st.reminders[0] == due and due < (st.ends_at or due + 1):
                st.reminders.pop(0)
                self._remind(due, out)
            else:
                self._expire(due, out)

    def _close_idle(self, at: float, now: float, out: _Out) -> None:
        """Close a circle left gathering or paused for :data:`IDLE_CLOSE_AFTER`: as ``End`` would
        (attendance closed, the state let go of people), without the closing words, which are
        for a circle that met; the room is told why, and that it can be started again."""
        status = self.state.status
        assert status is S.GATHERING or status is S.PAUSED
        # It ended when it stopped meeting, not twelve hours later: attendance and the circle's
        # length end when it opened (it never began) or when it was paused. (The store never lets
        # an attendance end before it began: someone who came later has none.)
        since = self.state.opened_at if status is S.GATHERING else self.state.paused_at
        idle: A.IdleStatus = "gathering" if status is S.GATHERING else "paused"
        stopped = since if since is not None else at
        self._finish(stopped, out, early=True, idle=idle, idle_for=round(max(now, at) - stopped))

    def _remind(self, at: float, out: _Out) -> None:
        phase = self.phase
        assert phase is not None and self.state.ends_at is not None
        holder = self.holder
        remaining = round(self.state.ends_at - at)
        out.say(A.Nudge(holder, self._name(holder) if holder else None, remaining, phase.kind, self._anonymous(holder)))

    def _expire(self, at: float, out: _Out) -> None:
        phase = self.phase
        st = self.state
        if isinstance(phase, RoundPhase):
            rnd = st.round
            assert rnd is not None
            if rnd.holder is not None:
                self._end_turn("time", at, out)
            elif not rnd.free_nudged:
                rnd.free_nudged = True
                st.ends_at = at + phase.turn
                out.say(A.PieceFree(st.ends_at, len(rnd.queue)))
            else:
                self._round_finished(at, out)
        elif isinstance(phase, OpenPhase):
            out.say(A.TimeUp(phase.name))
            self._advance(at, out)
        elif isinstance(phase, SilencePhase):
            out.say(A.SilenceCue(phase.name))
            self._advance(at, out)
        elif isinstance(phase, ClosePhase):
            self._finish(at, out, early=False)
        else:
            self._advance(at, out)

    # ------------------------------------------------------------------ phases and rounds

    def _advance(self, at: float, out: _Out) -> None:
        nxt = self.state.phase + 1
        if nxt < len(self.script.phases):
            self._start_phase(nxt, at, out)
        else:
            self._finish(at, out, early=False)

    def _announce_phase(self, index: int, ends_at: float | None, out: _Out) -> None:
        st = self.state
        phase = self.script.phases[index]
        st.phase = index
        st.round = None
        st.reminders = []
        st.ends_at = ends_at
        chosen = st.prompts.get(index)
        prompt = chosen.text if chosen else None
        if prompt is None and isinstance(phase, (RoundPhase, OpenPhase)) and isinstance(phase.prompt, str):
            prompt = phase.prompt
        agreement = self.script.agreement if isinstance(phase, AnnouncePhase) and phase.show_agreement else None
        silent = tuple(phase.silent) if isinstance(phase, (RoundPhase, OpenPhase)) else ()
        length = None if isinstance(phase, RoundPhase) else phase.duration
        out.say(
            A.PhaseStarted(
                index,
                len(self.script.phases),
                phase.kind,
                phase.name,
                phase.text,
                prompt,
                agreement,
                ends_at,
                length,
                silent,
            )
        )

    def _start_phase(self, index: int, at: float, out: _Out) -> None:
        phase = self.script.phases[index]
        chosen = self.state.prompts.get(index)
        if chosen is not None and chosen.bank and chosen.prompt_id:
            out.keep(A.PromptUsed(chosen.bank, chosen.prompt_id, at))
        if isinstance(phase, RoundPhase):
            self._announce_phase(index, None, out)
            self._start_round(1, at, out)
            return
        ends_at = at + phase.duration
        self._announce_phase(index, ends_at, out)
        if isinstance(phase, OpenPhase):
            self.state.reminders = sorted(ends_at - r for r in phase.remind_before)

    def _popcorn(self) -> bool:
        phase = self.phase
        return isinstance(phase, RoundPhase) and phase.order == "popcorn"

    def _start_round(self, number: int, at: float, out: _Out) -> None:
        phase = self._phase_as_round()
        st = self.state
        eligible = [
            p.id
            for p in st.present()
            if (phase.speakers is None or any(r in p.roles for r in phase.speakers))
            and not any(r in p.roles for r in phase.silent)
        ]
        if phase.order == "random":
            random.Random(f"{st.seed}:{st.phase}:{number}").shuffle(eligible)
        if not eligible:
            st.round = None
            out.say(A.RoundSkipped(phase.name))
            self._advance(at, out)
            return
        st.round = RoundState(number, eligible, members=list(eligible))
        out.say(A.RoundStarted(number, phase.rounds, len(eligible), phase.order == "popcorn"))
        if phase.order == "popcorn":
            st.ends_at = at + phase.turn
            out.say(A.PieceFree(st.ends_at, len(eligible)))
        else:
            self._give_next(at, out)

    def _phase_as_round(self) -> RoundPhase:
        phase = self.phase
        assert isinstance(phase, RoundPhase)
        return phase

    def _give(self, member: str, at: float, out: _Out) -> None:
        phase = self._phase_as_round()
        st = self.state
        assert st.round is not None
        st.round.holder = member
        st.round.free_nudged = False
        st.ends_at = at + phase.turn
        st.reminders = sorted(st.ends_at - r for r in phase.remind_before)
        turn, after = phase.turn, len(st.round.queue)
        out.say(A.GivePiece(member, self._name(member), st.ends_at, turn, after, self._anonymous(member)))

    def _end_turn(self, outcome: A.TurnOutcome, at: float, out: _Out) -> None:
        rnd = self.state.round
        assert rnd is not None and rnd.holder is not None
        out.keep(A.TurnRecorded(rnd.holder, outcome))
        out.say(A.TurnEnded(rnd.holder, self._name(rnd.holder), outcome))
        self._give_next(at, out)

    def _give_next(self, at: float, out: _Out) -> None:
        st = self.state
        rnd = st.round
        assert rnd is not None
        rnd.holder = None
        st.reminders = []
        present = {p.id for p in st.present()}
        if self._popcorn():
            while rnd.waiting:
                member = rnd.waiting.pop(0)
                if member in rnd.queue and member in present:
                    rnd.queue.remove(member)
                    self._give(member, at, out)
                    return
            if rnd.queue:
                st.ends_at = at + self._phase_as_round().turn
                rnd.free_nudged = False
                out.say(A.PieceFree(st.ends_at, len(rnd.queue)))
                return
        while rnd.queue:
            member = rnd.queue.pop(0)
            if member in present:
                self._give(member, at, out)
                return
        self._round_finished(at, out)

    def _round_finished(self, at: float, out: _Out) -> None:
        phase = self._phase_as_round()
        rnd = self.state.round
        assert rnd is not None
        if rnd.number < phase.rounds:
            self._start_round(rnd.number + 1, at, out)
        else:
            self._advance(at, out)

    def _finish(self, at: float, out: _Out, early: bool, idle: A.IdleStatus | None = None, idle_for: int = 0) -> None:
        st = self.state
        for person in st.present():
            out.keep(A.AttendanceEnded(person.id, at))
        st.status = S.ENDED
        st.ends_at = None
        st.reminders = []
        st.paused_at = None
        st.round = None
        out.keep(A.CircleFinished(at, idle=idle is not None))
        out.say(A.CircleEnded(self.script.title, early, idle, idle_for if idle else 0))


def _audit_detail(event: E.Event) -> str:
    if isinstance(event, E.Extend):
        return f"{event.minutes} min"
    if isinstance(event, (E.AssignRole,)):
        return event.role
    return ""


__all__ = ["IDLE_CLOSE_AFTER", "MAX_EXTEND_MINUTES", "REFUSALS", "TRANSITIONS", "Circle", "Refusal", "diagram"]
