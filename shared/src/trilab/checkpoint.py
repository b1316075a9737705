"""Checkpoints that resume a run exactly: the model's weights, the state of every object the run
checkpoints (optimizers, schedulers: anything with ``state_dict``/``load_state_dict``, by name,
as detectron2's checkpointer takes them), the epoch and step reached, and the RNG states.

Files are written with :func:`trilab.atomic.atomic_save` (whole or not at all; a full disk is a
one-line :class:`~trilab.errors.WriteError`) and read with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from trilab.atomic import atomic_save
from trilab.errors import UserError
from trilab.rng import capture_rng_state, restore_rng_state
from trilab.safe_load import DataFileError, load_torch_file
from trilab.weights import unwrap_model

FORMAT_VERSION = 2


class CheckpointError(UserError, RuntimeError):
    """A checkpoint file is missing, unreadable or does not fit the model it is loaded into."""


def describe(obj: Any) -> str:
    """``Adam(lr=0.001, betas=(0.9, 0.999), ...)``: the class and, for an optimizer, its
    constructor settings; what a refused resume names."""
    settings = getattr(obj, "defaults", {}) or {}
    shown = ", ".join(
        f"{key}={value}"
        for key, value in settings.items()
        if value is not None and value is not False
    )
    return f"{type(obj).__name__}({shown})"


def save_checkpoint(
    path: str | Path,
    *,
    model: torch.nn.Module,
    epoch: int,
    checkpointables: Mapping[str, Any] | None = None,
    extra: Mapping[str, Any] | None = None,
    steps_into_next_epoch: int = 0,
    rng_per_rank: list[dict[str, Any]] | None = None,
) -> Path:
    """Atomically save everything needed to continue training after ``epoch``.

    ``epoch`` is the last completed epoch (-1 for none).  A checkpoint written in the middle of
    an epoch (a run stopped by a signal) also records ``steps_into_next_epoch``: how many steps
    of epoch ``epoch + 1`` are already done; see :func:`resume_position`.
    ``checkpointables``: name -> object with ``state_dict``.  Distributed runs pass every rank's
    RNG state (:func:`trilab.rng.gather_rng_states`), which ``load_checkpoint(rank=)`` gives back
    to each rank.
    """
    checkpointables = dict(checkpointables or {})
    payload = {
        "format_version": FORMAT_VERSION,
        "epoch": int(epoch),
        "steps_into_next_epoch": int(steps_into_next_epoch),
        "model": unwrap_model(model).state_dict(),
        "state": {name: obj.state_dict() for name, obj in checkpointables.items()},
        "described": {name: describe(obj) for name, obj in checkpointables.items()},
        "rng": capture_rng_state(),
        "rng_per_rank": list(rng_per_rank) if rng_per_rank else None,
        "extra": dict(extra or {}),
    }
    return atomic_save(payload, path)


def read_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint file written by :func:`save_checkpoint`, with errors that name it.

    Loaded with ``torch.load(weights_only=True)``: a file that asks for anything beyond tensors
    and plain data is refused.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        payload = load_torch_file(path, map_location=map_location, what="checkpoint")
    except DataFileError as error:
        raise CheckpointError(str(error)) from None
    if not isinstance(payload, dict) or "model" not in payload:
        raise CheckpointError(f"{path} is not a trilab checkpoint (no 'model' key)")
    return payload


def resume_position(payload: Mapping[str, Any]) -> tuple[int, int]:
    """(epoch to run next, steps of it already done) for a loaded checkpoint."""
    return int(payload["epoch"]) + 1, int(payload["steps_into_next_epoch"])


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
    checkpointables: Mapping[str, Any] | None = None,
    map_location: str | torch.device = "cpu",
    restore_rng: bool = True,
    strict: bool = True,
    rank: int = 0,
    world_size: int | None = None,
) -> dict[str, Any]:
    """Restore the given objects from ``path``; returns the whole payload (``epoch``, ``extra``).

    ``checkpointables``: name -> object with ``load_state_dict``; the checkpoint must hold
    state for exactly these names, recorded from objects of the same class and settings (a
    resume with another optimizer, or without one the run trained, is refused by name).
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
    if checkpointables is not None:
        _load_checkpointables(path, payload, checkpointables)
    if restore_rng:
        _restore_rng(path, payload, rank, world_size)
    return payload


def _load_checkpointables(
    path: Path, payload: Mapping[str, Any], checkpointables: Mapping[str, Any]
) -> None:
    saved, described = payload.get("state") or {}, payload.get("described") or {}
    advice = "resume with the settings it was trained with, or start a new run"
    for name in saved.keys() - checkpointables.keys():
        raise CheckpointError(
            f"checkpoint {path} also holds the state of {name} ({described.get(name)}), "
            f"which this run does not train: {advice}"
        )
    for name, target in checkpointables.items():
        if name not in saved:
            raise CheckpointError(
                f"checkpoint {path} holds no state for {name} ({describe(target)}): it was "
                f"written by a run without it; {advice}"
            )
        refusal = (
            f"checkpoint {path} was trained with the {name} {described.get(name)}; this "
            f"run's is {describe(target)}: {advice}"
        )
        if described.get(name, "").split("(")[0] != type(target).__name__:
            raise CheckpointError(refusal)
        try:
            target.load_state_dict(saved[name])
        except (KeyError, ValueError, IndexError, TypeError, RuntimeError) as error:
            raise CheckpointError(f"{refusal} ({type(error).__name__}: {error})") from None


def _restore_rng(path: Path, payload: Mapping[str, Any], rank: int, world_size: int | None):
    per_rank = payload.get("rng_per_rank") or []
    written_by = max(len(per_rank), 1)
    if world_size is not None and world_size != written_by:
        warnings.warn(
            f"{path} was written by a run of {written_by} process(es) and is resumed "
            f"by {world_size}: training continues, but not as the original run would "
            "have (each process's share of the data and random draws differ)",
            stacklevel=3,
        )
    if rank < len(per_rank):
        restore_rng_state(per_rank[rank])
    elif payload.get("rng") is not None:
        restore_rng_state(payload["rng"])


def find_resume_checkpoint(path: str | Path, resume: bool, log) -> Path | None:
    """The checkpoint to resume from, or ``None`` for a fresh start; the same words everywhere.

    ``path`` is the ``last.pt`` a run would resume from.  With ``resume`` true and no such file,
    the run starts from scratch and says so (a warning in the log), instead of silently.
    """
    path = Path(path)
    if not resume:
        return None
    if path.is_file():
        return path
    log.warning(
        f"resume=true but there is nothing to resume: {path} does not exist; "
        "starting a new run from epoch 0"
    )
    return None
