"""The prefetcher's producer thread: it builds batch i+1 while the consumer still holds batch i,
and a device-side bounds check is run by the consumer (after the batch is ready), never by the
producer."""

import threading

import pytest
import torch
from cuda_doubles import EmulatedLauncher
from kernel_emulation import build_emulator, compiler

from zerocopy_gcn.fetch.zerocopy import ZeroCopyFetcher
from zerocopy_gcn.prefetch import Prefetcher, PreparedBatch, batch_tensors, pinned, prepare_batch
from zerocopy_gcn.sampling import NeighborSampler, seed_batches

CPU = torch.device("cpu")


def test_the_producer_runs_ahead_of_the_consumer():
    started = {step: threading.Event() for step in range(4)}
    threads = {}

    def make(step, seeds):
        threads[step] = threading.current_thread()
        started[step].set()
        return PreparedBatch(None, seeds, 0.0, 0.0)

    batches = [torch.tensor([step]) for step in range(4)]
    for step, prepared in enumerate(Prefetcher(make, batches, CPU, enabled=True, depth=1)):
        assert int(prepared.features) == step
        if step + 1 < len(batches):
            # while batch `step` is still being consumed, batch `step + 1` is being built: a
            # producer working in turn with the consumer would never set this event here
            assert started[step + 1].wait(timeout=10), f"batch {step + 1} was not started ahead"
    assert all(thread is not threading.current_thread() for thread in threads.values())
    assert len({thread.name for thread in threads.values()}) == 1  # one producer, in order


def test_the_producer_selects_its_streams_device_when_the_run_says_only_cuda(monkeypatch):
    """device=cuda (no index, what device=auto gives outside torchrun): the producer thread
    selects the side stream's device, which has an index; torch.cuda.set_device refuses a
    device without one (checked here with torch's own index rule), which ended every
    prefetching GPU run at its first batch.  CUDA's stream and event objects are doubles."""
    from torch.cuda._utils import _get_device_index

    class Stream:
        device = torch.device("cuda", 0)

        def wait_stream(self, other):
            pass

    class Event:
        def record(self, stream):
            pass

    selected = []

    def set_device(device):
        selected.append(_get_device_index(device))  # raises as torch does for a bare "cuda"

    monkeypatch.setattr(torch.cuda, "Stream", lambda device=None: Stream())
    monkeypatch.setattr(torch.cuda, "current_stream", lambda device=None: Stream())
    monkeypatch.setattr(torch.cuda, "set_device", set_device)
    monkeypatch.setattr(torch.cuda, "set_stream", lambda stream: None)
    monkeypatch.setattr(torch.cuda, "Event", Event)

    def make(step, seeds):
        return PreparedBatch(None, seeds, 0.0, 0.0)

    batches = [torch.tensor([step]) for step in range(3)]
    cuda = torch.device("cuda")
    got = [int(p.features) for p in Prefetcher(make, batches, cuda, enabled=True)]
    assert got == [0, 1, 2] and selected == [0]


def test_without_prefetch_batches_are_built_in_turn():
    started = {step: threading.Event() for step in range(2)}

    def make(step, seeds):
        started[step].set()
        return PreparedBatch(None, seeds, 0.0, 0.0)

    for step, _ in enumerate(Prefetcher(make, [torch.tensor([0])] * 2, CPU, enabled=False)):
        if step == 0:
            assert not started[1].is_set()


@pytest.mark.skipif(compiler() is None, reason="no C++ compiler for the emulator")
def test_the_bounds_check_is_left_to_the_consumer(small_graph, tmp_path):
    sampler = NeighborSampler(small_graph, [4, 3], seed=0)
    table = torch.randn(5, 8)  # far fewer rows than the graph has nodes: ids out of range
    fetcher = ZeroCopyFetcher(table, "cpu", launcher=EmulatedLauncher(build_emulator(tmp_path)))
    batches = seed_batches(small_graph.splits["train"], 50, epoch=0, seed=0)

    def make(step, seeds):
        return prepare_batch(sampler, fetcher, seeds, 0, step, CPU, sync=False)

    with pytest.raises(IndexError, match="out of range"):
        make(0, batches[0])  # outside a producer the check runs at once
    prepared = next(iter(Prefetcher(make, batches, CPU, enabled=True)))
    assert prepared.bounds_check is not None  # the producer did not wait for it
    with pytest.raises(IndexError, match="out of range"):
        prepared.wait()
    fetcher.close()


def test_every_tensor_of_a_batch_is_found(small_graph):
    """wait() records each of them on the training stream, so none is recycled early."""
    batch = NeighborSampler(small_graph, [4, 3], seed=0).sample(torch.arange(20), epoch=0, step=0)
    found = {id(t) for t in batch_tensors(batch)}
    expected = [batch.seeds, batch.labels]
    for block in batch.blocks:
        expected += [block.src_nodes, block.edge_index, block.edge_ids]
    assert found == {id(t) for t in expected} and len(batch.blocks) == 2


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_a_cpu_sampled_batch_is_pinned_before_its_copy(small_graph):
    batch = NeighborSampler(small_graph, [4, 3], seed=0).sample(torch.arange(20), epoch=0, step=0)
    copy = pinned(batch)
    assert all(t.is_pinned() for t in batch_tensors(copy))
    pairs = zip(batch_tensors(batch), batch_tensors(copy), strict=True)
    assert all(torch.equal(a, b) for a, b in pairs)
