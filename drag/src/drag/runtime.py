"""What every stage needs: config, device, logger, splits, loaders, bad-file report, fit loop."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from drag.data import BadFileReport, build_splits, make_loader, maybe_generate
from drag.engine import EpochProgress, choose_threshold, collect_scores, train_epoch
from drag.errors import MissingFileError
from drag.model.losses import class_weights_from_labels
from trilab.checkpoint import (
    find_resume_checkpoint,
    gather_rng_states,
    load_checkpoint,
    resume_position,
    save_checkpoint,
)
from trilab.finite import FiniteLossGuard
from trilab.metrics import classification_metrics
from trilab.stopping import StopSignal


@dataclass
class Run:
    cfg: object
    ctx: object  # trilab DistContext
    log: object  # trilab RunLogger
    work_dir: Path
    generator: torch.Generator
    report: BadFileReport = field(default_factory=BadFileReport)
    splits: dict = field(default_factory=dict)
    stop: StopSignal | None = None  # SIGTERM/SIGINT: finish the step, checkpoint, exit

    def progress_until_stop(self, iterable, **kwargs):
        """``log.progress`` for work that cannot be checkpointed half-way (clustering, on rank
        0 only): a stop request ends it at once, and resume=true redoes it."""
        for item in self.log.progress(iterable, **kwargs):
            yield item
            if self.stop is not None and self.stop.signum is not None:
                self.stopped("during channel clustering (resume=true clusters again)", None)

    def stopped(self, where: str, checkpoint: Path | None) -> None:
        """Log where the run stopped and how to continue; raise RunStopped."""
        saved = f"checkpoint {checkpoint}" if checkpoint else "nothing of this stage was saved"
        self.log.info(f"{self.stop.signal_name}: stopped {where}; {saved}; continue with the "
                      "same hydra.run.dir and resume=true")
        raise self.stop.stopped(where, checkpoint or "(none for this stage)")

    @property
    def device(self) -> torch.device:
        return self.ctx.device

    def load_data(self) -> None:
        if self.cfg.data.format == "ipd" and self.ctx.is_main:
            maybe_generate(self.cfg.data, self.log)  # rank 0 only: no two writers per file
        self.ctx.barrier()
        self.splits = build_splits(self.cfg.data, self.cfg.seed, self.log, self.report)

    def loader(self, split: str, train: bool = False, batch_size: int | None = None):
        sampler = None
        if train and self.ctx.is_distributed:
            sampler = self.ctx.sampler(self.splits[split], shuffle=True, seed=self.cfg.seed)
        return make_loader(
            self.splits[split],
            self.cfg.data,
            train=train,
            generator=self.generator if train else None,
            sampler=sampler,
            batch_size=batch_size,
        )

    def eval_loaders(self) -> dict:
        return {s: self.loader(s) for s in ("val", "test")}

    def class_weights(self) -> torch.Tensor | None:
        if not self.cfg.class_weighting:
            return None
        return class_weights_from_labels([s.label for s in self.splits["train"]]).to(self.device)

    def weighted_ce(self) -> Callable:
        weight = self.class_weights()
        return lambda logits, labels: F.cross_entropy(logits, labels, weight=weight)

    def stage_dir(self, name: str) -> Path:
        return self.work_dir / name

    def write_json(self, path: Path, payload: dict) -> None:
        if self.ctx.is_main:
            from trilab.runlog import to_jsonable

            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(to_jsonable(payload), indent=2, sort_keys=True))

    def flush_report(self) -> None:
        self.report.warn(self.log, self.work_dir / "skipped_files.tsv")


def fit(
    run: Run,
    stage: str,
    model: nn.Module,
    wrapped: nn.Module,
    optimizer: torch.optim.Optimizer,
    loss_fn: Callable[[dict], torch.Tensor],
    epochs: int,
    extra: dict,
    select: bool = True,
    on_epoch_start: Callable[[int], None] | None = None,
    after_step: Callable[[dict], None] | None = None,
) -> Path:
    """Train with last/best checkpoints under work_dir/stage/checkpoints; resumable.

    The best epoch is chosen on validation ROC-AUC (threshold-free); without ``select`` the
    last epoch is kept as best. Every checkpoint records ``extra["stage"]``; with ``select``
    also the decision threshold chosen on validation for its weights (``extra["threshold"]``).
    """
    ckpt_dir = run.stage_dir(stage) / "checkpoints"
    last, best_path = ckpt_dir / "last.pt", ckpt_dir / "best.pt"
    start, best, progress = 0, float("-inf"), EpochProgress()
    previous = find_resume_checkpoint(last, bool(run.cfg.resume), run.log)
    if previous is not None:
        state = load_checkpoint(
            previous,
            model=model,
            optimizer=optimizer,
            generators={"loader": run.generator},
            map_location=run.device,
            rank=run.ctx.rank,
            world_size=run.ctx.world_size,
        )
        start, steps_done = resume_position(state)
        best = state["extra"].get("best_score", best)
        if steps_done:
            progress = EpochProgress(**state["extra"]["partial_epoch"])
        run.log.info(
            f"{stage}: resumed from {last} at epoch {start}"
            + (f" step {steps_done}" if steps_done else "")
        )
    train_loader = run.loader("train", train=True)
    val_loader = run.loader("val")
    guard = FiniteLossGuard(run.device, checkpoint_hint=f"the last good checkpoint is {last}")
    for epoch in range(start, epochs):
        if on_epoch_start is not None:
            on_epoch_start(epoch)
        if hasattr(train_loader.sampler, "set_epoch"):
            train_loader.sampler.set_epoch(epoch)
        epoch_loader_state = run.generator.get_state()  # a mid-epoch resume redraws the order
        loss = train_epoch(
            wrapped,
            train_loader,
            optimizer,
            loss_fn,
            run.log,
            f"{stage} {epoch + 1}/{epochs}",
            run.report,
            after_step,
            progress=progress,
            stop=run.stop,
            guard=guard,
            epoch=epoch,
        )
        if loss is None:
            rng = gather_rng_states(run.ctx)
            if run.ctx.is_main:
                at_epoch_start = torch.Generator()
                at_epoch_start.set_state(epoch_loader_state)
                save_checkpoint(
                    last,
                    model=model,
                    optimizer=optimizer,
                    epoch=epoch - 1,
                    steps_into_next_epoch=progress.steps,
                    extra={**extra, "stage": stage, "best_score": best,
                           "partial_epoch": asdict(progress)},
                    generators={"loader": at_epoch_start},
                    rng_per_rank=rng,
                )
            run.ctx.barrier()
            run.stopped(f"in stage {stage}, epoch {epoch} after step {progress.steps}", last)
        progress = EpochProgress()
        scalars = {f"{stage}/train_loss": loss}
        score = float(epoch)
        epoch_extra = {**extra, "stage": stage}
        if select:
            model.eval()
            labels, scores, _ = collect_scores(model, val_loader, run.device, run.report)
            val = classification_metrics(labels, (scores >= 0.5).astype(int), y_score=scores)
            score = val.get("roc_auc", val["balanced_accuracy"])
            # stored with these weights: predict.py uses it for best.pt and last.pt alike
            epoch_extra["threshold"] = choose_threshold(labels, scores)
            scalars.update(
                {
                    f"{stage}/val_auc": score,
                    f"{stage}/val_acc": val["accuracy"],
                    f"{stage}/val_bacc": val["balanced_accuracy"],
                }
            )
        run.log.log_scalars(scalars, step=epoch)
        run.log.info(
            f"{stage} epoch {epoch + 1}/{epochs}: "
            + ", ".join(f"{k.split('/')[1]} {v:.4f}" for k, v in scalars.items())
        )
        rng = gather_rng_states(run.ctx)
        if run.ctx.is_main:
            if score >= best:
                best = score
                save_checkpoint(
                    best_path, model=model, epoch=epoch, extra={**epoch_extra, "best_score": best}
                )
            save_checkpoint(
                last,
                model=model,
                optimizer=optimizer,
                epoch=epoch,
                extra={**epoch_extra, "best_score": best},
                generators={"loader": run.generator},
                rng_per_rank=rng,
            )
        run.ctx.barrier()
        if run.stop is not None and epoch + 1 < epochs and run.stop.requested(0, force=True):
            run.stopped(f"in stage {stage} after epoch {epoch}", last)
    if not best_path.is_file():
        raise MissingFileError(f"{stage}: no checkpoint at {best_path} (epochs={epochs}?)")
    return best_path
