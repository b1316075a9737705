"""Node features streamed block by block into ``feat.npy`` (fp64 narrowed to fp32), checked."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from zerocopy_gcn.graph.csr import FEAT_DTYPES, check_feature_values
from zerocopy_gcn.graph.npz_stream import NpyWriter

_BLOCK_BYTES = 1 << 26  # feature bytes per streamed block (64 MB)
EDGES_PER_BLOCK = 1 << 21  # edges per streamed block of a binary edge_index


def rows_per_block(row_bytes: int) -> int:
    return max(1, _BLOCK_BYTES // max(1, row_bytes))


def stream_features(
    blocks: Iterator[tuple[int, np.ndarray]],
    out: Path,
    num_rows: int,
    width: int,
    dtype: np.dtype,
    where: str,
    progress: bool,
) -> str:
    """Write feature blocks to ``out/feat.npy`` (fp64 narrowed to fp32), checking values."""
    feat_dtype = "float16" if dtype == np.float16 else "float32"
    with NpyWriter(out / "feat.npy", FEAT_DTYPES[feat_dtype], (num_rows, width)) as writer:
        for first, block in tqdm(blocks, desc="node features", disable=not progress, unit="block"):
            check_feature_values(block, feat_dtype, where, first)
            writer.write(block)
    return feat_dtype
