"""``make bench``: training-step and inference throughput of the 27/81/243-frame models.

``python benchmarks/bench.py [--out DIR] [--device auto] [--steps 3] [--amp] [--compile]``
writes ``bench_<device>[_amp][_compile].json`` and ``.md`` into ``benchmarks/bench/`` (or
``--out``).  One predicted frame =
one window; rates from the median step.  ``--amp``: bf16 autocast (CUDA); ``--compile``:
``torch.compile`` (its compile time is reported separately, not counted in the rates).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from glagcn.metrics import mpjpe
from glagcn.model import GLAGCN, count_parameters, macs_per_frame
from glagcn.model.glagcn import ARCHITECTURES
from glagcn.skeleton import H36M_17
from trilab.bench import Column, command_line, cuda_sync, interleaved, write_report
from trilab.device import select_device

RESULTS = Path(__file__).resolve().with_suffix("")  # benchmarks/<this script's name>/
H36M_TRAINING_FRAMES = 1_559_752  # S1, S5, S6, S7, S8 x 4 cameras at 50 fps


def _measure(step, repeats: int, sync) -> tuple[float, float]:
    """(seconds of the first call, which includes any compilation; median seconds of later
    calls)."""
    first = interleaved({"step": step}, repeats=1, warmup=0, sync=sync, cpu_clock=None)
    later = interleaved({"step": step}, repeats=repeats, warmup=0, sync=sync, cpu_clock=None)
    return first["step"].median, later["step"].median


def benchmark(
    device: torch.device,
    steps: int,
    train_batch: int,
    infer_batch: int,
    amp: bool = False,
    compile_model: bool = False,
    receptive_fields: tuple[int, ...] = tuple(sorted(ARCHITECTURES)),
    after_each=None,
) -> list[dict]:
    """One row per receptive field; ``after_each(rows)`` is called as each row is done (the
    report is rewritten then, so a run ended by a time limit keeps the rows it finished)."""
    rows = []
    sync = cuda_sync(device)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp)
    for receptive_field in receptive_fields:
        widths = ARCHITECTURES[receptive_field]
        # PyTorch's initialisation: the authors' graph-unit BN scale of 1e-6 gives tiny
        # gradients whose denormal Adam states would slow a CPU, unlike trained weights.
        model = GLAGCN(H36M_17, widths, channels=96, init="pytorch").to(device)
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        runnable = torch.compile(model) if compile_model else model
        x = torch.randn(train_batch, receptive_field, 17, 2, device=device)
        y = torch.randn(train_batch, receptive_field, 17, 3, device=device) * 0.2
        pad = (receptive_field - 1) // 2

        def train_step(model=runnable, optimizer=optimizer, x=x, y=y, pad=pad):
            with autocast:
                centre, sequence = model(x, return_sequence=True)
                loss = mpjpe(centre.float(), y[:, pad : pad + 1]) + mpjpe(sequence.float(), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

        model.train()
        train_first, train_seconds = _measure(train_step, steps, sync)
        model.eval()
        windows = torch.randn(infer_batch, receptive_field, 17, 2, device=device)

        @torch.no_grad()
        def infer_step(model=runnable, windows=windows):
            with autocast:
                model(windows)

        infer_first, infer_seconds = _measure(infer_step, steps, sync)
        train_rate = train_batch / train_seconds
        rows.append(
            {
                "receptive_field": receptive_field,
                "parameters": count_parameters(model),
                "gmacs_per_frame": macs_per_frame(model.cpu()) / 1e9,
                "train_batch": train_batch,
                "train_frames_per_s": train_rate,
                "infer_batch": infer_batch,
                "infer_frames_per_s": infer_batch / infer_seconds,
                "projected_h36m_epoch_h": H36M_TRAINING_FRAMES / train_rate / 3600,
                "amp_bf16": amp,
                "compiled": compile_model,
                "first_call_s": {"train": train_first, "inference": infer_first},
            }
        )
        print(json.dumps(rows[-1]))
        if after_each is not None:
            after_each(rows)
    return rows


COLUMNS = (
    Column("receptive field", "receptive_field"),
    Column("parameters", "parameters", "{:,}"),
    Column("GMACs/frame", "gmacs_per_frame", "{:.3f}"),
    Column(
        "train frames/s (batch)",
        value=lambda r: f"{r['train_frames_per_s']:.1f} ({r['train_batch']})",
    ),
    Column(
        "inference frames/s (batch)",
        value=lambda r: f"{r['infer_frames_per_s']:.1f} ({r['infer_batch']})",
    ),
    Column("projected H36M epoch (h)", "projected_h36m_epoch_h", "{:.1f}"),
)


def report(
    rows: list[dict], out: Path, device: torch.device, command: str, variant: str = ""
) -> Path:
    name = ("cuda" if device.type == "cuda" else "cpu") + variant
    first_calls = ", ".join(
        f"{r['receptive_field']}: {r['first_call_s']['train']:.0f} s train / "
        f"{r['first_call_s']['inference']:.0f} s inference"
        for r in rows
    )
    notes = [
        "Model: C = 96, per-joint output layer, sequence branch (the paper's default); "
        "one frame = one receptive-field window. Projected epoch = 1.56 M H36M training "
        "frames / training rate (model only: the data pipeline is measured by "
        "`benchmarks/bench_pipeline.py`).",
        f"bf16 autocast: {'on' if rows[0]['amp_bf16'] else 'off'}; torch.compile: "
        f"{'on' if rows[0]['compiled'] else 'off'}; first call (incl. compilation) "
        f"{first_calls}.",
    ]
    _, md = write_report(
        out / f"bench_{name}", rows, COLUMNS, "GLA-GCN throughput", command, notes=notes
    )
    return md


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--train-batch", type=int, default=None)
    parser.add_argument("--infer-batch", type=int, default=None)
    parser.add_argument("--amp", action="store_true", help="bf16 autocast")
    parser.add_argument("--compile", action="store_true", help="torch.compile the model")
    parser.add_argument(
        "--receptive-fields",
        type=int,
        nargs="+",
        default=sorted(ARCHITECTURES),
        choices=sorted(ARCHITECTURES),
    )
    args = parser.parse_args(argv)
    device = select_device(args.device)
    on_gpu = device.type == "cuda"
    train_batch = args.train_batch or (512 if on_gpu else 8)
    infer_batch = args.infer_batch or (1024 if on_gpu else 16)
    variant = "_amp" * args.amp + "_compile" * args.compile
    command = command_line(argv, script=__file__)
    rows = benchmark(
        device,
        args.steps,
        train_batch,
        infer_batch,
        args.amp,
        args.compile,
        tuple(args.receptive_fields),
        after_each=lambda done: report(done, args.out, device, command, variant),
    )
    print(f"written {report(rows, args.out, device, command, variant)}")


if __name__ == "__main__":
    main()
