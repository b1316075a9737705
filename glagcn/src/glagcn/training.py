"""Training and evaluation runs, driven by the Hydra config (see ``configs/``)."""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
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
    CheckpointError,
    checkpoint_dir,
    find_resume_checkpoint,
    gather_rng_states,
    load_checkpoint,
    read_checkpoint,
    resume_position,
    save_checkpoint,
)
from trilab.distributed import DistContext, init_distributed
from trilab.errors import UserError
from trilab.finite import FiniteLossGuard
from trilab.hydra_utils import run_dir
from trilab.runlog import RunLogger
from trilab.seed import seed_everything
from trilab.stopping import StopSignal

SUMMARY_KEYS = ("mpjpe_mm", "p_mpjpe_mm", "n_mpjpe_mm", "mpjve_mm", "pck150", "auc",
                "mpjpe_root_centred_mm")


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
        raise CheckpointError(f"{path} has no model_config/skeleton: not a glagcn checkpoint")
    model = build_model(extra["model_config"], get_skeleton(extra["skeleton"]))
    load_checkpoint(path, model=model, restore_rng=False)
    return model.to(device).eval(), extra


def _summary(result: dict) -> dict:
    return {k: result[k] for k in SUMMARY_KEYS if k in result}


def _evaluate(model: GLAGCN, sequences, splits: Splits, cfg: DictConfig,
              ctx: DistContext) -> dict:
    return evaluate_model(model, sequences, splits.skeleton, ctx.device, cfg.eval.flip_test,
                          by_subject_last_take_only=bool(
                              cfg.eval.get("by_subject_last_take_only", False)))


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


@dataclass
class EpochProgress:
    """How far this rank got into an epoch: what a mid-epoch checkpoint must carry."""

    steps: int = 0
    samples: int = 0
    loss_sums: list[float] = field(default_factory=lambda: [0.0, 0.0])  # metres x frames

    def as_dict(self) -> dict:
        return {"steps": self.steps, "samples": self.samples, "loss_sums": list(self.loss_sums)}


GUARD_CHECK_EVERY = 100  # steps between reads of the device-side NaN flag on a GPU


def _train_epoch(model, optimizer, windows: WindowedPoses, cfg: DictConfig, ctx: DistContext,
                 generator: np.random.Generator, log: RunLogger, epoch: int,
                 stop: StopSignal | None = None, guard: FiniteLossGuard | None = None,
                 progress: EpochProgress | None = None) -> dict | None:
    """One epoch from ``progress.steps`` on; ``None`` when a stop was requested (``progress``
    then says where)."""
    stop = stop if stop is not None else StopSignal()  # not entered: never requested
    guard = guard if guard is not None else FiniteLossGuard(ctx.device)
    progress = progress if progress is not None else EpochProgress()
    model.train()
    use_sequence = _uses_sequence_loss(cfg)
    autocast = (torch.autocast("cuda", dtype=torch.bfloat16)
                if cfg.train.amp and ctx.device.type == "cuda" else contextlib.nullcontext())
    # Loss sums stay on the device: reading them every step would wait for the GPU each time.
    sums = torch.tensor(progress.loss_sums, dtype=torch.float64, device=ctx.device)
    samples, started = progress.samples, time.perf_counter()
    total = _epoch_batches(windows, cfg, ctx)
    batches = windows.iterate(int(cfg.batch_size), shuffle=True, generator=generator,
                              rank=ctx.rank, world_size=ctx.world_size, max_batches=total,
                              skip_batches=progress.steps)
    remaining = total // ctx.world_size - progress.steps
    stopped = False
    step = progress.steps
    for keypoints, poses in log.progress(batches, f"epoch {epoch}", remaining):
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
        guard.observe(total_loss, epoch, step)
        optimizer.zero_grad(set_to_none=True)
        total_loss.backward()
        optimizer.step()
        sums[0] += loss.detach() * len(keypoints)
        samples += len(keypoints)
        step += 1
        if step % GUARD_CHECK_EVERY == 0:
            guard.check()
        if stop.requested(step):
            stopped = True
            break
    guard.check()
    progress.steps, progress.samples = step, samples
    progress.loss_sums = sums.tolist()  # the epoch's one wait for the device
    if stopped:
        return None
    loss_sum, sequence_sum = (1000 * value for value in progress.loss_sums)
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
        for note in splits.notes:
            log.warning(note)
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
        start_epoch, progress = 0, EpochProgress()
        ckpt_dir = checkpoint_dir(out)
        last = ckpt_dir / LAST_CHECKPOINT
        previous = find_resume_checkpoint(last, bool(cfg.resume), log)
        if previous is not None:
            state = load_checkpoint(previous, model=model, optimizer=optimizer,
                                    scheduler=scheduler, map_location=ctx.device, rank=ctx.rank,
                                    world_size=ctx.world_size)
            extra.update(state["extra"])
            generator.bit_generator.state = state["extra"]["batch_rng"]
            start_epoch, steps_done = resume_position(state)
            partial = extra.pop("partial_epoch", None)
            if steps_done:
                progress = EpochProgress(**partial)
            log.info(f"resumed from {previous} at epoch {start_epoch}"
                     + (f" step {steps_done}" if steps_done else ""))
        trainable = ctx.wrap_model(model)
        if cfg.train.compile:
            trainable = torch.compile(trainable)
        guard = FiniteLossGuard(ctx.device, checkpoint_hint=f"the last good checkpoint is {last}")
        with StopSignal(ctx) as stop:
            _EpochLoop(cfg, ctx, log, model, trainable, optimizer, scheduler, scheduled, windows,
                       splits, generator, extra, ckpt_dir, stop, guard).run(start_epoch, progress)
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


@dataclass
class _EpochLoop:
    """Everything the epoch loop touches, so that it can stop and resume at any step."""

    cfg: DictConfig
    ctx: DistContext
    log: RunLogger
    model: GLAGCN
    trainable: torch.nn.Module  # the model as trained: DDP- and/or compile-wrapped
    optimizer: torch.optim.Optimizer
    scheduler: object
    scheduled: torch.optim.Optimizer  # the optimizer whose lr the scheduler moves
    windows: WindowedPoses
    splits: Splits
    generator: np.random.Generator
    extra: dict
    ckpt_dir: Path
    stop: StopSignal
    guard: FiniteLossGuard

    @property
    def last(self) -> Path:
        return self.ckpt_dir / LAST_CHECKPOINT

    def _stopped(self, where: str) -> None:
        self.log.info(f"{self.stop.signal_name}: stopped {where}; checkpoint {self.last}; "
                      "continue with the same hydra.run.dir and resume=true")
        raise self.stop.stopped(where, self.last)

    def run(self, start_epoch: int, progress: EpochProgress) -> None:
        cfg, ctx, extra = self.cfg, self.ctx, self.extra
        for epoch in range(start_epoch, int(cfg.epochs)):
            momentum = bn_momentum(epoch, int(cfg.epochs), cfg.bn_momentum.start,
                                   cfg.bn_momentum.end)
            set_bn_momentum(self.model, momentum)
            lr = self.scheduled.param_groups[0]["lr"]
            epoch_rng = self.generator.bit_generator.state  # a mid-epoch resume redraws it
            stats = _train_epoch(self.trainable, self.optimizer, self.windows, cfg, ctx,
                                 self.generator, self.log, epoch, self.stop, self.guard,
                                 progress)
            if stats is None:
                rng = gather_rng_states(ctx)
                if ctx.is_main:
                    save_checkpoint(self.last, model=self.model, optimizer=self.optimizer,
                                    scheduler=self.scheduler, epoch=epoch - 1,
                                    steps_into_next_epoch=progress.steps, rng_per_rank=rng,
                                    extra={**extra, "batch_rng": epoch_rng,
                                           "partial_epoch": progress.as_dict()})
                ctx.barrier()
                self._stopped(f"in epoch {epoch} after step {progress.steps}")
            progress = EpochProgress()
            self.scheduler.step()
            scalars = {f"train/{k}": v for k, v in stats.items()}
            scalars.update({"train/lr": lr, "train/bn_momentum": momentum})
            if self.splits.val and ctx.is_main:
                val = _evaluate(self.model, self.splits.val, self.splits, cfg, ctx)
                scalars["val/mpjpe_mm"] = val["mpjpe_mm"]
                if val["mpjpe_mm"] < extra["best_val_mpjpe_mm"]:
                    extra.update(best_val_mpjpe_mm=val["mpjpe_mm"], best_epoch=epoch)
                    save_checkpoint(self.ckpt_dir / BEST_CHECKPOINT, model=self.model,
                                    epoch=epoch, extra=extra)
            self.log.log_scalars(scalars, step=epoch)
            self.log.info(f"epoch {epoch}: "
                          + ", ".join(f"{k} {v:.4g}" for k, v in scalars.items()))
            rng = gather_rng_states(ctx)
            if ctx.is_main:
                extra["batch_rng"] = self.generator.bit_generator.state
                save_checkpoint(self.last, model=self.model, optimizer=self.optimizer,
                                scheduler=self.scheduler, epoch=epoch, extra=extra,
                                rng_per_rank=rng)
            ctx.barrier()
            if epoch + 1 < int(cfg.epochs) and self.stop.requested(0, force=True):
                self._stopped(f"after epoch {epoch}")


def _final_metrics(model: GLAGCN, splits: Splits, cfg: DictConfig, ctx: DistContext,
                   extra: dict, log: RunLogger) -> dict:
    out = run_dir()
    selection = "last_epoch"
    best = checkpoint_dir(out) / BEST_CHECKPOINT
    if splits.val and best.is_file():
        load_checkpoint(best, model=model, restore_rng=False)
        selection = f"best validation epoch {extra['best_epoch']}"
    log.info(f"testing the {selection} model on {len(splits.test)} sequences")
    test = _evaluate(model, splits.test, splits, cfg, ctx)
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
        raise UserError("evaluate needs checkpoint=PATH")
    ctx = init_distributed(cfg.device)
    with RunLogger(run_dir(), enabled=ctx.is_main, tensorboard=False) as log, ctx:
        model, extra = model_from_checkpoint(cfg.checkpoint, ctx.device)
        splits = load_splits(cfg.data)
        for note in splits.notes:
            log.warning(note)
        if splits.skeleton.name != extra["skeleton"]:
            raise UserError(f"{cfg.checkpoint} was trained on the {extra['skeleton']} skeleton "
                             f"but data.dataset={cfg.data.dataset} uses {splits.skeleton.name}")
        test = _evaluate(model, splits.test, splits, cfg, ctx)
        metrics = dict(test, checkpoint=str(cfg.checkpoint),
                       receptive_field=model.receptive_field)
        log.info("test " + ", ".join(f"{k} {v:.2f}" for k, v in _summary(test).items()))
        log.write_metrics(metrics)
        return metrics
