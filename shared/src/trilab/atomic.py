"""Atomic file writes: a file is written whole or not at all, for checkpoints and every other
file a run leaves (metrics, predictions, artefacts).

A write goes to a temporary file beside the target, is flushed and fsync'ed, then renamed over
the target, so a run killed mid-write, or a full disk, leaves the previous file intact (and, for
a kill, a temporary file that :func:`remove_stale_temporaries` clears when the next run starts).
A write the system refuses (full disk, quota, read-only folder, no permission) becomes one
:class:`~trilab.errors.WriteError` naming the file, however the writer reports it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import torch

from trilab.errors import WriteError, refusal_reason

# ".<target name>.<8 random characters>.tmp"
TEMPORARY_NAME = re.compile(r"^\..+\.[0-9a-f]{8}\.tmp$")

# torch's zip writer (caffe2's inline_container.cc) reports a write its file object refused as
# "[enforce fail at inline_container.cc:...] . unexpected pos ...", keeping the OSError only as
# the exception's context
TORCH_WRITER_FAILURE = "inline_container"


def _create_temporary(path: Path) -> tuple[int, Path]:
    """An exclusive new file beside ``path``, with the mode the umask gives (mkstemp's is 0600:
    a checkpoint others in the group cannot read)."""
    while True:
        candidate = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            return os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), candidate
        except FileExistsError:
            continue


def _refused_write(error: BaseException, folder: Path) -> str | None:
    """Why the system refused the write, in words (:func:`~trilab.errors.refusal_reason`), for
    an ``OSError`` or for torch's zip-writer ``RuntimeError`` (whose context holds the refused
    write); ``None`` for anything else (a bug)."""
    if isinstance(error, OSError):
        return refusal_reason(error, folder)
    if not (isinstance(error, RuntimeError) and TORCH_WRITER_FAILURE in str(error)):
        return None
    cause = error.__cause__ or error.__context__
    while cause is not None:
        if isinstance(cause, OSError):
            return refusal_reason(cause, folder)
        cause = cause.__cause__ or cause.__context__
    with contextlib.suppress(OSError):  # a short write without an OSError: a full disk?
        if os.statvfs(folder).f_bavail == 0:
            return os.strerror(errno.ENOSPC)
    return None


def atomic_write(path: str | Path, write: Callable[[BinaryIO], Any]) -> Path:
    """Call ``write`` with a binary handle to a temporary file beside ``path``, then rename it to
    ``path``: a kill or a full disk leaves the file that was there before, never half of one."""
    path = Path(path)
    tmp: Path | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = _create_temporary(path)
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as error:
        if tmp is not None:
            with contextlib.suppress(OSError):  # a read-only folder refuses this too
                tmp.unlink(missing_ok=True)
        reason = _refused_write(error, path.parent)
        if reason is not None:
            raise WriteError(
                f"cannot write {path}: {reason}; the file there before (if any) is unchanged"
            ) from None
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # make the rename itself durable
    finally:
        os.close(dir_fd)
    return path


def atomic_save(obj: Any, path: str | Path) -> Path:
    """``torch.save`` that never leaves a half-written file at ``path``: the one way this
    repository writes a torch file (checkpoints, artefacts, converted weights)."""
    return atomic_write(path, lambda handle: torch.save(obj, handle))


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write(path, lambda handle: handle.write(text.encode("utf-8")))


def remove_stale_temporaries(folder: str | Path) -> list[Path]:
    """Delete the temporary files of atomic writes that were killed before their rename.

    Only safe while no other process writes into ``folder`` (a run holding its folder's lock).
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    stale = [p for p in folder.iterdir() if TEMPORARY_NAME.match(p.name) and p.is_file()]
    for path in stale:
        path.unlink(missing_ok=True)
    return stale
