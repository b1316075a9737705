"""The resumable training loop of every project: the project supplies its batches, its step and
its evaluation; the loop does the rest the same way for all of them.

Per epoch::

    start_epoch(epoch)                     # project: schedules that depend on the epoch
    model.train()
    for batch in batches(epoch, skip):     # project: this rank's batches from step ``skip`` on
        step(batch) -> StepResult          # project: forward, backward, optimizer step
    end_epoch(epoch, totals) -> EpochResult  # project: evaluation, scalars, selection score
    scheduler.step(); best.pt, last.pt

What the loop owns:

* **Resume**: with ``resume=true`` it restores ``last.pt`` (weights, the checkpointed objects:
  optimizers, the scheduler, ...; this rank's RNG state, the epoch's running sums) and
  continues at the epoch and step it records.
* **Data order**: one rule, :func:`epoch_order` / :func:`epoch_generator`: an epoch's order is a
  function of ``(seed, epoch)`` alone, so a resumed epoch redraws the interrupted one's order
  and ``skip`` says how many of this rank's batches are already done.
* **Stops**: SIGTERM/SIGINT end the step in progress; the loop writes ``last.pt`` at that step,
  logs one line saying where it stopped and how to continue, and raises
  :class:`~trilab.errors.RunStopped` (exit status 128 + signal).
* **Non-finite losses** stop the run before any checkpoint holds their weights.
* **Checkpoints**: ``last.pt`` after every epoch, ``best.pt`` when the epoch's score is the best
  so far (ties go to the later epoch; no score: every epoch is the best), both written by rank 0
  with every rank's RNG state.
* **torchrun**: ranks agree on a stop every ``sync_every`` steps and at each epoch end, gather
  their RNG states before rank 0 writes, and wait for the write before going on.
* **Logging**: a progress bar per epoch, one line and one scalars record per epoch.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from trilab.checkpoint import (
    find_resume_checkpoint,
    load_checkpoint,
    resume_position,
    save_checkpoint,
)
from trilab.finite import FiniteLossGuard
from trilab.rng import gather_rng_states
from trilab.run_files import BEST_CHECKPOINT, LAST_CHECKPOINT
from trilab.stopping import StopSignal

GUARD_CHECK_EVERY = 100  # steps between reads of the device-side NaN flag on a GPU


def epoch_generator(seed: int, epoch: int) -> np.random.Generator:
    """The random draws of one epoch's data order (shuffle, augmentation flips): a function of
    ``(seed, epoch)`` alone, the same on every rank."""
    return np.random.default_rng([int(seed), int(epoch)])


def steps_per_epoch(
    num_items: int, batch_size: int, world_size: int = 1, max_steps: int | None = None
) -> int:
    """Steps of one rank in an epoch of :func:`epoch_order` shares: its ``num_items //
    world_size`` items in batches of ``batch_size``, the last one partial (at most
    ``max_steps``)."""
    steps = -(-(int(num_items) // int(world_size)) // int(batch_size))
    return min(steps, int(max_steps)) if max_steps else steps


def epoch_order(
    num_items: int,
    seed: int,
    epoch: int,
    *,
    rank: int = 0,
    world_size: int = 1,
    weights: np.ndarray | None = None,
) -> np.ndarray:
    """This rank's item indices for ``epoch``.

    One shuffle of ``range(num_items)`` (with ``weights``: ``num_items`` draws with replacement,
    in proportion to them) shared by every rank and cut into ``world_size`` equal contiguous
    shares; the remainder is left out, so that every rank runs the same number of steps.
    """
    generator = epoch_generator(seed, epoch)
    if weights is None:
        order = generator.permutation(num_items)
    else:
        p = np.asarray(weights, dtype=np.float64)
        order = generator.choice(num_items, size=num_items, replace=True, p=p / p.sum())
    share = num_items // world_size
    return order[rank * share : (rank + 1) * share]


@dataclass
class StepResult:
    """What one training step reports.

    ``loss``: the value the step minimised (watched for NaN/inf), ``None`` when the step trained
    nothing (a batch whose every file was unreadable).  ``sums``: values added up over the
    epoch (a loss times the batch size, a count); tensors stay on their device until the end
    of the epoch, so that a GPU step does not wait for them.
    """

    loss: torch.Tensor | None
    sums: Mapping[str, float | torch.Tensor] = field(default_factory=dict)


@dataclass
class EpochTotals:
    """An epoch's steps added up; across a stop and resume, the steps before the stop count."""

    steps: int = 0
    sums: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0  # wall time of the steps, waits for batches included
    data_seconds: float = 0.0  # of which waiting for the next batch

    def mean(self, key: str, count: str) -> float:
        """``sums[key] / sums[count]`` (0 for an epoch without items)."""
        return self.sums.get(key, 0.0) / max(self.sums.get(count, 0.0), 1)


@dataclass
class EpochResult:
    """What a project's end of epoch reports.

    ``scalars``: logged at step ``epoch`` (scalars.jsonl, TensorBoard, the epoch's log line).
    ``score``: the selection score, higher is better with ``TrainLoop(best="max")``; ``None``:
    the run does not select (every epoch is kept as the best).  ``checkpoint_extra``: stored
    with this epoch's weights (in ``last.pt``, and in ``best.pt`` when it is the best).
    """

    scalars: dict[str, float]
    score: float | None = None
    checkpoint_extra: dict[str, Any] = field(default_factory=dict)


class TrainLoop:
    """Epochs of a project's steps, resumable at any step; see the module docstring.

    ``model`` is the module as trained (DDP- or compile-wrapped or not: checkpoints hold the
    plain module's weights).  ``checkpointables``: name -> every other object whose state a
    resume needs (optimizers; anything with ``state_dict``/``load_state_dict``); ``scheduler``
    is stepped after each epoch and checkpointed as ``"scheduler"``.  ``extra``: the
    project's data for every checkpoint (its model configuration, ...); a resumed loop's
    ``extra`` is the checkpoint's.  ``name`` (e.g. ``"stage drag"``) goes into the log lines
    and stop messages of a run with several loops.
    ``stop``: the run's :class:`StopSignal` when it spans more than this loop; by default the
    loop listens for signals while it runs.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        checkpointables: Mapping[str, Any],
        *,
        checkpoint_dir: str | Path,
        epochs: int,
        steps_per_epoch: int,
        ctx,
        log,
        resume: bool,
        scheduler=None,
        extra: Mapping[str, Any] | None = None,
        best: str = "max",
        name: str = "",
        stop: StopSignal | None = None,
    ) -> None:
        if best not in ("max", "min"):
            raise ValueError(f"best must be 'max' or 'min', got {best!r}")
        self.model, self.scheduler = model, scheduler
        self.checkpointables = dict(checkpointables)
        if scheduler is not None:
            self.checkpointables["scheduler"] = scheduler
        self.checkpoint_dir = Path(checkpoint_dir)
        self.epochs, self.steps_per_epoch = int(epochs), int(steps_per_epoch)
        self.ctx, self.log, self.resume = ctx, log, bool(resume)
        self.extra = dict(extra or {})
        self.best_mode, self.name, self.stop = best, name, stop
        self.best_score: float | None = None
        self.best_epoch = -1
        self.guard = FiniteLossGuard(
            ctx.device, checkpoint_hint=f"the last good checkpoint is {self.last}"
        )

    @property
    def last(self) -> Path:
        return self.checkpoint_dir / LAST_CHECKPOINT

    @property
    def best_checkpoint(self) -> Path:
        return self.checkpoint_dir / BEST_CHECKPOINT

    def run(
        self,
        batches: Callable[[int, int], Iterable],
        step: Callable[[Any], StepResult],
        end_epoch: Callable[[int, EpochTotals], EpochResult],
        start_epoch: Callable[[int], None] | None = None,
    ) -> None:
        """Train from where ``last.pt`` says (``resume``) or from epoch 0 to ``epochs``."""
        first_epoch, totals = self._restore()
        with contextlib.ExitStack() as stack:
            stop = self.stop or stack.enter_context(StopSignal(self.ctx))
            for epoch in range(first_epoch, self.epochs):
                if start_epoch is not None:
                    start_epoch(epoch)
                self.model.train()
                if not self._steps(epoch, totals, batches, step, stop):
                    self._save_last(
                        epoch - 1,
                        {"partial_epoch": asdict(totals)},
                        steps_into_next_epoch=totals.steps,
                    )
                    where = f"epoch {epoch} after step {totals.steps}"
                    stop.halt(
                        f"in {self.name}, {where}" if self.name else f"in {where}",
                        self.last,
                        self.log,
                    )
                result = end_epoch(epoch, totals)
                if self.scheduler is not None:
                    self.scheduler.step()
                is_best = self._select(epoch, result.score)
                self.log.log_scalars(result.scalars, step=epoch)
                self.log.info(
                    f"{self.name + ' ' if self.name else ''}epoch {epoch}: "
                    + ", ".join(f"{k} {v:.4g}" for k, v in result.scalars.items())
                )
                self._save_last(epoch, result.checkpoint_extra, best=is_best)
                totals = EpochTotals()
                if epoch + 1 < self.epochs and stop.requested(0, force=True):
                    stop.halt(
                        f"in {self.name} after epoch {epoch}"
                        if self.name
                        else f"after epoch {epoch}",
                        self.last,
                        self.log,
                    )

    def _restore(self) -> tuple[int, EpochTotals]:
        previous = find_resume_checkpoint(self.last, self.resume, self.log)
        if previous is None:
            return 0, EpochTotals()
        state = load_checkpoint(
            previous,
            model=self.model,
            checkpointables=self.checkpointables,
            map_location=self.ctx.device,
            rank=self.ctx.rank,
            world_size=self.ctx.world_size,
        )
        saved = dict(state["extra"])
        partial = saved.pop("partial_epoch", None)
        self.best_score = saved.pop("best_score", None)
        self.best_epoch = int(saved.pop("best_epoch", -1))
        self.extra.update(saved)
        epoch, steps_done = resume_position(state)
        self.log.info(
            f"{self.name + ': ' if self.name else ''}resumed from {previous} at epoch "
            f"{epoch}" + (f" step {steps_done}" if steps_done else "")
        )
        return epoch, EpochTotals(**partial) if steps_done else EpochTotals()

    def _steps(self, epoch: int, totals: EpochTotals, batches, step, stop: StopSignal) -> bool:
        """Run ``epoch`` from step ``totals.steps`` on, adding into ``totals``; ``False`` when
        a stop was requested."""
        sums: dict[str, Any] = dict(totals.sums)
        started = time.perf_counter()
        waiting_since = started
        data_seconds = 0.0
        stopped = False
        iterator = iter(batches(epoch, totals.steps))
        desc = f"{self.name + ' ' if self.name else ''}epoch {epoch}"
        try:
            for batch in self.log.progress(iterator, desc, self.steps_per_epoch - totals.steps):
                data_seconds += time.perf_counter() - waiting_since
                result = step(batch)
                if result.loss is not None:
                    self.guard.observe(result.loss, epoch, totals.steps)
                for key, value in result.sums.items():
                    if isinstance(value, torch.Tensor):
                        value = value.detach().to(torch.float64)
                    sums[key] = sums.get(key, 0.0) + value
                totals.steps += 1
                if totals.steps % GUARD_CHECK_EVERY == 0:
                    self.guard.check()
                if stop.requested(totals.steps):
                    stopped = True
                    break
                waiting_since = time.perf_counter()
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                close()  # ends a producer (a prefetching thread) that is ahead of a stop
        self.guard.check()
        totals.sums = {key: float(value) for key, value in sums.items()}  # waits for the device
        totals.seconds += time.perf_counter() - started
        totals.data_seconds += data_seconds
        return not stopped

    def _select(self, epoch: int, score: float | None) -> bool:
        if score is not None:
            if self.best_score is not None and (
                score < self.best_score if self.best_mode == "max" else score > self.best_score
            ):
                return False
            self.best_score = float(score)
        self.best_epoch = epoch
        return True

    def _save_last(
        self,
        epoch: int,
        extra: Mapping[str, Any],
        steps_into_next_epoch: int = 0,
        best: bool = False,
    ) -> None:
        """``last.pt`` (and ``best.pt``) after ``epoch``, by rank 0; every rank waits for it."""
        rng = gather_rng_states(self.ctx)
        if self.ctx.is_main:
            extra = {
                **self.extra,
                **extra,
                "best_score": self.best_score,
                "best_epoch": self.best_epoch,
            }
            if best:
                save_checkpoint(self.best_checkpoint, model=self.model, epoch=epoch, extra=extra)
            save_checkpoint(
                self.last,
                model=self.model,
                checkpointables=self.checkpointables,
                epoch=epoch,
                extra=extra,
                steps_into_next_epoch=steps_into_next_epoch,
                rng_per_rank=rng,
            )
        self.ctx.barrier()
