"""Training-step speed of this model against the straightforward form of the same network.

``python benchmarks/bench_speed.py --out benchmarks [--device cpu|cuda] [--threads 2] [--amp]
[--compile]`` writes ``benchmarks/speed_<device>[_amp][_compile].json`` and ``.md``.

The reference ("the authors' model") is a frozen copy of this project's layer code as it was
before the speed work (commit 1adab74 with the authors' temporal padding): per adjacency subset
two 1x1 convolutions, a batched product, a softmax, a product with the mixing matrix and a 1x1
projection, as in the authors' ``unit_gcn``; then their ``unit_tcn`` and ``TCN_GCN_unit``.  It
has the same parameter names, so one state dict loads into both; the benchmark checks that both
give the same outputs and gradients for those weights before it times anything.

Timing: identical batches, one optimizer (Adam), the reference and this model alternated step by
step in one process (so load from other processes affects both alike), the median of the
rounds reported.  The authors' configuration: C = 96, shared output layer, no sequence branch,
dropout 0.1 between blocks and inside the graph units.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import time
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from glagcn.model import GLAGCN
from glagcn.model.glagcn import ARCHITECTURES
from glagcn.model.layers import JointwiseLinear, strided_offset
from glagcn.skeleton import H36M_17, Skeleton
from trilab.bench import (
    Column,
    Timing,
    command_line,
    cuda_sync,
    interleaved,
    ratios,
    write_report,
)
from trilab.device import select_device

# ---------------------------------------------------------------------------------------------
# The frozen reference.  Do not optimise: it is what the speed-up is measured against.
# ---------------------------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------------------------


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


def time_training_steps(
    models: dict[str, nn.Module],
    batch: int,
    receptive_field: int,
    device: torch.device,
    rounds: int,
    warmup: int = 2,
    amp: bool = False,
    clock=time.perf_counter,
) -> dict[str, Timing]:
    """Seconds per training step (forward, MPJPE loss, backward, Adam step) of each model,
    the models alternated step by step on the same batch.  ``clock=time.process_time`` counts
    this process's CPU time: with one thread, time lost to other processes is not counted."""
    torch.manual_seed(1)
    windows = torch.randn(batch, receptive_field, 17, 2, device=device)
    target = torch.randn(batch, 1, 17, 3, device=device) * 0.2
    optimizers = {
        name: torch.optim.Adam(model.parameters(), lr=1e-4) for name, model in models.items()
    }
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp)

    def step(model: nn.Module, optimizer: torch.optim.Optimizer) -> None:
        with autocast:
            loss = torch.linalg.vector_norm(model(windows).float() - target, dim=-1).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for model in models.values():
        model.train()
    steps = {
        name: (lambda m=model, o=optimizers[name]: step(m, o)) for name, model in models.items()
    }
    return interleaved(
        steps, repeats=rounds, warmup=warmup, sync=cuda_sync(device), clock=clock, cpu_clock=None
    )


def benchmark(
    device: torch.device,
    receptive_fields: Sequence[int],
    batches: Sequence[int],
    rounds: int,
    amp: bool = False,
    compile_model: bool = False,
    clock=time.perf_counter,
) -> list[dict]:
    rows = []
    for receptive_field in receptive_fields:
        fast, reference = model_pair(receptive_field)
        # equal outputs and gradients on the device that is timed (fp32, dropout off)
        check_fast, check_reference = model_pair(receptive_field, dropout=0.0)
        windows = torch.randn(4, receptive_field, 17, 2, device=device)
        differences = compare_outputs(check_fast.to(device), check_reference.to(device), windows)
        fast, reference = fast.to(device), reference.to(device)
        runnable = {"reference": reference, "this": fast}
        compile_seconds = None
        if compile_model:
            started = time.perf_counter()
            runnable = {name: torch.compile(model) for name, model in runnable.items()}
            time_training_steps(runnable, 2, receptive_field, device, rounds=1, warmup=0, amp=amp)
            compile_seconds = time.perf_counter() - started
        for batch in batches:
            times = time_training_steps(
                runnable, batch, receptive_field, device, rounds, amp=amp, clock=clock
            )
            reference_s, this_s = times["reference"].median, times["this"].median
            rows.append(
                {
                    "receptive_field": receptive_field,
                    "batch": batch,
                    "reference_step_ms": 1000 * reference_s,
                    "this_step_ms": 1000 * this_s,
                    "speedup": ratios({n: t.median for n, t in times.items()}, "reference")["this"],
                    "reference_steps_ms": [round(1000 * s, 2) for s in times["reference"].samples],
                    "this_steps_ms": [round(1000 * s, 2) for s in times["this"].samples],
                    "spread": {name: round(t.spread, 3) for name, t in times.items()},
                    "max_relative_difference": differences,
                    "compile_s": compile_seconds,
                }
            )
            print(
                json.dumps({k: v for k, v in rows[-1].items() if not k.endswith("steps_ms")}),
                flush=True,
            )
    return rows


COLUMNS = (
    Column("frames", "receptive_field"),
    Column("batch", "batch"),
    Column("reference ms/step", "reference_step_ms", "{:.1f}"),
    Column("this ms/step", "this_step_ms", "{:.1f}"),
    Column("speed-up", "speedup", "**{:.2f}x**"),
    Column(
        "max rel. difference: eval out, train out (fp32) / gradients (float64)",
        "max_relative_difference",
        lambda d: (
            f"{d['eval_output']:.1e} / {d['train_output']:.1e} / {d['gradients_float64']:.1e}"
        ),
    ),
)


def report(
    rows: list[dict],
    out: Path,
    device: torch.device,
    command: str,
    variant: str = "",
    notes: Sequence[str] = (),
) -> Path:
    name = ("cuda" if device.type == "cuda" else "cpu") + variant
    _, md = write_report(
        out / f"speed_{name}",
        rows,
        COLUMNS,
        "GLA-GCN training step: this model vs the reference",
        command,
        notes=notes,
    )
    return md


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks"))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads (torch)")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--receptive-fields", type=int, nargs="+", default=[27, 81, 243])
    parser.add_argument("--batches", type=int, nargs="+", default=None)
    parser.add_argument("--amp", action="store_true", help="bf16 autocast (CUDA)")
    parser.add_argument("--compile", action="store_true", help="torch.compile both models")
    parser.add_argument(
        "--clock",
        choices=("wall", "process"),
        default="wall",
        help="process: this process's CPU time (meaningful with --threads 1)",
    )
    args = parser.parse_args(argv)
    clock = time.process_time if args.clock == "process" else time.perf_counter
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print(
            f"GPU rows skipped: --device {args.device} but no CUDA device is available "
            f"(torch {torch.__version__}); nothing written"
        )
        return
    device = select_device(args.device)
    on_gpu = device.type == "cuda"
    if device.type == "cpu":
        torch.set_num_threads(args.threads)
    batches = args.batches or ([64, 512] if on_gpu else [8, 32])
    rounds = args.rounds or (20 if on_gpu else 6)
    rows = benchmark(device, args.receptive_fields, batches, rounds, args.amp, args.compile, clock)
    variant = (
        "_amp" * args.amp
        + "_compile" * args.compile
        + (f"_{args.threads}thread" if not on_gpu and args.threads != 2 else "")
        + ("_cputime" if args.clock == "process" else "")
    )
    command = command_line(argv, script=__file__)
    notes = [
        "Reference: the frozen straightforward form in `benchmarks/bench_speed.py` (the "
        "authors' computation as this project implemented it at commit 1adab74, with "
        "their temporal padding). Same weights in both; C = 96, shared output layer, no "
        "sequence branch, dropout 0.1; Adam; one step = forward + loss + backward + "
        "optimizer step on the same batch; the two alternated step by step, median of "
        f"{rounds} rounds after 2 warm-up rounds."
    ]
    if not on_gpu:
        notes.append(
            "Timed on a shared 2-core machine: absolute times vary between runs; "
            "the alternation keeps the ratio fair."
        )
        notes.append(
            "GPU: `python benchmarks/bench_speed.py --device cuda [--amp] [--compile]` "
            "(batches 64 and 512) writes `speed_cuda*.md`; no GPU was available here."
        )
    print(f"written {report(rows, args.out, device, command, variant, notes)}")


if __name__ == "__main__":
    main()
