"""Building blocks on features shaped (N, C, T, V): batch, channels, frames, joints."""

from __future__ import annotations

import torch
from torch import nn


class AdaptiveGraphConv(nn.Module):
    """Graph convolution over joints with three adjacency terms per subset (2s-AGCN style).

    For each of the K fixed subsets (self, inward, outward): the normalised skeleton matrix
    ``A_k`` + a learnable additive matrix ``B_k`` (starts at ~0) + a data-dependent matrix
    ``C_k = softmax_joints(theta_k(x)^T phi_k(x) / (C' T))``.  The subsets' outputs are summed,
    batch-normalised, added to a residual (1x1 conv + BN when the width changes) and ReLU'd.
    """

    def __init__(self, in_channels: int, out_channels: int, adjacency: torch.Tensor,
                 embed_divisor: int = 4, dropout: float = 0.0) -> None:
        super().__init__()
        subsets, joints, _ = adjacency.shape
        inter = max(out_channels // embed_divisor, 1)
        self.register_buffer("skeleton_adjacency", adjacency.clone().float())
        self.learned_adjacency = nn.Parameter(torch.full((subsets, joints, joints), 1e-6))
        self.theta = nn.ModuleList(nn.Conv2d(in_channels, inter, 1) for _ in range(subsets))
        self.phi = nn.ModuleList(nn.Conv2d(in_channels, inter, 1) for _ in range(subsets))
        self.project = nn.ModuleList(nn.Conv2d(in_channels, out_channels, 1)
                                     for _ in range(subsets))
        self.bn = nn.BatchNorm2d(out_channels)
        if in_channels == out_channels:
            self.residual: nn.Module = nn.Identity()
        else:
            self.residual = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1),
                                          nn.BatchNorm2d(out_channels))
        self.dropout = nn.Dropout(dropout)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, t, v = x.shape
        flat = x.reshape(n, c * t, v)
        adjacency = self.skeleton_adjacency + self.learned_adjacency
        out = None
        for k in range(adjacency.shape[0]):
            theta = self.theta[k](x).permute(0, 3, 1, 2).reshape(n, v, -1)  # N, V, C'T
            phi = self.phi[k](x).reshape(n, -1, v)  # N, C'T, V
            data_adjacency = torch.softmax(theta @ phi / theta.shape[-1], dim=-2)
            mixed = (flat @ (adjacency[k] + data_adjacency)).reshape(n, c, t, v)
            term = self.project[k](mixed)
            out = term if out is None else out + term
        out = self.bn(out)
        return self.relu(self.dropout(out) + self.residual(x))


class TemporalConv(nn.Module):
    """Convolution over frames only, kernel (k, 1), stride s, padding (k - s) // 2, then BN.

    With that padding a strided conv's outputs sit centred on frames s//2, s//2 + s, ...
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 9,
                 stride: int = 1) -> None:
        super().__init__()
        if (kernel_size - stride) % 2:
            raise ValueError(f"kernel {kernel_size} and stride {stride} must have the same parity")
        self.conv = nn.Conv2d(in_channels, out_channels, (kernel_size, 1), (stride, 1),
                              ((kernel_size - stride) // 2, 0))
        self.bn = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(x))


class StridedProjection(nn.Module):
    """1x1 conv + BN on frames s//2, s//2 + s, ... (where a strided TemporalConv centres)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.stride = stride
        self.conv = nn.Conv2d(in_channels, out_channels, 1)
        self.bn = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(x[:, :, self.stride // 2::self.stride]))


class GraphTemporalBlock(nn.Module):
    """Graph unit, then temporal unit, plus a residual: 'identity', 'project' or 'none'."""

    def __init__(self, in_channels: int, out_channels: int, adjacency: torch.Tensor,
                 stride: int = 1, residual: str = "identity", temporal_kernel: int = 9,
                 dropout: float = 0.0) -> None:
        super().__init__()
        self.gcn = AdaptiveGraphConv(in_channels, out_channels, adjacency, dropout=dropout)
        self.tcn = TemporalConv(out_channels, out_channels, temporal_kernel, stride)
        if residual == "none":
            self.residual: nn.Module | None = None
        elif residual == "identity" and in_channels == out_channels and stride == 1:
            self.residual = nn.Identity()
        elif residual in ("identity", "project"):
            self.residual = StridedProjection(in_channels, out_channels, stride)
        else:
            raise ValueError(f"unknown residual kind {residual!r}")
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.tcn(self.gcn(x))
        if self.residual is not None:
            out = out + self.residual(x)
        return self.relu(out)


class JointwiseLinear(nn.Module):
    """The individually connected layer: each joint has its own C -> D weights (one einsum)."""

    def __init__(self, num_joints: int, in_features: int, out_features: int) -> None:
        super().__init__()
        bound = in_features ** -0.5
        self.weight = nn.Parameter(torch.empty(num_joints, in_features, out_features)
                                   .uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(num_joints, out_features).uniform_(-bound, bound))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, V, C) -> (N, V, D)."""
        return torch.einsum("nvc,vcd->nvd", x, self.weight) + self.bias
