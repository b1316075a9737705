"""Users' own 2D keypoint sequences: reading, COCO-17 -> H36M-17 conversion, gap filling.

This is the input side of lifting arbitrary videos (``glagcn.lift`` / ``predict.py``).  Supported
files:

* COCO-style JSON, as keypoint detectors write it: a list of per-frame objects, each with
  ``keypoints`` = ``[x, y, score] * 17`` and optionally ``image_id`` / ``frame`` /
  ``frame_index`` and ``score``.  Several people in one frame: the highest-scoring one is kept.
  A dict with an ``annotations`` or ``frames`` list is accepted too.
* npz with ``keypoints`` of shape (T, 17, 2) or (T, 17, 3) (x, y[, score]), optional
  ``frame_indices`` (T,) and ``layout`` (``"coco17"`` or ``"h36m17"``).

Coordinates are pixels.  Missing joints are NaN or have a score below a threshold.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

COCO17_JOINTS = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
    "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip",
    "left_knee", "right_knee", "left_ankle", "right_ankle",
)
LAYOUTS = ("coco17", "h36m17")

# H36M-17 joint -> the COCO-17 joints it is the mean of.  Pelvis, thorax and head are midpoints
# (hips, shoulders, eyes); the spine is filled in afterwards as the pelvis-thorax midpoint.
_H36M_FROM_COCO: dict[int, tuple[int, ...]] = {
    0: (11, 12), 1: (12,), 2: (14,), 3: (16,), 4: (11,), 5: (13,), 6: (15,),
    8: (5, 6), 9: (0,), 10: (1, 2), 11: (5,), 12: (7,), 13: (9,), 14: (6,), 15: (8,), 16: (10,),
}
_H36M_SPINE, _H36M_PELVIS, _H36M_THORAX = 7, 0, 8


class KeypointInputError(ValueError):
    """A keypoint file or array cannot be used; the message names the file, key or joint."""


@dataclass
class KeypointSequence:
    """A 2D keypoint track of one person: pixels, per-joint scores, source frame indices."""

    keypoints: np.ndarray  # (T, 17, 2) float32, pixels, NaN where missing
    scores: np.ndarray  # (T, 17) float32 in [0, 1]; 1 where the file had no scores
    frame_indices: np.ndarray  # (T,) int64
    layout: str  # "coco17" or "h36m17"
    source: str = "<array>"

    def __post_init__(self) -> None:
        if self.layout not in LAYOUTS:
            raise KeypointInputError(f"{self.source}: unknown layout {self.layout!r}, "
                                     f"expected one of {LAYOUTS}")
        if self.keypoints.ndim != 3 or self.keypoints.shape[1:] != (17, 2):
            raise KeypointInputError(f"{self.source}: keypoints must have shape (T, 17, 2), "
                                     f"got {self.keypoints.shape}")
        if len(self.keypoints) == 0:
            raise KeypointInputError(f"{self.source}: the sequence has no frames")


def load_keypoints(path: str | Path, layout: str | None = None) -> KeypointSequence:
    """Read a COCO-style JSON or an npz keypoint file (see the module docstring)."""
    path = Path(path)
    if not path.is_file():
        raise KeypointInputError(f"keypoint file not found: {path}")
    suffix = path.suffix.lower()
    if suffix == ".json":
        return _load_coco_json(path, layout or "coco17")
    if suffix == ".npz":
        return _load_npz(path, layout)
    raise KeypointInputError(f"{path}: unsupported keypoint file type {suffix!r} "
                             "(expected .json or .npz)")


def _load_coco_json(path: Path, layout: str) -> KeypointSequence:
    try:
        content = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise KeypointInputError(f"{path}: not valid JSON ({error})") from error
    if isinstance(content, dict):
        for key in ("annotations", "frames", "predictions"):
            if isinstance(content.get(key), list):
                content = content[key]
                break
        else:
            raise KeypointInputError(f"{path}: expected a list of per-frame objects or a dict "
                                     "with an 'annotations'/'frames' list")
    if not isinstance(content, list) or not content:
        raise KeypointInputError(f"{path}: no per-frame keypoint objects found")
    best: dict[int, tuple[float, np.ndarray]] = {}
    for position, entry in enumerate(content):
        if not isinstance(entry, dict) or "keypoints" not in entry:
            raise KeypointInputError(f"{path}: entry {position} has no 'keypoints' key")
        values = np.asarray(entry["keypoints"], dtype=np.float64).ravel()
        if values.size != 51:
            raise KeypointInputError(f"{path}: entry {position} has {values.size} keypoint "
                                     "values, expected 17 x [x, y, score] = 51")
        frame = entry.get("frame_index", entry.get("frame", entry.get("image_id", position)))
        try:
            frame = int(frame)
        except (TypeError, ValueError) as error:
            raise KeypointInputError(f"{path}: entry {position} has a non-integer frame id "
                                     f"{frame!r}") from error
        triples = values.reshape(17, 3)
        person_score = float(entry.get("score", np.nanmean(triples[:, 2])))
        if frame not in best or person_score > best[frame][0]:
            best[frame] = (person_score, triples)
    frames = np.array(sorted(best), dtype=np.int64)
    triples = np.stack([best[f][1] for f in frames]).astype(np.float32)
    return KeypointSequence(triples[..., :2].copy(), triples[..., 2].copy(), frames, layout,
                            str(path))


def _load_npz(path: Path, layout: str | None) -> KeypointSequence:
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise KeypointInputError(f"{path}: not a readable npz file ({error})") from error
    with archive:
        if "keypoints" not in archive:
            raise KeypointInputError(f"{path}: missing key 'keypoints' "
                                     f"(found {sorted(archive.files)})")
        keypoints = np.asarray(archive["keypoints"], dtype=np.float32)
        if keypoints.ndim != 3 or keypoints.shape[1] != 17 or keypoints.shape[2] not in (2, 3):
            raise KeypointInputError(f"{path}: key 'keypoints' must have shape (T, 17, 2|3), "
                                     f"got {keypoints.shape}")
        frames = (np.asarray(archive["frame_indices"], dtype=np.int64)
                  if "frame_indices" in archive else np.arange(len(keypoints), dtype=np.int64))
        if frames.shape != (len(keypoints),):
            raise KeypointInputError(f"{path}: 'frame_indices' has shape {frames.shape}, "
                                     f"expected ({len(keypoints)},)")
        if layout is None:
            layout = str(archive["layout"]) if "layout" in archive else "coco17"
    scores = (keypoints[..., 2].copy() if keypoints.shape[2] == 3
              else np.ones(keypoints.shape[:2], dtype=np.float32))
    return KeypointSequence(keypoints[..., :2].copy(), scores, frames, layout, str(path))


def coco_to_h36m(keypoints: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Map COCO-17 keypoints (..., 17, 2) and scores (..., 17) onto the H36M-17 layout.

    A derived joint takes the lowest score of the joints it is made from, so it is missing
    whenever one of its sources is.
    """
    out_kp = np.empty_like(keypoints)
    out_sc = np.empty_like(scores)
    for target, sources in _H36M_FROM_COCO.items():
        out_kp[..., target, :] = keypoints[..., list(sources), :].mean(axis=-2)
        out_sc[..., target] = scores[..., list(sources)].min(axis=-1)
    pelvis, thorax = out_kp[..., _H36M_PELVIS, :], out_kp[..., _H36M_THORAX, :]
    out_kp[..., _H36M_SPINE, :] = 0.5 * (pelvis + thorax)
    out_sc[..., _H36M_SPINE] = np.minimum(out_sc[..., _H36M_PELVIS], out_sc[..., _H36M_THORAX])
    return out_kp, out_sc


def missing_joints(keypoints: np.ndarray, scores: np.ndarray, score_threshold: float) -> np.ndarray:
    """Boolean (T, J) mask of joints that are NaN/inf or scored below ``score_threshold``."""
    not_finite = ~np.isfinite(keypoints).all(axis=-1)
    return not_finite | ~(np.nan_to_num(scores, nan=-1.0) >= score_threshold)


def fill_missing_joints(
    keypoints: np.ndarray,
    scores: np.ndarray,
    score_threshold: float = 0.3,
    max_missing_fraction: float = 0.5,
    joint_names: tuple[str, ...] | None = None,
    source: str = "<array>",
) -> tuple[np.ndarray, np.ndarray]:
    """Linearly interpolate each joint over time where it is missing (low score or NaN).

    Frames before the first (after the last) valid detection take the first (last) valid
    position.  Returns the filled keypoints and a boolean (T, J) mask of the filled entries.
    Raises :class:`KeypointInputError` naming the joint when it is missing in more than
    ``max_missing_fraction`` of the frames.
    """
    keypoints = np.asarray(keypoints, dtype=np.float32)
    missing = missing_joints(keypoints, scores, score_threshold)
    fractions = missing.mean(axis=0)
    worst = int(np.argmax(fractions))
    if fractions[worst] > max_missing_fraction:
        name = joint_names[worst] if joint_names else f"joint {worst}"
        raise KeypointInputError(
            f"{source}: {name} is missing (score < {score_threshold} or NaN) in "
            f"{fractions[worst]:.0%} of {len(keypoints)} frames, more than the allowed "
            f"{max_missing_fraction:.0%}; the sequence cannot be lifted reliably"
        )
    filled = keypoints.copy()
    time_axis = np.arange(len(keypoints))
    for joint in np.flatnonzero(missing.any(axis=0)):
        valid = ~missing[:, joint]
        for coordinate in range(keypoints.shape[-1]):
            filled[:, joint, coordinate] = np.interp(
                time_axis, time_axis[valid], keypoints[valid, joint, coordinate]
            )
    return filled, missing


def to_h36m_sequence(
    sequence: KeypointSequence, score_threshold: float = 0.3, max_missing_fraction: float = 0.5
) -> tuple[np.ndarray, np.ndarray]:
    """H36M-17 pixel keypoints (T, 17, 2), gaps filled, and the (T, 17) mask of filled joints."""
    if sequence.layout == "h36m17":
        return fill_missing_joints(sequence.keypoints, sequence.scores, score_threshold,
                                   max_missing_fraction, None, sequence.source)
    # Fill in COCO space first, so a derived joint never inherits one source's gap.
    filled, missing = fill_missing_joints(sequence.keypoints, sequence.scores, score_threshold,
                                          max_missing_fraction, COCO17_JOINTS, sequence.source)
    keypoints, kept = coco_to_h36m(filled, (~missing).astype(np.float32))
    return keypoints.astype(np.float32), kept < 0.5
