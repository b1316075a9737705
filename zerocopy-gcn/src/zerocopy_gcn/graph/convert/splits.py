"""Train/val/test splits, given as id lists or masks, checked and written as ``*_idx.npy``."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from zerocopy_gcn.graph.csr import GraphFormatError, first_repeat, refuse_empty_train_split


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


def write_splits(
    out: Path, splits: dict[str, tuple[np.ndarray, str, bool]], num_nodes: int
) -> None:
    """``splits``: name -> (ids or mask, the file or key it came from, named as a mask)."""
    for name, (values, source, mask_key) in splits.items():
        ids = _split_ids(name, values, num_nodes, source, mask_key)
        if name == "train":
            refuse_empty_train_split(ids, source)
        np.save(out / f"{name}_idx.npy", ids)
