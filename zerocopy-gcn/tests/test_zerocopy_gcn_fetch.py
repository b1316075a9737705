import gc
import shutil
import subprocess
import time

import numpy as np
import pytest
import torch
from cuda_doubles import FakeRuntime
from hypothesis import given, settings
from hypothesis import strategies as st

from zerocopy_gcn.fetch import ConventionalFetcher, GPUResidentFetcher, make_fetcher
from zerocopy_gcn.fetch.reference import (
    LINE_BYTES,
    choose_word_bytes,
    line_requests,
    reference_gather,
    thread_columns,
    threads_per_row,
    warp_lines,
)
from zerocopy_gcn.fetch.zerocopy import REGISTRY, HostRegistration, RegistrationError, kernel_path
from zerocopy_gcn.prefetch import Prefetcher, prepare_batch
from zerocopy_gcn.sampling import NeighborSampler, seed_batches

DTYPES = [torch.float32, torch.float16, torch.bfloat16]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("threads", [1, 3])
def test_conventional_equals_index_select(dtype, threads):
    table = torch.randn(5000, 24).to(dtype)
    idx = torch.randint(0, 5000, (7000,))
    fetcher = ConventionalFetcher(table, "cpu", num_threads=threads, min_rows_per_thread=500)
    assert torch.equal(fetcher.fetch(idx), table.index_select(0, idx))
    assert fetcher.bytes_fetched == 7000 * 24 * table.element_size()
    fetcher.close()


@pytest.mark.parametrize("mode", ["conventional", "gpu"])
def test_out_of_range_ids_raise_clear_error(mode):
    fetcher = make_fetcher(mode, torch.zeros(10, 4), "cpu")
    with pytest.raises(IndexError, match="node id 10 at position 2"):
        fetcher.fetch(torch.tensor([0, 3, 10, 1]))
    with pytest.raises(IndexError, match="node id -1"):
        fetcher.fetch(torch.tensor([-1]))


def test_memmapped_table_fetch(tmp_path):
    array = np.lib.format.open_memmap(
        tmp_path / "f.npy", mode="w+", dtype=np.float32, shape=(300, 8)
    )
    array[:] = np.arange(2400, dtype=np.float32).reshape(300, 8)
    array.flush()
    table = torch.from_numpy(np.load(tmp_path / "f.npy", mmap_mode="c"))
    out = make_fetcher("conventional", table, "cpu").fetch(torch.tensor([299, 0]))
    assert out[0, 0] == 299 * 8 and out[1, 7] == 7


def test_unknown_mode_and_zerocopy_needs_cuda():
    with pytest.raises(ValueError, match="unknown fetch mode"):
        make_fetcher("magic", torch.zeros(2, 2), "cpu")
    with pytest.raises((ValueError, ImportError), match="CUDA device|pip install"):
        make_fetcher("zerocopy", torch.zeros(2, 2), "cpu")


# --- the kernel's thread -> element mapping, checked on the CPU --------------------------------


@pytest.mark.parametrize("word", [2, 4, 16])
@pytest.mark.parametrize("row_bytes", [32, 64, 100 * 4 - 16 + 16, 400, 512, 1000, 4096])
@pytest.mark.parametrize("offset", [0, 16, 48, 112])
def test_aligned_mapping_each_element_once_and_whole_lines(word, row_bytes, offset):
    if row_bytes % word or offset % word:
        pytest.skip("word does not divide the row")
    words = row_bytes // word
    start = 1024 + offset
    threads = threads_per_row(words, word)
    cols = thread_columns(start, words, word, threads, aligned=True)
    active = np.sort(cols[cols >= 0])
    assert np.array_equal(active, np.arange(words))  # every element exactly once
    for lines in warp_lines(start, cols, word):
        # a warp reads 32 * word bytes: inside one aligned line for 2/4-byte words, whole
        # consecutive lines (4 for float4) otherwise
        assert len(lines) <= max(1, 32 * word // LINE_BYTES)
    minimum = -(-(offset + row_bytes) // LINE_BYTES)
    assert len(set().union(*warp_lines(start, cols, word))) == minimum
    if word == 4:  # one warp = one line: the request count is the minimum possible
        assert line_requests(start, row_bytes, word, aligned=True) == minimum


def test_naive_mapping_straddles_lines_when_misaligned():
    cols = thread_columns(1024 + 16, 100, 4, threads_per_row(100, 4), aligned=False)
    assert np.array_equal(np.sort(cols[cols >= 0]), np.arange(100))
    assert max(len(lines) for lines in warp_lines(1024 + 16, cols, 4)) == 2
    assert line_requests(1024 + 16, 400, 4, aligned=False) > line_requests(
        1024 + 16, 400, 4, aligned=True
    )


def test_word_choice():
    assert choose_word_bytes(400, 0) == 16 and choose_word_bytes(400, 0, False) == 4
    assert choose_word_bytes(200, 0) == 4 and choose_word_bytes(202, 0) == 2
    assert choose_word_bytes(400, 8) == 4


@settings(max_examples=25, deadline=None)
@given(
    rows=st.integers(1, 40),
    width=st.integers(1, 70),
    n=st.integers(0, 30),
    dtype=st.sampled_from(DTYPES),
    aligned=st.booleans(),
    vector=st.booleans(),
    base=st.sampled_from([0, 16, 64, 96]),
    sort=st.booleans(),
    seed=st.integers(0, 99),
)
def test_reference_gather_equals_index_select(
    rows, width, n, dtype, aligned, vector, base, sort, seed
):
    gen = torch.Generator().manual_seed(seed)
    table = torch.randn(rows, width, generator=gen).to(dtype)
    idx = torch.randint(0, rows, (n,), generator=gen)
    out_rows = None
    gather_idx = idx
    if sort:
        gather_idx, out_rows = torch.sort(idx)
    got = reference_gather(
        table,
        gather_idx,
        aligned=aligned,
        vector_loads=vector,
        base_address=base,
        out_rows=out_rows,
    )
    assert torch.equal(got.view(torch.uint8), table.index_select(0, idx).view(torch.uint8))


def test_reference_gather_bounds():
    with pytest.raises(IndexError, match="node id 5 at position 1"):
        reference_gather(torch.zeros(5, 4), torch.tensor([0, 5]))


# --- CUDA sources compile ----------------------------------------------------------------------


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc not installed")
def test_kernels_compile_with_nvcc(tmp_path):
    result = subprocess.run(
        ["nvcc", "--ptx", "-o", str(tmp_path / "gather.ptx"), kernel_path()],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    ptx = (tmp_path / "gather.ptx").read_text()
    for kernel in ("naive", "aligned"):
        for word in (2, 4, 16):
            assert f"gather_{kernel}_w{word}" in ptx
    assert ".v4" in ptx  # the 16-byte kernels really use vector loads


# --- host registration bookkeeping (fake CUDA runtime on CPU) -----------------------------------


def test_registration_refuses_overlap_and_unregisters():
    runtime = FakeRuntime()
    table = torch.zeros(100, 8)
    registration = HostRegistration(table, runtime=runtime)
    assert registration.device_ptr == table.data_ptr() and runtime.registered
    with pytest.raises(RegistrationError, match="overlaps"):
        HostRegistration(table[10:20], runtime=runtime)
    other = HostRegistration(torch.zeros(4, 4), runtime=runtime)  # disjoint: fine
    registration.close()
    assert table.data_ptr() not in runtime.registered
    again = HostRegistration(table[10:20], runtime=runtime)  # range free again
    again.close()
    del other
    gc.collect()
    assert runtime.registered == {} and REGISTRY.ranges == {}


def test_read_only_mapping_registers_read_only(tmp_path):
    np.save(tmp_path / "t.npy", np.zeros((16, 4), np.float32))
    array = np.load(tmp_path / "t.npy", mmap_mode="r")
    from zerocopy_gcn.graph.csr import numpy_to_tensor

    runtime = FakeRuntime()
    with HostRegistration(
        numpy_to_tensor(array), runtime=runtime, read_only=not array.flags.writeable
    ) as registration:
        assert registration.flags & 0x08
    assert runtime.registered == {}


# --- prefetcher ---------------------------------------------------------------------------------


@pytest.mark.parametrize("enabled", [False, True])
def test_prefetcher_yields_same_batches_in_order(small_graph, enabled):
    sampler = NeighborSampler(small_graph, [4, 3], seed=0)
    fetcher = make_fetcher("conventional", small_graph.feat_tensor(), "cpu")
    batches = seed_batches(small_graph.splits["train"], 50, epoch=0, seed=0)
    device = torch.device("cpu")

    def make(step, seeds):
        return prepare_batch(sampler, fetcher, seeds, 0, step, device, sync=False)

    got = list(Prefetcher(make, batches, device, enabled=enabled))
    assert len(got) == len(batches)
    for prepared, seeds in zip(got, batches, strict=True):
        assert torch.equal(prepared.batch.seeds, seeds)
        expected = small_graph.feat_tensor().index_select(0, prepared.batch.input_nodes)
        assert torch.equal(prepared.features, expected)


def test_prefetcher_propagates_errors():
    def broken(step, seeds):
        raise RuntimeError(f"boom {step}")

    with pytest.raises(RuntimeError, match="boom 0"):
        list(Prefetcher(broken, [torch.arange(3)], torch.device("cpu"), enabled=True))


# --- GPU tests (skip without CUDA) --------------------------------------------------------------

needs_gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.mark.gpu
@needs_gpu
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kernel", ["naive", "aligned"])
@pytest.mark.parametrize("width", [1, 25, 100, 128, 1024])
@pytest.mark.parametrize("sort", [False, True])
def test_zerocopy_kernel_equals_index_select(dtype, kernel, width, sort):
    pytest.importorskip("cupy")
    table = torch.randn(3000, width).to(dtype)
    idx = torch.randint(0, 3000, (5000,), device="cuda")
    fetcher = make_fetcher(
        "zerocopy", table, "cuda", kernel=kernel, sort_indices=sort, max_threads=4096
    )
    out = fetcher.fetch(idx)
    assert torch.equal(out.cpu(), table.index_select(0, idx.cpu()))
    with pytest.raises(IndexError, match="out of range"):
        fetcher.fetch(torch.tensor([0, 3000], device="cuda"))
    fetcher.close()


@pytest.mark.gpu
@needs_gpu
@pytest.mark.parametrize("mode", ["conventional", "gpu"])
def test_cuda_modes_equal_index_select(mode):
    table = torch.randn(1000, 40)
    idx = torch.randint(0, 1000, (3000,))
    fetcher = make_fetcher(mode, table, "cuda")
    for _ in range(3):  # exercises the double-buffered staging
        assert torch.equal(fetcher.fetch(idx).cpu(), table.index_select(0, idx))
    assert isinstance(fetcher, ConventionalFetcher | GPUResidentFetcher)


@pytest.mark.parametrize("fraction", [0.0, 0.1, 0.5, 1.0])
def test_cached_fetcher_equals_index_select(small_graph, fraction):
    from zerocopy_gcn.fetch.cached import CachedFetcher

    table = small_graph.feat_tensor()
    cold = make_fetcher("conventional", table, "cpu")
    fetcher = CachedFetcher.for_graph(small_graph, cold, torch.device("cpu"), fraction)
    gen = torch.Generator().manual_seed(1)
    idx = torch.randint(0, small_graph.num_nodes, (500,), generator=gen)
    assert torch.equal(fetcher.fetch(idx), table.index_select(0, idx))
    stats = fetcher.epoch_stats()
    if fraction == 1.0:
        assert stats["cache_hit_rate"] == 1.0
    if fraction == 0.0:
        assert stats["cache_hit_rate"] == 0.0 and stats["pcie_gb_saved"] == 0.0
    assert cold.rows_fetched == round(500 * (1 - stats["cache_hit_rate"]))
    with pytest.raises(IndexError, match="out of range"):
        fetcher.fetch(torch.tensor([small_graph.num_nodes]))


# --- reused output buffers of the conventional path --------------------------------------------


def test_conventional_fetch_cycles_a_ring_of_reused_buffers():
    table = torch.randn(4000, 16)
    fetcher = ConventionalFetcher(table, "cpu", ring=3)
    pointers = set()
    for step in range(12):
        idx = torch.randint(0, 4000, (500 + step,))
        out = fetcher.fetch(idx)
        assert torch.equal(out, table.index_select(0, idx))
        pointers.add(out.data_ptr())
        del out  # the caller is done with the batch: its buffer may be reused
    assert len(pointers) <= 3 and fetcher.buffers_allocated <= 3


def test_batches_still_held_are_never_overwritten():
    table = torch.randn(2000, 8)
    fetcher = ConventionalFetcher(table, "cpu", ring=2)
    held, expected = [], []
    for _ in range(7):
        idx = torch.randint(0, 2000, (300,))
        held.append(fetcher.fetch(idx)[5:])  # a derived view keeps its buffer in use too
        expected.append(table.index_select(0, idx)[5:])
    assert all(torch.equal(a, b) for a, b in zip(held, expected, strict=True))
    assert fetcher.ring_size >= 7  # the ring grew instead of overwriting


@pytest.mark.parametrize("depth", [1, 3])
def test_prefetch_depth_sizes_the_ring_and_keeps_batches_intact(small_graph, depth):
    sampler = NeighborSampler(small_graph, [4, 3], seed=0)
    table = small_graph.feat_tensor()
    fetcher = ConventionalFetcher(table, "cpu")
    batches = seed_batches(small_graph.splits["train"], 20, epoch=0, seed=0)
    device = torch.device("cpu")

    def make(step, seeds):
        return prepare_batch(sampler, fetcher, seeds, 0, step, device, sync=False)

    prefetcher = Prefetcher(make, batches, device, enabled=True, depth=depth, fetcher=fetcher)
    assert fetcher.ring_size == depth + 3
    for prepared in prefetcher:
        time.sleep(0.002)  # a slow consumer: the producer fills the queue meanwhile
        expected = table.index_select(0, prepared.batch.input_nodes)
        assert torch.equal(prepared.features, expected)
    assert fetcher.ring_size == depth + 3  # no growth: the ring covered every live batch
