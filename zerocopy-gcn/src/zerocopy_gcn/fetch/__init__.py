"""Feature fetch modes of the paper behind one interface: ``make_fetcher(mode, table, device)``.

* ``conventional``: threaded CPU gather into pinned staging, then async H2D copy;
* ``zerocopy``: table pinned in place + GPU gather kernels over PCIe (needs CuPy and a GPU);
* ``gpu``: table resident in GPU memory (the upper bound).
"""

from __future__ import annotations

import torch

from zerocopy_gcn.fetch.base import FeatureFetcher, check_indices
from zerocopy_gcn.fetch.conventional import ConventionalFetcher
from zerocopy_gcn.fetch.gpu import GPUResidentFetcher

MODES = ("conventional", "zerocopy", "gpu")


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


__all__ = [
    "MODES",
    "ConventionalFetcher",
    "FeatureFetcher",
    "GPUResidentFetcher",
    "check_indices",
    "make_fetcher",
]
