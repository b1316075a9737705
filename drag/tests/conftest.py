import contextlib
from pathlib import Path

import pytest

from drag.data.synthesize import synthesize
from trilab.testing import compose_config

CONFIG_DIR = str(Path(__file__).resolve().parents[1] / "configs")


@pytest.fixture(scope="session")
def tiny_synthetic(tmp_path_factory) -> Path:
    """40 generated 64 px images with IPD partitions, folder tree and labels_splits.csv."""
    out = tmp_path_factory.mktemp("synthetic")
    return synthesize(out, n=40, size=64, seed=3, private_fraction=0.4, progress=False)


@pytest.fixture
def compose_cfg():
    """Compose the real Hydra config with overrides; clears the global Hydra state after."""

    def _compose(overrides, config_name="config"):
        return compose_config(CONFIG_DIR, overrides, config_name)

    return _compose


def _tiny_overrides(data_dir) -> list[str]:
    """The whole recipe shrunk to seconds on the 40 tiny images (K = 3, 64 px)."""
    return [
        "data.partitions_dir=" + str(data_dir),
        "data.image_root=" + str(data_dir / "images"),
        "data.generate=null",
        "data.image_size=64",
        "data.batch_size=8",
        "device=cpu",
        "groups=3",
        "finetune.epochs=2",
        "finetune.lr=1e-3",
        "cluster.n_init=2",
        "pretrain_cgl.epochs=1",
        "drag.epochs=2",
        "drag.freeze_backbone_epochs=1",
        "drag.distance_weight=0.1",
        "drag.diversity_weight=0.1",
    ]


@pytest.fixture
def tiny_overrides():
    return _tiny_overrides


@pytest.fixture(scope="session")
def trained_run(tiny_synthetic, tmp_path_factory) -> Path:
    """The whole recipe run once on the tiny images; its run folder (checkpoints, metrics)."""
    from drag.training import train

    out = tmp_path_factory.mktemp("trained_run")
    cfg = compose_config(CONFIG_DIR, _tiny_overrides(tiny_synthetic))
    with contextlib.chdir(out):
        train(cfg)
    return out
