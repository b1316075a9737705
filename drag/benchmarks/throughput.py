"""Images/s of the backbone alone vs DRAG (448x448, batch 16) and clustering time per 1,000 images.

    python benchmarks/throughput.py [--out DIR] [--archs resnet18 resnet50] [--iters 3]

Writes ``bench_<device>.{json,md,png}`` into ``benchmarks/throughput/`` (or ``--out``).
Inference in eval mode; the three models are timed in turns (trilab.bench.interleaved) so load
from other processes falls on all of them alike, and CUDA is synchronised around every timed
batch.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from drag.cluster import kmeans_channels, peak_positions
from drag.model.backbone import Backbone
from drag.model.drag import DRAG
from trilab.bench import Column, command_line, cuda_sync, describe, interleaved, machine
from trilab.bench import write_report as write_json_markdown
from trilab.device import select_device

RESULTS = Path(__file__).resolve().with_suffix("")  # benchmarks/<this script's name>/

COLUMNS = [
    Column("backbone", "arch"),
    Column("size", "image_size"),
    Column("batch", "batch"),
    Column("backbone img/s", "backbone_images_per_s", "{:.2f}"),
    Column("DRAG img/s", "drag_images_per_s", "{:.2f}"),
    Column("DRAG overhead", "drag_overhead_pct", "{:.1f}%"),
    Column("DRAG extra params (M)", "drag_extra_params_M", "{:.2f}"),
    Column(
        "clustering s / 1,000 images (peaks + k-means)",
        value=lambda r: (
            r["cluster_total_s_per_1000"],
            r["cluster_peak_extraction_s_per_1000"],
            r["cluster_kmeans_s_per_1000"],
        ),
        fmt=lambda v: f"{v[0]:.1f} ({v[1]:.1f} + {v[2]:.1f})",
    ),
]


def bench_arch(
    arch: str,
    device: torch.device,
    size: int,
    batch: int,
    groups: int,
    warmup: int,
    iters: int,
    cluster_images: int = 1000,
) -> dict[str, Any]:
    torch.manual_seed(0)
    backbone = Backbone(arch).to(device).eval()
    images = torch.randn(batch, 3, size, size, device=device)
    hw = tuple(backbone.features(images[:1]).shape[2:])
    model = DRAG(backbone, groups, hw).to(device).eval()

    def peaks():
        return peak_positions(backbone.features(images)).cpu()

    with torch.no_grad():
        timings = interleaved(
            {"backbone": lambda: backbone(images), "drag": lambda: model(images), "peaks": peaks},
            repeats=iters,
            warmup=warmup,
            sync=cuda_sync(device),
        )
    backbone_rate, drag_rate, peak_rate = (
        batch / timings[name].median for name in ("backbone", "drag", "peaks")
    )
    rng = np.random.default_rng(0)
    descriptors = rng.random((backbone.channels, 2 * cluster_images), dtype=np.float32)
    start = time.perf_counter()
    kmeans_channels(descriptors, groups, seed=0, n_init=10)
    # k-means cost grows about linearly with the descriptor length; exact at the default 1,000
    kmeans_seconds = (time.perf_counter() - start) * 1000 / cluster_images
    return {
        "arch": arch,
        "image_size": size,
        "batch": batch,
        "groups": groups,
        "backbone_images_per_s": backbone_rate,
        "drag_images_per_s": drag_rate,
        "drag_overhead_pct": 100 * (backbone_rate / drag_rate - 1),
        "backbone_params_M": sum(p.numel() for p in backbone.trunk.parameters()) / 1e6,
        "drag_extra_params_M": sum(
            p.numel() for n, p in model.named_parameters() if not n.startswith("backbone.")
        )
        / 1e6,
        "cluster_peak_extraction_s_per_1000": 1000 / peak_rate,
        "cluster_kmeans_s_per_1000": kmeans_seconds,
        "cluster_total_s_per_1000": 1000 / peak_rate + kmeans_seconds,
        "spread": {name: t.spread for name, t in timings.items()},
    }


def write_outputs(
    results: list[dict],
    out: Path,
    device_kind: str,
    warmup: int,
    iters: int,
    command: str,
    info: dict[str, Any] | None = None,
) -> tuple[Path, Path]:
    info = info if info is not None else machine()
    note = (
        f"{warmup} warm-up + median of {iters} interleaved timed batches per model, eval "
        "mode. Within one row the backbone vs DRAG comparison is the meaningful part: on a "
        "shared machine absolute rates drift between runs."
    )
    paths = write_json_markdown(
        out / f"bench_{device_kind}",
        results,
        COLUMNS,
        "DRAG throughput",
        command,
        info,
        [note],
        {"warmup": warmup, "iters": iters},
    )
    try:
        import matplotlib
    except ImportError:  # the numbers are in the JSON; a GPU machine may lack matplotlib
        return paths
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.2))
    x = np.arange(len(results))
    ax.bar(x - 0.2, [r["backbone_images_per_s"] for r in results], 0.4, label="backbone")
    ax.bar(x + 0.2, [r["drag_images_per_s"] for r in results], 0.4, label="DRAG")
    ax.set_xticks(x, [r["arch"] for r in results])
    ax.set_ylabel("images / s")
    first = results[0] if results else {"image_size": "-", "batch": "-"}
    ax.set_title(f"{first['image_size']}px, batch {first['batch']}, {describe(info)}", fontsize=7)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / f"bench_{device_kind}.png", dpi=100)
    plt.close(fig)
    return paths


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--archs", nargs="+", default=["resnet18", "resnet50", "resnet101"])
    parser.add_argument("--size", type=int, default=448)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--groups", type=int, default=4)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--iters", type=int, default=2)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args(argv)
    device = select_device(args.device)
    results = []
    for arch in args.archs:
        start = time.perf_counter()
        results.append(
            bench_arch(arch, device, args.size, args.batch, args.groups, args.warmup, args.iters)
        )
        print(f"{arch}: {time.perf_counter() - start:.1f}s", flush=True)
    _, md_path = write_outputs(
        results, args.out, device.type, args.warmup, args.iters, command_line(argv, __file__)
    )
    print(md_path.read_text())
    return results


if __name__ == "__main__":
    main()
