"""Whole circles on Discord: the real discord.py client against the loopback Discord.

Fran (role "Facilitator") runs the circle; Ada, Bea and Cy take part, some by buttons and some
by typed ``/circle`` commands (the set-up is in tests/discord_people.py).
"""

from __future__ import annotations

import re
from pathlib import Path

from facilitator.paths import sessions_root
from facilitator.runtime.library import ScriptLibrary
from tests.discord_people import Guild, guild

__all__ = ["guild"]


async def test_a_whole_circle_on_discord_with_buttons_and_typed_commands(guild: Guild) -> None:
    g = guild
    started = await g.slash(g.fran, "start", script="check-in-30")
    opening = await g.posted("Check-in circle")
    assert opening.custom_ids() == ["circle:join", "circle:join_anonymous"]  # check-in-30 allows both
    answer = await started.response()
    assert answer.ephemeral and not answer.late
    assert not [
        m for m in g.fake.messages(g.channel, ephemeral=False) if "Done." in m.content
    ]  # the ack stayed private

    # Ada joins by button, and consents by the button on the private consent text.
    joined = await g.fake.click(g.ada, opening, "circle:join")
    asked = await joined.response()
    assert asked.ephemeral and "exactly what this circle keeps" in asked.content
    hosted = g.hosted()
    assert hosted is not None
    consent_id = f"circle:consent:{hosted.circle.script.consent.text_hash}"
    assert joined.original is not None and joined.original.custom_ids() == [consent_id]
    receipt = await (await g.fake.click(g.ada, joined.original, consent_id)).response()
    assert receipt.ephemeral and "recorded" in receipt.content
    # Bea types hers.
    typed = await (await g.slash(g.bea, "join")).response()
    assert typed.ephemeral and "exactly what this circle keeps" in typed.content
    assert "recorded" in (await (await g.slash(g.bea, "consent")).response()).content
    # Cy by buttons too.
    cy_join = await g.fake.click(g.cy, opening, "circle:join")
    await cy_join.response()
    assert cy_join.original is not None
    await (await g.fake.click(g.cy, cy_join.original, consent_id)).response()
    assert len(hosted.circle.state.present()) == 3

    await (await g.slash(g.fran, "begin")).response()
    await g.settle_time(120)  # the welcome and the agreement
    given = await g.posted("the talking piece is with you")
    assert given.pings.users == {g.ada.user.id} and not given.pings.everyone and not given.pings.roles
    assert f"<@{g.ada.user.id}>" in given.content
    assert given.custom_ids() == ["circle:done", "circle:pass"]

    await (await g.fake.click(g.ada, given, "circle:done")).response()
    assert hosted.circle.holder == f"discord:{g.bea.user.id}"
    await (await g.slash(g.bea, "pass")).response()
    cy_turn = await g.posted(f"<@{g.cy.user.id}>, the talking piece")
    await (await g.fake.click(g.cy, cy_turn, "circle:done")).response()
    assert hosted.circle.state.phase == 3  # the open reflection
    for _ in range(20):  # open phase, silence, the check-out round timing out, the close
        await g.settle_time(60)
        if g.hosted() is None:
            break
    assert g.hosted() is None
    await g.posted("Thank you all")

    rows = g.store.attendance_of(hosted.id)
    assert sorted((r["display_name"], r["turns_spoken"], r["turns_passed"]) for r in rows) == [
        ("Ada", 2, 0),
        ("Bea", 1, 1),
        ("Cy", 2, 0),
    ]
    ledger = g.store.consent_log(hosted.id)
    assert sorted((e["display_name"], e["scope"]) for e in ledger) == [
        (name, scope) for name in ("Ada", "Bea", "Cy") for scope in ("agreement", "attendance")
    ]
    public = " ".join(m.content for m in g.fake.messages(g.channel, ephemeral=False))
    assert "exactly what this circle keeps" not in public  # the consent text stayed private
    assert all(
        m.pings.users <= {g.ada.user.id, g.bea.user.id, g.cy.user.id}
        for m in g.fake.messages(g.channel, ephemeral=False)
    )


async def test_script_names_are_offered_as_you_type(guild: Guild) -> None:
    g = guild
    typing = await g.fake.autocomplete(g.fran, g.channel, "circle", "start", {"script": "check"}, focused="script")
    await typing.response()
    assert typing.choices is not None and [c["value"] for c in typing.choices] == ["check-in-30"]


async def test_a_consent_text_longer_than_a_message_comes_whole_with_the_button_after_it(
    guild: Guild, tmp_path: Path
) -> None:
    g = guild
    source = (sessions_root() / "check-in-30.yaml").read_text(encoding="utf-8")
    long_text = " ".join(f"Sentence {n} of what this circle keeps, said plainly." for n in range(70))
    consent = f'consent:\n  version: "long-1"\n  text: "{long_text}"\nphases:'
    script = re.sub(r"(?s)consent:\n  version: .*?\nphases:", lambda _: consent, source)
    (tmp_path / "long-consent.yaml").write_text(script, encoding="utf-8")
    g.runtime.library = ScriptLibrary(tmp_path)
    await (await g.slash(g.fran, "start", script="long-consent")).response()
    joined = await g.slash(g.ada, "join")
    await joined.response()
    assert joined.original is not None
    parts = [joined.original]
    while not parts[-1].custom_ids() and len(parts) < 5:  # the parts come until the one with the button
        parts.append(await joined.followup(len(parts) - 1))
    rest = parts[-1]
    assert len(parts) >= 2 and all(p.ephemeral and len(p.content) <= 2000 for p in parts)
    whole = " ".join(" ".join(p.content.split()) for p in parts)
    assert long_text in whole and "press I consent" in rest.content  # cut between words, nothing lost
    assert whole.index("group agreement") < whole.index(long_text)  # the agreement comes first
    assert rest.custom_ids() == [f"circle:consent:{g.hosted().circle.script.consent.text_hash}"]  # type: ignore[union-attr]
    assert all(p.custom_ids() == [] for p in parts[:-1])  # the button only under the last part
