"""The CSR graph folder: one ``.npy`` file per array so that large arrays are memory-mapped.

Layout of a graph folder::

    meta.json        {"format": "zerocopy-gcn-csr", "version": 1, "num_nodes", "num_edges",
                      "feat_dim", "feat_dtype", "num_classes", "name", ...}
    indptr.npy       int64 [num_nodes + 1]   row pointers; row v lists v's in-neighbours
    indices.npy      int32 | int64 [num_edges] neighbour (source) ids
    feat.npy         float32 | float16 [num_nodes, feat_dim]; bfloat16 is stored as uint16 bits
    label.npy        int64 [num_nodes]        -1 marks an unlabelled node
    train_idx.npy, val_idx.npy, test_idx.npy  int64 node ids of each split

Message passing reads row ``v`` as "the nodes ``v`` aggregates from", so a sampled block's
edges run ``indices[e] -> v``.  Undirected graphs store both directions.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from trilab.errors import UserError

if TYPE_CHECKING:  # torch is imported on first use: converting and checking graphs never need it
    import torch

FORMAT_NAME = "zerocopy-gcn-csr"
FORMAT_VERSION = 1
FEAT_DTYPES = {"float32": np.float32, "float16": np.float16, "bfloat16": np.uint16}
SPLITS = ("train", "val", "test")
_CHUNK = 1 << 24  # elements per validation chunk: bounded memory on huge memory-mapped arrays


class GraphFormatError(UserError, ValueError):
    """A graph folder or source file is malformed; the message names the file and the fault."""


class GraphWriteError(UserError, OSError):
    """A graph folder could not be written (full disk, read-only or forbidden folder)."""


# meta.json keys every graph folder records, with the type each must have
META_KEYS: dict[str, type] = {
    "num_nodes": int,
    "num_edges": int,
    "feat_dim": int,
    "feat_dtype": str,
    "num_classes": int,
}
# A class id far above the node count cannot be meant (no node could carry most classes), and
# the classifier's output layer is sized by it: one bad label must not ask for gigabytes.
MAX_CLASSES_FLOOR = 1 << 16


@dataclass
class CSRGraph:
    """A graph in CSR form whose arrays are usually read-only memory maps of a graph folder."""

    indptr: np.ndarray
    indices: np.ndarray
    feat: np.ndarray
    label: np.ndarray
    splits: dict[str, np.ndarray]
    feat_dtype: str = "float32"
    num_classes: int = 0
    name: str = "graph"
    path: Path | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def num_nodes(self) -> int:
        return int(self.indptr.shape[0] - 1)

    @property
    def num_edges(self) -> int:
        return int(self.indices.shape[0])

    @property
    def feat_dim(self) -> int:
        return int(self.feat.shape[1])

    def degrees(self) -> np.ndarray:
        return np.diff(self.indptr)

    def feat_tensor(self) -> torch.Tensor:
        """The feature table as a CPU tensor sharing memory with the (mapped) array."""
        return numpy_to_tensor(self.feat, self.feat_dtype)

    def mask(self, split: str) -> np.ndarray:
        mask = np.zeros(self.num_nodes, dtype=bool)
        mask[self.splits[split]] = True
        return mask

    def validate(self, full: bool = True) -> None:
        validate_arrays(
            self.indptr,
            self.indices,
            self.feat,
            self.label,
            self.splits,
            self.feat_dtype,
            where=str(self.path or self.name),
            full=full,
        )


def numpy_to_tensor(array: np.ndarray, feat_dtype: str | None = None) -> torch.Tensor:
    """Wrap a (possibly read-only, memory-mapped) array as a tensor without copying.

    torch warns about read-only buffers because writes would fault; we never write through
    these tensors, and copying a table the size of host RAM is exactly what must not happen.
    """
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        tensor = torch.from_numpy(array)
    if feat_dtype == "bfloat16":
        tensor = tensor.view(torch.bfloat16)
    return tensor


def _fail(where: str, message: str) -> None:
    raise GraphFormatError(f"{where}: {message}")


def validate_arrays(
    indptr: np.ndarray,
    indices: np.ndarray,
    feat: np.ndarray,
    label: np.ndarray,
    splits: dict[str, np.ndarray],
    feat_dtype: str,
    where: str,
    full: bool = True,
) -> None:
    """Check shapes, dtypes and ranges; raise :class:`GraphFormatError` naming the fault.

    ``full`` scans the id arrays and the feature values (NaN/inf), chunked so that it works on
    memory maps larger than RAM; the cheap checks (shapes, dtypes, end points) always run.
    """
    if indptr.dtype != np.int64 or indptr.ndim != 1:
        _fail(
            f"{where}/indptr.npy",
            f"must be a 1-D int64 array, got {indptr.dtype} with shape {indptr.shape}",
        )
    if indptr.shape[0] < 1:
        _fail(f"{where}/indptr.npy", "is empty (needs num_nodes + 1 entries)")
    num_nodes = indptr.shape[0] - 1
    if indices.ndim != 1 or indices.dtype not in (np.int32, np.int64):
        _fail(
            f"{where}/indices.npy",
            f"must be a 1-D int32 or int64 array, got {indices.dtype} with shape {indices.shape}",
        )
    if int(indptr[0]) != 0:
        _fail(f"{where}/indptr.npy", f"indptr[0] must be 0, got {int(indptr[0])}")
    if int(indptr[-1]) != indices.shape[0]:
        _fail(
            f"{where}/indptr.npy",
            f"indptr[-1] = {int(indptr[-1])} but indices.npy has {indices.shape[0]} entries",
        )
    if feat_dtype not in FEAT_DTYPES:
        _fail(f"{where}/meta.json", f"feat_dtype {feat_dtype!r} is not one of {list(FEAT_DTYPES)}")
    if feat.ndim != 2 or feat.dtype != FEAT_DTYPES[feat_dtype]:
        _fail(
            f"{where}/feat.npy",
            f"must be a 2-D {feat_dtype} array (stored as "
            f"{np.dtype(FEAT_DTYPES[feat_dtype]).name}), got {feat.dtype} with shape "
            f"{feat.shape}",
        )
    if feat.shape[0] != num_nodes:
        _fail(
            f"{where}/feat.npy",
            f"has {feat.shape[0]} rows but the graph has {num_nodes} nodes (indptr.npy length - 1)",
        )
    if feat.shape[1] == 0:
        _fail(
            f"{where}/feat.npy",
            "has zero feature columns; a model needs at least one input "
            "feature per node (use a constant column if the graph has none)",
        )
    if label.ndim != 1 or label.dtype != np.int64:
        _fail(
            f"{where}/label.npy",
            f"must be a 1-D int64 array, got {label.dtype} with shape {label.shape}",
        )
    if label.shape[0] != num_nodes:
        _fail(
            f"{where}/label.npy",
            f"has {label.shape[0]} entries but the graph has {num_nodes} nodes",
        )
    for name, idx in splits.items():
        if idx.ndim != 1 or idx.dtype != np.int64:
            _fail(f"{where}/{name}_idx.npy", f"must be a 1-D int64 array, got {idx.dtype}")
        if idx.size and (int(idx.min()) < 0 or int(idx.max()) >= num_nodes):
            bad = idx[(idx < 0) | (idx >= num_nodes)][0]
            _fail(f"{where}/{name}_idx.npy", f"node id {int(bad)} is out of range [0, {num_nodes})")
        if idx.size and np.any(label[idx] < 0):
            _fail(
                f"{where}/{name}_idx.npy",
                f"contains unlabelled nodes (label -1), e.g. node {int(idx[label[idx] < 0][0])}",
            )
        repeated = first_repeat(idx)
        if repeated is not None:
            _fail(
                f"{where}/{name}_idx.npy",
                f"lists node {repeated} more than once; each node "
                f"belongs to the {name} split at most once",
            )
    if "train" in splits:
        refuse_empty_train_split(splits["train"], f"{where}/train_idx.npy")
    if not full:
        return
    previous = 0
    for start in range(0, num_nodes + 1, _CHUNK):
        chunk = np.asarray(indptr[start : start + _CHUNK + 1])
        steps = np.diff(chunk, prepend=previous) if start else np.diff(chunk)
        if steps.size and steps.min() < 0:
            pos = int(np.argmax(steps < 0)) + (start if start else 1)
            _fail(
                f"{where}/indptr.npy",
                f"is not non-decreasing: indptr[{pos}] = "
                f"{int(indptr[pos])} < indptr[{pos - 1}] = {int(indptr[pos - 1])}",
            )
        previous = int(chunk[-1])
    rows_per_chunk = max(1, _CHUNK // max(1, feat.shape[1]))
    for start in range(0, feat.shape[0], rows_per_chunk):
        check_feature_values(
            np.asarray(feat[start : start + rows_per_chunk]), feat_dtype, f"{where}/feat.npy", start
        )
    for start in range(0, indices.shape[0], _CHUNK):
        chunk = np.asarray(indices[start : start + _CHUNK])
        low, high = int(chunk.min()), int(chunk.max())
        if low < 0 or high >= num_nodes:
            pos = start + int(np.argmax((chunk < 0) | (chunk >= num_nodes)))
            _fail(
                f"{where}/indices.npy",
                f"node id {int(indices[pos])} at position {pos} is out of range [0, {num_nodes})",
            )


def refuse_empty_train_split(train_ids: np.ndarray, source: str) -> None:
    if train_ids.size == 0:
        _fail(source, "the train split is empty; training needs at least one labelled node in it")


def first_repeat(ids: np.ndarray) -> int | None:
    """An id that occurs more than once in ``ids`` (the smallest), or None."""
    if ids.size < 2:
        return None
    ordered = np.sort(ids)
    same = ordered[1:] == ordered[:-1]
    return int(ordered[1:][same][0]) if same.any() else None


def first_non_finite(block: np.ndarray, feat_dtype: str) -> tuple[int, int] | None:
    """(row, column) of the first NaN/inf in a block of feature rows, or None.

    bfloat16 is stored as uint16 bits: a value is non-finite when its exponent bits are all
    ones (0x7F80 under the mask), the bit-level meaning of NaN and infinity.
    """
    if feat_dtype == "bfloat16":
        bad = (np.asarray(block) & 0x7F80) == 0x7F80
    else:
        bad = ~np.isfinite(block)
    if not bad.any():
        return None
    flat = int(np.argmax(bad.reshape(-1)))
    width = block.shape[1] if block.ndim == 2 else 1
    return flat // width, flat % width


def check_feature_values(block: np.ndarray, feat_dtype: str, where: str, first_row: int) -> None:
    """Raise :class:`GraphFormatError` naming ``where`` and the first row holding NaN/inf."""
    found = first_non_finite(block, feat_dtype)
    if found is not None:
        row, column = found
        value = block[row, column] if block.ndim == 2 else block[row]
        if feat_dtype == "bfloat16":
            value = "NaN" if int(value) & 0x007F else "inf"
        _fail(
            where,
            f"row {first_row + row} holds a non-finite feature value ({value} at "
            f"column {column}); clean the features (e.g. replace NaN by 0) before training",
        )


def write_meta(folder: Path, **meta: Any) -> None:
    record = {"format": FORMAT_NAME, "version": FORMAT_VERSION, **meta}
    (folder / "meta.json").write_text(json.dumps(record, indent=2, sort_keys=True))


def save_graph(
    folder: str | Path,
    indptr: np.ndarray,
    indices: np.ndarray,
    feat: np.ndarray,
    label: np.ndarray,
    splits: dict[str, np.ndarray],
    feat_dtype: str = "float32",
    num_classes: int | None = None,
    name: str = "graph",
    **extra_meta: Any,
) -> Path:
    """Write in-memory arrays as a graph folder (validated first). For small and medium graphs;
    the streaming builders in :mod:`zerocopy_gcn.graph.build` write large ones piece by piece."""
    folder = Path(folder)
    validate_arrays(indptr, indices, feat, label, splits, feat_dtype, where=str(folder))
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / "indptr.npy", indptr)
    np.save(folder / "indices.npy", indices)
    np.save(folder / "feat.npy", feat)
    np.save(folder / "label.npy", label)
    for split in SPLITS:
        np.save(folder / f"{split}_idx.npy", splits.get(split, np.zeros(0, np.int64)))
    if num_classes is None:
        num_classes = int(label.max()) + 1 if label.size else 0
    write_meta(
        folder,
        num_nodes=int(indptr.shape[0] - 1),
        num_edges=int(indices.shape[0]),
        feat_dim=int(feat.shape[1]),
        feat_dtype=feat_dtype,
        num_classes=int(num_classes),
        name=name,
        **extra_meta,
    )
    return folder


def _npy_layout(path: Path) -> tuple[tuple[int, ...], np.dtype, int]:
    """(shape, dtype, bytes the header promises) of an ``.npy`` file, without reading data."""
    with open(path, "rb") as handle:
        version = np.lib.format.read_magic(handle)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(handle)
        elif version == (2, 0):
            shape, _, dtype = np.lib.format.read_array_header_2_0(handle)
        else:
            raise ValueError(f"unsupported .npy format version {version}")
        offset = handle.tell()
    count = 1
    for size in shape:
        count *= int(size)
    return tuple(shape), dtype, offset + count * dtype.itemsize


def _load_npy(path: Path, mmap: bool) -> np.ndarray:
    if not path.is_file():
        raise GraphFormatError(
            f"{path}: missing (a graph folder needs meta.json, indptr.npy, "
            "indices.npy, feat.npy, label.npy and the split files)"
        )
    try:
        shape, dtype, needed = _npy_layout(path)
    except (ValueError, EOFError, SyntaxError) as error:
        raise GraphFormatError(f"{path}: not a readable .npy file ({error})") from error
    # compared before reading: a damaged header must not size an allocation by itself
    if dtype.hasobject:
        raise GraphFormatError(f"{path}: holds an object array; graph arrays are numeric")
    held = path.stat().st_size
    if held < needed:
        raise GraphFormatError(
            f"{path}: truncated: its header declares shape {shape} "
            f"({needed:,} bytes) but the file holds {held:,} bytes"
        )
    try:
        return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except ValueError as error:
        raise GraphFormatError(f"{path}: not a readable .npy file ({error})") from error


def _read_meta(meta_path: Path) -> dict[str, Any]:
    try:
        meta = json.loads(meta_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise GraphFormatError(f"{meta_path}: not valid JSON ({error})") from error
    if not isinstance(meta, dict):
        raise GraphFormatError(
            f"{meta_path}: must hold a JSON object of graph properties, got a {type(meta).__name__}"
        )
    if meta.get("format") != FORMAT_NAME:
        raise GraphFormatError(f"{meta_path}: format {meta.get('format')!r} is not {FORMAT_NAME!r}")
    if meta.get("version") != FORMAT_VERSION:
        raise GraphFormatError(
            f"{meta_path}: version {meta.get('version')!r} is not supported "
            f"(expected {FORMAT_VERSION})"
        )
    for key, kind in META_KEYS.items():
        if key not in meta:
            raise GraphFormatError(f"{meta_path}: key {key!r} missing")
        value = meta[key]
        # bool is an int subclass, but true/false is never a count
        if not isinstance(value, kind) or isinstance(value, bool):
            raise GraphFormatError(
                f"{meta_path}: key {key!r} must be "
                f"{'an integer' if kind is int else 'a string'}, got "
                f"{json.dumps(value)}"
            )
        if kind is int and value < 0:
            raise GraphFormatError(f"{meta_path}: key {key!r} must not be negative, got {value}")
    if "name" in meta and not isinstance(meta["name"], str):
        raise GraphFormatError(
            f"{meta_path}: key 'name' must be a string, got {json.dumps(meta['name'])}"
        )
    return meta


def _check_meta_matches(meta: dict[str, Any], graph: CSRGraph, meta_path: Path) -> None:
    actual = {
        "num_nodes": graph.num_nodes,
        "num_edges": graph.num_edges,
        "feat_dim": int(graph.feat.shape[1]) if graph.feat.ndim == 2 else None,
    }
    files = {"num_nodes": "indptr.npy", "num_edges": "indices.npy", "feat_dim": "feat.npy"}
    for key, value in actual.items():
        if value is not None and meta[key] != value:
            raise GraphFormatError(
                f"{meta_path}: key {key!r} = {meta[key]} but {files[key]} holds {value}"
            )
    limit = max(graph.num_nodes, MAX_CLASSES_FLOOR)
    if meta["num_classes"] > limit:
        raise GraphFormatError(
            f"{meta_path}: key 'num_classes' = {meta['num_classes']} is "
            f"more than the graph's {graph.num_nodes} nodes (and "
            f"{MAX_CLASSES_FLOOR}) could need"
        )


def load_graph(folder: str | Path, mmap: bool = True, validate: str = "full") -> CSRGraph:
    """Open a graph folder; arrays are read-only memory maps unless ``mmap=False``.

    ``validate``: ``"full"`` (scan ids, chunked), ``"cheap"`` (shapes/dtypes/ends) or ``"none"``.
    """
    folder = Path(folder)
    meta_path = folder / "meta.json"
    if not meta_path.is_file():
        raise GraphFormatError(
            f"{meta_path}: missing; {folder} is not a graph folder "
            "(convert data with `python -m zerocopy_gcn.graph.convert`)"
        )
    meta = _read_meta(meta_path)
    feat_dtype = meta["feat_dtype"]
    graph = CSRGraph(
        indptr=_load_npy(folder / "indptr.npy", mmap),
        indices=_load_npy(folder / "indices.npy", mmap),
        feat=_load_npy(folder / "feat.npy", mmap),
        label=_load_npy(folder / "label.npy", mmap=False),
        splits={s: _load_npy(folder / f"{s}_idx.npy", mmap=False) for s in SPLITS},
        feat_dtype=feat_dtype,
        num_classes=meta["num_classes"],
        name=str(meta.get("name", folder.name)),
        path=folder,
        meta=meta,
    )
    if validate != "none":
        graph.validate(full=validate == "full")
    else:  # costs nothing, and "loss is nan" later says less
        refuse_empty_train_split(graph.splits["train"], str(folder / "train_idx.npy"))
    _check_meta_matches(meta, graph, meta_path)
    if graph.num_classes <= int(graph.label.max(initial=-1)):
        raise GraphFormatError(
            f"{meta_path}: num_classes = {graph.num_classes} but label.npy "
            f"holds class {int(graph.label.max())}"
        )
    return graph
