"""The names of a run folder's files, in one place: the run set-up, the training loop, the run
folder's claim, the logger and the projects all take them from here.

A run folder (``hydra.run.dir``) holds::

    config.yaml          the run's configuration, resolved (interpolations filled in)
    run.log              the log (rank 0)
    scalars.jsonl        one line per logged record of scalars
    metrics.json         the final metrics
    tensorboard/         TensorBoard's event files
    checkpoints/last.pt  everything to continue the run
    checkpoints/best.pt  the weights of the best epoch so far
    .lock                held (flock) by the run that uses the folder
    *_rank<N>.*          files each rank of a torchrun run writes for itself
"""

from __future__ import annotations

from pathlib import Path

CONFIG_FILE = "config.yaml"
LOG_FILE = "run.log"
SCALARS_FILE = "scalars.jsonl"
METRICS_FILE = "metrics.json"
TENSORBOARD_DIR = "tensorboard"
CHECKPOINT_DIR = "checkpoints"
LAST_CHECKPOINT = "last.pt"
BEST_CHECKPOINT = "best.pt"
LOCK_FILE = ".lock"
PER_RANK_PATTERN = "*_rank[0-9]*"

# what shows that a folder holds a run
RUN_RECORDS = (
    f"{CHECKPOINT_DIR}/{LAST_CHECKPOINT}",
    f"{CHECKPOINT_DIR}/{BEST_CHECKPOINT}",
    SCALARS_FILE,
)
# what overwrite=true removes (the current run's .hydra/ and Hydra's own log stay)
RUN_FILES = (CHECKPOINT_DIR, SCALARS_FILE, METRICS_FILE, LOG_FILE, TENSORBOARD_DIR)


def checkpoint_dir(folder: str | Path) -> Path:
    """``folder/checkpoints``: where a training loop of this run folder keeps its checkpoints."""
    return Path(folder) / CHECKPOINT_DIR


def checkpoint_records(prefix: str = "") -> list[str]:
    """``last.pt`` and ``best.pt`` relative to a run folder (under ``prefix/``, a stage's)."""
    base = f"{prefix}/{CHECKPOINT_DIR}" if prefix else CHECKPOINT_DIR
    return [f"{base}/{LAST_CHECKPOINT}", f"{base}/{BEST_CHECKPOINT}"]


def per_rank_files(folder: str | Path) -> list[str]:
    """The names of the files a torchrun run's ranks wrote for themselves into ``folder``."""
    return [path.name for path in Path(folder).glob(PER_RANK_PATTERN)]


def per_rank_file(stem: str, rank: int, suffix: str) -> str:
    """``<stem>_rank<rank><suffix>``: a name :func:`per_rank_files` finds."""
    return f"{stem}_rank{rank}{suffix}"
