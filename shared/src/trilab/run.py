"""One run's set-up, the same for every project: :func:`start_run`.

It owns, once for all projects:

* the process group (``torchrun``, or one process) and the device;
* the run folder: claimed for the run's whole life (:mod:`trilab.run_folder`), its file names
  from :mod:`trilab.run_files`;
* the per-rank seed: rank ``r`` seeds Python, NumPy and torch with ``cfg.seed + r``
  (:func:`trilab.seed.rank_seed`, detectron2's rule), and ``cfg.deterministic`` chooses
  deterministic kernels;
* the configuration, resolved, saved as ``config.yaml`` in the folder the run logs into;
* the logger (rank 0 writes) and the stop handle (SIGTERM/SIGINT) shared by the run's loops:
  it listens from set-up to the end, so a stop asked for before training ends the run at the
  first step boundary (with its checkpoint), and one asked for after training lets the run
  finish its last evaluation; a second Ctrl-C interrupts at once.

The configuration needs the keys ``device``, ``seed``, ``deterministic``, ``resume`` and
``overwrite`` (``tensorboard`` is optional, on by default).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from trilab.atomic import atomic_write_text
from trilab.distributed import DistContext, init_distributed
from trilab.hydra_utils import run_dir
from trilab.loop import TrainLoop
from trilab.run_files import CONFIG_FILE, RUN_FILES, RUN_RECORDS, checkpoint_dir, per_rank_files
from trilab.run_folder import claim_run_folder
from trilab.runlog import RunLogger
from trilab.seed import rank_seed, seed_everything
from trilab.stopping import StopSignal


@dataclass
class Run:
    """What one run's code shares: its configuration, process context, folders, logger and
    stop handle."""

    cfg: Any
    ctx: DistContext
    folder: Path  # the claimed folder: checkpoints and artefacts
    log_folder: Path  # config.yaml, run.log, scalars, metrics
    log: RunLogger
    stop: StopSignal

    @property
    def device(self) -> torch.device:
        return self.ctx.device

    @property
    def seed(self) -> int:
        """The run's seed (the same on every rank; keys what all ranks must draw alike)."""
        return int(self.cfg.seed)

    def loop(
        self,
        model: torch.nn.Module,
        checkpointables: Mapping[str, Any],
        *,
        epochs: int,
        steps_per_epoch: int,
        checkpoint_folder: str | Path | None = None,
        **options: Any,
    ) -> TrainLoop:
        """A :class:`~trilab.loop.TrainLoop` of this run: its checkpoints in
        ``checkpoint_folder`` (by default ``<folder>/checkpoints``), resumed when
        ``cfg.resume``, stopped by the run's stop handle."""
        return TrainLoop(
            model,
            checkpointables,
            checkpoint_dir=checkpoint_folder or checkpoint_dir(self.folder),
            epochs=int(epochs),
            steps_per_epoch=int(steps_per_epoch),
            ctx=self.ctx,
            log=self.log,
            resume=bool(self.cfg.resume),
            stop=self.stop,
            **options,
        )


def save_config(cfg: Any, folder: str | Path) -> Path:
    """``folder/config.yaml``: the configuration with every interpolation resolved, as run."""
    from omegaconf import OmegaConf  # only runs configured through OmegaConf/Hydra save one

    return atomic_write_text(Path(folder) / CONFIG_FILE, OmegaConf.to_yaml(cfg, resolve=True))


@contextlib.contextmanager
def start_run(
    cfg: Any,
    *,
    project: str,
    folder: str | Path | None = None,
    log_folder: str | Path | None = None,
    records: Sequence[str] = RUN_RECORDS,
    run_files: Sequence[str] = RUN_FILES,
) -> Iterator[Run]:
    """Set up one run and yield it; everything is released when the block ends.

    ``folder``: the run folder to claim (default: Hydra's ``hydra.run.dir``); ``log_folder``:
    where the config and logs go (default: ``folder``).  ``records``/``run_files``: what shows
    the folder holds a run, and what ``overwrite=true`` removes (see
    :func:`~trilab.run_folder.claim_run_folder`); the files a torchrun run's ranks wrote for
    themselves are always removed too.  ``project`` names the logger.
    """
    folder = Path(folder) if folder is not None else run_dir()
    log_folder = Path(log_folder) if log_folder is not None else folder
    ctx = init_distributed(cfg.device)
    with (
        ctx,
        claim_run_folder(
            folder,
            resume=bool(cfg.resume),
            overwrite=bool(cfg.overwrite),
            ctx=ctx,
            records=records,
            run_files=[*run_files, *per_rank_files(folder)],
        ),
        RunLogger(
            log_folder,
            enabled=ctx.is_main,
            tensorboard=bool(cfg.get("tensorboard", True)),
            name=project,
        ) as log,
        StopSignal(ctx) as stop,
    ):
        seed_everything(rank_seed(cfg.seed, ctx.rank), deterministic=bool(cfg.deterministic))
        if ctx.is_main:
            save_config(cfg, log_folder)
        yield Run(cfg, ctx, folder, log_folder, log, stop)
