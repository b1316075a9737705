"""A PyG ``BaseSampler`` that runs the project's neighbour sampler.

``sample_from_nodes`` samples the batch's seeds with the compiled sampler (or the reference,
``kind=``) and returns it in PyG's ``SamplerOutput`` layout:

* ``node``: the batch's nodes, seeds first, then each hop's new nodes in order of first
  appearance (the input block's source nodes: every block's nodes are a prefix of them);
* ``row``/``col``: each sampled edge as (source, destination) local ids into ``node``, hop by
  hop from the seeds' hop outward; ``edge``: the edge's position in the folder's ``indices``;
* ``num_sampled_nodes``/``num_sampled_edges`` per hop, so ``trim_to_layer`` can drop the outer
  hops layer by layer.

Difference from PyG's own ``NeighborSampler``: each hop samples the in-edges of every node of
the previous hop (as DGL's blocks do, and as ``train.py``'s model consumes them), not only of
the nodes new in that hop, so a hop's edges may point at seeds again.

Determinism: batch ``step`` of epoch ``epoch`` is drawn from
``batch_key(seed, epoch, step, rank)`` (:mod:`zerocopy_gcn.sampling.keys`), the rule of
``train.py``.  PyG passes no step, so the sampler counts the batches it is asked for since
:meth:`set_epoch` (call it at the start of each epoch, as with a ``DistributedSampler``).  In a
``DataLoader`` worker the count is the worker's share of the batches: PyTorch hands batch ``i``
to worker ``i % num_workers``, so batch ``i`` is still step ``i`` and the batches equal those of
``num_workers=0`` (use non-persistent workers: a persistent worker does not see
``set_epoch``).
"""

from __future__ import annotations

import os

import torch
from torch_geometric.sampler import BaseSampler, NodeSamplerInput, SamplerOutput

from zerocopy_gcn.pyg.graph_store import FolderGraphStore
from zerocopy_gcn.sampling import BlockSampler, MiniBatch, make_sampler


def sampler_output(batch: MiniBatch, metadata: object = None) -> SamplerOutput:
    """``batch`` (blocks, input layer first) in PyG's ``SamplerOutput`` layout."""
    hops = batch.blocks[::-1]  # the seeds' hop first
    node = batch.blocks[0].src_nodes
    num_sampled_nodes = [int(batch.seeds.shape[0])] + [
        block.num_src - block.num_dst for block in hops
    ]
    return SamplerOutput(
        node=node,
        row=torch.cat([block.edge_index[0] for block in hops]),
        col=torch.cat([block.edge_index[1] for block in hops]),
        edge=torch.cat([block.edge_ids for block in hops]),
        batch=None,
        num_sampled_nodes=num_sampled_nodes,
        num_sampled_edges=[int(block.edge_ids.shape[0]) for block in hops],
        metadata=metadata,
    )


class FolderNeighborSampler(BaseSampler):
    """``FolderNeighborSampler(graph_store, num_neighbors=[10, 5], seed=0)``.

    ``data``: a :class:`FolderGraphStore`, or the ``(feature_store, graph_store)`` pair given to
    the loader; ``num_neighbors``: one fanout per hop, the seeds' hop first (-1: all);
    ``kind``: ``auto`` (compiled on the CPU), ``compiled`` or ``reference`` (``train.py``'s
    ``sampler.kind``); ``num_threads``: the compiled sampler's threads (0: this process's
    CPUs); ``rank``: this process's rank in a distributed run (part of the batch key).
    """

    def __init__(
        self,
        data: FolderGraphStore | tuple[object, FolderGraphStore],
        num_neighbors: list[int],
        seed: int = 0,
        kind: str = "auto",
        num_threads: int = 0,
        rank: int = 0,
    ) -> None:
        graph_store = data[1] if isinstance(data, tuple) else data
        if not isinstance(graph_store, FolderGraphStore):
            raise TypeError(
                "FolderNeighborSampler samples a FolderGraphStore (or the pair "
                f"(feature_store, graph_store)), got {type(graph_store).__name__}"
            )
        self.graph_store = graph_store
        self._settings = {"seed": seed, "num_threads": num_threads, "rank": rank}
        self._kind, self._fanouts = kind, list(num_neighbors)
        self._sampler = self._make()
        self._pid = os.getpid()
        self.epoch = 0
        self._batches_seen = 0

    def _make(self) -> BlockSampler:
        return make_sampler(self._kind, self.graph_store.graph, self._fanouts, **self._settings)

    @property
    def sampler(self) -> BlockSampler:
        """This process's sampler.  A DataLoader worker forked from the loader's process
        inherits the compiled sampler's thread pool without its threads, so a worker makes
        its own on first use (the batches do not depend on it: same key, same batch)."""
        if os.getpid() != self._pid:
            self._sampler, self._pid = self._make(), os.getpid()
        return self._sampler

    @property
    def num_neighbors(self) -> list[int]:
        return list(self._fanouts)

    def set_epoch(self, epoch: int) -> None:
        """Start epoch ``epoch``: the next batch is its step 0."""
        self.epoch = int(epoch)
        self._batches_seen = 0

    def _next_step(self) -> int:
        worker = torch.utils.data.get_worker_info()
        seen, self._batches_seen = self._batches_seen, self._batches_seen + 1
        if worker is None:
            return seen
        return worker.id + worker.num_workers * seen

    def sample_from_nodes(self, index: NodeSamplerInput, **kwargs) -> SamplerOutput:
        if index.input_type is not None:
            raise NotImplementedError(
                f"FolderNeighborSampler samples a homogeneous graph; got node type "
                f"{index.input_type!r}"
            )
        if index.time is not None:
            raise NotImplementedError("FolderNeighborSampler does not sample by time")
        seeds = index.node.long()
        if seeds.numel() and (
            int(seeds.min()) < 0 or int(seeds.max()) >= self.graph_store.num_nodes
        ):
            bad = seeds[(seeds < 0) | (seeds >= self.graph_store.num_nodes)][0]
            raise IndexError(
                f"seed node id {int(bad)} is out of range [0, {self.graph_store.num_nodes}) "
                f"of {self.graph_store.graph.path}"
            )
        batch = self.sampler.sample(seeds, epoch=self.epoch, step=self._next_step())
        return sampler_output(batch, metadata=(index.input_id, index.time))

    def sample_from_edges(self, index, neg_sampling=None):
        raise NotImplementedError(
            "FolderNeighborSampler samples from nodes only (NodeLoader / "
            "sample_from_nodes); link prediction (LinkLoader / sample_from_edges) is not supported"
        )

    @property
    def edge_permutation(self) -> None:
        return None  # edge ids are positions in the folder's indices array, as stored
