import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from drag.cluster import (
    ClusterMismatchError,
    cluster_channels,
    kmeans_channels,
    load_clusters,
    peak_positions,
    save_clusters,
)
from drag.data import make_loader
from drag.data.formats import load_ipd_partition
from drag.model.backbone import Backbone
from trilab.testing import write_crafted_torch_file


def test_peak_positions_hand_made():
    features = torch.zeros(1, 2, 3, 4)
    features[0, 0, 2, 1] = 5.0  # channel 0 peaks at x=1, y=2
    features[0, 1, 0, 3] = 5.0  # channel 1 peaks at x=3, y=0
    peaks = peak_positions(features)
    assert torch.allclose(peaks[0, 0], torch.tensor([1 / 3, 1.0]))
    assert torch.allclose(peaks[0, 1], torch.tensor([1.0, 0.0]))


def test_kmeans_separates_obvious_groups():
    rng = np.random.default_rng(0)
    desc = np.concatenate([rng.normal(0, 0.01, (5, 6)), rng.normal(1, 0.01, (7, 6))])
    assignment, _ = kmeans_channels(desc.astype(np.float32), 2, seed=0, n_init=3)
    assert len(set(assignment[:5])) == 1 and len(set(assignment[5:])) == 1
    assert assignment[0] != assignment[5]
    with pytest.raises(ValueError, match="cannot cluster"):
        kmeans_channels(desc, 20, seed=0)


def test_streaming_clustering_artefact_and_mismatch(tiny_synthetic, tmp_path):
    torch.manual_seed(0)
    splits = load_ipd_partition(tiny_synthetic, 1, tiny_synthetic / "images")
    cfg = OmegaConf.create({"image_size": 64, "batch_size": 5})
    loader = make_loader(splits["train"], cfg)
    backbone = Backbone("resnet18")
    clusters = cluster_channels(backbone, loader, 3, torch.device("cpu"), 64, n_init=2)
    assert clusters.assignment.shape == (512,)
    assert clusters.n_images == len(splits["train"])
    assert sum(clusters.sizes()) == 512 and len(clusters.sizes()) == 3
    path = save_clusters(clusters, tmp_path / "clusters.pt")
    loaded = load_clusters(path, backbone)
    assert np.array_equal(loaded.assignment, clusters.assignment)
    other = Backbone("resnet18")  # different random weights
    with pytest.raises(ClusterMismatchError, match="re-run the cluster stage"):
        load_clusters(path, other)
    with pytest.raises(FileNotFoundError, match="nothing.pt"):
        load_clusters(tmp_path / "nothing.pt")


def test_crafted_clustering_artefact_is_refused_without_running_code(tmp_path):
    from drag.errors import DragInputError, UserError

    marker = tmp_path / "marker"
    crafted = write_crafted_torch_file(
        tmp_path / "clusters.pt", marker, {"assignment": torch.zeros(4, dtype=torch.long)}
    )
    with pytest.raises(UserError, match=r"clusters\.pt.*refused"):
        load_clusters(crafted)
    assert not marker.exists()
    torch.save({"something": 1}, tmp_path / "other.pt")
    with pytest.raises(DragInputError, match="other.pt is not a channel clustering artefact"):
        load_clusters(tmp_path / "other.pt")
