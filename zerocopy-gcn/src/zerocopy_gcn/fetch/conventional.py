"""Conventional path: the CPU gathers rows into a (pinned) staging buffer, then one H2D copy.

This is the baseline the paper measures against: host memory is read sparsely, written densely
into staging, and read again by the DMA engine.  The gather is split over a thread pool
(torch's ``index_select`` releases the GIL), which matters for memory-mapped tables where page
faults, not arithmetic, dominate.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import torch

from zerocopy_gcn.fetch.base import FeatureFetcher, check_indices


class ConventionalFetcher(FeatureFetcher):
    mode = "conventional"

    def __init__(self, table: torch.Tensor, device: torch.device | str = "cpu",
                 num_threads: int = 0, check_bounds: bool = True,
                 min_rows_per_thread: int = 2048) -> None:
        super().__init__(table, device)
        if table.device.type != "cpu":
            raise ValueError("the conventional path gathers on the CPU: the table must be in "
                             f"host memory, got {table.device}")
        self.num_threads = num_threads or max(1, min(8, os.cpu_count() or 1))
        self.check_bounds = check_bounds
        self.min_rows_per_thread = min_rows_per_thread
        self._pool = ThreadPoolExecutor(self.num_threads) if self.num_threads > 1 else None
        self._cuda = self.device.type == "cuda"
        # Two staging buffers: gather into one while the other's H2D copy may be in flight.
        self._staging: list[torch.Tensor | None] = [None, None]
        self._copy_done: list[torch.cuda.Event | None] = [None, None]
        self._turn = 0

    def _staging_buffer(self, rows: int) -> torch.Tensor:
        slot = self._turn
        if self._copy_done[slot] is not None:
            self._copy_done[slot].synchronize()  # the DMA engine may still read this buffer
        buffer = self._staging[slot]
        if buffer is None or buffer.shape[0] < rows:
            capacity = max(rows, 1024) if buffer is None else max(rows, 2 * buffer.shape[0])
            buffer = torch.empty((capacity, self.feat_dim), dtype=self.table.dtype,
                                 pin_memory=self._cuda)
            self._staging[slot] = buffer
        return buffer[:rows]

    def gather_into(self, idx: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        rows = idx.shape[0]
        if self._pool is None or rows < 2 * self.min_rows_per_thread:
            return torch.index_select(self.table, 0, idx, out=out)
        parts = min(self.num_threads, rows // self.min_rows_per_thread)
        bounds = [rows * p // parts for p in range(parts + 1)]
        jobs = [self._pool.submit(torch.index_select, self.table, 0, idx[a:b], out=out[a:b])
                for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
        for job in jobs:
            job.result()
        return out

    def _fetch(self, idx: torch.Tensor) -> torch.Tensor:
        idx = idx.cpu()
        if self.check_bounds:
            check_indices(idx, self.num_rows)
        if not self._cuda:
            out = torch.empty((idx.shape[0], self.feat_dim), dtype=self.table.dtype)
            return self.gather_into(idx, out)
        staging = self.gather_into(idx, self._staging_buffer(idx.shape[0]))
        result = staging.to(self.device, non_blocking=True)
        event = torch.cuda.Event()
        event.record(torch.cuda.current_stream(self.device))
        self._copy_done[self._turn] = event
        self._turn ^= 1
        return result

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        self._staging = [None, None]
        self._copy_done = [None, None]
