"""The configured format's train/val/test splits (generated first when asked), and the DataLoaders
that read them."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from drag.data.dataset import ImageListDataset, Sample, collate_skip_bad, filter_readable
from drag.data.formats import (
    SPLITS,
    class_counts,
    load_folder_tree,
    load_ipd_partition,
    load_labels_splits,
)
from drag.data.images import BadFileReport
from drag.errors import DragInputError


def maybe_generate(cfg, log) -> None:
    """Generate the synthetic set when ``cfg.generate`` is set and the split files are absent."""
    generate = cfg.get("generate")
    if not generate:
        return
    marker = Path(cfg.partitions_dir) / f"partition{cfg.partition}" / "test.csv"
    if marker.is_file():
        return
    from drag.data.synthesize import synthesize

    log.info(f"generating the synthetic dataset into {cfg.partitions_dir} ({dict(generate)})")
    synthesize(
        cfg.partitions_dir, n=generate.n, size=generate.size, seed=generate.seed, progress=False
    )


def build_splits(cfg, seed: int, log, report: BadFileReport) -> dict[str, list[Sample]]:
    """Read the split files named by ``cfg`` (the data config group), log the label mapping and
    class counts, and drop missing / non-image files into ``report``."""
    fmt = cfg.format
    if fmt == "ipd":
        maybe_generate(cfg, log)
        splits = load_ipd_partition(cfg.partitions_dir, cfg.partition, cfg.image_root)
        log.info(
            f"IPD partition {cfg.partition} from {cfg.partitions_dir}: label 'private' -> 1, "
            "'public' -> 0"
        )
    elif fmt == "labels_splits":
        splits = load_labels_splits(
            cfg.csv,
            cfg.image_root,
            str(cfg.fold_column),
            cfg.label_map,
            cfg.image_column,
            cfg.label_column,
        )
        mapping = {str(k): str(v) for k, v in cfg.label_map.items()}
        log.info(
            f"{cfg.csv}: fold column {cfg.fold_column!r}; '{cfg.label_column}' mapping "
            f"{mapping} (private -> 1, public -> 0)"
        )
    elif fmt == "folder":
        fractions = {s: float(cfg.fractions[s]) for s in SPLITS}
        splits = load_folder_tree(cfg.root, fractions, seed)
        log.info(
            f"folder tree {cfg.root}: private/ -> 1, public/ -> 0, split {fractions} (seed {seed})"
        )
    else:
        raise DragInputError(f"unknown data.format {fmt!r}; use ipd, labels_splits or folder")
    limit = cfg.get("max_per_split")
    for split in SPLITS:
        if limit:
            splits[split] = splits[split][: int(limit)]
        splits[split] = filter_readable(splits[split], report, check=cfg.get("check_files", True))
        log.info(
            f"{split}: {len(splits[split])} images, class counts {class_counts(splits[split])}"
        )
        if not splits[split]:
            raise DragInputError(f"the {split} split is empty after dropping unreadable files")
    return splits


def balanced_weights(samples: list[Sample]) -> np.ndarray:
    """Per-sample draw weights that make both classes equally likely (``balanced_sampling``)."""
    labels = np.array([s.label for s in samples], dtype=np.int64)
    counts = np.maximum(np.bincount(labels, minlength=2), 1)
    return 1.0 / counts[labels]


def make_loader(
    samples: list[Sample],
    cfg,
    *,
    order: Sequence[int] | None = None,
    batch_size: int | None = None,
) -> DataLoader:
    """Batches of ``{"images", "labels", "paths", "failed"}`` of ``samples`` in ``order`` (a
    training epoch's indices, see ``trilab.loop.epoch_order``), or of all in file order."""
    return DataLoader(
        ImageListDataset(samples, cfg.image_size),
        batch_size=batch_size or cfg.batch_size,
        shuffle=False,
        sampler=None if order is None else [int(i) for i in order],
        num_workers=cfg.get("num_workers", 0),
        collate_fn=collate_skip_bad,
        # the loader draws its workers' seed from this generator, not from the run's random
        # stream (which a resumed run restores to the state after the step it stopped at)
        generator=torch.Generator().manual_seed(0),
        drop_last=False,
        persistent_workers=False,
    )
