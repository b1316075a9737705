"""The adaptive graph convolution as a few large operations (same arithmetic, fewer passes).

The straightforward form (one loop turn per adjacency subset k: two 1x1 convolutions for the
embeddings, a batched product for the attention, a product with the mixing matrix, a 1x1
projection) runs 3 x 5 small operations forward, and autograd adds a zero-filled gradient for
every slice it took.  Here, per unit:

* one GEMM computes every subset's theta, phi and projection ``W_k x`` from x at once (the
  projection commutes with the joint mixing, ``W_k (x M_k) = (W_k x) M_k``, so it can come
  first; its bias is added once after the mixing, as ``sum_k b_k``);
* one batched product gives all subsets' attention scores, one softmax normalises them;
* the mixing accumulates ``sum_k Y_k M_k`` into one output;
* the backward pass is written out (:class:`ProjectMix`), so gradients land in one buffer that
  feeds one GEMM for the input gradient and one for the weight gradient.

Projecting first costs more when a unit widens its input (the expanding block, 2 -> C):
mixing then runs on C channels instead of 2.  That unit mixes first (:func:`mix_then_project`).
"""

from __future__ import annotations

import torch

_PER_SAMPLE_MIN_COLUMNS = 256  # below this many frames x joints one batched call wins on a CPU


def _per_sample(x: torch.Tensor) -> bool:
    """On a CPU one GEMM per sample beats a batched call with a broadcast weight for large
    samples (MKL runs the batched form at about 2/3 of the speed); a GPU wants one call."""
    return x.device.type == "cpu" and x.shape[-1] >= _PER_SAMPLE_MIN_COLUMNS


def _weight_times(weight: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``weight (R, C) @ x (N, C, L)`` -> (N, R, L)."""
    n, _, columns = x.shape
    out = torch.empty(n, weight.shape[0], columns, dtype=x.dtype, device=x.device)
    if _per_sample(x):
        for i in range(n):
            torch.mm(weight, x[i], out=out[i])
    else:
        torch.bmm(weight.expand(n, -1, -1), x, out=out)
    return out


class ProjectMix(torch.autograd.Function):
    """Graph convolution core, projection first.

    Inputs: x (N, C, T, V); ``weight`` (K * (2 C' + O), C): for each subset k the rows of
    theta_k, phi_k and the projection W_k; ``bias`` (K * 2 C'): theta_k's and phi_k's biases;
    ``adjacency`` (K, V, V) = skeleton + learned matrices.
    Output (N, O, T, V) = sum_k (W_k x) (softmax_v(theta_k^T phi_k / (C' T)) + A_k), without the
    projection bias.
    """

    @staticmethod
    def forward(ctx, x, weight, bias, adjacency, inter: int, out_channels: int):
        n, c, t, v = x.shape
        k = adjacency.shape[0]
        rows = weight.shape[0] // k
        o = out_channels
        emb = _weight_times(weight, x.reshape(n, c, t * v))  # N, K * rows, T V
        # only theta/phi rows have a bias: adding it to them alone writes a third of emb
        emb.view(n, k, rows, t * v)[:, :, : 2 * inter].add_(bias.view(1, k, 2 * inter, 1))
        per_subset = emb.view(n * k, rows, t * v)
        theta = per_subset[:, :inter].reshape(n * k, inter * t, v)
        phi = per_subset[:, inter : 2 * inter].reshape(n * k, inter * t, v)
        scores = torch.bmm(theta.transpose(1, 2), phi).div_(inter * t)
        attention = torch.softmax(scores, dim=1).view(n, k, v, v)
        mix = attention + adjacency.to(attention.dtype)
        projected = emb.view(n, k, rows, t * v)[:, :, 2 * inter :]
        out = torch.empty(n, o, t, v, dtype=emb.dtype, device=emb.device)
        flat = out.view(n, o * t, v)
        torch.bmm(projected[:, 0].reshape(n, o * t, v), mix[:, 0], out=flat)
        for j in range(1, k):
            flat.baddbmm_(projected[:, j].reshape(n, o * t, v), mix[:, j])
        ctx.save_for_backward(x, weight, emb, attention, mix)
        ctx.sizes = (inter, o)
        return out

    @staticmethod
    def backward(ctx, grad):
        x, weight, emb, attention, mix = ctx.saved_tensors
        inter, o = ctx.sizes
        n, c, t, v = x.shape
        k = mix.shape[1]
        rows = weight.shape[0] // k
        grad = grad.contiguous().view(n, o * t, v)
        emb_k = emb.view(n, k, rows, t * v)
        d_emb = torch.empty_like(emb)
        d_emb_k = d_emb.view(n, k, rows, t * v)
        d_mix = torch.empty_like(mix)
        for j in range(k):
            projected = emb_k[:, j, 2 * inter :].reshape(n, o * t, v)
            torch.bmm(
                grad, mix[:, j].transpose(1, 2), out=d_emb_k[:, j, 2 * inter :].view(n, o * t, v)
            )
            torch.bmm(projected.transpose(1, 2), grad, out=d_mix[:, j])
        d_adjacency = d_mix.sum(0)
        # softmax over dim 2 (the source joint): dS = P (dP - sum_v dP P)
        d_scores = attention * (d_mix - (d_mix * attention).sum(dim=2, keepdim=True))
        d_scores = d_scores.div_(inter * t).view(n * k, v, v)
        per_subset = emb.view(n * k, rows, t * v)
        d_per_subset = d_emb.view(n * k, rows, t * v)
        theta = per_subset[:, :inter].reshape(n * k, inter * t, v)
        phi = per_subset[:, inter : 2 * inter].reshape(n * k, inter * t, v)
        torch.bmm(
            phi, d_scores.transpose(1, 2), out=d_per_subset[:, :inter].view(n * k, inter * t, v)
        )
        torch.bmm(theta, d_scores, out=d_per_subset[:, inter : 2 * inter].view(n * k, inter * t, v))
        xf = x.reshape(n, c, t * v)
        d_x = d_weight = None
        if ctx.needs_input_grad[0]:
            d_x = _weight_times(weight.t(), d_emb).view(n, c, t, v)
        if ctx.needs_input_grad[1] and _per_sample(xf):
            d_weight = torch.zeros_like(weight)
            for i in range(n):
                d_weight.addmm_(d_emb[i], xf[i].t())
        elif ctx.needs_input_grad[1]:
            d_weight = torch.bmm(d_emb, xf.transpose(1, 2)).sum(0)
        d_bias = d_emb_k[:, :, : 2 * inter].sum(dim=(0, 3)).reshape(-1)
        return d_x, d_weight, d_bias, d_adjacency, None, None


def _project_then_mix_ops(x, weight, bias, adjacency, inter: int, o: int) -> torch.Tensor:
    """:class:`ProjectMix`'s forward from standard operations, differentiated by autograd:
    for bf16 autocast and torch.compile, which need to see (and may fuse) every operation."""
    n, c, t, v = x.shape
    k = adjacency.shape[0]
    rows = weight.shape[0] // k
    zeros = bias.new_zeros(k, rows - 2 * inter)
    full_bias = torch.cat([bias.reshape(k, 2 * inter), zeros], dim=1).reshape(-1)
    emb = torch.nn.functional.conv2d(x, weight.reshape(-1, c, 1, 1), full_bias)
    per_subset = emb.reshape(n * k, rows, t * v)
    theta = per_subset[:, :inter].reshape(n * k, inter * t, v)
    phi = per_subset[:, inter : 2 * inter].reshape(n * k, inter * t, v)
    scores = torch.bmm(theta.transpose(1, 2), phi) / (inter * t)
    mix = torch.softmax(scores, dim=1).reshape(n, k, v, v) + adjacency
    projected = per_subset[:, 2 * inter :].reshape(n * k, o * t, v)
    mixed = torch.bmm(projected, mix.to(projected.dtype).reshape(n * k, v, v))
    return mixed.reshape(n, k, o, t, v).sum(1)


def project_then_mix(
    x: torch.Tensor,
    theta: list,
    phi: list,
    project: list,
    adjacency: torch.Tensor,
    affine: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> torch.Tensor:
    """sum_k W_k (x M_k) + b_k for the subsets' 1x1 convolutions ``theta``/``phi``/``project``
    (lists of nn.Conv2d), via :class:`ProjectMix`.  ``affine`` = (scale, shift) per output
    channel is applied too, folded into the projection (an inference-mode BatchNorm)."""
    c = x.shape[1]
    inter = theta[0].out_channels
    o = project[0].out_channels
    scale = affine[0].view(o, 1) if affine is not None else None
    weight = torch.cat(
        [
            w.view(-1, c) if w is not parts[2].weight or scale is None else w.view(-1, c) * scale
            for parts in zip(theta, phi, project, strict=True)
            for w in (parts[0].weight, parts[1].weight, parts[2].weight)
        ]
    )
    bias = torch.cat(
        [b for parts in zip(theta, phi, strict=True) for b in (parts[0].bias, parts[1].bias)]
    )
    out_bias = sum(conv.bias for conv in project)
    if affine is not None:
        out_bias = out_bias * affine[0] + affine[1]
    if torch.is_autocast_enabled(x.device.type) or torch.compiler.is_compiling():
        return _project_then_mix_ops(x, weight, bias, adjacency, inter, o) + out_bias.view(
            1, o, 1, 1
        )
    out = ProjectMix.apply(x.contiguous(), weight, bias, adjacency, inter, o)
    return out.add_(out_bias.view(1, o, 1, 1))  # a fresh tensor: no copy needed


def mix_then_project(
    x: torch.Tensor,
    theta: list,
    phi: list,
    project: list,
    adjacency: torch.Tensor,
    affine: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> torch.Tensor:
    """The same sum, mixing the (few) input channels first: for units that widen their input."""
    n, c, t, v = x.shape
    k = adjacency.shape[0]
    inter = theta[0].out_channels
    weight = torch.cat([conv.weight for conv in (*theta, *phi)])
    bias = torch.cat([conv.bias for conv in (*theta, *phi)])
    embedded = torch.nn.functional.conv2d(x, weight, bias)  # N, 2 K C', T, V
    theta_x = embedded[:, : k * inter].reshape(n * k, inter * t, v)
    phi_x = embedded[:, k * inter :].reshape(n * k, inter * t, v)
    scores = torch.bmm(theta_x.transpose(1, 2), phi_x) / (inter * t)
    mix = torch.softmax(scores, dim=1).reshape(n, k, v, v) + adjacency
    mixed = torch.matmul(x.reshape(n, 1, c * t, v), mix)  # N, K, C T, V
    project_weight = torch.cat([conv.weight for conv in project], dim=1)  # O, K C, 1, 1
    project_bias = sum(conv.bias for conv in project)
    if affine is not None:
        project_weight = project_weight * affine[0].view(-1, 1, 1, 1)
        project_bias = project_bias * affine[0] + affine[1]
    return torch.nn.functional.conv2d(mixed.reshape(n, k * c, t, v), project_weight, project_bias)


def inference_affine(bn: torch.nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """An inference-mode BatchNorm as y = scale x + shift."""
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    return scale, bn.bias - bn.running_mean * scale
