"""This project's npz: ``keypoints`` (T, J, 2|3) pixels (x, y[, score]), optional
``frame_indices`` (T,), ``layout`` (a name of :data:`glagcn.keypoints.layouts.LAYOUTS`,
default ``coco17``) and ``image_size`` (width, height).  With scores, a joint below 0.3 is
missing; without, only NaN joints are."""

from __future__ import annotations

import numpy as np

from glagcn.keypoints._build import detection_from_arrays
from glagcn.keypoints.base import FilePeek, InputFormat, ReadOptions
from glagcn.keypoints.core import (
    Detection,
    DetectionSet,
    KeypointInputError,
    ScoreRule,
    checked_image_size,
    numeric_array,
)
from glagcn.keypoints.layouts import get_layout
from trilab.safe_load import load_npz


def _recognise(peek: FilePeek) -> bool:
    if peek.suffix != ".npz" or not peek.path.is_file():
        return False
    members = set(peek.npz_members)
    return "keypoints" in members and "boxes" not in members


def _read(peek: FilePeek, options: ReadOptions) -> DetectionSet:
    source = str(peek.path)
    arrays = load_npz(peek.path)
    if "keypoints" not in arrays:
        raise KeypointInputError(f"{source}: missing key 'keypoints' (found {sorted(arrays)})")
    layout = options.layout or (str(arrays["layout"]) if "layout" in arrays else "coco17")
    joints = get_layout(layout).num_joints
    keypoints = numeric_array(arrays["keypoints"], source, "key 'keypoints'")
    if (
        keypoints.dtype == object
        or keypoints.ndim != 3
        or keypoints.shape[1] != joints
        or keypoints.shape[2] not in (2, 3)
    ):
        raise KeypointInputError(
            f"{source}: key 'keypoints' must have shape (T, {joints}, 2|3), got {keypoints.shape}"
        )
    keypoints = keypoints.astype(np.float32)
    frames = (
        np.asarray(arrays["frame_indices"]).astype(np.int64)
        if "frame_indices" in arrays
        else np.arange(len(keypoints), dtype=np.int64)
    )
    if frames.shape != (len(keypoints),):
        raise KeypointInputError(
            f"{source}: 'frame_indices' has shape {frames.shape}, expected ({len(keypoints)},)"
        )
    if len(np.unique(frames)) != len(frames) or (frames < 0).any():
        raise KeypointInputError(f"{source}: 'frame_indices' must be distinct and >= 0")
    has_scores = keypoints.shape[2] == 3
    scores = (
        keypoints[..., 2] if has_scores else np.full(keypoints.shape[:2], np.nan, dtype=np.float32)
    )
    first = 0 if options.first_frame_id is None else int(options.first_frame_id)
    detections: dict[int, list[Detection]] = {}
    for row, frame in enumerate(frames.tolist()):
        if frame - first < 0:
            raise KeypointInputError(f"{source}: frame {frame} comes before first_frame_id={first}")
        detection = detection_from_arrays(keypoints[row, :, :2], scores[row], track_id=0)
        detections[frame - first] = [] if detection is None else [detection]
    size = None
    if "image_size" in arrays:
        # checked here, where the key can be named: int() of NaN or of text said neither
        size = checked_image_size(
            np.asarray(arrays["image_size"]).ravel()[:2].tolist(), f"{source}: key 'image_size'"
        )
    rule = ScoreRule("absolute", 0.3) if has_scores else ScoreRule("none", 0.0)
    return DetectionSet(
        source,
        "npz",
        layout,
        detections,
        rule,
        "the file's per-joint score" if has_scores else "none",
        size,
    )


FORMATS = (
    InputFormat(
        "npz",
        "this project's npz (keypoints (T, J, 2|3), frame_indices, layout)",
        (".npz",),
        "key 'keypoints' without 'boxes'",
        _recognise,
        _read,
    ),
)
