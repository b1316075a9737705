"""Entry points: a folder that cannot be created or written is a user's mistake, not a bug.

Hydra creates the run folder (``hydra.run.dir``; ``hydra.sweep.dir`` under ``--multirun``) and
writes ``.hydra/*.yaml`` and its log file into it *before* the task function runs, so before
:func:`trilab.errors.report_user_errors` can see anything: a read-only mount or a file in the
way ended in Hydra's traceback and exit status 1.  :func:`main`, a drop-in for ``hydra.main``,
adds a Hydra callback (:class:`RunFolderCheck`, Hydra's own hook into a run's start) that
creates that folder from the composed configuration and checks that it can be written, just
before Hydra does; a refusal ends the program with one line and exit status 2::

    train.py: error: cannot create run folder /mnt/ro/run: Read-only file system

A disk that fills between that check and Hydra's own ``.hydra/*.yaml`` writes is answered the
same way (:func:`hydra_config_writes_refused_in_one_line`).

:func:`ensure_folder` does the same for an output folder a project creates itself (a
predictions file's folder, a figures folder, a converter's target).
"""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import hydra
from hydra.experimental.callback import Callback

from trilab.errors import USER_ERROR_EXIT, UserError, refusal_reason, report_user_errors


class FolderError(UserError):
    """A folder could not be created or written; the message names it and says why."""


def folder_refusal(folder: str | Path, error: OSError) -> str | None:
    """Why ``folder`` could not be created or written, in words ("Read-only file system",
    "x is a file, not a folder"), or None when ``error`` is not one a user can fix."""
    if error.errno == errno.ENAMETOOLONG:
        return os.strerror(error.errno)
    return refusal_reason(error, folder)


def ensure_folder(folder: str | Path, role: str = "output folder") -> Path:
    """Create ``folder`` (and its parents) unless it exists, and check that a file can be
    written in it.  A refusal the user can fix (read-only, no permission, no space, a file in
    the way) raises :class:`FolderError` "cannot create|write to ROLE FOLDER: REASON"."""
    folder = Path(folder)
    action = "create"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        action = "write to"
        # a real write meets whatever refuses the later ones (a read-only mount, permissions,
        # ACLs, root squashed on NFS), which os.access would only guess
        with tempfile.TemporaryFile(dir=folder, prefix=".write-check-"):
            pass
    except OSError as error:
        reason = folder_refusal(folder, error)
        if reason is None:
            raise
        raise FolderError(f"cannot {action} {role} {folder}: {reason}") from None
    return folder


class RunFolderRefused(BaseException):  # noqa: N818 (it ends the program; not an error class)
    """Raised by :class:`RunFolderCheck` and turned into one line and exit 2 by :func:`main`.

    A BaseException on purpose: Hydra turns an ``Exception`` raised by a callback into a
    warning and goes on to fail in ``mkdir`` itself."""


class RunFolderCheck(Callback):
    """Hydra callback: create the run (or sweep) folder Hydra is about to create, and check it
    can be written.  Reads the folder from the composed configuration Hydra then uses (a
    ``${now:...}`` in it is resolved once and cached, so both name the same folder)."""

    def on_run_start(self, config, **_: Any) -> None:
        folder = Path(str(config.hydra.run.dir))
        subdir = config.hydra.output_subdir
        self._check(folder, folder / str(subdir) if subdir is not None else folder)

    def on_multirun_start(self, config, **_: Any) -> None:
        folder = Path(str(config.hydra.sweep.dir))
        self._check(folder, folder)

    @staticmethod
    def _check(run_folder: Path, deepest: Path) -> None:
        try:
            ensure_folder(run_folder, "run folder")
            if deepest != run_folder:
                ensure_folder(deepest, "run folder")
        except FolderError as error:
            raise RunFolderRefused(str(error)) from None


@contextlib.contextmanager
def hydra_config_writes_refused_in_one_line() -> Iterator[None]:
    """While a run starts, a refused write of Hydra's own ``.hydra/*.yaml`` (a disk that filled
    after :class:`RunFolderCheck` looked) ends the program like a refused folder, not in
    Hydra's traceback.  Hydra writes them through ``hydra.core.utils._save_config`` (1.3), which
    is wrapped for the run; a Hydra without it is left alone."""
    import hydra.core.utils as hydra_utils

    original = getattr(hydra_utils, "_save_config", None)
    if original is None:
        yield
        return

    @functools.wraps(original)
    def save_config(cfg, filename, output_dir):
        try:
            original(cfg, filename, output_dir)
        except OSError as error:
            reason = folder_refusal(Path(output_dir), error)
            if reason is None:
                raise
            raise RunFolderRefused(
                f"cannot write {Path(output_dir) / filename}: {reason}"
            ) from None

    hydra_utils._save_config = save_config
    try:
        yield
    finally:
        hydra_utils._save_config = original


# added to the command line's Hydra overrides, so that every entry point has the callback
# whatever its configuration files say (Hydra reads callbacks from the configuration only)
CALLBACK_OVERRIDE = f"++hydra.callbacks.trilab_run_folder._target_={__name__}.RunFolderCheck"


def main(
    *,
    config_path: str | None,
    config_name: str | None,
    program: str,
    version_base: str = "1.3",
) -> Callable[[Callable[[Any], Any]], Callable[[], None]]:
    """``hydra.main`` for this repository's entry points: the task runs under
    :func:`~trilab.errors.report_user_errors` (a user's mistake is one line and exit 2), and a
    run folder that cannot be created or written is answered the same way, before Hydra's own
    traceback would be.  ``program`` names the command in those lines (``train.py``)."""

    def decorator(task: Callable[[Any], Any]) -> Callable[[], None]:
        # wraps: Hydra finds config_path relative to the file of the function it unwraps to
        @functools.wraps(task)
        def reported_task(cfg):
            return report_user_errors(lambda: task(cfg), program=program)

        hydra_main = hydra.main(
            version_base=version_base, config_path=config_path, config_name=config_name
        )(reported_task)

        @functools.wraps(task)
        def entry_point() -> None:
            command_line = sys.argv
            sys.argv = [*command_line, CALLBACK_OVERRIDE]
            try:
                with hydra_config_writes_refused_in_one_line():
                    hydra_main()
            except RunFolderRefused as refused:
                print(f"{program}: error: {refused}", file=sys.stderr, flush=True)
                raise SystemExit(USER_ERROR_EXIT) from None
            finally:
                sys.argv = command_line

        return entry_point

    return decorator
