"""Split building for the three formats and DataLoader construction."""

from __future__ import annotations

from pathlib import Path

import torch
from torch.utils.data import DataLoader, RandomSampler, Sampler, WeightedRandomSampler

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

__all__ = [
    "BadFileReport",
    "ImageListDataset",
    "Sample",
    "build_splits",
    "make_loader",
    "maybe_generate",
]


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


class ResumableSampler(Sampler):
    """Wraps a sampler; the next pass drops its first ``skip`` indices (same random draws)."""

    def __init__(self, inner: Sampler) -> None:
        self.inner = inner
        self.skip = 0

    def __len__(self) -> int:
        return len(self.inner)

    def __iter__(self):
        skip, self.skip = self.skip, 0
        for position, index in enumerate(self.inner):
            if position >= skip:
                yield index

    def set_epoch(self, epoch: int) -> None:
        if hasattr(self.inner, "set_epoch"):
            self.inner.set_epoch(epoch)


def make_loader(
    samples: list[Sample],
    cfg,
    *,
    train: bool,
    generator: torch.Generator | None = None,
    sampler=None,
    batch_size: int | None = None,
) -> DataLoader:
    """Batches of ``{"images", "labels", "paths", "failed"}``; optional class-balanced sampling.

    A training loader's sampler is a :class:`ResumableSampler`: a run stopped in the middle of
    an epoch skips the batches it already trained on without reading their images.
    """
    dataset = ImageListDataset(samples, cfg.image_size)
    if train and cfg.get("balanced_sampling", False) and sampler is None:
        labels = torch.tensor(dataset.labels)
        counts = torch.bincount(labels, minlength=2).clamp_min(1).float()
        sampler = WeightedRandomSampler(
            (1.0 / counts)[labels], num_samples=len(labels), replacement=True, generator=generator
        )
    if train:
        # what DataLoader(shuffle=True) would build, made explicit so that it can be wrapped
        sampler = ResumableSampler(sampler or RandomSampler(dataset, generator=generator))
    return DataLoader(
        dataset,
        batch_size=batch_size or cfg.batch_size,
        shuffle=False,
        sampler=sampler,
        num_workers=cfg.get("num_workers", 0),
        collate_fn=collate_skip_bad,
        generator=generator,
        drop_last=False,
        persistent_workers=False,
    )
