"""The one interface behind every feature-fetch mode."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable

import torch

BoundsCheck = Callable[[], None]  # raises IndexError naming the first out-of-range id


def check_indices(idx: torch.Tensor, num_rows: int) -> None:
    """Raise ``IndexError`` naming the first out-of-range id (one reduction, one sync)."""
    if idx.numel() == 0:
        return
    low, high = torch.aminmax(idx)
    if int(low) < 0 or int(high) >= num_rows:
        bad_mask = (idx < 0) | (idx >= num_rows)
        pos = int(torch.nonzero(bad_mask)[0, 0])
        raise IndexError(
            f"feature fetch: node id {int(idx[pos])} at position {pos} is out of "
            f"range [0, {num_rows})"
        )


class FeatureFetcher(ABC):
    """Gathers feature rows for a minibatch onto ``device``, in request order.

    ``fetch(idx)`` accepts a 1-D integer tensor on any device and returns a
    ``[len(idx), feat_dim]`` tensor on ``self.device`` in the table's storage dtype;
    ``bytes_fetched`` counts useful bytes delivered (for bandwidth figures).
    """

    mode = "base"

    def __init__(self, table: torch.Tensor, device: torch.device | str) -> None:
        if table.dim() != 2:
            raise ValueError(f"feature table must be 2-D, got shape {tuple(table.shape)}")
        self.table = table
        self.device = torch.device(device)
        self.num_rows, self.feat_dim = int(table.shape[0]), int(table.shape[1])
        self.row_bytes = self.feat_dim * table.element_size()
        self.bytes_fetched = 0
        self.rows_fetched = 0

    @property
    def dtype(self) -> torch.dtype:
        return self.table.dtype

    def fetch(self, idx: torch.Tensor) -> torch.Tensor:
        return self._count(self._fetch(idx.reshape(-1).long()))

    def fetch_deferred(self, idx: torch.Tensor) -> tuple[torch.Tensor, BoundsCheck | None]:
        """``fetch``, except that a fetcher which checks the ids on the device returns that
        check instead of waiting for it: call it once the work queued so far on the current
        stream has finished (a producer thread then never waits on the host for it).  Fetchers
        that check on the host return ``None``: their check is already done."""
        return self.fetch(idx), None

    def _count(self, out: torch.Tensor) -> torch.Tensor:
        self.rows_fetched += out.shape[0]
        self.bytes_fetched += out.shape[0] * self.row_bytes
        return out

    @abstractmethod
    def _fetch(self, idx: torch.Tensor) -> torch.Tensor: ...

    def close(self) -> None:
        """Release pinned/registered memory; the fetcher cannot be used afterwards."""
        return None

    def __enter__(self) -> FeatureFetcher:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
