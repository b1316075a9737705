"""Training nodes cut into batches in the epoch's order.

The order is :func:`trilab.loop.epoch_order` (one shuffle per (seed, epoch), shared by the
three projects, cut into equal rank shares), the same order ``train.py`` uses, so benchmarks
and tests see the batches training sees.
"""

from __future__ import annotations

import numpy as np
import torch

from trilab.loop import epoch_order


def seed_batches(
    nodes: np.ndarray | torch.Tensor,
    batch_size: int,
    epoch: int = 0,
    seed: int = 0,
    shuffle: bool = True,
    *,
    rank: int = 0,
    world_size: int = 1,
) -> list[torch.Tensor]:
    """``nodes`` split into batches of ``batch_size``: in the epoch's order for this rank's
    share (``shuffle``), or as given (``shuffle=False``: the caller ordered them)."""
    nodes = torch.as_tensor(np.asarray(nodes), dtype=torch.long)
    if shuffle:
        order = epoch_order(nodes.shape[0], seed, epoch, rank=rank, world_size=world_size)
        nodes = nodes[torch.from_numpy(order)]
    return list(torch.split(nodes, batch_size))
