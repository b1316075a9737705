"""The files of an OGB node-property folder: the binary ``raw/data.npz``, the CSV features
and the labels (``node-label.npz`` or ``.csv.gz``), each written into the graph folder."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from zerocopy_gcn.graph.convert.csv_text import read_all, read_blocks
from zerocopy_gcn.graph.convert.features import EDGES_PER_BLOCK, rows_per_block, stream_features
from zerocopy_gcn.graph.convert.labels import labels_from_float
from zerocopy_gcn.graph.convert.limits import check_edge_count, check_node_count, node_limit
from zerocopy_gcn.graph.csr import GraphFormatError, check_feature_values
from zerocopy_gcn.graph.npz_stream import NpyWriter, NpzArrays


def convert_ogb_binary(raw: Path, out: Path, progress: bool) -> tuple[int, Callable, str, str]:
    """Stream ``raw/data.npz`` (OGB's binary layout: edge_index [2, E], node_feat [N, D],
    num_nodes_list, num_edges_list, node_* extras) into ``out``; returns (num_nodes, edge
    chunks, edge source name, feature dtype)."""
    path = raw / "data.npz"
    with NpzArrays(path) as data:
        for key in ("edge_index", "node_feat"):
            if key not in data:
                raise GraphFormatError(f"{path}: key {key!r} missing (has {sorted(data.keys())})")
        feat_shape, feat_type = data.shape("node_feat"), data.dtype("node_feat")
        if len(feat_shape) != 2:
            raise GraphFormatError(f"{path}:node_feat must be 2-D, got shape {feat_shape}")
        if feat_type not in (np.float16, np.float32, np.float64):
            raise GraphFormatError(f"{path}:node_feat must be float16/32/64, got {feat_type}")
        num_nodes = int(feat_shape[0])
        if feat_shape[1] == 0:
            raise GraphFormatError(
                f"{path}:node_feat has zero columns; a model needs at least "
                "one input feature per node"
            )
        check_node_count(num_nodes, f"{path}:node_feat", path.stat().st_size)
        if "num_nodes_list" in data:
            listed = np.asarray(data.read("num_nodes_list")).reshape(-1)
            if listed.shape[0] != 1:
                raise GraphFormatError(
                    f"{path}:num_nodes_list holds {listed.shape[0]} graphs; "
                    "a node-property dataset has one"
                )
            if int(listed[0]) != num_nodes:
                raise GraphFormatError(
                    f"{path}:num_nodes_list says {int(listed[0])} nodes but "
                    f"node_feat has {num_nodes} rows"
                )
        shape = data.shape("edge_index")  # checked now, before any work
        if len(shape) != 2 or shape[0] != 2:
            raise GraphFormatError(f"{path}:edge_index must have shape [2, E], got {shape}")
        if data.dtype("edge_index").kind not in "iu":
            raise GraphFormatError(
                f"{path}:edge_index must hold integers, got {data.dtype('edge_index')}"
            )
        check_edge_count(int(shape[1]), f"{path}:edge_index", path.stat().st_size)
        feat_dtype = stream_features(
            data.row_blocks("node_feat", rows_per_block(feat_shape[1] * feat_type.itemsize)),
            out,
            num_nodes,
            feat_shape[1],
            feat_type,
            f"{path}:node_feat",
            progress,
        )

    def edge_chunks():
        with NpzArrays(path) as edges:
            for src, dst in edges.edge_blocks("edge_index", EDGES_PER_BLOCK):
                yield src.astype(np.int64, copy=False), dst.astype(np.int64, copy=False)

    return num_nodes, edge_chunks, f"{path}:edge_index", feat_dtype


def convert_ogb_csv_features(raw: Path, out: Path, progress: bool) -> tuple[int, str]:
    """``raw/node-feat.csv.gz`` -> ``out/feat.npy``; the row count is the node count."""
    feat_path = raw / "node-feat.csv.gz"
    if not feat_path.is_file():
        raise GraphFormatError(f"{feat_path}: missing")
    count_path = raw / "num-node-list.csv.gz"
    listed = None
    if count_path.is_file():
        counts = read_all(
            count_path,
            1,
            np.int64,
            max_rows=1,
            what="entries for a node-property dataset (one graph)",
        )
        listed = int(counts[0, 0]) if counts.size else None
    # the rows are the nodes: stop reading as soon as there are more than the data can hold
    limit = node_limit(feat_path.stat().st_size)
    width, rows = None, 0
    with open(out / "feat.raw", "wb") as packed:
        for block in tqdm(
            read_blocks(feat_path, None, float, max_rows=limit, what="nodes"),
            desc="node features",
            disable=not progress,
            unit="block",
        ):
            width = block.shape[1] if width is None else width
            if block.shape[1] != width:
                raise GraphFormatError(f"{feat_path}: rows have different widths")
            if listed is not None and rows + block.shape[0] > listed:
                raise GraphFormatError(
                    f"{feat_path}: has more than {listed} rows but "
                    f"num-node-list.csv.gz says {listed} nodes"
                )
            check_feature_values(block, "float32", str(feat_path), rows)
            packed.write(block.astype(np.float32).tobytes())
            rows += block.shape[0]
    if width is None:
        raise GraphFormatError(f"{feat_path}: empty")
    # the row count is known only now: prepend the .npy header by copying block-wise
    source = np.memmap(out / "feat.raw", dtype=np.float32, mode="r", shape=(rows, width))
    with NpyWriter(out / "feat.npy", np.float32, (rows, width)) as writer:
        step = rows_per_block(width * 4)
        for start in range(0, rows, step):
            writer.write(source[start : start + step])
    del source
    (out / "feat.raw").unlink()
    if listed is not None and listed != rows:
        raise GraphFormatError(
            f"{feat_path}: has {rows} rows but num-node-list.csv.gz says {listed} nodes"
        )
    return rows, "float32"


def convert_ogb_labels(raw: Path, out: Path, num_nodes: int) -> int:
    """Labels (``node-label.npz`` or ``node-label.csv.gz``, nan = unlabelled) -> label.npy;
    returns the number of classes."""
    classes = 0
    with NpyWriter(out / "label.npy", np.int64, (num_nodes,)) as writer:
        if (raw / "node-label.npz").is_file():
            path = raw / "node-label.npz"
            with NpzArrays(path) as labels:
                shape = labels.shape("node_label")
                if shape[0] != num_nodes:
                    raise GraphFormatError(
                        f"{path}:node_label has {shape[0]} entries, expected {num_nodes}"
                    )
                for first, block in labels.row_blocks("node_label", 1 << 22):
                    label = labels_from_float(
                        block, f"{path}:node_label (rows {first}..)", num_nodes
                    )
                    classes = max(classes, int(label.max(initial=-1)) + 1)
                    writer.write(label)
        else:
            path = raw / "node-label.csv.gz"
            label = labels_from_float(
                read_all(path, 1, float, max_rows=num_nodes, what="labels (one per node)"),
                str(path),
                num_nodes,
            )
            if label.shape[0] != num_nodes:
                raise GraphFormatError(f"{path}: has {label.shape[0]} labels, expected {num_nodes}")
            classes = int(label.max(initial=-1)) + 1
            writer.write(label)
    return classes
