"""Users' own 2D keypoint sequences: the single entry to the readers of :mod:`glagcn.keypoints`.

Supported files (the format is recognised from the file; ``format=`` overrides):
VideoPose3D ``data_2d_custom_*.npz`` and its detectron2 per-video npz, AlphaPose
``alphapose-results.json`` (COCO-17 / Halpe-26, with or without tracking ids), OpenPose
``--write_json`` folders (BODY_25 / COCO-18), MMPose inferencer JSON, COCO-style keypoint JSON
lists and this project's npz.  :func:`load_keypoints` returns the default person's track (the
most visible one, or ``person=ID``); :func:`to_h36m_sequence` maps it to H36M-17 and fills
missing joints and short gaps.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from glagcn.keypoints import (
    KeypointInputError,
    KeypointSequence,
    ReadOptions,
    ScoreRule,
    get_layout,
    load_track,
    to_h36m,
    to_h36m_sequence,
)
from glagcn.keypoints.layouts import COCO17_JOINTS, LAYOUTS

__all__ = ["COCO17_JOINTS", "LAYOUTS", "KeypointInputError", "KeypointSequence",
           "coco_to_h36m", "fill_missing_joints", "load_keypoints", "missing_joints",
           "to_h36m_sequence"]


def load_keypoints(path: str | Path, layout: str | None = None, *, format: str | None = None,  # noqa: A002
                   person: int | None = None, video_name: str | None = None,
                   first_frame_id: int | None = None, link_iou: float = 0.3,
                   max_link_gap: int | None = None) -> KeypointSequence:
    """The default (or ``person``) track of any supported keypoint file."""
    options = ReadOptions(video_name, first_frame_id, layout)
    sequence, _, _ = load_track(path, format, options, person, link_iou, max_link_gap)
    return sequence


def coco_to_h36m(keypoints: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Map COCO-17 keypoints (..., 17, 2) and scores (..., 17) onto the H36M-17 layout; a
    derived joint takes the lowest score of its sources."""
    return to_h36m(get_layout("coco17"), keypoints, scores)


def missing_joints(keypoints: np.ndarray, scores: np.ndarray, score_threshold: float) -> np.ndarray:
    """Boolean (T, J) mask of joints that are NaN/inf or scored below ``score_threshold``."""
    not_finite = ~np.isfinite(keypoints).all(axis=-1)
    return not_finite | ScoreRule("absolute", score_threshold).missing(scores)


def fill_missing_joints(
    keypoints: np.ndarray,
    scores: np.ndarray,
    score_threshold: float = 0.3,
    max_missing_fraction: float = 0.5,
    joint_names: tuple[str, ...] | None = None,
    source: str = "<array>",
) -> tuple[np.ndarray, np.ndarray]:
    """Linearly interpolate each joint over time where it is missing (low score or NaN);
    frames before the first (after the last) valid value take the first (last) one.

    Returns the filled keypoints and the (T, J) mask of filled entries.  A joint missing in
    more than ``max_missing_fraction`` of the frames is an error naming it.
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
            f"{max_missing_fraction:.0%}; the sequence cannot be lifted reliably")
    filled = keypoints.copy()
    time_axis = np.arange(len(keypoints))
    for joint in np.flatnonzero(missing.any(axis=0)):
        valid = ~missing[:, joint]
        for axis in range(keypoints.shape[-1]):
            filled[:, joint, axis] = np.interp(time_axis, time_axis[valid],
                                               keypoints[valid, joint, axis])
    return filled, missing
