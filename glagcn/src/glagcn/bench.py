"""``make bench``: training-step and inference throughput of the 27/81/243-frame models.

``python -m glagcn.bench --out benchmarks [--device auto] [--steps 3] [--amp] [--compile]``
writes ``benchmarks/bench_<device>[_amp][_compile].json`` and ``.md``.  One predicted frame =
one window.  ``--amp``: bf16 autocast (CUDA); ``--compile``: ``torch.compile`` (its compile
time is reported separately, not counted in the rates).
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path

import torch

from glagcn.metrics import mpjpe
from glagcn.model import GLAGCN, count_parameters, macs_per_frame
from glagcn.model.glagcn import ARCHITECTURES
from glagcn.skeleton import H36M_17
from trilab.device import select_device
from trilab.metrics import Timer

H36M_TRAINING_FRAMES = 1_559_752  # S1, S5, S6, S7, S8 x 4 cameras at 50 fps


def _measure(step, repeats: int, sync: bool) -> tuple[float, float]:
    """(seconds of the first call, which includes any compilation; seconds per later call)."""
    with Timer(sync_cuda=sync) as first:
        step()
    with Timer(sync_cuda=sync) as timer:
        for _ in range(repeats):
            step()
    return first.seconds, timer.seconds / repeats


def benchmark(device: torch.device, steps: int, train_batch: int, infer_batch: int,
              amp: bool = False, compile_model: bool = False,
              receptive_fields: tuple[int, ...] = tuple(sorted(ARCHITECTURES))) -> list[dict]:
    rows = []
    sync = device.type == "cuda"
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
                loss = (mpjpe(centre.float(), y[:, pad:pad + 1])
                        + mpjpe(sequence.float(), y))
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
        rows.append({
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
        })
        print(json.dumps(rows[-1]))
    return rows


def write_report(rows: list[dict], out: Path, device: torch.device, command: str,
                 variant: str = "") -> Path:
    name = ("cuda" if device.type == "cuda" else "cpu") + variant
    machine = (torch.cuda.get_device_name(device) if device.type == "cuda"
               else f"{platform.processor() or platform.machine()}, "
                    f"{torch.get_num_threads()} threads")
    out.mkdir(parents=True, exist_ok=True)
    payload = {"device": machine, "torch": torch.__version__, "command": command, "rows": rows}
    (out / f"bench_{name}.json").write_text(json.dumps(payload, indent=2))
    lines = [f"# GLA-GCN throughput ({machine})", "", f"Command: `{command}`", "",
             "| receptive field | parameters | GMACs/frame | train frames/s (batch) | "
             "inference frames/s (batch) | projected H36M epoch (h) |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['receptive_field']} | {r['parameters']:,} | "
                     f"{r['gmacs_per_frame']:.3f} | {r['train_frames_per_s']:.1f} "
                     f"({r['train_batch']}) | {r['infer_frames_per_s']:.1f} ({r['infer_batch']}) "
                     f"| {r['projected_h36m_epoch_h']:.1f} |")
    lines += ["", "Model: C = 96, per-joint output layer, sequence branch (the paper's default); "
              "one frame = one receptive-field window. Projected epoch = 1.56 M H36M training "
              "frames / training rate (model only: the data pipeline is measured by "
              "`python -m glagcn.bench_pipeline`).",
              f"bf16 autocast: {'on' if rows[0]['amp_bf16'] else 'off'}; torch.compile: "
              f"{'on' if rows[0]['compiled'] else 'off'}; first call (incl. compilation) "
              + ", ".join(f"{r['receptive_field']}: {r['first_call_s']['train']:.0f} s train / "
                          f"{r['first_call_s']['inference']:.0f} s inference" for r in rows)
              + "."]
    path = out / f"bench_{name}.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks"))
    parser.add_argument("--device", default="auto")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--train-batch", type=int, default=None)
    parser.add_argument("--infer-batch", type=int, default=None)
    parser.add_argument("--amp", action="store_true", help="bf16 autocast")
    parser.add_argument("--compile", action="store_true", help="torch.compile the model")
    parser.add_argument("--receptive-fields", type=int, nargs="+",
                        default=sorted(ARCHITECTURES), choices=sorted(ARCHITECTURES))
    args = parser.parse_args(argv)
    device = select_device(args.device)
    on_gpu = device.type == "cuda"
    train_batch = args.train_batch or (512 if on_gpu else 8)
    infer_batch = args.infer_batch or (1024 if on_gpu else 16)
    rows = benchmark(device, args.steps, train_batch, infer_batch, args.amp, args.compile,
                     tuple(args.receptive_fields))
    variant = "_amp" * args.amp + "_compile" * args.compile
    flags = (" --amp" * args.amp + " --compile" * args.compile
             + (" --receptive-fields " + " ".join(map(str, args.receptive_fields))
                if args.receptive_fields != sorted(ARCHITECTURES) else ""))
    command = f"python -m glagcn.bench --out benchmarks{flags}"
    print(f"written {write_report(rows, args.out, device, command, variant)}")


if __name__ == "__main__":
    main()
