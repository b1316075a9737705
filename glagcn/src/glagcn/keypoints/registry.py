"""The input formats: detection from the file itself, ``format=`` to override, one reader each.

Each format module declares its formats (:class:`~glagcn.keypoints.base.InputFormat`: name,
what it is, the inputs it takes, what they must hold, how to recognise and read them) in its
``FORMATS``; this module collects them, finds the format of a file and returns a
:class:`~glagcn.keypoints.core.DetectionSet`.  The error for a file no format recognises is
written from the declarations.
"""

from __future__ import annotations

from pathlib import Path

from glagcn.keypoints import coco_json, mmpose, native, openpose, videopose3d
from glagcn.keypoints.base import FOLDER, FilePeek, InputFormat, ReadOptions
from glagcn.keypoints.core import DetectionSet
from glagcn.keypoints.errors import KeypointInputError

# Detection order: the first format that recognises a file reads it.  It matters where two
# recognisers accept one file: an AlphaPose results file is also a COCO results list, so
# coco_json declares alphapose first.
FORMATS: dict[str, InputFormat] = {
    input_format.name: input_format
    for module in (coco_json, mmpose, native, openpose, videopose3d)
    for input_format in module.FORMATS
}

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


def _either(choices: list[str]) -> str:
    return choices[0] if len(choices) == 1 else f"{', '.join(choices[:-1])} or {choices[-1]}"


def _what_formats_need(kind: str) -> str:
    needs = [f"{f.needs} ({f.name})" for f in FORMATS.values() if kind in f.inputs]
    return needs[0] if len(needs) == 1 else "one of: " + "; ".join(needs)


def unrecognised(peek: FilePeek) -> KeypointInputError:
    """The error for an input no format recognises: what each format of its kind needs."""
    kind = peek.kind
    if kind == ".npz":
        return KeypointInputError(
            f"{peek.path}: not a keypoint npz this reader knows: expected "
            f"{_what_formats_need(kind)}; found keys {sorted(peek.npz_members)}"
        )
    if kind == ".json":
        content = peek.json
        if isinstance(content, list) and not content:
            return KeypointInputError(
                f"{peek.path}: the file lists no detections (an empty list: the detector found "
                "nobody)"
            )
        if isinstance(content, list) and isinstance(content[0], dict):
            return KeypointInputError(
                f"{peek.path}: entry 0 has no 'keypoints' key (keys: {sorted(content[0])})"
            )
        return KeypointInputError(f"{peek.path}: expected {_what_formats_need(kind)}")
    if kind == FOLDER:
        return KeypointInputError(
            f"{peek.path}: a folder no format recognises: expected {_what_formats_need(kind)}"
        )
    kinds = sorted({k for f in FORMATS.values() for k in f.inputs} - {FOLDER})
    if any(FOLDER in f.inputs for f in FORMATS.values()):
        kinds.append("a folder")
    return KeypointInputError(
        f"{peek.path}: unsupported keypoint file type {peek.suffix!r} (expected {_either(kinds)})"
    )


def detect_format(peek: FilePeek) -> InputFormat:
    for input_format in FORMATS.values():
        if input_format.recognise(peek):
            return input_format
    raise unrecognised(peek)


def read_detections(
    path: str | Path,
    format: str | None = None,  # noqa: A002
    options: ReadOptions | None = None,
) -> DetectionSet:
    """Read any supported keypoint file (``format=None``: recognised from the content)."""
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


def format_table() -> str:
    return "\n".join(f"{f.name:<12} {f.summary}" for f in FORMATS.values())
