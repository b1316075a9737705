import csv
import json
from pathlib import Path

import pytest

from drag.explain import explain
from drag.predict import predict_folder
from drag.training import train
from trilab.testing import modules_loaded_by

EXPERIMENTS = sorted(
    p.stem for p in (Path(__file__).resolve().parents[1] / "configs" / "experiment").glob("*.yaml")
)


def test_every_experiment_composes(compose_cfg):
    assert {
        "finetune_backbone",
        "cluster",
        "pretrain_cgl",
        "drag",
        "baseline",
        "demo",
        "paper_ipd",
    } <= set(EXPERIMENTS)
    for name in EXPERIMENTS:
        cfg = compose_cfg([f"+experiment={name}"])
        assert cfg.stages
    assert compose_cfg(["+experiment=cluster"]).stages == ["cluster"]
    paper = compose_cfg(["+experiment=paper_ipd", "data.partitions_dir=/x", "data.image_root=/y"])
    assert paper.model.arch == "resnet101" and paper.data.image_size == 448
    assert paper.drag.epochs == 15 and paper.drag.freeze_backbone_epochs == 5


def test_all_stages_end_to_end_then_resume_predict_explain(
    tiny_synthetic, trained_run, compose_cfg, tiny_overrides, tmp_path, monkeypatch
):
    metrics = json.loads((trained_run / "metrics.json").read_text())
    for key in ("baseline", "drag"):
        test = metrics[key]["test"]
        assert 0 <= test["accuracy"] <= 1 and "roc_auc" in test
        assert set(test["per_class"]) == {"public", "private"}
        assert 0 <= metrics[key]["threshold"] <= 1
    assert sum(metrics["cluster"]["cluster_sizes"]) == 512
    for stage in ("finetune_backbone", "pretrain_cgl", "drag"):
        assert (trained_run / stage / "checkpoints" / "best.pt").is_file()
        assert (trained_run / stage / "checkpoints" / "last.pt").is_file()
    assert (trained_run / "cluster" / "clusters.pt").is_file()

    # resume: every stage finds its finished last.pt and only re-evaluates
    monkeypatch.chdir(trained_run)
    resumed = train(
        compose_cfg(tiny_overrides(tiny_synthetic) + ["resume=true", "stages=[finetune_backbone]"])
    )
    assert resumed["baseline"]["test"]["accuracy"] == metrics["baseline"]["test"]["accuracy"]
    assert resumed["majority_rate_test"] == pytest.approx(metrics["majority_rate_test"])
    assert "resumed from" in (trained_run / "run.log").read_text()

    ckpt = trained_run / "drag" / "checkpoints" / "best.pt"
    images = tiny_synthetic / "images"
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "broken.png").write_bytes(b"\x89PNG not really")
    fine = next((images / "private").glob("*.jpg"))
    (tmp_path / "junk" / "fine.jpg").write_bytes(fine.read_bytes())
    out = predict_folder(images, ckpt, tmp_path / "preds.csv", device="cpu", batch_size=7)
    rows = list(csv.DictReader(open(tmp_path / "preds.csv")))
    assert len(rows) == 40 and out["images"] == 40
    assert all(
        r["label"] in ("private", "public") and 0 <= float(r["p_private"]) <= 1 for r in rows
    )
    assert out["threshold"] == pytest.approx(metrics["drag"]["threshold"])
    bad = predict_folder(tmp_path / "junk", ckpt, tmp_path / "junk.csv", device="cpu")
    assert bad["images"] == 1 and bad["unreadable"] == 1
    assert "broken.png" in Path(bad["unreadable_list"]).read_text()

    figures = explain(images / "private", ckpt, tmp_path / "explain", device="cpu", max_images=2)
    assert len(figures) == 2 and Path(figures[0]["png"]).stat().st_size > 1000
    assert len(figures[0]["adjacency"]) == 3

    # evaluate.py logic on the same split reproduces the stored test accuracy
    from drag.evaluate import run as evaluate_run

    (tmp_path / "eval").mkdir()
    monkeypatch.chdir(tmp_path / "eval")
    evaluated = evaluate_run(compose_cfg(tiny_overrides(tiny_synthetic) + [f"checkpoint={ckpt}"]))
    assert evaluated["test"]["accuracy"] == pytest.approx(metrics["drag"]["test"]["accuracy"])
    assert (tmp_path / "eval" / "metrics.json").is_file()


def test_inference_imports_no_training_code():
    loaded = modules_loaded_by(
        ["drag.predict", "drag.explain", "drag.evaluate"], ["drag.training", "trilab.loop"]
    )
    assert loaded == []
