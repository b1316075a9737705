"""The input formats: detection from the file itself, ``format=`` to override, one reader each.

Each format module registers an :class:`InputFormat` (name, what it is, how to recognise it,
how to read it).  :func:`read_detections` finds the format and returns a
:class:`~glagcn.keypoints.core.DetectionSet`.
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

from glagcn.keypoints.core import DetectionSet, KeypointInputError


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
    name: str
    summary: str
    recognise: Callable[[FilePeek], bool]
    read: Callable[[FilePeek, ReadOptions], DetectionSet]


FORMATS: dict[str, InputFormat] = {}


def register(input_format: InputFormat) -> InputFormat:
    FORMATS[input_format.name] = input_format
    return input_format


def _load_all() -> None:
    # Importing the modules registers their formats (order = detection order).
    from glagcn.keypoints import (  # noqa: F401
        coco_json,
        mmpose,
        native,
        openpose,
        videopose3d,
    )


def detect_format(peek: FilePeek) -> InputFormat:
    _load_all()
    for input_format in FORMATS.values():
        if input_format.recognise(peek):
            return input_format
    if peek.suffix == ".npz":
        raise KeypointInputError(
            f"{peek.path}: not a keypoint npz this reader knows: missing key 'keypoints' (this "
            "project's npz), 'positions_2d' (VideoPose3D data_2d_custom) or 'boxes' + "
            f"'keypoints' (VideoPose3D's detectron2 output); found {sorted(peek.npz_members)}"
        )
    if peek.suffix == ".json":
        content = peek.json
        if isinstance(content, list) and not content:
            raise KeypointInputError(
                f"{peek.path}: the file lists no detections (an empty "
                "list: the detector found nobody)"
            )
        if isinstance(content, list) and content and isinstance(content[0], dict):
            raise KeypointInputError(
                f"{peek.path}: entry 0 has no 'keypoints' key (keys: {sorted(content[0])})"
            )
        raise KeypointInputError(
            f"{peek.path}: expected a list of per-frame objects (COCO/AlphaPose results, "
            "MMPose predictions), an OpenPose frame file or a dict with an "
            "'annotations'/'frames' list"
        )
    if peek.path.is_dir():
        raise KeypointInputError(f"{peek.path}: a folder without OpenPose '*_keypoints.json' files")
    raise KeypointInputError(
        f"{peek.path}: unsupported keypoint file type {peek.suffix!r} "
        "(expected .json, .npz or an OpenPose folder)"
    )


def read_detections(
    path: str | Path,
    format: str | None = None,  # noqa: A002
    options: ReadOptions | None = None,
) -> DetectionSet:
    """Read any supported keypoint file (``format=None``: recognised from the content)."""
    _load_all()
    peek = FilePeek(path)
    options = options or ReadOptions()
    if format is None:
        input_format = detect_format(peek)
    elif format in FORMATS:
        input_format = FORMATS[format]
    else:
        raise KeypointInputError(f"unknown format={format!r}; known formats: {', '.join(FORMATS)}")
    try:
        detections = input_format.read(peek, options)
    except KeypointInputError:
        raise
    except MALFORMED_CONTENT as error:  # a value of the wrong type or shape somewhere inside
        raise KeypointInputError(
            f"{peek.path}: malformed {input_format.name} file: {type(error).__name__}: {error}"
        ) from error
    if not detections.frames:
        raise KeypointInputError(f"{peek.path}: no frames found")
    detections.validate()
    return detections


# What readers raise on content of the wrong type (a string where numbers belong, a list
# where a dict does, NaN sizes): the file is at fault, so the user gets one line naming it.
MALFORMED_CONTENT = (
    TypeError,
    ValueError,
    KeyError,
    AttributeError,
    IndexError,
    OverflowError,
    RecursionError,
)


def format_table() -> str:
    _load_all()
    return "\n".join(f"{f.name:<12} {f.summary}" for f in FORMATS.values())


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
