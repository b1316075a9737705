"""Graph storage (CSR folders), converters from user formats, and the R-MAT generator."""

from zerocopy_gcn.graph.convert import convert_npz, convert_ogb_node_folder
from zerocopy_gcn.graph.csr import CSRGraph, GraphFormatError, load_graph, save_graph
from zerocopy_gcn.graph.rmat import PRESETS, RMatSpec, ensure_rmat, generate_rmat, preset_spec

__all__ = [
    "CSRGraph",
    "GraphFormatError",
    "PRESETS",
    "RMatSpec",
    "convert_npz",
    "convert_ogb_node_folder",
    "ensure_rmat",
    "generate_rmat",
    "load_graph",
    "preset_spec",
    "save_graph",
]
