"""What a sampler produces and the interface every sampler satisfies.

Block convention (PyG bipartite): ``edge_index[0]`` indexes the block's source nodes,
``edge_index[1]`` its destination nodes; the destination nodes are the first ``num_dst`` source
nodes, so ``x_dst = x_src[:num_dst]`` and ``SAGEConv((x_src, x_dst), edge_index)`` works.

This module imports no sampler: the prefetcher, the models and the PyG adapter are typed with
:class:`BlockSampler` whichever implementation they receive.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import torch


@dataclass
class Block:
    src_nodes: torch.Tensor  # global ids of the block's source nodes; dst nodes are a prefix
    num_dst: int
    edge_index: torch.Tensor  # [2, E] local ids: row 0 = source, row 1 = destination
    edge_ids: torch.Tensor  # position of each sampled edge in the CSR indices array

    @property
    def num_src(self) -> int:
        return int(self.src_nodes.shape[0])

    @property
    def dst_nodes(self) -> torch.Tensor:
        return self.src_nodes[: self.num_dst]

    def to(self, device: torch.device | str, non_blocking: bool = False) -> Block:
        return Block(
            self.src_nodes.to(device, non_blocking=non_blocking),
            self.num_dst,
            self.edge_index.to(device, non_blocking=non_blocking),
            self.edge_ids.to(device, non_blocking=non_blocking),
        )


@dataclass
class MiniBatch:
    seeds: torch.Tensor
    blocks: list[Block]  # input layer first: blocks[0].src_nodes are the rows to fetch
    labels: torch.Tensor | None = None

    @property
    def input_nodes(self) -> torch.Tensor:
        return self.blocks[0].src_nodes

    def to(self, device: torch.device | str, non_blocking: bool = False) -> MiniBatch:
        labels = None if self.labels is None else self.labels.to(device, non_blocking=non_blocking)
        return MiniBatch(
            self.seeds.to(device, non_blocking=non_blocking),
            [b.to(device, non_blocking) for b in self.blocks],
            labels,
        )


@runtime_checkable
class BlockSampler(Protocol):
    """A multi-hop neighbour sampler over a CSR of in-neighbours.

    ``fanouts[0]`` is the seeds' hop (PyG's NeighborLoader convention); ``sample`` returns the
    blocks input layer first.  A batch depends on ``(seed, epoch, step, rank)`` only
    (:func:`zerocopy_gcn.sampling.keys.batch_key`): not on threads, order or which thread asks.
    """

    fanouts: list[int]
    seed: int
    rank: int
    device: torch.device
    labels: torch.Tensor | None

    def sample(self, seeds: torch.Tensor, epoch: int = 0, step: int = 0) -> MiniBatch: ...
