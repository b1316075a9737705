"""What a format module declares about itself, and what every reader is given.

A format module builds one :class:`InputFormat` per format it reads (name, what it is, which
inputs it takes, what such a file must hold, how to recognise it, how to read it) and lists
them in its ``FORMATS``.  :mod:`glagcn.keypoints.registry` collects those declarations; format
modules import this module, never the registry, so no import runs in a circle.
"""

from __future__ import annotations

import json
import re
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from glagcn.keypoints.core import DetectionSet
from glagcn.keypoints.errors import KeypointInputError

FOLDER = "folder"  # an input kind of InputFormat.inputs beside the file suffixes


@dataclass(frozen=True)
class ReadOptions:
    """User choices a reader may need."""

    video_name: str | None = None  # which video of a multi-video file / folder
    first_frame_id: int | None = None  # the id the file gives the video's first frame
    layout: str | None = None  # joint layout override


class FilePeek:
    """The input path with its content parsed at most once (JSON text, npz member names)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise KeypointInputError(f"keypoint file not found: {self.path}")

    @property
    def suffix(self) -> str:
        return self.path.suffix.lower()

    @property
    def kind(self) -> str:
        """What :attr:`InputFormat.inputs` calls this input: a suffix, or :data:`FOLDER`."""
        return FOLDER if self.path.is_dir() else self.suffix

    @cached_property
    def json(self) -> Any:
        try:
            # utf-8-sig: Windows tools (PowerShell, Notepad) start JSON with a byte-order mark
            return json.loads(self.path.read_text(encoding="utf-8-sig"))
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise KeypointInputError(f"{self.path}: not valid JSON ({error})") from error
        except RecursionError:
            raise KeypointInputError(
                f"{self.path}: JSON nested too deeply to be keypoints (no detector writes that)"
            ) from None

    @cached_property
    def npz_members(self) -> list[str]:
        try:
            with zipfile.ZipFile(self.path) as archive:
                return [name[:-4] if name.endswith(".npy") else name for name in archive.namelist()]
        except (zipfile.BadZipFile, OSError) as error:
            raise KeypointInputError(f"{self.path}: not a readable npz file ({error})") from error


@dataclass(frozen=True)
class InputFormat:
    """One format's declaration.

    ``inputs``: the suffixes (``.json``, ``.npz``) and/or :data:`FOLDER` it reads.
    ``needs``: what such an input must hold to be recognised, as the error for an unrecognised
    file says it (e.g. "key 'positions_2d'").
    """

    name: str
    summary: str
    inputs: tuple[str, ...]
    needs: str
    recognise: Callable[[FilePeek], bool]
    read: Callable[[FilePeek, ReadOptions], DetectionSet]


_LAST_INTEGER = re.compile(r"(\d+)(?!.*\d)")


def frame_number_from_name(name: str) -> int | None:
    """The last integer in a file name's stem ('frame_000012.jpg' -> 12, '7.jpg' -> 7)."""
    stem = Path(str(name)).stem
    match = _LAST_INTEGER.search(stem)
    return int(match.group(1)) if match else None


def apply_first_frame(raw_ids: dict, first_frame_id: int, source: str) -> dict:
    """Raw frame ids -> 0-based video frames; an id before the first frame is an error."""
    shifted = {frame - first_frame_id: value for frame, value in raw_ids.items()}
    if shifted and min(shifted) < 0:
        raise KeypointInputError(
            f"{source}: frame id {min(raw_ids)} comes before first_frame_id={first_frame_id}"
        )
    return shifted
