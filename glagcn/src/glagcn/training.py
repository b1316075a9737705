"""Train GLA-GCN on the configured data (see ``configs/``), select on validation, test.

One step: 2D windows -> model -> MPJPE of the centre frame (+ the whole-sequence loss) ->
backward -> optimizer.  Resuming, stops, checkpoints and logging are trilab's training loop.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import torch
from omegaconf import DictConfig, OmegaConf

from glagcn.data.batching import WindowedPoses
from glagcn.data.splits import Splits, load_splits
from glagcn.evaluate import check_input_joints, evaluate_on, summarize
from glagcn.evaluation import baselines
from glagcn.metrics import mpjpe
from glagcn.model import GLAGCN, build_model, count_parameters
from glagcn.optim import bn_momentum, build_optimizer, build_scheduler, set_bn_momentum
from glagcn.render import plot_training_curves
from trilab.checkpoint import load_checkpoint
from trilab.distributed import DistContext
from trilab.loop import EpochResult, EpochTotals, StepResult, TrainLoop, epoch_generator
from trilab.run import start_run
from trilab.runlog import RunLogger


def train(cfg: DictConfig) -> dict:
    """Train on the configured data, select on validation (or keep the last epoch), test."""
    with start_run(cfg, project="glagcn") as run:
        ctx, log = run.ctx, run.log
        splits = load_splits(cfg.data)
        for note in splits.notes:
            log.warning(note)
        log.info(
            f"data: {cfg.data.dataset} ({cfg.data.get('keypoints', '')}) "
            f"train {len(splits.train)} / val {len(splits.val)} / test {len(splits.test)} "
            f"sequences"
        )
        model = build_model(cfg.model, splits.skeleton).to(ctx.device)
        check_input_joints(model, splits.train, "the model", cfg.data)
        log.info(
            f"model: receptive field {model.receptive_field}, "
            f"{count_parameters(model):,} parameters"
        )
        windows = WindowedPoses(
            splits.train,
            model.receptive_field,
            splits.skeleton,
            flip_augment=bool(cfg.train.flip_augment),
            full_sequence_3d=_uses_sequence_loss(cfg),
            device=ctx.device if cfg.train.get("data_on_device", True) else "cpu",
            causal=model.causal,
            keypoint_flip=model.input_flip_permutation,
        )
        opt = cfg.optimizer
        optimizer, scheduled = build_optimizer(
            model,
            opt.name,
            opt.lr,
            opt.weight_decay,
            tuple(opt.betas),
            opt.eps,
            opt.lookahead_alpha,
            opt.lookahead_k,
        )
        scheduler = build_scheduler(scheduled, opt.schedule, int(cfg.epochs), opt.lr_min, opt.gamma)
        trainable = ctx.wrap_model(model)
        if cfg.train.compile:
            trainable = torch.compile(trainable, backend=compile_backend(cfg.train.compile))
        total_batches = batches_per_epoch(windows, cfg, ctx)
        loop = run.loop(
            trainable,
            {"optimizer": optimizer},
            epochs=cfg.epochs,
            steps_per_epoch=total_batches // ctx.world_size,
            scheduler=scheduler,
            best="min",
            extra={
                "model_config": OmegaConf.to_container(cfg.model, resolve=True),
                "skeleton": splits.skeleton.name,
            },
        )

        def batches(epoch: int, skip: int):
            return windows.iterate(
                int(cfg.batch_size),
                shuffle=True,
                generator=epoch_generator(run.seed, epoch),
                rank=ctx.rank,
                world_size=ctx.world_size,
                max_batches=total_batches,
                skip_batches=skip,
            )

        def momentum(epoch: int) -> float:
            return bn_momentum(epoch, int(cfg.epochs), cfg.bn_momentum.start, cfg.bn_momentum.end)

        def end_epoch(epoch: int, totals: EpochTotals) -> EpochResult:
            scalars = {"train/loss_mm": 1000 * totals.mean("loss", "frames")}
            if _uses_sequence_loss(cfg):
                scalars["train/sequence_loss_mm"] = 1000 * totals.mean("sequence_loss", "frames")
            scalars.update(
                {
                    "train/frames_per_s": totals.sums["frames"] / max(totals.seconds, 1e-9),
                    "train/lr": scheduled.param_groups[0]["lr"],
                    "train/bn_momentum": momentum(epoch),
                }
            )
            if not (splits.val and ctx.is_main):
                return EpochResult(scalars)
            val = evaluate_on(model, splits.val, splits, cfg, ctx.device)["mpjpe_mm"]
            return EpochResult({**scalars, "val/mpjpe_mm": val}, score=val)

        loop.run(
            batches,
            training_step(trainable, optimizer, cfg, ctx.device),
            end_epoch,
            start_epoch=lambda epoch: set_bn_momentum(model, momentum(epoch)),
        )
        if not ctx.is_main:
            return {}
        metrics = _test(model, splits, cfg, ctx, loop, log)
        log.write_metrics(metrics)
        try:
            plot_training_curves(
                run.folder,
                run.folder / "training_curves.png",
                keys=("train/loss_mm", "val/mpjpe_mm"),
            )
        except ValueError as error:
            log.warning(f"no training-curve plot: {error}")
        return metrics


def compile_backend(setting: bool | str) -> str:
    """``train.compile``: ``true`` is torch's default backend (inductor); a string names one
    (``aot_eager_decomp_partition`` traces and partitions as inductor does, without generating
    C++/Triton code)."""
    return "inductor" if setting is True else str(setting)


def _uses_sequence_loss(cfg: DictConfig) -> bool:
    return bool(cfg.model.sequence_branch and cfg.train.sequence_loss_weight > 0)


def batches_per_epoch(windows: WindowedPoses, cfg: DictConfig, ctx: DistContext) -> int:
    """Batches per epoch, all ranks together; a multiple of the world size when distributed,
    so every rank runs the same number of steps (or DDP's all-reduce would hang)."""
    batch_size = int(cfg.batch_size)
    total = -(-windows.num_frames // batch_size)
    if ctx.is_distributed:
        total = windows.num_frames // batch_size
    if cfg.train.max_batches_per_epoch is not None:
        total = min(total, int(cfg.train.max_batches_per_epoch))
    return total // ctx.world_size * ctx.world_size


def training_step(
    model: torch.nn.Module, optimizer, cfg: DictConfig, device: torch.device
) -> Callable[[tuple], StepResult]:
    """The step on one batch of (2D windows, 3D poses): loss sums per frame, in metres."""
    use_sequence = _uses_sequence_loss(cfg)
    causal = bool(cfg.model.get("causal", False))
    autocast = (
        torch.autocast("cuda", dtype=torch.bfloat16)
        if cfg.train.amp and device.type == "cuda"
        else contextlib.nullcontext()
    )

    def step(batch: tuple[torch.Tensor, torch.Tensor]) -> StepResult:
        keypoints, poses = (t.to(device, non_blocking=True) for t in batch)  # no-ops on device
        # the predicted frame: the window's centre, or its last frame for a causal model
        target = keypoints.shape[1] - 1 if causal else (keypoints.shape[1] - 1) // 2
        centre_target = poses[:, target : target + 1] if poses.shape[1] > 1 else poses
        frames = len(keypoints)
        with autocast:
            if use_sequence:
                centre, sequence = model(keypoints, return_sequence=True)
            else:
                centre = model(keypoints)
            loss = mpjpe(centre.float(), centre_target.float())
            sums = {"loss": loss.detach() * frames, "frames": frames}
            total_loss = loss
            if use_sequence:
                sequence_loss = mpjpe(sequence.float(), poses.float())
                total_loss = loss + cfg.train.sequence_loss_weight * sequence_loss
                sums["sequence_loss"] = sequence_loss.detach() * frames
        optimizer.zero_grad(set_to_none=True)
        total_loss.backward()
        optimizer.step()
        return StepResult(total_loss, sums)

    return step


def _test(
    model: GLAGCN,
    splits: Splits,
    cfg: DictConfig,
    ctx: DistContext,
    loop: TrainLoop,
    log: RunLogger,
) -> dict:
    """The selected model (best validation epoch, else the last) on the test split, beside the
    mean-pose and linear-regression baselines."""
    selection = "last_epoch"
    if splits.val and loop.best_checkpoint.is_file():
        load_checkpoint(loop.best_checkpoint, model=model, restore_rng=False)
        selection = f"best validation epoch {loop.best_epoch}"
    log.info(f"testing the {selection} model on {len(splits.test)} sequences")
    test = evaluate_on(model, splits.test, splits, cfg, ctx.device)
    reference = baselines(splits.train, splits.test, splits.skeleton)
    metrics = dict(test)
    metrics.update(
        selection=selection,
        receptive_field=model.receptive_field,
        parameters=count_parameters(model),
        epochs=int(cfg.epochs),
        baselines={name: summarize(result) for name, result in reference.items()},
    )
    log.info(
        "test "
        + ", ".join(f"{k} {v:.2f}" for k, v in summarize(test).items())
        + " | mean pose "
        + f"{reference['mean_pose']['mpjpe_mm']:.2f}"
        + " | linear regression "
        + f"{reference['linear_regression']['mpjpe_mm']:.2f}"
    )
    return metrics
