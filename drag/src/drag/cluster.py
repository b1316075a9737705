"""Offline channel clustering: each channel described by its peak (x, y) on every training image.

The descriptor matrix is C x 2N (filled batch by batch); feature maps are never kept.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from sklearn.cluster import KMeans, MiniBatchKMeans
from torch.utils.data import DataLoader

from drag.errors import DragInputError, MissingFileError
from drag.model.backbone import Backbone
from trilab.atomic import atomic_save
from trilab.safe_load import load_torch_file
from trilab.weights import weights_digest


class ClusterMismatchError(DragInputError):
    """The clustering artefact was computed with another backbone (or K)."""


@dataclass
class ChannelClusters:
    assignment: np.ndarray  # (C,) cluster index of each channel
    groups: int
    arch: str
    backbone_fingerprint: str
    n_images: int
    image_size: int
    inertia: float
    seconds: float

    def sizes(self) -> list[int]:
        return np.bincount(self.assignment, minlength=self.groups).tolist()


@torch.no_grad()
def peak_positions(features: torch.Tensor) -> torch.Tensor:
    """B x C x H x W -> B x C x 2 peak (x, y), normalised to [0, 1]."""
    _, _, height, width = features.shape
    index = features.flatten(2).argmax(dim=-1)
    xs = (index % width).float() / max(width - 1, 1)
    ys = torch.div(index, width, rounding_mode="floor").float() / max(height - 1, 1)
    return torch.stack([xs, ys], dim=-1)


@torch.no_grad()
def channel_descriptors(
    backbone: Backbone, loader: DataLoader, device: torch.device, progress=None, report=None
) -> np.ndarray:
    """C x 2N matrix of peak positions; N counts the readable images only."""
    backbone.eval()
    total = len(loader.dataset)
    desc = np.zeros((backbone.channels, 2 * total), dtype=np.float32)
    filled = 0
    batches = progress(loader, desc="cluster: peaks", total=len(loader)) if progress else loader
    for batch in batches:
        if report is not None:
            report.extend(batch["failed"])
        if len(batch["labels"]) == 0:
            continue
        peaks = peak_positions(backbone.features(batch["images"].to(device)))  # B x C x 2
        n = peaks.shape[0]
        desc[:, 2 * filled : 2 * (filled + n)] = (
            peaks.permute(1, 0, 2).reshape(backbone.channels, 2 * n).cpu().numpy()
        )
        filled += n
    if filled == 0:
        raise DragInputError("no readable training image for channel clustering")
    return desc[:, : 2 * filled]


def kmeans_channels(
    descriptors: np.ndarray, groups: int, seed: int, n_init: int = 10, minibatch: bool = False
) -> tuple[np.ndarray, float]:
    if groups < 1 or groups > descriptors.shape[0]:
        raise DragInputError(f"cannot cluster {descriptors.shape[0]} channels into {groups} groups")
    algo = (
        MiniBatchKMeans(groups, random_state=seed, n_init=n_init, batch_size=256)
        if minibatch
        else KMeans(groups, random_state=seed, n_init=n_init)
    )
    assignment = algo.fit_predict(descriptors)
    return assignment.astype(np.int64), float(algo.inertia_)


def cluster_channels(
    backbone: Backbone,
    loader: DataLoader,
    groups: int,
    device: torch.device,
    image_size: int,
    seed: int = 0,
    n_init: int = 10,
    minibatch: bool = False,
    progress=None,
    report=None,
) -> ChannelClusters:
    start = time.perf_counter()
    desc = channel_descriptors(backbone, loader, device, progress, report)
    assignment, inertia = kmeans_channels(desc, groups, seed, n_init, minibatch)
    return ChannelClusters(
        assignment=assignment,
        groups=groups,
        arch=backbone.arch,
        backbone_fingerprint=weights_digest(backbone),
        n_images=desc.shape[1] // 2,
        image_size=image_size,
        inertia=inertia,
        seconds=time.perf_counter() - start,
    )


def save_clusters(clusters: ChannelClusters, path: str | Path) -> Path:
    """Tensors and plain Python values only, so that loading needs no unpickling of code."""
    payload = dict(vars(clusters))
    payload["assignment"] = torch.from_numpy(clusters.assignment)
    return atomic_save(payload, path)


def load_clusters(path: str | Path, backbone: Backbone | None = None) -> ChannelClusters:
    """Load an artefact; with ``backbone`` given, refuse it unless it was made by those weights."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(
            f"channel clustering artefact not found: {path} (run the cluster stage first)"
        )
    payload = load_torch_file(path, what="channel clustering artefact")
    fields = set(ChannelClusters.__dataclass_fields__)
    if not isinstance(payload, dict) or set(payload) != fields:
        raise DragInputError(f"{path} is not a channel clustering artefact of this project")
    payload["assignment"] = payload["assignment"].numpy()
    clusters = ChannelClusters(**payload)
    if backbone is not None:
        if clusters.arch != backbone.arch or len(clusters.assignment) != backbone.channels:
            raise ClusterMismatchError(
                f"{path} was computed for {clusters.arch} ({len(clusters.assignment)} channels), "
                f"not {backbone.arch} ({backbone.channels} channels)"
            )
        current = weights_digest(backbone)
        if clusters.backbone_fingerprint != current:
            raise ClusterMismatchError(
                f"{path} was computed with backbone weights {clusters.backbone_fingerprint[:12]}, "
                f"but the loaded backbone is {current[:12]}: re-run the cluster stage"
            )
    return clusters
