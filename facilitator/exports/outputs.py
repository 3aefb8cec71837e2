"""Writing an export's or a report's file so that a failure loses nothing.

The new file is written beside its destination under a hidden temporary name, owner-only
(it names people), and takes the destination's place only once it is whole: an export that
fails half-way leaves an earlier file of that name as it was. Destinations that are not
ordinary files (``/dev/null``, a pipe, a link someone made on purpose) are written in place.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Iterator
from typing import IO


class OutputProblem(Exception):
    """A file could not be written; the message names it and says why."""


def problem(path: str, error: OSError) -> OutputProblem:
    """``error`` as a sentence about ``path``."""
    reason = error.strerror or str(error)
    if isinstance(error, FileNotFoundError) and not os.path.isdir(os.path.dirname(os.path.abspath(path))):
        reason = f"the folder {os.path.dirname(os.path.abspath(path))} does not exist"
    elif isinstance(error, IsADirectoryError) or os.path.isdir(path):
        reason = "it is a folder; name a file in it"
    return OutputProblem(f"cannot write {path}: {reason}")


def in_place(path: str) -> bool:
    """Whether ``path`` is written as it is (it exists and is not an ordinary file, or is a link)."""
    try:
        found = os.lstat(path)
    except FileNotFoundError:
        return False
    except OSError as error:
        raise problem(path, error) from None
    return not stat.S_ISREG(found.st_mode) and not stat.S_ISDIR(found.st_mode)


@contextlib.contextmanager
def replacing(path: str) -> Iterator[IO[bytes]]:
    """A file to write ``path``'s new content to: it takes ``path``'s place when the block ends
    without an error, and is deleted otherwise. Raises :class:`OutputProblem`."""
    if os.path.isdir(path):
        raise problem(path, IsADirectoryError(path))
    folder, name = os.path.split(os.path.abspath(path))
    try:
        fd, temporary = tempfile.mkstemp(dir=folder, prefix=f".{name}.", suffix=".part")
    except OSError as error:
        raise problem(path, error) from None
    try:
        with os.fdopen(fd, "wb") as out:
            yield out
        os.replace(temporary, path)
    except BaseException as error:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        if isinstance(error, OSError):
            raise problem(path, error) from error
        raise
