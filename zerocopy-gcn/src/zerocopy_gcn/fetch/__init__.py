"""Feature fetch modes of the paper behind one interface: ``make_fetcher(mode, table, device)``.

* ``conventional``: threaded CPU gather into pinned staging, then async H2D copy;
* ``zerocopy``: table pinned in place + GPU gather kernels over PCIe (needs CuPy and a GPU);
* ``gpu``: table resident in GPU memory (the upper bound).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

import torch

from zerocopy_gcn.fetch.base import FeatureFetcher, check_indices
from zerocopy_gcn.fetch.conventional import ConventionalFetcher
from zerocopy_gcn.fetch.gpu import GPUResidentFetcher

if TYPE_CHECKING:
    from omegaconf import DictConfig

    from zerocopy_gcn.graph.csr import CSRGraph

LOG = logging.getLogger(__name__)
MODES = ("conventional", "zerocopy", "gpu")
FETCH_OPTIONS = {
    "conventional": ("num_threads", "check_bounds"),
    "gpu": ("check_bounds",),
    "zerocopy": ("kernel", "vector_loads", "sort_indices", "check_bounds", "max_threads"),
}


def make_fetcher(
    mode: str, table: torch.Tensor, device: torch.device | str, **options
) -> FeatureFetcher:
    """Build a fetcher; ``options`` are the mode's keyword arguments (unknown ones rejected)."""
    if mode == "conventional":
        return ConventionalFetcher(table, device, **options)
    if mode == "gpu":
        return GPUResidentFetcher(table, device, **options)
    if mode == "zerocopy":
        from zerocopy_gcn.fetch.zerocopy import ZeroCopyFetcher

        return ZeroCopyFetcher(table, device, **options)
    raise ValueError(f"unknown fetch mode {mode!r}; choose one of {MODES}")


def build_fetcher(
    cfg_fetch: DictConfig,
    graph: CSRGraph,
    device: torch.device,
    warn: Callable[[str], None] = LOG.warning,
) -> FeatureFetcher:
    """The fetcher a ``fetch`` config describes over ``graph``'s feature table (its mode's
    ``FETCH_OPTIONS`` passed on), behind a hot-row cache when ``cache_fraction`` > 0; ``warn``
    receives what the user should know about the choice (a run passes its run log's)."""
    mode = cfg_fetch.mode
    options = {key: cfg_fetch[key] for key in FETCH_OPTIONS.get(mode, ()) if key in cfg_fetch}
    if mode == "zerocopy":
        fetcher = _zerocopy_fetcher(graph, device, options, warn)
    else:
        fetcher = make_fetcher(mode, graph.feat_tensor(), device, **options)
    cache_fraction = float(cfg_fetch.get("cache_fraction", 0.0) or 0.0)
    if cache_fraction > 0:
        from zerocopy_gcn.fetch.cached import CachedFetcher

        fetcher = CachedFetcher.for_graph(
            graph, fetcher, device, cache_fraction, ranking=cfg_fetch.get("cache_ranking", "degree")
        )
    return fetcher


def _zerocopy_fetcher(
    graph: CSRGraph, device: torch.device, options: dict, warn: Callable[[str], None]
) -> FeatureFetcher:
    """The zero-copy fetcher over the folder's table pinned in place.  A read-only memory map
    pins only where the GPU supports ``cudaHostRegisterReadOnly``; elsewhere the table is
    copied once into this process's memory, which pins writable, and a warning says so (under
    ``torchrun``, ``host_table=shm`` makes that one copy per machine instead of per process)."""
    from zerocopy_gcn.fetch.zerocopy import ReadOnlyRegistrationUnsupported

    table = graph.feat_tensor()
    read_only = not graph.feat.flags.writeable
    try:
        return make_fetcher("zerocopy", table, device, read_only=read_only, **options)
    except ReadOnlyRegistrationUnsupported:
        copy_gib = table.numel() * table.element_size() / 2**30
        warn(
            f"{device} cannot pin read-only memory maps (cudaHostRegisterReadOnly unsupported): "
            f"copying the feature table ({copy_gib:.2f} GiB) into this process's memory and "
            "pinning the copy (host_table=shm makes one copy per machine)"
        )
        return make_fetcher("zerocopy", table.clone(), device, read_only=False, **options)


__all__ = [
    "FETCH_OPTIONS",
    "MODES",
    "ConventionalFetcher",
    "FeatureFetcher",
    "GPUResidentFetcher",
    "build_fetcher",
    "check_indices",
    "make_fetcher",
]
