"""The real gather.cu kernels, executed on the CPU by kernels/cpu_emulation.cpp."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from kernel_emulation import build_emulator, compiler, emulate_gather

from zerocopy_gcn.fetch.reference import LINE_BYTES, WARP

pytestmark = pytest.mark.skipif(compiler() is None, reason="no C++ compiler for the emulator")
DTYPES = [torch.float32, torch.float16, torch.bfloat16]


@pytest.fixture(scope="module")
def emulator(tmp_path_factory):
    return build_emulator(tmp_path_factory.mktemp("emu"))


def _table(rows, width, dtype, base_offset, seed=0):
    """A table whose first byte sits ``base_offset`` bytes past a 256-B boundary."""
    itemsize = torch.empty(0, dtype=dtype).element_size()
    raw = torch.empty(rows * width * itemsize + 512, dtype=torch.uint8)
    start = (-raw.data_ptr()) % 256 + base_offset
    table = raw[start : start + rows * width * itemsize].view(dtype).view(rows, width)
    table.copy_(torch.randn(rows, width, generator=torch.Generator().manual_seed(seed)))
    return table


def _warp_steps(result, table, idx, kernel):
    """Lines read per (block, warp, position i, loop step), from the kernel's own load log."""
    row_bytes = table.shape[1] * table.element_size()
    base = table.data_ptr()
    address, block, ty, tx, position = result.loads.T
    row = idx.numpy()[position]
    row_start = base + row * row_bytes
    col = (address - row_start) // result.word_bytes
    shift = (row_start % LINE_BYTES) // result.word_bytes if kernel == "aligned" else 0
    step = (col - tx + shift) // result.threads
    lines = {}
    for key, line in zip(
        zip(block, ty, tx // WARP, position, step, strict=True), address // LINE_BYTES, strict=True
    ):
        lines.setdefault(key, set()).add(int(line))
    return lines, position, col


@settings(max_examples=30, deadline=None)
@given(
    rows=st.integers(1, 30),
    width=st.integers(1, 300),
    n=st.integers(1, 40),
    dtype=st.sampled_from(DTYPES),
    kernel=st.sampled_from(["naive", "aligned"]),
    vector=st.booleans(),
    base=st.sampled_from([0, 16, 48, 96]),
    sort=st.booleans(),
    capped=st.booleans(),
    seed=st.integers(0, 1000),
)
def test_kernels_equal_index_select_and_copy_each_element_once(
    emulator, rows, width, n, dtype, kernel, vector, base, sort, capped, seed
):
    table = _table(rows, width, dtype, base, seed)
    idx = torch.randint(0, rows, (n,), generator=torch.Generator().manual_seed(seed))
    result = emulate_gather(
        emulator, table, idx, kernel, vector, sort, max_threads=256 if capped else 0
    )
    assert result.bad_position is None
    assert torch.equal(result.out.view(torch.uint8), table.index_select(0, idx).view(torch.uint8))
    gathered = torch.sort(idx).values if sort else idx
    _, position, col = _warp_steps(result, table, gathered, kernel)
    pairs = position * 10**6 + col
    row_words = width * table.element_size() // result.word_bytes
    assert np.array_equal(
        np.sort(pairs), np.sort((np.arange(n)[:, None] * 10**6 + np.arange(row_words)).ravel())
    )


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("width_bytes", [400, 600, 2408])
@pytest.mark.parametrize("vector", [False, True])
def test_aligned_kernel_warps_read_whole_lines_naive_does_not(emulator, dtype, width_bytes, vector):
    itemsize = torch.empty(0, dtype=dtype).element_size()
    table = _table(64, width_bytes // itemsize, dtype, 0)
    idx = torch.arange(1, 64, 3)  # rows start at many different offsets within a line
    aligned = emulate_gather(emulator, table, idx, "aligned", vector)
    per_warp = max(1, WARP * aligned.word_bytes // LINE_BYTES)
    lines, _, _ = _warp_steps(aligned, table, idx, "aligned")
    assert max(len(v) for v in lines.values()) <= per_warp
    if aligned.word_bytes == 4:  # one warp = one aligned 128-B line
        assert all(len(v) == 1 for v in lines.values())
    naive = emulate_gather(emulator, table, idx, "naive", vector)
    naive_lines, _, _ = _warp_steps(naive, table, idx, "naive")
    naive_requests = sum(map(len, naive_lines.values()))
    assert naive_requests >= sum(map(len, lines.values()))
    if naive.word_bytes == 4:  # misaligned rows: naive warps straddle two lines
        assert max(len(v) for v in naive_lines.values()) == 2
        assert naive_requests > sum(map(len, lines.values()))


def test_vector_words_used_when_aligned(emulator):
    table = _table(8, 100, torch.float32, 0)  # 400-B rows, 16-B aligned base
    assert emulate_gather(emulator, table, torch.arange(8)).word_bytes == 16
    assert emulate_gather(emulator, table, torch.arange(8), vector_loads=False).word_bytes == 4
    odd = _table(8, 100, torch.float32, 4)  # base only 4-B aligned
    assert emulate_gather(emulator, odd, torch.arange(8)).word_bytes == 4


@pytest.mark.parametrize("kernel", ["naive", "aligned"])
def test_out_of_range_ids_are_flagged_and_never_read(emulator, kernel):
    table = _table(10, 33, torch.float32, 0)
    idx = torch.tensor([3, 10, 2, -1, 12])
    result = emulate_gather(emulator, table, idx, kernel)
    assert result.bad_position == 1
    assert set(result.loads[:, 4].tolist()) == {0, 2}  # only the valid positions were read
    assert torch.equal(result.out[[0, 2]], table[[3, 2]])
