"""Seeding and the determinism switch.

The per-rank rule (:func:`rank_seed`) is detectron2's: rank ``r`` of a run seeded ``seed`` seeds
its global generators with ``seed + r``.  Ranks then draw different random numbers where they
should differ (dropout, augmentation), while what must be the same on every rank is drawn from
generators keyed by ``seed`` alone (an epoch's data order: :func:`trilab.loop.epoch_order`), and
DDP gives every rank rank 0's initial weights.
"""

from __future__ import annotations

import os
import random

import numpy as np
import torch


def rank_seed(seed: int, rank: int) -> int:
    """The seed of rank ``rank``'s global generators in a run seeded ``seed``: ``seed + rank``."""
    return int(seed) + int(rank)


def seed_everything(seed: int, deterministic: bool = False) -> torch.Generator:
    """Seed python, numpy and torch; optionally force deterministic kernels.

    Returns a fresh ``torch.Generator`` seeded with ``seed`` for DataLoaders and samplers, so
    their shuffling can be checkpointed independently of the global RNG.
    """
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        # cuBLAS needs this workspace setting to be deterministic; must be set before first use.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
    else:
        torch.use_deterministic_algorithms(False)
    generator = torch.Generator()
    generator.manual_seed(seed)
    return generator
