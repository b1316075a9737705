"""Pose errors in the H36M / 3DHP protocols.  Inputs are (..., J, 3) arrays in metres or mm;
every function returns the same unit as its inputs (the callers report mm)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

import numpy as np
import torch

PCK_THRESHOLD_MM = 150.0
AUC_THRESHOLDS_MM = np.linspace(0.0, 150.0, 31)


def mpjpe(predicted: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean per-joint position error (protocol 1); differentiable, used as the training loss."""
    if predicted.shape != target.shape:
        raise ValueError(
            f"shapes differ: predicted {tuple(predicted.shape)}, target {tuple(target.shape)}"
        )
    return torch.linalg.vector_norm(predicted - target, dim=-1).mean()


def joint_errors(predicted: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Per-joint Euclidean errors (..., J)."""
    return np.linalg.norm(np.asarray(predicted) - np.asarray(target), axis=-1)


def procrustes_align(predicted: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Align each frame's prediction to its target with the best similarity transform.

    Rotation, uniform scale and translation are solved per frame (Umeyama); a reflection is
    never used: when the best orthogonal matrix has determinant -1 the smallest singular
    direction is flipped, giving the best proper rotation.
    """
    predicted = np.asarray(predicted, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    mu_p = predicted.mean(axis=-2, keepdims=True)
    mu_t = target.mean(axis=-2, keepdims=True)
    p0, t0 = predicted - mu_p, target - mu_t
    covariance = np.swapaxes(p0, -1, -2) @ t0  # (..., 3, 3): sum_j p_j t_j^T
    u, singular, vt = np.linalg.svd(covariance)
    sign = np.sign(np.linalg.det(u @ vt))
    correction = np.ones_like(singular)
    correction[..., -1] = sign
    rotation = (u * correction[..., None, :]) @ vt  # maps centred prediction onto target
    variance = (p0**2).sum(axis=(-1, -2))
    scale = (singular * correction).sum(axis=-1) / np.maximum(variance, 1e-12)
    return scale[..., None, None] * (p0 @ rotation) + mu_t


def p_mpjpe(predicted: np.ndarray, target: np.ndarray) -> float:
    """Protocol 2: MPJPE after per-frame similarity Procrustes alignment."""
    return float(joint_errors(procrustes_align(predicted, target), target).mean())


def n_mpjpe(predicted: np.ndarray, target: np.ndarray) -> float:
    """MPJPE after scaling each frame's prediction by its least-squares scale (VideoPose3D's
    N-MPJPE): s = sum_j target_j . pred_j / sum_j |pred_j|^2 over that frame's joints."""
    predicted = np.asarray(predicted, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    numerator = (target * predicted).sum(axis=(-1, -2), keepdims=True)
    denominator = np.maximum((predicted**2).sum(axis=(-1, -2), keepdims=True), 1e-12)
    return float(joint_errors(numerator / denominator * predicted, target).mean())


def mpjve(predicted: np.ndarray, target: np.ndarray) -> float:
    """Mean per-joint velocity error: MPJPE of first differences over time (axis 0)."""
    predicted, target = np.asarray(predicted), np.asarray(target)
    if len(predicted) < 2:
        return float("nan")
    return float(joint_errors(np.diff(predicted, axis=0), np.diff(target, axis=0)).mean())


def pck(
    predicted_mm: np.ndarray,
    target_mm: np.ndarray,
    threshold_mm: float = PCK_THRESHOLD_MM,
    joints: Iterable[int] | None = None,
) -> float:
    """Percentage of joints within ``threshold_mm`` (3DHP protocol: 14 joints, 150 mm)."""
    errors = joint_errors(predicted_mm, target_mm)
    if joints is not None:
        errors = errors[..., list(joints)]
    return float((errors <= threshold_mm).mean() * 100.0)


def auc(
    predicted_mm: np.ndarray, target_mm: np.ndarray, joints: Iterable[int] | None = None
) -> float:
    """Mean PCK over the thresholds 0, 5, ..., 150 mm (in percent)."""
    errors = joint_errors(predicted_mm, target_mm)
    if joints is not None:
        errors = errors[..., list(joints)]
    return float(np.mean([(errors <= t).mean() for t in AUC_THRESHOLDS_MM]) * 100.0)


def sequence_errors_mm(
    predicted: np.ndarray, target: np.ndarray, root: int | None = None
) -> dict[str, float]:
    """All protocol errors of one sequence, inputs in metres, outputs in millimetres.

    ``predicted`` is scored as it is (the authors' protocol 1: only the target's root is at the
    origin).  With ``root`` the MPJPE of the prediction moved so that its own root is at the
    origin is added as ``mpjpe_root_centred_mm``; that variant hides the root joint's error.
    """
    predicted_mm, target_mm = np.asarray(predicted) * 1000.0, np.asarray(target) * 1000.0
    errors = {
        "mpjpe_mm": float(joint_errors(predicted_mm, target_mm).mean()),
        "p_mpjpe_mm": p_mpjpe(predicted_mm, target_mm),
        "n_mpjpe_mm": n_mpjpe(predicted_mm, target_mm),
        "mpjve_mm": mpjve(predicted_mm, target_mm),
    }
    if root is not None:
        centred = predicted_mm - predicted_mm[..., root : root + 1, :]
        errors["mpjpe_root_centred_mm"] = float(joint_errors(centred, target_mm).mean())
    return errors


def action_of(take: str) -> str:
    """The action a take belongs to: its name up to the first space, as the authors group
    (``"Directions 1"`` -> ``"Directions"``, ``"Walking 1 chunk0"`` -> ``"Walking"``)."""
    return take.split(" ")[0]


class _Sums:
    """Frame-weighted sums of named errors; ``mean()`` divides by the frames."""

    def __init__(self) -> None:
        self.sums: dict[str, float] = defaultdict(float)
        self.frames: dict[str, int] = defaultdict(int)

    def add(self, errors: dict[str, float], frames: int) -> None:
        for name, value in errors.items():
            if np.isfinite(value):  # MPJVE of a 1-frame sequence is undefined
                self.sums[name] += value * frames
                self.frames[name] += frames

    def merge(self, other: _Sums) -> None:
        for name, value in other.sums.items():
            self.sums[name] += value
            self.frames[name] += other.frames[name]

    def mean(self) -> dict[str, float]:
        return {name: self.sums[name] / self.frames[name] for name in sorted(self.sums)}


def _mean_of_groups(groups: dict[str, dict[str, float]]) -> dict[str, float]:
    names = sorted({name for values in groups.values() for name in values})
    return {
        name: float(np.mean([values[name] for values in groups.values() if name in values]))
        for name in names
    }


class ErrorTable:
    """Per-sequence errors gathered by take and subject, summarised as the authors do.

    Takes are grouped into actions by :func:`action_of`; an action's error is the frame-weighted
    mean over all its takes, cameras and subjects, and the Human3.6M / HumanEva-I headline is the
    mean over actions.  ``by_subject`` follows the authors' ``--by-subject`` tables: per subject,
    per action, then the mean over that subject's actions.
    """

    def __init__(self) -> None:
        # (subject, take) -> sums, in the order the sequences arrive (the files' order)
        self._takes: dict[tuple[str, str], _Sums] = {}

    def add(self, take: str, subject: str, errors: dict[str, float], frames: int) -> None:
        self._takes.setdefault((subject, take), _Sums()).add(errors, frames)

    def _grouped(self, key) -> dict[str, dict[str, float]]:
        groups: dict[str, _Sums] = {}
        for (subject, take), sums in self._takes.items():
            groups.setdefault(key(subject, take), _Sums()).merge(sums)
        return {name: groups[name].mean() for name in sorted(groups)}

    def per_action(self) -> dict[str, dict[str, float]]:
        return self._grouped(lambda subject, take: action_of(take))

    def per_take(self) -> dict[str, dict[str, float]]:
        return self._grouped(lambda subject, take: take)

    def over_frames(self) -> dict[str, float]:
        """Frame-weighted mean over everything (the MPI-INF-3DHP summary)."""
        total = _Sums()
        for sums in self._takes.values():
            total.merge(sums)
        return total.mean()

    def summary(self) -> dict[str, float]:
        """Mean over actions of each action's frame-weighted mean."""
        return _mean_of_groups(self.per_action())

    def by_subject(self, last_take_only: bool = False) -> dict[str, dict]:
        """{subject: {"per_action": {...}, **mean over its actions}}.

        ``last_take_only`` reproduces the authors' GLA-GCN scripts, whose by-subject grouping
        resets an action's list on every take, so only the last take of each action (in the
        files' order) is scored; VideoPose3D's ``run.py`` keeps every take.
        """
        chosen: dict[str, dict[str, list[_Sums]]] = defaultdict(lambda: defaultdict(list))
        for (subject, take), sums in self._takes.items():
            takes = chosen[subject][action_of(take)]
            if last_take_only:
                takes.clear()
            takes.append(sums)
        result = {}
        for subject in sorted(chosen):
            actions = {}
            for action in sorted(chosen[subject]):
                merged = _Sums()
                for sums in chosen[subject][action]:
                    merged.merge(sums)
                actions[action] = merged.mean()
            result[subject] = {**_mean_of_groups(actions), "per_action": actions}
        return result
