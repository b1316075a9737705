"""Building blocks on features shaped (N, C, T, V): batch, channels, frames, joints.

The forward passes compute what the straightforward forms compute (the frozen copy in
:mod:`glagcn.model.frozen_reference` is the reference, and tests hold the two equal) with fewer
passes over memory: the graph unit's subsets share one GEMM (``glagcn.model.fused``), residual
additions and ReLUs run in place on fresh outputs, and dropout draws its mask as ``rand >= p`` (keep
probability 1 - p and scale 1 / (1 - p), as ``nn.Dropout``; the masks differ from
``nn.Dropout``'s for the same seed).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from glagcn.model.fused import inference_affine, mix_then_project, project_then_mix

INITIALISATIONS = ("authors", "pytorch")


def kaiming_fan_out_(conv: nn.Conv2d) -> None:
    """The 2s-AGCN initialisation of a convolution: He normal over fan-out, zero bias."""
    nn.init.kaiming_normal_(conv.weight, mode="fan_out")
    nn.init.zeros_(conv.bias)


def constant_bn_(bn: nn.BatchNorm2d, scale: float) -> None:
    nn.init.constant_(bn.weight, scale)
    nn.init.zeros_(bn.bias)


def _folds_batchnorm(bn: nn.BatchNorm2d) -> bool:
    """In inference mode a BatchNorm is an affine map folded into the preceding weights."""
    return not bn.training and bn.track_running_stats and bn.running_var is not None


def _conv_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d, x: torch.Tensor) -> torch.Tensor:
    if not _folds_batchnorm(bn):
        return bn(conv(x))
    scale, shift = inference_affine(bn)
    bias = shift if conv.bias is None else conv.bias * scale + shift
    return F.conv2d(x, conv.weight * scale.view(-1, 1, 1, 1), bias, conv.stride, conv.padding)


def dropout_mask(like: torch.Tensor, p: float) -> torch.Tensor:
    """Multiplier for dropout with rate p: 1 / (1 - p) where ``rand >= p``, else 0."""
    if p >= 1.0:
        return torch.zeros_like(like)
    return torch.rand_like(like).ge_(p).mul_(1.0 / (1.0 - p))


class AdaptiveGraphConv(nn.Module):
    """Graph convolution over joints with three adjacency terms per subset (2s-AGCN style).

    For each of the K fixed subsets (self, inward, outward): the normalised skeleton matrix
    ``A_k`` + a learnable additive matrix ``B_k`` (starts at ~0) + a data-dependent matrix
    ``C_k = softmax_joints(theta_k(x)^T phi_k(x) / (C' T))``.  The subsets' outputs are summed,
    batch-normalised, added to a residual (1x1 conv + BN when the width changes) and ReLU'd
    (``activation=False`` leaves the ReLU out, for a unit whose output is signed coordinates).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        adjacency: torch.Tensor,
        embed_divisor: int = 4,
        dropout: float = 0.0,
        activation: bool = True,
    ) -> None:
        super().__init__()
        subsets, joints, _ = adjacency.shape
        inter = max(out_channels // embed_divisor, 1)
        self.register_buffer("skeleton_adjacency", adjacency.clone().float())
        self.learned_adjacency = nn.Parameter(torch.full((subsets, joints, joints), 1e-6))
        self.theta = nn.ModuleList(nn.Conv2d(in_channels, inter, 1) for _ in range(subsets))
        self.phi = nn.ModuleList(nn.Conv2d(in_channels, inter, 1) for _ in range(subsets))
        self.project = nn.ModuleList(
            nn.Conv2d(in_channels, out_channels, 1) for _ in range(subsets)
        )
        self.bn = nn.BatchNorm2d(out_channels)
        if in_channels == out_channels:
            self.residual: nn.Module = nn.Identity()
        else:
            self.residual = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1), nn.BatchNorm2d(out_channels)
            )
        self.dropout = nn.Dropout(dropout)
        self.activation = activation

    def authors_init_(self) -> None:
        """2s-AGCN's initialisation, as the authors' unit_gcn: He (fan-out) convolutions, each
        subset's projection N(0, 2 / (C_out C_in K)), BN scale 1 except the output BN's 1e-6
        (the unit starts as its residual), learnable adjacency 1e-6."""
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                kaiming_fan_out_(module)
            elif isinstance(module, nn.BatchNorm2d):
                constant_bn_(module, 1.0)
        constant_bn_(self.bn, 1e-6)
        subsets = len(self.project)
        for conv in self.project:
            fan = conv.out_channels * conv.in_channels * subsets
            nn.init.normal_(conv.weight, 0.0, math.sqrt(2.0 / fan))
            nn.init.zeros_(conv.bias)
        nn.init.constant_(self.learned_adjacency, 1e-6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        adjacency = self.skeleton_adjacency + self.learned_adjacency
        widens = self.theta[0].in_channels < self.project[0].out_channels
        fold = _folds_batchnorm(self.bn)
        out = (mix_then_project if widens else project_then_mix)(
            x,
            list(self.theta),
            list(self.phi),
            list(self.project),
            adjacency,
            inference_affine(self.bn) if fold else None,
        )
        if not fold:
            out = self.bn(out)
        residual = self.residual(x)
        if self.training and self.dropout.p > 0:
            out = torch.addcmul(residual, out, dropout_mask(out, self.dropout.p))
        else:
            out = out.add_(residual)
        return out.relu_() if self.activation else out


TEMPORAL_PADDINGS = ("authors", "centred")


def strided_offset(stride: int, temporal_padding: str) -> int:
    """The input frame a strided temporal output i is centred on is ``offset + stride * i``."""
    if temporal_padding not in TEMPORAL_PADDINGS:
        raise ValueError(
            f"temporal_padding must be one of {TEMPORAL_PADDINGS}, got {temporal_padding!r}"
        )
    return 0 if temporal_padding == "authors" else stride // 2


class TemporalConv(nn.Module):
    """Convolution over frames only, kernel (k, 1), stride s, zero padding, then BN.

    ``temporal_padding="authors"``: (k - 1) / 2 frames on each side whatever the stride, as the
    authors' code does; strided output i is centred on input frame s * i (0, 3, 6, ... for s = 3).
    ``"centred"``: (k - s) / 2 frames, output i centred on frame s * i + s // 2 (1, 4, 7, ...),
    the middle of its stride.  Both give ceil(T / s) = T / s outputs when s divides T.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 9,
        stride: int = 1,
        temporal_padding: str = "authors",
    ) -> None:
        super().__init__()
        strided_offset(stride, temporal_padding)  # validates the name
        if temporal_padding == "authors":
            if kernel_size % 2 == 0:
                raise ValueError(
                    f"temporal_padding='authors' needs an odd kernel, got {kernel_size}"
                )
            padding = (kernel_size - 1) // 2
        else:
            if (kernel_size - stride) % 2:
                raise ValueError(
                    f"temporal_padding='centred' needs kernel {kernel_size} and "
                    f"stride {stride} of the same parity"
                )
            padding = (kernel_size - stride) // 2
        self.conv = nn.Conv2d(
            in_channels, out_channels, (kernel_size, 1), (stride, 1), (padding, 0)
        )
        self.bn = nn.BatchNorm2d(out_channels)

    def authors_init_(self) -> None:
        kaiming_fan_out_(self.conv)
        constant_bn_(self.bn, 1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _conv_bn(self.conv, self.bn, x)


class StridedProjection(nn.Module):
    """1x1 conv + BN on every s-th frame, the frames a strided TemporalConv of the same
    padding centres on (0, s, 2s, ... for the authors' padding, as their kernel-1 unit_tcn)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int = 1,
        temporal_padding: str = "authors",
    ) -> None:
        super().__init__()
        self.stride = stride
        self.offset = strided_offset(stride, temporal_padding)
        self.conv = nn.Conv2d(in_channels, out_channels, 1)
        self.bn = nn.BatchNorm2d(out_channels)

    def authors_init_(self) -> None:
        kaiming_fan_out_(self.conv)
        constant_bn_(self.bn, 1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _conv_bn(self.conv, self.bn, x[:, :, self.offset :: self.stride])


class GraphTemporalBlock(nn.Module):
    """Graph unit, then temporal unit, plus a residual: 'identity', 'project' or 'none'."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        adjacency: torch.Tensor,
        stride: int = 1,
        residual: str = "identity",
        temporal_kernel: int = 9,
        dropout: float = 0.0,
        temporal_padding: str = "authors",
    ) -> None:
        super().__init__()
        self.gcn = AdaptiveGraphConv(in_channels, out_channels, adjacency, dropout=dropout)
        self.tcn = TemporalConv(
            out_channels, out_channels, temporal_kernel, stride, temporal_padding
        )
        if residual == "none":
            self.residual: nn.Module | None = None
        elif residual == "identity" and in_channels == out_channels and stride == 1:
            self.residual = nn.Identity()
        elif residual in ("identity", "project"):
            self.residual = StridedProjection(in_channels, out_channels, stride, temporal_padding)
        else:
            raise ValueError(f"unknown residual kind {residual!r}")

    def forward(self, x: torch.Tensor, dropout: float = 0.0) -> torch.Tensor:
        """``dropout``: rate of a dropout after the block's ReLU (the model's between-block
        dropout), applied before it as relu(z) m = relu(z m) for the mask m >= 0."""
        out = self.tcn(self.gcn(x))
        if self.residual is not None:
            out = out.add_(self.residual(x))
        if self.training and dropout > 0:
            out = out.mul_(dropout_mask(out, dropout))
        return out.relu_()


class JointwiseLinear(nn.Module):
    """The individually connected layer: each joint has its own C -> D weights (one einsum)."""

    def __init__(self, num_joints: int, in_features: int, out_features: int) -> None:
        super().__init__()
        bound = in_features**-0.5
        self.weight = nn.Parameter(
            torch.empty(num_joints, in_features, out_features).uniform_(-bound, bound)
        )
        self.bias = nn.Parameter(torch.empty(num_joints, out_features).uniform_(-bound, bound))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, V, C) -> (N, V, D)."""
        return torch.einsum("nvc,vcd->nvd", x, self.weight) + self.bias
