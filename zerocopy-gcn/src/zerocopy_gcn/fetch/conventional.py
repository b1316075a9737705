"""Conventional path: the CPU gathers rows into a reused (pinned) buffer, then one H2D copy.

This is the baseline the paper measures against: host memory is read sparsely, written densely
into staging, and read again by the DMA engine.  It must be as fast as the machine allows, or
the zero-copy speedup is flattered, so:

* no allocation per batch: a fresh output tensor of a few MB is a fresh mapping whose pages are
  faulted in on the first write, which costs more than the gather itself.  Rows are gathered
  into a small ring of reused buffers (pinned when the destination is a GPU);
* threads: ``torch.index_select`` already splits a gather over torch's intra-op threads, so a
  pool of our own on top of it only oversubscribes the cores.  The pool is used when torch runs
  fewer threads than there are cores (``cores // torch threads`` workers, each a single-threaded
  slice), which is what a memory-mapped table needs to overlap page faults.

Buffer lifetime: on CPU, ``fetch`` returns a view of one ring buffer.  A buffer is reused only
when nothing else holds its storage (a batch still queued by the prefetcher, or kept by the
caller, keeps its buffer out of rotation), so a returned batch is never overwritten while in
use; if every buffer is held, a new one joins the ring.  Size the ring with
:meth:`ConventionalFetcher.reserve` (the prefetcher asks for its depth + 3) to avoid growth.
"""

from __future__ import annotations

import os
import weakref
from concurrent.futures import ThreadPoolExecutor

import torch

from zerocopy_gcn.fetch.base import FeatureFetcher, check_indices

# a depth-1 prefetcher keeps four batches alive: the one just trained on (the loop variable),
# the one handed out next, one queued and one being built
DEFAULT_RING = 4


def storage_users(tensor: torch.Tensor) -> int | None:
    """How many tensors share ``tensor``'s storage (None where torch does not say)."""
    counter = getattr(torch._C, "_storage_Use_Count", None)
    if counter is None:  # pragma: no cover - depends on the torch build
        return None
    return int(counter(tensor.untyped_storage()._cdata))


class _Slot:
    """One reusable output buffer and a way to tell whether a handed-out view is still alive."""

    def __init__(self, rows: int, feat_dim: int, dtype: torch.dtype, pinned: bool) -> None:
        self.buffer = torch.empty((rows, feat_dim), dtype=dtype, pin_memory=pinned)
        self.baseline = storage_users(self.buffer)
        self.handed_out: weakref.ref | None = None
        self.copy_done: torch.cuda.Event | None = None

    def in_use(self) -> bool:
        if self.baseline is not None:
            return storage_users(self.buffer) != self.baseline
        return self.handed_out is not None and self.handed_out() is not None

    def view(self, rows: int) -> torch.Tensor:
        out = self.buffer[:rows]
        self.handed_out = weakref.ref(out)
        return out


def default_pool_threads() -> int:
    """Gather workers so that workers x torch's intra-op threads do not exceed the cores."""
    cores = os.cpu_count() or 1
    return max(1, min(8, cores // max(1, torch.get_num_threads())))


class ConventionalFetcher(FeatureFetcher):
    mode = "conventional"

    def __init__(
        self,
        table: torch.Tensor,
        device: torch.device | str = "cpu",
        num_threads: int = 0,
        check_bounds: bool = True,
        min_rows_per_thread: int = 2048,
        ring: int = DEFAULT_RING,
    ) -> None:
        super().__init__(table, device)
        if table.device.type != "cpu":
            raise ValueError(
                "the conventional path gathers on the CPU: the table must be in "
                f"host memory, got {table.device}"
            )
        self.num_threads = num_threads or default_pool_threads()
        self.check_bounds = check_bounds
        self.min_rows_per_thread = min_rows_per_thread
        self._pool = ThreadPoolExecutor(self.num_threads) if self.num_threads > 1 else None
        self._cuda = self.device.type == "cuda"
        # CPU: the ring holds the returned batches. CUDA: it holds pinned staging buffers whose
        # H2D copy may still be in flight (an event guards each); two suffice there.
        self.ring_size = max(2, int(ring))
        self._slots: list[_Slot | None] = [None] * self.ring_size
        self._turn = 0
        self.buffers_allocated = 0

    def reserve(self, buffers: int) -> None:
        """Keep at least ``buffers`` output buffers in the ring (e.g. prefetch depth + 3)."""
        if buffers > self.ring_size:
            self._slots += [None] * (buffers - self.ring_size)
            self.ring_size = buffers

    def _new_slot(self, rows: int, old: _Slot | None) -> _Slot:
        capacity = max(rows, 1024) if old is None else max(rows, 2 * old.buffer.shape[0])
        self.buffers_allocated += 1
        return _Slot(capacity, self.feat_dim, self.table.dtype, pinned=self._cuda)

    def _next_slot(self, rows: int) -> _Slot:
        """The next free ring buffer with room for ``rows`` (grown or added if needed).

        CPU: the first free buffer, so that without prefetching one warm buffer serves every
        batch.  CUDA: the staging buffers in turn, the older copy having had the longest time.
        """
        if not self._cuda:
            for index, slot in enumerate(self._slots):
                if slot is not None and slot.in_use():
                    continue
                if slot is None or slot.buffer.shape[0] < rows:
                    slot = self._slots[index] = self._new_slot(rows, slot)
                return slot
            slot = self._new_slot(rows, None)  # every buffer still held: grow the ring
            self._slots.append(slot)
            self.ring_size += 1
            return slot
        for _ in range(self.ring_size):
            index = self._turn
            self._turn = (self._turn + 1) % self.ring_size
            slot = self._slots[index]
            if slot is not None and slot.copy_done is not None:
                slot.copy_done.synchronize()  # the DMA engine may still read this buffer
                slot.copy_done = None
            if slot is None or slot.buffer.shape[0] < rows:
                slot = self._slots[index] = self._new_slot(rows, slot)
            return slot
        # every buffer is still held by someone: grow the ring instead of overwriting
        slot = self._new_slot(rows, None)
        self._slots.insert(self._turn, slot)
        self.ring_size += 1
        self._turn = (self._turn + 1) % self.ring_size
        return slot

    def gather_into(self, idx: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        rows = idx.shape[0]
        if self._pool is None or rows < 2 * self.min_rows_per_thread:
            return torch.index_select(self.table, 0, idx, out=out)
        parts = min(self.num_threads, rows // self.min_rows_per_thread)
        bounds = [rows * p // parts for p in range(parts + 1)]
        jobs = [
            self._pool.submit(torch.index_select, self.table, 0, idx[a:b], out=out[a:b])
            for a, b in zip(bounds[:-1], bounds[1:], strict=True)
        ]
        for job in jobs:
            job.result()
        return out

    def _fetch(self, idx: torch.Tensor) -> torch.Tensor:
        idx = idx.cpu()
        if self.check_bounds:
            check_indices(idx, self.num_rows)
        slot = self._next_slot(idx.shape[0])
        if not self._cuda:
            return self.gather_into(idx, slot.view(idx.shape[0]))
        staging = self.gather_into(idx, slot.buffer[: idx.shape[0]])
        result = staging.to(self.device, non_blocking=True)
        slot.copy_done = torch.cuda.Event()
        slot.copy_done.record(torch.cuda.current_stream(self.device))
        return result

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        for slot in self._slots:
            if slot is not None and slot.copy_done is not None:
                slot.copy_done.synchronize()
        self._slots = [None] * self.ring_size
