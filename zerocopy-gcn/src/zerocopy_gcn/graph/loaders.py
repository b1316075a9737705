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

import errno
import gzip
import os
import shutil
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from trilab.errors import UserError
from trilab.safe_load import MAX_EXPANSION, MIN_MEMBER_LIMIT
from zerocopy_gcn.graph.build import build_csr
from zerocopy_gcn.graph.csr import (
    FEAT_DTYPES,
    MAX_CLASSES_FLOOR,
    SPLITS,
    GraphFormatError,
    GraphWriteError,
    check_feature_values,
    first_repeat,
    load_graph,
    refuse_empty_train_split,
    write_meta,
)
from zerocopy_gcn.graph.npz_stream import NpyWriter, NpzArrays

_TEXT_BLOCK_CHARS = 1 << 24  # characters of CSV text parsed at a time
_READ_CHARS = 1 << 16  # gzip allocates a buffer of the size asked for, so ask in small pieces
_BLOCK_BYTES = 1 << 26  # feature bytes per streamed block (64 MB)
_EDGES_PER_BLOCK = 1 << 21  # edges per streamed block of a binary edge_index

# Sizes a small input may not claim.  Conversion holds about _BYTES_PER_NODE of per-node arrays
# (degree counts, row pointers, cursors, labels) and maps 4-8 bytes per stored edge, so node and
# edge counts are bounded by the input's size on disk: real data needs far more than half a
# byte per node and a quarter byte per edge even compressed, and the floors keep every input
# below ~1 GB of working memory whatever it claims.  Text inside a .gz may expand as much as an
# npz member may (trilab.safe_load's limits), which bounds the time a gzip bomb can take.
_BYTES_PER_NODE = 48
_MIN_NODE_LIMIT = 1 << 23
_NODES_PER_INPUT_BYTE = 2
_MIN_EDGE_LIMIT = 1 << 24
_EDGES_PER_INPUT_BYTE = 4
_INT64_ENDS = (np.iinfo(np.int64).min, np.iinfo(np.int64).max)


def _node_limit(input_bytes: int) -> int:
    return max(_MIN_NODE_LIMIT, _NODES_PER_INPUT_BYTE * input_bytes)


def _check_node_count(num_nodes: int, source: str, input_bytes: int) -> None:
    limit = _node_limit(input_bytes)
    if num_nodes > limit:
        raise GraphFormatError(
            f"{source}: declares {num_nodes:,} nodes but the input is only {input_bytes:,} bytes "
            f"on disk; converting that many nodes needs about "
            f"{num_nodes * _BYTES_PER_NODE / 2**30:.1f} GiB, which data this small cannot hold "
            f"(refused above {limit:,} nodes)"
        )


def _check_edge_count(num_edges: int, source: str, input_bytes: int) -> None:
    limit = max(_MIN_EDGE_LIMIT, _EDGES_PER_INPUT_BYTE * input_bytes)
    if num_edges > limit:
        raise GraphFormatError(
            f"{source}: holds more than {limit:,} edges but the input is only {input_bytes:,} "
            "bytes on disk; refused as data that expands far beyond its size"
        )


def _open_text(path: Path):
    # undecodable bytes become U+FFFD, which the number parser then reports with its line
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8", errors="replace")
    return open(path, encoding="utf-8", errors="replace")  # noqa: SIM115 - caller closes


def _unreadable(path: Path, error: BaseException) -> GraphFormatError:
    if isinstance(error, gzip.BadGzipFile) and "not a gzipped" in str(error).lower():
        reason = "not gzip-compressed although it is named .gz (compress it or drop the .gz)"
    elif isinstance(error, EOFError):
        reason = "truncated: the compressed stream ends early (download or copy it again)"
    else:
        reason = f"damaged ({error})"
    return GraphFormatError(f"{path}: unreadable: {reason}")


def _show(text: str) -> str:
    text = text.rstrip("\r\n")
    return repr(text if len(text) <= 60 else text[:57] + "...")


def _parse_failure(
    path: Path, lines: list[str], width: int, integral: bool, first_line: int
) -> GraphFormatError:
    """The first line of a block that does not hold ``width`` numbers (ids: integers)."""
    for offset, line in enumerate(lines):
        number = first_line + offset + 1
        fields = line.strip().split(",")
        if len(fields) != width:
            return GraphFormatError(
                f"{path}: line {number} holds {len(fields)} comma-separated "
                f"values, expected {width}: {_show(line)}"
            )
        for field in fields:
            try:
                value = float(field)
            except ValueError:
                hint = " (a header row? these files have none)" if number == 1 else ""
                return GraphFormatError(
                    f"{path}: line {number}: {_show(field)} is not a number{hint}"
                )
            if integral and not (np.isfinite(value) and value.is_integer()):
                return GraphFormatError(
                    f"{path}: line {number}: {_show(field)} is not an "
                    "integer (node ids are whole numbers)"
                )
            if integral and not _INT64_ENDS[0] < int(value) < _INT64_ENDS[1]:
                return GraphFormatError(
                    f"{path}: line {number}: {_show(field)} does not fit a 64-bit integer"
                )
    return GraphFormatError(
        f"{path}: lines {first_line + 1}..{first_line + len(lines)} do not "
        f"all hold {width} comma-separated numbers"
    )


def _parse_lines(
    path: Path, block: str, rows: int, width: int, integral: bool, first_line: int
) -> np.ndarray:
    """``rows`` whole lines of ``width`` numbers each; lines are split only to name an error."""
    text = block.replace(",", " ")
    count = width * rows
    try:
        values = np.fromstring(text, dtype=np.int64 if integral else np.float64, sep=" ")
    except ValueError:
        values = None
    # np.fromstring saturates ids that overflow int64 instead of failing
    if (
        values is not None
        and values.size == count
        and not (
            integral
            and values.size
            and (values.min() == _INT64_ENDS[0] or values.max() == _INT64_ENDS[1])
        )
    ):
        return values.reshape(rows, width)
    if integral:  # ids written by a float column ("3.0") are still ids
        try:
            values = np.fromstring(text, dtype=np.float64, sep=" ")
        except ValueError:
            values = None
        if (
            values is not None
            and values.size == count
            and np.isfinite(values).all()
            and np.all(values == np.round(values))
            and np.all(np.abs(values) < 2.0**53)
        ):
            return values.astype(np.int64).reshape(rows, width)
    raise _parse_failure(path, block.splitlines(), width, integral, first_line)


def _read_text(handle, size: int) -> str:
    parts, have = [], 0
    while have < size:
        part = handle.read(_READ_CHARS)
        if not part:
            break
        parts.append(part)
        have += len(part)
    return "".join(parts)


def _read_blocks(
    path: Path, columns: int | None, dtype, max_rows: int | None = None, what: str = "rows"
) -> Iterator[np.ndarray]:
    """Numeric rows of a (gzipped) CSV file, a block of lines at a time.

    ``dtype`` float reads numbers, anything else reads integers (non-integral values are
    refused, never truncated).  More than ``max_rows`` lines is an error raised as soon as it
    is seen, so an oversized file is not read to its end first.
    """
    integral = dtype is not float
    text_limit = (
        max(MIN_MEMBER_LIMIT, MAX_EXPANSION * path.stat().st_size) if path.suffix == ".gz" else None
    )
    line_number = text_chars = 0
    carry = ""
    try:
        with _open_text(path) as handle:
            while True:
                # one string per block, not one per line: short lines ("0\n") as Python
                # strings would cost ~25x their size
                chunk = _read_text(handle, _TEXT_BLOCK_CHARS)
                text_chars += len(chunk)
                if text_limit is not None and text_chars > text_limit:
                    raise GraphFormatError(
                        f"{path}: decompresses to more than {text_limit:,} characters from "
                        f"{path.stat().st_size:,} bytes ({MAX_EXPANSION}x); refused as a "
                        "decompression bomb"
                    )
                if chunk:
                    cut = chunk.rfind("\n") + 1
                    block, carry = (
                        (carry + chunk[:cut], chunk[cut:]) if cut else ("", carry + chunk)
                    )
                else:
                    block, carry = carry, ""  # a last line without its newline
                if not block:
                    if not chunk:
                        return
                    continue
                rows = block.count("\n") + (not block.endswith("\n"))
                first = block[: block.find("\n")] if "\n" in block else block
                width = columns if columns is not None else first.count(",") + 1
                values = _parse_lines(path, block, rows, width, integral, line_number)
                del block
                line_number += rows
                if max_rows is not None and line_number > max_rows:
                    raise GraphFormatError(
                        f"{path}: holds more than {max_rows:,} lines, the most {what} it can have"
                    )
                yield values
    except (OSError, EOFError, zlib.error) as error:
        raise _unreadable(path, error) from error


def _read_all(
    path: Path, columns: int | None, dtype, max_rows: int | None = None, what: str = "rows"
) -> np.ndarray:
    if not path.is_file():
        raise GraphFormatError(f"{path}: missing")
    blocks = list(_read_blocks(path, columns, dtype, max_rows, what))
    width = columns or (blocks[0].shape[1] if blocks else 1)
    return np.concatenate(blocks) if blocks else np.zeros((0, width), dtype)


def _labels_from_float(values: np.ndarray, source: str, num_nodes: int) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    label = np.full(values.shape[0], -1, dtype=np.int64)
    known = ~np.isnan(values)
    bad = known & ((values < 0) | (values != np.round(values)) | ~np.isfinite(values))
    if bad.any():
        row = int(np.argmax(bad))
        raise GraphFormatError(
            f"{source}: labels must be non-negative integers (or nan); "
            f"entry {row} is {values[row].item()!r}"
        )
    limit = max(num_nodes, MAX_CLASSES_FLOOR)
    too_big = known & (values >= limit)
    if too_big.any():
        row = int(np.argmax(too_big))
        raise GraphFormatError(
            f"{source}: entry {row} is class {values[row]:.0f}, more classes "
            f"than {num_nodes:,} nodes (and {MAX_CLASSES_FLOOR}) can need"
        )
    label[known] = values[known].astype(np.int64)
    return label


def _split_ids(
    name: str, values: np.ndarray, num_nodes: int, source: str, mask_key: bool = False
) -> np.ndarray:
    """Node ids of a split given as ids or as a mask; refuses what would train on garbage."""
    values = np.asarray(values)
    if values.ndim == 2 and values.shape[1] == 1:
        values = values[:, 0]
    if values.ndim != 1:
        raise GraphFormatError(f"{source}: the {name} split must be 1-D, got shape {values.shape}")
    if values.dtype == bool:
        if values.shape[0] != num_nodes:
            raise GraphFormatError(
                f"{source}: the {name} mask has {values.shape[0]} entries, "
                f"expected one per node ({num_nodes})"
            )
        return np.flatnonzero(values)
    if values.dtype.kind not in "iuf":
        raise GraphFormatError(
            f"{source}: the {name} split must hold integer node ids or a "
            f"boolean mask, got {values.dtype}"
        )
    if values.dtype.kind == "f":
        bad = ~np.isfinite(values) | (values != np.round(values))
        if bad.any():
            raise GraphFormatError(
                f"{source}: the {name} split holds "
                f"{values[bad][0].item()!r}, not an integer node id"
            )
    # A 0/1 column as long as the graph is a mask saved as uint8/int (torch's .int(), PyG and
    # CSV exports), never an id list: read as ids it would put nodes 0 and 1 in the split over
    # and over, which no split can mean.  So it is taken as the mask it is.  Only a list that
    # could be a real id list (no repeats: [0, 1] on a two-node graph) stays ids, unless its
    # key says it is a mask.
    if (
        values.shape[0] == num_nodes
        and values.size
        and values.min() >= 0
        and values.max() <= 1
        and (mask_key or first_repeat(values) is not None)
    ):
        return np.flatnonzero(values)
    if mask_key:
        raise GraphFormatError(
            f"{source}: {name}_mask must be a boolean or 0/1 array with one "
            f"entry per node ({num_nodes}), got {values.shape[0]} entries "
            f"of {values.dtype}"
        )
    ids = values.astype(np.int64)
    outside = (ids < 0) | (ids >= num_nodes)
    if outside.any():
        raise GraphFormatError(
            f"{source}: the {name} split holds node id "
            f"{values[outside][0].item()!r}, out of range [0, {num_nodes})"
        )
    repeated = first_repeat(ids)
    if repeated is not None:
        raise GraphFormatError(f"{source}: the {name} split lists node {repeated} more than once")
    return ids


def _write_splits(
    out: Path, splits: dict[str, tuple[np.ndarray, str, bool]], num_nodes: int
) -> None:
    """``splits``: name -> (ids or mask, the file or key it came from, named as a mask)."""
    for name, (values, source, mask_key) in splits.items():
        ids = _split_ids(name, values, num_nodes, source, mask_key)
        if name == "train":
            refuse_empty_train_split(ids, source)
        np.save(out / f"{name}_idx.npy", ids)


# errors of writing that the user fixes (space, quota, permissions), not bugs
_WRITE_ERRNOS = {
    errno.ENOSPC,
    errno.EDQUOT,
    errno.EACCES,
    errno.EPERM,
    errno.EROFS,
    errno.EFBIG,
    errno.ENOTDIR,
    errno.EEXIST,
}


def _write_error(out: Path, partial: Path, error: OSError) -> UserError:
    reason = error.strerror or str(error)
    filename = str(error.filename) if error.filename else None
    if filename and not filename.startswith(str(partial)) and not str(out).startswith(filename):
        return GraphWriteError(f"{filename}: {reason}")  # an input, not the output
    return GraphWriteError(
        f"{out}: cannot write the graph folder: {reason}; nothing was kept "
        "(free space or choose a writable folder)"
    )


@contextmanager
def staged_output(out: Path) -> Iterator[Path]:
    """Build a graph folder under a hidden sibling name and move it to ``out`` only when it is
    complete, so that a failed conversion (bad input, full disk, Ctrl-C) leaves no half-written
    folder behind that a later run could mistake for a graph.  Write failures the user can fix
    (full disk, read-only folder) become one-line :class:`GraphWriteError` messages."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise GraphFormatError(
            f"{out}: already exists and is not empty; remove it or choose another output folder"
        )
    partial = out.parent / f".{out.name}.partial-{os.getpid()}"
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir()
    except OSError as error:
        if error.errno not in _WRITE_ERRNOS:
            raise
        raise _write_error(out, partial, error) from error
    try:
        yield partial
        if out.exists():
            out.rmdir()  # empty (checked above)
        partial.rename(out)
    except UserError:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    except OSError as error:
        shutil.rmtree(partial, ignore_errors=True)
        if error.errno not in _WRITE_ERRNOS:
            raise
        raise _write_error(out, partial, error) from error
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise


def _rows_per_block(row_bytes: int) -> int:
    return max(1, _BLOCK_BYTES // max(1, row_bytes))


def _stream_features(
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
        if feat_shape[1] == 0:
            raise GraphFormatError(
                f"{path}:node_feat has zero columns; a model needs at least "
                "one input feature per node"
            )
        _check_node_count(num_nodes, f"{path}:node_feat", path.stat().st_size)
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
        _check_edge_count(int(shape[1]), f"{path}:edge_index", path.stat().st_size)
        feat_dtype = _stream_features(
            data.row_blocks("node_feat", _rows_per_block(feat_shape[1] * feat_type.itemsize)),
            out,
            num_nodes,
            feat_shape[1],
            feat_type,
            f"{path}:node_feat",
            progress,
        )

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
    count_path = raw / "num-node-list.csv.gz"
    listed = None
    if count_path.is_file():
        counts = _read_all(
            count_path,
            1,
            np.int64,
            max_rows=1,
            what="entries for a node-property dataset (one graph)",
        )
        listed = int(counts[0, 0]) if counts.size else None
    # the rows are the nodes: stop reading as soon as there are more than the data can hold
    limit = _node_limit(feat_path.stat().st_size)
    width, rows = None, 0
    with open(out / "feat.raw", "wb") as packed:
        for block in tqdm(
            _read_blocks(feat_path, None, float, max_rows=limit, what="nodes"),
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
        step = _rows_per_block(width * 4)
        for start in range(0, rows, step):
            writer.write(source[start : start + step])
    del source
    (out / "feat.raw").unlink()
    if listed is not None and listed != rows:
        raise GraphFormatError(
            f"{feat_path}: has {rows} rows but num-node-list.csv.gz says {listed} nodes"
        )
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
                    raise GraphFormatError(
                        f"{path}:node_label has {shape[0]} entries, expected {num_nodes}"
                    )
                for first, block in labels.row_blocks("node_label", 1 << 22):
                    label = _labels_from_float(
                        block, f"{path}:node_label (rows {first}..)", num_nodes
                    )
                    classes = max(classes, int(label.max(initial=-1)) + 1)
                    writer.write(label)
        else:
            path = raw / "node-label.csv.gz"
            label = _labels_from_float(
                _read_all(path, 1, float, max_rows=num_nodes, what="labels (one per node)"),
                str(path),
                num_nodes,
            )
            if label.shape[0] != num_nodes:
                raise GraphFormatError(f"{path}: has {label.shape[0]} labels, expected {num_nodes}")
            classes = int(label.max(initial=-1)) + 1
            writer.write(label)
    return classes


def convert_ogb_node_folder(
    root: str | Path,
    out: str | Path,
    split: str | None = None,
    add_reverse: bool = True,
    progress: bool = True,
) -> Path:
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
    schemes = (
        sorted(p.name for p in split_root.iterdir() if p.is_dir()) if split_root.is_dir() else []
    )
    if not schemes:
        raise GraphFormatError(
            f"{split_root}: no split folder (expected split/<name>/train.csv.gz)"
        )
    scheme = split or schemes[0]
    if scheme not in schemes:
        raise GraphFormatError(f"{split_root}: split {scheme!r} not found; have {schemes}")
    with staged_output(out) as work:
        if (raw / "data.npz").is_file():
            num_nodes, edge_chunks, edge_source, feat_dtype = _convert_ogb_binary(
                raw, work, progress
            )
        else:
            edge_path = raw / "edge.csv.gz"
            if not edge_path.is_file():
                raise GraphFormatError(f"{edge_path}: missing (or provide raw/data.npz)")
            num_nodes, feat_dtype = _convert_ogb_csv_features(raw, work, progress)
            edge_limit = max(_MIN_EDGE_LIMIT, _EDGES_PER_INPUT_BYTE * edge_path.stat().st_size)

            def edge_chunks():
                for block in _read_blocks(
                    edge_path,
                    2,
                    np.int64,
                    max_rows=edge_limit,
                    what="edges a file this size can hold",
                ):
                    yield block[:, 0], block[:, 1]

            edge_source = str(edge_path)
        num_classes = _convert_ogb_labels(raw, work, num_nodes)
        splits = {}
        for name, file in (("train", "train"), ("val", "valid"), ("test", "test")):
            split_path = split_root / scheme / f"{file}.csv.gz"
            ids = _read_all(
                split_path,
                1,
                np.int64,
                max_rows=num_nodes,
                what="entries of a split (one per node at most)",
            )[:, 0]
            splits[name] = (ids, str(split_path), False)
        _write_splits(work, splits, num_nodes)
        num_edges, _ = build_csr(
            work,
            num_nodes,
            edge_chunks,
            symmetric=add_reverse,
            dedupe=True,
            drop_self_loops=False,
            source=edge_source,
            progress=progress,
        )
        width = int(np.load(work / "feat.npy", mmap_mode="r").shape[1])
        write_meta(
            work,
            num_nodes=num_nodes,
            num_edges=num_edges,
            feat_dim=width,
            feat_dtype=feat_dtype,
            num_classes=num_classes,
            name=root.name,
            source={"kind": "ogb", "root": str(root), "split": scheme, "add_reverse": add_reverse},
        )
        # ids were range-checked while building and features while copying: the cheap checks
        # (shapes, dtypes, ends, splits) complete the validation without a second full pass
        try:
            load_graph(work, validate="cheap")
        except GraphFormatError as error:
            message = str(error).replace(str(work), str(out))
            raise GraphFormatError(f"{root}: converted graph is invalid: {message}") from error
    return out


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
        _check_node_count(num_nodes, feat_where, disk)
        label_key = _npz_member(data, "label", "y")
        label_values = _small_member(data, label_key, num_nodes, "nodes (feat rows)")
        if label_values.size != num_nodes:
            raise GraphFormatError(
                f"{data.where(label_key)}: has {label_values.size} entries "
                f"but feat has {num_nodes} rows"
            )
        label = _labels_from_float(label_values, data.where(label_key), num_nodes)
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
            feat_dtype = _stream_features(
                data.row_blocks(feat_key, _rows_per_block(width * feat_type.itemsize)),
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
                _check_edge_count(int(shape[1]), where, disk)

                def edge_chunks():
                    first = 0
                    with NpzArrays(path) as edges:
                        for src, dst in edges.edge_blocks("edge_index", _EDGES_PER_BLOCK):
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
                _check_edge_count(num_edges, data.where("indices"), disk)
                np.save(work / "indptr.npy", data.read("indptr").astype(np.int64))
                wide = indices_type.itemsize > 4 or indices_type == np.uint32
                with NpyWriter(
                    work / "indices.npy", np.int64 if wide else np.int32, (num_edges,)
                ) as writer:
                    for _, block in data.row_blocks("indices", _EDGES_PER_BLOCK):
                        writer.write(block)
            else:
                raise GraphFormatError(f"{path}: needs 'edge_index' or both 'indptr' and 'indices'")
            np.save(work / "label.npy", label)
            _write_splits(work, splits, num_nodes)
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
