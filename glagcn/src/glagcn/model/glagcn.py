"""The GLA-GCN lifter in its strided training form, and the sliding form for whole sequences.

Strided form: a window of ``receptive_field`` 2D poses in, the centre frame's 3D pose out.  Each
level of the architecture list (e.g. 3,3,3,3,3 for 243 frames) is a stride-1 block and a
stride-f block, with a skip that takes every f-th frame of the level's input starting at f // 2,
so the time axis shrinks 243 -> 81 -> 27 -> 9 -> 3 -> 1.  The local part maps each joint's
remaining feature to its 3D position with weights of its own.

With the authors' temporal padding (the default) a strided block's output i is centred on its
input frame f * i while the skip brings frame f * i + f // 2, as in their code; the centred
padding lines both up on f * i + f // 2.  Either way the window's output depends on all of its
frames, and the zero padding sits at the window's own edges.

Causal form (``causal=True``, VideoPose3D's causal shift as its strided model applies it): each
level's skip takes the last frame of every stride group (f * i + f - 1) instead of the middle,
and the window for frame t is frames t - RF + 1 .. t, so no prediction looks ahead.  The
authors' ``causal=True`` cannot run as published (see the README's fidelity table); this is the
computation their flag stands for.

Sliding form (:class:`SlidingLifter`): the strided model applied to every window of an
edge-padded sequence (frame t's window holds frames t - pad .. t + pad, or t - 2 pad .. t for a
causal model), giving one 3D pose per input frame, exactly as the authors evaluate.  A dilated
whole-sequence network cannot stand in for it, because each window zero-pads its own edges
inside every temporal convolution.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from glagcn.model.inputs import (
    check_input_layout,
    coco17_to_humaneva15,
    graph_adjacency,
    input_flip_permutation,
    input_joint_count,
)
from glagcn.model.layers import (
    INITIALISATIONS,
    AdaptiveGraphConv,
    GraphTemporalBlock,
    JointwiseLinear,
    StridedProjection,
    TemporalConv,
)
from glagcn.skeleton import Skeleton

ARCHITECTURES = {27: (3, 3, 3), 81: (3, 3, 3, 3), 243: (3, 3, 3, 3, 3)}


def architecture_for(receptive_field: int) -> tuple[int, ...]:
    try:
        return ARCHITECTURES[receptive_field]
    except KeyError:
        raise ValueError(
            f"receptive field {receptive_field} is not one of "
            f"{sorted(ARCHITECTURES)}; pass filter_widths explicitly"
        ) from None


class GLAGCN(nn.Module):
    def __init__(
        self,
        skeleton: Skeleton,
        filter_widths: Sequence[int] = (3, 3, 3),
        channels: int = 96,
        in_features: int = 2,
        out_features: int = 3,
        temporal_kernel: int = 9,
        dropout: float = 0.1,
        graph_dropout: float = 0.1,
        output_layer: str = "per_joint",
        sequence_branch: bool = True,
        temporal_padding: str = "authors",
        init: str = "authors",
        causal: bool = False,
        input_layout: str = "skeleton",
        input_bn: bool = True,
        graph: str = "skeleton",
    ) -> None:
        super().__init__()
        check_input_layout(skeleton, input_layout)
        if output_layer not in ("per_joint", "shared"):
            raise ValueError(f"output_layer must be 'per_joint' or 'shared', got {output_layer!r}")
        if init not in INITIALISATIONS:
            raise ValueError(f"init must be one of {INITIALISATIONS}, got {init!r}")
        self.temporal_padding = temporal_padding
        self.skeleton = skeleton
        self.filter_widths = tuple(int(f) for f in filter_widths)
        self.num_joints = skeleton.num_joints
        self.in_features = in_features
        self.out_features = out_features
        self.causal = bool(causal)
        self.input_layout = input_layout
        self.graph = graph
        self.num_input_joints = input_joint_count(skeleton, input_layout)
        adjacency = torch.from_numpy(graph_adjacency(skeleton, graph))
        # the authors' HE_13 model builds its data_bn but never applies it: no input BN at all
        self.input_bn = nn.BatchNorm1d(self.num_joints * in_features) if input_bn else None
        self.expand = GraphTemporalBlock(
            in_features,
            channels,
            adjacency,
            1,
            "project",
            temporal_kernel,
            graph_dropout,
            temporal_padding,
        )
        self.levels = nn.ModuleList()
        for width in self.filter_widths:
            self.levels.append(
                nn.ModuleList(
                    [
                        GraphTemporalBlock(
                            channels,
                            channels,
                            adjacency,
                            1,
                            "identity",
                            temporal_kernel,
                            graph_dropout,
                            temporal_padding,
                        ),
                        GraphTemporalBlock(
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
            )
        self.dropout = nn.Dropout(dropout)
        # Signed 3D coordinates come out of this unit: no ReLU on its output.
        self.sequence_head = (
            AdaptiveGraphConv(channels, out_features, adjacency, activation=False)
            if sequence_branch
            else None
        )
        self.output_layer = output_layer
        if output_layer == "per_joint":
            self.head: nn.Module = JointwiseLinear(self.num_joints, channels, out_features)
        else:
            self.head = nn.Linear(channels, out_features)
        if init == "authors":
            for module in self.modules():
                if isinstance(module, AdaptiveGraphConv | TemporalConv | StridedProjection):
                    module.authors_init_()

    @property
    def receptive_field(self) -> int:
        return math.prod(self.filter_widths)

    @property
    def input_flip_permutation(self):
        """Joint order of the 2D input after a horizontal flip (the input may be COCO-17)."""
        return input_flip_permutation(self.skeleton, self.input_layout)

    def _skip_offset(self, stride: int) -> int:
        """The frame of each stride group a level's skip takes: the middle (f // 2), or, causal,
        VideoPose3D's causal shift f // 2 further on (the last frame for odd f)."""
        return stride // 2 + (stride // 2 if self.causal else 0)

    def forward(self, keypoints_2d: torch.Tensor, return_sequence: bool = False):
        """(N, T, V, 2) -> (N, 1, V, 3); with ``return_sequence`` also (N, T, V, 3) or None."""
        n, t, v, c = keypoints_2d.shape
        if t != self.receptive_field:
            raise ValueError(f"expected windows of {self.receptive_field} frames, got {t}")
        if v != self.num_input_joints or c != self.in_features:
            raise ValueError(
                f"expected {self.num_input_joints} joints x {self.in_features} values, "
                f"got {v} x {c}"
            )
        if self.input_layout == "coco17":
            keypoints_2d = coco17_to_humaneva15(keypoints_2d)
            v = self.num_joints
        if self.input_bn is None:
            x = keypoints_2d.permute(0, 3, 1, 2)  # N, C, T, V
        else:
            x = keypoints_2d.permute(0, 2, 3, 1).reshape(n, v * c, t)
            x = self.input_bn(x).reshape(n, v, c, t).permute(0, 2, 3, 1)  # N, C, T, V
        x = self.expand(x)
        sequence = None
        rate = self.dropout.p if self.training else 0.0
        for index, (full_rate, strided) in enumerate(self.levels):
            stride = strided.tcn.conv.stride[0]
            skip = x[:, :, self._skip_offset(stride) :: stride]
            x = full_rate(x, rate)
            if index == 0 and self.sequence_head is not None and return_sequence:
                sequence = self.sequence_head(x).permute(0, 2, 3, 1)  # N, T, V, 3
            x = strided(x, rate) + skip
        joints = x.mean(dim=2).transpose(1, 2)  # N, V, C (pooled over remaining frames)
        centre = self.head(joints).unsqueeze(1)
        return (centre, sequence) if return_sequence else centre


def default_max_windows(device: torch.device, receptive_field: int) -> int:
    """Windows per forward call when lifting whole sequences.  On a CPU, calls of more than
    about 4,000 frames (16 windows of 243) run slower per window, as activations leave the
    caches (1,024 windows of 243 frames: 4.7 vs 15 frames/s, benchmarks/PERFORMANCE.md); a GPU
    wants large calls."""
    if device.type == "cuda":
        return 1024
    return max(4096 // receptive_field, 1)


class SlidingLifter(nn.Module):
    """Predict every frame of a sequence with a strided model: edge-pad, window, batch.

    Windows are views into the padded sequence; only the ``max_windows`` of one forward call
    are ever copied, so memory does not grow with the sequence length times the receptive
    field.  Several sequences (N > 1, e.g. a sequence and its mirror image) share each call.
    """

    def __init__(self, model: GLAGCN, max_windows: int | None = None) -> None:
        super().__init__()
        self.model = model
        self.max_windows = max_windows

    def forward(self, sequence: torch.Tensor) -> torch.Tensor:
        """(T, V, 2) or (N, T, V, 2) -> (T, V, 3) or (N, T, V, 3)."""
        single = sequence.dim() == 3
        if single:
            sequence = sequence.unsqueeze(0)
        receptive_field = self.model.receptive_field
        pad = (receptive_field - 1) // 2
        # causal: all the padding before (the first frame repeated), so window t ends at t
        before, after = (2 * pad, 0) if getattr(self.model, "causal", False) else (pad, pad)
        padded = torch.cat(
            [
                sequence[:, :1].expand(-1, before, -1, -1),
                sequence,
                sequence[:, -1:].expand(-1, after, -1, -1),
            ],
            dim=1,
        )
        windows = padded.unfold(1, receptive_field, 1)  # N, T, V, C, RF (a view)
        n, frames, joints, channels = sequence.shape
        max_windows = self.max_windows or default_max_windows(sequence.device, receptive_field)
        per_call = max(max_windows // n, 1)
        outputs = []
        for begin in range(0, frames, per_call):
            chunk = windows[:, begin : begin + per_call].permute(0, 1, 4, 2, 3)
            chunk = chunk.reshape(-1, receptive_field, joints, channels)
            predicted = self.model(chunk)[:, 0]
            outputs.append(predicted.reshape(n, -1, self.model.num_joints, self.model.out_features))
        poses = torch.cat(outputs, dim=1)
        return poses[0] if single else poses


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def macs_per_frame(model: GLAGCN) -> int:
    """Multiply-accumulates of one strided forward pass (= one predicted frame), counted by hooks
    on convolutions, linear maps and the graph products."""
    macs = 0

    def conv_hook(module: nn.Conv2d, inputs, output):
        nonlocal macs
        kernel = module.kernel_size[0] * module.kernel_size[1] * module.in_channels
        macs += output.numel() // output.shape[0] * kernel // module.groups

    def folded_conv_hook(module: TemporalConv | StridedProjection, inputs, output):
        conv_hook(module.conv, inputs, output)  # inference folds BN into the conv's weights

    def linear_hook(module, inputs, output):
        nonlocal macs
        macs += output.numel() // output.shape[0] * module.in_features

    def joint_hook(module: JointwiseLinear, inputs, output):
        nonlocal macs
        macs += module.weight.numel()

    def graph_hook(module: AdaptiveGraphConv, inputs, output):
        # counted as the straightforward form: per subset theta, phi and the projection (1x1
        # convolutions, which the fused forward does not call as modules), theta^T phi, x @ A
        nonlocal macs
        _, c, t, v = inputs[0].shape
        inter = module.theta[0].out_channels
        out = module.project[0].out_channels
        subsets = module.skeleton_adjacency.shape[0]
        macs += subsets * ((2 * inter + out) * c * t * v + v * v * inter * t + c * t * v * v)

    handles = []
    folded = {
        id(m.conv) for m in model.modules() if isinstance(m, TemporalConv | StridedProjection)
    }
    for module in model.modules():
        if isinstance(module, TemporalConv | StridedProjection):
            handles.append(module.register_forward_hook(folded_conv_hook))
        elif isinstance(module, nn.Conv2d) and id(module) not in folded:
            handles.append(module.register_forward_hook(conv_hook))
        elif isinstance(module, nn.Linear):
            handles.append(module.register_forward_hook(linear_hook))
        elif isinstance(module, JointwiseLinear):
            handles.append(module.register_forward_hook(joint_hook))
        elif isinstance(module, AdaptiveGraphConv):
            handles.append(module.register_forward_hook(graph_hook))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(1, model.receptive_field, model.num_input_joints, model.in_features))
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    return macs
