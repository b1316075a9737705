"""NumPy model of the gather kernels' thread-to-element mapping (``kernels/gather.cu``).

The CUDA kernels cannot run on a CPU machine, so their index arithmetic is written here a
second time, line for line, and tested: every element copied exactly once, and (aligned
kernel) each warp's host reads inside whole aligned 128-byte lines.  The PCIe traffic model
(``benchmarks/pcie_model.py``) counts line requests with the same functions.
"""

from __future__ import annotations

import math

import numpy as np
import torch

LINE_BYTES = 128
WARP = 32
WORD_SIZES = (16, 4, 2)


def choose_word_bytes(row_bytes: int, base_address: int, vector_loads: bool = True) -> int:
    """Widest word that divides the row size and the table's base address (16 B = float4)."""
    for word in WORD_SIZES:
        if word == 16 and not vector_loads:
            continue
        if row_bytes % word == 0 and base_address % word == 0:
            return word
    raise ValueError(
        f"rows of {row_bytes} bytes at address {base_address:#x} cannot be copied "
        "in 2-byte words (feature rows must be fp16/bf16/fp32)"
    )


def threads_per_row(row_words: int, word_bytes: int, cap: int = 256) -> int:
    """Threads given to one row: enough for the row plus one line of shift, whole warps."""
    line_words = LINE_BYTES // word_bytes
    wanted = WARP * math.ceil((row_words + line_words) / WARP)
    return max(WARP, min(cap, wanted))


def launch_geometry(
    n_idx: int, row_words: int, word_bytes: int, max_threads: int = 0
) -> tuple[int, int, int]:
    """(grid, threads per row = blockDim.x, rows per block = blockDim.y) of a gather launch;
    ``max_threads > 0`` caps the grid so the gather leaves SMs to training (grid-stride)."""
    threads = threads_per_row(row_words, word_bytes)
    rows_per_block = max(1, 256 // threads)
    blocks = max(1, -(-n_idx // rows_per_block))
    if max_threads > 0:
        blocks = min(blocks, max(1, max_threads // (threads * rows_per_block)))
    return blocks, threads, rows_per_block


def thread_columns(
    row_start: int, row_words: int, word_bytes: int, threads: int, aligned: bool
) -> np.ndarray:
    """Column each thread copies at each loop step: array [steps, threads], -1 = idle.

    Mirrors the kernel: ``col = t - shift + k * threads`` (shift = 0 for the naive kernel),
    a thread is active when ``0 <= col < row_words``.
    """
    shift = (row_start % LINE_BYTES) // word_bytes if aligned else 0
    steps = max(1, math.ceil((row_words + shift) / threads))
    cols = np.arange(threads)[None, :] - shift + threads * np.arange(steps)[:, None]
    return np.where((cols >= 0) & (cols < row_words), cols, -1)


def warp_lines(row_start: int, columns: np.ndarray, word_bytes: int) -> list[set[int]]:
    """Set of 128-byte host lines each (step, warp) reads, in launch order."""
    out = []
    steps, threads = columns.shape
    for step in range(steps):
        for warp in range(0, threads, WARP):
            cols = columns[step, warp : warp + WARP]
            cols = cols[cols >= 0]
            if cols.size:
                first = (row_start + cols * word_bytes) // LINE_BYTES
                last = (row_start + cols * word_bytes + word_bytes - 1) // LINE_BYTES
                out.append(set(first.tolist()) | set(last.tolist()))
    return out


def line_requests(
    row_start: int, row_bytes: int, word_bytes: int, aligned: bool, threads: int | None = None
) -> int:
    """128-byte line requests the kernel issues for one row (sum over warps of lines touched)."""
    row_words = row_bytes // word_bytes
    threads = threads or threads_per_row(row_words, word_bytes)
    columns = thread_columns(row_start, row_words, word_bytes, threads, aligned)
    return sum(len(lines) for lines in warp_lines(row_start, columns, word_bytes))


def reference_gather(
    table: torch.Tensor,
    idx: torch.Tensor,
    aligned: bool = True,
    vector_loads: bool = True,
    base_address: int | None = None,
    out_rows: torch.Tensor | None = None,
) -> torch.Tensor:
    """Run the kernel's mapping on the CPU: each simulated thread copies its words.

    Raises ``IndexError`` for an out-of-range id, like the kernel's bounds flag.
    """
    table = table.contiguous()
    n_rows, width = table.shape
    row_bytes = width * table.element_size()
    base = table.data_ptr() if base_address is None else base_address
    word = choose_word_bytes(row_bytes, base, vector_loads)
    word_dtype = {2: np.uint16, 4: np.uint32, 16: np.dtype((np.void, 16))}[word]
    words = table.view(torch.uint8).numpy().view(word_dtype).reshape(n_rows, -1)
    row_words = words.shape[1]
    idx_np = idx.cpu().numpy().astype(np.int64)
    bad = np.flatnonzero((idx_np < 0) | (idx_np >= n_rows))
    if bad.size:
        raise IndexError(
            f"feature fetch: node id {int(idx_np[bad[0]])} at position "
            f"{int(bad[0])} is out of range [0, {n_rows})"
        )
    if idx_np.shape[0] == 0:
        return table[:0].clone()
    out = np.zeros((idx_np.shape[0], row_words), dtype=word_dtype)
    written = np.zeros(out.shape, dtype=np.int32)
    dest = np.arange(idx_np.shape[0]) if out_rows is None else out_rows.cpu().numpy()
    threads = threads_per_row(row_words, word)
    for i, row in enumerate(idx_np):
        columns = thread_columns(base + int(row) * row_bytes, row_words, word, threads, aligned)
        active = columns[columns >= 0]
        out[dest[i], active] = words[row, active]
        np.add.at(written[dest[i]], active, 1)
    if not np.all(written == 1):
        raise AssertionError("mapping did not copy every element exactly once")
    return (
        torch.from_numpy(out.view(np.uint8).reshape(idx_np.shape[0], row_bytes).copy())
        .view(table.dtype)
        .reshape(idx_np.shape[0], width)
    )
