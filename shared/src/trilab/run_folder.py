"""One run per folder: a folder that holds a run is continued or replaced only on request, and
never by two runs at once.

A training run claims its folder for its whole life (:func:`claim_run_folder`):

* a folder that already holds a run (a checkpoint, or logged scalars) is refused unless the run
  continues it (``resume=true``) or replaces it (``overwrite=true``, which removes the old run's
  files first);
* an exclusive ``flock`` on ``<folder>/.lock`` refuses a second run started in the same folder
  while the first is alive (the kernel drops the lock when its process dies, however it dies);
* temporary files of checkpoint writes that were killed before their rename are removed.

Under ``torchrun`` every rank checks the folder, and rank 0 alone locks and changes it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path

from trilab.atomic import remove_stale_temporaries
from trilab.errors import UserError
from trilab.run_files import LOCK_FILE, RUN_FILES, RUN_RECORDS


class RunFolderError(UserError):
    """The run folder holds another run, is in use, or cannot be written."""


def recorded_run(folder: Path, records: Sequence[str] = RUN_RECORDS) -> Path | None:
    """The first of ``records`` that ``folder`` holds (an empty file does not count)."""
    for name in records:
        path = folder / name
        if path.is_file() and path.stat().st_size > 0:
            return path
    return None


@contextlib.contextmanager
def claim_run_folder(
    folder: str | Path,
    *,
    resume: bool,
    overwrite: bool,
    ctx=None,
    records: Sequence[str] = RUN_RECORDS,
    run_files: Sequence[str] = RUN_FILES,
) -> Iterator[Path]:
    """Hold ``folder`` for one run, from its first check to the end of the ``with`` block.

    ``records``: the files (relative to ``folder``) that show it holds a run; ``run_files``:
    the files and folders ``overwrite`` removes.  Stale temporary files are cleared in
    ``folder`` and in the folders of ``records``.
    """
    folder = Path(folder)
    if resume and overwrite:
        raise RunFolderError(
            "resume=true and overwrite=true exclude each other: continue the "
            f"run in {folder} or replace it, not both"
        )
    found = recorded_run(folder, records)
    if found is not None and not (resume or overwrite):
        raise RunFolderError(
            f"{folder} already holds a run ({found.relative_to(folder)}): continue it with "
            "resume=true, or replace it with overwrite=true"
        )
    main = ctx is None or ctx.is_main
    _barrier(ctx)  # every rank has looked before rank 0 changes anything
    lock = None
    if main:
        lock = _lock(folder)
        if overwrite:
            for name in run_files:
                _remove(folder / name)
        for directory in {folder, *((folder / name).parent for name in records)}:
            remove_stale_temporaries(directory)
    _barrier(ctx)
    try:
        yield folder
    finally:
        if lock is not None:
            os.close(lock)  # releases the flock


def _barrier(ctx) -> None:
    if ctx is not None:
        ctx.barrier()


def _lock(folder: Path) -> int:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(folder / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as error:
        raise RunFolderError(f"cannot write to the run folder {folder}: {error.strerror}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 32).decode(errors="replace").strip()
        os.close(fd)
        by = f" (process {holder})" if holder else ""
        raise RunFolderError(
            f"{folder} is in use by another run{by}: wait for it to end, or "
            "choose another hydra.run.dir"
        ) from None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()
