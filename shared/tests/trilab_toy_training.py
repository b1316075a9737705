"""A toy project on trilab's training loop, for the loop's mechanics tests.

A two-layer regression with dropout (every step draws random numbers, as real models do)
trained with Adam under a step-decayed learning rate, on 48 fixed items; validation loss
selects ``best.pt``.  Run as a script (``python trilab_toy_training.py RUN_DIR [key=value
...]``) it behaves as a project's ``train.py``: user errors print one line and exit 2, stops
exit 128 + signal.  Under ``torchrun`` each rank trains on its share of every epoch.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

import torch
from omegaconf import OmegaConf
from torch import nn

from trilab.errors import report_user_errors
from trilab.loop import EpochResult, StepResult, epoch_order, steps_per_epoch
from trilab.run import start_run

ITEMS, BATCH = 48, 4


def _data() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1234)
    inputs = torch.randn(ITEMS, 4, generator=generator)
    return inputs, inputs.sum(1, keepdim=True) + 0.1 * torch.randn(ITEMS, 1, generator=generator)


def train(
    run_dir: str | Path,
    *,
    epochs: int = 3,
    resume: bool = False,
    overwrite: bool = False,
    seed: int = 0,
    optimizer: str = "adam",
    signal_at: tuple[int, int] | None = None,
    signum: int = signal.SIGTERM,
    nan_at: tuple[int, int] | None = None,
    step_seconds: float = 0.0,
) -> dict[str, torch.Tensor]:
    """Train into ``run_dir``; returns the final weights.

    ``signal_at=(epoch, step)``: the process sends itself ``signum`` during that step (step 0 is
    the epoch's first; step -1: during the epoch's evaluation); ``nan_at``: that step's loss is
    NaN; ``step_seconds``: a pause per step, so that a signal from outside lands in the middle
    of the run.
    """
    run_dir = Path(run_dir)
    cfg = OmegaConf.create(
        {
            "device": "cpu",
            "seed": seed,
            "deterministic": False,
            "resume": resume,
            "overwrite": overwrite,
            "tensorboard": False,
            "epochs": epochs,
            "lr": 0.01,
            "lr_for_sgd": "${lr}",  # an interpolation, saved resolved
        }
    )
    with start_run(cfg, project="toy", folder=run_dir) as run:
        ctx = run.ctx
        # what this rank's global generator was seeded with: the per-rank rule, observed
        (run_dir / f"seed_rank{ctx.rank}.json").write_text(json.dumps(torch.initial_seed()))
        inputs, targets = _data()
        model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Dropout(0.3), nn.Linear(16, 1))
        trainable = ctx.wrap_model(model)
        if optimizer == "adam":
            optim = torch.optim.Adam(model.parameters(), lr=cfg.lr)
        else:
            optim = torch.optim.SGD(model.parameters(), lr=cfg.lr_for_sgd, momentum=0.9)
        scheduler = torch.optim.lr_scheduler.StepLR(optim, step_size=1, gamma=0.7)
        loop = run.loop(
            trainable,
            {"optimizer": optim},
            epochs=epochs,
            steps_per_epoch=steps_per_epoch(ITEMS, BATCH, ctx.world_size),
            scheduler=scheduler,
            best="min",
            extra={"toy": True},
        )
        position = {"epoch": 0, "step": 0}

        def batches(epoch: int, skip: int):
            position.update(epoch=epoch, step=skip)
            order = epoch_order(ITEMS, seed, epoch, rank=ctx.rank, world_size=ctx.world_size)
            for begin in range(skip * BATCH, len(order), BATCH):
                yield torch.from_numpy(order[begin : begin + BATCH])

        def step(indices: torch.Tensor) -> StepResult:
            where = (position["epoch"], position["step"])
            position["step"] += 1
            if where == signal_at:
                os.kill(os.getpid(), signum)
            time.sleep(step_seconds)
            loss = nn.functional.mse_loss(trainable(inputs[indices]), targets[indices])
            if where == nan_at:
                loss = loss * float("nan")
            optim.zero_grad(set_to_none=True)
            loss.backward()
            optim.step()
            return StepResult(loss, {"loss": loss.detach() * len(indices), "items": len(indices)})

        def end_epoch(epoch: int, totals) -> EpochResult:
            if (epoch, -1) == signal_at:
                os.kill(os.getpid(), signum)
            model.eval()
            with torch.no_grad():
                val = float(nn.functional.mse_loss(model(inputs[:8]), targets[:8]))
            return EpochResult(
                {
                    "train/loss": totals.mean("loss", "items"),
                    "val/loss": val,
                    "train/items": totals.sums["items"],
                },
                score=val,
            )

        loop.run(batches, step, end_epoch)
        weights = {k: v.clone() for k, v in model.state_dict().items()}
        if ctx.is_main:
            run.log.write_metrics({"best_epoch": loop.best_epoch})
        (run_dir / f"weights_rank{ctx.rank}.json").write_text(
            json.dumps({k: v.tolist() for k, v in weights.items()})
        )
        return weights


def _options(arguments: list[str]) -> dict:
    options = {}
    for argument in arguments:
        key, value = argument.split("=", 1)
        options[key] = json.loads(value) if key not in ("optimizer",) else value
        if isinstance(options[key], list):
            options[key] = tuple(options[key])
    return options


if __name__ == "__main__":
    report_user_errors(lambda: train(sys.argv[1], **_options(sys.argv[2:])), program="toy_train.py")
