"""The straightforward form of this model, frozen: what its speed is measured against and what
its fused layers are proven equal to.

A copy of this project's layer code as it was before the speed work (commit 1adab74 with the
authors' temporal padding): per adjacency subset two 1x1 convolutions, a batched product, a
softmax, a product with the mixing matrix and a 1x1 projection, as in the authors' ``unit_gcn``;
then their ``unit_tcn`` and ``TCN_GCN_unit``.  It has :class:`glagcn.model.GLAGCN`'s parameter
names, so one state dict loads into both (:func:`model_pair`), and :func:`compare_outputs`
measures how far the two forms differ.  Do not optimise it.  ``benchmarks/bench_speed.py``
times the two; ``tests/test_glagcn_bench_speed.py`` holds them equal.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence

import torch
from torch import nn

from glagcn.model.glagcn import ARCHITECTURES, GLAGCN
from glagcn.model.layers import JointwiseLinear, strided_offset
from glagcn.skeleton import H36M_17, Skeleton


class ReferenceGraphConv(nn.Module):
    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        adjacency: torch.Tensor,
        dropout: float = 0.0,
        activation: bool = True,
    ) -> None:
        super().__init__()
        subsets, joints, _ = adjacency.shape
        inter = max(out_channels // 4, 1)
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
        self.relu = nn.ReLU(inplace=True) if activation else nn.Identity()

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


class ReferenceTemporalConv(nn.Module):
    def __init__(self, channels: int, kernel_size: int, stride: int, padding: str) -> None:
        super().__init__()
        pad = (kernel_size - 1) // 2 if padding == "authors" else (kernel_size - stride) // 2
        self.conv = nn.Conv2d(channels, channels, (kernel_size, 1), (stride, 1), (pad, 0))
        self.bn = nn.BatchNorm2d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(x))


class ReferenceStridedProjection(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, stride: int, padding: str) -> None:
        super().__init__()
        self.stride, self.offset = stride, strided_offset(stride, padding)
        self.conv = nn.Conv2d(in_channels, out_channels, 1)
        self.bn = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(x[:, :, self.offset :: self.stride]))


class ReferenceBlock(nn.Module):
    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        adjacency: torch.Tensor,
        stride: int,
        residual: str,
        kernel: int,
        dropout: float,
        padding: str,
    ) -> None:
        super().__init__()
        self.gcn = ReferenceGraphConv(in_channels, out_channels, adjacency, dropout)
        self.tcn = ReferenceTemporalConv(out_channels, kernel, stride, padding)
        if residual == "none":
            self.residual: nn.Module | None = None
        elif residual == "identity" and in_channels == out_channels and stride == 1:
            self.residual = nn.Identity()
        else:
            self.residual = ReferenceStridedProjection(in_channels, out_channels, stride, padding)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.tcn(self.gcn(x))
        if self.residual is not None:
            out = out + self.residual(x)
        return self.relu(out)


class ReferenceGLAGCN(nn.Module):
    """The straightforward GLA-GCN; parameter names as :class:`glagcn.model.GLAGCN`'s."""

    def __init__(
        self,
        skeleton: Skeleton,
        filter_widths: Sequence[int],
        channels: int = 96,
        temporal_kernel: int = 9,
        dropout: float = 0.1,
        graph_dropout: float = 0.1,
        output_layer: str = "shared",
        sequence_branch: bool = False,
        temporal_padding: str = "authors",
    ) -> None:
        super().__init__()
        self.filter_widths = tuple(filter_widths)
        self.num_joints = skeleton.num_joints
        adjacency = torch.from_numpy(skeleton.adjacency_subsets())
        self.input_bn = nn.BatchNorm1d(self.num_joints * 2)
        self.expand = ReferenceBlock(
            2, channels, adjacency, 1, "project", temporal_kernel, graph_dropout, temporal_padding
        )
        self.levels = nn.ModuleList(
            nn.ModuleList(
                [
                    ReferenceBlock(
                        channels,
                        channels,
                        adjacency,
                        1,
                        "identity",
                        temporal_kernel,
                        graph_dropout,
                        temporal_padding,
                    ),
                    ReferenceBlock(
                        channels,
                        channels,
                        adjacency,
                        width,
                        "none",
                        temporal_kernel,
                        graph_dropout,
                        temporal_padding,
                    ),
                ]
            )
            for width in self.filter_widths
        )
        self.dropout = nn.Dropout(dropout)
        self.sequence_head = (
            ReferenceGraphConv(channels, 3, adjacency, activation=False)
            if sequence_branch
            else None
        )
        self.head: nn.Module = (
            JointwiseLinear(self.num_joints, channels, 3)
            if output_layer == "per_joint"
            else nn.Linear(channels, 3)
        )

    def forward(self, keypoints_2d: torch.Tensor, return_sequence: bool = False):
        n, t, v, c = keypoints_2d.shape
        x = keypoints_2d.permute(0, 2, 3, 1).reshape(n, v * c, t)
        x = self.input_bn(x).reshape(n, v, c, t).permute(0, 2, 3, 1)
        x = self.expand(x)
        sequence = None
        for index, (full_rate, strided) in enumerate(self.levels):
            skip = x[:, :, strided.tcn.conv.stride[0] // 2 :: strided.tcn.conv.stride[0]]
            x = self.dropout(full_rate(x))
            if index == 0 and self.sequence_head is not None and return_sequence:
                sequence = self.sequence_head(x).permute(0, 2, 3, 1)
            x = self.dropout(strided(x)) + skip
        joints = x.mean(dim=2).transpose(1, 2)
        centre = self.head(joints).unsqueeze(1)
        return (centre, sequence) if return_sequence else centre


def model_pair(
    receptive_field: int,
    channels: int = 96,
    output_layer: str = "shared",
    sequence_branch: bool = False,
    dropout: float = 0.1,
    seed: int = 0,
    temporal_padding: str = "authors",
) -> tuple[GLAGCN, ReferenceGLAGCN]:
    """This model and the reference with the same weights (PyTorch's default initialisation:
    the authors' graph-unit BN scale of 1e-6 would make gradients tiny, not representative)."""
    torch.manual_seed(seed)
    widths = (
        ARCHITECTURES[receptive_field]
        if receptive_field in ARCHITECTURES
        else (3,) * round(math.log(receptive_field, 3))
    )
    fast = GLAGCN(
        H36M_17,
        widths,
        channels=channels,
        dropout=dropout,
        graph_dropout=dropout,
        output_layer=output_layer,
        sequence_branch=sequence_branch,
        temporal_padding=temporal_padding,
        init="pytorch",
    )
    reference = ReferenceGLAGCN(
        H36M_17,
        widths,
        channels,
        dropout=dropout,
        graph_dropout=dropout,
        output_layer=output_layer,
        sequence_branch=sequence_branch,
        temporal_padding=temporal_padding,
    )
    with torch.no_grad():  # non-trivial statistics and learned matrices
        for name, tensor in fast.state_dict().items():
            if name.endswith("running_var"):
                tensor.uniform_(0.5, 1.5)
            elif name.endswith("running_mean") or name.endswith("learned_adjacency"):
                tensor.normal_(0.0, 0.1)
    reference.load_state_dict(fast.state_dict())
    return fast, reference


def compare_outputs(
    fast: nn.Module, reference: nn.Module, windows: torch.Tensor, sequence: bool = False
) -> dict[str, float]:
    """Largest differences between the two models (dropout must be off), each relative to the
    largest magnitude of its kind: outputs in eval and in training mode in fp32 and in float64,
    and every parameter's gradient in float64 (the fp32 figures depend on the CPU's kernels).

    Gradients are compared in float64 because fp32 ones legitimately differ: a pre-ReLU value
    within rounding of zero falls on either side in two fp32 computations, and the training-mode
    BatchNorm behind it spreads that to its whole channel (seen: 1 value in 176,256 moving a
    weight gradient by 5e-3).  In float64 both forms agree to ~1e-15.
    """

    def run(model: nn.Module, x: torch.Tensor, train: bool):
        model.train(train)
        model.zero_grad(set_to_none=True)
        out = model(x, return_sequence=True) if sequence else (model(x), None)
        loss = out[0].square().sum() + (out[1].square().sum() if out[1] is not None else 0)
        if train:
            loss.backward()
        grads = {
            name: p.grad.detach().clone()
            for name, p in model.named_parameters()
            if p.grad is not None
        }
        return [o.detach() for o in out if o is not None], grads

    def relative(a: torch.Tensor, b: torch.Tensor) -> float:
        return float((a - b).abs().max() / b.abs().max().clamp(min=1e-12))

    # copies before any training-mode pass: that updates BatchNorm's running statistics in fp32
    fast_64, reference_64 = copy.deepcopy(fast).double(), copy.deepcopy(reference).double()
    result = {}
    with torch.no_grad():
        fast_eval, _ = run(fast, windows, False)
        reference_eval, _ = run(reference, windows, False)
    result["eval_output"] = max(
        relative(a, b) for a, b in zip(fast_eval, reference_eval, strict=True)
    )
    fast_out, _ = run(fast, windows, True)
    reference_out, _ = run(reference, windows, True)
    result["train_output"] = max(
        relative(a, b) for a, b in zip(fast_out, reference_out, strict=True)
    )
    with torch.no_grad():
        fast_eval_64, _ = run(fast_64, windows.double(), False)
        reference_eval_64, _ = run(reference_64, windows.double(), False)
    result["eval_output_float64"] = max(
        relative(a, b) for a, b in zip(fast_eval_64, reference_eval_64, strict=True)
    )
    fast_out_64, fast_grads = run(fast_64, windows.double(), True)
    reference_out_64, reference_grads = run(reference_64, windows.double(), True)
    result["train_output_float64"] = max(
        relative(a, b) for a, b in zip(fast_out_64, reference_out_64, strict=True)
    )
    if set(fast_grads) != set(reference_grads):
        raise AssertionError("the two models have different trainable parameters")
    # Some gradients are zero in exact arithmetic (a bias before a training-mode BN, theta's
    # bias under the softmax): differences are measured against the largest gradient.
    scale = max(float(g.abs().max()) for g in reference_grads.values())
    result["gradients_float64"] = max(
        float((fast_grads[k] - reference_grads[k]).abs().max()) / scale for k in fast_grads
    )
    return result
