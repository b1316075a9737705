"""Evaluate a checkpoint on the configured test subjects (``evaluate.py``), and the scoring
that training shares with it."""

from __future__ import annotations

from omegaconf import DictConfig

from glagcn.data.splits import Splits, load_splits
from glagcn.evaluation import evaluate_model
from glagcn.model import GLAGCN, model_from_checkpoint
from trilab.distributed import init_distributed
from trilab.errors import UserError
from trilab.hydra_utils import run_dir
from trilab.runlog import RunLogger

SUMMARY_KEYS = (
    "mpjpe_mm",
    "p_mpjpe_mm",
    "n_mpjpe_mm",
    "mpjve_mm",
    "pck150",
    "auc",
    "mpjpe_root_centred_mm",
)


def summarize(result: dict) -> dict:
    """The headline errors of an evaluation (no per-action or per-subject tables)."""
    return {k: result[k] for k in SUMMARY_KEYS if k in result}


def evaluate_on(model: GLAGCN, sequences, splits: Splits, cfg: DictConfig, device) -> dict:
    """``model`` on ``sequences`` as the configuration asks (test-time flip, subject tables)."""
    return evaluate_model(
        model,
        sequences,
        splits.skeleton,
        device,
        cfg.eval.flip_test,
        by_subject_last_take_only=bool(cfg.eval.get("by_subject_last_take_only", False)),
    )


def check_input_joints(model: GLAGCN, sequences, checkpoint, data: DictConfig) -> None:
    """The data's 2D joints are the ones the model takes (COCO-17 for the authors' HE_13);
    ``checkpoint`` names the model in the message (a path, or "the model" in training)."""
    for sequence in sequences[:1]:
        joints = sequence.keypoints_2d.shape[1]
        if joints != model.num_input_joints:
            raise UserError(
                f"{checkpoint} takes {model.num_input_joints} 2D joints "
                f"(model.input_layout={model.input_layout}) but data.keypoints="
                f"{data.get('keypoints')} has {joints}"
            )


def evaluate(cfg: DictConfig) -> dict:
    """Evaluate ``checkpoint`` on the configured test subjects; writes metrics.json."""
    if not cfg.get("checkpoint"):
        raise UserError("evaluate needs checkpoint=PATH")
    ctx = init_distributed(cfg.device)
    with RunLogger(run_dir(), enabled=ctx.is_main, tensorboard=False) as log, ctx:
        model, extra = model_from_checkpoint(cfg.checkpoint, ctx.device)
        splits = load_splits(cfg.data)
        for note in splits.notes:
            log.warning(note)
        if splits.skeleton.name != extra["skeleton"]:
            raise UserError(
                f"{cfg.checkpoint} was trained on the {extra['skeleton']} skeleton "
                f"but data.dataset={cfg.data.dataset} uses {splits.skeleton.name}"
            )
        check_input_joints(model, splits.test, cfg.checkpoint, cfg.data)
        test = evaluate_on(model, splits.test, splits, cfg, ctx.device)
        metrics = dict(test, checkpoint=str(cfg.checkpoint), receptive_field=model.receptive_field)
        log.info("test " + ", ".join(f"{k} {v:.2f}" for k, v in summarize(test).items()))
        log.write_metrics(metrics)
        return metrics
