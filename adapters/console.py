"""The console adapter: a circle in a terminal, for a person to type into or a test to drive.

Like errbot's text backend, one class serves both: ``facilitator console`` reads what a
person types (switching who speaks with ``as NAME``), ``facilitator demo`` and the tests
call :meth:`ConsoleAdapter.say` directly. Members are ``console:<name>``.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import re
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from facilitator.engine import actions as A
from facilitator.front import clean_name, handle_command
from facilitator.script.durations import format_clock
from facilitator.voice import Line

if TYPE_CHECKING:
    from facilitator.runtime.host import Runtime

PLATFORM = "console"
HINTS = {"join_hint": "type: join", "consent_hint": "type: consent"}


def member_id(name: str) -> str:
    """The member id of a console participant called ``name`` (a name is needed)."""
    if not name.strip():
        raise ValueError("a console participant needs a name")
    return f"{PLATFORM}:{name.strip().lower()}"


class ConsoleAdapter:
    """Prints what the bot says; takes commands as ``(speaker, text)``."""

    platform = PLATFORM

    def __init__(
        self,
        out: TextIO | None = None,
        room: str = "terminal",
        show_private: bool = True,
        files: Path | None = None,
    ) -> None:
        self.out = out or sys.stdout
        self.files = files or Path("facilitator-files")
        """Where files handed to someone (their data, an export) are saved: a terminal has no inbox."""
        self.room = room
        self.show_private = show_private
        self.runtime: Runtime | None = None
        self.transcript: list[Line] = []
        self._started: float | None = None

    async def connect(self, runtime: Runtime) -> None:
        self.runtime = runtime
        runtime.hints.setdefault(PLATFORM, HINTS)

    async def disconnect(self) -> None:
        self.out.flush()

    async def send(self, room: str, lines: Sequence[Line]) -> None:
        for line in lines:
            self.transcript.append(line)
            if line.to is not None and not self.show_private:
                continue
            stamp = self._stamp()
            if line.to is not None:
                who = line.to.split(":", 1)[-1]
                self.out.write(f"{stamp} (privately to {who}) {line.plain()}{self._saved(line)}\n")
            else:
                self.out.write(f"{stamp} {line.plain()}\n")
        self.out.flush()

    def _saved(self, line: Line) -> str:
        """Save a private line's file in its person's own folder, owner-only from the first byte and
        never over an earlier one; the words that say where."""
        if line.attachment is None or line.to is None:
            return ""
        folder = self.folder_of(line.to)
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        name = Path(line.attachment.name)
        for n in itertools.count(1):
            path = folder / (name.name if n == 1 else f"{name.stem}-{n}{name.suffix}")
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                continue
            with open(fd, "wb") as out:
                out.write(line.attachment.data)
            return f" [file saved: {path}]"
        raise AssertionError("unreachable")

    def folder_of(self, member: str) -> Path:
        """The folder of ``member``'s files: their name where it is a plain one, else its digest."""
        name = member.split(":", 1)[-1]
        plain = re.sub(r"[^a-z0-9._-]", "_", name)
        if not plain or plain != name or plain.startswith("."):  # never the folder of everyone's files
            plain = f"{plain.lstrip('.')[:40]}-{hashlib.sha256(name.encode()).hexdigest()[:12]}"
        return self.files / plain

    async def forget(self, member: str) -> None:
        """``forget me``: the files saved for them here go too."""
        if not member.startswith(f"{PLATFORM}:"):
            return
        folder = self.folder_of(member)
        if folder.exists():
            shutil.rmtree(folder)  # a failure is logged by the runtime, not hidden

    def _stamp(self) -> str:
        if self.runtime is None:
            return "[--:--]"
        now = self.runtime.clock.now()
        if self._started is None:
            self._started = now
        return f"[{format_clock(now - self._started):>5}]"

    async def say(self, speaker: str, text: str) -> A.Outcome:
        """``speaker`` types ``text`` (a command, as in chat). The name is cleaned as every platform's
        is (a terminal can hand over a lone surrogate, from bytes that are not UTF-8), and so is a
        person named in a command, so that they are the same member."""
        assert self.runtime is not None, "connect the adapter to a runtime first"
        name = clean_name(speaker)
        return await handle_command(
            self.runtime,
            PLATFORM,
            self.room,
            member_id(name),
            name,
            text,
            resolve=lambda person: member_id(clean_name(person)),
        )
