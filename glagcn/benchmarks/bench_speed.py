"""Training-step speed of this model against the straightforward form of the same network.

``python benchmarks/bench_speed.py [--out DIR] [--device cpu|cuda] [--threads 2] [--amp]
[--compile]`` writes ``speed_<device>[_amp][_compile].json`` and ``.md`` into
``benchmarks/bench_speed/`` (or ``--out``).

The reference ("the authors' model") is :mod:`glagcn.model.frozen_reference`, a frozen copy of
this project's layer code as it was before the speed work (commit 1adab74 with the authors'
temporal padding), with the same parameter names, so one state dict loads into both; the
benchmark checks that both give the same outputs and gradients for those weights before it
times anything.

Timing: identical batches, one optimizer (Adam), the reference and this model alternated step by
step in one process (so load from other processes affects both alike), the median of the
rounds reported.  The authors' configuration: C = 96, shared output layer, no sequence branch,
dropout 0.1 between blocks and inside the graph units.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from glagcn.model.frozen_reference import compare_outputs, model_pair
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

RESULTS = Path(__file__).resolve().with_suffix("")  # benchmarks/<this script's name>/


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
    parser.add_argument("--out", type=Path, default=RESULTS)
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
    if on_gpu:
        # torch runs cuDNN convolutions in TF32 by default but batched matrix products in full
        # fp32: the reference's Conv2d layers would get TF32 and the fast model's products
        # not, an unfair race whose outputs differ by ~1e-3.  Both in full fp32 instead.
        torch.backends.cudnn.allow_tf32 = False
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
        "Reference: the frozen straightforward form in `glagcn.model.frozen_reference` (the "
        "authors' computation as this project implemented it at commit 1adab74, with "
        "their temporal padding). Same weights in both; C = 96, shared output layer, no "
        "sequence branch, dropout 0.1; Adam; one step = forward + loss + backward + "
        "optimizer step on the same batch; the two alternated step by step, median of "
        f"{rounds} rounds after 2 warm-up rounds."
        + (" TF32 off (cuDNN's default is on): both models in full fp32." if on_gpu else "")
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
