"""Errors a user can fix (wrong file, empty folder, wrong checkpoint stage).

They derive from ``trilab.errors.UserError`` so that the entry points print one line and exit
with status 2 instead of a traceback.
"""

from __future__ import annotations

import pickle
import re
from pathlib import Path
from typing import Any

import torch

try:
    from trilab.errors import UserError
except ImportError:  # trilab before its errors module: a plain exception, same message

    class UserError(Exception):  # type: ignore[no-redef]
        """Wrong input that the user can fix."""


class DragInputError(UserError, ValueError):
    """An input file, folder or option the DRAG tools cannot use; the message names it."""


class MissingFileError(DragInputError, FileNotFoundError):
    """A file or folder the user named (or an earlier stage should have written) is absent."""


class WrongStageError(DragInputError):
    """A checkpoint of another stage of the recipe than the one a tool needs."""


class NoImagesError(DragInputError):
    """A folder without a single image file."""


def load_tensor_file(path: str | Path, what: str = "file") -> Any:
    """``torch.load(weights_only=True)`` with errors that name the file.

    Only tensors and plain Python data are admitted: a file whose unpickling would construct
    anything else (and so could run code) is refused before any of it runs.
    """
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"{what} not found: {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        refused = re.search(r"GLOBAL\s+([\w.]+)", str(error))
        if refused is None:
            raise DragInputError(f"{path}: unreadable {what} ({error})") from None
        raise DragInputError(
            f"{path}: refused to load {what}: it asks for {refused.group(1)}, which could run "
            "code (files are read with torch.load(weights_only=True): tensors and plain data only)"
        ) from None
    except Exception as error:  # truncated zip, wrong magic number, EOF ...
        raise DragInputError(f"{path}: unreadable {what} ({error})") from None
