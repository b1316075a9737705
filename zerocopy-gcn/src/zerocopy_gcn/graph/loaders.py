"""Convert the formats users have into a graph folder, once.

* OGB node-property folders, exactly as ``ogb`` downloads them, e.g. ``ogbn_products/``::

      raw/edge.csv.gz          "src,dst" per line, no header (or raw/data.npz: edge_index,
      raw/node-feat.csv.gz      node_feat, num_nodes_list, as OGB writes large datasets)
      raw/node-label.csv.gz    one label per line, "nan" for unlabelled (or raw/node-label.npz)
      raw/num-node-list.csv.gz
      split/<scheme>/train.csv.gz, valid.csv.gz, test.csv.gz   one node id per line

* A plain ``.npz``: ``edge_index`` [2, E] (or ``indptr`` + ``indices``), ``feat`` (alias ``x``),
  ``label`` (alias ``y``) and ``train_idx``/``val_idx``/``test_idx`` (or ``*_mask`` arrays).

Edges are streamed through :func:`zerocopy_gcn.graph.build.build_csr` (CSV files are read
twice rather than held in memory).
"""

from __future__ import annotations

import gzip
import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from zerocopy_gcn.graph.build import build_csr
from zerocopy_gcn.graph.csr import (
    FEAT_DTYPES,
    GraphFormatError,
    check_feature_values,
    load_graph,
    write_meta,
)
from zerocopy_gcn.graph.npz_stream import NpyWriter, NpzArrays

_LINES_PER_BLOCK = 1 << 20
_BLOCK_BYTES = 1 << 26  # feature bytes per streamed block (64 MB)
_EDGES_PER_BLOCK = 1 << 21  # edges per streamed block of a binary edge_index


def _read_blocks(path: Path, columns: int | None, dtype) -> Iterator[np.ndarray]:
    """Numeric rows of a (gzipped) CSV file, a block of lines at a time."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt") as handle:
        line_number = 0
        while True:
            lines = handle.readlines(_LINES_PER_BLOCK * 16)
            if not lines:
                return
            text = "".join(lines).replace(",", " ")
            values = np.fromstring(text, dtype=np.float64 if dtype is float else dtype, sep=" ")
            width = columns if columns is not None else len(lines[0].split(","))
            if values.size != width * len(lines):
                raise GraphFormatError(
                    f"{path}: lines {line_number + 1}..{line_number + len(lines)} do not all "
                    f"hold {width} numeric comma-separated values")
            line_number += len(lines)
            yield values.reshape(len(lines), width)


def _read_all(path: Path, columns: int | None, dtype) -> np.ndarray:
    if not path.is_file():
        raise GraphFormatError(f"{path}: missing")
    blocks = list(_read_blocks(path, columns, dtype))
    width = columns or (blocks[0].shape[1] if blocks else 1)
    return np.concatenate(blocks) if blocks else np.zeros((0, width), dtype)


def _labels_from_float(values: np.ndarray, source: str) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    label = np.full(values.shape[0], -1, dtype=np.int64)
    known = ~np.isnan(values)
    if np.any(values[known] < 0) or np.any(values[known] != np.round(values[known])):
        raise GraphFormatError(f"{source}: labels must be non-negative integers (or nan)")
    label[known] = values[known].astype(np.int64)
    return label


def _write_splits(out: Path, splits: dict[str, np.ndarray], num_nodes: int, where: str) -> None:
    for name, idx in splits.items():
        idx = np.asarray(idx).reshape(-1)
        if idx.dtype == bool:
            if idx.shape[0] != num_nodes:
                raise GraphFormatError(f"{where}: {name}_mask has {idx.shape[0]} entries, "
                                       f"expected {num_nodes}")
            idx = np.flatnonzero(idx)
        np.save(out / f"{name}_idx.npy", idx.astype(np.int64))


def _feat_storage(feat: np.ndarray, where: str) -> tuple[np.ndarray, str]:
    if feat.dtype == np.float16:
        return feat, "float16"
    if feat.dtype in (np.float32, np.float64):
        return feat.astype(np.float32, copy=False), "float32"
    raise GraphFormatError(f"{where}: features must be float16/32/64, got {feat.dtype}")


@contextmanager
def staged_output(out: Path) -> Iterator[Path]:
    """Build a graph folder under a hidden sibling name and move it to ``out`` only when it is
    complete, so that a failed conversion (bad input, full disk, Ctrl-C) leaves no half-written
    folder behind that a later run could mistake for a graph."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise GraphFormatError(f"{out}: already exists and is not empty; remove it or choose "
                               "another output folder")
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.parent / f".{out.name}.partial-{os.getpid()}"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir()
    try:
        yield partial
        if out.exists():
            out.rmdir()  # empty (checked above)
        partial.rename(out)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise


def _rows_per_block(row_bytes: int) -> int:
    return max(1, _BLOCK_BYTES // max(1, row_bytes))


def _stream_features(blocks: Iterator[tuple[int, np.ndarray]], out: Path, num_rows: int,
                     width: int, dtype: np.dtype, where: str, progress: bool) -> str:
    """Write feature blocks to ``out/feat.npy`` (fp64 narrowed to fp32), checking values."""
    feat_dtype = "float16" if dtype == np.float16 else "float32"
    with NpyWriter(out / "feat.npy", FEAT_DTYPES[feat_dtype], (num_rows, width)) as writer:
        for first, block in tqdm(blocks, desc="node features", disable=not progress,
                                 unit="block"):
            check_feature_values(block, feat_dtype, where, first)
            writer.write(block)
    return feat_dtype


def _convert_ogb_binary(raw: Path, out: Path, progress: bool) -> tuple[int, Callable, str, str]:
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
        if "num_nodes_list" in data:
            listed = np.asarray(data.read("num_nodes_list")).reshape(-1)
            if listed.shape[0] != 1:
                raise GraphFormatError(f"{path}:num_nodes_list holds {listed.shape[0]} graphs; "
                                       "a node-property dataset has one")
            if int(listed[0]) != num_nodes:
                raise GraphFormatError(f"{path}:num_nodes_list says {int(listed[0])} nodes but "
                                       f"node_feat has {num_nodes} rows")
        shape = data.shape("edge_index")  # checked now, before any work
        if len(shape) != 2 or shape[0] != 2:
            raise GraphFormatError(f"{path}:edge_index must have shape [2, E], got {shape}")
        if data.dtype("edge_index").kind not in "iu":
            raise GraphFormatError(f"{path}:edge_index must hold integers, got "
                                   f"{data.dtype('edge_index')}")
        feat_dtype = _stream_features(
            data.row_blocks("node_feat", _rows_per_block(feat_shape[1] * feat_type.itemsize)),
            out, num_nodes, feat_shape[1], feat_type, f"{path}:node_feat", progress)

    def edge_chunks():
        with NpzArrays(path) as edges:
            for src, dst in edges.edge_blocks("edge_index", _EDGES_PER_BLOCK):
                yield src.astype(np.int64, copy=False), dst.astype(np.int64, copy=False)

    return num_nodes, edge_chunks, f"{path}:edge_index", feat_dtype


def _convert_ogb_csv_features(raw: Path, out: Path, progress: bool) -> tuple[int, str]:
    """``raw/node-feat.csv.gz`` -> ``out/feat.npy``; the row count is the node count."""
    feat_path = raw / "node-feat.csv.gz"
    if not feat_path.is_file():
        raise GraphFormatError(f"{feat_path}: missing")
    width, rows = None, 0
    with open(out / "feat.raw", "wb") as packed:
        for block in tqdm(_read_blocks(feat_path, None, float), desc="node features",
                          disable=not progress, unit="block"):
            width = block.shape[1] if width is None else width
            if block.shape[1] != width:
                raise GraphFormatError(f"{feat_path}: rows have different widths")
            check_feature_values(block, "float32", str(feat_path), rows)
            packed.write(block.astype(np.float32).tobytes())
            rows += block.shape[0]
    if width is None:
        raise GraphFormatError(f"{feat_path}: empty")
    # the row count is known only now: prepend the .npy header by copying block-wise
    source = np.memmap(out / "feat.raw", dtype=np.float32, mode="r", shape=(rows, width))
    with NpyWriter(out / "feat.npy", np.float32, (rows, width)) as writer:
        step = _rows_per_block(width * 4)
        for start in range(0, rows, step):
            writer.write(source[start:start + step])
    del source
    (out / "feat.raw").unlink()
    return rows, "float32"


def _convert_ogb_labels(raw: Path, out: Path, num_nodes: int) -> int:
    """Labels (``node-label.npz`` or ``node-label.csv.gz``, nan = unlabelled) -> label.npy;
    returns the number of classes."""
    classes = 0
    with NpyWriter(out / "label.npy", np.int64, (num_nodes,)) as writer:
        if (raw / "node-label.npz").is_file():
            path = raw / "node-label.npz"
            with NpzArrays(path) as labels:
                shape = labels.shape("node_label")
                if shape[0] != num_nodes:
                    raise GraphFormatError(f"{path}:node_label has {shape[0]} entries, expected "
                                           f"{num_nodes}")
                for first, block in labels.row_blocks("node_label", 1 << 22):
                    label = _labels_from_float(block, f"{path}:node_label (rows {first}..)")
                    classes = max(classes, int(label.max(initial=-1)) + 1)
                    writer.write(label)
        else:
            path = raw / "node-label.csv.gz"
            label = _labels_from_float(_read_all(path, 1, float), str(path))
            if label.shape[0] != num_nodes:
                raise GraphFormatError(f"{path}: has {label.shape[0]} labels, expected "
                                       f"{num_nodes}")
            classes = int(label.max(initial=-1)) + 1
            writer.write(label)
    return classes


def convert_ogb_node_folder(root: str | Path, out: str | Path, split: str | None = None,
                            add_reverse: bool = True, progress: bool = True) -> Path:
    """Convert an OGB node-property dataset folder into a graph folder at ``out``.

    ``add_reverse`` stores every edge in both directions (what GraphSAGE on ogbn-products or
    papers100M does in practice); ``split`` picks a folder under ``split/`` (the only one by
    default).  Every input is streamed (the binary ``data.npz`` member by member, row block by
    row block), so memory stays near one block plus per-node arrays.  The node count comes from
    ``num-node-list.csv.gz`` / ``num_nodes_list`` where present, else from the feature rows.
    Feature values are checked (NaN/inf: an error naming the file and the row).  ``out`` is
    written only when the conversion succeeds.
    """
    root, out = Path(root), Path(out)
    raw = root / "raw"
    if not raw.is_dir():
        raise GraphFormatError(f"{raw}: missing; an OGB dataset folder holds raw/ and split/")
    split_root = root / "split"
    schemes = sorted(p.name for p in split_root.iterdir() if p.is_dir()) if split_root.is_dir() \
        else []
    if not schemes:
        raise GraphFormatError(f"{split_root}: no split folder "
                               "(expected split/<name>/train.csv.gz)")
    scheme = split or schemes[0]
    if scheme not in schemes:
        raise GraphFormatError(f"{split_root}: split {scheme!r} not found; have {schemes}")
    with staged_output(out) as work:
        if (raw / "data.npz").is_file():
            num_nodes, edge_chunks, edge_source, feat_dtype = _convert_ogb_binary(raw, work,
                                                                                  progress)
        else:
            edge_path = raw / "edge.csv.gz"
            if not edge_path.is_file():
                raise GraphFormatError(f"{edge_path}: missing (or provide raw/data.npz)")
            num_nodes, feat_dtype = _convert_ogb_csv_features(raw, work, progress)
            count_path = raw / "num-node-list.csv.gz"
            if count_path.is_file():
                listed = int(_read_all(count_path, 1, np.int64)[0, 0])
                if listed != num_nodes:
                    raise GraphFormatError(f"{raw / 'node-feat.csv.gz'}: has {num_nodes} rows "
                                           f"but num-node-list.csv.gz says {listed} nodes")

            def edge_chunks():
                for block in _read_blocks(edge_path, 2, np.int64):
                    yield block[:, 0], block[:, 1]

            edge_source = str(edge_path)
        num_classes = _convert_ogb_labels(raw, work, num_nodes)
        splits = {}
        for name, file in (("train", "train"), ("val", "valid"), ("test", "test")):
            splits[name] = _read_all(split_root / scheme / f"{file}.csv.gz", 1, np.int64)[:, 0]
        _write_splits(work, splits, num_nodes, str(split_root / scheme))
        num_edges, _ = build_csr(work, num_nodes, edge_chunks, symmetric=add_reverse,
                                 dedupe=True, drop_self_loops=False, source=edge_source,
                                 progress=progress)
        width = int(np.load(work / "feat.npy", mmap_mode="r").shape[1])
        write_meta(work, num_nodes=num_nodes, num_edges=num_edges, feat_dim=width,
                   feat_dtype=feat_dtype, num_classes=num_classes, name=root.name,
                   source={"kind": "ogb", "root": str(root), "split": scheme,
                           "add_reverse": add_reverse})
        # ids were range-checked while building and features while copying: the cheap checks
        # (shapes, dtypes, ends, splits) complete the validation without a second full pass
        load_graph(work, validate="cheap")
    return out


def _npz_key(data, path: Path, *names: str, required: bool = True):
    for name in names:
        if name in data:
            return data[name]
    if required:
        raise GraphFormatError(f"{path}: none of the keys {list(names)} found "
                               f"(file has {sorted(data.keys())})")
    return None


def convert_npz(path: str | Path, out: str | Path, symmetric: bool = False,
                progress: bool = True) -> Path:
    """Convert a plain npz (edge_index or CSR, feat, label, splits) into a graph folder.

    ``out`` is written only when the conversion succeeds (nothing is left behind on failure).
    """
    path, out = Path(path), Path(out)
    if not path.is_file():
        raise GraphFormatError(f"{path}: missing")
    data = np.load(path, allow_pickle=False)
    feat, feat_dtype = _feat_storage(np.asarray(_npz_key(data, path, "feat", "x", "node_feat")),
                                     f"{path}:feat")
    if feat.ndim != 2:
        raise GraphFormatError(f"{path}: feat must be 2-D, got shape {feat.shape}")
    num_nodes = int(feat.shape[0])
    step = _rows_per_block(feat.shape[1] * feat.itemsize)
    for start in range(0, num_nodes, step):
        check_feature_values(feat[start:start + step], feat_dtype, f"{path}:feat", start)
    label = _labels_from_float(_npz_key(data, path, "label", "y"), f"{path}:label")
    if label.shape[0] != num_nodes:
        raise GraphFormatError(f"{path}: label has {label.shape[0]} entries but feat has "
                               f"{num_nodes} rows")
    splits = {}
    for name in ("train", "val", "test"):
        idx = _npz_key(data, path, f"{name}_idx", f"{name}_mask", required=False)
        if idx is None and name == "val":
            idx = _npz_key(data, path, "valid_idx", "valid_mask", required=False)
        if idx is None:
            raise GraphFormatError(f"{path}: key {name}_idx (or {name}_mask) missing")
        splits[name] = np.asarray(idx)
    with staged_output(out) as work:
        if "edge_index" in data:
            edge_index = np.asarray(data["edge_index"]).astype(np.int64, copy=False)
            if edge_index.ndim != 2 or edge_index.shape[0] != 2:
                raise GraphFormatError(f"{path}: edge_index must have shape [2, E], got "
                                       f"{edge_index.shape}")
            num_edges, _ = build_csr(work, num_nodes,
                                     lambda: iter([(edge_index[0], edge_index[1])]),
                                     symmetric=symmetric, dedupe=False, drop_self_loops=False,
                                     source=f"{path}:edge_index", progress=progress)
        elif "indptr" in data and "indices" in data:
            indptr = np.asarray(data["indptr"])
            indices = np.asarray(data["indices"])
            if indptr.dtype.kind not in "iu" or indices.dtype.kind not in "iu":
                raise GraphFormatError(f"{path}: indptr/indices must be integer arrays, got "
                                       f"{indptr.dtype}/{indices.dtype}")
            if indptr.shape[0] != num_nodes + 1:
                raise GraphFormatError(f"{path}: indptr has {indptr.shape[0]} entries, "
                                       f"expected num_nodes + 1 = {num_nodes + 1}")
            np.save(work / "indptr.npy", indptr.astype(np.int64))
            np.save(work / "indices.npy", indices.astype(
                np.int64 if indices.dtype.itemsize > 4 else np.int32))
            num_edges = int(indices.shape[0])
        else:
            raise GraphFormatError(f"{path}: needs 'edge_index' or both 'indptr' and "
                                   "'indices'")
        np.save(work / "feat.npy", feat)
        np.save(work / "label.npy", label)
        _write_splits(work, splits, num_nodes, str(path))
        write_meta(work, num_nodes=num_nodes, num_edges=num_edges, feat_dim=int(feat.shape[1]),
                   feat_dtype=feat_dtype, num_classes=int(label.max(initial=-1)) + 1,
                   name=path.stem, source={"kind": "npz", "path": str(path)})
        try:
            load_graph(work)
        except GraphFormatError as error:
            message = str(error).replace(str(work), str(out))
            raise GraphFormatError(f"{path}: converted graph is invalid: {message}") from error
    return out
