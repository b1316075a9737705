"""Convert an OGB node-property dataset folder, exactly as ``ogb`` downloads it, e.g.
``ogbn_products/``::

    raw/edge.csv.gz          "src,dst" per line, no header (or raw/data.npz: edge_index,
    raw/node-feat.csv.gz      node_feat, num_nodes_list, as OGB writes large datasets)
    raw/node-label.csv.gz    one label per line, "nan" for unlabelled (or raw/node-label.npz)
    raw/num-node-list.csv.gz
    split/<scheme>/train.csv.gz, valid.csv.gz, test.csv.gz   one node id per line

Edges are streamed through :func:`zerocopy_gcn.graph.build.build_csr` (CSV files are read
twice rather than held in memory).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from zerocopy_gcn.graph.build import build_csr
from zerocopy_gcn.graph.convert.csv_text import read_all, read_blocks
from zerocopy_gcn.graph.convert.limits import edge_limit
from zerocopy_gcn.graph.convert.ogb_files import (
    convert_ogb_binary,
    convert_ogb_csv_features,
    convert_ogb_labels,
)
from zerocopy_gcn.graph.convert.splits import write_splits
from zerocopy_gcn.graph.convert.staging import staged_output
from zerocopy_gcn.graph.csr import GraphFormatError, load_graph, write_meta


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
            num_nodes, edge_chunks, edge_source, feat_dtype = convert_ogb_binary(
                raw, work, progress
            )
        else:
            edge_path = raw / "edge.csv.gz"
            if not edge_path.is_file():
                raise GraphFormatError(f"{edge_path}: missing (or provide raw/data.npz)")
            num_nodes, feat_dtype = convert_ogb_csv_features(raw, work, progress)
            most_edges = edge_limit(edge_path.stat().st_size)

            def edge_chunks():
                for block in read_blocks(
                    edge_path,
                    2,
                    np.int64,
                    max_rows=most_edges,
                    what="edges a file this size can hold",
                ):
                    yield block[:, 0], block[:, 1]

            edge_source = str(edge_path)
        num_classes = convert_ogb_labels(raw, work, num_nodes)
        splits = {}
        for name, file in (("train", "train"), ("val", "valid"), ("test", "test")):
            split_path = split_root / scheme / f"{file}.csv.gz"
            ids = read_all(
                split_path,
                1,
                np.int64,
                max_rows=num_nodes,
                what="entries of a split (one per node at most)",
            )[:, 0]
            splits[name] = (ids, str(split_path), False)
        write_splits(work, splits, num_nodes)
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
