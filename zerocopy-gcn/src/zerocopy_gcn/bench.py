"""Benchmarks: gather bandwidth, sampler rate and end-to-end epoch times per fetch mode.

    python bench.py --out benchmarks          (make -C zerocopy-gcn bench)

Gather bandwidth is useful bytes delivered per second, next to the machine's own ceiling (pinned
host-to-device memcpy on a GPU; a large contiguous host copy on a CPU-only machine).  GPU modes
run only where CUDA (and, for zero-copy, CuPy) is present; otherwise they are listed as skipped.
Timings are medians of a few repeats after a warm-up, with CUDA synchronised before each clock.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from zerocopy_gcn.fetch import make_fetcher
from zerocopy_gcn.graph import ensure_rmat, load_graph, preset_spec
from zerocopy_gcn.sampling import NeighborSampler, seed_batches
from zerocopy_gcn.training import preset_folder

ROW_BYTES = [64, 128, 256, 512, 1024, 2048, 4096]
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
COMMAND = "make -C zerocopy-gcn bench  (python bench.py --out benchmarks)"


def _timed(fn, repeats: int, sync_cuda: bool) -> float:
    fn()  # warm-up (page faults, kernel compilation, allocator)
    times = []
    for _ in range(repeats):
        if sync_cuda:
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if sync_cuda:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


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
            "torch_threads": torch.get_num_threads(), "cuda": torch.cuda.is_available()}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
    try:
        import cupy  # noqa: F401

        info["cupy"] = True
    except ImportError:
        info["cupy"] = False
    return info


def ceiling_gbps(table_bytes: int, repeats: int) -> dict[str, float]:
    """Contiguous copy bandwidth: host memcpy, and pinned H2D where a GPU exists."""
    source = torch.empty(table_bytes, dtype=torch.uint8)
    source.fill_(1)
    target = torch.empty_like(source)
    seconds = _timed(lambda: target.copy_(source), repeats, False)
    result = {"host_memcpy_gbps": table_bytes / seconds / 1e9}
    if torch.cuda.is_available():
        pinned = source.pin_memory()
        device = torch.empty(table_bytes, dtype=torch.uint8, device="cuda")
        seconds = _timed(lambda: device.copy_(pinned, non_blocking=True), repeats, True)
        result["pinned_h2d_gbps"] = table_bytes / seconds / 1e9
    return result


def gather_modes() -> tuple[list[tuple[str, str, dict]], list[str]]:
    """(label, mode, options) for each runnable mode, and the labels skipped with reasons."""
    modes = [("conventional", "conventional", {})]
    skipped = []
    if torch.cuda.is_available():
        modes += [("gpu", "gpu", {})]
        try:
            import cupy  # noqa: F401

            modes += [("zerocopy-naive", "zerocopy", {"kernel": "naive"}),
                      ("zerocopy-aligned", "zerocopy", {"kernel": "aligned"})]
        except ImportError:
            skipped += ["gather zerocopy-naive/aligned: CuPy not installed"]
    else:
        skipped += ["gather gpu/zerocopy-naive/zerocopy-aligned: no CUDA device"]
    return modes, skipped


def bench_gather(table_bytes: int, gather_bytes: int, repeats: int,
                 row_sizes: list[int]) -> list[dict[str, Any]]:
    device = "cuda" if torch.cuda.is_available() else "cpu"
    sync = device == "cuda"
    buffer = torch.empty(table_bytes, dtype=torch.uint8)
    buffer.view(torch.int32)[:] = torch.arange(table_bytes // 4, dtype=torch.int32)
    modes, _ = gather_modes()
    rows = []
    for row_bytes in row_sizes:
        num_rows = table_bytes // row_bytes
        count = max(1, min(num_rows, gather_bytes // row_bytes))
        gen = torch.Generator().manual_seed(row_bytes)
        random_idx = torch.randint(0, num_rows, (count,), generator=gen)
        for dtype_name, dtype in DTYPES.items():
            width = row_bytes // torch.empty(0, dtype=dtype).element_size()
            table = buffer[: num_rows * row_bytes].view(dtype).view(num_rows, width)
            for label, mode, options in modes:
                for order in ("random", "sorted"):
                    opts = dict(options)
                    if mode == "zerocopy":
                        opts["sort_indices"] = order == "sorted"
                    idx = random_idx if order == "random" else torch.sort(random_idx).values
                    if mode == "zerocopy" and order == "sorted":
                        idx = random_idx  # the fetcher sorts internally
                    fetcher = make_fetcher(mode, table, device, **opts)
                    idx_dev = idx.to(device) if mode != "conventional" else idx
                    seconds = _timed(lambda f=fetcher, i=idx_dev: f.fetch(i), repeats, sync)
                    fetcher.close()
                    rows.append({"mode": label, "row_bytes": row_bytes, "dtype": dtype_name,
                                 "order": order, "rows": count, "seconds": seconds,
                                 "gbps": count * row_bytes / seconds / 1e9})
                    if mode == "conventional" and device == "cpu":
                        # the same gather into a reused buffer: separates the cost of
                        # page-faulting a fresh output from the gather itself
                        fetcher = make_fetcher(mode, table, device)
                        out = torch.empty((count, width), dtype=dtype)
                        seconds = _timed(lambda f=fetcher, i=idx, o=out: f.gather_into(i, o),
                                         repeats, False)
                        fetcher.close()
                        rows.append({"mode": "conventional-reused-output",
                                     "row_bytes": row_bytes, "dtype": dtype_name,
                                     "order": order, "rows": count, "seconds": seconds,
                                     "gbps": count * row_bytes / seconds / 1e9})
    return rows


def bench_sampler(graph_dir: Path, fanouts: list[int], batch_size: int,
                  max_batches: int) -> list[dict[str, Any]]:
    graph = load_graph(graph_dir, validate="none")
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    rows = []
    for device in devices:
        sampler = NeighborSampler(graph, fanouts, seed=0, device=device)
        batches = seed_batches(graph.splits["train"], batch_size, 0, 0)[:max_batches]
        sampler.sample(batches[0])
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        edges = 0
        for step, seeds in enumerate(batches):
            batch = sampler.sample(seeds, step=step)
            edges += sum(b.edge_index.shape[1] for b in batch.blocks)
        if device == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - start
        rows.append({"device": device, "graph": graph.name, "fanouts": fanouts,
                     "batches": len(batches), "sampled_edges": edges, "seconds": seconds,
                     "edges_per_s": edges / seconds})
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


def bench_end_to_end(graphs: dict[str, dict], data_root: Path, epochs: int,
                     fanouts: list[int]) -> tuple[list[dict[str, Any]], list[str]]:
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from zerocopy_gcn.training import train  # noqa: I001

    config_dir = Path(__file__).resolve().parents[2] / "configs"
    cuda = torch.cuda.is_available()
    variants = [("conventional", ["fetch=conventional"]),
                ("conventional+prefetch", ["fetch=conventional", "prefetch=true"]),
                ("conventional fp16 table", ["fetch=conventional", "data.feat_dtype=float16"]),
                ("conventional bf16 table", ["fetch=conventional", "data.feat_dtype=bfloat16"])]
    skipped = []
    if cuda:
        variants += [("gpu", ["fetch=gpu"])]
        try:
            import cupy  # noqa: F401

            variants += [("zerocopy", ["fetch=zerocopy"]),
                         ("zerocopy+prefetch", ["fetch=zerocopy", "prefetch=true"])]
        except ImportError:
            skipped.append("epoch zerocopy(+prefetch): CuPy not installed")
    else:
        skipped += ["epoch gpu/zerocopy/zerocopy+prefetch and GPU sampling: no CUDA device"]
    rows = []
    for name, data in graphs.items():
        for label, overrides in variants:
            GlobalHydra.instance().clear()
            with initialize_config_dir(config_dir=str(config_dir), version_base="1.3"):
                cfg = compose("config", overrides=[
                    f"data={data['preset']}", f"data.num_nodes={data['num_nodes']}",
                    f"data.avg_degree={data['avg_degree']}", f"data.root={data_root}",
                    f"epochs={epochs}", "fanouts=[" + ",".join(map(str, fanouts)) + "]",
                    "tensorboard=false", "device=" + ("cuda" if cuda else "cpu"), *overrides])
            GlobalHydra.instance().clear()
            with tempfile.TemporaryDirectory() as run:
                cwd = os.getcwd()
                os.chdir(run)
                try:
                    metrics = train(cfg)
                finally:
                    os.chdir(cwd)
            times = metrics["mean_epoch_times_excluding_first"]
            rows.append({"graph": name, "variant": label, **data, "epochs": epochs,
                         "num_edges": metrics["graph"]["num_edges"],
                         "feat_dim": metrics["graph"]["feat_dim"], **times,
                         "val_acc": metrics["final_val_acc"]})
    for name in graphs:
        base = [r for r in rows if r["graph"] == name and r["variant"] == "conventional"]
        gpu = [r for r in rows if r["graph"] == name and r["variant"] == "gpu"]
        for r in rows:
            if r["graph"] == name:
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


def _plots(out: Path, gather: list[dict], e2e: list[dict], ceiling: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for ax, order in zip(axes, ("random", "sorted"), strict=True):
        for mode in sorted({r["mode"] for r in gather}):
            for dtype, style in (("float32", "o-"), ("float16", "s--"), ("bfloat16", "^:")):
                pts = [r for r in gather if r["mode"] == mode and r["order"] == order
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
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "gather_bandwidth.png", dpi=120)
    plt.close(fig)
    if e2e:
        fig, ax = plt.subplots(figsize=(8, 5))
        labels = [f"{r['graph']} | {r['variant']}" for r in e2e]
        bottoms = np.zeros(len(e2e))
        for key in ("sample_s", "fetch_s", "train_s"):
            values = np.array([r[key] for r in e2e])
            ax.bar(labels, values, bottom=bottoms, label=key.replace("_s", ""))
            bottoms += values
        ax.plot(labels, [r["epoch_s"] for r in e2e], "k*", label="epoch wall time")
        ax.set_ylabel("seconds per epoch")
        ax.legend(fontsize=8)
        ax.tick_params(axis="x", labelsize=7, labelrotation=35)
        plt.setp(ax.get_xticklabels(), ha="right")
        fig.tight_layout()
        fig.savefig(out / "epoch_times.png", dpi=120)
        plt.close(fig)


def _markdown(result: dict[str, Any]) -> str:
    lines = [f"# zerocopy-gcn benchmark\n\nCommand: `{COMMAND}`  ", f"Machine: {result['machine']}",
             ""]
    if result["skipped"]:
        lines += ["**GPU modes skipped (not runnable on this machine):**", ""]
        lines += [f"- {reason}" for reason in result["skipped"]] + [""]
    lines += ["## Ceiling", ""] + [f"- {k}: {v:.2f} GB/s" for k, v in result["ceiling"].items()]
    lines += ["", "## Gather bandwidth (GB/s of useful bytes)", "",
              "| mode | dtype | order | " + " | ".join(f"{b} B" for b in ROW_BYTES) + " |",
              "|---|---|---|" + "---|" * len(ROW_BYTES)]
    keys = sorted({(r["mode"], r["dtype"], r["order"]) for r in result["gather"]})
    for mode, dtype, order in keys:
        cells = {r["row_bytes"]: r["gbps"] for r in result["gather"]
                 if (r["mode"], r["dtype"], r["order"]) == (mode, dtype, order)}
        lines.append(f"| {mode} | {dtype} | {order} | " +
                     " | ".join(f"{cells[b]:.2f}" if b in cells else "-" for b in ROW_BYTES) +
                     " |")
    lines += ["", "## Neighbour sampler", "", "| device | graph | fanouts | sampled edges/s |",
              "|---|---|---|---|"]
    for r in result["sampler"]:
        lines.append(f"| {r['device']} | {r['graph']} | {r['fanouts']} | "
                     f"{r['edges_per_s']:.3g} |")
    lines += ["", "## Hot-row cache (fraction of rows on the device)", "",
              "| graph | ranking | cache fraction | hit rate | PCIe GB/epoch | saved GB/epoch |",
              "|---|---|---|---|---|---|"]
    for r in result.get("cache", []):
        lines.append(f"| {r['graph']} | {r['ranking']} | {r['cache_fraction']:.0%} | "
                     f"{r['hit_rate']:.1%} | {r['pcie_gb_per_epoch']:.3f} | "
                     f"{r['pcie_gb_saved_per_epoch']:.3f} |")
    lines += ["", "## End-to-end epoch (mean over epochs after the first)", "",
              "| graph | nodes | edges | feat | variant | epoch s | sample s | fetch s | train s "
              "| stall s | speedup vs conventional | val acc |", "|---|---|---|---|---|---|---|---|"
              "---|---|---|---|"]
    for r in result["end_to_end"]:
        lines.append(f"| {r['graph']} | {r['num_nodes']} | {r['num_edges']} | {r['feat_dim']} | "
                     f"{r['variant']} | {r['epoch_s']:.2f} | {r['sample_s']:.2f} | "
                     f"{r['fetch_s']:.2f} | {r['train_s']:.2f} | {r['stall_s']:.2f} | "
                     f"{r['speedup_vs_conventional']:.2f} | {r['val_acc']:.3f} |")
    if result.get("multi_gpu"):
        lines += ["", "## GPUs (torchrun, one process per GPU)", "",
                  "| GPUs | fetch | epoch s | val acc |", "|---|---|---|---|"]
        for r in result["multi_gpu"]:
            lines.append(f"| {r['gpus']} | {r['fetch']} | {r['epoch_s']:.2f} | "
                         f"{r['val_acc']:.3f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("benchmarks"))
    parser.add_argument("--data-root", type=Path, default=Path("data/bench"))
    parser.add_argument("--table-mb", type=int, default=256)
    parser.add_argument("--gather-mb", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="tiny sizes (for tests)")
    args = parser.parse_args(argv)
    if args.quick:
        args.table_mb, args.gather_mb, args.repeats, args.epochs = 4, 1, 1, 2
    graphs = {
        "reddit_like": {"preset": "reddit_like", "num_nodes": 20_000, "avg_degree": 50},
        "products_like": {"preset": "products_like", "num_nodes": 60_000, "avg_degree": 25},
    }
    if args.quick:
        graphs = {"products_like": {"preset": "products_like", "num_nodes": 2_000,
                                    "avg_degree": 10}}
    fanouts = [15, 10, 5] if not args.quick else [5, 5]
    args.out.mkdir(parents=True, exist_ok=True)
    data_root = args.data_root.resolve()
    machine = machine_info()
    _, skipped = gather_modes()
    print(f"machine: {machine}")
    if skipped:
        print("GPU modes skipped on this machine: " + "; ".join(skipped))
    started = time.perf_counter()
    ceiling = ceiling_gbps(args.table_mb << 20, args.repeats)
    print(f"ceiling: {ceiling}")
    gather = bench_gather(args.table_mb << 20, args.gather_mb << 20, args.repeats, ROW_BYTES)
    print(f"gather: {len(gather)} measurements ({time.perf_counter() - started:.0f}s)")
    first = next(iter(graphs.values()))
    spec = preset_spec(first["preset"], num_nodes=first["num_nodes"],
                       avg_degree=first["avg_degree"])
    sampler_graph = preset_folder(data_root, first["preset"], spec)
    ensure_rmat(sampler_graph, spec, name=first["preset"], progress=False)
    sampler = bench_sampler(sampler_graph, fanouts, 1000, 10)
    print(f"sampler: {[round(r['edges_per_s']) for r in sampler]} edges/s")
    cache = bench_cache(sampler_graph, fanouts, 1000, 10)
    for name, data in graphs.items():
        spec = preset_spec(data["preset"], num_nodes=data["num_nodes"],
                           avg_degree=data["avg_degree"])
        print(f"{name}: {spec.num_nodes} nodes, feature table "
              f"{spec.num_nodes * spec.feat_dim * 4 / 1e6:.0f} MB")
    e2e, e2e_skipped = bench_end_to_end(graphs, data_root, args.epochs, fanouts)
    multi, multi_skipped = bench_multi_gpu(next(iter(graphs.values())), data_root, args.epochs,
                                           fanouts)
    e2e_skipped += multi_skipped
    result = {"command": COMMAND, "machine": machine, "skipped": sorted(set(skipped +
                                                                            e2e_skipped)),
              "ceiling": ceiling, "gather": gather, "sampler": sampler, "cache": cache,
              "end_to_end": e2e, "multi_gpu": multi,
              "seconds": time.perf_counter() - started}
    (args.out / "bench_results.json").write_text(json.dumps(result, indent=2))
    (args.out / "bench_results.md").write_text(_markdown(result))
    _plots(args.out, gather, e2e, ceiling)
    print(_markdown(result))
    if result["skipped"]:
        print("NOTE: GPU modes were skipped on this machine: " + "; ".join(result["skipped"]))
    print(f"written: {args.out}/bench_results.json, bench_results.md, gather_bandwidth.png, "
          f"epoch_times.png ({result['seconds']:.0f}s)")
    return result


if __name__ == "__main__":
    main()
