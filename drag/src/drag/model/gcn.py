"""Per-image self-attention adjacency and dense graph convolutions over the K region nodes."""

from __future__ import annotations

import math

import torch
from torch import nn


class AttentionAdjacency(nn.Module):
    """A = mix(dropout(softmax(Q K^T / sqrt(d)))) with Q, K linear maps of the node vectors.

    The mixing is a K x K linear map initialised to the identity; a ReLU keeps the result a
    non-negative adjacency so the symmetric degree normalisation stays defined.
    """

    def __init__(self, node_dim: int, nodes: int, attn_dim: int = 64, dropout: float = 0.1):
        super().__init__()
        self.query = nn.Linear(node_dim, attn_dim)
        self.key = nn.Linear(node_dim, attn_dim)
        self.dropout = nn.Dropout(dropout)
        self.mix = nn.Linear(nodes, nodes)
        with torch.no_grad():
            self.mix.weight.copy_(torch.eye(nodes))
            self.mix.bias.zero_()
        self.scale = 1.0 / math.sqrt(attn_dim)

    def forward(self, nodes: torch.Tensor) -> torch.Tensor:
        scores = self.query(nodes) @ self.key(nodes).transpose(1, 2) * self.scale
        attention = self.dropout(torch.softmax(scores, dim=-1))
        return torch.relu(self.mix(attention))


def normalize_adjacency(adjacency: torch.Tensor) -> torch.Tensor:
    """D^-1/2 (A + I) D^-1/2 for a batch of dense B x K x K adjacencies."""
    eye = torch.eye(adjacency.shape[-1], dtype=adjacency.dtype, device=adjacency.device)
    with_loops = adjacency + eye
    inv_sqrt = with_loops.sum(-1).clamp_min(1e-12).rsqrt()
    return inv_sqrt.unsqueeze(-1) * with_loops * inv_sqrt.unsqueeze(-2)


class DenseGraphConv(nn.Module):
    """H' = norm(A) H W + b."""

    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.linear = nn.Linear(in_dim, out_dim)

    def forward(self, nodes: torch.Tensor, adjacency: torch.Tensor) -> torch.Tensor:
        return normalize_adjacency(adjacency) @ self.linear(nodes)


class RegionGCN(nn.Module):
    """Two dense GCN layers, ReLU + dropout (an nn.Dropout module, so it is off in eval mode)."""

    def __init__(self, node_dim: int, dropout: float = 0.5) -> None:
        super().__init__()
        self.conv1 = DenseGraphConv(node_dim, node_dim)
        self.conv2 = DenseGraphConv(node_dim, node_dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, nodes: torch.Tensor, adjacency: torch.Tensor) -> torch.Tensor:
        hidden = self.dropout(torch.relu(self.conv1(nodes, adjacency)))
        return self.dropout(torch.relu(self.conv2(hidden, adjacency)))
