"""Errors a user can fix (wrong file, empty folder, wrong checkpoint stage).

They derive from ``trilab.errors.UserError``: the entry points print one line and exit with
status 2 instead of a traceback.
"""

from __future__ import annotations

from trilab.errors import UserError


class DragInputError(UserError, ValueError):
    """An input file, folder or option the DRAG tools cannot use; the message names it."""


class MissingFileError(DragInputError, FileNotFoundError):
    """A file or folder the user named (or an earlier stage should have written) is absent."""


class WrongStageError(DragInputError):
    """A checkpoint of another stage of the recipe than the one a tool needs."""


class NoImagesError(DragInputError):
    """A folder without a single image file."""


__all__ = ["DragInputError", "MissingFileError", "NoImagesError", "UserError", "WrongStageError"]
