"""The global random states a resumed run needs back (Python, NumPy, torch, CUDA), captured as
tensors and plain values so that a checkpoint loads with ``torch.load(weights_only=True)``."""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
import torch.distributed as dist


def _numpy_state() -> dict[str, Any]:
    state = np.random.get_state(legacy=False)
    return {
        "bit_generator": state["bit_generator"],
        "key": torch.from_numpy(state["state"]["key"].astype(np.int64)),
        "pos": int(state["state"]["pos"]),
        "has_gauss": int(state["has_gauss"]),
        "gauss": float(state["gauss"]),
    }


def _set_numpy_state(state: Mapping[str, Any]) -> None:
    np.random.set_state(
        (
            state["bit_generator"],
            state["key"].numpy().astype(np.uint32),
            state["pos"],
            state["has_gauss"],
            state["gauss"],
        )
    )


def capture_rng_state() -> dict[str, Any]:
    state = {"python": random.getstate(), "numpy": _numpy_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: Mapping[str, Any]) -> None:
    random.setstate(state["python"])
    _set_numpy_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


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
