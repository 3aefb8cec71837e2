"""Reading a text file someone pointed us at (a script, a prompt bank) without surprises.

Only a regular file is ever opened for reading: a named pipe (FIFO) would block forever, a
device could be endless. The file is checked before it is opened and again once it is open
(opened without blocking, so a pipe swapped in between cannot hang us either). Text that is
not UTF-8 is refused at the line and column of its first bad byte, the way an editor shows it.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

__all__ = ["LINE_BREAK", "UnreadableFile", "read_text_file"]

LINE_BREAK = re.compile("\r\n|[\r\n\x85\u2028\u2029]")  # what YAML counts as a new line
_KINDS = [
    (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a device"),
    (stat.S_ISBLK, "a device"),
]


class UnreadableFile(Exception):
    """A file that cannot be read as text; ``message`` says why and what to do, at ``line``:``column``."""

    def __init__(self, message: str, line: int = 1, column: int = 1) -> None:
        self.message = message
        self.line = line
        self.column = column
        super().__init__(message)


def _not_regular(mode: int) -> UnreadableFile:
    if stat.S_ISDIR(mode):
        return UnreadableFile("this is a directory; give the path of a .yaml file")
    kind = next((name for test, name in _KINDS if test(mode)), "a special file")
    return UnreadableFile(f"this is {kind}, not a regular file; give the path of a .yaml file saved on disk")


def read_text_file(path: str | Path, max_bytes: int | None = None, what: str = "file") -> str:
    """The UTF-8 text of the regular file at ``path``; every failure is :class:`UnreadableFile`.

    With ``max_bytes``, a longer file is refused (reading stops one byte past the limit), saying
    that ``what`` (a script, a prompt bank) may be at most that long.
    """
    try:
        mode = os.stat(path).st_mode
        if not stat.S_ISREG(mode):
            raise _not_regular(mode)
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
        with os.fdopen(fd, "rb") as handle:
            mode = os.fstat(handle.fileno()).st_mode
            if not stat.S_ISREG(mode):  # swapped for something else since the check above
                raise _not_regular(mode)
            raw = handle.read() if max_bytes is None else handle.read(max_bytes + 1)
    except FileNotFoundError:
        raise UnreadableFile("no such file; check the path") from None
    except IsADirectoryError:
        raise UnreadableFile("this is a directory; give the path of a .yaml file") from None
    except PermissionError as exc:
        raise UnreadableFile(f"cannot read the file ({exc.strerror}); check its permissions") from None
    except OSError as exc:
        raise UnreadableFile(f"cannot read the file ({exc.strerror or exc}); check the path") from None
    if max_bytes is not None and len(raw) > max_bytes:
        kib = max_bytes // 1024
        raise UnreadableFile(f"the file is over {kib} KiB; a {what} may be at most {kib} KiB")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _not_utf8(raw, exc.start) from None


def _not_utf8(raw: bytes, start: int) -> UnreadableFile:
    """Where the first byte that is not UTF-8 is, as line and column (characters, like YAML counts)."""
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        return UnreadableFile("the file is saved as UTF-16, not UTF-8; save it as UTF-8")
    lines = LINE_BREAK.split(raw[:start].decode("utf-8"))  # valid up to the bad byte
    line, column = len(lines), len(lines[-1]) + 1
    message = (
        f"the file is not UTF-8: the byte 0x{raw[start]:02X} here (offset {start}) is not UTF-8 text "
        "(was it saved as Windows-1252 or Latin-1?); save it as UTF-8"
    )
    return UnreadableFile(message, line, column)
