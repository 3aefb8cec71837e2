"""Consent: nothing about anyone is recorded until they agree to the exact text."""

from __future__ import annotations

import hashlib
import json

from facilitator.engine import actions as A
from facilitator.engine import events as E
from tests.engine_helpers import (
    AGREEMENT,
    AGREEMENT_HASH,
    ANA,
    BEN,
    CONSENT_HASH,
    CONSENT_TEXT,
    CONSENT_VERSION,
    FAC,
    TITLE,
    Run,
    begun,
    gathered,
    kept,
    make_script,
    of,
    round_phase,
)

SCRIPT = make_script(round_phase())
ANON_SCRIPT = make_script(round_phase(), allow_anonymous=True)


def test_open_announces_the_circle():
    run = Run(ANON_SCRIPT)
    out = run.ok(E.Open(FAC, "Fran"), 0.0)
    assert of(out, A.CircleOpened) == [A.CircleOpened(TITLE, None, True)]
    assert kept(out, A.Audit) == [A.Audit(FAC, "open", "", 0.0)]
    assert run.circle.state.facilitators == [FAC]


def test_join_asks_consent_privately_and_records_nothing():
    run = gathered(SCRIPT, people=())
    out = run.ok(E.Join(ANA, "Ana"), 5.0)
    assert out.records == ()
    assert out.actions == (
        A.AskConsent(ANA, CONSENT_TEXT, CONSENT_VERSION, CONSENT_HASH, False, AGREEMENT, AGREEMENT_HASH),
    )
    assert hashlib.sha256(CONSENT_TEXT.encode()).hexdigest() == CONSENT_HASH
    assert run.circle.state.participants[ANA].state == "pending"
    assert run.circle.state.present() == []


def test_consent_with_the_right_hash_records_consent_and_attendance():
    run = gathered(SCRIPT, people=())
    run.ok(E.Join(ANA, "Ana"), 5.0)
    out = run.ok(E.Consent(ANA, CONSENT_HASH), 7.0)
    assert out.records == (
        A.ConsentGiven(ANA, "Ana", False, AGREEMENT_HASH, CONSENT_VERSION, 7.0, scope="agreement"),
        A.ConsentGiven(ANA, "Ana", False, CONSENT_HASH, CONSENT_VERSION, 7.0, scope="attendance"),
        A.AttendanceStarted(ANA, "Ana", False, 7.0),
    )
    assert hashlib.sha256(AGREEMENT.encode()).hexdigest() == AGREEMENT_HASH
    assert of(out, A.ConsentReceipt) == [A.ConsentReceipt(ANA, CONSENT_VERSION, CONSENT_HASH, False)]
    assert of(out, A.Joined) == [A.Joined(ANA, 1, False)]
    assert [p.id for p in run.circle.state.present()] == [ANA]


def test_consent_to_another_text_is_refused():
    run = gathered(SCRIPT, people=())
    run.ok(E.Join(ANA, "Ana"), 5.0)
    old = hashlib.sha256(b"an older consent text").hexdigest()
    run.refused(E.Consent(ANA, old), 6.0, "consent_changed", version=CONSENT_VERSION)
    run.refused(E.Consent(ANA, ""), 6.0, "consent_changed")
    assert run.circle.state.participants[ANA].state == "pending"


def test_consent_before_join_is_refused():
    run = gathered(SCRIPT, people=())
    run.refused(E.Consent(ANA, CONSENT_HASH), 1.0, "join_first")


def test_join_or_consent_twice_is_refused():
    run = gathered(SCRIPT, people=(ANA,))
    run.refused(E.Join(ANA, "Ana"), 1.0, "already_joined")
    run.refused(E.Consent(ANA, CONSENT_HASH), 1.0, "already_joined")


def test_join_again_while_pending_shows_the_consent_again():
    run = gathered(SCRIPT, people=())
    run.ok(E.Join(ANA, "Ana"), 1.0)
    out = run.ok(E.Join(ANA, "Ana"), 2.0)
    assert of(out, A.AskConsent) == [
        A.AskConsent(ANA, CONSENT_TEXT, CONSENT_VERSION, CONSENT_HASH, False, AGREEMENT, AGREEMENT_HASH)
    ]
    assert out.records == ()


def test_anonymous_join_refused_when_the_script_does_not_allow_it():
    run = gathered(SCRIPT, people=())
    run.refused(E.Join(ANA, "Ana", anonymous=True), 1.0, "anonymous_not_allowed")
    assert ANA not in run.circle.state.participants


def test_anonymous_join_allowed_when_the_script_allows_it():
    run = gathered(ANON_SCRIPT, people=())
    out = run.ok(E.Join(ANA, "Ana", anonymous=True), 1.0)
    asked = A.AskConsent(ANA, CONSENT_TEXT, CONSENT_VERSION, CONSENT_HASH, True, AGREEMENT, AGREEMENT_HASH)
    assert of(out, A.AskConsent) == [asked]
    out = run.ok(E.Consent(ANA, CONSENT_HASH), 2.0)
    # an anonymous attendee's name is never kept: records carry anonymous=True and no name
    assert kept(out, A.ConsentGiven) == [
        A.ConsentGiven(ANA, "", True, AGREEMENT_HASH, CONSENT_VERSION, 2.0, scope="agreement"),
        A.ConsentGiven(ANA, "", True, CONSENT_HASH, CONSENT_VERSION, 2.0, scope="attendance"),
    ]
    assert kept(out, A.AttendanceStarted) == [A.AttendanceStarted(ANA, "", True, 2.0)]
    assert of(out, A.ConsentReceipt) == [A.ConsentReceipt(ANA, CONSENT_VERSION, CONSENT_HASH, True)]
    assert "Ana" not in json.dumps(run.circle.snapshot())
    out = run.ok(E.Begin(FAC), 10.0)
    assert of(out, A.GivePiece) == [A.GivePiece(ANA, "someone", 70.0, 60, 0, anonymous=True)]


def test_leave_and_come_back_is_not_asked_again_and_starts_new_attendance():
    run = gathered(SCRIPT, people=(ANA, BEN))
    out = run.ok(E.Leave(ANA), 10.0)
    assert out.records == (A.AttendanceEnded(ANA, 10.0),)
    assert of(out, A.LeftCircle) == [A.LeftCircle(ANA, 1)]
    out = run.ok(E.Join(ANA, "Ana"), 20.0)
    assert of(out, A.AskConsent) == []
    assert kept(out, A.ConsentGiven) == []
    assert out.records == (A.AttendanceStarted(ANA, "Ana", False, 20.0),)
    assert of(out, A.Joined) == [A.Joined(ANA, 2, False)]
    run.refused(E.Leave("t:nobody"), 21.0, "not_in_circle")
    run.ok(E.Leave(ANA), 22.0)
    run.refused(E.Leave(ANA), 23.0, "not_in_circle")


def test_leaving_before_consent_records_nothing_and_forgets_them():
    run = gathered(SCRIPT, people=())
    run.ok(E.Join(ANA, "Ana"), 1.0)
    out = run.ok(E.Leave(ANA), 2.0)
    assert out.records == ()
    assert ANA not in run.circle.state.participants
    run.refused(E.Consent(ANA, CONSENT_HASH), 3.0, "join_first")


def test_join_mid_circle_asks_consent_too():
    run, _ = begun(SCRIPT, people=(ANA,))
    out = run.ok(E.Join(BEN, "Ben"), 110.0)
    assert out.records == ()
    assert of(out, A.AskConsent)[0].to == BEN
    out = run.ok(E.Consent(BEN, CONSENT_HASH), 111.0)
    assert [type(r).__name__ for r in out.records] == ["ConsentGiven", "ConsentGiven", "AttendanceStarted"]


def test_names_are_kept_short_and_never_empty():
    run = gathered(SCRIPT, people=())
    run.ok(E.Join(ANA, "x" * 200), 1.0)
    out = run.ok(E.Consent(ANA, CONSENT_HASH), 1.0)
    assert kept(out, A.AttendanceStarted)[0].name == "x" * 80
    run.ok(E.Join(BEN, ""), 1.0)
    out = run.ok(E.Consent(BEN, CONSENT_HASH), 1.0)
    assert kept(out, A.AttendanceStarted)[0].name == "someone"


def test_a_stale_consent_after_leaving_does_not_bring_someone_back():
    run = gathered(SCRIPT, people=(ANA, BEN))
    run.ok(E.Leave(ANA), 10.0)
    run.refused(E.Consent(ANA, CONSENT_HASH), 11.0, "join_first")


def test_the_hashes_kept_are_of_the_texts_exactly_as_shown() -> None:
    """A YAML block (``text: |``) ends with a newline the bot does not show: the hash an auditor
    checks against what was shown must not include it."""
    from facilitator.script.loader import load_script_text

    script = load_script_text(
        "title: T\nagreement: |\n  One voice at a time.\n\nconsent:\n  version: '1'\n  text: |\n    Attendance only.\n"
        "phases:\n  - kind: close\n    text: Thank you.\n",
        "block.yaml",
    )
    assert script.consent.text.endswith("\n") and script.agreement.endswith("\n")
    assert script.consent.text_hash == hashlib.sha256(b"Attendance only.").hexdigest()
    assert script.agreement_hash == hashlib.sha256(b"One voice at a time.").hexdigest()
