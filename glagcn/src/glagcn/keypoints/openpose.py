"""OpenPose ``--write_json`` output: one ``<video>_<frame:012d>_keypoints.json`` per frame.

Each file is ``{"version": 1.3, "people": [{"person_id": [-1], "pose_keypoints_2d": [x, y, c]
* J, "face_keypoints_2d": [...], ...}]}`` (version 1.0 wrote ``pose_keypoints``); frames are
counted from 0 and a frame without people has ``"people": []``.  J = 25 (BODY_25, the default
model) or 18 (COCO-18).  ``c`` is the part confidence in [0, 1]; a joint that was not found is
written as 0, 0, 0.  A joint below 0.05 (OpenPose's own ``render_threshold``) is missing.
Coordinates must be pixels (the default ``--keypoint_scale 0``).  ``person_id`` is -1 unless
OpenPose tracked people.

Give the folder (or one of its files); a folder with the files of several videos needs
``video_name=`` (the part before ``_<frame>_keypoints.json``).  The single-file outputs of
AlphaPose's ``--format open`` / ``--format cmu`` (a dict image name -> {"people": [...]} or
{"bodies": [{"joints": [...]}]}, COCO-18 order) are read here too.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from glagcn.keypoints._build import detection_from_triples, track_id_of
from glagcn.keypoints.base import (
    FOLDER,
    FilePeek,
    InputFormat,
    ReadOptions,
    apply_first_frame,
    frame_number_from_name,
)
from glagcn.keypoints.core import Detection, DetectionSet, KeypointInputError, ScoreRule
from glagcn.keypoints.layouts import get_layout

SCORE_MEANING = "OpenPose part confidence in [0, 1]; joints not found are written as 0, 0, 0"
VALUE_COUNTS = {75: "body25", 54: "coco18"}
_NUMBERED = re.compile(r"^(?P<prefix>.*)_(?P<frame>\d{12})_keypoints\.json$")
_ANY = re.compile(r"^(?P<prefix>.*)_keypoints\.json$")


def _frame_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and _ANY.match(p.name))


def _is_single_file_dict(peek: FilePeek) -> bool:
    if peek.suffix != ".json" or not peek.path.is_file():
        return False
    content = peek.json
    if not isinstance(content, dict):
        return False
    if "people" in content:
        return True
    first = next(iter(content.values()), None)
    return isinstance(first, dict) and ("people" in first or "bodies" in first)


def _recognise(peek: FilePeek) -> bool:
    if peek.path.is_dir():
        return bool(_frame_files(peek.path))
    return _is_single_file_dict(peek)


def _people(content: dict, source: str, layout: str | None) -> tuple[list[Detection], str | None]:
    people = content.get("people", content.get("bodies"))
    if not isinstance(people, list):
        raise KeypointInputError(f"{source}: no 'people' list")
    detections = []
    for number, person in enumerate(people):
        if not isinstance(person, dict):
            raise KeypointInputError(f"{source}: people[{number}] is not an object")
        values = person.get("pose_keypoints_2d", person.get("pose_keypoints", person.get("joints")))
        if values is None:
            raise KeypointInputError(f"{source}: people[{number}] has no 'pose_keypoints_2d'")
        values = np.asarray(values, dtype=np.float64).ravel()
        if values.size == 0:
            continue
        person_layout = layout or VALUE_COUNTS.get(values.size)
        if person_layout is None or values.size != 3 * get_layout(person_layout).num_joints:
            raise KeypointInputError(
                f"{source}: people[{number}] has {values.size} pose values, expected 75 "
                "(BODY_25: 25 x [x, y, c]) or 54 (COCO-18: 18 x [x, y, c])"
            )
        layout = person_layout
        person_id = person.get("person_id")
        if isinstance(person_id, list):
            person_id = person_id[0] if person_id else None
        detection = detection_from_triples(values.reshape(-1, 3), track_id=track_id_of(person_id))
        if detection is not None:
            detections.append(detection)
    return detections, layout


def _check_pixels(frames: dict[int, list[Detection]], source: str) -> None:
    coordinates = [
        d.keypoints[np.isfinite(d.keypoints)] for people in frames.values() for d in people
    ]
    values = np.concatenate(coordinates) if coordinates else np.zeros(0)
    if values.size >= 20 and np.abs(values).max() <= 1.0:
        raise KeypointInputError(
            f"{source}: all coordinates lie within [-1, 1]: OpenPose wrote normalised "
            "coordinates (--keypoint_scale); rerun it with --keypoint_scale 0 (pixels)"
        )


def _read_folder(
    folder: Path, files: list[Path], options: ReadOptions
) -> tuple[dict[int, list[Detection]], str | None]:
    by_prefix: dict[str, list[Path]] = {}
    for path in files:
        match = _NUMBERED.match(path.name) or _ANY.match(path.name)
        by_prefix.setdefault(match.group("prefix"), []).append(path)
    if options.video_name is not None:
        if options.video_name not in by_prefix:
            raise KeypointInputError(
                f"{folder}: no files of video_name={options.video_name!r}; "
                f"the folder has {sorted(by_prefix)}"
            )
        chosen = by_prefix[options.video_name]
    elif len(by_prefix) > 1 and all(_NUMBERED.match(p.name) for p in files):
        raise KeypointInputError(
            f"{folder} holds the frames of several videos: "
            f"{sorted(by_prefix)}; choose one with video_name=NAME"
        )
    else:
        chosen = files
    raw: dict[int, list[Detection]] = {}
    layout = options.layout
    for order, path in enumerate(sorted(chosen)):
        match = _NUMBERED.match(path.name)
        if match:
            frame = int(match.group("frame"))
        else:
            frame = frame_number_from_name(_ANY.match(path.name).group("prefix"))
            frame = order if frame is None else frame
        if frame in raw:
            raise KeypointInputError(f"{path}: a second file for frame {frame}")
        peek = FilePeek(path)
        if not isinstance(peek.json, dict):
            raise KeypointInputError(f"{path}: expected an object with a 'people' list")
        raw[frame], layout = _people(peek.json, str(path), layout)
    return raw, layout


def _read(peek: FilePeek, options: ReadOptions) -> DetectionSet:
    source = str(peek.path)
    folder = peek.path if peek.path.is_dir() else None
    if folder is None and _NUMBERED.match(peek.path.name):
        folder = peek.path.parent  # one frame file given: read its video's frames
        options = ReadOptions(
            options.video_name or _NUMBERED.match(peek.path.name)["prefix"],
            options.first_frame_id,
            options.layout,
        )
    if folder is not None:
        raw, layout = _read_folder(folder, _frame_files(folder), options)
        source = str(folder)
    else:
        content = peek.json if peek.suffix == ".json" else None
        if not isinstance(content, dict):
            raise KeypointInputError(
                f"{source}: expected an OpenPose folder or frame file (an "
                "object with a 'people' list)"
            )
        if "people" in content:  # one OpenPose frame file on its own
            detections, layout = _people(content, source, options.layout)
            raw = {0: detections}
        else:  # AlphaPose --format open / cmu: image name -> frame
            raw, layout = {}, options.layout
            for position, (name, frame_content) in enumerate(content.items()):
                number = frame_number_from_name(name)
                raw[position if number is None else number], layout = _people(
                    frame_content, f"{source}[{name!r}]", layout
                )
    if layout is None:
        raise KeypointInputError(f"{source}: no person in any frame")
    first = 0 if options.first_frame_id is None else int(options.first_frame_id)
    frames = apply_first_frame(raw, first, source)
    _check_pixels(frames, source)
    return DetectionSet(
        source, "openpose", layout, frames, ScoreRule("absolute", 0.05), SCORE_MEANING
    )


FORMATS = (
    InputFormat(
        "openpose",
        "OpenPose --write_json folder (BODY_25 / COCO-18), one file per frame",
        (".json", FOLDER),
        "an OpenPose folder of '*_keypoints.json' files or a frame file (an object with a "
        "'people' list)",
        _recognise,
        _read,
    ),
)
