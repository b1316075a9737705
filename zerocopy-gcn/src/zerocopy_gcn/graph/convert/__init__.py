"""Converters from the formats users have into a graph folder, one module per job.

``csv_text`` (numeric CSV parsing), ``limits`` (the sizes an input may claim), ``labels`` and
``splits`` (per-node targets and split files), ``features`` (streamed ``feat.npy``),
``staging`` (the folder appears only when complete), ``ogb_files`` and ``ogb`` (an OGB
node-property folder), ``npz`` (a plain .npz) and ``cli`` (``python -m
zerocopy_gcn.graph.convert``).
"""

from zerocopy_gcn.graph.convert.cli import main
from zerocopy_gcn.graph.convert.npz import convert_npz
from zerocopy_gcn.graph.convert.ogb import convert_ogb_node_folder
from zerocopy_gcn.graph.convert.staging import staged_output

__all__ = ["convert_npz", "convert_ogb_node_folder", "main", "staged_output"]
