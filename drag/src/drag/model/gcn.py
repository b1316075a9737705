"""Per-image attention adjacency and the two dense GCN layers over the K region nodes.

Both follow the authors' computation as stated in ``shared/papers/drag.md``; the GCN layers are
PyTorch Geometric's own ``DenseGCNConv`` (the layer the authors used), not a re-write of it.
"""

from __future__ import annotations

import math
import warnings

import torch
import torch.nn.functional as F
from torch import nn

with warnings.catch_warnings():
    # PyG scripts a few helpers with torch.jit.script at import, deprecated in this torch
    warnings.simplefilter("ignore", FutureWarning)
    from torch_geometric.nn import DenseGCNConv


class AttentionAdjacency(nn.Module):
    """The dynamic adjacency of one image's K nodes (B x K x D -> B x K x K).

    q, k = Linear(D, d) of the nodes, v = Linear(D, K) (every node -> K numbers);
    P = dropout(softmax(q k^T / sqrt(d))); Y = P v; A = Linear(K, K)(Y^T) with bias.
    Nothing squashes A afterwards, so entries may be negative: DenseGCNConv's degree clamp
    is what keeps the normalisation defined, as in the authors' model.
    """

    def __init__(self, node_dim: int, nodes: int, attn_dim: int = 64, dropout: float = 0.1):
        super().__init__()
        self.query = nn.Linear(node_dim, attn_dim)
        self.key = nn.Linear(node_dim, attn_dim)
        self.value = nn.Linear(node_dim, nodes)
        self.dropout = nn.Dropout(dropout)
        self.output = nn.Linear(nodes, nodes)
        self.attn_dim = attn_dim

    def forward(self, nodes: torch.Tensor) -> torch.Tensor:
        scores = self.query(nodes) @ self.key(nodes).transpose(-1, -2) / math.sqrt(self.attn_dim)
        attention = self.dropout(torch.softmax(scores, dim=-1))
        mixed = attention @ self.value(nodes)
        return self.output(mixed.transpose(-1, -2))


class RegionGCN(nn.Module):
    """Two DenseGCNConv layers D -> D, each ReLU then dropout.

    DenseGCNConv sets the diagonal of A to 1, clamps the row sums below at 1 and propagates
    D^-1/2 A D^-1/2 (X W) + b. Dropout is off in eval mode; the authors' notebook created it
    inside ``forward``, so it stayed on at evaluation: ``dropout_at_eval=True`` reproduces that
    (stochastic predictions), for comparison with their numbers only.
    """

    def __init__(self, node_dim: int, dropout: float = 0.5, dropout_at_eval: bool = False):
        super().__init__()
        self.conv1 = DenseGCNConv(node_dim, node_dim)
        self.conv2 = DenseGCNConv(node_dim, node_dim)
        self.p = dropout
        self.dropout_at_eval = dropout_at_eval

    def _dropout(self, x: torch.Tensor) -> torch.Tensor:
        return F.dropout(x, self.p, training=self.training or self.dropout_at_eval)

    def forward(self, nodes: torch.Tensor, adjacency: torch.Tensor) -> torch.Tensor:
        hidden = self._dropout(torch.relu(self.conv1(nodes, adjacency)))
        return self._dropout(torch.relu(self.conv2(hidden, adjacency)))
