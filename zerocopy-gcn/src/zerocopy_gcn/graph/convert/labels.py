"""Node labels given as floats (OGB writes nan for unlabelled nodes) checked into class ids."""

from __future__ import annotations

import numpy as np

from zerocopy_gcn.graph.csr import MAX_CLASSES_FLOOR, GraphFormatError


def labels_from_float(values: np.ndarray, source: str, num_nodes: int) -> np.ndarray:
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
