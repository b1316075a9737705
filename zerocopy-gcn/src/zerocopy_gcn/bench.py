"""Benchmarks: gather bandwidth, sampler rate and end-to-end epoch times per fetch mode.

    python bench.py --out benchmarks          (make -C zerocopy-gcn bench)
    python bench.py --sections gather --table-mb 1024 --base-offsets 0 16   (parts of it)

Gather bandwidth is useful bytes delivered per second, each beside a plain copy of the same
bytes (pinned host-to-device memcpy on a GPU; host memcpy on a CPU-only machine), measured
interleaved: every repeat times each variant once in turn, so load from other processes hits
all variants alike; the median is reported.  GPU modes run only where CUDA (and, for zero-copy,
CuPy) is present; otherwise they are listed as skipped.  Epochs: a fixed number of minibatches
per epoch (``--max-batches``); the first epoch starts with the graph's files evicted from the
page cache (cold) and is reported apart from the later (warm) ones.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from zerocopy_gcn.fetch import make_fetcher
from zerocopy_gcn.graph import ensure_rmat, load_graph, preset_spec
from zerocopy_gcn.pagecache import evict, resident_fraction
from zerocopy_gcn.sampler_bench import (
    SAMPLER_LOADS,
    bench_cpu_samplers,
    bench_gpu_sampler,
    sampler_markdown,
)
from zerocopy_gcn.sampling import NeighborSampler, default_num_threads, seed_batches
from zerocopy_gcn.training import preset_folder

ROW_BYTES = [64, 128, 256, 512, 1024, 2048, 4096]
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
SECTIONS = ("gather", "sampler", "cache", "epochs", "multi_gpu")
LINE_BYTES = 128
TIMES = ("epoch_s", "sample_s", "fetch_s", "train_s", "stall_s")


def cupy_available() -> bool:
    try:
        import cupy  # noqa: F401
    except ImportError:
        return False
    return True


def interleaved(variants: dict[str, Callable[[], Any]], repeats: int,
                sync_cuda: bool) -> dict[str, float]:
    """Median seconds per variant; one warm-up call each, then repeats taken in turn."""
    for fn in variants.values():
        fn()  # warm-up (page faults, kernel compilation, allocator, ring buffers)
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(repeats):
        for name, fn in variants.items():
            if sync_cuda:
                torch.cuda.synchronize()
            start = time.perf_counter()
            fn()
            if sync_cuda:
                torch.cuda.synchronize()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def machine_info() -> dict[str, Any]:
    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = {"cpu": cpu, "cpu_count": os.cpu_count(), "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(), "cuda": torch.cuda.is_available(),
            "cupy": cupy_available()}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
    return info


def ceiling_gbps(table_bytes: int, repeats: int) -> dict[str, float]:
    """Contiguous copy bandwidth: host memcpy, and pinned H2D where a GPU exists."""
    source = torch.empty(table_bytes, dtype=torch.uint8)
    source.fill_(1)
    target = torch.empty_like(source)
    variants = {"host_memcpy_gbps": lambda: target.copy_(source)}
    if torch.cuda.is_available():
        pinned = source.pin_memory()
        device = torch.empty(table_bytes, dtype=torch.uint8, device="cuda")
        variants["pinned_h2d_gbps"] = lambda: device.copy_(pinned, non_blocking=True)
    seconds = interleaved(variants, repeats, torch.cuda.is_available())
    return {name: table_bytes / s / 1e9 for name, s in seconds.items()}


def gather_modes() -> tuple[list[str], list[str]]:
    """Labels of the runnable gather variants and of the skipped ones with reasons."""
    modes = ["memcpy", "conventional"]
    skipped = []
    if torch.cuda.is_available():
        modes += ["gpu"]
        if cupy_available():
            modes += ["zerocopy-naive", "zerocopy-aligned"]
        else:
            skipped += ["gather zerocopy-naive/aligned: CuPy not installed"]
    else:
        modes += ["index_select-out", "conventional-new-output"]
        skipped += ["gather gpu/zerocopy-naive/zerocopy-aligned: no CUDA device"]
    return modes, skipped


def bench_gather(table_bytes: int, gather_bytes: int, repeats: int, row_sizes: list[int],
                 dtypes: tuple[str, ...] = tuple(DTYPES),
                 orders: tuple[str, ...] = ("random", "sorted"),
                 base_offsets: tuple[int, ...] = (0,)) -> list[dict[str, Any]]:
    """Gather GB/s per variant beside ``memcpy`` of the same bytes (interleaved).

    ``base_offsets``: bytes by which the table starts after a 128-B line boundary (0 = every
    row of a multiple-of-128-B size starts on a line; 16 = every row straddles lines).
    """
    cuda = torch.cuda.is_available()
    device = "cuda" if cuda else "cpu"
    zerocopy = cuda and cupy_available()
    # one host buffer, 128-B aligned start, with room for the largest offset
    raw = torch.empty(table_bytes + 2 * LINE_BYTES, dtype=torch.uint8)
    raw.view(torch.int32)[:] = torch.arange(raw.numel() // 4, dtype=torch.int32)
    aligned_start = (-raw.data_ptr()) % LINE_BYTES
    rows = []
    for row_bytes in row_sizes:
        num_rows = table_bytes // row_bytes
        count = max(1, min(num_rows, gather_bytes // row_bytes))
        gen = torch.Generator().manual_seed(row_bytes)
        random_idx = torch.randint(0, num_rows, (count,), generator=gen)
        sorted_idx = torch.sort(random_idx).values
        nbytes = count * row_bytes
        copy_src = torch.ones(nbytes, dtype=torch.uint8, pin_memory=cuda)
        copy_dst = torch.empty(nbytes, dtype=torch.uint8, device=device)
        for offset in base_offsets:
            start = aligned_start + offset
            for dtype_name in dtypes:
                dtype = DTYPES[dtype_name]
                element = torch.empty(0, dtype=dtype).element_size()
                if row_bytes % element or offset % element:
                    continue
                width = row_bytes // element
                table = raw[start:start + num_rows * row_bytes].view(dtype).view(num_rows, width)
                conventional = make_fetcher("conventional", table, device)
                gpu = make_fetcher("gpu", table, device) if cuda else None
                zc = make_fetcher("zerocopy", table, device) if zerocopy else None
                out = torch.empty((count, width), dtype=dtype)
                for order in orders:
                    idx = random_idx if order == "random" else sorted_idx
                    idx_dev = idx.to(device)
                    variants: dict[str, Callable[[], Any]] = {
                        "memcpy": lambda d=copy_dst, s=copy_src: d.copy_(s, non_blocking=True),
                        "conventional": lambda f=conventional, i=idx: f.fetch(i),
                    }
                    if not cuda:
                        variants["index_select-out"] = (
                            lambda t=table, i=idx, o=out: torch.index_select(t, 0, i, out=o))
                        variants["conventional-new-output"] = (
                            lambda t=table, i=idx: t.index_select(0, i))
                    if gpu is not None:
                        variants["gpu"] = lambda f=gpu, i=idx_dev: f.fetch(i)
                    if zc is not None:
                        # sorted: the fetcher sorts the random ids itself (and un-permutes)
                        zc.sort_indices = order == "sorted"
                        ids = random_idx.to(device)
                        for kernel in ("naive", "aligned"):
                            variants[f"zerocopy-{kernel}"] = (
                                lambda k=kernel, i=ids, f=zc: (f.set_kernel(k), f.fetch(i)))
                    seconds = interleaved(variants, repeats, cuda)
                    for label, value in seconds.items():
                        rows.append({
                            "mode": label, "row_bytes": row_bytes, "dtype": dtype_name,
                            "order": order, "base_offset": offset, "rows": count,
                            "seconds": value, "gbps": nbytes / value / 1e9,
                            "fraction_of_memcpy": seconds["memcpy"] / value,
                            "memcpy": "pinned host-to-device" if cuda else "host"})
                for fetcher in (conventional, gpu, zc):
                    if fetcher is not None:
                        fetcher.close()
    return rows


def bench_cache(graph_dir: Path, fanouts: list[int], batch_size: int, max_batches: int,
                fractions: tuple[float, ...] = (0.0, 0.1, 0.25, 0.5)) -> list[dict[str, Any]]:
    """Hit rate and PCIe traffic per epoch of the hot-row cache for several budgets/rankings
    (counted from the sampler's real input nodes; independent of the device)."""
    from zerocopy_gcn.cache import hotness_order

    graph = load_graph(graph_dir, validate="none")
    sampler = NeighborSampler(graph, fanouts, seed=0)
    batches = seed_batches(graph.splits["train"], batch_size, 0, 0)
    inputs = [sampler.sample(seeds, step=i).input_nodes.numpy()
              for i, seeds in enumerate(batches[:max_batches])]
    scale = len(batches) / len(inputs)  # extrapolate the measured batches to a whole epoch
    requested = sum(x.shape[0] for x in inputs)
    row_bytes = graph.feat_dim * graph.feat.dtype.itemsize
    rows = []
    for ranking in ("degree", "reverse_pagerank"):
        seeds = np.asarray(graph.splits["train"]) if ranking == "reverse_pagerank" else None
        order = hotness_order(np.asarray(graph.indptr), np.asarray(graph.indices), ranking, seeds)
        position = np.empty(graph.num_nodes, dtype=np.int64)
        position[order] = np.arange(graph.num_nodes)
        for fraction in fractions:
            cached = int(round(fraction * graph.num_nodes))
            hits = sum(int((position[x] < cached).sum()) for x in inputs)
            rows.append({"graph": graph.name, "ranking": ranking, "cache_fraction": fraction,
                         "hit_rate": hits / requested,
                         "pcie_gb_per_epoch": (requested - hits) * row_bytes * scale / 1e9,
                         "pcie_gb_saved_per_epoch": hits * row_bytes * scale / 1e9})
    return rows


# label -> (training overrides, feature dtype of the graph folder, what it needs)
EPOCH_VARIANTS: dict[str, tuple[list[str], str, str]] = {
    "conventional": (["fetch=conventional"], "float32", "cpu"),
    "conventional+prefetch": (["fetch=conventional", "prefetch=true"], "float32", "cpu"),
    # the vectorised torch sampler instead of the compiled one (what training used before)
    "conventional+reference-sampler": (["fetch=conventional", "sampler.kind=reference"],
                                        "float32", "cpu"),
    "conventional+prefetch+reference-sampler": (["fetch=conventional", "prefetch=true",
                                                  "sampler.kind=reference"], "float32", "cpu"),
    "conventional fp16 table": (["fetch=conventional"], "float16", "cpu"),
    "conventional bf16 table": (["fetch=conventional"], "bfloat16", "cpu"),
    "gpu": (["fetch=gpu"], "float32", "cuda"),
    "gpu+prefetch": (["fetch=gpu", "prefetch=true"], "float32", "cuda"),
    "zerocopy": (["fetch=zerocopy"], "float32", "cupy"),
    "zerocopy+prefetch": (["fetch=zerocopy", "prefetch=true"], "float32", "cupy"),
    "zerocopy+cache": (["fetch=zerocopy", "fetch.cache_fraction=0.25"], "float32", "cupy"),
    "zerocopy+cache+prefetch": (["fetch=zerocopy", "fetch.cache_fraction=0.25",
                                 "prefetch=true"], "float32", "cupy"),
}
CPU_VARIANTS = ("conventional", "conventional+prefetch", "conventional+reference-sampler",
                "conventional fp16 table", "conventional bf16 table")
GPU_VARIANTS = ("conventional", "conventional+prefetch", "gpu", "gpu+prefetch", "zerocopy",
                "zerocopy+prefetch", "zerocopy+cache", "zerocopy+cache+prefetch")


def runnable_variants(wanted: list[str] | None) -> tuple[list[str], list[str]]:
    """Variants to run on this machine (default: the machine's set) and the skipped ones."""
    cuda, cupy = torch.cuda.is_available(), cupy_available()
    names = list(wanted) if wanted else list(GPU_VARIANTS if cuda else CPU_VARIANTS)
    unknown = [n for n in names if n not in EPOCH_VARIANTS]
    if unknown:
        raise ValueError(f"unknown epoch variants {unknown}; choose from {list(EPOCH_VARIANTS)}")
    run, skipped = [], []
    for name in names:
        need = EPOCH_VARIANTS[name][2]
        if need in ("cuda", "cupy") and not cuda:
            skipped.append(f"epoch {name}: no CUDA device")
        elif need == "cupy" and not cupy:
            skipped.append(f"epoch {name}: CuPy not installed")
        else:
            run.append(name)
    if not wanted and not cuda:
        skipped.append("epoch gpu/zerocopy(+prefetch, +cache) and GPU sampling: no CUDA device")
    return run, skipped


def graph_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.npy"))


def _compose(overrides: list[str]):
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    config_dir = Path(__file__).resolve().parents[2] / "configs"
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(config_dir), version_base="1.3"):
        cfg = compose("config", overrides=overrides)
    GlobalHydra.instance().clear()
    return cfg


def bench_end_to_end(graphs: dict[str, dict], data_root: Path, epochs: int,
                     fanouts: list[int], max_batches: int | None = None,
                     variants: list[str] | None = None, extra: list[str] | None = None
                     ) -> tuple[list[dict[str, Any]], list[str]]:
    """Train each variant on each graph; the first epoch starts from an evicted page cache.

    Rows keep the warm figures (mean over epochs after the first) at the top level and the
    first epoch under ``cold``.  ``extra``: training overrides added to every variant (e.g.
    ``sample_on=device``).
    """
    from zerocopy_gcn.training import train

    names, skipped = runnable_variants(variants)
    cuda = torch.cuda.is_available()
    rows = []
    for name, data in graphs.items():
        for label in names:
            overrides, feat_dtype, _ = EPOCH_VARIANTS[label]
            spec = preset_spec(data["preset"], num_nodes=data["num_nodes"],
                               avg_degree=data["avg_degree"], feat_dtype=feat_dtype,
                               split=data.get("split"))
            folder = ensure_rmat(preset_folder(data_root, data["preset"], spec), spec,
                                 name=data["preset"], progress=False)
            evicted = evict(graph_files(folder))
            resident = resident_fraction(folder / "feat.npy")
            cfg = _compose([
                "data=folder", f"data.path={folder}", "data.validate=none",
                f"epochs={epochs}", "fanouts=[" + ",".join(map(str, fanouts)) + "]",
                f"max_batches={max_batches if max_batches else 'null'}",
                "tensorboard=false", "device=" + ("cuda" if cuda else "cpu"), *overrides,
                *(extra or [])])
            with tempfile.TemporaryDirectory() as run:
                cwd = os.getcwd()
                os.chdir(run)
                try:
                    metrics = train(cfg)
                finally:
                    os.chdir(cwd)
            history = metrics["history"]
            first = history[0]
            warm = history[1:] or history
            row = {"graph": name, "variant": label, **data, "feat_dtype": feat_dtype,
                   "overrides": [*overrides, *(extra or [])],
                   "epochs": epochs, "max_batches": max_batches,
                   "num_edges": metrics["graph"]["num_edges"],
                   "feat_dim": metrics["graph"]["feat_dim"],
                   **{key: float(np.mean([h[key] for h in warm])) for key in TIMES},
                   "cold": {key: first[key] for key in TIMES},
                   "cold_feat_resident_fraction": resident, "page_cache_evicted": evicted,
                   "val_acc": metrics["final_val_acc"]}
            for key in ("cache_hit_rate", "pcie_gb"):
                if key in first:
                    row[key] = float(np.mean([h[key] for h in warm]))
            rows.append(row)
    for name in graphs:
        base = [r for r in rows if r["graph"] == name and r["variant"] == "conventional"]
        gpu = [r for r in rows if r["graph"] == name and r["variant"] == "gpu"]
        for r in rows:
            if r["graph"] == name:
                if base:
                    r["speedup_vs_conventional"] = base[0]["epoch_s"] / r["epoch_s"]
                if gpu:
                    r["fraction_of_all_in_gpu"] = gpu[0]["epoch_s"] / r["epoch_s"]
    return rows, skipped


def bench_multi_gpu(data: dict, data_root: Path, epochs: int, fanouts: list[int]
                    ) -> tuple[list[dict[str, Any]], list[str]]:
    """Epoch time with 1 and all GPUs (torchrun, zero-copy when CuPy is present)."""
    import subprocess
    import sys

    gpus = torch.cuda.device_count()
    if gpus < 2:
        return [], [f"multi-GPU scaling: {gpus} GPU(s) on this machine"]
    try:
        import cupy  # noqa: F401

        mode = "zerocopy"
    except ImportError:
        mode = "conventional"
    train_py = Path(__file__).resolve().parents[2] / "train.py"
    rows = []
    for procs in sorted({1, gpus}):
        with tempfile.TemporaryDirectory() as run:
            cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={procs}",
                   str(train_py), f"data={data['preset']}", f"data.num_nodes={data['num_nodes']}",
                   f"data.avg_degree={data['avg_degree']}", f"data.root={data_root}",
                   f"epochs={epochs}", "fanouts=[" + ",".join(map(str, fanouts)) + "]",
                   f"fetch={mode}", "device=cuda", "tensorboard=false", f"hydra.run.dir={run}"]
            subprocess.run(cmd, check=True, capture_output=True, text=True)
            metrics = json.loads((Path(run) / "metrics.json").read_text())
        rows.append({"gpus": procs, "fetch": mode,
                     **metrics["mean_epoch_times_excluding_first"],
                     "val_acc": metrics["final_val_acc"]})
    return rows, []


def _plots(out: Path, gather: list[dict], e2e: list[dict], ceiling: dict) -> list[str]:
    """Figures (matplotlib is optional: a GPU machine may lack it; the numbers are in JSON)."""
    try:
        import matplotlib
    except ImportError:
        return []
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    aligned = [r for r in gather if r.get("base_offset", 0) == 0]
    if not aligned:
        return _epoch_plot(out, e2e, written, plt)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for ax, order in zip(axes, ("random", "sorted"), strict=True):
        for mode in sorted({r["mode"] for r in aligned}):
            for dtype, style in (("float32", "o-"), ("float16", "s--"), ("bfloat16", "^:")):
                pts = [r for r in aligned if r["mode"] == mode and r["order"] == order
                       and r["dtype"] == dtype]
                if pts:
                    ax.plot([p["row_bytes"] for p in pts], [p["gbps"] for p in pts], style,
                            label=f"{mode} {dtype}")
        for key, value in ceiling.items():
            ax.axhline(value, color="grey", lw=0.8, ls="-.")
            ax.text(64, value, key, fontsize=7, va="bottom")
        ax.set_xscale("log", base=2)
        ax.set_xlabel("row size (bytes)")
        ax.set_title(f"{order} indices")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("gather bandwidth (GB/s useful)")
    axes[1].legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(out / "gather_bandwidth.png", dpi=120)
    plt.close(fig)
    written.append("gather_bandwidth.png")
    return _epoch_plot(out, e2e, written, plt)


def _epoch_plot(out: Path, e2e: list[dict], written: list[str], plt) -> list[str]:
    if e2e:
        fig, ax = plt.subplots(figsize=(8, 5))
        labels = [f"{r['graph']} | {r['variant']}" for r in e2e]
        bottoms = np.zeros(len(e2e))
        for key in ("sample_s", "fetch_s", "train_s"):
            values = np.array([r[key] for r in e2e])
            ax.bar(labels, values, bottom=bottoms, label=key.replace("_s", ""))
            bottoms += values
        ax.plot(labels, [r["epoch_s"] for r in e2e], "k*", label="warm epoch wall time")
        ax.plot(labels, [r["cold"]["epoch_s"] for r in e2e], "rx", label="first (cold) epoch")
        ax.set_ylabel("seconds per epoch")
        ax.legend(fontsize=8)
        ax.tick_params(axis="x", labelsize=7, labelrotation=35)
        plt.setp(ax.get_xticklabels(), ha="right")
        fig.tight_layout()
        fig.savefig(out / "epoch_times.png", dpi=120)
        plt.close(fig)
        written.append("epoch_times.png")
    return written


def _gather_markdown(gather: list[dict], row_sizes: list[int]) -> list[str]:
    sizes = [b for b in row_sizes if any(r["row_bytes"] == b for r in gather)]
    lines = ["| mode | dtype | order | base offset | " + " | ".join(f"{b} B" for b in sizes) +
             " |", "|---|---|---|---|" + "---|" * len(sizes)]
    keys = sorted({(r["mode"] != "memcpy", r["mode"], r["dtype"], r["order"],
                    r.get("base_offset", 0)) for r in gather})
    for _, mode, dtype, order, offset in keys:
        cells = {r["row_bytes"]: r for r in gather
                 if (r["mode"], r["dtype"], r["order"], r.get("base_offset", 0))
                 == (mode, dtype, order, offset)}

        def cell(b, cells=cells, mode=mode):
            if b not in cells:
                return "-"
            r = cells[b]
            if mode == "memcpy":
                return f"{r['gbps']:.2f}"
            return f"{r['gbps']:.2f} ({r['fraction_of_memcpy']:.0%})"

        lines.append(f"| {mode} | {dtype} | {order} | {offset} | " +
                     " | ".join(cell(b) for b in sizes) + " |")
    return lines


def _markdown(result: dict[str, Any]) -> str:
    lines = [f"# zerocopy-gcn benchmark\n\nCommand: `{result['command']}`  ",
             f"Machine: {result['machine']}", ""]
    if result["skipped"]:
        lines += ["**GPU modes skipped (not runnable on this machine):**", ""]
        lines += [f"- {reason}" for reason in result["skipped"]] + [""]
    if result.get("ceiling"):
        lines += ["## Ceiling (large contiguous copy)", ""]
        lines += [f"- {k}: {v:.2f} GB/s" for k, v in result["ceiling"].items()]
    if result.get("gather"):
        memcpy = result["gather"][0]["memcpy"]
        lines += ["", "## Gather bandwidth (GB/s of useful bytes; in brackets: fraction of a "
                  f"{memcpy} memcpy of the same bytes, measured interleaved)", ""]
        lines += _gather_markdown(result["gather"], result.get("row_bytes", ROW_BYTES))
    lines += sampler_markdown(result.get("sampler", []))
    if result.get("cache"):
        lines += ["", "## Hot-row cache (fraction of rows on the device)", "",
                  "| graph | ranking | cache fraction | hit rate | PCIe GB/epoch | "
                  "saved GB/epoch |", "|---|---|---|---|---|---|"]
        for r in result["cache"]:
            lines.append(f"| {r['graph']} | {r['ranking']} | {r['cache_fraction']:.0%} | "
                         f"{r['hit_rate']:.1%} | {r['pcie_gb_per_epoch']:.3f} | "
                         f"{r['pcie_gb_saved_per_epoch']:.3f} |")
    if result.get("end_to_end"):
        first = result["end_to_end"][0]
        batches = (f"{first['max_batches']} minibatches per epoch" if first.get("max_batches")
                   else "whole epochs")
        lines += ["", f"## Epochs ({batches}; warm = mean over epochs after the first, cold = "
                  "the first epoch, started with the graph's files evicted from the page cache)",
                  "", "| graph | nodes | edges | feat | variant | warm epoch s | sample s | "
                  "fetch s | train s | stall s | cold epoch s | cold fetch s | speedup vs "
                  "conventional | val acc |", "|---|---|---|---|---|---|---|---|---|---|---|---|"
                  "---|---|"]
        for r in result["end_to_end"]:
            speedup = r.get("speedup_vs_conventional")
            lines.append(
                f"| {r['graph']} | {r['num_nodes']} | {r['num_edges']} | {r['feat_dim']} | "
                f"{r['variant']} | {r['epoch_s']:.2f} | {r['sample_s']:.2f} | "
                f"{r['fetch_s']:.2f} | {r['train_s']:.2f} | {r['stall_s']:.2f} | "
                f"{r['cold']['epoch_s']:.2f} | {r['cold']['fetch_s']:.2f} | "
                f"{'-' if speedup is None else f'{speedup:.2f}'} | {r['val_acc']:.3f} |")
    if result.get("multi_gpu"):
        lines += ["", "## GPUs (torchrun, one process per GPU)", "",
                  "| GPUs | fetch | epoch s | val acc |", "|---|---|---|---|"]
        for r in result["multi_gpu"]:
            lines.append(f"| {r['gpus']} | {r['fetch']} | {r['epoch_s']:.2f} | "
                         f"{r['val_acc']:.3f} |")
    return "\n".join(lines) + "\n"


def _graph_arg(text: str) -> tuple[str, dict]:
    """``PRESET:NODES:AVG_DEGREE`` -> (name, graph settings)."""
    try:
        preset, nodes, degree = text.split(":")
        return preset, {"preset": preset, "num_nodes": int(nodes), "avg_degree": float(degree)}
    except ValueError as error:
        raise argparse.ArgumentTypeError(
            f"--graph expects PRESET:NODES:AVG_DEGREE, e.g. products_like:60000:25, got {text!r}"
        ) from error


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("benchmarks"))
    parser.add_argument("--data-root", type=Path, default=Path("data/bench"))
    parser.add_argument("--sections", nargs="+", choices=SECTIONS, default=list(SECTIONS))
    parser.add_argument("--table-mb", type=int, default=256)
    parser.add_argument("--gather-mb", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--row-bytes", type=int, nargs="+", default=None)
    parser.add_argument("--dtypes", nargs="+", choices=list(DTYPES), default=list(DTYPES))
    parser.add_argument("--orders", nargs="+", choices=["random", "sorted"],
                        default=["random", "sorted"])
    parser.add_argument("--base-offsets", type=int, nargs="+", default=[0],
                        help="table start in bytes after a 128-B line (e.g. 0 16)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--max-batches", type=int, default=None,
                        help="minibatches per epoch (default: the whole training split)")
    parser.add_argument("--graph", type=_graph_arg, action="append", default=None,
                        help="epoch graph PRESET:NODES:AVG_DEGREE (repeatable)")
    parser.add_argument("--variants", nargs="+", default=None,
                        help="epoch variants (default: all runnable on this machine)")
    parser.add_argument("--split", type=float, nargs=3, default=None,
                        metavar=("TRAIN", "VAL", "TEST"),
                        help="node split of the generated graphs (default: the preset's)")
    parser.add_argument("--override", action="append", default=[],
                        help="training override for every epoch variant, e.g. sample_on=device")
    parser.add_argument("--fanouts", type=int, nargs="+", default=None)
    parser.add_argument("--sampler-batches", type=int, default=20,
                        help="minibatches of 1000 seeds per sampler run")
    parser.add_argument("--sampler-threads", type=int, nargs="+", default=None,
                        help="thread counts of the CPU samplers (default: this process's CPUs)")
    parser.add_argument("--sampler-loads", nargs="+", choices=SAMPLER_LOADS,
                        default=["idle", "busy"], help="what else runs on the CPU meanwhile")
    parser.add_argument("--sampler-repeats", type=int, default=3,
                        help="interleaved runs per sampler, threads and load (median reported)")
    parser.add_argument("--sampler-seconds", type=float, default=30.0,
                        help="a run stops after the batch that passes this many seconds")
    parser.add_argument("--quick", action="store_true", help="tiny sizes (for tests)")
    args = parser.parse_args(argv)
    row_sizes = args.row_bytes or list(ROW_BYTES)
    if args.quick:
        args.table_mb, args.gather_mb, args.repeats, args.epochs = 4, 1, 1, 2
        args.sampler_batches, args.sampler_repeats = 3, 1
    graphs = {
        "reddit_like": {"preset": "reddit_like", "num_nodes": 20_000, "avg_degree": 50},
        "products_like": {"preset": "products_like", "num_nodes": 60_000, "avg_degree": 25},
    }
    if args.quick:
        graphs = {"products_like": {"preset": "products_like", "num_nodes": 2_000,
                                    "avg_degree": 10}}
    if args.graph:
        graphs = dict(args.graph)
    if args.split:
        graphs = {name: {**data, "split": list(args.split)} for name, data in graphs.items()}
    fanouts = args.fanouts or ([15, 10, 5] if not args.quick else [5, 5])
    args.out.mkdir(parents=True, exist_ok=True)
    data_root = args.data_root.resolve()
    machine = machine_info()
    command = "python bench.py " + shlex.join(argv if argv is not None else sys.argv[1:])
    print(f"machine: {machine}")
    started = time.perf_counter()
    result: dict[str, Any] = {"command": command, "machine": machine, "skipped": [],
                              "row_bytes": row_sizes, "ceiling": {}, "gather": [],
                              "sampler": [], "cache": [], "end_to_end": [], "multi_gpu": [],
                              "sections": args.sections}
    skipped: list[str] = []
    if "gather" in args.sections:
        _, gather_skipped = gather_modes()
        skipped += gather_skipped
        result["ceiling"] = ceiling_gbps(args.table_mb << 20, args.repeats)
        print(f"ceiling: {result['ceiling']}")
        result["gather"] = bench_gather(args.table_mb << 20, args.gather_mb << 20, args.repeats,
                                        row_sizes, tuple(args.dtypes), tuple(args.orders),
                                        tuple(args.base_offsets))
        print(f"gather: {len(result['gather'])} measurements "
              f"({time.perf_counter() - started:.0f}s)")
    first = next(iter(graphs.values()))
    if {"sampler", "cache"} & set(args.sections):
        spec = preset_spec(first["preset"], num_nodes=first["num_nodes"],
                           avg_degree=first["avg_degree"], split=first.get("split"))
        sampler_graph = ensure_rmat(preset_folder(data_root, first["preset"], spec), spec,
                                    name=first["preset"], progress=False)
        if "sampler" in args.sections:
            graph = load_graph(sampler_graph, validate="none")
            threads = args.sampler_threads or [default_num_threads()]
            result["sampler"], sampler_skipped = bench_cpu_samplers(
                graph, fanouts, 1000, args.sampler_batches, threads, args.sampler_loads,
                args.sampler_repeats, args.sampler_seconds)
            result["sampler"] += bench_gpu_sampler(graph, fanouts, 1000, args.sampler_batches)
            skipped += sampler_skipped
            print("sampler: " + ", ".join(
                f"{r['sampler']}/{r['device']}/{r['threads']}t/{r['load']} "
                f"{r['edges_per_s'] / 1e6:.2f}M" for r in result["sampler"]) + " edges/s")
        if "cache" in args.sections:
            result["cache"] = bench_cache(sampler_graph, fanouts, 1000, args.sampler_batches)
    if "epochs" in args.sections:
        result["end_to_end"], e2e_skipped = bench_end_to_end(
            graphs, data_root, args.epochs, fanouts, args.max_batches, args.variants,
            args.override)
        skipped += e2e_skipped
    if "multi_gpu" in args.sections:
        result["multi_gpu"], multi_skipped = bench_multi_gpu(first, data_root, args.epochs,
                                                             fanouts)
        skipped += multi_skipped
    result["skipped"] = sorted(set(skipped))
    result["seconds"] = time.perf_counter() - started
    (args.out / "bench_results.json").write_text(json.dumps(result, indent=2))
    (args.out / "bench_results.md").write_text(_markdown(result))
    figures = _plots(args.out, result["gather"], result["end_to_end"], result["ceiling"])
    print(_markdown(result))
    if result["skipped"]:
        print("NOTE: GPU modes were skipped on this machine: " + "; ".join(result["skipped"]))
    print(f"written: {args.out}/bench_results.json, bench_results.md"
          + "".join(f", {f}" for f in figures) + f" ({result['seconds']:.0f}s)")
    return result


if __name__ == "__main__":
    main()
