"""Vectorised layer-wise neighbour sampling over CSR, producing bipartite message-flow blocks.

For each hop the frontier's neighbours are sampled at once with tensor ops (no per-node Python
loop): rows with degree <= fanout keep all their edges; larger rows draw ``fanout`` distinct
positions with Floyd's algorithm, vectorised across rows (the Python loop runs over the fanout,
never over nodes), which gives a uniform subset without replacement.

The same code runs on CPU tensors (memory-mapped CSR) and on CUDA tensors (CSR copied to, or
mapped into, the GPU), which is the GPU-sampling path: nothing here is device specific.  On
the CPU, :mod:`zerocopy_gcn.compiled_sampler` builds the same blocks several times faster and
is what training uses there (:func:`make_sampler`); this module stays the tested reference.

Block convention (PyG bipartite): ``edge_index[0]`` indexes the block's source nodes,
``edge_index[1]`` its destination nodes; the destination nodes are the first ``num_dst`` source
nodes, so ``x_dst = x_src[:num_dst]`` and ``SAGEConv((x_src, x_dst), edge_index)`` works.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch

from trilab.errors import UserError
from zerocopy_gcn.graph.csr import CSRGraph, numpy_to_tensor


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
    """Multi-hop sampler. ``fanouts[0]`` is the seeds' hop (PyG NeighborLoader convention).

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
    ) -> None:
        self.fanouts = [int(f) for f in fanouts]
        self.seed = int(seed)
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
        """One generator per (seed, epoch, step): a batch is the same whatever thread or order
        produced it, which keeps prefetching deterministic."""
        gen = torch.Generator(device=self.device)
        gen.manual_seed((self.seed * 1_000_003 + epoch) * 1_000_003 + step)
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


SAMPLER_KINDS = ("auto", "compiled", "reference")


def default_num_threads() -> int:
    """The CPUs this process may run on (its affinity mask: what a container or taskset
    gives it, not the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def compiled_sampler_available() -> bool:
    try:
        import numba  # noqa: F401
    except ImportError:
        return False
    return True


def make_sampler(
    kind: str,
    graph: CSRGraph | None,
    fanouts: list[int],
    seed: int = 0,
    device: torch.device | str = "cpu",
    num_threads: int = 0,
    indptr: torch.Tensor | None = None,
    indices: torch.Tensor | None = None,
):
    """The sampler for ``kind`` (config ``sampler.kind``) on ``device``.

    ``compiled``: :class:`~zerocopy_gcn.compiled_sampler.CompiledNeighborSampler` (CPU only,
    ``num_threads`` threads, 0 = the process's CPUs); ``reference``: :class:`NeighborSampler`
    (any device; the GPU-sampling path); ``auto``: compiled on the CPU where numba is
    installed, else the reference.
    """
    if kind not in SAMPLER_KINDS:
        raise UserError(f"sampler.kind must be one of {SAMPLER_KINDS}, got {kind!r}")
    on_cpu = torch.device(device).type == "cpu"
    if kind == "compiled" and not on_cpu:
        raise UserError(
            "sampler.kind=compiled samples on the CPU; sampling on the GPU "
            "(sample_on=device|mapped) uses the reference: sampler.kind=auto"
        )
    if kind == "compiled" and not compiled_sampler_available():
        raise UserError(
            "sampler.kind=compiled needs numba (pip install -r requirements.txt), "
            "or use sampler.kind=reference"
        )
    if kind == "reference" or not on_cpu or not compiled_sampler_available():
        return NeighborSampler(
            graph, fanouts, seed=seed, device=device, indptr=indptr, indices=indices
        )
    from zerocopy_gcn.compiled_sampler import CompiledNeighborSampler

    return CompiledNeighborSampler(
        graph, fanouts, seed=seed, num_threads=num_threads, indptr=indptr, indices=indices
    )


def sampling_arrays(
    sample_on: str, graph: CSRGraph, device: torch.device
) -> tuple[torch.device, dict[str, torch.Tensor], list]:
    """Where the sampler runs and which CSR tensors it reads.

    ``cpu``: the memory-mapped arrays on the host; ``device``: copies in device memory;
    ``mapped``: the host arrays pinned in place and read by GPU ops over PCIe (GPU sampling
    for a CSR larger than device memory).
    """
    if sample_on == "cpu":
        return torch.device("cpu"), {}, []
    if sample_on == "device":
        return device, {}, []
    if sample_on == "mapped":
        if device.type != "cuda":
            raise UserError("sample_on=mapped needs a CUDA device")
        from zerocopy_gcn.fetch.zerocopy import HostRegistration, mapped_cuda_tensor

        registrations, csr = [], {}
        for name in ("indptr", "indices"):
            array = getattr(graph, name)
            registration = HostRegistration(
                numpy_to_tensor(array), read_only=not array.flags.writeable
            )
            registrations.append(registration)
            csr[name] = mapped_cuda_tensor(registration, device)
        return device, csr, registrations
    raise UserError(f"sample_on must be cpu, device or mapped, got {sample_on!r}")


def seed_batches(
    nodes: np.ndarray | torch.Tensor, batch_size: int, epoch: int, seed: int, shuffle: bool = True
) -> list[torch.Tensor]:
    """Split training nodes into batches, shuffled reproducibly per (seed, epoch)."""
    nodes = torch.as_tensor(np.asarray(nodes), dtype=torch.long)
    if shuffle:
        gen = torch.Generator().manual_seed(seed * 7919 + epoch)
        nodes = nodes[torch.randperm(nodes.shape[0], generator=gen)]
    return list(torch.split(nodes, batch_size))
