"""Small helpers the readers share: arrays -> Detection, with the checks every format needs."""

from __future__ import annotations

import numpy as np

from glagcn.keypoints.core import Detection


def xywh_to_xyxy(box) -> np.ndarray | None:
    if box is None:
        return None
    values = np.asarray(box, dtype=np.float64).ravel()
    if values.size < 4 or not np.isfinite(values[:4]).all():
        return None
    x, y, w, h = values[:4]
    return np.array([x, y, x + w, y + h], dtype=np.float32)


def xyxy(box) -> np.ndarray | None:
    if box is None:
        return None
    values = np.asarray(box, dtype=np.float64).ravel()
    if values.size < 4 or not np.isfinite(values[:4]).all():
        return None
    return values[:4].astype(np.float32)


def detection_from_triples(
    triples: np.ndarray, zeros_mean_missing: bool = True, **extra
) -> Detection | None:
    """(J, 3) x, y, score -> Detection; (0, 0, 0) rows are "not found" where the writer uses
    them so (COCO/AlphaPose/OpenPose).  None when no joint has coordinates."""
    keypoints = triples[:, :2].astype(np.float32)
    scores = triples[:, 2].astype(np.float32)
    return detection_from_arrays(keypoints, scores, zeros_mean_missing, **extra)


def detection_from_arrays(
    keypoints: np.ndarray, scores: np.ndarray, zeros_mean_missing: bool = False, **extra
) -> Detection | None:
    keypoints = np.array(keypoints, dtype=np.float32)
    scores = np.array(scores, dtype=np.float32)
    if zeros_mean_missing:
        not_found = (keypoints == 0).all(axis=1) & (np.nan_to_num(scores) == 0)
        keypoints[not_found] = np.nan
    keypoints[~np.isfinite(keypoints).all(axis=1)] = np.nan
    if not np.isfinite(keypoints).all(axis=1).any():
        return None
    return Detection(keypoints, scores, **extra)


def track_id_of(value) -> int | None:
    """An integer person id, or None for the placeholders writers use without tracking
    (AlphaPose: ``[0.0]``; OpenPose: ``[-1]``)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    if isinstance(value, float) and value.is_integer():
        return int(value) if value >= 0 else None
    return None
