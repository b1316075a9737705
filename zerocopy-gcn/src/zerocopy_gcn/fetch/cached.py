"""Hot-row cache in front of any fetch mode (data tiering).

The hottest ``cache_fraction`` of rows (by in-degree or reverse PageRank, see
:mod:`zerocopy_gcn.cache`) are copied to the device once; every fetch reads hits from there and
sends only the misses through the wrapped fetcher (zero-copy or conventional), writing both into
one output in request order.
"""

from __future__ import annotations

import numpy as np
import torch

from zerocopy_gcn.cache import HotRowCache, hotness_order
from zerocopy_gcn.fetch.base import FeatureFetcher, check_indices
from zerocopy_gcn.graph.csr import CSRGraph


class CachedFetcher(FeatureFetcher):
    def __init__(self, cold: FeatureFetcher, hot_nodes: np.ndarray, num_cached: int) -> None:
        super().__init__(cold.table, cold.device)
        self.mode = f"{cold.mode}+cache"
        self.cold = cold
        self.cache = HotRowCache(
            cold.table, hot_nodes, num_cached, device=cold.device, cold_gather=cold.fetch
        )
        self._last = (0, 0)

    @classmethod
    def for_graph(
        cls,
        graph: CSRGraph,
        cold: FeatureFetcher,
        device: torch.device,
        fraction: float,
        ranking: str = "degree",
    ) -> CachedFetcher:
        if not 0 <= fraction <= 1:
            raise ValueError(f"cache_fraction must be within [0, 1], got {fraction}")
        seeds = np.asarray(graph.splits["train"]) if ranking == "reverse_pagerank" else None
        order = hotness_order(
            np.asarray(graph.indptr), np.asarray(graph.indices), ranking, seeds=seeds
        )
        return cls(cold, order, int(round(fraction * graph.num_nodes)))

    def _fetch(self, idx: torch.Tensor) -> torch.Tensor:
        check_indices(idx, self.num_rows)
        return self.cache.gather(idx)

    def epoch_stats(self) -> dict[str, float]:
        """Hit rate and PCIe bytes saved since the previous call (one epoch)."""
        stats = self.cache.stats
        requested = stats.requested_rows - self._last[0]
        hits = stats.hit_rows - self._last[1]
        self._last = (stats.requested_rows, stats.hit_rows)
        return {
            "cache_hit_rate": hits / requested if requested else 0.0,
            "pcie_gb_saved": hits * stats.row_bytes / 1e9,
            "pcie_gb": (requested - hits) * stats.row_bytes / 1e9,
        }

    def close(self) -> None:
        self.cold.close()
