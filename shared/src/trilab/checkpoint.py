"""Atomic checkpoints that resume a run exactly: weights, optimiser, scheduler, epoch, RNG states.

A checkpoint is written to a temporary file in the target directory, flushed and fsync'ed, then
renamed over the target, so a run killed mid-write leaves the previous checkpoint intact (and a
temporary file that :func:`remove_stale_temporaries` clears when the next run starts).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import random
import re
import secrets
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import torch
import torch.distributed as dist

from trilab.errors import REFUSED_BY_SYSTEM, UserError, WriteError
from trilab.safe_load import DataFileError, UnsafeFileError, load_torch_file

CHECKPOINT_DIR = "checkpoints"
LAST_CHECKPOINT = "last.pt"
BEST_CHECKPOINT = "best.pt"
FORMAT_VERSION = 1


class CheckpointError(UserError, RuntimeError):
    """A checkpoint file is missing, unreadable or does not fit the model it is loaded into."""


# ".<target name>.<8 random characters>.tmp", ours and tempfile.mkstemp's of earlier versions
TEMPORARY_NAME = re.compile(r"^\..+\.[a-z0-9_]{8}\.tmp$")


def _create_temporary(path: Path) -> tuple[int, Path]:
    """An exclusive new file beside ``path``, with the mode the umask gives (mkstemp's is 0600:
    a checkpoint others in the group cannot read)."""
    while True:
        candidate = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            return os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), candidate
        except FileExistsError:
            continue


def atomic_write(path: str | Path, write: Callable[[BinaryIO], Any]) -> Path:
    """Call ``write`` with a binary handle to a temporary file beside ``path``, then rename it to
    ``path``: a kill or a full disk leaves the file that was there before, never half of one."""
    path = Path(path)
    tmp: Path | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = _create_temporary(path)
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as error:
        if tmp is not None:
            with contextlib.suppress(OSError):  # a read-only folder refuses this too
                tmp.unlink(missing_ok=True)
        if isinstance(error, OSError) and error.errno in REFUSED_BY_SYSTEM:
            raise WriteError(
                f"cannot write {path}: {os.strerror(error.errno)}; the file there "
                "before (if any) is unchanged"
            ) from None
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # make the rename itself durable
    finally:
        os.close(dir_fd)
    return path


def atomic_save(obj: Any, path: str | Path) -> Path:
    """``torch.save`` that never leaves a half-written file at ``path``."""
    return atomic_write(path, lambda handle: torch.save(obj, handle))


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write(path, lambda handle: handle.write(text.encode("utf-8")))


def remove_stale_temporaries(folder: str | Path) -> list[Path]:
    """Delete the temporary files of atomic writes that were killed before their rename.

    Only safe while no other process writes into ``folder`` (a run holding its folder's lock).
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    stale = [p for p in folder.iterdir() if TEMPORARY_NAME.match(p.name) and p.is_file()]
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


def unwrap_model(model: torch.nn.Module) -> torch.nn.Module:
    """The module whose state dict is saved: without DDP or torch.compile wrappers."""
    while True:
        if isinstance(model, torch.nn.parallel.DistributedDataParallel):
            model = model.module
        elif hasattr(model, "_orig_mod"):
            model = model._orig_mod
        else:
            return model


def weights_digest(model: torch.nn.Module) -> str:
    """SHA-256 over the unwrapped module's parameters and buffers, by name: equal weights give
    an equal digest on any rank, and a run's or an artefact's weights can be named by it."""
    digest = hashlib.sha256()
    for name, tensor in sorted(unwrap_model(model).state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def numpy_global_state() -> dict[str, Any]:
    """NumPy's global RNG state as tensors and plain values (loadable with weights_only=True)."""
    state = np.random.get_state(legacy=False)
    return {
        "bit_generator": state["bit_generator"],
        "key": torch.from_numpy(state["state"]["key"].astype(np.int64)),
        "pos": int(state["state"]["pos"]),
        "has_gauss": int(state["has_gauss"]),
        "gauss": float(state["gauss"]),
    }


def set_numpy_global_state(state: Any) -> None:
    if isinstance(state, Mapping) and "key" in state:
        key = state["key"]
        key = key.numpy() if isinstance(key, torch.Tensor) else np.asarray(key)
        state = (
            state["bit_generator"],
            key.astype(np.uint32),
            state["pos"],
            state["has_gauss"],
            state["gauss"],
        )
    np.random.set_state(state)


def describe_optimizer(optimizer: Any) -> str:
    """``Adam(lr=0.001, betas=(0.9, 0.999), ...)``: the class and its constructor settings."""
    settings = getattr(optimizer, "defaults", {}) or {}
    shown = ", ".join(
        f"{key}={value}"
        for key, value in settings.items()
        if value is not None and value is not False
    )
    return f"{type(optimizer).__name__}({shown})"


def capture_rng_state() -> dict[str, Any]:
    state = {
        "python": random.getstate(),
        "numpy": numpy_global_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def gather_rng_states(ctx: Any) -> list[dict[str, Any]] | None:
    """Every rank's RNG state, on every rank (a collective: all ranks must call it), for
    ``save_checkpoint(rng_per_rank=...)``; ``None`` in a single-process run.

    Ranks draw different amounts of random numbers (their batches differ, and with them what
    dropout consumes), so a resume that gave every rank rank 0's state would not continue the
    uninterrupted run.  The states travel between this job's own processes only.
    """
    if ctx is None or not getattr(ctx, "is_distributed", False) or not dist.is_initialized():
        return None
    states: list[Any] = [None] * ctx.world_size
    dist.all_gather_object(states, capture_rng_state())
    return states


def restore_rng_state(state: Mapping[str, Any]) -> None:
    random.setstate(state["python"])
    set_numpy_global_state(state["numpy"])
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
    steps_into_next_epoch: int = 0,
    rng_per_rank: list[dict[str, Any]] | None = None,
) -> Path:
    """Atomically save everything needed to continue training after ``epoch``.

    ``epoch`` is the last completed epoch (-1 for none).  A checkpoint written in the middle of
    an epoch (a run stopped by a signal) also records ``steps_into_next_epoch``: how many steps
    of epoch ``epoch + 1`` are already done; see :func:`resume_position`.  Distributed runs pass
    every rank's RNG state (:func:`gather_rng_states`), which ``load_checkpoint(rank=)`` gives
    back to each rank.
    """
    payload = {
        "format_version": FORMAT_VERSION,
        "epoch": int(epoch),
        "steps_into_next_epoch": int(steps_into_next_epoch),
        "model": unwrap_model(model).state_dict(),
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "optimizer_class": type(optimizer).__name__ if optimizer is not None else None,
        "optimizer_description": describe_optimizer(optimizer) if optimizer is not None else None,
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "rng": capture_rng_state(),
        "rng_per_rank": list(rng_per_rank) if rng_per_rank else None,
        "generators": {name: g.get_state() for name, g in (generators or {}).items()},
        "extra": dict(extra or {}),
    }
    return atomic_save(payload, path)


def read_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint file written by :func:`save_checkpoint`, with errors that name it.

    Loaded with ``torch.load(weights_only=True)``: a file that asks for anything beyond tensors
    and plain data is refused.  Checkpoints of earlier versions of this repository stored
    NumPy's RNG state as a NumPy array; they are not supported, and the error says so.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        payload = load_torch_file(path, map_location=map_location, what="checkpoint")
    except UnsafeFileError as error:
        if "numpy" in str(error):
            raise CheckpointError(
                f"{path}: refused to load checkpoint: it holds NumPy objects, as checkpoints of "
                "earlier versions of this repository did, which are not supported (start a new "
                "run)"
            ) from None
        raise
    except DataFileError as error:
        raise CheckpointError(str(error)) from None
    if not isinstance(payload, dict) or "model" not in payload:
        raise CheckpointError(f"{path} is not a trilab checkpoint (no 'model' key)")
    return payload


def resume_position(payload: Mapping[str, Any]) -> tuple[int, int]:
    """(epoch to run next, steps of it already done) for a loaded checkpoint."""
    return int(payload["epoch"]) + 1, int(payload.get("steps_into_next_epoch", 0))


def describe_mismatch(error: RuntimeError, limit: int = 3, width: int = 240) -> str:
    """torch's state-dict mismatch report cut to its first ``limit`` problems and a count
    (a wrong config otherwise prints one line per parameter)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    problems = lines[1:] or lines
    shown = [p if len(p) <= width else p[: width - 3] + "..." for p in problems[:limit]]
    more = len(problems) - len(shown)
    return "; ".join(shown) + (f"; ... and {more} more" if more > 0 else "")


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
    rank: int = 0,
    world_size: int | None = None,
) -> dict[str, Any]:
    """Restore the given objects from ``path``; returns the whole payload (``epoch``, ``extra``).

    ``rank``: which rank's RNG state to restore when the checkpoint holds one per rank.
    ``world_size``: the resuming run's; a warning says when it differs from the writer's (the
    run continues, but each rank's share of the data and random draws change)."""
    path = Path(path)
    payload = read_checkpoint(path, map_location)
    if model is not None:
        try:
            unwrap_model(model).load_state_dict(payload["model"], strict=strict)
        except RuntimeError as error:
            raise CheckpointError(
                f"checkpoint {path} does not fit the model: {describe_mismatch(error)}"
            ) from None
    for name, target in (("optimizer", optimizer), ("scheduler", scheduler)):
        if target is None:
            continue
        if payload.get(name) is None:
            raise CheckpointError(f"checkpoint {path} has no {name} state to resume from")
        if name == "optimizer":
            _load_optimizer(path, payload, target)
        else:
            target.load_state_dict(payload[name])
    for name, generator in (generators or {}).items():
        saved = payload.get("generators", {})
        if name not in saved:
            raise CheckpointError(f"checkpoint {path} has no state for generator {name!r}")
        generator.set_state(saved[name])
    per_rank = payload.get("rng_per_rank") or []
    written_by = max(len(per_rank), 1)
    if restore_rng and world_size is not None and world_size != written_by:
        warnings.warn(
            f"{path} was written by a run of {written_by} process(es) and is resumed "
            f"by {world_size}: training continues, but not as the original run would "
            "have (each process's share of the data and random draws differ)",
            stacklevel=2,
        )
    if restore_rng and rank < len(per_rank):
        restore_rng_state(per_rank[rank])
    elif restore_rng and payload.get("rng") is not None:
        restore_rng_state(payload["rng"])
    return payload


def _load_optimizer(path: Path, payload: Mapping[str, Any], optimizer: Any) -> None:
    saved = payload.get("optimizer_description") or "an optimizer of unrecorded settings"
    refusal = (
        f"checkpoint {path} was trained with the optimizer {saved}; this run's is "
        f"{describe_optimizer(optimizer)}: resume with the optimizer settings it was "
        "trained with, or start a new run"
    )
    recorded_class = payload.get("optimizer_class")
    if recorded_class is not None and recorded_class != type(optimizer).__name__:
        raise CheckpointError(refusal)
    try:
        optimizer.load_state_dict(payload["optimizer"])
    except (KeyError, ValueError, IndexError, TypeError, RuntimeError) as error:
        raise CheckpointError(f"{refusal} ({type(error).__name__}: {error})") from None


def checkpoint_dir(run_dir: str | Path) -> Path:
    return Path(run_dir) / CHECKPOINT_DIR


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    """``run_dir/checkpoints/last.pt`` when it exists, else ``None``."""
    path = checkpoint_dir(run_dir) / LAST_CHECKPOINT
    return path if path.is_file() else None


def find_resume_checkpoint(path: str | Path, resume: bool, log=None) -> Path | None:
    """The checkpoint to resume from, or ``None`` for a fresh start; the same words everywhere.

    ``path`` is the ``last.pt`` a run would resume from.  With ``resume`` true and no such file,
    the run starts from scratch and says so (a warning in the log), instead of silently.
    """
    path = Path(path)
    if not resume:
        return None
    if path.is_file():
        return path
    message = (
        f"resume=true but there is nothing to resume: {path} does not exist; "
        "starting a new run from epoch 0"
    )
    if log is not None:
        log.warning(message)
    else:
        import warnings

        warnings.warn(message, stacklevel=2)
    return None
