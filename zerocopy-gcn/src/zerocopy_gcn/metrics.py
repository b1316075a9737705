"""What a run reports: each epoch's accuracy and time record (kept in the checkpoints' history)
and the summary written to ``metrics.json``.

Times are synchronised clocks; with prefetch on, ``sample_s``/``fetch_s`` are the producer's own
times and ``stall_s`` is what training waited for them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from omegaconf import DictConfig

from trilab.distributed import DistContext
from trilab.loop import EpochTotals
from zerocopy_gcn.fetch import FeatureFetcher
from zerocopy_gcn.graph import CSRGraph

TIMES = ("epoch_s", "sample_s", "fetch_s", "train_s", "stall_s")


def epoch_record(
    epoch: int,
    totals: EpochTotals,
    val_acc: float,
    fetcher: FeatureFetcher,
    fetched_before: int,
    prefetch: bool,
) -> dict[str, Any]:
    """One epoch's line of the history; ``fetched_before`` is ``fetcher.bytes_fetched`` when
    the epoch began."""
    record = {
        "epoch": epoch,
        "loss": totals.mean("loss", "seen"),
        "train_acc": totals.mean("correct", "seen"),
        "val_acc": val_acc,
        "epoch_s": totals.seconds,
        **{key: totals.sums.get(key, 0.0) for key in ("sample_s", "fetch_s", "train_s")},
        # without prefetch, waiting for a batch is its sampling and fetching
        "stall_s": totals.data_seconds if prefetch else 0.0,
        "fetched_gb": (fetcher.bytes_fetched - fetched_before) / 1e9,
    }
    if hasattr(fetcher, "epoch_stats"):
        record.update(fetcher.epoch_stats())
    return record


def run_metrics(
    cfg: DictConfig,
    ctx: DistContext,
    graph: CSRGraph,
    history: list[dict],
    *,
    setup_s: float,
    final_test: float,
    best: dict[str, Any],
    digest: str,
    host_table: dict[str, Any],
) -> dict[str, Any]:
    """The run's ``metrics.json``."""
    return {
        "graph": {
            "name": graph.name,
            "num_nodes": graph.num_nodes,
            "num_edges": graph.num_edges,
            "feat_dim": graph.feat_dim,
            "feat_dtype": graph.feat_dtype,
            "num_classes": graph.num_classes,
            "path": str(graph.path),
        },
        "fetch_mode": cfg.fetch.mode,
        "model": cfg.model.name,
        "fanouts": list(cfg.fanouts),
        "batch_size": cfg.batch_size,
        "device": str(ctx.device),
        "world_size": ctx.world_size,
        "epochs": cfg.epochs,
        "setup_s": setup_s,
        "history": history,
        "mean_epoch_times_excluding_first": mean_epoch_times(history),
        "final_val_acc": history[-1]["val_acc"] if history else float("nan"),
        "final_test_acc": final_test,
        "best": best,
        "chance_acc": float(
            np.bincount(graph.label[graph.label >= 0]).max() / max(int((graph.label >= 0).sum()), 1)
        ),
        "weights_sha256": digest,
        "host_table": host_table,
    }


def mean_epoch_times(history: list[dict]) -> dict[str, float]:
    """Each of :data:`TIMES` averaged over the epochs after the first (or the only one)."""
    timed = history[1:] if len(history) > 1 else history  # the first epoch warms caches up
    return {
        key: float(np.mean([h[key] for h in timed])) if timed else float("nan") for key in TIMES
    }
