"""Whole-sequence evaluation (sliding form, test-time flip) and the two reference baselines."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from glagcn.data.batching import flip_poses
from glagcn.data.sequences import PoseSequence
from glagcn.metrics import PCK_THRESHOLD_MM, ErrorTable, auc, pck, sequence_errors_mm
from glagcn.model import GLAGCN, SlidingLifter
from glagcn.skeleton import PCK_JOINTS_3DHP, Skeleton


@torch.no_grad()
def predict_sequence(model: GLAGCN, keypoints_2d: np.ndarray, skeleton: Skeleton,
                     device: torch.device, flip_test: bool = True,
                     max_windows: int | None = None) -> np.ndarray:
    """3D poses (T, J, 3), root at the origin, for every frame of a (T, J, 2) sequence.

    With ``flip_test`` the sequence and its mirror image go through the model together and
    the mirrored prediction, mirrored back, is averaged in.
    """
    lifter = SlidingLifter(model, max_windows)
    model.eval()
    inputs = torch.from_numpy(np.ascontiguousarray(keypoints_2d, dtype=np.float32)).to(device)
    if flip_test:
        both = lifter(torch.stack([inputs, flip_poses(inputs, skeleton)]))
        predicted = 0.5 * (both[0] + flip_poses(both[1], skeleton))
    else:
        predicted = lifter(inputs)
    predicted = predicted - predicted[:, skeleton.root:skeleton.root + 1]
    return predicted.float().cpu().numpy()


def _valid_frames(sequence: PoseSequence) -> np.ndarray:
    if sequence.valid is None:
        return np.ones(len(sequence.keypoints_2d), dtype=bool)
    return np.asarray(sequence.valid, dtype=bool)


def evaluate_predictions(sequences: Sequence[PoseSequence],
                         predictions: Sequence[np.ndarray],
                         skeleton: Skeleton) -> dict:
    """Protocol errors over sequences: mean over actions, per action, per subject (+ PCK/AUC
    when the skeleton is 3DHP's)."""
    table = ErrorTable()
    all_predicted, all_target = [], []
    for sequence, predicted in zip(sequences, predictions, strict=True):
        valid = _valid_frames(sequence)
        if not valid.any():
            continue
        target = sequence.poses_3d[valid]
        predicted = predicted[valid]
        table.add(sequence.action, sequence.subject, sequence_errors_mm(predicted, target),
                  int(valid.sum()))
        all_predicted.append(predicted)
        all_target.append(target)
    if not all_predicted:
        raise ValueError("no valid frames to evaluate")
    result = dict(table.summary())
    result["per_action"] = table.per_action()
    result["per_subject"] = table.per_subject()
    result["frames"] = int(sum(len(p) for p in all_predicted))
    if skeleton.name == "3dhp17":
        predicted_mm = np.concatenate(all_predicted) * 1000.0
        target_mm = np.concatenate(all_target) * 1000.0
        result["pck150"] = pck(predicted_mm, target_mm, PCK_THRESHOLD_MM, PCK_JOINTS_3DHP)
        result["auc"] = auc(predicted_mm, target_mm, PCK_JOINTS_3DHP)
    return result


def evaluate_model(model: GLAGCN, sequences: Sequence[PoseSequence], skeleton: Skeleton,
                   device: torch.device, flip_test: bool = True,
                   max_windows: int | None = None) -> dict:
    predictions = [predict_sequence(model, s.keypoints_2d, skeleton, device, flip_test,
                                    max_windows) for s in sequences]
    return evaluate_predictions(sequences, predictions, skeleton)


def _stack(sequences: Sequence[PoseSequence], max_frames: int, seed: int = 0):
    keypoints = np.concatenate([s.keypoints_2d[_valid_frames(s)] for s in sequences])
    poses = np.concatenate([s.poses_3d[_valid_frames(s)] for s in sequences])
    if len(keypoints) > max_frames:
        chosen = np.random.default_rng(seed).choice(len(keypoints), max_frames, replace=False)
        keypoints, poses = keypoints[chosen], poses[chosen]
    return keypoints.astype(np.float64), poses.astype(np.float64)


def baselines(train: Sequence[PoseSequence], test: Sequence[PoseSequence], skeleton: Skeleton,
              max_frames: int = 200_000, ridge: float = 1e-3) -> dict[str, dict]:
    """Two references on the same split: the mean training pose for every frame, and a
    per-frame linear (ridge) regression from the flattened 2D pose to the 3D pose."""
    keypoints, poses = _stack(train, max_frames)
    mean_pose = poses.mean(axis=0)
    features = np.concatenate([keypoints.reshape(len(keypoints), -1),
                               np.ones((len(keypoints), 1))], axis=1)
    gram = features.T @ features + ridge * np.eye(features.shape[1])
    weights = np.linalg.solve(gram, features.T @ poses.reshape(len(poses), -1))

    def regress(sequence: PoseSequence) -> np.ndarray:
        x = sequence.keypoints_2d.reshape(len(sequence.keypoints_2d), -1).astype(np.float64)
        x = np.concatenate([x, np.ones((len(x), 1))], axis=1)
        predicted = (x @ weights).reshape(len(x), skeleton.num_joints, 3)
        return predicted - predicted[:, skeleton.root:skeleton.root + 1]

    mean_predictions = [np.broadcast_to(mean_pose, s.poses_3d.shape) for s in test]
    return {
        "mean_pose": evaluate_predictions(test, mean_predictions, skeleton),
        "linear_regression": evaluate_predictions(test, [regress(s) for s in test], skeleton),
    }
