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
