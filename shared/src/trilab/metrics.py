"""Metrics used by more than one project: classification scores and throughput/timing."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch


def classification_metrics(
    y_true: Sequence[int] | np.ndarray,
    y_pred: Sequence[int] | np.ndarray,
    class_names: Sequence[str] = ("public", "private"),
    y_score: Sequence[float] | np.ndarray | None = None,
) -> dict[str, Any]:
    """Accuracy, balanced accuracy, macro-F1, per-class P/R/F1, confusion matrix (+ ROC-AUC).

    ``y_score`` is the score of the positive class (index 1) for binary tasks; ROC-AUC is
    reported only when both classes occur in ``y_true``.
    """
    # imported here: timers and meters need no scikit-learn (GPU machines may lack it)
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support, roc_auc_score

    y_true = np.asarray(y_true, dtype=np.int64).ravel()
    y_pred = np.asarray(y_pred, dtype=np.int64).ravel()
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true has {y_true.size} labels but y_pred has {y_pred.size}")
    labels = list(range(len(class_names)))
    outside = {int(v) for v in np.unique(np.concatenate([y_true, y_pred]))} - set(labels)
    if outside:
        raise ValueError(
            f"labels {sorted(outside)} are outside 0..{len(labels) - 1} ({class_names})"
        )
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, zero_division=0
    )
    present = support > 0
    result: dict[str, Any] = {
        "accuracy": float((y_true == y_pred).mean()) if y_true.size else float("nan"),
        "balanced_accuracy": float(recall[present].mean()) if present.any() else float("nan"),
        "macro_f1": float(f1.mean()),
        "per_class": {
            name: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, name in enumerate(class_names)
        },
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
        "n": int(y_true.size),
    }
    if y_score is not None:
        y_score = np.asarray(y_score, dtype=np.float64).ravel()
        if len(class_names) == 2 and len(np.unique(y_true)) == 2:
            result["roc_auc"] = float(roc_auc_score(y_true, y_score))
    return result


class Timer:
    """Wall-clock timer; ``sync_cuda=True`` waits for queued GPU work before each reading."""

    def __init__(self, sync_cuda: bool = False) -> None:
        self.sync_cuda = sync_cuda and torch.cuda.is_available()
        self.seconds = 0.0
        self._start = 0.0

    def _sync(self) -> None:
        if self.sync_cuda:
            torch.cuda.synchronize()

    def __enter__(self) -> Timer:
        self._sync()
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._sync()
        self.seconds = time.perf_counter() - self._start


class ThroughputMeter:
    """Accumulates items and seconds; ``rate`` is items per second over everything seen."""

    def __init__(self) -> None:
        self.items = 0
        self.seconds = 0.0

    def update(self, items: int, seconds: float) -> None:
        if seconds < 0:
            raise ValueError(f"negative duration {seconds}")
        self.items += int(items)
        self.seconds += float(seconds)

    @property
    def rate(self) -> float:
        return self.items / self.seconds if self.seconds > 0 else 0.0

    def reset(self) -> None:
        self.items = 0
        self.seconds = 0.0
