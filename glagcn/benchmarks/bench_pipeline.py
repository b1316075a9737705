"""Where a training run's time goes besides the model: the data pipeline, the training loop
and whole-sequence evaluation of the 243-frame model.

``python benchmarks/bench_pipeline.py --tag NAME [--out DIR]`` measures

* ``batch_ms``: assembling one training batch (512 windows of 243 frames, 2D inputs + 3D
  targets, random flips) and having it on the training device, as the training loop gets it;
* ``train_frames_per_s``: the real training step (``training_step``: forward, backward,
  optimizer, loss sums) over the real batches, on H36M-shaped arrays (median step);
* ``eval_frames_per_s``: whole-sequence prediction with test-time flip (``predict_sequence``),
  the path of validation, testing and ``predict.py``;

and files the figures under ``NAME`` in ``pipeline_<device>.json`` in
``benchmarks/bench_pipeline/`` (or ``--out``; other tags
kept), so the same command run on two commits gives a before/after table in
``pipeline_<device>.md``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import time
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf

from glagcn.data.batching import WindowedPoses
from glagcn.data.sequences import PoseSequence
from glagcn.evaluation import predict_sequence
from glagcn.model import GLAGCN
from glagcn.model.glagcn import ARCHITECTURES
from glagcn.skeleton import H36M_17
from glagcn.training import training_step
from trilab.bench import (
    Column,
    command_line,
    cuda_sync,
    describe,
    interleaved,
    machine,
    write_report,
)
from trilab.device import select_device

RESULTS = Path(__file__).resolve().with_suffix("")  # benchmarks/<this script's name>/
RECEPTIVE_FIELD = 243
H36M_TRAINING_FRAMES = 1_559_752


def synthetic_sequences(
    total_frames: int, frames_per_sequence: int, seed: int = 0
) -> list[PoseSequence]:
    """Random H36M-shaped sequences: the pipeline's cost does not depend on the values."""
    rng = np.random.default_rng(seed)
    count = max(total_frames // frames_per_sequence, 1)
    return [
        PoseSequence(
            subject="S1",
            action=f"action{i}",
            camera=i % 4,
            keypoints_2d=rng.standard_normal((frames_per_sequence, 17, 2), dtype=np.float32),
            poses_3d=0.2 * rng.standard_normal((frames_per_sequence, 17, 3), dtype=np.float32),
        )
        for i in range(count)
    ]


def time_batches(
    windows: WindowedPoses, batch_size: int, device: torch.device, repeats: int
) -> float:
    """Median milliseconds from asking for a batch to having it on ``device``."""
    generator = np.random.default_rng(0)

    def epochs():
        while True:
            yield from windows.iterate(batch_size, shuffle=True, generator=generator)

    batches = epochs()

    def next_batch() -> None:
        keypoints, poses = next(batches)
        keypoints.to(device, non_blocking=True)
        poses.to(device, non_blocking=True)

    timing = interleaved(
        {"batch": next_batch}, repeats=repeats, warmup=1, sync=cuda_sync(device), cpu_clock=None
    )["batch"]
    return 1000 * timing.median


def time_training(
    windows: WindowedPoses, device: torch.device, batch_size: int, steps: int
) -> float:
    """Frames per second of the median training step over ``steps`` batches, after one
    warm-up step."""
    torch.manual_seed(0)
    model = GLAGCN(H36M_17, ARCHITECTURES[windows.receptive_field], channels=96).to(device)
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    cfg = OmegaConf.create(
        {
            "model": {"sequence_branch": True},
            "train": {"sequence_loss_weight": 1.0, "amp": device.type == "cuda"},
        }
    )
    step = training_step(model, optimizer, cfg, device)
    generator = np.random.default_rng(0)

    def epochs():
        while True:
            yield from windows.iterate(batch_size, shuffle=True, generator=generator)

    batches, frames = epochs(), []

    def one_step() -> None:
        frames.append(step(next(batches)).sums["frames"])

    timing = interleaved(
        {"step": one_step}, repeats=steps, warmup=1, sync=cuda_sync(device), cpu_clock=None
    )["step"]
    return float(np.mean(frames[1:])) / timing.median


def time_evaluation(
    device: torch.device, frames: int, repeats: int, receptive_field: int = RECEPTIVE_FIELD
) -> float:
    """Frames per second of whole-sequence prediction with test-time flip (median call)."""
    torch.manual_seed(0)
    model = GLAGCN(H36M_17, ARCHITECTURES[receptive_field], channels=96).to(device).eval()
    keypoints = synthetic_sequences(frames, frames, seed=1)[0].keypoints_2d
    predict_sequence(model, keypoints[:16], H36M_17, device, flip_test=True)  # warm-up
    timing = interleaved(
        {"predict": lambda: predict_sequence(model, keypoints, H36M_17, device, flip_test=True)},
        repeats=repeats,
        warmup=0,
        sync=cuda_sync(device),
        cpu_clock=None,
    )["predict"]
    return frames / timing.median


def _commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).parent,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def measure(
    device: torch.device,
    total_frames: int,
    train_batch: int,
    train_steps: int,
    eval_frames: int,
    eval_repeats: int,
    data_batch: int = 512,
    receptive_field: int = RECEPTIVE_FIELD,
) -> dict:
    sequences = synthetic_sequences(total_frames, min(3000, total_frames))
    started = time.perf_counter()
    windows = WindowedPoses(sequences, receptive_field, H36M_17, flip_augment=True)
    setup_s = time.perf_counter() - started
    batch_ms = time_batches(windows, data_batch, device, repeats=10)
    row = {
        "commit": _commit(),
        "receptive_field": receptive_field,
        "frames_in_dataset": windows.num_frames,
        "windows_setup_s": setup_s,
        "batch_size_data": data_batch,
        "batch_ms": batch_ms,
        "data_s_per_h36m_epoch": batch_ms / 1000 * -(-H36M_TRAINING_FRAMES // data_batch),
        "train_batch": train_batch,
        "train_steps": train_steps,
        "train_frames_per_s": time_training(windows, device, train_batch, train_steps),
        "eval_sequence_frames": eval_frames,
        "eval_frames_per_s": time_evaluation(device, eval_frames, eval_repeats, receptive_field),
    }
    print(json.dumps(row))
    return row


COLUMNS = (
    Column("tag", "tag"),
    Column("commit", "commit"),
    Column("batch of {batch_size_data} ready on device (ms)", "batch_ms", "{:.1f}"),
    Column("data time per H36M epoch (s)", "data_s_per_h36m_epoch", "{:.0f}"),
    Column("training loop frames/s (batch {train_batch})", "train_frames_per_s", "{:.2f}"),
    Column("sequence prediction + flip frames/s", "eval_frames_per_s", "{:.2f}"),
)


def earlier_runs(stem: Path) -> list[dict]:
    """The rows already filed under ``stem`` (older files keep them as ``runs`` by tag)."""
    path = stem.with_name(stem.name + ".json")
    if not path.is_file():
        return []
    payload = json.loads(path.read_text())
    if "rows" in payload:
        return payload["rows"]
    return [{"tag": tag, **row} for tag, row in payload.get("runs", {}).items()]


def report(rows: list[dict], stem: Path) -> Path:
    frames = rows[0].get("receptive_field", RECEPTIVE_FIELD)
    notes = [
        "Data: random H36M-shaped sequences (3,000 frames each), edge-padded windows as in "
        "training. Data time per H36M epoch = batch time x 3,047 batches of 512 (1.56 M "
        "training frames): host time during which, without overlap, the GPU would wait.",
        "Run once per tag, on the commit named in each row; each row's JSON keeps its "
        "machine and command; the machine above is that of the last run.",
    ]
    _, md = write_report(
        stem,
        rows,
        COLUMNS,
        f"GLA-GCN pipeline, {frames}-frame model",
        "python benchmarks/bench_pipeline.py --tag TAG",
        notes=notes,
    )
    return md


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--tag", default="current")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--frames", type=int, default=300_000)
    parser.add_argument("--train-batch", type=int, default=None)
    parser.add_argument("--train-steps", type=int, default=None)
    parser.add_argument("--eval-frames", type=int, default=None)
    parser.add_argument(
        "--receptive-field", type=int, default=RECEPTIVE_FIELD, choices=sorted(ARCHITECTURES)
    )
    args = parser.parse_args(argv)
    device = select_device(args.device)
    on_gpu = device.type == "cuda"
    row = measure(
        device,
        args.frames,
        train_batch=args.train_batch or (512 if on_gpu else 8),
        train_steps=args.train_steps or (20 if on_gpu else 3),
        eval_frames=args.eval_frames or (5000 if on_gpu else 256),
        eval_repeats=3 if on_gpu else 1,
        receptive_field=args.receptive_field,
    )
    info = machine()
    row = {
        "tag": args.tag,
        **row,
        "machine": describe(info),
        "command": command_line(argv, script=__file__),
    }
    stem = args.out / f"pipeline_{'cuda' if on_gpu else 'cpu'}"
    rows = earlier_runs(stem)
    tags = [r.get("tag") for r in rows]
    if args.tag in tags:  # a re-measurement keeps its place in the table
        rows[tags.index(args.tag)] = row
    else:
        rows.append(row)
    print(f"written {report(rows, stem)}")


if __name__ == "__main__":
    main()
