"""Train DRAG: the stages of the recipe listed in ``stages``, in recipe order.

    finetune_backbone -> cluster -> pretrain_cgl -> drag

Each stage reads the earlier stages' artefacts from the run's ``work_dir`` (or ``paths.*``) and
writes its own under ``work_dir/<stage>/``; the three trained stages are each one resumable
trilab training loop (``<stage>/checkpoints/{last,best}.pt``).  ``metrics.json`` holds DRAG, the
fine-tuned backbone alone (the baseline) and the majority-class rate on the same test split.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from drag import CLASS_NAMES
from drag.checkpoint_stage import CHECKPOINT_STAGES, require_stage
from drag.cluster import cluster_channels, load_clusters, save_clusters
from drag.data.formats import class_counts
from drag.data.images import BadFileReport
from drag.data.splits import balanced_weights, build_splits, make_loader, maybe_generate
from drag.errors import DragInputError, MissingFileError
from drag.evaluation import choose_threshold, collect_scores, evaluate_splits, majority_rate
from drag.model.backbone import Backbone
from drag.model.cgl import cgl_pretrain_loss, membership_targets
from drag.model.drag import DRAG, build_drag
from drag.model.losses import class_weights_from_labels, distance_loss, diversity_loss
from trilab.atomic import atomic_write_text
from trilab.checkpoint import CheckpointError, load_checkpoint, read_checkpoint
from trilab.hydra_utils import run_dir
from trilab.loop import EpochResult, EpochTotals, StepResult, epoch_order, steps_per_epoch
from trilab.metrics import classification_metrics
from trilab.run import Run as TrilabRun
from trilab.run import start_run
from trilab.run_files import (
    BEST_CHECKPOINT,
    CHECKPOINT_DIR,
    METRICS_FILE,
    RUN_FILES,
    checkpoint_dir,
    checkpoint_records,
)
from trilab.runlog import to_jsonable
from trilab.weights import unwrap_model

STAGES = ("finetune_backbone", "cluster", "pretrain_cgl", "drag")


def train(cfg, stage_functions: dict | None = None) -> dict:
    """Run the configured stages; ``stage_functions`` replaces stages by name (a comparison's
    variant of one stage)."""
    functions = {**STAGE_FUNCTIONS, **(stage_functions or {})}
    unknown = [s for s in cfg.stages if s not in STAGES]
    if unknown:
        raise DragInputError(f"unknown stage(s) {unknown}; stages are {list(STAGES)}")
    stages = [s for s in STAGES if s in cfg.stages]
    out_dir = run_dir()
    work_dir = Path(cfg.work_dir) if cfg.get("work_dir") else out_dir
    with start_run(
        cfg,
        project="drag",
        folder=work_dir,
        log_folder=out_dir,
        records=_stage_records(stages),
        run_files=_replaced_by_overwrite(stages, work_dir == out_dir),
    ) as started:
        run = Run(**vars(started))
        ctx, log, stop = run.ctx, run.log, run.stop
        log.info(
            f"DRAG stages {stages} on {ctx.device} (world size {ctx.world_size}); "
            f"artefacts in {work_dir}"
        )
        if ctx.is_main and cfg.data.format == "ipd":
            maybe_generate(cfg.data, log)  # rank 0 only: no two writers per file
        ctx.barrier()
        run.splits = build_splits(cfg.data, cfg.seed, log, run.report)
        times = {}
        for number, stage in enumerate(stages):
            start = time.perf_counter()
            functions[stage](run)
            times[stage] = time.perf_counter() - start
            log.info(f"stage {stage} done in {times[stage]:.1f}s")
            if number + 1 < len(stages) and stop.requested(0, force=True):
                stop.halt(f"after stage {stage}", None, log)
        run.report.warn(log, work_dir / "skipped_files.tsv")
        summary = summarize(run, times)
        log.write_metrics(summary)
        if work_dir != out_dir and ctx.is_main:
            atomic_write_text(work_dir / METRICS_FILE, json.dumps(summary, indent=2, default=str))
        return summary


def _stage_records(stages: list[str]) -> list[str]:
    """What shows that a stage of this run already ran in the folder: its checkpoints (the
    run's log is shared by stages run one at a time into one folder)."""
    return [
        name for stage in stages if stage in CHECKPOINT_STAGES for name in checkpoint_records(stage)
    ]


def _replaced_by_overwrite(stages: list[str], logs_in_work_dir: bool) -> list[str]:
    """The selected stages' folders; the run's logs too when the whole recipe is redone."""
    logs = [name for name in RUN_FILES if name != CHECKPOINT_DIR]
    return stages + (logs if logs_in_work_dir and len(stages) == len(STAGES) else [])


@dataclass
class Run(TrilabRun):
    """What the stages of one run share: trilab's run (its ``folder`` is the ``work_dir``),
    the files skipped so far and the data splits."""

    report: BadFileReport = field(default_factory=BadFileReport)
    splits: dict = field(default_factory=dict)

    def stage_dir(self, name: str) -> Path:
        return self.folder / name

    def eval_loader(self, split: str):
        return make_loader(self.splits[split], self.cfg.data)

    def weighted_ce(self) -> Callable:
        """Cross-entropy weighted 1 - class frequency (``class_weighting``, the paper)."""
        weight = None
        if self.cfg.class_weighting:
            labels = [s.label for s in self.splits["train"]]
            weight = class_weights_from_labels(labels).to(self.device)
        return lambda logits, labels: F.cross_entropy(logits, labels, weight=weight)

    def write_metrics(self, stage: str, payload: dict) -> None:
        """``<stage>/metrics.json`` (rank 0)."""
        if self.ctx.is_main:
            text = json.dumps(to_jsonable(payload), indent=2, sort_keys=True)
            atomic_write_text(self.stage_dir(stage) / METRICS_FILE, text)

    def progress_until_stop(self, iterable, **kwargs):
        """``log.progress`` for work that cannot be checkpointed half-way (clustering, on rank
        0 only): a stop request ends it at once, and resume=true redoes it."""
        for item in self.log.progress(iterable, **kwargs):
            yield item
            if self.stop.signum is not None:
                self.stop.halt(
                    "during channel clustering (resume=true clusters again)", None, self.log
                )


def fit(
    run: Run,
    stage: str,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    loss_fn: Callable[[dict], torch.Tensor],
    epochs: int,
    extra: dict,
    select: bool = True,
    start_epoch: Callable[[int], None] | None = None,
    after_step: Callable[[dict], None] | None = None,
    checkpointables: dict | None = None,
) -> Path:
    """Train ``model`` (as wrapped for training) on the training split; the path of the best
    epoch's checkpoint.

    The best epoch is chosen on validation ROC-AUC (threshold-free); without ``select`` the
    last epoch is kept as best.  Every checkpoint records ``extra["stage"]``; with ``select``
    also the decision threshold chosen on validation for its weights (``extra["threshold"]``).
    ``checkpointables``: what ``last.pt`` saves besides the weights (by default ``optimizer``;
    also the optimizer of an ``after_step`` that steps one of its own).
    """
    cfg, ctx = run.cfg, run.ctx
    samples = run.splits["train"]
    batch_size = int(cfg.data.batch_size)
    weights = balanced_weights(samples) if cfg.data.get("balanced_sampling", False) else None
    loop = run.loop(
        model,
        checkpointables or {"optimizer": optimizer},
        epochs=epochs,
        steps_per_epoch=steps_per_epoch(len(samples), batch_size, ctx.world_size),
        checkpoint_folder=checkpoint_dir(run.stage_dir(stage)),
        extra={**extra, "stage": stage},
        name=f"stage {stage}",
    )
    val_loader = run.eval_loader("val")
    plain = unwrap_model(model)

    def batches(epoch: int, skip: int):
        order = epoch_order(
            len(samples), cfg.seed, epoch, rank=ctx.rank, world_size=ctx.world_size, weights=weights
        )
        return make_loader(samples, cfg.data, order=order[skip * batch_size :])

    def step(batch: dict) -> StepResult:
        run.report.extend(batch["failed"])
        images = len(batch["labels"])
        if images == 0:  # every file of the batch was unreadable
            return StepResult(None)
        loss = loss_fn(batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if after_step is not None:
            after_step(batch)
        return StepResult(loss, {"loss": loss.detach() * images, "images": images})

    def end_epoch(epoch: int, totals: EpochTotals) -> EpochResult:
        scalars = {f"{stage}/train_loss": totals.mean("loss", "images")}
        if not select:
            return EpochResult(scalars)
        plain.eval()
        labels, scores, _ = collect_scores(plain, val_loader, run.device, run.report)
        val = classification_metrics(labels, (scores >= 0.5).astype(int), y_score=scores)
        score = val.get("roc_auc", val["balanced_accuracy"])
        scalars.update(
            {
                f"{stage}/val_auc": score,
                f"{stage}/val_acc": val["accuracy"],
                f"{stage}/val_bacc": val["balanced_accuracy"],
            }
        )
        # stored with these weights: predict.py uses it for best.pt and last.pt alike
        return EpochResult(scalars, score, {"threshold": choose_threshold(labels, scores)})

    loop.run(batches, step, end_epoch, start_epoch)
    if not loop.best_checkpoint.is_file():
        raise MissingFileError(
            f"{stage}: no checkpoint at {loop.best_checkpoint} (epochs={epochs}?)"
        )
    return loop.best_checkpoint


def finetune_backbone(run: Run) -> dict:
    cfg = run.cfg.finetune
    model = Backbone(run.cfg.model.arch, pretrained=run.cfg.model.pretrained).to(run.device)
    wrapped = run.ctx.wrap_model(model)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    ce = run.weighted_ce()

    def loss_fn(batch):
        return ce(wrapped(batch["images"].to(run.device)), batch["labels"].to(run.device))

    best = fit(
        run,
        "finetune_backbone",
        wrapped,
        optimizer,
        loss_fn,
        cfg.epochs,
        extra={"arch": run.cfg.model.arch, "image_size": int(run.cfg.data.image_size)},
    )
    load_checkpoint(best, model=model, restore_rng=False)
    model.eval()
    result = evaluate_splits(model, _eval_loaders(run), run.device, run.report, run.log)
    run.write_metrics("finetune_backbone", result)
    run.log.info(f"baseline (backbone alone) test accuracy {result['test']['accuracy']:.4f}")
    return result


def cluster(run: Run) -> dict:
    backbone = load_backbone(run)
    cfg = run.cfg.cluster
    samples = run.splits["train"]
    if cfg.max_images:
        samples = samples[: int(cfg.max_images)]
    result = {}
    if run.ctx.is_main:
        clusters = cluster_channels(
            backbone,
            make_loader(samples, run.cfg.data),
            int(run.cfg.groups),
            run.device,
            int(run.cfg.data.image_size),
            seed=run.cfg.seed,
            n_init=cfg.n_init,
            minibatch=cfg.minibatch,
            progress=run.progress_until_stop,
            report=run.report,
        )
        path = save_clusters(clusters, clusters_path(run))
        result = {
            "groups": clusters.groups,
            "cluster_sizes": clusters.sizes(),
            "n_images": clusters.n_images,
            "seconds": clusters.seconds,
            "seconds_per_1000_images": clusters.seconds / clusters.n_images * 1000,
            "inertia": clusters.inertia,
            "artefact": str(path),
        }
        run.log.info(
            f"clustered {backbone.channels} channels into K={clusters.groups} groups "
            f"of sizes {clusters.sizes()} over {clusters.n_images} images "
            f"in {clusters.seconds:.1f}s -> {path}"
        )
        run.write_metrics("cluster", result)
    run.ctx.barrier()
    return result


def pretrain_cgl(run: Run) -> dict:
    cfg = run.cfg.pretrain_cgl
    backbone = load_backbone(run)
    clusters = load_clusters(clusters_path(run), backbone)  # refuses another backbone's artefact
    if clusters.groups != int(run.cfg.groups):
        raise DragInputError(
            f"{clusters_path(run)} has K={clusters.groups} but groups="
            f"{run.cfg.groups}: re-run the cluster stage"
        )
    config = model_config(run, feature_hw(backbone, run.cfg.data.image_size, run.device))
    model = build_drag(backbone, config).to(run.device)
    model.freeze_backbone = True
    membership = membership_targets(torch.from_numpy(clusters.assignment), clusters.groups)
    membership = membership.to(run.device)
    wrapped = run.ctx.wrap_model(model, find_unused_parameters=True)
    optimizer = torch.optim.Adam(model.cgl.parameters(), lr=cfg.lr)

    def loss_fn(batch):
        logits = wrapped(batch["images"].to(run.device), output="cgl_logits")
        return cgl_pretrain_loss(logits, membership, cfg.member_weight)

    best = fit(
        run,
        "pretrain_cgl",
        wrapped,
        optimizer,
        loss_fn,
        cfg.epochs,
        extra={"model_config": config},
        select=False,
    )
    load_checkpoint(best, model=model, restore_rng=False)
    agreement = _membership_agreement(run, model, membership)
    result = {"membership_agreement": agreement, "epochs": cfg.epochs}
    run.log.info(
        f"CGL pretraining: argmax of w[:, c] matches the k-means cluster for "
        f"{agreement:.1%} of channels (val images)"
    )
    run.write_metrics("pretrain_cgl", result)
    return result


def train_drag(run: Run, build_model: Callable[[Backbone, dict], DRAG] = build_drag) -> dict:
    """The DRAG stage from the pretrained CGL; ``build_model`` lets a comparison swap parts of
    the model (the backbone and CGL weights are what carries over)."""
    cfg = run.cfg.drag
    path = cgl_checkpoint(run)
    payload = read_checkpoint(path)
    require_stage(payload, path, ("pretrain_cgl",), "the drag stage")
    config = payload["extra"]["model_config"]
    model = build_model(Backbone(config["arch"], pretrained=False), config)
    carried = {k: v for k, v in payload["model"].items() if k.startswith(("backbone.", "cgl."))}
    missing, _ = model.load_state_dict(carried, strict=False)
    if any(k.startswith(("backbone.", "cgl.")) for k in missing):
        raise CheckpointError(f"{path} lacks backbone/CGL weights: {missing[:3]}")
    model.to(run.device)
    wrapped = run.ctx.wrap_model(model, find_unused_parameters=True)
    head = [*model.adjacency.parameters(), *model.gcn.parameters(), *model.head.parameters()]
    optimizer = torch.optim.Adam(
        [
            {"params": model.backbone.parameters(), "lr": cfg.lr_backbone},
            {"params": model.cgl.parameters(), "lr": cfg.lr_cgl},
            {"params": head, "lr": cfg.lr_head},
        ],
        weight_decay=cfg.weight_decay,
    )
    ce = run.weighted_ce()
    region_weight = float(cfg.distance_weight) + float(cfg.diversity_weight)
    cgl_optimizer = torch.optim.Adam(model.cgl.parameters(), lr=cfg.lr_cgl)
    checkpointables = {"optimizer": optimizer}
    if region_weight > 0:  # a resume continues the region step's Adam too (moments, steps)
        checkpointables["region_losses"] = cgl_optimizer

    def freeze_backbone_early(epoch: int) -> None:
        model.freeze_backbone = epoch < cfg.freeze_backbone_epochs

    def loss_fn(batch):
        return ce(wrapped(batch["images"].to(run.device)), batch["labels"].to(run.device))

    def region_step(batch) -> None:
        """Alternating MA-CNN style step: only the CGL moves, on distance + diversity."""
        with torch.no_grad():
            features = model.backbone.features(batch["images"].to(run.device))
        maps, _ = model.cgl(features)
        loss = cfg.distance_weight * distance_loss(maps) + cfg.diversity_weight * diversity_loss(
            maps, cfg.diversity_margin
        )
        cgl_optimizer.zero_grad(set_to_none=True)
        loss.backward()
        cgl_optimizer.step()

    best = fit(
        run,
        "drag",
        wrapped,
        optimizer,
        loss_fn,
        cfg.epochs,
        extra={"model_config": config},
        start_epoch=freeze_backbone_early,
        after_step=region_step if region_weight > 0 else None,
        checkpointables=checkpointables,
    )
    load_checkpoint(best, model=model, restore_rng=False)
    model.freeze_backbone = False
    model.eval()
    result = evaluate_splits(model, _eval_loaders(run), run.device, run.report, run.log)
    run.write_metrics("drag", result)
    run.log.info(f"DRAG test accuracy {result['test']['accuracy']:.4f}")
    return result


STAGE_FUNCTIONS = {
    "finetune_backbone": finetune_backbone,
    "cluster": cluster,
    "pretrain_cgl": pretrain_cgl,
    "drag": train_drag,
}


def _eval_loaders(run: Run) -> dict:
    return {split: run.eval_loader(split) for split in ("val", "test")}


def _artefact(run: Run, override, stage: str, name: str) -> Path:
    return Path(override) if override else run.stage_dir(stage) / name


def backbone_checkpoint(run: Run) -> Path:
    return _artefact(
        run, run.cfg.paths.backbone, "finetune_backbone", f"{CHECKPOINT_DIR}/{BEST_CHECKPOINT}"
    )


def clusters_path(run: Run) -> Path:
    return _artefact(run, run.cfg.paths.clusters, "cluster", "clusters.pt")


def cgl_checkpoint(run: Run) -> Path:
    return _artefact(run, run.cfg.paths.cgl, "pretrain_cgl", f"{CHECKPOINT_DIR}/{BEST_CHECKPOINT}")


def load_backbone(run: Run) -> Backbone:
    path = backbone_checkpoint(run)
    require_stage(read_checkpoint(path), path, ("finetune_backbone",), "this stage")
    backbone = Backbone(run.cfg.model.arch, pretrained=False)
    load_checkpoint(path, model=backbone, restore_rng=False)
    return backbone.to(run.device)


def model_config(run: Run, feature_hw) -> dict:
    m = run.cfg.model
    return {
        "arch": m.arch,
        "groups": int(run.cfg.groups),
        "feature_hw": list(feature_hw),
        "image_size": int(run.cfg.data.image_size),
        "attn_dim": int(m.attn_dim),
        "attn_dropout": float(m.attn_dropout),
        "gcn_dropout": float(m.gcn_dropout),
        "gcn_dropout_at_eval": bool(m.get("gcn_dropout_at_eval", False)),
    }


@torch.no_grad()
def feature_hw(backbone: Backbone, image_size: int, device) -> tuple[int, int]:
    backbone.eval()
    shape = backbone.features(torch.zeros(1, 3, image_size, image_size, device=device)).shape
    return int(shape[2]), int(shape[3])


@torch.no_grad()
def _membership_agreement(run: Run, model: DRAG, membership: torch.Tensor) -> float:
    model.eval()
    hits, total = 0.0, 0
    for batch in run.eval_loader("val"):
        if len(batch["labels"]) == 0:
            continue
        weights = model(batch["images"].to(run.device), output="cgl_logits")
        hits += float((weights.argmax(1) == membership.argmax(0)).float().mean()) * len(weights)
        total += len(weights)
    return hits / max(total, 1)


def summarize(run: Run, times: dict) -> dict:
    """DRAG, the backbone-only baseline and the majority rate on the same test split."""

    def stage_metrics(name):
        path = run.stage_dir(name) / METRICS_FILE
        return json.loads(path.read_text()) if path.is_file() else None

    test_labels = [s.label for s in run.splits["test"]]
    summary = {
        "class_names": list(CLASS_NAMES),
        "groups": int(run.cfg.groups),
        "backbone": run.cfg.model.arch,
        "image_size": int(run.cfg.data.image_size),
        "class_counts": {s: class_counts(v) for s, v in run.splits.items()},
        "majority_rate_test": majority_rate(test_labels),
        "baseline": stage_metrics("finetune_backbone"),
        "cluster": stage_metrics("cluster"),
        "pretrain_cgl": stage_metrics("pretrain_cgl"),
        "drag": stage_metrics("drag"),
        "stage_seconds": times,
        "skipped_files": len(run.report),
    }
    lines = [f"test majority-class rate {summary['majority_rate_test']:.4f}"]
    for key in ("baseline", "drag"):
        if summary[key]:
            test = summary[key]["test"]
            lines.append(
                f"{key}: test accuracy {test['accuracy']:.4f}, balanced "
                f"{test['balanced_accuracy']:.4f}, private recall "
                f"{test['per_class']['private']['recall']:.4f} "
                f"(threshold {summary[key]['threshold']:.3f} chosen on val)"
            )
    for line in lines:
        run.log.info(line)
    return summary
