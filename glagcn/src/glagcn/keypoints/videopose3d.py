"""VideoPose3D's in-the-wild files: ``data_2d_custom_<name>.npz`` and detectron2 per-video npz.

``videopose3d`` -- written by VideoPose3D's ``data/prepare_data_2d_custom.py``:
``positions_2d`` = {video name: {"custom": [(T, 17, 2) float32 pixels]}} and ``metadata`` =
{"layout_name": "coco", "num_joints": 17, "keypoints_symmetry": [...], "video_metadata":
{video name: {"w": W, "h": H}}}, both pickled dicts (0-d object arrays).  Frames without a
detection were already filled by linear interpolation and there are no scores, so no joint is
"missing" here.  A file with several videos needs ``video_name=``.  Files written by this
project add ``scores_2d`` in the same nesting (NaN where the person was not detected), which
restores the gaps.

``detectron2`` -- written by VideoPose3D's ``inference/infer_video_d2.py`` (and Detectron1's
``infer_simple.py`` before it): ``boxes`` and ``keypoints`` hold one entry per frame, each a
per-class list ``[[], person]`` (class 1 = person) where ``person`` is ``[]`` for an empty frame
or an array: boxes (N, 5) = x1, y1, x2, y2, score; keypoints (N, 4, 17) with rows x, y, logit,
prob in COCO-17 order; ``segments`` is None per frame; ``metadata`` = {"w": W, "h": H}.
detectron2 writes a dummy 0 logit and its keypoint score as "prob": a spatial softmax over the
heatmap, not a 0..1 confidence (good joints often score far below 0.3).  Like VideoPose3D, no
joint is dropped by its score here (``score_rule=none``; ``relative`` is the other sensible
choice); files from this project's torchvision detector hold the heatmap logit in row 2 and
NaN in row 3.

Object arrays are decoded with :func:`trilab.safe_load.load_npz` (data only, no code).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from glagcn.keypoints._build import detection_from_arrays, xyxy
from glagcn.keypoints.base import (
    FilePeek,
    InputFormat,
    ReadOptions,
    apply_first_frame,
)
from glagcn.keypoints.core import (
    Detection,
    DetectionSet,
    KeypointInputError,
    ScoreRule,
    numeric_array,
)
from glagcn.keypoints.layouts import COCO17_JOINTS
from trilab.safe_load import load_npz

CUSTOM_LAYOUTS = {"coco": "coco17", "h36m": "h36m17"}
COCO_METADATA = {
    "layout_name": "coco",
    "num_joints": 17,
    "keypoints_symmetry": [[1, 3, 5, 7, 9, 11, 13, 15], [2, 4, 6, 8, 10, 12, 14, 16]],
}
D2_SCORE_MEANING = (
    "detectron2 keypoint 'prob' (spatial softmax at the heatmap peak; not a "
    "0..1 confidence), or the heatmap logit where 'prob' is NaN"
)


def _item(array: np.ndarray, key: str, source: str):
    """The Python object inside a pickled 0-d object array."""
    if not isinstance(array, np.ndarray) or array.dtype != object or array.shape != ():
        raise KeypointInputError(
            f"{source}: key {key!r} should hold a pickled dict "
            f"(0-d object array), found {getattr(array, 'dtype', '?')} "
            f"{getattr(array, 'shape', '')}"
        )
    return array.item()


def _require(arrays: dict, keys: tuple[str, ...], source: str) -> None:
    missing = [key for key in keys if key not in arrays]
    if missing:
        raise KeypointInputError(f"{source}: missing key {missing[0]!r} (found {sorted(arrays)})")


def _size(metadata, source: str) -> tuple[int, int] | None:
    if isinstance(metadata, dict) and "w" in metadata and "h" in metadata:
        try:
            return int(metadata["w"]), int(metadata["h"])
        except (TypeError, ValueError):
            raise KeypointInputError(
                f"{source}: metadata w/h are not integers: {metadata}"
            ) from None
    return None


# --- data_2d_custom -------------------------------------------------------------------------


def _read_custom(peek: FilePeek, options: ReadOptions) -> DetectionSet:
    source = str(peek.path)
    arrays = load_npz(peek.path)
    _require(arrays, ("positions_2d", "metadata"), source)
    positions = _item(arrays["positions_2d"], "positions_2d", source)
    metadata = _item(arrays["metadata"], "metadata", source)
    if not isinstance(positions, dict) or not positions:
        raise KeypointInputError(f"{source}: positions_2d is empty or not a dict")
    videos = sorted(positions)
    if options.video_name is not None:
        if options.video_name not in positions:
            raise KeypointInputError(
                f"{source}: no video_name={options.video_name!r}; the file holds {videos}"
            )
        video = options.video_name
    elif len(videos) > 1:
        raise KeypointInputError(
            f"{source} holds {len(videos)} videos: {videos}; choose one with video_name=NAME"
        )
    else:
        video = videos[0]
    entry = positions[video]
    if not isinstance(entry, dict) or "custom" not in entry:
        raise KeypointInputError(
            f"{source}: positions_2d[{video!r}] has no 'custom' entry: this is not the "
            "in-the-wild layout (video -> {'custom': [array]}); dataset files (subject -> "
            "action -> cameras) are for training"
        )
    keypoints = numeric_array(
        entry["custom"][0], source, f"positions_2d[{video!r}]['custom'][0]"
    ).astype(np.float32)
    layout_name = metadata.get("layout_name") if isinstance(metadata, dict) else None
    layout = options.layout or CUSTOM_LAYOUTS.get(layout_name)
    if layout is None:
        raise KeypointInputError(
            f"{source}: metadata layout_name {layout_name!r} is not one of {sorted(CUSTOM_LAYOUTS)}"
        )
    joints = int(metadata.get("num_joints", 17))
    if keypoints.ndim != 3 or keypoints.shape[1:] != (joints, 2) or joints != 17:
        raise KeypointInputError(
            f"{source}: positions_2d[{video!r}]['custom'][0] has shape "
            f"{keypoints.shape}; expected (T, 17, 2) for layout "
            f"{layout_name!r} with num_joints {joints}"
        )
    scores = np.full(keypoints.shape[:2], np.nan, dtype=np.float32)
    if "scores_2d" in arrays:
        stored = np.asarray(
            _item(arrays["scores_2d"], "scores_2d", source)[video]["custom"][0], dtype=np.float32
        )
        if stored.shape != scores.shape:
            raise KeypointInputError(
                f"{source}: scores_2d has shape {stored.shape}, expected {scores.shape}"
            )
        scores = stored
        present = np.isfinite(scores).any(axis=1)
    else:
        present = np.ones(len(keypoints), dtype=bool)
    frames: dict[int, list[Detection]] = {}
    for frame in range(len(keypoints)):
        detection = (
            detection_from_arrays(keypoints[frame], scores[frame], track_id=0)
            if present[frame]
            else None
        )
        frames[frame] = [] if detection is None else [detection]
    video_sizes = metadata.get("video_metadata", {}) if isinstance(metadata, dict) else {}
    return DetectionSet(
        source,
        "videopose3d",
        layout,
        frames,
        ScoreRule("none", 0.0),
        "none (positions only)",
        _size(video_sizes.get(video), source),
        [f"video {video!r}"],
    )


# --- detectron2 per-video npz ---------------------------------------------------------------


def _person_entry(per_class, frame: int, key: str, source: str):
    """The person-class entry of one frame: index 1 of the per-class list."""
    try:
        return per_class[1]
    except (IndexError, KeyError, TypeError):
        raise KeypointInputError(
            f"{source}: {key}[{frame}] is not a per-class list [[], person]"
        ) from None


def _read_detectron(peek: FilePeek, options: ReadOptions) -> DetectionSet:
    source = str(peek.path)
    arrays = load_npz(peek.path)
    _require(arrays, ("boxes", "keypoints"), source)
    boxes, keypoints = arrays["boxes"], arrays["keypoints"]
    if boxes.ndim == 0 or keypoints.ndim == 0:
        raise KeypointInputError(f"{source}: 'boxes' and 'keypoints' must hold one entry per frame")
    if len(boxes) != len(keypoints):
        raise KeypointInputError(
            f"{source}: {len(boxes)} frames of boxes but {len(keypoints)} of keypoints"
        )
    metadata = _item(arrays["metadata"], "metadata", source) if "metadata" in arrays else None
    raw: dict[int, list[Detection]] = {}
    for frame in range(len(boxes)):
        frame_boxes = _person_entry(boxes[frame], frame, "boxes", source)
        frame_keypoints = _person_entry(keypoints[frame], frame, "keypoints", source)
        if len(frame_boxes) == 0 or len(frame_keypoints) == 0:
            raw[frame] = []
            continue
        try:
            frame_boxes = np.asarray(frame_boxes, dtype=np.float64)
            frame_keypoints = numeric_array(
                frame_keypoints, source, f"frame {frame} keypoints"
            ).astype(np.float64)
        except (TypeError, ValueError) as error:
            raise KeypointInputError(
                f"{source}: frame {frame}: boxes/keypoints are not numeric arrays ({error})"
            ) from None
        if (
            frame_boxes.ndim != 2
            or frame_boxes.shape[1] < 4
            or frame_keypoints.ndim != 3
            or frame_keypoints.shape[1] not in (3, 4)
            or len(frame_boxes) != len(frame_keypoints)
        ):
            raise KeypointInputError(
                f"{source}: frame {frame}: expected boxes (N, 5) and keypoints (N, 4, 17), got "
                f"{frame_boxes.shape} and {frame_keypoints.shape}"
            )
        if frame_keypoints.shape[2] != len(COCO17_JOINTS):
            raise KeypointInputError(
                f"{source}: frame {frame}: {frame_keypoints.shape[2]} "
                "keypoints per person; detectron2's COCO layout has 17"
            )
        people = []
        for box, rows in zip(frame_boxes, frame_keypoints, strict=True):
            score = rows[3] if len(rows) == 4 and np.isfinite(rows[3]).any() else rows[2]
            detection = detection_from_arrays(
                rows[:2].T,
                score,
                box=xyxy(box[:4]),
                box_score=float(box[4]) if len(box) > 4 else None,
            )
            if detection is not None:
                people.append(detection)
        raw[frame] = people
    first = 0 if options.first_frame_id is None else int(options.first_frame_id)
    return DetectionSet(
        source,
        "detectron2",
        options.layout or "coco17",
        apply_first_frame(raw, first, source),
        ScoreRule("none", 0.0),
        D2_SCORE_MEANING,
        _size(metadata, source),
    )


def _members(peek: FilePeek) -> set[str]:
    if peek.suffix != ".npz" or not peek.path.is_file():
        return set()
    return set(peek.npz_members)


FORMATS = (
    InputFormat(
        "videopose3d",
        "VideoPose3D data_2d_custom_<name>.npz (positions_2d, metadata)",
        (".npz",),
        "key 'positions_2d'",
        lambda peek: "positions_2d" in _members(peek),
        _read_custom,
    ),
    InputFormat(
        "detectron2",
        "VideoPose3D's detectron2 per-video npz (boxes, keypoints, metadata)",
        (".npz",),
        "keys 'boxes' + 'keypoints'",
        lambda peek: {"boxes", "keypoints"} <= _members(peek),
        _read_detectron,
    ),
)


# --- writers (the video path of predict.py) -------------------------------------------------


def _object_pairs(per_frame: list[np.ndarray]) -> np.ndarray:
    """(T, 2) object array of [[], person] per frame, as infer_video_d2.py's np.savez made it."""
    pairs = np.empty((len(per_frame), 2), dtype=object)
    for frame, people in enumerate(per_frame):
        pairs[frame, 0] = []
        pairs[frame, 1] = people if len(people) else []
    return pairs


def write_detectron_npz(
    path: str | Path, boxes: list[np.ndarray], keypoints: list[np.ndarray], width: int, height: int
) -> Path:
    """Per-frame detections in the layout of VideoPose3D's ``infer_video_d2.py``: boxes (N, 5)
    and keypoints (N, 4, 17) rows x, y, logit, prob per frame."""
    path = Path(path)
    np.savez_compressed(
        path,
        boxes=_object_pairs(boxes),
        segments=np.array([None] * len(boxes), dtype=object),
        keypoints=_object_pairs(keypoints),
        metadata=np.array({"w": int(width), "h": int(height)}, dtype=object),
    )
    return path


def write_data_2d_custom(
    path: str | Path, video: str, keypoints: np.ndarray, scores: np.ndarray, width: int, height: int
) -> Path:
    """One COCO-17 track in VideoPose3D's ``data_2d_custom`` layout.

    Like ``prepare_data_2d_custom.py``, frames without the person are filled by linear
    interpolation (VideoPose3D reads every frame); ``scores_2d`` keeps NaN there.
    """
    keypoints = np.array(keypoints, dtype=np.float32)
    frames = np.arange(len(keypoints))
    for joint in range(keypoints.shape[1]):
        known = np.isfinite(keypoints[:, joint]).all(axis=1)
        if known.any():
            for axis in range(2):
                keypoints[:, joint, axis] = np.interp(
                    frames, frames[known], keypoints[known, joint, axis]
                )
    metadata = dict(COCO_METADATA, video_metadata={video: {"w": int(width), "h": int(height)}})
    path = Path(path)
    np.savez_compressed(
        path,
        positions_2d=np.array({video: {"custom": [keypoints]}}, dtype=object),
        scores_2d=np.array({video: {"custom": [np.asarray(scores, np.float32)]}}, dtype=object),
        metadata=np.array(metadata, dtype=object),
    )
    return path
