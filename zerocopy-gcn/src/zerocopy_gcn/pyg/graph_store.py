"""A PyG ``GraphStore`` over a graph folder's CSR.

The folder stores, for each node, the ids of its in-neighbours (``indptr`` indexed by the
destination, ``indices`` holding sources): in PyG's terms the edges ``source -> destination``
compressed by column, i.e. CSC ``(row=indices, colptr=indptr)``.  That layout is served as the
memory-mapped arrays themselves; COO and CSR are built on request (COO expands ``indptr``, CSR
sorts by source), and :meth:`put_edge_index` may keep such a copy in memory.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch_geometric.data import GraphStore
from torch_geometric.data.graph_store import EdgeAttr, EdgeLayout
from torch_geometric.index import index2ptr, ptr2index
from torch_geometric.utils import index_sort

from zerocopy_gcn.graph.csr import CSRGraph, numpy_to_tensor
from zerocopy_gcn.pyg.folder import open_folder

EdgeTensors = tuple[torch.Tensor, torch.Tensor]


class FolderGraphStore(GraphStore):
    """``FolderGraphStore("data/products")``: the folder's edges, one homogeneous edge type
    (``edge_type=None``), size ``(num_nodes, num_nodes)``."""

    def __init__(self, folder: str | Path | CSRGraph, validate: str = "cheap") -> None:
        super().__init__()
        self.graph = open_folder(folder, validate)
        num_nodes = self.graph.num_nodes
        self.size = (num_nodes, num_nodes)
        self.stored_attr = EdgeAttr(None, EdgeLayout.CSC, is_sorted=True, size=self.size)
        # zero-copy views of the memory maps; int32 indices stay int32 (PyG takes either)
        self._csc: EdgeTensors = (
            numpy_to_tensor(self.graph.indices),
            numpy_to_tensor(self.graph.indptr),
        )
        self._memory: dict[tuple, EdgeTensors] = {}

    @property
    def num_nodes(self) -> int:
        return self.graph.num_nodes

    @staticmethod
    def _key(attr: EdgeAttr) -> tuple:
        return (attr.edge_type, EdgeLayout(attr.layout).value)

    def _put_edge_index(self, edge_index: EdgeTensors, edge_attr: EdgeAttr) -> bool:
        self._memory[self._key(edge_attr)] = edge_index
        return True

    def _get_edge_index(self, edge_attr: EdgeAttr) -> EdgeTensors | None:
        if self._key(edge_attr) in self._memory:
            return self._memory[self._key(edge_attr)]
        if edge_attr.edge_type is not None:
            return None  # GraphStore.get_edge_index raises KeyError naming the attribute
        layout = EdgeLayout(edge_attr.layout)
        row, colptr = self._csc
        if layout == EdgeLayout.CSC:
            return row, colptr
        col = ptr2index(colptr.long(), output_size=row.numel())
        if layout == EdgeLayout.COO:
            return row, col
        by_source, perm = index_sort(row.long(), max_value=self.num_nodes)
        return index2ptr(by_source, self.num_nodes), col[perm]

    def _remove_edge_index(self, edge_attr: EdgeAttr) -> bool:
        return self._memory.pop(self._key(edge_attr), None) is not None

    def get_all_edge_attrs(self) -> list[EdgeAttr]:
        stored = [self.stored_attr]
        for edge_type, layout in self._memory:
            if (edge_type, layout) != self._key(self.stored_attr):
                stored.append(EdgeAttr(edge_type, layout, size=self.size))
        return stored

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.graph.path}, {self.graph.num_edges} edges)"
