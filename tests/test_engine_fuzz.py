"""Whatever people type, in whatever order, the circle never breaks its own rules.

Hypothesis plays random events from a handful of people (and a facilitator) against a real
script, with time jumping forward between them, and checks after every step what a person
in the circle would notice if it went wrong.
"""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from facilitator.engine import actions as A
from facilitator.engine import events as E
from facilitator.engine.circle import Circle
from facilitator.engine.state import CircleStatus
from facilitator.runtime.library import ScriptLibrary

SCRIPTS = ScriptLibrary()
PEOPLE = ["fac", "ada", "bea", "cy", "dev"]


def event_for(kind: str, by: str, other: str, minutes: int, hash_ok: bool, script_hash: str) -> E.Event:
    match kind:
        case "join":
            return E.Join(by, by.title())
        case "join_anon":
            return E.Join(by, by.title(), anonymous=True)
        case "consent":
            return E.Consent(by, script_hash if hash_ok else "0" * 64)
        case "leave":
            return E.Leave(by)
        case "begin":
            return E.Begin(by)
        case "pause":
            return E.Pause(by)
        case "resume":
            return E.Resume(by)
        case "extend":
            return E.Extend(by, minutes)
        case "next":
            return E.Next(by)
        case "end":
            return E.End(by)
        case "pass":
            return E.Pass(by)
        case "done":
            return E.Done(by)
        case "ask":
            return E.AskPiece(by)
        case "role":
            return E.AssignRole(by, other, "presenter")
        case "cofac":
            return E.AddFacilitator(by, other)
        case "status":
            return E.Status(by)
    return E.Tick()


KINDS = [
    "join", "join_anon", "consent", "leave", "begin", "pause", "resume", "extend", "next", "end",
    "pass", "done", "ask", "role", "cofac", "status", "tick",
]  # fmt: skip

steps = st.lists(
    st.tuples(
        st.sampled_from(KINDS),
        st.sampled_from(PEOPLE),
        st.sampled_from(PEOPLE),
        st.integers(-5, 200),
        st.booleans(),
        st.floats(0, 400),
    ),
    max_size=60,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(script_name=st.sampled_from(["check-in-30", "case-reflection-balint", "restorative-circle"]), plan=steps)
def test_random_play_never_breaks_the_rules(
    script_name: str, plan: list[tuple[str, str, str, int, bool, float]]
) -> None:
    script = SCRIPTS.get(script_name).script
    circle = Circle(script)
    now = 1_000.0
    circle.handle(E.Open("fac", "Fac"), now)
    for kind, by, other, minutes, hash_ok, wait in plan:
        now += wait
        before = json.dumps(circle.snapshot(), sort_keys=True)
        outcome = circle.handle(event_for(kind, by, other, minutes, hash_ok, script.consent.text_hash), now)
        if not outcome.accepted:
            # a refusal is said to the sender only, and changes nothing
            assert len(outcome.actions) == 1 and isinstance(outcome.actions[0], A.Refused)
            assert outcome.actions[0].to == by
            assert json.dumps(circle.snapshot(), sort_keys=True) == before
            assert not outcome.records
        state = circle.state
        holder = circle.holder
        if holder is not None:  # the piece is only ever with someone present
            assert state.participants[holder].state == "present"
        deadline = circle.next_deadline
        if circle.status in (CircleStatus.RUNNING, CircleStatus.GATHERING, CircleStatus.PAUSED):
            # gathering and paused circles have one too: when they close, left idle too long
            if outcome.accepted:  # an accepted event also runs everything that was due
                assert deadline is not None and deadline > now
        else:
            assert deadline is None
        for action in outcome.actions:  # nobody's typed name reaches the room for anonymous people
            if isinstance(action, A.GivePiece) and state.participants[action.member].anonymous:
                assert action.name == "someone"
        # the state always survives a restart
        assert Circle.restore(script, json.loads(json.dumps(circle.snapshot()))).snapshot() == circle.snapshot()
