"""Writing an export's or a report's file so that a failure loses nothing.

The new file is written beside its destination under a hidden temporary name, owner-only
(it names people), and takes the destination's place only once it is whole: an export that
fails half-way leaves an earlier file of that name as it was. Destinations that are not
ordinary files (``/dev/null``, a pipe, a link someone made on purpose) are written in place.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import secrets
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
    """Whether ``path`` is written as it is rather than replaced: it is a device, a pipe or a
    link; or an ordinary file that replacing would change in other ways than its content (it
    has other names, hard links; it is someone else's; or its folder may not be written to,
    so nothing can be put in its place)."""
    try:
        found = os.lstat(path)
    except FileNotFoundError:
        return False
    except OSError as error:
        raise problem(path, error) from None
    if stat.S_ISDIR(found.st_mode):
        return False  # refused by replacing(), with a sentence
    if _special(found.st_mode):
        return True
    folder = os.path.dirname(os.path.abspath(path))
    return found.st_nlink > 1 or found.st_uid != os.geteuid() or not os.access(folder, os.W_OK | os.X_OK)


def special(path: str) -> bool:
    """Whether ``path`` is a device, a pipe or a link (written as it is, and needing no ending)."""
    try:
        return _special(os.lstat(path).st_mode)
    except OSError:
        return False


def _special(mode: int) -> bool:
    return not stat.S_ISREG(mode) and not stat.S_ISDIR(mode)


@contextlib.contextmanager
def destination(path: str) -> Iterator[IO[bytes]]:
    """Where to write ``path``: in place if :func:`in_place` says so, else :func:`replacing` it.
    Raises :class:`OutputProblem`."""
    if not in_place(path):
        with replacing(path) as out:
            yield out
        return
    try:
        with open(path, "wb") as out:
            yield out
    except OSError as error:
        raise problem(path, error) from error


@contextlib.contextmanager
def replacing(path: str) -> Iterator[IO[bytes]]:
    """A file to write ``path``'s new content to: it takes ``path``'s place when the block ends
    without an error, and is deleted otherwise. Raises :class:`OutputProblem`.

    On Linux the file has no name at all until it is whole (``O_TMPFILE``): an export killed
    half-way (SIGKILL, a power cut) leaves nothing behind that names people. Elsewhere it is a
    hidden ``.NAME.XXXX.part`` beside ``path``, deleted on any error the process lives through."""
    if os.path.isdir(path):
        raise problem(path, IsADirectoryError(path))
    folder, name = os.path.split(os.path.abspath(path))
    fd = _unnamed(path, folder)
    if fd is None:
        yield from _named_then_renamed(path, folder, name)
        return
    try:
        with os.fdopen(fd, "wb", closefd=False) as out:
            yield out
        temporary = os.path.join(folder, f".{name}.{os.getpid()}.{secrets.token_hex(4)}.part")
        _link(fd, temporary)  # named only now that it is whole
        try:
            os.replace(temporary, path)
        except OSError:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise
    except OSError as error:
        raise problem(path, error) from error
    finally:
        os.close(fd)


AT_FDCWD = -100
AT_SYMLINK_FOLLOW = 0x400


def _link(fd: int, name: str) -> None:
    """Give the unnamed file ``fd`` the name ``name`` (linkat through /proc, as open(2) shows:
    Python's os.link does not follow /proc's link to the file itself)."""
    libc = ctypes.CDLL(None, use_errno=True)
    source = f"/proc/self/fd/{fd}".encode()
    if libc.linkat(AT_FDCWD, source, AT_FDCWD, os.fsencode(name), AT_SYMLINK_FOLLOW) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code), name)


def _unnamed(path: str, folder: str) -> int | None:
    """An unnamed file in ``folder`` (Linux's ``O_TMPFILE``), or None where there is none."""
    flag = getattr(os, "O_TMPFILE", None)
    if flag is None or not os.path.exists("/proc/self/fd"):
        return None
    try:
        return os.open(folder, flag | os.O_WRONLY, 0o600)
    except OSError as error:
        if error.errno in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL):  # the filesystem has no such thing
            return None
        raise problem(path, error) from None


def _named_then_renamed(path: str, folder: str, name: str) -> Iterator[IO[bytes]]:
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
