"""Vectorised layer-wise neighbour sampling over CSR: the reference sampler.

For each hop the frontier's neighbours are sampled at once with tensor ops (no per-node Python
loop): rows with degree <= fanout keep all their edges; larger rows draw ``fanout`` distinct
positions with Floyd's algorithm, vectorised across rows (the Python loop runs over the fanout,
never over nodes), which gives a uniform subset without replacement.

The same code runs on CPU tensors (memory-mapped CSR) and on CUDA tensors (CSR copied to, or
mapped into, the GPU), which is the GPU-sampling path: nothing here is device specific.  On
the CPU, :mod:`zerocopy_gcn.sampling.compiled` builds the same blocks several times faster and
is what training uses there (:func:`zerocopy_gcn.sampling.make_sampler`); this module stays the
tested reference.  Blocks follow :mod:`zerocopy_gcn.sampling.base`'s convention.
"""

from __future__ import annotations

import numpy as np
import torch

from zerocopy_gcn.graph.csr import CSRGraph, numpy_to_tensor
from zerocopy_gcn.sampling.base import Block, MiniBatch
from zerocopy_gcn.sampling.keys import batch_key


def unique_keep_prefix(
    prefix: torch.Tensor, rest: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Unique ids of ``cat(prefix, rest)`` in first-appearance order, and ``rest``'s local ids.

    ``prefix`` must hold distinct ids; they keep local ids ``0..len(prefix)-1``.
    """
    allnodes = torch.cat([prefix, rest])
    uniq, inverse = torch.unique(allnodes, return_inverse=True)
    positions = torch.arange(allnodes.shape[0], device=allnodes.device)
    first = torch.full(
        (uniq.shape[0],), allnodes.shape[0], dtype=torch.long, device=allnodes.device
    )
    first.scatter_reduce_(0, inverse, positions, reduce="amin")
    order = torch.argsort(first)
    rank = torch.empty_like(order)
    rank[order] = torch.arange(order.shape[0], device=order.device)
    local = rank[inverse]
    return uniq[order], local[prefix.shape[0] :]


def sample_neighbors(
    indptr: torch.Tensor, nodes: torch.Tensor, fanout: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample up to ``fanout`` in-edges of each node, without replacement.

    Returns ``(dst_pos, edge_ids)``: for each sampled edge, the position of its destination in
    ``nodes`` and the edge's position in the CSR ``indices`` array.  ``fanout < 0`` takes all.
    """
    device = nodes.device
    start = indptr[nodes]
    degree = indptr[nodes + 1] - start
    if fanout < 0:
        take_all = torch.ones_like(degree, dtype=torch.bool)
    else:
        take_all = degree <= fanout
    # rows taken whole: positions start .. start + degree
    full = torch.nonzero(take_all).flatten()
    full_deg = degree[full]
    full_dst = torch.repeat_interleave(full, full_deg)
    offsets = torch.arange(full_dst.shape[0], device=device) - torch.repeat_interleave(
        torch.cumsum(full_deg, 0) - full_deg, full_deg
    )
    full_eids = start[full_dst] + offsets
    if fanout < 0:
        return full_dst, full_eids
    # rows sampled: Floyd's algorithm, one vectorised step per draw
    part = torch.nonzero(~take_all).flatten()
    part_deg = degree[part]
    chosen = torch.empty((part.shape[0], fanout), dtype=torch.long, device=device)
    for i in range(fanout):
        upper = part_deg - fanout + i  # draw from 0..upper inclusive
        draw = torch.rand(part.shape[0], generator=generator, device=device)
        pick = torch.minimum((draw * (upper + 1).to(draw.dtype)).long(), upper)
        if i:
            taken = (chosen[:, :i] == pick[:, None]).any(1)
            pick = torch.where(taken, upper, pick)
        chosen[:, i] = pick
    part_dst = part.repeat_interleave(fanout)
    part_eids = (start[part][:, None] + chosen).flatten()
    return torch.cat([full_dst, part_dst]), torch.cat([full_eids, part_eids])


class NeighborSampler:
    """Multi-hop sampler (a :class:`~zerocopy_gcn.sampling.base.BlockSampler`).
    ``fanouts[0]`` is the seeds' hop (PyG NeighborLoader convention).

    ``device`` picks where sampling runs: ``cpu`` uses the CSR arrays in place (memory-mapped);
    ``cuda`` copies them to the GPU once, or uses CUDA tensors you pass (e.g. mapped host
    memory from :mod:`zerocopy_gcn.fetch.zerocopy`).
    """

    def __init__(
        self,
        graph: CSRGraph | None,
        fanouts: list[int],
        seed: int = 0,
        device: torch.device | str = "cpu",
        indptr: torch.Tensor | None = None,
        indices: torch.Tensor | None = None,
        rank: int = 0,
    ) -> None:
        self.fanouts = [int(f) for f in fanouts]
        self.seed = int(seed)
        self.rank = int(rank)
        self.device = torch.device(device)
        if indptr is None or indices is None:
            if graph is None:
                raise ValueError("NeighborSampler needs a graph or indptr + indices")
            indptr = numpy_to_tensor(graph.indptr)
            indices = numpy_to_tensor(graph.indices)
        self.indptr = indptr.to(self.device)
        self.indices = indices.to(self.device)
        self.labels = (
            torch.from_numpy(np.asarray(graph.label)).to(self.device) if graph is not None else None
        )

    def generator(self, epoch: int, step: int) -> torch.Generator:
        """The batch's generator, seeded with its :func:`batch_key`: a batch is the same
        whatever thread or order produced it, which keeps prefetching deterministic."""
        gen = torch.Generator(device=self.device)
        gen.manual_seed(batch_key(self.seed, epoch, step, self.rank))
        return gen

    def sample(self, seeds: torch.Tensor, epoch: int = 0, step: int = 0) -> MiniBatch:
        seeds = seeds.to(self.device, torch.long)
        if torch.unique(seeds).shape[0] != seeds.shape[0]:
            raise ValueError("seed nodes of a batch must be distinct")
        gen = self.generator(epoch, step)
        frontier = seeds
        blocks = []
        for fanout in self.fanouts:
            dst_pos, eids = sample_neighbors(self.indptr, frontier, fanout, gen)
            neighbors = self.indices[eids].long()
            src_nodes, src_local = unique_keep_prefix(frontier, neighbors)
            blocks.append(
                Block(src_nodes, int(frontier.shape[0]), torch.stack([src_local, dst_pos]), eids)
            )
            frontier = src_nodes
        labels = self.labels[seeds] if self.labels is not None else None
        return MiniBatch(seeds, blocks[::-1], labels)
