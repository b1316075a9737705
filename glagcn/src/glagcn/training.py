"""Training and evaluation runs, driven by the Hydra config (see ``configs/``)."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from glagcn.data.batching import WindowedPoses
from glagcn.datasets import Splits, load_splits
from glagcn.evaluation import baselines, evaluate_model
from glagcn.metrics import mpjpe
from glagcn.model import GLAGCN, count_parameters
from glagcn.model.glagcn import architecture_for
from glagcn.optim import bn_momentum, build_optimizer, build_scheduler, set_bn_momentum
from glagcn.render import plot_training_curves
from glagcn.skeleton import Skeleton, get_skeleton
from trilab.checkpoint import (
    BEST_CHECKPOINT,
    LAST_CHECKPOINT,
    checkpoint_dir,
    latest_checkpoint,
    load_checkpoint,
    read_checkpoint,
    save_checkpoint,
)
from trilab.distributed import DistContext, init_distributed
from trilab.hydra_utils import run_dir
from trilab.runlog import RunLogger
from trilab.seed import seed_everything

SUMMARY_KEYS = ("mpjpe_mm", "p_mpjpe_mm", "n_mpjpe_mm", "mpjve_mm", "pck150", "auc")


def build_model(model_cfg: DictConfig | dict, skeleton: Skeleton) -> GLAGCN:
    cfg = dict(model_cfg)
    widths = cfg.get("filter_widths") or architecture_for(int(cfg["receptive_field"]))
    return GLAGCN(
        skeleton,
        filter_widths=tuple(widths),
        channels=int(cfg.get("channels", 96)),
        temporal_kernel=int(cfg.get("temporal_kernel", 9)),
        dropout=float(cfg.get("dropout", 0.1)),
        graph_dropout=float(cfg.get("graph_dropout", 0.1)),
        output_layer=str(cfg.get("output_layer", "per_joint")),
        sequence_branch=bool(cfg.get("sequence_branch", True)),
        # A checkpoint written before temporal_padding existed was trained with 'centred'.
        temporal_padding=str(cfg.get("temporal_padding", "centred")),
        init=str(cfg.get("init", "authors")),
    )


def model_from_checkpoint(path: str | Path, device: torch.device) -> tuple[GLAGCN, dict]:
    """Rebuild the model a checkpoint was trained with and load its weights."""
    payload = read_checkpoint(path)
    extra = payload.get("extra", {})
    if "model_config" not in extra or "skeleton" not in extra:
        raise ValueError(f"{path} has no model_config/skeleton: not a glagcn checkpoint")
    model = build_model(extra["model_config"], get_skeleton(extra["skeleton"]))
    load_checkpoint(path, model=model, restore_rng=False)
    return model.to(device).eval(), extra


def _summary(result: dict) -> dict:
    return {k: result[k] for k in SUMMARY_KEYS if k in result}


def _uses_sequence_loss(cfg: DictConfig) -> bool:
    return bool(cfg.model.sequence_branch and cfg.train.sequence_loss_weight > 0)


def _epoch_batches(windows: WindowedPoses, cfg: DictConfig, ctx: DistContext) -> int:
    """Batches per epoch, all ranks together; a multiple of the world size when distributed,
    so every rank runs the same number of steps (or DDP's all-reduce would hang)."""
    batch_size = int(cfg.batch_size)
    total = -(-windows.num_frames // batch_size)
    if ctx.is_distributed:
        total = windows.num_frames // batch_size
    if cfg.train.max_batches_per_epoch is not None:
        total = min(total, int(cfg.train.max_batches_per_epoch))
    return total // ctx.world_size * ctx.world_size


def _train_epoch(model, optimizer, windows: WindowedPoses, cfg: DictConfig, ctx: DistContext,
                 generator: np.random.Generator, log: RunLogger, epoch: int) -> dict:
    model.train()
    use_sequence = _uses_sequence_loss(cfg)
    autocast = (torch.autocast("cuda", dtype=torch.bfloat16)
                if cfg.train.amp and ctx.device.type == "cuda" else contextlib.nullcontext())
    # Loss sums stay on the device: reading them every step would wait for the GPU each time.
    sums = torch.zeros(2, dtype=torch.float64, device=ctx.device)
    samples, started = 0, time.perf_counter()
    total = _epoch_batches(windows, cfg, ctx)
    batches = windows.iterate(int(cfg.batch_size), shuffle=True, generator=generator,
                              rank=ctx.rank, world_size=ctx.world_size, max_batches=total)
    for keypoints, poses in log.progress(batches, f"epoch {epoch}", total // ctx.world_size):
        keypoints = keypoints.to(ctx.device, non_blocking=True)  # no-ops for device tables
        poses = poses.to(ctx.device, non_blocking=True)
        pad = (keypoints.shape[1] - 1) // 2
        centre_target = poses[:, pad:pad + 1] if poses.shape[1] > 1 else poses
        with autocast:
            if use_sequence:
                centre, sequence = model(keypoints, return_sequence=True)
            else:
                centre = model(keypoints)
            loss = mpjpe(centre.float(), centre_target.float())
            total_loss = loss
            if use_sequence:
                sequence_loss = mpjpe(sequence.float(), poses.float())
                total_loss = loss + cfg.train.sequence_loss_weight * sequence_loss
                sums[1] += sequence_loss.detach() * len(keypoints)
        optimizer.zero_grad(set_to_none=True)
        total_loss.backward()
        optimizer.step()
        sums[0] += loss.detach() * len(keypoints)
        samples += len(keypoints)
    loss_sum, sequence_sum = (1000 * sums).tolist()  # the epoch's one wait for the device
    seconds = time.perf_counter() - started
    result = {"loss_mm": loss_sum / max(samples, 1)}
    if use_sequence:
        result["sequence_loss_mm"] = sequence_sum / max(samples, 1)
    result["frames_per_s"] = samples / max(seconds, 1e-9)
    return result


def train(cfg: DictConfig) -> dict:
    """Train on the configured data, select on validation (or keep the last epoch), test."""
    ctx = init_distributed(cfg.device)
    seed_everything(int(cfg.seed), bool(cfg.deterministic))  # batch order: the NumPy generator
    out = run_dir()
    with RunLogger(out, enabled=ctx.is_main) as log, ctx:
        splits = load_splits(cfg.data)
        log.info(f"data: {cfg.data.dataset} ({cfg.data.get('keypoints', '')}) "
                 f"train {len(splits.train)} / val {len(splits.val)} / test {len(splits.test)} "
                 f"sequences")
        model = build_model(cfg.model, splits.skeleton).to(ctx.device)
        log.info(f"model: receptive field {model.receptive_field}, "
                 f"{count_parameters(model):,} parameters")
        windows = WindowedPoses(
            splits.train, model.receptive_field, splits.skeleton,
            flip_augment=bool(cfg.train.flip_augment),
            full_sequence_3d=_uses_sequence_loss(cfg),
            device=ctx.device if cfg.train.get("data_on_device", True) else "cpu")
        opt_cfg = cfg.optimizer
        optimizer, scheduled = build_optimizer(
            model, opt_cfg.name, opt_cfg.lr, opt_cfg.weight_decay, tuple(opt_cfg.betas),
            opt_cfg.eps, opt_cfg.lookahead_alpha, opt_cfg.lookahead_k)
        scheduler = build_scheduler(scheduled, opt_cfg.schedule, int(cfg.epochs), opt_cfg.lr_min,
                                    opt_cfg.gamma)
        generator = np.random.default_rng(int(cfg.seed))
        extra = {"model_config": OmegaConf.to_container(cfg.model, resolve=True),
                 "skeleton": splits.skeleton.name, "best_val_mpjpe_mm": float("inf"),
                 "best_epoch": -1}
        start_epoch = 0
        previous = latest_checkpoint(out) if cfg.resume else None
        if cfg.resume and previous is None:
            log.warning(f"resume=true but {out}/checkpoints/{LAST_CHECKPOINT} does not exist; "
                        "starting from scratch")
        if previous is not None:
            state = load_checkpoint(previous, model=model, optimizer=optimizer,
                                    scheduler=scheduler, map_location=ctx.device)
            extra.update(state["extra"])
            generator.bit_generator.state = state["extra"]["batch_rng"]
            start_epoch = state["epoch"] + 1
            log.info(f"resumed from {previous} after epoch {state['epoch']}")
        trainable = ctx.wrap_model(model)
        if cfg.train.compile:
            trainable = torch.compile(trainable)
        ckpt_dir = checkpoint_dir(out)
        for epoch in range(start_epoch, int(cfg.epochs)):
            momentum = bn_momentum(epoch, int(cfg.epochs), cfg.bn_momentum.start,
                                   cfg.bn_momentum.end)
            set_bn_momentum(model, momentum)
            lr = scheduled.param_groups[0]["lr"]
            stats = _train_epoch(trainable, optimizer, windows, cfg, ctx, generator, log, epoch)
            scheduler.step()
            scalars = {f"train/{k}": v for k, v in stats.items()}
            scalars.update({"train/lr": lr, "train/bn_momentum": momentum})
            if splits.val and ctx.is_main:
                val = evaluate_model(model, splits.val, splits.skeleton, ctx.device,
                                     flip_test=cfg.eval.flip_test)
                scalars["val/mpjpe_mm"] = val["mpjpe_mm"]
                if val["mpjpe_mm"] < extra["best_val_mpjpe_mm"]:
                    extra.update(best_val_mpjpe_mm=val["mpjpe_mm"], best_epoch=epoch)
                    save_checkpoint(ckpt_dir / BEST_CHECKPOINT, model=model, epoch=epoch,
                                    extra=extra)
            log.log_scalars(scalars, step=epoch)
            log.info(f"epoch {epoch}: " + ", ".join(f"{k} {v:.4g}" for k, v in scalars.items()))
            if ctx.is_main:
                extra["batch_rng"] = generator.bit_generator.state
                save_checkpoint(ckpt_dir / LAST_CHECKPOINT, model=model, optimizer=optimizer,
                                scheduler=scheduler, epoch=epoch, extra=extra)
            ctx.barrier()
        metrics: dict = {}
        if ctx.is_main:
            metrics = _final_metrics(model, splits, cfg, ctx, extra, log)
            log.write_metrics(metrics)
            try:
                plot_training_curves(out, out / "training_curves.png",
                                     keys=("train/loss_mm", "val/mpjpe_mm"))
            except ValueError as error:
                log.warning(f"no training-curve plot: {error}")
        return metrics


def _final_metrics(model: GLAGCN, splits: Splits, cfg: DictConfig, ctx: DistContext,
                   extra: dict, log: RunLogger) -> dict:
    out = run_dir()
    selection = "last_epoch"
    best = checkpoint_dir(out) / BEST_CHECKPOINT
    if splits.val and best.is_file():
        load_checkpoint(best, model=model, restore_rng=False)
        selection = f"best validation epoch {extra['best_epoch']}"
    log.info(f"testing the {selection} model on {len(splits.test)} sequences")
    test = evaluate_model(model, splits.test, splits.skeleton, ctx.device, cfg.eval.flip_test)
    reference = baselines(splits.train, splits.test, splits.skeleton)
    metrics = dict(test)
    metrics.update(
        selection=selection,
        receptive_field=model.receptive_field,
        parameters=count_parameters(model),
        epochs=int(cfg.epochs),
        baselines={name: _summary(result) for name, result in reference.items()},
    )
    log.info("test " + ", ".join(f"{k} {v:.2f}" for k, v in _summary(test).items())
             + " | mean pose " + f"{reference['mean_pose']['mpjpe_mm']:.2f}"
             + " | linear regression " + f"{reference['linear_regression']['mpjpe_mm']:.2f}")
    return metrics


def evaluate(cfg: DictConfig) -> dict:
    """Evaluate ``checkpoint`` on the configured test subjects; writes metrics.json."""
    if not cfg.get("checkpoint"):
        raise ValueError("evaluate needs checkpoint=PATH")
    ctx = init_distributed(cfg.device)
    with RunLogger(run_dir(), enabled=ctx.is_main, tensorboard=False) as log, ctx:
        model, extra = model_from_checkpoint(cfg.checkpoint, ctx.device)
        splits = load_splits(cfg.data)
        if splits.skeleton.name != extra["skeleton"]:
            raise ValueError(f"{cfg.checkpoint} was trained on the {extra['skeleton']} skeleton "
                             f"but data.dataset={cfg.data.dataset} uses {splits.skeleton.name}")
        test = evaluate_model(model, splits.test, splits.skeleton, ctx.device, cfg.eval.flip_test)
        metrics = dict(test, checkpoint=str(cfg.checkpoint),
                       receptive_field=model.receptive_field)
        log.info("test " + ", ".join(f"{k} {v:.2f}" for k, v in _summary(test).items()))
        log.write_metrics(metrics)
        return metrics
