"""Synthetic OGB node-property folders in the binary layout of ogbn-papers100M, streamed.

Layout (what OGB's ``read_binary_graph_raw`` and ``NodePropPredDataset`` read for datasets
with ``binary=True``)::

    raw/data.npz         edge_index int64 [2, E] (one direction, as stored by OGB),
                         node_feat [N, D] (papers100M: float16), node_year int64 [N, 1],
                         num_nodes_list int64 [1], num_edges_list int64 [1]
    raw/node-label.npz   node_label float [N, 1], nan = unlabelled
    split/time/train.csv.gz, valid.csv.gz, test.csv.gz   one node id per line

Members are written like ``np.savez`` (stored; ``compressed=True`` deflates them like
``np.savez_compressed``), but block by block into the zip, so a graph larger than memory can
be made.  Edges are seeded R-MAT pairs (power-law degrees), ids permuted to spread the hubs.
"""

from __future__ import annotations

import gzip
import math
import zipfile
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from zerocopy_gcn.graph.rmat import RMatSpec, rmat_pairs

PAPERS100M_NODES = 111_059_956
PAPERS100M_EDGES = 1_615_685_872
PAPERS100M_DEGREE = PAPERS100M_EDGES / PAPERS100M_NODES  # one-way edges per node (~14.5)
_PAIRS_PER_CHUNK = 1 << 22


def _write_member(
    archive: zipfile.ZipFile, key: str, dtype, shape, blocks, fortran: bool = False
) -> None:
    header = {
        "descr": np.lib.format.dtype_to_descr(np.dtype(dtype)),
        "fortran_order": fortran,
        "shape": tuple(int(s) for s in shape),
    }
    with archive.open(f"{key}.npy", "w", force_zip64=True) as member:
        np.lib.format.write_array_header_1_0(member, header)
        for block in blocks:
            member.write(np.ascontiguousarray(block, dtype=dtype).tobytes())


def _write_csv_gz(path: Path, values: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt") as handle:
        handle.write("\n".join(map(str, values.tolist())) + "\n")


def write_ogb_binary_folder(
    root: str | Path,
    num_nodes: int,
    avg_degree: float = PAPERS100M_DEGREE,
    feat_dim: int = 128,
    feat_dtype: str = "float16",
    num_classes: int = 172,
    labelled: float = 0.014,
    seed: int = 0,
    compressed: bool = False,
    fortran_edges: bool = False,
    progress: bool = True,
) -> Path:
    """Write a papers100M-shaped OGB folder with ``num_nodes`` nodes; returns ``root``.

    ``labelled``: fraction of nodes with a label (papers100M: ~1.4 %), split 78/8/14 % into
    train/valid/test like its time split.  ``fortran_edges`` stores ``edge_index`` column-major
    (what ``np.savez`` writes for a transposed ``[E, 2]`` array).
    """
    root = Path(root)
    raw = root / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    num_edges = int(round(num_nodes * avg_degree))
    spec = RMatSpec(
        num_nodes=num_nodes,
        num_edges=2 * num_edges,
        feat_dim=feat_dim,
        num_classes=num_classes,
        seed=seed,
    )
    perm = np.random.default_rng([seed, 0]).permutation(num_nodes)
    chunks = [
        (c, start, min(_PAIRS_PER_CHUNK, num_edges - start))
        for c, start in enumerate(range(0, num_edges, _PAIRS_PER_CHUNK))
    ]

    def pairs(side: int | None):
        for chunk, _, count in tqdm(chunks, desc="edges", disable=not progress, unit="chunk"):
            src, dst = rmat_pairs(spec, chunk, count)
            src, dst = perm[src], perm[dst]
            yield np.stack([src, dst], axis=1) if side is None else (src, dst)[side]

    rows_per_block = max(1, (1 << 24) // feat_dim)

    def features():
        for start in tqdm(
            range(0, num_nodes, rows_per_block), desc="features", disable=not progress, unit="block"
        ):
            rng = np.random.default_rng([seed, 5, start])
            stop = min(num_nodes, start + rows_per_block)
            yield rng.standard_normal((stop - start, feat_dim), dtype=np.float32)

    compression = zipfile.ZIP_DEFLATED if compressed else zipfile.ZIP_STORED
    with zipfile.ZipFile(
        raw / "data.npz", "w", compression=compression, allowZip64=True
    ) as archive:
        if fortran_edges:
            _write_member(
                archive, "edge_index", np.int64, (2, num_edges), pairs(None), fortran=True
            )
        else:
            _write_member(
                archive,
                "edge_index",
                np.int64,
                (2, num_edges),
                (block for side in (0, 1) for block in pairs(side)),
            )
        _write_member(archive, "node_feat", np.dtype(feat_dtype), (num_nodes, feat_dim), features())
        years = np.random.default_rng([seed, 6]).integers(1950, 2021, (num_nodes, 1))
        _write_member(archive, "node_year", np.int64, years.shape, [years])
        _write_member(archive, "num_nodes_list", np.int64, (1,), [np.array([num_nodes])])
        _write_member(archive, "num_edges_list", np.int64, (1,), [np.array([num_edges])])
    rng = np.random.default_rng([seed, 7])
    count = max(3, int(math.ceil(labelled * num_nodes)))
    chosen = np.sort(rng.choice(num_nodes, size=count, replace=False))
    label = np.full((num_nodes, 1), np.nan, dtype=np.float32)
    label[chosen, 0] = rng.integers(0, num_classes, count)
    with zipfile.ZipFile(
        raw / "node-label.npz", "w", compression=compression, allowZip64=True
    ) as archive:
        _write_member(archive, "node_label", np.float32, label.shape, [label])
    order = rng.permutation(chosen)
    n_train, n_valid = int(0.78 * count), max(1, int(0.08 * count))
    split = root / "split" / "time"
    _write_csv_gz(split / "train.csv.gz", np.sort(order[:n_train]))
    _write_csv_gz(split / "valid.csv.gz", np.sort(order[n_train : n_train + n_valid]))
    _write_csv_gz(split / "test.csv.gz", np.sort(order[n_train + n_valid :]))
    return root
