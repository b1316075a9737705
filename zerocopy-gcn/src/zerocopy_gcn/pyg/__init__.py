"""zerocopy-gcn behind PyTorch Geometric's remote-backend interfaces.

``FolderFeatureStore`` (a ``torch_geometric.data.FeatureStore``: the folder's feature table and
labels, fetched the way ``train.py``'s ``fetch=`` fetches), ``FolderGraphStore`` (a
``GraphStore``: the folder's CSR of in-neighbours, served as CSC without a copy) and
``FolderNeighborSampler`` (a ``torch_geometric.sampler.BaseSampler`` running the project's
sampler under its ``(seed, epoch, step)`` rule), for ``NodeLoader(data=(feature_store,
graph_store), node_sampler=sampler, input_nodes=...)``.  See ``examples/pyg_sage.py``.
"""

from zerocopy_gcn.pyg.feature_store import FolderFeatureStore
from zerocopy_gcn.pyg.graph_store import FolderGraphStore
from zerocopy_gcn.pyg.sampler import FolderNeighborSampler

__all__ = ["FolderFeatureStore", "FolderGraphStore", "FolderNeighborSampler"]
