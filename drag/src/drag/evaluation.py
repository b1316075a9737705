"""Scores of a classifier on a split, the decision threshold chosen on validation, metrics."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from drag import CLASS_NAMES
from drag.data.images import BadFileReport
from trilab.metrics import classification_metrics


@torch.no_grad()
def collect_scores(
    predict_logits: Callable[[torch.Tensor], torch.Tensor],
    loader: DataLoader,
    device: torch.device,
    report: BadFileReport,
    log=None,
    desc: str = "eval",
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(labels, p_private, paths) over a loader; unreadable files go to ``report``."""
    labels, scores, paths = [], [], []
    batches = log.progress(loader, desc=desc, total=len(loader)) if log is not None else loader
    for batch in batches:
        report.extend(batch["failed"])
        if len(batch["labels"]) == 0:
            continue
        logits = predict_logits(batch["images"].to(device))
        scores.append(F.softmax(logits.float(), dim=1)[:, 1].cpu().numpy())
        labels.append(batch["labels"].numpy())
        paths.extend(batch["paths"])
    if not labels:
        return np.zeros(0, np.int64), np.zeros(0, np.float32), []
    return np.concatenate(labels), np.concatenate(scores), paths


def choose_threshold(labels: np.ndarray, scores: np.ndarray) -> float:
    """Threshold on p_private maximising balanced accuracy (ties: the one nearest 0.5)."""
    if labels.size == 0 or len(np.unique(labels)) < 2:
        return 0.5
    candidates = np.unique(np.concatenate([scores, [0.5]]))
    best, best_key = 0.5, (-1.0, 0.0)
    for t in candidates:
        pred = scores >= t
        recall_private = pred[labels == 1].mean()
        recall_public = (~pred[labels == 0]).mean()
        key = ((recall_private + recall_public) / 2, -abs(t - 0.5))
        if key > best_key:
            best, best_key = float(t), key
    return best


def metrics_at(labels: np.ndarray, scores: np.ndarray, threshold: float) -> dict:
    result = classification_metrics(
        labels, (scores >= threshold).astype(np.int64), CLASS_NAMES, y_score=scores
    )
    result["threshold"] = float(threshold)
    return result


def evaluate_splits(
    predict_logits, loaders: dict[str, DataLoader], device, report, log
) -> dict[str, dict]:
    """Val picks the private threshold; test is reported at it and at the argmax (0.5)."""
    val_labels, val_scores, _ = collect_scores(
        predict_logits, loaders["val"], device, report, log, "eval val"
    )
    threshold = choose_threshold(val_labels, val_scores)
    test_labels, test_scores, _ = collect_scores(
        predict_logits, loaders["test"], device, report, log, "eval test"
    )
    return {
        "threshold": threshold,
        "val": metrics_at(val_labels, val_scores, threshold),
        "test": metrics_at(test_labels, test_scores, threshold),
        "test_at_0.5": metrics_at(test_labels, test_scores, 0.5),
    }


def majority_rate(labels) -> float:
    labels = np.asarray(labels)
    if labels.size == 0:
        return float("nan")
    return float(max((labels == 1).mean(), (labels == 0).mean()))
