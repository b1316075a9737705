"""DRAG on a CUDA device: the whole recipe (fine-tuning, channel clustering, CGL pre-training,
DRAG) on the 40 tiny images, then prediction from its checkpoint.  Run by `make gpu-check`
where a GPU is lent; skipped with the reason elsewhere.  The CPU tests prove the same recipe's
numbers; this proves that every stage's tensors meet on the GPU."""

import contextlib
import csv

import pytest
import torch

needs_gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.mark.gpu
@needs_gpu
def test_the_whole_recipe_and_prediction_on_cuda(
    tiny_synthetic, tiny_overrides, compose_cfg, tmp_path
):
    from drag.predict import predict_folder
    from drag.training import train

    overrides = [o for o in tiny_overrides(tiny_synthetic) if o != "device=cpu"] + ["device=cuda"]
    with contextlib.chdir(tmp_path):
        metrics = train(compose_cfg(overrides))
    for key in ("baseline", "drag"):
        assert 0 <= metrics[key]["test"]["accuracy"] <= 1
    checkpoint = tmp_path / "drag" / "checkpoints" / "best.pt"
    out = predict_folder(
        tiny_synthetic / "images", checkpoint, tmp_path / "p.csv", device="cuda", batch_size=8
    )
    assert out["images"] == 40
    rows = list(csv.DictReader(open(tmp_path / "p.csv")))
    assert all(0 <= float(row["p_private"]) <= 1 for row in rows)
