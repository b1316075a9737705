"""Dataset of (path, label) samples; unreadable images are dropped by the collate function."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch.utils.data import Dataset

from drag.data.images import BadFileReport, image_to_tensor, quick_check, read_image


@dataclass(frozen=True)
class Sample:
    path: str
    label: int  # 0 = public, 1 = private


class ImageListDataset(Dataset):
    """Reads images on demand; a file that fails to decode yields ``None`` instead of raising."""

    def __init__(self, samples: Sequence[Sample], image_size: int) -> None:
        self.samples = list(samples)
        self.image_size = image_size

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def labels(self) -> list[int]:
        return [s.label for s in self.samples]

    def __getitem__(self, index: int):
        sample = self.samples[index]
        try:
            tensor = image_to_tensor(read_image(sample.path, self.image_size), self.image_size)
        except Exception as error:  # truncated/corrupt files surface here, not mid-epoch crashes
            return None, sample.label, sample.path, f"{type(error).__name__}: {error}"
        return tensor, sample.label, sample.path, None


def collate_skip_bad(items):
    """Stack the readable images; report the others under ``failed`` as (path, reason)."""
    good = [it for it in items if it[0] is not None]
    failed = [(it[2], it[3]) for it in items if it[0] is None]
    images = torch.stack([it[0] for it in good]) if good else torch.empty(0)
    labels = torch.tensor([it[1] for it in good], dtype=torch.long)
    return {"images": images, "labels": labels, "paths": [it[2] for it in good], "failed": failed}


def filter_readable(
    samples: Sequence[Sample], report: BadFileReport, check: bool = True
) -> list[Sample]:
    """Drop missing and non-image files up front (header check only; decoding errors are
    caught later by the dataset)."""
    if not check:
        return list(samples)
    kept = []
    for sample in samples:
        reason = quick_check(sample.path)
        if reason is None:
            kept.append(sample)
        else:
            report.add(sample.path, reason)
    return kept
