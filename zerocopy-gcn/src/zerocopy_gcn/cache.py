"""Hot-row cache (data tiering): the most-accessed feature rows live in device memory.

Neighbour sampling touches a few nodes far more often than the rest (power-law graphs), so
keeping the hottest rows in a device-resident table and gathering only the others over PCIe
saves most of the traffic for a small memory budget.  Nodes are ranked by expected access:

* ``degree``: how often a node appears in the CSR neighbour lists (``bincount(indices)``), i.e.
  how many rows can sample it;
* ``reverse_pagerank``: the stationary visit frequency of random walks that start at the
  training nodes and follow the sampling direction (row -> its listed neighbours), damped, which
  also accounts for multi-hop sampling (the ranking of the data-tiering follow-up work).

:class:`HotRowCache` returns rows in request order from one ``gather`` call: hits are read from
the device table, misses through the cold path (zero-copy, or ``index_select`` on the host table
as the reference), and both land in the same output buffer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch

RANKINGS = ("degree", "reverse_pagerank")


def access_counts_by_degree(indices: np.ndarray, num_nodes: int) -> np.ndarray:
    """How many neighbour lists each node appears in (float64, length ``num_nodes``)."""
    return np.bincount(np.asarray(indices), minlength=num_nodes).astype(np.float64)


def reverse_pagerank(
    indptr: np.ndarray,
    indices: np.ndarray,
    seeds: np.ndarray | None = None,
    damping: float = 0.85,
    iterations: int = 30,
    tolerance: float = 1e-10,
) -> np.ndarray:
    """Visit frequency of damped walks that restart at ``seeds`` (all nodes when ``None``).

    A walk at node ``v`` moves to a uniformly chosen entry of ``v``'s neighbour list: the
    direction in which the sampler expands a minibatch.  Rows with no neighbours restart.
    """
    num_nodes = len(indptr) - 1
    degree = np.diff(indptr).astype(np.float64)
    inverse_degree = np.divide(1.0, degree, out=np.zeros_like(degree), where=degree > 0)
    transition = sp.csr_matrix(
        (np.repeat(inverse_degree, np.diff(indptr)), np.asarray(indices), np.asarray(indptr)),
        shape=(num_nodes, num_nodes),
    )
    restart = np.zeros(num_nodes)
    if seeds is None:
        restart[:] = 1.0 / num_nodes
    else:
        restart[np.asarray(seeds)] = 1.0 / len(seeds)
    dangling = degree == 0
    score = restart.copy()
    for _ in range(iterations):
        walked = transition.T @ score
        lost = score[dangling].sum()  # mass at rows with no neighbours restarts too
        updated = damping * walked + (1.0 - damping + damping * lost) * restart
        done = np.abs(updated - score).sum() < tolerance
        score = updated
        if done:
            break
    return score


def hotness_order(
    indptr: np.ndarray,
    indices: np.ndarray,
    method: str = "degree",
    seeds: np.ndarray | None = None,
) -> np.ndarray:
    """Node ids, hottest first (stable: ties keep ascending id order)."""
    num_nodes = len(indptr) - 1
    if method == "degree":
        score = access_counts_by_degree(indices, num_nodes)
    elif method == "reverse_pagerank":
        score = reverse_pagerank(indptr, indices, seeds)
    else:
        raise ValueError(f"unknown hotness ranking {method!r}, expected one of {RANKINGS}")
    return np.argsort(-score, kind="stable")


def rows_for_budget(cache_gb: float, num_nodes: int, row_bytes: int) -> int:
    """How many rows of ``row_bytes`` fit in ``cache_gb`` GiB (``cache_gb < 0``: all rows)."""
    if cache_gb < 0:
        return num_nodes
    return int(min(num_nodes, (cache_gb * 2**30) // row_bytes))


@dataclass
class CacheStats:
    requested_rows: int = 0
    hit_rows: int = 0
    row_bytes: int = 0

    @property
    def hit_rate(self) -> float:
        return self.hit_rows / self.requested_rows if self.requested_rows else 0.0

    @property
    def pcie_bytes(self) -> int:
        """Bytes the cold path had to move (misses)."""
        return (self.requested_rows - self.hit_rows) * self.row_bytes

    @property
    def pcie_bytes_saved(self) -> int:
        return self.hit_rows * self.row_bytes

    def as_dict(self) -> dict[str, float]:
        return {
            "hit_rate": self.hit_rate,
            "requested_rows": self.requested_rows,
            "pcie_bytes": self.pcie_bytes,
            "pcie_bytes_saved": self.pcie_bytes_saved,
        }


class HotRowCache:
    """Device-resident hottest rows plus a cold gather for the rest.

    ``cold_gather(ids)`` receives the missed node ids (on ``device``) and returns their rows on
    ``device``: the zero-copy kernel on a GPU, ``host_table.index_select`` as the reference.
    """

    def __init__(
        self,
        host_table: torch.Tensor,
        hot_nodes: np.ndarray | torch.Tensor,
        num_cached: int,
        device: torch.device | str = "cpu",
        cold_gather: Callable[[torch.Tensor], torch.Tensor] | None = None,
        out_dtype: torch.dtype | None = None,
    ) -> None:
        if host_table.dim() != 2:
            raise ValueError(f"the feature table must be 2-D, got shape {tuple(host_table.shape)}")
        num_nodes = host_table.shape[0]
        if not 0 <= num_cached <= num_nodes:
            raise ValueError(f"num_cached={num_cached} is outside 0..{num_nodes}")
        self.device = torch.device(device)
        self.out_dtype = out_dtype or host_table.dtype
        cached = torch.as_tensor(np.array(hot_nodes[:num_cached], dtype=np.int64))
        self.slot_of = torch.full((num_nodes,), -1, dtype=torch.int64)
        self.slot_of[cached] = torch.arange(num_cached, dtype=torch.int64)
        if int((self.slot_of >= 0).sum()) != num_cached:
            raise ValueError("hot_nodes holds repeated node ids within the cached prefix")
        self.slot_of = self.slot_of.to(self.device)
        self.hot_table = host_table.index_select(0, cached).to(self.device)
        self.host_table = host_table
        self.cold_gather = cold_gather or self._reference_cold_gather
        self.stats = CacheStats(row_bytes=host_table.shape[1] * host_table.element_size())

    def _reference_cold_gather(self, ids: torch.Tensor) -> torch.Tensor:
        return self.host_table.index_select(0, ids.cpu()).to(self.device, non_blocking=True)

    @property
    def num_cached(self) -> int:
        return self.hot_table.shape[0]

    def gather(self, ids: torch.Tensor) -> torch.Tensor:
        """Rows ``ids`` (any order, repeats allowed) in request order, as ``out_dtype``."""
        ids = ids.to(self.device, dtype=torch.int64)
        out = torch.empty(
            (ids.numel(), self.host_table.shape[1]), dtype=self.out_dtype, device=self.device
        )
        slots = self.slot_of[ids]
        hit = slots >= 0
        hit_positions = hit.nonzero().squeeze(1)
        miss_positions = (~hit).nonzero().squeeze(1)
        if hit_positions.numel():
            out[hit_positions] = self.hot_table[slots[hit_positions]].to(self.out_dtype)
        if miss_positions.numel():
            out[miss_positions] = self.cold_gather(ids[miss_positions]).to(self.out_dtype)
        self.stats.requested_rows += ids.numel()
        self.stats.hit_rows += hit_positions.numel()
        return out
