"""All-in-GPU path: the whole table is copied to device memory once (the upper bound)."""

from __future__ import annotations

import torch

from zerocopy_gcn.fetch.base import FeatureFetcher, check_indices


class GPUResidentFetcher(FeatureFetcher):
    mode = "gpu"

    def __init__(
        self, table: torch.Tensor, device: torch.device | str = "cuda", check_bounds: bool = True
    ) -> None:
        super().__init__(table, device)
        # On CPU-only machines this mode degenerates to an in-memory table (used by tests).
        self.resident = table.to(self.device)
        self.check_bounds = check_bounds

    def _fetch(self, idx: torch.Tensor) -> torch.Tensor:
        idx = idx.to(self.device)
        if self.check_bounds:  # CUDA index_select would raise a device-side assert instead
            check_indices(idx, self.num_rows)
        return self.resident.index_select(0, idx)

    def close(self) -> None:
        self.resident = None
