"""Class weighting and the optional MA-CNN style losses on the region maps."""

from __future__ import annotations

from collections.abc import Sequence

import torch


def class_weights_from_labels(labels: Sequence[int], num_classes: int = 2) -> torch.Tensor:
    """Weight of class c = 1 - frequency(c), as in the paper."""
    counts = torch.bincount(torch.as_tensor(list(labels), dtype=torch.long), minlength=num_classes)
    freq = counts.float() / counts.sum().clamp_min(1)
    return 1.0 - freq


def _normalized(maps: torch.Tensor) -> torch.Tensor:
    flat = maps.flatten(2)
    flat = flat - flat.min(dim=-1, keepdim=True).values
    return (flat / flat.sum(dim=-1, keepdim=True).clamp_min(1e-8)).view_as(maps)


def distance_loss(maps: torch.Tensor) -> torch.Tensor:
    """Compactness: mass of each map weighted by squared distance to the map's own peak.

    Coordinates are normalised to [0, 1] so the value does not depend on the map size.
    """
    batch, groups, height, width = maps.shape
    prob = _normalized(maps)
    ys = torch.linspace(0, 1, height, device=maps.device).view(1, 1, height, 1)
    xs = torch.linspace(0, 1, width, device=maps.device).view(1, 1, 1, width)
    peak = maps.flatten(2).argmax(-1)
    peak_y = (peak // width).float() / max(height - 1, 1)
    peak_x = (peak % width).float() / max(width - 1, 1)
    peak_y = peak_y.view(batch, groups, 1, 1)
    peak_x = peak_x.view(batch, groups, 1, 1)
    dist = (ys - peak_y) ** 2 + (xs - peak_x) ** 2
    return (prob * dist).sum(dim=(2, 3)).mean()


def diversity_loss(maps: torch.Tensor, margin: float = 0.02) -> torch.Tensor:
    """Overlap: mass of map k where another map exceeds ``margin`` (maps normalised to sum 1)."""
    prob = _normalized(maps)
    groups = prob.shape[1]
    if groups < 2:
        return prob.new_zeros(())
    total = prob.new_zeros(())
    for k in range(groups):
        others = torch.cat([prob[:, :k], prob[:, k + 1 :]], dim=1).max(dim=1).values
        total = total + (prob[:, k] * (others - margin).clamp_min(0)).sum(dim=(1, 2)).mean()
    return total / groups
