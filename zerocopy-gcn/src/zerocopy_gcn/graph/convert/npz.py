"""Convert a plain ``.npz``: ``edge_index`` [2, E] (or ``indptr`` + ``indices``), ``feat``
(alias ``x``), ``label`` (alias ``y``) and ``train_idx``/``val_idx``/``test_idx`` (or
``*_mask`` arrays)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from zerocopy_gcn.graph.build import build_csr
from zerocopy_gcn.graph.convert.features import EDGES_PER_BLOCK, rows_per_block, stream_features
from zerocopy_gcn.graph.convert.labels import labels_from_float
from zerocopy_gcn.graph.convert.limits import check_edge_count, check_node_count
from zerocopy_gcn.graph.convert.splits import write_splits
from zerocopy_gcn.graph.convert.staging import staged_output
from zerocopy_gcn.graph.csr import SPLITS, GraphFormatError, load_graph, write_meta
from zerocopy_gcn.graph.npz_stream import NpyWriter, NpzArrays


def _npz_member(data: NpzArrays, *names: str, required: bool = True) -> str | None:
    for name in names:
        if name in data:
            return name
    if required:
        raise GraphFormatError(
            f"{data.path}: none of the keys {list(names)} found (file has {sorted(data.keys())})"
        )
    return None


def _small_member(data: NpzArrays, key: str, most: int, what: str) -> np.ndarray:
    """A per-node member read whole, after its declared size is checked against ``most``."""
    count = 1
    for size in data.shape(key):
        count *= int(size)
    if count > most:
        raise GraphFormatError(
            f"{data.where(key)}: has {count:,} entries, more than the {most:,} {what}"
        )
    if data.dtype(key).kind not in "biuf":
        raise GraphFormatError(f"{data.where(key)}: must be numeric, got {data.dtype(key)}")
    return data.read(key)


def _integral_ids(block: np.ndarray, where: str, first: int) -> np.ndarray:
    if block.dtype.kind in "iu":
        return block.astype(np.int64, copy=False)
    bad = ~np.isfinite(block) | (block != np.round(block))
    if bad.any():
        pos = int(np.argmax(bad))
        raise GraphFormatError(
            f"{where}: edge {first + pos} has node id "
            f"{block[pos].item()!r}, not an integer (ids are refused rather "
            "than truncated)"
        )
    return block.astype(np.int64)


def convert_npz(
    path: str | Path, out: str | Path, symmetric: bool = False, progress: bool = True
) -> Path:
    """Convert a plain npz (edge_index or CSR, feat, label, splits) into a graph folder.

    Members are streamed (features and edges block by block, the per-node arrays whole after
    their declared sizes are checked), so memory stays near one block plus per-node arrays
    whatever the file declares.  ``out`` is written only when the conversion succeeds.
    """
    path, out = Path(path), Path(out)
    if not path.is_file():
        raise GraphFormatError(f"{path}: missing")
    disk = path.stat().st_size
    with NpzArrays(path) as data:
        feat_key = _npz_member(data, "feat", "x", "node_feat")
        feat_where = data.where(feat_key)
        feat_shape, feat_type = data.shape(feat_key), data.dtype(feat_key)
        if len(feat_shape) != 2:
            raise GraphFormatError(f"{feat_where}: must be 2-D, got shape {feat_shape}")
        if feat_type not in (np.float16, np.float32, np.float64):
            raise GraphFormatError(f"{feat_where}: features must be float16/32/64, got {feat_type}")
        num_nodes, width = int(feat_shape[0]), int(feat_shape[1])
        if width == 0:
            raise GraphFormatError(
                f"{feat_where}: has zero columns; a model needs at least one input feature per node"
            )
        check_node_count(num_nodes, feat_where, disk)
        label_key = _npz_member(data, "label", "y")
        label_values = _small_member(data, label_key, num_nodes, "nodes (feat rows)")
        if label_values.size != num_nodes:
            raise GraphFormatError(
                f"{data.where(label_key)}: has {label_values.size} entries "
                f"but feat has {num_nodes} rows"
            )
        label = labels_from_float(label_values, data.where(label_key), num_nodes)
        splits = {}
        for name in SPLITS:
            names = (f"{name}_idx", f"{name}_mask") + (
                ("valid_idx", "valid_mask") if name == "val" else ()
            )
            key = _npz_member(data, *names, required=False)
            if key is None:
                raise GraphFormatError(f"{path}: key {name}_idx (or {name}_mask) missing")
            values = _small_member(data, key, num_nodes, "nodes of the graph")
            splits[name] = (values, data.where(key), key.endswith("_mask"))
        with staged_output(out) as work:
            feat_dtype = stream_features(
                data.row_blocks(feat_key, rows_per_block(width * feat_type.itemsize)),
                work,
                num_nodes,
                width,
                feat_type,
                feat_where,
                progress,
            )
            if "edge_index" in data:
                where = data.where("edge_index")
                shape, kind = data.shape("edge_index"), data.dtype("edge_index").kind
                if len(shape) != 2 or shape[0] != 2:
                    raise GraphFormatError(f"{where}: must have shape [2, E], got {shape}")
                if kind not in "iuf":
                    raise GraphFormatError(
                        f"{where}: must hold integer node ids, got {data.dtype('edge_index')}"
                    )
                check_edge_count(int(shape[1]), where, disk)

                def edge_chunks():
                    first = 0
                    with NpzArrays(path) as edges:
                        for src, dst in edges.edge_blocks("edge_index", EDGES_PER_BLOCK):
                            yield (
                                _integral_ids(src, where, first),
                                _integral_ids(dst, where, first),
                            )
                            first += src.shape[0]

                num_edges, _ = build_csr(
                    work,
                    num_nodes,
                    edge_chunks,
                    symmetric=symmetric,
                    dedupe=False,
                    drop_self_loops=False,
                    source=where,
                    progress=progress,
                )
            elif "indptr" in data and "indices" in data:
                indptr_type, indices_type = data.dtype("indptr"), data.dtype("indices")
                if indptr_type.kind not in "iu" or indices_type.kind not in "iu":
                    raise GraphFormatError(
                        f"{path}: indptr/indices must be integer arrays, got "
                        f"{indptr_type}/{indices_type}"
                    )
                if data.shape("indptr") != (num_nodes + 1,):
                    raise GraphFormatError(
                        f"{data.where('indptr')}: has shape "
                        f"{data.shape('indptr')}, expected num_nodes + 1 = "
                        f"({num_nodes + 1},)"
                    )
                if len(data.shape("indices")) != 1:
                    raise GraphFormatError(
                        f"{data.where('indices')}: must be 1-D, got shape {data.shape('indices')}"
                    )
                num_edges = int(data.shape("indices")[0])
                check_edge_count(num_edges, data.where("indices"), disk)
                np.save(work / "indptr.npy", data.read("indptr").astype(np.int64))
                wide = indices_type.itemsize > 4 or indices_type == np.uint32
                with NpyWriter(
                    work / "indices.npy", np.int64 if wide else np.int32, (num_edges,)
                ) as writer:
                    for _, block in data.row_blocks("indices", EDGES_PER_BLOCK):
                        writer.write(block)
            else:
                raise GraphFormatError(f"{path}: needs 'edge_index' or both 'indptr' and 'indices'")
            np.save(work / "label.npy", label)
            write_splits(work, splits, num_nodes)
            write_meta(
                work,
                num_nodes=num_nodes,
                num_edges=num_edges,
                feat_dim=width,
                feat_dtype=feat_dtype,
                num_classes=int(label.max(initial=-1)) + 1,
                name=path.stem,
                source={"kind": "npz", "path": str(path)},
            )
            try:
                load_graph(work)
            except GraphFormatError as error:
                message = str(error).replace(str(work), str(out))
                raise GraphFormatError(f"{path}: converted graph is invalid: {message}") from error
    return out
