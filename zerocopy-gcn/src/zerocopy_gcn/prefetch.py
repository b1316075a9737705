"""Overlap: sample and fetch batch i+1 while batch i trains.

On a GPU the producer work for the next batch is issued on a side CUDA stream and an event
marks its completion; the training stream waits on that event (not on the host) before it
touches the batch, and the batch's tensors are recorded on the training stream so the caching
allocator cannot recycle them early.  On CPU a background thread fills a bounded queue.

Each prepared batch carries the producer's own sample and fetch seconds, so the per-epoch time
breakdown stays meaningful when the work is hidden behind training.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import torch

from zerocopy_gcn.fetch.base import FeatureFetcher
from zerocopy_gcn.sampling import MiniBatch, NeighborSampler


@dataclass
class PreparedBatch:
    batch: MiniBatch
    features: torch.Tensor
    sample_s: float
    fetch_s: float
    ready: torch.cuda.Event | None = None

    def wait(self) -> None:
        """Make the current stream wait for the producer's work (GPU), no-op on CPU."""
        if self.ready is not None:
            stream = torch.cuda.current_stream(self.features.device)
            stream.wait_event(self.ready)
            self.features.record_stream(stream)
            for block in self.batch.blocks:
                block.edge_index.record_stream(stream)
            if self.batch.labels is not None:
                self.batch.labels.record_stream(stream)


def prepare_batch(
    sampler: NeighborSampler,
    fetcher: FeatureFetcher,
    seeds: torch.Tensor,
    epoch: int,
    step: int,
    device: torch.device,
    sync: bool,
) -> PreparedBatch:
    """Sample, move the blocks to ``device`` and fetch the input rows (one batch)."""
    start = time.perf_counter()
    batch = sampler.sample(seeds, epoch=epoch, step=step)
    batch = batch.to(device, non_blocking=True)
    if sync and device.type == "cuda":
        torch.cuda.current_stream(device).synchronize()
    sampled = time.perf_counter()
    features = fetcher.fetch(batch.input_nodes)
    if sync and device.type == "cuda":
        torch.cuda.current_stream(device).synchronize()
    fetched = time.perf_counter()
    return PreparedBatch(batch, features, sampled - start, fetched - sampled)


class Prefetcher:
    """Iterate prepared batches; with ``enabled`` the next one is produced concurrently."""

    def __init__(
        self,
        make_batch: Callable[[int, torch.Tensor], PreparedBatch],
        seed_batches: Iterable[torch.Tensor],
        device: torch.device,
        enabled: bool = True,
        depth: int = 1,
        fetcher: FeatureFetcher | None = None,
    ) -> None:
        self.make_batch = make_batch
        self.seed_batches = list(seed_batches)
        self.device = device
        self.enabled = enabled
        self.depth = max(1, depth)
        if fetcher is not None and hasattr(fetcher, "reserve"):
            # alive at once: the batch just trained on (still bound to the loop variable until
            # the next one arrives), the next one, `depth` queued, and one being built
            fetcher.reserve(self.depth + 3)

    def __len__(self) -> int:
        return len(self.seed_batches)

    def __iter__(self) -> Iterator[PreparedBatch]:
        if not self.enabled:
            for step, seeds in enumerate(self.seed_batches):
                yield self.make_batch(step, seeds)
        elif self.device.type == "cuda":
            yield from self._cuda_iter()
        else:
            yield from self._thread_iter()

    def _cuda_iter(self) -> Iterator[PreparedBatch]:
        side = torch.cuda.Stream(self.device)
        main = torch.cuda.current_stream(self.device)

        def launch(step: int) -> PreparedBatch:
            side.wait_stream(main)  # inputs allocated on the main stream must be ready
            with torch.cuda.stream(side):
                prepared = self.make_batch(step, self.seed_batches[step])
                prepared.ready = torch.cuda.Event()
                prepared.ready.record(side)
            return prepared

        if not self.seed_batches:
            return
        pending = launch(0)
        for step in range(len(self.seed_batches)):
            current = pending
            if step + 1 < len(self.seed_batches):
                pending = launch(step + 1)  # queued on the side stream, overlaps batch `step`
            current.wait()
            yield current

    def _thread_iter(self) -> Iterator[PreparedBatch]:
        slots: queue.Queue = queue.Queue(maxsize=self.depth)
        stop = threading.Event()
        done = object()

        def produce() -> None:
            try:
                for step, seeds in enumerate(self.seed_batches):
                    if stop.is_set():
                        return
                    slots.put(self.make_batch(step, seeds))
                slots.put(done)
            except BaseException as error:  # surface producer failures in the consumer
                slots.put(error)

        worker = threading.Thread(target=produce, name="prefetch", daemon=True)
        worker.start()
        try:
            while True:
                item = slots.get()
                if item is done:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            stop.set()
            while worker.is_alive():  # unblock a producer waiting on a full queue
                try:
                    slots.get_nowait()
                except queue.Empty:
                    pass
                worker.join(timeout=0.05)
