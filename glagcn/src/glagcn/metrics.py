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
        raise ValueError(f"shapes differ: predicted {tuple(predicted.shape)}, "
                         f"target {tuple(target.shape)}")
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
    variance = (p0 ** 2).sum(axis=(-1, -2))
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
    denominator = np.maximum((predicted ** 2).sum(axis=(-1, -2), keepdims=True), 1e-12)
    return float(joint_errors(numerator / denominator * predicted, target).mean())


def mpjve(predicted: np.ndarray, target: np.ndarray) -> float:
    """Mean per-joint velocity error: MPJPE of first differences over time (axis 0)."""
    predicted, target = np.asarray(predicted), np.asarray(target)
    if len(predicted) < 2:
        return float("nan")
    return float(joint_errors(np.diff(predicted, axis=0), np.diff(target, axis=0)).mean())


def pck(predicted_mm: np.ndarray, target_mm: np.ndarray, threshold_mm: float = PCK_THRESHOLD_MM,
        joints: Iterable[int] | None = None) -> float:
    """Percentage of joints within ``threshold_mm`` (3DHP protocol: 14 joints, 150 mm)."""
    errors = joint_errors(predicted_mm, target_mm)
    if joints is not None:
        errors = errors[..., list(joints)]
    return float((errors <= threshold_mm).mean() * 100.0)


def auc(predicted_mm: np.ndarray, target_mm: np.ndarray,
        joints: Iterable[int] | None = None) -> float:
    """Mean PCK over the thresholds 0, 5, ..., 150 mm (in percent)."""
    errors = joint_errors(predicted_mm, target_mm)
    if joints is not None:
        errors = errors[..., list(joints)]
    return float(np.mean([(errors <= t).mean() for t in AUC_THRESHOLDS_MM]) * 100.0)


def sequence_errors_mm(predicted: np.ndarray, target: np.ndarray) -> dict[str, float]:
    """All protocol errors of one sequence, inputs in metres, outputs in millimetres."""
    predicted_mm, target_mm = np.asarray(predicted) * 1000.0, np.asarray(target) * 1000.0
    return {
        "mpjpe_mm": float(joint_errors(predicted_mm, target_mm).mean()),
        "p_mpjpe_mm": p_mpjpe(predicted_mm, target_mm),
        "n_mpjpe_mm": n_mpjpe(predicted_mm, target_mm),
        "mpjve_mm": mpjve(predicted_mm, target_mm),
    }


class ErrorTable:
    """Frame-weighted averages of per-sequence errors, grouped by action and by subject.

    The H36M summary is the mean over actions of each action's frame-weighted mean.
    """

    def __init__(self) -> None:
        self._sums: dict[tuple[str, str], dict[str, float]] = defaultdict(
            lambda: defaultdict(float))
        self._frames: dict[tuple[str, str], int] = defaultdict(int)

    def add(self, action: str, subject: str, errors: dict[str, float], frames: int) -> None:
        key = (action, subject)
        for name, value in errors.items():
            if np.isfinite(value):
                self._sums[key][name] += value * frames
        self._frames[key] += frames

    def _grouped(self, index: int) -> dict[str, dict[str, float]]:
        sums: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
        frames: dict[str, int] = defaultdict(int)
        for key, values in self._sums.items():
            for name, value in values.items():
                sums[key[index]][name] += value
            frames[key[index]] += self._frames[key]
        return {group: {name: value / frames[group] for name, value in values.items()}
                for group, values in sorted(sums.items())}

    def per_action(self) -> dict[str, dict[str, float]]:
        return self._grouped(0)

    def per_subject(self) -> dict[str, dict[str, float]]:
        return self._grouped(1)

    def summary(self) -> dict[str, float]:
        actions = self.per_action()
        names = sorted({name for values in actions.values() for name in values})
        return {name: float(np.mean([values[name] for values in actions.values()
                                     if name in values])) for name in names}
