"""Neighbour sampling: block types and the sampler interface (:mod:`.base`), the batch key
(:mod:`.keys`), the vectorised reference (:mod:`.reference`), the compiled CPU sampler
(:mod:`.compiled`, imported on demand: it needs numba) and the factory (:mod:`.factory`)."""

from zerocopy_gcn.sampling.base import Block, BlockSampler, MiniBatch
from zerocopy_gcn.sampling.batches import seed_batches
from zerocopy_gcn.sampling.factory import (
    SAMPLER_KINDS,
    check_fanouts,
    compiled_sampler_available,
    make_sampler,
)
from zerocopy_gcn.sampling.keys import batch_key
from zerocopy_gcn.sampling.placement import sampling_arrays
from zerocopy_gcn.sampling.reference import NeighborSampler, sample_neighbors, unique_keep_prefix
from zerocopy_gcn.sampling.threads import default_num_threads

__all__ = [
    "SAMPLER_KINDS",
    "Block",
    "BlockSampler",
    "MiniBatch",
    "NeighborSampler",
    "batch_key",
    "check_fanouts",
    "compiled_sampler_available",
    "default_num_threads",
    "make_sampler",
    "sample_neighbors",
    "sampling_arrays",
    "seed_batches",
    "unique_keep_prefix",
]
