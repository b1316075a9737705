"""Images/s of the backbone alone vs DRAG (448x448, batch 16) and clustering time per 1,000 images.

Inference in eval mode, warm-up iterations excluded, CUDA synchronised before reading clocks.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

from drag.cluster import kmeans_channels, peak_positions
from drag.model.backbone import Backbone
from drag.model.drag import DRAG
from trilab.device import select_device
from trilab.metrics import Timer


@torch.no_grad()
def interleaved_rates(fns: dict, images: torch.Tensor, warmup: int, iters: int, device) -> dict:
    """Images/s of each function from the median of per-batch times, batches interleaved so
    that load from other processes drifts over all of them alike."""
    # on CPU one model warms the shared backbone for all; on GPU each gets its own warm-up
    for fn in list(fns.values())[: 1 if device.type == "cpu" else None]:
        for _ in range(warmup):
            fn(images)
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(iters):
        for name, fn in fns.items():
            with Timer(sync_cuda=device.type == "cuda") as timer:
                fn(images)
            times[name].append(timer.seconds)
    return {name: images.shape[0] / float(np.median(t)) for name, t in times.items()}


def bench_arch(arch, device, size, batch, groups, warmup, iters, cluster_images=1000) -> dict:
    torch.manual_seed(0)
    backbone = Backbone(arch).to(device).eval()
    images = torch.randn(batch, 3, size, size, device=device)
    hw = tuple(backbone.features(images[:1]).shape[2:])
    model = DRAG(backbone, groups, hw).to(device).eval()

    def peaks(x):
        return peak_positions(backbone.features(x)).cpu()

    rates = interleaved_rates(
        {"backbone": backbone, "drag": model, "peaks": peaks}, images, warmup, iters, device
    )
    backbone_rate, drag_rate, peak_rate = rates["backbone"], rates["drag"], rates["peaks"]
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
    }


def write_outputs(results: list[dict], meta: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    tag = meta["device_kind"]
    (out / f"bench_{tag}.json").write_text(json.dumps({"meta": meta, "results": results}, indent=2))
    lines = [
        f"# DRAG throughput ({meta['device']})",
        "",
        f"Command: `{meta['command']}`; torch {meta['torch']}, {meta['threads']} threads, "
        f"{meta['warmup']} warm-up + median of {meta['iters']} interleaved timed batches "
        "per model, eval mode.",
        "",
        "| backbone | size | batch | backbone img/s | DRAG img/s | DRAG overhead | "
        "DRAG extra params (M) | clustering s / 1,000 images (peaks + k-means) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['arch']} | {r['image_size']} | {r['batch']} | {r['backbone_images_per_s']:.2f}"
            f" | {r['drag_images_per_s']:.2f} | {r['drag_overhead_pct']:.1f}% | "
            f"{r['drag_extra_params_M']:.2f} | {r['cluster_total_s_per_1000']:.1f} "
            f"({r['cluster_peak_extraction_s_per_1000']:.1f} + "
            f"{r['cluster_kmeans_s_per_1000']:.1f}) |"
        )
    (out / f"bench_{tag}.md").write_text("\n".join(lines) + "\n")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.2))
    x = np.arange(len(results))
    ax.bar(x - 0.2, [r["backbone_images_per_s"] for r in results], 0.4, label="backbone")
    ax.bar(x + 0.2, [r["drag_images_per_s"] for r in results], 0.4, label="DRAG")
    ax.set_xticks(x, [r["arch"] for r in results])
    ax.set_ylabel("images / s")
    ax.set_title(f"448x448, batch 16, {meta['device']}", fontsize=9)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / f"bench_{tag}.png", dpi=100)
    plt.close(fig)
    print("\n".join(lines))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="benchmarks")
    parser.add_argument("--archs", nargs="+", default=["resnet18", "resnet50", "resnet101"])
    parser.add_argument("--size", type=int, default=448)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--groups", type=int, default=4)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--iters", type=int, default=2)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args(argv)
    device = select_device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor()
    meta = {
        "device": name or "cpu",
        "device_kind": device.type,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "warmup": args.warmup,
        "iters": args.iters,
        "command": "python bench.py " + " ".join(argv if argv is not None else sys.argv[1:]),
    }
    results = []
    for arch in args.archs:
        start = time.perf_counter()
        results.append(
            bench_arch(arch, device, args.size, args.batch, args.groups, args.warmup, args.iters)
        )
        print(f"{arch}: {time.perf_counter() - start:.1f}s", flush=True)
    write_outputs(results, meta, Path(args.out))
