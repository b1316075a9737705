"""Errors a user can fix, and how entry points report them.

A :class:`UserError` means the input was wrong (a path that does not exist, a file in the wrong
format, an option that does not fit), not that the code is: entry points print its message in one
or two lines and exit with status 2, without a traceback.  Every other exception is a bug and
keeps its traceback.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

USER_ERROR_EXIT = 2


class UserError(Exception):
    """Wrong input that the user can fix; the message names the file, key or value at fault."""


# The system refuses a read or write for a reason the user can fix (a full disk or quota, a
# read-only file system, missing permissions): reported like a UserError, not as a bug.
REFUSED_BY_SYSTEM = frozenset(
    {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES, errno.EPERM}
)

# a component of the path is a file where a folder has to be: a user's path mistake when
# :func:`file_in_the_way` finds that file (an EEXIST for an existing folder is not one)
IN_THE_WAY = frozenset({errno.EEXIST, errno.ENOTDIR})


def file_in_the_way(path: str | Path) -> Path | None:
    """The nearest existing component of ``path`` (itself or a parent) when it is not a folder:
    what makes creating ``path`` as a folder, or a file inside it, fail with EEXIST/ENOTDIR."""
    for candidate in (Path(path), *Path(path).parents):
        if candidate.is_symlink() or candidate.exists():
            return None if candidate.is_dir() else candidate
    return None


def refusal_reason(error: OSError, path: str | Path | None = None) -> str | None:
    """Why the system refused an operation on ``error.filename`` (or ``path``), in words a user
    can act on ("Read-only file system", "x is a file, not a folder"); None when ``error`` is
    not one a user can fix."""
    if error.errno in IN_THE_WAY:
        where = error.filename or path
        blocker = None if where is None else file_in_the_way(where)
        return None if blocker is None else f"{blocker} is a file, not a folder"
    if error.errno in REFUSED_BY_SYSTEM:
        return os.strerror(error.errno)
    return None


class WriteError(UserError, OSError):
    """A file could not be written (full disk, read-only folder, no permission); whatever was
    at its path before is unchanged."""


@contextlib.contextmanager
def writing(path) -> Iterator[None]:
    """Name ``path`` in the error when the system refuses the writes of the block: a full disk
    raises ENOSPC from ``write()`` with no file name, which alone would not say where."""
    try:
        yield
    except OSError as error:
        if isinstance(error, UserError) or error.errno not in REFUSED_BY_SYSTEM:
            raise
        where = error.filename or path
        raise WriteError(f"cannot write {where}: {os.strerror(error.errno)}") from None


class RunStopped(Exception):  # noqa: N818 (a stop is not an error)
    """A run stopped on request (SIGTERM/SIGINT) after writing a resumable checkpoint."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def _config_errors() -> tuple[type[BaseException], ...]:
    try:
        from omegaconf.errors import ConfigAttributeError, ConfigKeyError, MissingMandatoryValue
    except ImportError:
        return ()
    return (MissingMandatoryValue, ConfigAttributeError, ConfigKeyError)


def _first_line(error: BaseException) -> str:
    lines = [line for line in str(error).splitlines() if line.strip()]
    full_key = getattr(error, "full_key", None)
    text = lines[0] if lines else type(error).__name__
    return f"{text} (key {full_key})" if full_key and full_key not in text else text


def report_user_errors(function: Callable[[], T], *, program: str | None = None) -> T:
    """Run ``function``; a :class:`UserError` becomes a short message and exit status 2.

    A stopped run (:class:`RunStopped`) exits with its signal's status (128 + signal number),
    a Ctrl-C outside a training loop with 130, both without a traceback.
    """
    prefix = f"{program}: " if program else ""
    try:
        return function()
    except _config_errors() as error:  # a missing or misspelt configuration value
        print(f"{prefix}error: configuration: {_first_line(error)}", file=sys.stderr, flush=True)
        raise SystemExit(USER_ERROR_EXIT) from None
    except UserError as error:
        print(f"{prefix}error: {error}", file=sys.stderr, flush=True)
        raise SystemExit(USER_ERROR_EXIT) from None
    except OSError as error:
        reason = refusal_reason(error)
        if reason is None:
            raise
        where = f"{error.filename}: " if error.filename else ""
        print(f"{prefix}error: {where}{reason}", file=sys.stderr, flush=True)
        raise SystemExit(USER_ERROR_EXIT) from None
    except RunStopped as stop:
        print(f"{prefix}{stop}", file=sys.stderr, flush=True)
        raise SystemExit(stop.exit_code) from None
    except KeyboardInterrupt:
        print(f"{prefix}interrupted", file=sys.stderr, flush=True)
        raise SystemExit(130) from None
