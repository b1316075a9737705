"""Feature fetch modes of the paper behind one interface: ``make_fetcher(mode, table, device)``.

* ``conventional``: threaded CPU gather into pinned staging, then async H2D copy;
* ``zerocopy``: table pinned in place + GPU gather kernels over PCIe (needs CuPy and a GPU);
* ``gpu``: table resident in GPU memory (the upper bound).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from zerocopy_gcn.fetch.base import FeatureFetcher, check_indices
from zerocopy_gcn.fetch.conventional import ConventionalFetcher
from zerocopy_gcn.fetch.gpu import GPUResidentFetcher

if TYPE_CHECKING:
    from omegaconf import DictConfig

    from zerocopy_gcn.graph.csr import CSRGraph

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


def build_fetcher(cfg_fetch: DictConfig, graph: CSRGraph, device: torch.device) -> FeatureFetcher:
    """The fetcher a ``fetch`` config describes over ``graph``'s feature table (its mode's
    ``FETCH_OPTIONS`` passed on), behind a hot-row cache when ``cache_fraction`` > 0."""
    mode = cfg_fetch.mode
    options = {key: cfg_fetch[key] for key in FETCH_OPTIONS.get(mode, ()) if key in cfg_fetch}
    if mode == "zerocopy":
        options["read_only"] = not graph.feat.flags.writeable
    fetcher = make_fetcher(mode, graph.feat_tensor(), device, **options)
    cache_fraction = float(cfg_fetch.get("cache_fraction", 0.0) or 0.0)
    if cache_fraction > 0:
        from zerocopy_gcn.fetch.cached import CachedFetcher

        fetcher = CachedFetcher.for_graph(
            graph, fetcher, device, cache_fraction, ranking=cfg_fetch.get("cache_ranking", "degree")
        )
    return fetcher


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
