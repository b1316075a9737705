"""Sizes a small input may not claim (decompression and size-claim bombs).

Conversion holds about ``BYTES_PER_NODE`` of per-node arrays (degree counts, row pointers,
cursors, labels) and maps 4-8 bytes per stored edge, so node and edge counts are bounded by the
input's size on disk: real data needs far more than half a byte per node and a quarter byte per
edge even compressed, and the floors keep every input below ~1 GB of working memory whatever it
claims.  Text inside a .gz may expand as much as an npz member may (trilab.safe_load's limits),
which bounds the time a gzip bomb can take.
"""

from __future__ import annotations

from zerocopy_gcn.graph.csr import GraphFormatError

BYTES_PER_NODE = 48
_MIN_NODE_LIMIT = 1 << 23
_NODES_PER_INPUT_BYTE = 2
_MIN_EDGE_LIMIT = 1 << 24
_EDGES_PER_INPUT_BYTE = 4


def node_limit(input_bytes: int) -> int:
    """The most nodes an input of ``input_bytes`` on disk may declare."""
    return max(_MIN_NODE_LIMIT, _NODES_PER_INPUT_BYTE * input_bytes)


def edge_limit(input_bytes: int) -> int:
    """The most edges an input of ``input_bytes`` on disk may hold."""
    return max(_MIN_EDGE_LIMIT, _EDGES_PER_INPUT_BYTE * input_bytes)


def check_node_count(num_nodes: int, source: str, input_bytes: int) -> None:
    limit = node_limit(input_bytes)
    if num_nodes > limit:
        raise GraphFormatError(
            f"{source}: declares {num_nodes:,} nodes but the input is only {input_bytes:,} bytes "
            f"on disk; converting that many nodes needs about "
            f"{num_nodes * BYTES_PER_NODE / 2**30:.1f} GiB, which data this small cannot hold "
            f"(refused above {limit:,} nodes)"
        )


def check_edge_count(num_edges: int, source: str, input_bytes: int) -> None:
    limit = edge_limit(input_bytes)
    if num_edges > limit:
        raise GraphFormatError(
            f"{source}: holds more than {limit:,} edges but the input is only {input_bytes:,} "
            "bytes on disk; refused as data that expands far beyond its size"
        )
