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
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from zerocopy_gcn.graph.build import build_csr
from zerocopy_gcn.graph.csr import GraphFormatError, load_graph, write_meta

_LINES_PER_BLOCK = 1 << 20


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


def convert_ogb_node_folder(root: str | Path, out: str | Path, split: str | None = None,
                            add_reverse: bool = True, progress: bool = True) -> Path:
    """Convert an OGB node-property dataset folder into a graph folder at ``out``.

    ``add_reverse`` stores every edge in both directions (what GraphSAGE on ogbn-products or
    papers100M does in practice); ``split`` picks a folder under ``split/`` (the only one by
    default).
    """
    root, out = Path(root), Path(out)
    raw = root / "raw"
    if not raw.is_dir():
        raise GraphFormatError(f"{raw}: missing; an OGB dataset folder holds raw/ and split/")
    out.mkdir(parents=True, exist_ok=True)
    if (raw / "data.npz").is_file():
        data = np.load(raw / "data.npz")
        for key in ("edge_index", "node_feat", "num_nodes_list"):
            if key not in data:
                raise GraphFormatError(f"{raw / 'data.npz'}: key {key!r} missing")
        num_nodes = int(np.asarray(data["num_nodes_list"]).reshape(-1)[0])
        edge_index = np.asarray(data["edge_index"], dtype=np.int64)
        if edge_index.ndim != 2 or edge_index.shape[0] != 2:
            raise GraphFormatError(f"{raw / 'data.npz'}: edge_index must have shape [2, E], "
                                   f"got {edge_index.shape}")
        edge_chunks = lambda: iter([(edge_index[0], edge_index[1])])  # noqa: E731
        edge_source = str(raw / "data.npz")
        feat, feat_dtype = _feat_storage(np.asarray(data["node_feat"]), f"{raw / 'data.npz'}")
        np.save(out / "feat.npy", feat)
        del feat
    else:
        num_nodes = int(_read_all(raw / "num-node-list.csv.gz", 1, np.int64)[0, 0])
        edge_path = raw / "edge.csv.gz"
        if not edge_path.is_file():
            raise GraphFormatError(f"{edge_path}: missing (or provide raw/data.npz)")

        def edge_chunks():
            for block in _read_blocks(edge_path, 2, np.int64):
                yield block[:, 0], block[:, 1]

        edge_source = str(edge_path)
        feat_path = raw / "node-feat.csv.gz"
        if not feat_path.is_file():
            raise GraphFormatError(f"{feat_path}: missing")
        feat_dtype = "float32"
        feat_file = None
        rows = 0
        for block in tqdm(_read_blocks(feat_path, None, float), desc="node features",
                          disable=not progress, unit="block"):
            if feat_file is None:
                feat_file = open(out / "feat.raw", "wb")  # noqa: SIM115
                width = block.shape[1]
            if block.shape[1] != width:
                raise GraphFormatError(f"{feat_path}: rows have different widths")
            feat_file.write(block.astype(np.float32).tobytes())
            rows += block.shape[0]
        if feat_file is None:
            raise GraphFormatError(f"{feat_path}: empty")
        feat_file.close()
        if rows != num_nodes:
            raise GraphFormatError(f"{feat_path}: has {rows} rows but num-node-list.csv.gz "
                                   f"says {num_nodes} nodes")
        packed = np.memmap(out / "feat.raw", dtype=np.float32, mode="r", shape=(rows, width))
        feat = np.lib.format.open_memmap(out / "feat.npy", mode="w+", dtype=np.float32,
                                         shape=(rows, width))
        for start in range(0, rows, 1 << 16):
            feat[start:start + (1 << 16)] = packed[start:start + (1 << 16)]
        feat.flush()
        del feat, packed
        (out / "feat.raw").unlink()
    if (raw / "node-label.npz").is_file():
        labels = np.load(raw / "node-label.npz")
        if "node_label" not in labels:
            raise GraphFormatError(f"{raw / 'node-label.npz'}: key 'node_label' missing")
        label = _labels_from_float(labels["node_label"], str(raw / "node-label.npz"))
    else:
        label = _labels_from_float(_read_all(raw / "node-label.csv.gz", 1, float),
                                   str(raw / "node-label.csv.gz"))
    if label.shape[0] != num_nodes:
        raise GraphFormatError(f"{raw}: node labels have {label.shape[0]} entries, expected "
                               f"{num_nodes}")
    np.save(out / "label.npy", label)
    split_root = root / "split"
    schemes = sorted(p.name for p in split_root.iterdir() if p.is_dir()) if split_root.is_dir() \
        else []
    if not schemes:
        raise GraphFormatError(f"{split_root}: no split folder "
                               "(expected split/<name>/train.csv.gz)")
    scheme = split or schemes[0]
    if scheme not in schemes:
        raise GraphFormatError(f"{split_root}: split {scheme!r} not found; have {schemes}")
    splits = {}
    for name, file in (("train", "train"), ("val", "valid"), ("test", "test")):
        splits[name] = _read_all(split_root / scheme / f"{file}.csv.gz", 1, np.int64)[:, 0]
    _write_splits(out, splits, num_nodes, str(split_root / scheme))
    num_edges, _ = build_csr(out, num_nodes, edge_chunks, symmetric=add_reverse, dedupe=True,
                             drop_self_loops=False, source=edge_source, progress=progress)
    num_classes = int(label.max()) + 1 if label.size else 0
    write_meta(out, num_nodes=num_nodes, num_edges=num_edges,
               feat_dim=int(np.load(out / "feat.npy", mmap_mode="r").shape[1]),
               feat_dtype=feat_dtype, num_classes=num_classes, name=root.name,
               source={"kind": "ogb", "root": str(root), "split": scheme,
                       "add_reverse": add_reverse})
    load_graph(out)  # validate the result once, now, not in the middle of training
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
    """Convert a plain npz (edge_index or CSR, feat, label, splits) into a graph folder."""
    path, out = Path(path), Path(out)
    if not path.is_file():
        raise GraphFormatError(f"{path}: missing")
    data = np.load(path, allow_pickle=False)
    out.mkdir(parents=True, exist_ok=True)
    feat, feat_dtype = _feat_storage(np.asarray(_npz_key(data, path, "feat", "x", "node_feat")),
                                     f"{path}:feat")
    if feat.ndim != 2:
        raise GraphFormatError(f"{path}: feat must be 2-D, got shape {feat.shape}")
    num_nodes = int(feat.shape[0])
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
    if "edge_index" in data:
        edge_index = np.asarray(data["edge_index"]).astype(np.int64, copy=False)
        if edge_index.ndim != 2 or edge_index.shape[0] != 2:
            raise GraphFormatError(f"{path}: edge_index must have shape [2, E], got "
                                   f"{edge_index.shape}")
        num_edges, _ = build_csr(out, num_nodes, lambda: iter([(edge_index[0], edge_index[1])]),
                                 symmetric=symmetric, dedupe=False, drop_self_loops=False,
                                 source=f"{path}:edge_index", progress=progress)
    elif "indptr" in data and "indices" in data:
        indptr = np.asarray(data["indptr"])
        indices = np.asarray(data["indices"])
        if indptr.dtype.kind not in "iu" or indices.dtype.kind not in "iu":
            raise GraphFormatError(f"{path}: indptr/indices must be integer arrays, got "
                                   f"{indptr.dtype}/{indices.dtype}")
        if indptr.shape[0] != num_nodes + 1:
            raise GraphFormatError(f"{path}: indptr has {indptr.shape[0]} entries, expected "
                                   f"num_nodes + 1 = {num_nodes + 1}")
        np.save(out / "indptr.npy", indptr.astype(np.int64))
        np.save(out / "indices.npy", indices.astype(
            np.int64 if indices.dtype.itemsize > 4 else np.int32))
        num_edges = int(indices.shape[0])
    else:
        raise GraphFormatError(f"{path}: needs 'edge_index' or both 'indptr' and 'indices'")
    np.save(out / "feat.npy", feat)
    np.save(out / "label.npy", label)
    _write_splits(out, splits, num_nodes, str(path))
    write_meta(out, num_nodes=num_nodes, num_edges=num_edges, feat_dim=int(feat.shape[1]),
               feat_dtype=feat_dtype, num_classes=int(label.max(initial=-1)) + 1,
               name=path.stem, source={"kind": "npz", "path": str(path)})
    try:
        load_graph(out)
    except GraphFormatError as error:
        shutil.rmtree(out, ignore_errors=True)
        raise GraphFormatError(f"{path}: converted graph is invalid: {error}") from error
    return out

