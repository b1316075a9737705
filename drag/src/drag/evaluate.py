"""Re-evaluate a trained checkpoint on the configured data: threshold on val, metrics on test."""

from __future__ import annotations

from omegaconf import open_dict

from drag.data import BadFileReport, build_splits, make_loader
from drag.errors import DragInputError
from drag.evaluation import evaluate_splits, majority_rate
from drag.inference import load_trained
from trilab.device import select_device
from trilab.hydra_utils import run_dir
from trilab.runlog import RunLogger


def run(cfg) -> dict:
    if not cfg.get("checkpoint"):
        raise DragInputError("evaluate needs checkpoint=PATH (e.g. <run>/drag/checkpoints/best.pt)")
    out_dir = run_dir()
    device = select_device(cfg.device)
    model, info = load_trained(cfg.checkpoint, device, ("drag", "finetune_backbone"), "evaluate.py")
    with RunLogger(out_dir, tensorboard=False) as log:
        with open_dict(cfg):
            cfg.data.image_size = info["image_size"]  # the size the weights were trained at
        report = BadFileReport()
        splits = build_splits(cfg.data, cfg.seed, log, report)
        loaders = {s: make_loader(splits[s], cfg.data) for s in ("val", "test")}
        result = evaluate_splits(model, loaders, device, report, log)
        result.update(
            {
                "checkpoint": str(cfg.checkpoint),
                "kind": info["kind"],
                "majority_rate_test": majority_rate([s.label for s in splits["test"]]),
            }
        )
        report.warn(log, out_dir / "skipped_files.tsv")
        log.info(
            f"{info['kind']} test accuracy {result['test']['accuracy']:.4f}, balanced "
            f"{result['test']['balanced_accuracy']:.4f} (threshold {result['threshold']:.3f})"
        )
        log.write_metrics(result)
    return result
