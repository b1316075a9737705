"""The authors' GLA-GCN forward pass, re-stated operation by operation on their state dict.

A test oracle, not a model to train: plain functional torch on the tensors under the names
their module tree saves (``data_bn``, ``expand_gcn.gcn1.conv_a.0``, ``layers_tcngcn.N``,
``fc``), inference mode, in whatever dtype the tensors have (the tests use float64).  It follows
``common/s_agcn.py`` (their main model), ``common/s_agcn_HE_13.py`` (their HumanEva Mask R-CNN
model) and ``common/agcn.py`` / ``agcn_HE_13.py`` (graph, units) step by step, without this
package's fused kernels or folded BatchNorms, so a converted checkpoint can be held against it.

Causal windows: their ``--causal`` imports ``common/causal_model.py``, which their repository
lacks, and ``S_AGCN(causal=True)`` computes the skip's shift as VideoPose3D's *dilated* model
does (f // 2 times the dilation), which in their strided form starts the skip past the block's
frames (8 frames against 9 for 27).  ``skip_shifts`` takes either: :func:`authors_causal_shifts`
(their code as published; it fails) or :func:`strided_causal_shifts` (VideoPose3D's
``TemporalModelOptimized1f``: f // 2 per level, the computation their flag stands for).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

# agcn.py, dataset 'humaneva15': 14 inward pairs, 1-based; agcn_HE_13.py drops (2,6) and (1,9)
S_AGCN_HUMANEVA_PAIRS = (
    (15, 2), (2, 3), (3, 4), (4, 5), (2, 6), (6, 7), (7, 8),
    (2, 1), (1, 12), (12, 13), (13, 14), (1, 9), (9, 10), (10, 11),
)  # fmt: skip
HE13_PAIRS = tuple(pair for pair in S_AGCN_HUMANEVA_PAIRS if pair not in ((2, 6), (1, 9)))
# agcn.py, dataset 'h36m': 16 inward (child, parent) pairs, written 0-based there; 1-based here
S_AGCN_H36M_PAIRS = (
    (2, 1), (3, 2), (4, 3), (5, 1), (6, 5), (7, 6), (8, 1), (9, 8),
    (10, 9), (11, 10), (12, 9), (13, 12), (14, 13), (15, 9), (16, 15), (17, 16),
)  # fmt: skip


def authors_adjacency(pairs_1based: Sequence[tuple[int, int]], num_node: int) -> np.ndarray:
    """get_spatial_graph: identity, then column-normalised inward and outward (edge2mat sets
    A[j, i] = 1 for a pair (i, j))."""

    def edge2mat(links):
        matrix = np.zeros((num_node, num_node))
        for i, j in links:
            matrix[j, i] = 1
        return matrix

    def normalize_digraph(matrix):
        degree = matrix.sum(0)
        scale = np.zeros((num_node, num_node))
        for i in range(num_node):
            if degree[i] > 0:
                scale[i, i] = degree[i] ** (-1)
        return matrix @ scale

    inward = [(i - 1, j - 1) for i, j in pairs_1based]
    outward = [(j, i) for i, j in inward]
    return np.stack(
        [
            edge2mat([(i, i) for i in range(num_node)]),
            normalize_digraph(edge2mat(inward)),
            normalize_digraph(edge2mat(outward)),
        ]
    )


def authors_causal_shifts(filter_widths: Sequence[int], causal: bool) -> list[int]:
    """S_AGCN.__init__'s causal_shift list as published."""
    shifts, dilation = [], filter_widths[0]
    for width in filter_widths:
        shifts.append(width // 2 * dilation if causal else 0)
        dilation *= width
    return shifts


def strided_causal_shifts(filter_widths: Sequence[int], causal: bool) -> list[int]:
    """VideoPose3D TemporalModelOptimized1f's causal_shift: f // 2 per level."""
    return [width // 2 if causal else 0 for width in filter_widths]


def he13_coco_to_15(x: torch.Tensor) -> torch.Tensor:
    """s_agcn_HE_13.py's mapping on (N, 17, 2, T), written as their loops are."""
    out = x[:, 0:15].clone()
    nose = x[:, 0].clone()
    out[:, 0] = (x[:, 11] + x[:, 12]) / 2  # J1 root
    out[:, 1] = (x[:, 5] + x[:, 6]) / 2  # J2 thorax
    for i in range(3, 6):  # left arm
        out[:, i - 1] = x[:, i * 2 - 1]
    for i in range(6, 9):  # right arm
        out[:, i - 1] = x[:, (i - 3) * 2]
    for i in range(9, 12):  # left leg
        out[:, i - 1] = x[:, (i - 3) * 2 - 1]
    for i in range(12, 15):  # right leg
        out[:, i - 1] = x[:, (i - 6) * 2]
    out[:, 14] = nose  # head
    return out


def _bn(x, p, name):
    return F.batch_norm(
        x,
        p[f"{name}.running_mean"],
        p[f"{name}.running_var"],
        p[f"{name}.weight"],
        p[f"{name}.bias"],
        training=False,
        eps=1e-5,
    )


def _conv(x, p, name, stride=1, padding=0):
    return F.conv2d(x, p[f"{name}.weight"], p[f"{name}.bias"], (stride, 1), (padding, 0))


def unit_gcn(x, p, name, adjacency):
    n, c, t, v = x.shape
    adjacency = adjacency + p[f"{name}.PA"]
    y = 0
    for i in range(3):
        a1 = _conv(x, p, f"{name}.conv_a.{i}")
        inter = a1.shape[1]
        a1 = a1.permute(0, 3, 1, 2).reshape(n, v, inter * t)
        a2 = _conv(x, p, f"{name}.conv_b.{i}").reshape(n, inter * t, v)
        a1 = torch.softmax(a1 @ a2 / a1.shape[-1], dim=-2) + adjacency[i]
        z = _conv((x.reshape(n, c * t, v) @ a1).reshape(n, c, t, v), p, f"{name}.conv_d.{i}")
        y = y + z
    y = _bn(y, p, f"{name}.bn")
    if f"{name}.down.0.weight" in p:
        down = _bn(_conv(x, p, f"{name}.down.0"), p, f"{name}.down.1")
    else:
        down = x
    return torch.relu(y + down)


def tcn_gcn_unit(x, p, name, adjacency, stride=1, residual=True):
    kernel = p[f"{name}.tcn1.conv.weight"].shape[2]
    y = unit_gcn(x, p, f"{name}.gcn1", adjacency)
    y = _bn(_conv(y, p, f"{name}.tcn1.conv", stride, (kernel - 1) // 2), p, f"{name}.tcn1.bn")
    if not residual:
        res = 0
    elif f"{name}.residual.conv.weight" not in p:
        res = x
    else:
        res = _bn(_conv(x, p, f"{name}.residual.conv", stride), p, f"{name}.residual.bn")
    return torch.relu(y + res)


def authors_forward(
    window: torch.Tensor,
    params: dict[str, torch.Tensor],
    filter_widths: Sequence[int],
    adjacency: np.ndarray,
    model: str = "s_agcn",
    skip_shifts: Sequence[int] | None = None,
) -> torch.Tensor:
    """(N, T, V_in, 2) -> (N, 1, V, 3) as their TemporalModelBase.forward + _forward_blocks.

    ``model``: ``"s_agcn"`` (data_bn applied) or ``"he13"`` (COCO-17 mapped to 15 joints when
    34 values come in, data_bn not applied).  ``params``: their state dict without the
    ``module.`` prefix.
    """
    shifts = list(skip_shifts) if skip_shifts is not None else [0] * len(filter_widths)
    n, t, v_in, c = window.shape
    x = window.reshape(n, t, v_in * c).permute(0, 2, 1)  # N, V*C, T
    if model == "he13":
        if v_in * c == 34:
            x = he13_coco_to_15(x.reshape(n, 17, 2, t)).reshape(n, -1, t)
        v = 15
    else:
        x = _bn(x.unsqueeze(-1), params, "data_bn")[..., 0]
        v = v_in
    x = x.reshape(n, 1, v, 2, t).permute(0, 1, 3, 4, 2).reshape(n, 2, t, v)
    # unit_gcn keeps A as float32 (torch.from_numpy(A.astype(np.float32))): 1/3 is rounded
    a = torch.from_numpy(np.asarray(adjacency).astype(np.float32)).to(window.dtype)
    x = tcn_gcn_unit(x, params, "expand_gcn", a)
    for i, width in enumerate(filter_widths):
        res = x[:, :, shifts[i] + width // 2 :: width]
        x = tcn_gcn_unit(x, params, f"layers_tcngcn.{2 * i}", a)
        x = tcn_gcn_unit(x, params, f"layers_tcngcn.{2 * i + 1}", a, stride=width, residual=False)
        x = res + x
    joints = []
    for j in range(v):
        pooled = x[:, :, :, j].mean(2)
        joints.append(F.conv1d(pooled.reshape(n, -1, 1), params["fc.weight"], params["fc.bias"]))
    return torch.cat(joints, dim=-1).reshape(n, 3, v).permute(0, 2, 1).unsqueeze(1)


def random_authors_state_dict(
    channels: int,
    filter_widths: Sequence[int],
    num_joints: int,
    seed: int = 0,
    kernel: int = 9,
    dtype: torch.dtype = torch.float32,
) -> dict[str, torch.Tensor]:
    """Random weights under the names and shapes their S_AGCN saves (with the ``module.``
    prefix of the DataParallel wrapper their scripts always use), non-trivial BN statistics
    and learned adjacencies: an authors' checkpoint of any size for tests."""
    generator = torch.Generator().manual_seed(seed)
    state: dict[str, torch.Tensor] = {}

    def normal(*shape, scale=0.3):
        return (torch.randn(*shape, generator=generator) * scale).to(dtype)

    def conv(name, out, inp, width=1):  # std 1 / sqrt(fan-in): outputs stay near unit scale
        state[f"{name}.weight"] = normal(out, inp, width, 1, scale=(inp * width) ** -0.5)
        state[f"{name}.bias"] = normal(out, scale=0.1)

    def bn(name, width):
        state[f"{name}.weight"] = 1 + normal(width, scale=0.2)
        state[f"{name}.bias"] = normal(width, scale=0.1)
        state[f"{name}.running_mean"] = normal(width, scale=0.2)
        state[f"{name}.running_var"] = (torch.rand(width, generator=generator) + 0.5).to(dtype)
        state[f"{name}.num_batches_tracked"] = torch.tensor(1000)

    def unit(prefix, inp, out, stride, residual):
        state[f"{prefix}.gcn1.PA"] = normal(3, num_joints, num_joints, scale=0.05)
        for i in range(3):
            conv(f"{prefix}.gcn1.conv_a.{i}", out // 4, inp)
            conv(f"{prefix}.gcn1.conv_b.{i}", out // 4, inp)
            conv(f"{prefix}.gcn1.conv_d.{i}", out, inp)
        if inp != out:
            conv(f"{prefix}.gcn1.down.0", out, inp)
            bn(f"{prefix}.gcn1.down.1", out)
        bn(f"{prefix}.gcn1.bn", out)
        conv(f"{prefix}.tcn1.conv", out, out, width=kernel)
        bn(f"{prefix}.tcn1.bn", out)
        if residual:
            conv(f"{prefix}.residual.conv", out, inp)
            bn(f"{prefix}.residual.bn", out)

    bn("data_bn", 2 * num_joints)
    unit("expand_gcn", 2, channels, 1, residual=True)
    for level, width in enumerate(filter_widths):
        unit(f"layers_tcngcn.{2 * level}", channels, channels, 1, residual=False)
        unit(f"layers_tcngcn.{2 * level + 1}", channels, channels, width, residual=False)
    state["fc.weight"] = normal(3, channels, 1)  # Conv1d(C, 3, 1)
    state["fc.bias"] = normal(3)
    return {f"module.{key}": value for key, value in state.items()}
