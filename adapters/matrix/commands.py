"""Which Matrix messages are commands for the bot, and the command in them."""

from __future__ import annotations

from typing import Any


def command_text(body: str, content: dict[str, Any], prefix: str) -> str | None:
    """The command in a message (``"pass"`` for ``!circle pass``), ``"help"`` for the bare prefix,
    or None when the message is not for the bot (other text, an edit, ``!circles``)."""
    relates = content.get("m.relates_to")
    if isinstance(relates, dict) and relates.get("rel_type") == "m.replace":
        return None  # an edit of an earlier message: acting on it would act twice
    text = _without_reply_fallback(body).strip()
    if text[: len(prefix)].casefold() != prefix.casefold():
        return None
    rest = text[len(prefix) :]
    if rest and not rest[0].isspace():
        return None
    return rest.strip() or "help"


def _without_reply_fallback(body: str) -> str:
    """A reply's body starts with the quoted message (``> <@a:b> ...``) and a blank line."""
    if not body.startswith("> "):
        return body
    lines = body.split("\n")
    for index, line in enumerate(lines):
        if not line.startswith(">"):
            return "\n".join(lines[index:])
    return ""
