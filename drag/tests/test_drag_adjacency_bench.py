import pytest
import torch

from drag.adjacency_bench import _summary, build_previous
from drag.model.backbone import Backbone
from drag.model.drag import build_drag
from trilab.checkpoint import CheckpointError, save_checkpoint

CONFIG = {
    "arch": "resnet18",
    "groups": 3,
    "feature_hw": [2, 2],
    "image_size": 64,
    "attn_dim": 8,
    "attn_dropout": 0.1,
    "gcn_dropout": 0.5,
}


def test_previous_form_differs_only_in_adjacency_and_gcn():
    torch.manual_seed(0)
    previous = build_previous(Backbone("resnet18"), CONFIG).eval()
    authors = build_drag(Backbone("resnet18"), CONFIG)
    features = torch.rand(2, 512, 2, 2)
    out = previous.forward_features(features)
    assert out["logits"].shape == (2, 2)
    assert (out["adjacency"] >= 0).all()  # the ReLU the authors do not have
    ours = set(previous.state_dict())
    theirs = set(authors.state_dict())
    assert {k.split(".")[0] for k in ours ^ theirs} == {"adjacency", "gcn"}
    assert "adjacency.mix.weight" in ours


def test_checkpoint_of_the_previous_form_is_refused_with_a_reason(tmp_path):
    from drag.inference import load_trained

    path = tmp_path / "old.pt"
    model = build_previous(Backbone("resnet18"), CONFIG)
    save_checkpoint(path, model=model, epoch=0, extra={"model_config": CONFIG, "threshold": 0.5})
    with pytest.raises(CheckpointError, match="old.pt .*adjacency.*retrain"):
        load_trained(path, torch.device("cpu"))


def test_summary_mean_and_sample_spread():
    summary = _summary([0.8, 0.9, 1.0])
    assert summary["mean"] == pytest.approx(0.9)
    assert summary["std"] == pytest.approx(0.1)
    assert (summary["min"], summary["max"]) == (0.8, 1.0)
