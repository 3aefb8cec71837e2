"""What the bot's lines look like on Matrix: ``m.notice`` events, safe by construction.

- ``body`` is always plain text; ``formatted_body`` is built only from escaped text, the
  piece holder's mention link and ``<br>``: nothing anyone typed becomes markup.
- Every notice carries ``m.mentions`` (intentional mentions): only the piece holder is
  mentioned, and ``@room`` written in a display name or argument pings nobody (with
  ``m.mentions`` present, homeservers and clients skip the old body-text ``@room`` rule).
- Notices are what bots send to each other without answering: the bot never acts on one.
"""

from __future__ import annotations

import hashlib
import html
from typing import Any
from urllib.parse import quote

from facilitator.front import clean_name as shared_clean_name
from facilitator.voice import MENTION, Attachment, Line

PLATFORM = "matrix"
MAX_NAME = 64


def member_id(user_id: str) -> str:
    """The runtime's id for a Matrix user (``matrix:@alice:example.org``)."""
    return f"{PLATFORM}:{user_id}"


def user_of(member: str) -> str:
    """The Matrix user id in a runtime member id."""
    return member.removeprefix(f"{PLATFORM}:")


def clean_name(name: str) -> str:
    """A display name fit to show, by the rule every platform shares (:func:`facilitator.front.clean_name`:
    one line, nothing invisible, no control or direction character), at most 64 characters."""
    return shared_clean_name(name, MAX_NAME)


def notice(line: Line) -> dict[str, Any]:
    """The ``m.notice`` content for one line."""
    parts = line.text.split(MENTION)
    escaped = [html.escape(part, quote=False).replace("\n", "<br>") for part in parts]
    mentions: dict[str, Any] = {}
    if line.mention and len(parts) > 1:
        user = user_of(line.mention)
        name = clean_name(line.mention_name or user)
        link = f'<a href="https://matrix.to/#/{quote(user, safe="@:")}">{html.escape(name)}</a>'
        body, formatted = name.join(parts), link.join(escaped)
        mentions = {"user_ids": [user]}
    else:
        body, formatted = "".join(parts), "".join(escaped)
    return {
        "msgtype": "m.notice",
        "body": body,
        "format": "org.matrix.custom.html",
        "formatted_body": formatted,
        "m.mentions": mentions,
    }


def file_message(attachment: Attachment, file: dict[str, Any]) -> dict[str, Any]:
    """The ``m.file`` content for an uploaded ``attachment``: ``file`` is ``{"url": MXC}``, or
    ``{"file": {...}}`` (the URL with its decryption keys) in an encrypted room."""
    return {
        "msgtype": "m.file",
        "body": attachment.name,
        "filename": attachment.name,
        "info": {"mimetype": attachment.mime, "size": len(attachment.data)},
        "m.mentions": {},
        **file,
    }


def transaction_id(key: str) -> str:
    """The transaction id to send a line with: the same line key always gives the same id, so a
    line sent again after a crash is deduplicated by the homeserver."""
    return "fac" + hashlib.sha256(key.encode("utf-8")).hexdigest()[:40]
