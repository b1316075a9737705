"""GraphSAGE and GAT over sampled bipartite blocks (PyG layers)."""

from __future__ import annotations

import warnings

import torch
from torch import nn
from torch.nn import functional as F

from zerocopy_gcn.sampling import Block

with warnings.catch_warnings():
    # PyG scripts a few helpers when imported and torch deprecates torch.jit.script: a warning
    # on every run that no user of this project can act on.
    warnings.filterwarnings(
        "ignore", message="`torch.jit.script` is deprecated", category=FutureWarning
    )
    from torch_geometric.nn import GATConv, SAGEConv


class BlockGNN(nn.Module):
    """Stack of bipartite convolutions: layer i maps block i's source nodes to its dst nodes."""

    def __init__(self, convs: list[nn.Module], dropout: float) -> None:
        super().__init__()
        self.convs = nn.ModuleList(convs)
        self.dropout = dropout

    def forward(self, x: torch.Tensor, blocks: list[Block]) -> torch.Tensor:
        if len(blocks) != len(self.convs):
            raise ValueError(
                f"model has {len(self.convs)} layers but got {len(blocks)} blocks "
                "(one fanout per layer)"
            )
        for i, (conv, block) in enumerate(zip(self.convs, blocks, strict=True)):
            x = conv((x, x[: block.num_dst]), block.edge_index)
            if i + 1 < len(self.convs):
                x = F.dropout(F.relu(x), p=self.dropout, training=self.training)
        return x


def build_model(
    name: str,
    in_dim: int,
    hidden: int,
    num_classes: int,
    num_layers: int,
    dropout: float = 0.5,
    heads: int = 4,
) -> BlockGNN:
    dims = [in_dim] + [hidden] * (num_layers - 1) + [num_classes]
    convs: list[nn.Module] = []
    for i in range(num_layers):
        last = i + 1 == num_layers
        if name == "sage":
            convs.append(SAGEConv(dims[i], dims[i + 1]))
        elif name == "gat":
            if not last and dims[i + 1] % heads:
                raise ValueError(f"hidden={hidden} must be divisible by heads={heads}")
            out = dims[i + 1] if last else dims[i + 1] // heads
            convs.append(GATConv(dims[i], out, heads=1 if last else heads, concat=not last))
        else:
            raise ValueError(f"unknown model {name!r}; choose sage or gat")
    return BlockGNN(convs, dropout)
