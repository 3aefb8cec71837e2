"""What the bot's lines become on Discord: escaped text, one allowed mention, clean splits."""

from __future__ import annotations

from adapters.discord.content import MAX_MESSAGE, allowed_mentions, nonce, split, text_of
from facilitator.voice import MENTION, Line


def test_the_holder_is_the_only_one_who_can_be_pinged() -> None:
    line = Line(
        f"{MENTION}, the talking piece is with you. @everyone **look**", mention="discord:42", mention_name="Ada"
    )
    assert text_of(line) == "<@42>, the talking piece is with you. @everyone \\*\\*look\\*\\*"
    allowed = dict(allowed_mentions(line).to_dict())
    assert allowed == {"parse": [], "users": [42]}


def test_a_line_without_a_holder_pings_nobody() -> None:
    line = Line("Round 1: <@&99> @here, Bea and Cy to hold the piece.")
    assert dict(allowed_mentions(line).to_dict()) == {"parse": []}


def test_long_text_is_split_at_line_breaks_within_the_limit() -> None:
    text = "\n".join(f"line {n}: " + " ".join(["word"] * 30) for n in range(40))
    parts = split(text)
    assert len(parts) > 1 and all(len(p) <= MAX_MESSAGE for p in parts)
    assert "\n".join(parts) == text  # nothing lost, cut only where a line ended
    one_word = "x" * 4500
    assert [len(p) for p in split(one_word)] == [2000, 2000, 500]


def test_a_line_keeps_its_nonce_and_nonces_fit_discord() -> None:
    assert nonce("1234567890123456789.0") == nonce("1234567890123456789.0")
    assert nonce("k.0", 0) != nonce("k.0", 1) and len(nonce("k.0")) == 25
