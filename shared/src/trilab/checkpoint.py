"""Atomic checkpoints that resume a run exactly: weights, optimiser, scheduler, epoch, RNG states.

A checkpoint is written to a temporary file in the target directory, flushed and fsync'ed, then
renamed over the target, so a run killed mid-write leaves the previous checkpoint intact.
"""

from __future__ import annotations

import os
import random
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

CHECKPOINT_DIR = "checkpoints"
LAST_CHECKPOINT = "last.pt"
BEST_CHECKPOINT = "best.pt"
FORMAT_VERSION = 1


class CheckpointError(RuntimeError):
    """A checkpoint file is missing, unreadable or does not fit the model it is loaded into."""


def _atomic_write(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # make the rename itself durable
    finally:
        os.close(dir_fd)


def atomic_save(obj: Any, path: str | Path) -> Path:
    """``torch.save`` that never leaves a half-written file at ``path``."""
    path = Path(path)
    _atomic_write(path, lambda handle: torch.save(obj, handle))
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    path = Path(path)
    _atomic_write(path, lambda handle: handle.write(text.encode("utf-8")))
    return path


def unwrap_model(model: torch.nn.Module) -> torch.nn.Module:
    """The module whose state dict is saved: without DDP or torch.compile wrappers."""
    while True:
        if isinstance(model, torch.nn.parallel.DistributedDataParallel):
            model = model.module
        elif hasattr(model, "_orig_mod"):
            model = model._orig_mod
        else:
            return model


def capture_rng_state() -> dict[str, Any]:
    state = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: Mapping[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(
    path: str | Path,
    *,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any | None = None,
    epoch: int,
    extra: Mapping[str, Any] | None = None,
    generators: Mapping[str, torch.Generator] | None = None,
) -> Path:
    """Atomically save everything needed to continue training after ``epoch``."""
    payload = {
        "format_version": FORMAT_VERSION,
        "epoch": int(epoch),
        "model": unwrap_model(model).state_dict(),
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "rng": capture_rng_state(),
        "generators": {name: g.get_state() for name, g in (generators or {}).items()},
        "extra": dict(extra or {}),
    }
    return atomic_save(payload, path)


def read_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint file written by :func:`save_checkpoint`, with errors that name it."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as error:  # torch raises several types for truncated/corrupt files
        raise CheckpointError(f"checkpoint {path} is unreadable ({error})") from error
    if not isinstance(payload, dict) or "model" not in payload:
        raise CheckpointError(f"{path} is not a trilab checkpoint (no 'model' key)")
    return payload


def load_checkpoint(
    path: str | Path,
    *,
    model: torch.nn.Module | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any | None = None,
    generators: Mapping[str, torch.Generator] | None = None,
    map_location: str | torch.device = "cpu",
    restore_rng: bool = True,
    strict: bool = True,
) -> dict[str, Any]:
    """Restore the given objects from ``path``; returns the whole payload (``epoch``, ``extra``)."""
    path = Path(path)
    payload = read_checkpoint(path, map_location)
    if model is not None:
        try:
            unwrap_model(model).load_state_dict(payload["model"], strict=strict)
        except RuntimeError as error:
            raise CheckpointError(f"checkpoint {path} does not fit the model: {error}") from error
    for name, target in (("optimizer", optimizer), ("scheduler", scheduler)):
        if target is None:
            continue
        if payload.get(name) is None:
            raise CheckpointError(f"checkpoint {path} has no {name} state to resume from")
        target.load_state_dict(payload[name])
    for name, generator in (generators or {}).items():
        saved = payload.get("generators", {})
        if name not in saved:
            raise CheckpointError(f"checkpoint {path} has no state for generator {name!r}")
        generator.set_state(saved[name])
    if restore_rng and payload.get("rng") is not None:
        restore_rng_state(payload["rng"])
    return payload


def checkpoint_dir(run_dir: str | Path) -> Path:
    return Path(run_dir) / CHECKPOINT_DIR


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    """``run_dir/checkpoints/last.pt`` when it exists, else ``None``."""
    path = checkpoint_dir(run_dir) / LAST_CHECKPOINT
    return path if path.is_file() else None
