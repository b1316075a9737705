"""Streaming construction of a graph folder from edge chunks, without holding the edge list.

The builder is a two-pass counting sort: pass 1 counts each row's degree, pass 2 writes every
edge straight into its final slot of a memory-mapped ``indices.npy``.  The edge source is a
callable that yields the same chunks every time it is called (a seeded generator re-run, or a
file re-read), so the edge list never exists in memory, not even once: peak memory is a few
per-node arrays plus one chunk.  An optional third pass sorts each row, drops duplicate edges
and self loops, block by block.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from zerocopy_gcn.graph.csr import GraphFormatError

EdgeChunks = Callable[[], Iterable[tuple[np.ndarray, np.ndarray]]]
BLOCK_EDGES = 1 << 23


def _check_ids(src: np.ndarray, dst: np.ndarray, num_nodes: int, source: str) -> None:
    for name, ids in (("source", src), ("destination", dst)):
        if ids.size and (int(ids.min()) < 0 or int(ids.max()) >= num_nodes):
            bad = int(ids[(ids < 0) | (ids >= num_nodes)][0])
            raise GraphFormatError(
                f"{source}: {name} node id {bad} is out of range [0, {num_nodes})"
            )


def _oriented(src: np.ndarray, dst: np.ndarray, symmetric: bool) -> tuple[np.ndarray, np.ndarray]:
    """(row, col) pairs: the row is the aggregating (destination) node."""
    if symmetric:
        return np.concatenate([dst, src]), np.concatenate([src, dst])
    return dst, src


def reserve_file(path: Path) -> None:
    """Allocate the disk blocks of a just-created memory-mapped file now.

    ``open_memmap`` makes a sparse file; on a full disk its first write through the mapping
    then kills the process with SIGBUS.  Reserving the space up front turns that into an
    ``OSError`` (ENOSPC) here, which the converters report in one line.
    """
    with open(path, "r+b") as handle:
        size = os.fstat(handle.fileno()).st_size
        if size == 0:
            return
        try:
            os.posix_fallocate(handle.fileno(), 0, size)
        except OSError as error:  # file systems without fallocate keep the sparse file
            if error.errno not in (errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
                raise


def index_dtype_for(num_nodes: int) -> np.dtype:
    return np.dtype(np.int32) if num_nodes < 2**31 - 1 else np.dtype(np.int64)


def build_csr(
    folder: Path,
    num_nodes: int,
    edge_chunks: EdgeChunks,
    symmetric: bool = True,
    dedupe: bool = True,
    drop_self_loops: bool = True,
    source: str = "edges",
    progress: bool = True,
    total_chunks: int | None = None,
    block_edges: int = BLOCK_EDGES,
) -> tuple[int, np.ndarray]:
    """Write ``indptr.npy`` and ``indices.npy`` into ``folder``; return (num_edges, degrees)."""
    folder.mkdir(parents=True, exist_ok=True)
    counts = np.zeros(num_nodes, dtype=np.int64)
    for src, dst in tqdm(
        edge_chunks(),
        desc="csr pass 1/2 (degrees)",
        total=total_chunks,
        disable=not progress,
        unit="chunk",
    ):
        _check_ids(src, dst, num_nodes, source)
        rows, _ = _oriented(src, dst, symmetric)
        np.add.at(counts, rows, 1)  # no per-chunk temporary of num_nodes entries
    indptr = np.zeros(num_nodes + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    num_edges = int(indptr[-1])
    dtype = index_dtype_for(num_nodes)
    raw_path = folder / ("indices.raw.npy" if dedupe or drop_self_loops else "indices.npy")
    indices = np.lib.format.open_memmap(raw_path, mode="w+", dtype=dtype, shape=(num_edges,))
    reserve_file(raw_path)
    cursor = indptr[:-1].copy()
    for src, dst in tqdm(
        edge_chunks(),
        desc="csr pass 2/2 (scatter)",
        total=total_chunks,
        disable=not progress,
        unit="chunk",
    ):
        rows, cols = _oriented(src, dst, symmetric)
        if rows.size == 0:
            continue
        order = np.argsort(rows, kind="stable")
        rows, cols = rows[order], cols[order]
        group_start = np.flatnonzero(np.r_[True, rows[1:] != rows[:-1]])
        group_len = np.diff(np.r_[group_start, rows.size])
        rank = np.arange(rows.size) - np.repeat(group_start, group_len)
        indices[cursor[rows] + rank] = cols
        cursor[rows[group_start]] += group_len
    indices.flush()
    if not np.array_equal(cursor, indptr[1:]):
        raise GraphFormatError(
            f"{source}: the edge source yielded different chunks on its "
            "second pass (it must be deterministic)"
        )
    del indices
    if dedupe or drop_self_loops:
        indptr = _compact_rows(
            folder, raw_path, indptr, dedupe, drop_self_loops, progress, block_edges
        )
        num_edges = int(indptr[-1])
    np.save(folder / "indptr.npy", indptr)
    return num_edges, np.diff(indptr)


def row_blocks(indptr: np.ndarray, block_edges: int = BLOCK_EDGES) -> Iterator[tuple[int, int]]:
    """Consecutive node ranges [a, b) holding about ``block_edges`` edges each."""
    num_nodes = indptr.shape[0] - 1
    start = 0
    while start < num_nodes:
        stop = int(np.searchsorted(indptr, indptr[start] + block_edges, side="right")) - 1
        stop = min(max(stop, start + 1), num_nodes)
        yield start, stop
        start = stop


def _compact_rows(
    folder: Path,
    raw_path: Path,
    indptr: np.ndarray,
    dedupe: bool,
    drop_self_loops: bool,
    progress: bool,
    block_edges: int,
) -> np.ndarray:
    """Sort each row, drop duplicates/self loops, block by block, into the final indices file."""
    raw = np.load(raw_path, mmap_mode="r")
    num_nodes = indptr.shape[0] - 1
    tmp_path = folder / "indices.compact.bin"
    new_counts = np.zeros(num_nodes, dtype=np.int64)
    with open(tmp_path, "wb") as out:
        blocks = list(row_blocks(indptr, block_edges))
        for start, stop in tqdm(
            blocks, desc="csr compact (sort/dedupe rows)", disable=not progress, unit="block"
        ):
            cols = np.asarray(raw[indptr[start] : indptr[stop]], dtype=np.int64)
            degree = np.diff(indptr[start : stop + 1])
            rows = np.repeat(np.arange(start, stop, dtype=np.int64), degree)
            keys = rows * num_nodes + cols
            keys.sort()  # in place; np.unique's hash path is several times slower here
            if dedupe and keys.size:
                keys = keys[np.r_[True, keys[1:] != keys[:-1]]]
            rows, cols = keys // num_nodes, keys % num_nodes
            if drop_self_loops:
                keep = rows != cols
                rows, cols = rows[keep], cols[keep]
            new_counts[start:stop] = np.bincount(rows - start, minlength=stop - start)
            out.write(cols.astype(raw.dtype).tobytes())
    dtype = raw.dtype
    del raw
    new_indptr = np.zeros(num_nodes + 1, dtype=np.int64)
    np.cumsum(new_counts, out=new_indptr[1:])
    final = np.lib.format.open_memmap(
        folder / "indices.npy", mode="w+", dtype=dtype, shape=(int(new_indptr[-1]),)
    )
    reserve_file(folder / "indices.npy")
    packed = np.memmap(tmp_path, dtype=dtype, mode="r") if new_indptr[-1] else np.zeros(0, dtype)
    for offset in range(0, final.shape[0], block_edges):
        final[offset : offset + block_edges] = packed[offset : offset + block_edges]
    final.flush()
    del final, packed
    os.remove(tmp_path)
    os.remove(raw_path)
    return new_indptr
