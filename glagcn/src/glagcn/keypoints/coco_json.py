"""COCO-style keypoint results and AlphaPose's ``alphapose-results.json``.

Both write one JSON list with an object per detected person:
``{"image_id", "category_id": 1, "keypoints": [x, y, score] * J, "score", ...}``.

* ``coco_json``: ``image_id`` (or ``frame_index`` / ``frame``) is the frame number; a
  ``bbox`` is [x, y, w, h].  A dict with an ``annotations``/``frames``/``predictions`` list is
  read the same way.
* ``alphapose``: ``image_id`` is the frame's file name ("0.jpg", "1.jpg", ... for a video,
  counted from 0; the frame number is the last integer of the name), ``box`` is [x, y, w, h],
  ``score`` the pose-NMS proposal score (not 0..1), and ``idx`` the person id when AlphaPose
  ran with tracking (``--pose_track``/PoseFlow); without tracking ``idx`` is a placeholder list
  such as ``[0.0]`` and people are linked by box overlap.

Joint layout from the number of values: 51 = COCO-17, 78 = Halpe-26, 399 = COCO-WholeBody-133.
Scores are heatmap peaks (about 0..1); a joint scoring below 0.3 is missing (AlphaPose draws
joints above 0.4, COCO tools commonly keep those above 0.3).  (0, 0, 0) triples are joints
that were not found.
"""

from __future__ import annotations

import numpy as np

from glagcn.keypoints._build import detection_from_triples, track_id_of, xywh_to_xyxy
from glagcn.keypoints.base import (
    FilePeek,
    InputFormat,
    ReadOptions,
    apply_first_frame,
    frame_number_from_name,
)
from glagcn.keypoints.core import (
    Detection,
    DetectionSet,
    KeypointInputError,
    ScoreRule,
    numeric_array,
)
from glagcn.keypoints.layouts import get_layout

VALUE_COUNTS = {51: "coco17", 78: "halpe26", 399: "wholebody133"}
SCORE_MEANING = "heatmap peak per joint (about 0..1)"


def _entries(peek: FilePeek) -> list | None:
    if peek.suffix != ".json" or not peek.path.is_file():
        return None
    content = peek.json
    if isinstance(content, dict):
        for key in ("annotations", "frames", "predictions"):
            if isinstance(content.get(key), list):
                return content[key]
        return None
    return content if isinstance(content, list) else None


def _is_results_list(peek: FilePeek) -> bool:
    entries = _entries(peek)
    if not entries or not isinstance(entries[0], dict):
        return False
    first = entries[0]
    return "keypoints" in first and "keypoint_scores" not in first and "instances" not in first


def _looks_like_alphapose(peek: FilePeek) -> bool:
    if not _is_results_list(peek):
        return False
    sample = _entries(peek)[:50]
    return any(
        isinstance(e, dict) and ("idx" in e or "box" in e or isinstance(e.get("image_id"), str))
        for e in sample
    )


def _raw_frame(entry: dict, position: int, source: str) -> int:
    for key in ("frame_index", "frame", "image_id"):
        if key in entry:
            value = entry[key]
            break
    else:
        return position
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        if value.strip().isdigit():
            return int(value)
        number = frame_number_from_name(value)
        if number is not None:
            return number
    raise KeypointInputError(
        f"{source}: entry {position} has no frame number in its id "
        f"{value!r} (expected an integer or a file name such as '12.jpg')"
    )


def _read(peek: FilePeek, options: ReadOptions, name: str) -> DetectionSet:
    source = str(peek.path)
    entries = _entries(peek)
    if entries is None:
        raise KeypointInputError(
            f"{source}: expected a list of per-frame objects or a dict "
            "with an 'annotations'/'frames' list"
        )
    if not entries:
        raise KeypointInputError(
            f"{source}: the file lists no detections (the detector found nobody)"
        )
    layout = options.layout
    raw: dict[int, list[Detection]] = {}
    for position, entry in enumerate(entries):
        if not isinstance(entry, dict) or "keypoints" not in entry:
            raise KeypointInputError(f"{source}: entry {position} has no 'keypoints' key")
        try:
            values = (
                numeric_array(entry["keypoints"], source, f"entry {position} 'keypoints'")
                .astype(np.float64)
                .ravel()
            )
        except (TypeError, ValueError) as error:
            raise KeypointInputError(
                f"{source}: entry {position}: 'keypoints' is not a list of numbers ({error})"
            ) from None
        entry_layout = layout or VALUE_COUNTS.get(values.size)
        if entry_layout is None or values.size != 3 * get_layout(entry_layout).num_joints:
            expected = (
                f"{get_layout(layout).num_joints} x [x, y, score] = "
                f"{3 * get_layout(layout).num_joints}"
                if layout
                else "17 x [x, y, score] = 51 (COCO-17), 78 (Halpe-26) or 399 (COCO-WholeBody-133)"
            )
            raise KeypointInputError(
                f"{source}: entry {position} has {values.size} keypoint values, expected {expected}"
            )
        if layout is None:
            layout = entry_layout
        frame = _raw_frame(entry, position, source)
        box = xywh_to_xyxy(entry.get("box", entry.get("bbox")))
        score = entry.get("score")
        detection = detection_from_triples(
            values.reshape(-1, 3),
            box=box,
            box_score=float(score) if isinstance(score, (int, float)) else None,
            track_id=track_id_of(entry.get("idx", entry.get("track_id"))),
        )
        raw.setdefault(frame, [])
        if detection is not None:
            raw[frame].append(detection)
    first = 0 if options.first_frame_id is None else int(options.first_frame_id)
    frames = apply_first_frame(raw, first, source)
    notes = []
    if any(isinstance(e.get("image_id"), str) for e in entries[:50] if isinstance(e, dict)):
        notes.append(
            "frame numbers read from the image file names; the first video frame "
            f"is taken to be number {first} (first_frame_id)"
        )
    return DetectionSet(
        source, name, layout, frames, ScoreRule("absolute", 0.3), SCORE_MEANING, None, notes
    )


FORMATS = (  # alphapose first: its files are COCO results lists too
    InputFormat(
        "alphapose",
        "AlphaPose alphapose-results.json (COCO-17/Halpe-26/133; 'idx' with tracking)",
        (".json",),
        "a list of person objects with 'keypoints' and AlphaPose's 'idx', 'box' or a file name "
        "as 'image_id'",
        _looks_like_alphapose,
        lambda peek, options: _read(peek, options, "alphapose"),
    ),
    InputFormat(
        "coco_json",
        "COCO-style keypoint results: [{image_id, keypoints: [x, y, score] * 17}]",
        (".json",),
        "a list of {image_id, keypoints} objects, or a dict with an "
        "'annotations'/'frames'/'predictions' list of them",
        _is_results_list,
        lambda peek, options: _read(peek, options, "coco_json"),
    ),
)
