"""Whole-sequence evaluation (sliding form, test-time flip) and the two reference baselines."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from glagcn.data.batching import flip_poses
from glagcn.data.sequences import PoseSequence
from glagcn.metrics import PCK_THRESHOLD_MM, ErrorTable, auc, pck, sequence_errors_mm
from glagcn.model import GLAGCN, SlidingLifter
from glagcn.skeleton import PCK_JOINTS_3DHP, Skeleton


@torch.no_grad()
def predict_sequence(
    model: GLAGCN,
    keypoints_2d: np.ndarray,
    skeleton: Skeleton,
    device: torch.device,
    flip_test: bool = True,
    max_windows: int | None = None,
) -> np.ndarray:
    """3D poses (T, J, 3) for every frame of a (T, J, 2) sequence, as the model outputs them
    (the root joint is *not* moved to the origin: its error is part of the authors' MPJPE).

    With ``flip_test`` the sequence and its mirror image go through the model together and
    the mirrored prediction, mirrored back, is averaged in.  The 2D input is mirrored in the
    model's input layout (COCO-17 for the authors' HE_13 model), the 3D output in the skeleton's.
    The sequence is cast to the model's dtype (float64 for exact comparisons).  A causal model's
    windows end at their frame (:class:`SlidingLifter`).
    """
    lifter = SlidingLifter(model, max_windows)
    model.eval()
    dtype = next(model.parameters()).dtype
    inputs = torch.from_numpy(np.ascontiguousarray(keypoints_2d)).to(device, dtype)
    if flip_test:
        mirrored = inputs[:, torch.as_tensor(model.input_flip_permutation, device=device)].clone()
        mirrored[..., 0] *= -1
        both = lifter(torch.stack([inputs, mirrored]))
        predicted = 0.5 * (both[0] + flip_poses(both[1], skeleton))
    else:
        predicted = lifter(inputs)
    # float64 stays float64 (exact comparisons); anything else is returned as float32
    return predicted.to(torch.float64 if dtype == torch.float64 else torch.float32).cpu().numpy()


@dataclass(frozen=True)
class Protocol:
    """How the authors' scripts score one dataset.

    ``zero_predicted_root``: their MPI-INF-3DHP script sets the predicted root joint to 0 before
    MPJPE (the other joints stay where they are); their Human3.6M / HumanEva-I scripts score the
    prediction as it comes out.  ``summary``: ``"actions"`` = mean over actions (H36M, HumanEva),
    ``"frames"`` = mean over all scored frames (3DHP, valid frames only).
    """

    zero_predicted_root: bool
    summary: str


PROTOCOLS = {
    "h36m17": Protocol(zero_predicted_root=False, summary="actions"),
    "humaneva15": Protocol(zero_predicted_root=False, summary="actions"),
    "3dhp17": Protocol(zero_predicted_root=True, summary="frames"),
}


def protocol_for(skeleton: Skeleton) -> Protocol:
    if skeleton.name not in PROTOCOLS:
        raise ValueError(
            f"no evaluation protocol for the {skeleton.name!r} skeleton "
            f"(known: {sorted(PROTOCOLS)})"
        )
    return PROTOCOLS[skeleton.name]


def _valid_frames(sequence: PoseSequence) -> np.ndarray:
    if sequence.valid is None:
        return np.ones(len(sequence.keypoints_2d), dtype=bool)
    return np.asarray(sequence.valid, dtype=bool)


def evaluate_predictions(
    sequences: Sequence[PoseSequence],
    predictions: Sequence[np.ndarray],
    skeleton: Skeleton,
    by_subject_last_take_only: bool = False,
) -> dict:
    """Protocol errors as the authors' evaluation scripts compute them.

    Summary keys (``mpjpe_mm``, ...) follow the dataset's :class:`Protocol`; ``per_action``
    groups takes into actions, ``per_take`` keeps each take name, ``per_subject`` is the
    authors' ``--by-subject`` breakdown (+ PCK/AUC when the skeleton is 3DHP's).
    """
    protocol = protocol_for(skeleton)
    table = ErrorTable()
    all_predicted, all_target = [], []
    for sequence, predicted in zip(sequences, predictions, strict=True):
        valid = _valid_frames(sequence)
        if not valid.any():
            continue
        target = np.asarray(sequence.poses_3d[valid], dtype=np.float64)
        predicted = np.array(predicted[valid], dtype=np.float64)
        if protocol.zero_predicted_root:
            predicted[:, skeleton.root] = 0.0
        table.add(
            sequence.action,
            sequence.subject,
            sequence_errors_mm(predicted, target, root=skeleton.root),
            int(valid.sum()),
        )
        all_predicted.append(predicted)
        all_target.append(target)
    if not all_predicted:
        raise ValueError("no valid frames to evaluate")
    result = dict(table.summary() if protocol.summary == "actions" else table.over_frames())
    result["per_action"] = table.per_action()
    result["per_take"] = table.per_take()
    result["per_subject"] = table.by_subject(last_take_only=by_subject_last_take_only)
    result["frames"] = int(sum(len(p) for p in all_predicted))
    if skeleton.name == "3dhp17":
        predicted_mm = np.concatenate(all_predicted) * 1000.0
        target_mm = np.concatenate(all_target) * 1000.0
        result["pck150"] = pck(predicted_mm, target_mm, PCK_THRESHOLD_MM, PCK_JOINTS_3DHP)
        result["auc"] = auc(predicted_mm, target_mm, PCK_JOINTS_3DHP)
    return result


def evaluate_model(
    model: GLAGCN,
    sequences: Sequence[PoseSequence],
    skeleton: Skeleton,
    device: torch.device,
    flip_test: bool = True,
    max_windows: int | None = None,
    by_subject_last_take_only: bool = False,
) -> dict:
    predictions = [
        predict_sequence(model, s.keypoints_2d, skeleton, device, flip_test, max_windows)
        for s in sequences
    ]
    return evaluate_predictions(sequences, predictions, skeleton, by_subject_last_take_only)


def _stack(sequences: Sequence[PoseSequence], max_frames: int, seed: int = 0):
    keypoints = np.concatenate([s.keypoints_2d[_valid_frames(s)] for s in sequences])
    poses = np.concatenate([s.poses_3d[_valid_frames(s)] for s in sequences])
    if len(keypoints) > max_frames:
        chosen = np.random.default_rng(seed).choice(len(keypoints), max_frames, replace=False)
        keypoints, poses = keypoints[chosen], poses[chosen]
    return keypoints.astype(np.float64), poses.astype(np.float64)


def baselines(
    train: Sequence[PoseSequence],
    test: Sequence[PoseSequence],
    skeleton: Skeleton,
    max_frames: int = 200_000,
    ridge: float = 1e-3,
) -> dict[str, dict]:
    """Two references on the same split: the mean training pose for every frame, and a
    per-frame linear (ridge) regression from the flattened 2D pose to the 3D pose."""
    keypoints, poses = _stack(train, max_frames)
    mean_pose = poses.mean(axis=0)
    features = np.concatenate(
        [keypoints.reshape(len(keypoints), -1), np.ones((len(keypoints), 1))], axis=1
    )
    gram = features.T @ features + ridge * np.eye(features.shape[1])
    weights = np.linalg.solve(gram, features.T @ poses.reshape(len(poses), -1))

    def regress(sequence: PoseSequence) -> np.ndarray:
        x = sequence.keypoints_2d.reshape(len(sequence.keypoints_2d), -1).astype(np.float64)
        x = np.concatenate([x, np.ones((len(x), 1))], axis=1)
        return (x @ weights).reshape(len(x), skeleton.num_joints, 3)

    mean_predictions = [np.broadcast_to(mean_pose, s.poses_3d.shape) for s in test]
    return {
        "mean_pose": evaluate_predictions(test, mean_predictions, skeleton),
        "linear_regression": evaluate_predictions(test, [regress(s) for s in test], skeleton),
    }
