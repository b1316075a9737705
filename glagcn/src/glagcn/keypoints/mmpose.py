"""MMPose inferencer predictions (``MMPoseInferencer(...)(video, pred_out_dir=DIR)``).

For a video the inferencer writes ``DIR/<video name>.json``: a list of
``{"frame_id": i, "instances": [...]}`` with ``frame_id`` counted from 0 and one entry per
frame (``instances`` empty when nobody was found).  Each instance has ``keypoints`` (K x [x, y]
pixels), ``keypoint_scores`` (K), ``bbox`` (x1, y1, x2, y2; older versions wrap it in one more
list: ``[[x1, y1, x2, y2]]``) and ``bbox_score``.  For an image the file is the list of
instances itself.  K = 17 (COCO), 26 (Halpe) or 133 (COCO-WholeBody; its first 17 joints are
COCO's).

Scores are the model's keypoint scores: the heatmap peak for heatmap models, the SimCC peak
for RTMPose (not calibrated probabilities; RTMPose's can exceed 1).  A joint below 0.3 is
missing, MMPose's own drawing threshold (``kpt_thr``).
"""

from __future__ import annotations

import numpy as np

from glagcn.keypoints._build import detection_from_arrays, track_id_of, xyxy
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
from glagcn.keypoints.layouts import get_layout, layout_for_joint_count

SCORE_MEANING = "MMPose keypoint score (heatmap or SimCC peak; not a calibrated probability)"


def _recognise(peek: FilePeek) -> bool:
    if peek.suffix != ".json" or not peek.path.is_file():
        return False
    content = peek.json
    if not isinstance(content, list) or not content or not isinstance(content[0], dict):
        return False
    return "instances" in content[0] or "keypoint_scores" in content[0]


def _instance(instance: dict, where: str, layout: str | None) -> tuple[Detection | None, str]:
    if not isinstance(instance, dict) or "keypoints" not in instance:
        raise KeypointInputError(f"{where}: an instance without 'keypoints'")
    try:
        keypoints = numeric_array(instance["keypoints"], where, "'keypoints'").astype(np.float64)
        scores = np.asarray(
            instance.get("keypoint_scores", np.full(len(keypoints), np.nan)), dtype=np.float64
        )
    except (TypeError, ValueError) as error:
        raise KeypointInputError(f"{where}: keypoints are not a K x 2 list ({error})") from None
    if keypoints.ndim != 2 or keypoints.shape[1] < 2 or scores.shape != (len(keypoints),):
        raise KeypointInputError(
            f"{where}: expected 'keypoints' K x [x, y] and "
            f"'keypoint_scores' K, got {keypoints.shape} and {scores.shape}"
        )
    found = layout or layout_for_joint_count(len(keypoints), ("coco17", "halpe26", "wholebody133"))
    if found is None or get_layout(found).num_joints != len(keypoints):
        raise KeypointInputError(
            f"{where}: {len(keypoints)} keypoints; expected 17 (COCO), "
            "26 (Halpe) or 133 (COCO-WholeBody)"
        )
    score = instance.get("bbox_score")
    if isinstance(score, list):
        score = score[0] if score else None
    detection = detection_from_arrays(
        keypoints[:, :2],
        scores,
        box=xyxy(instance.get("bbox")),
        box_score=float(score) if isinstance(score, (int, float)) else None,
        track_id=track_id_of(instance.get("track_id")),
    )
    return detection, found


def _read(peek: FilePeek, options: ReadOptions) -> DetectionSet:
    source = str(peek.path)
    content = peek.json
    if not isinstance(content, list):
        raise KeypointInputError(
            f"{source}: expected MMPose's list of {{'frame_id', 'instances'}} objects"
        )
    if content and "instances" not in content[0]:
        content = [{"frame_id": 0, "instances": content}]  # the file of one image
    raw: dict[int, list[Detection]] = {}
    layout = options.layout
    for position, entry in enumerate(content):
        if not isinstance(entry, dict) or not isinstance(entry.get("instances"), list):
            raise KeypointInputError(f"{source}: entry {position} has no 'instances' list")
        frame = entry.get("frame_id", position)
        if not isinstance(frame, int) or isinstance(frame, bool):
            raise KeypointInputError(
                f"{source}: entry {position} has frame_id {frame!r}, not an integer"
            )
        people = []
        for number, instance in enumerate(entry["instances"]):
            detection, layout = _instance(
                instance, f"{source}: frame_id {frame} instance {number}", layout
            )
            if detection is not None:
                people.append(detection)
        raw[frame] = people
    if layout is None:
        raise KeypointInputError(f"{source}: no person in any frame")
    first = 0 if options.first_frame_id is None else int(options.first_frame_id)
    return DetectionSet(
        source,
        "mmpose",
        layout,
        apply_first_frame(raw, first, source),
        ScoreRule("absolute", 0.3),
        SCORE_MEANING,
    )


FORMATS = (
    InputFormat(
        "mmpose",
        "MMPose inferencer predictions JSON ([{frame_id, instances}])",
        (".json",),
        "a list of {frame_id, instances} objects or of instances with 'keypoint_scores'",
        _recognise,
        _read,
    ),
)
