"""Overlap: sample and fetch batch i+1 while batch i trains.

With ``enabled`` a producer thread builds the batches ahead of the training loop into a
bounded queue.  On a GPU the producer issues its work on a side CUDA stream of its own (the
current stream is per thread) and records an event after each batch; the training stream waits
on that event, not the host, before it touches the batch, and the batch's tensors are recorded
on the training stream so the caching allocator cannot recycle them early.  The producer does
not wait on the host for the zero-copy kernel's bounds flag either: the flag is read by the
consumer once the batch's event has completed (:meth:`PreparedBatch.wait`), and a batch sampled
on the CPU is copied to the GPU from pinned memory, so the copy does not hold the producer
either.  What still waits inside the producer is GPU sampling's own work (``unique`` and
``nonzero`` return sizes to the host).

Each prepared batch carries the producer's own sample and fetch seconds, so the per-epoch time
breakdown stays meaningful when the work is hidden behind training.
"""

from __future__ import annotations

import dataclasses
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import torch

from zerocopy_gcn.fetch.base import BoundsCheck, FeatureFetcher
from zerocopy_gcn.sampling import BlockSampler, MiniBatch

_producer = threading.local()  # .defer_checks: this thread is a Prefetcher's producer


@dataclass
class PreparedBatch:
    batch: MiniBatch
    features: torch.Tensor
    sample_s: float
    fetch_s: float
    ready: torch.cuda.Event | None = None
    bounds_check: BoundsCheck | None = None  # the fetch's id check, run by wait()

    def wait(self) -> None:
        """Make the current stream wait for the producer's work (GPU), then run the fetch's
        bounds check, which needs only the producer's work up to this batch to be done."""
        if self.ready is not None:
            stream = torch.cuda.current_stream(self.features.device)
            stream.wait_event(self.ready)
            # made on the producer's stream, used on this one: not to be recycled before
            for tensor in (self.features, *batch_tensors(self.batch)):
                if tensor.is_cuda:
                    tensor.record_stream(stream)
            if self.bounds_check is not None:
                self.ready.synchronize()
        check, self.bounds_check = self.bounds_check, None
        if check is not None:
            check()


def batch_tensors(item: object) -> Iterator[torch.Tensor]:
    """Every tensor of a batch (its seeds, labels and each block's arrays)."""
    if isinstance(item, torch.Tensor):
        yield item
    elif isinstance(item, list | tuple):
        for element in item:
            yield from batch_tensors(element)
    elif dataclasses.is_dataclass(item):
        for field in dataclasses.fields(item):
            yield from batch_tensors(getattr(item, field.name))


def pinned(item: object) -> object:
    """A copy of a batch whose CPU tensors are in page-locked memory: a non-blocking copy from
    there to the GPU returns at once, where one from pageable memory waits for the copy."""
    if isinstance(item, torch.Tensor):
        return item.pin_memory() if item.device.type == "cpu" and not item.is_pinned() else item
    if isinstance(item, list):
        return [pinned(element) for element in item]
    if dataclasses.is_dataclass(item):
        return dataclasses.replace(
            item, **{f.name: pinned(getattr(item, f.name)) for f in dataclasses.fields(item)}
        )
    return item


def prepare_batch(
    sampler: BlockSampler,
    fetcher: FeatureFetcher,
    seeds: torch.Tensor,
    epoch: int,
    step: int,
    device: torch.device,
    sync: bool,
) -> PreparedBatch:
    """Sample with either sampler (a :class:`BlockSampler`), move the blocks to ``device`` and
    fetch the input rows (one batch).

    Called by a :class:`Prefetcher`'s producer, the fetch's device-side bounds check is handed
    to the batch (:meth:`PreparedBatch.wait` runs it) instead of being waited for here."""
    start = time.perf_counter()
    producer = getattr(_producer, "defer_checks", False)
    batch = sampler.sample(seeds, epoch=epoch, step=step)
    if producer and device.type == "cuda":
        batch = pinned(batch)
    batch = batch.to(device, non_blocking=True)
    if sync and device.type == "cuda":
        torch.cuda.current_stream(device).synchronize()
    sampled = time.perf_counter()
    check = None
    if producer:
        features, check = fetcher.fetch_deferred(batch.input_nodes)
    else:
        features = fetcher.fetch(batch.input_nodes)
    if sync and device.type == "cuda":
        torch.cuda.current_stream(device).synchronize()
    fetched = time.perf_counter()
    return PreparedBatch(batch, features, sampled - start, fetched - sampled, bounds_check=check)


class Prefetcher:
    """Iterate prepared batches; with ``enabled`` a producer thread builds them ahead."""

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
        else:
            yield from self._thread_iter()

    def _produce_all(
        self,
        slots: queue.Queue,
        stop: threading.Event,
        done: object,
        side: torch.cuda.Stream | None,
    ) -> None:
        """The producer thread: every batch in order, each followed by its ready event on the
        side stream, which is made this thread's current stream (GPU)."""
        if side is not None:
            # the stream's device has an index; ``self.device`` may be a bare "cuda", which
            # set_device refuses
            torch.cuda.set_device(side.device)
            torch.cuda.set_stream(side)  # the current stream is per thread: the consumer's stays
        _producer.defer_checks = True
        for step, seeds in enumerate(self.seed_batches):
            if stop.is_set():
                return
            prepared = self.make_batch(step, seeds)
            if side is not None:
                prepared.ready = torch.cuda.Event()
                prepared.ready.record(side)
            slots.put(prepared)
        slots.put(done)

    def _thread_iter(self) -> Iterator[PreparedBatch]:
        slots: queue.Queue = queue.Queue(maxsize=self.depth)
        stop = threading.Event()
        done = object()

        side = None
        if self.device.type == "cuda":
            side = torch.cuda.Stream(self.device)
            side.wait_stream(torch.cuda.current_stream(self.device))  # after the set-up's work

        def produce() -> None:
            try:
                self._produce_all(slots, stop, done, side)
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
