import pytest

from glagcn.model import build_model
from glagcn.skeleton import H36M_17
from trilab.checkpoint import save_checkpoint

TINY_LIFTER = {
    "filter_widths": [3, 3],
    "channels": 8,
    "temporal_kernel": 3,
    "output_layer": "per_joint",
    "sequence_branch": False,
}


@pytest.fixture
def tiny_lifter_config():
    """The model config of a 9-frame lifter small enough for CPU tests."""
    return dict(TINY_LIFTER)


@pytest.fixture(scope="session")
def tiny_lifter_checkpoint(tmp_path_factory):
    """An untrained 9-frame H36M-17 lifter saved as training saves one."""
    path = tmp_path_factory.mktemp("ckpt") / "model.pt"
    save_checkpoint(
        path,
        model=build_model(TINY_LIFTER, H36M_17),
        epoch=0,
        extra={"model_config": TINY_LIFTER, "skeleton": "h36m17"},
    )
    return path
