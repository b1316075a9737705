import os
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from drag.data.synthesize import synthesize

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
        GlobalHydra.instance().clear()
        with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
            return compose(config_name=config_name, overrides=list(overrides))

    yield _compose
    GlobalHydra.instance().clear()


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
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name="config", overrides=_tiny_overrides(tiny_synthetic))
    GlobalHydra.instance().clear()
    previous = Path.cwd()
    os.chdir(out)
    try:
        train(cfg)
    finally:
        os.chdir(previous)
    return out
