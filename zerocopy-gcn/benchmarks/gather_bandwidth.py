"""Gather bandwidth of the fetch modes, each beside a plain copy of the same bytes.

    python benchmarks/gather_bandwidth.py --out benchmarks/gather_bandwidth
    python benchmarks/gather_bandwidth.py --table-mb 1024 --base-offsets 0 16 --out DIR

Bandwidth is useful bytes delivered per second, beside a pinned host-to-device memcpy of the
same bytes on a GPU (a host memcpy on a CPU-only machine).  Every repeat times each variant
once in turn (``trilab.bench.interleaved``, CUDA synchronised around each call), so load from
other processes hits all variants alike; the median is reported.  GPU modes run only where CUDA
(and, for zero-copy, CuPy) is present; otherwise the report lists them as skipped.  Writes
``gather_bandwidth.{json,md,png}``: the table pivots row sizes into columns, the JSON keeps
every measurement under ``measurements`` and the large-copy ceiling under ``ceiling``.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from trilab.bench import Column, command_line, cuda_sync, interleaved, machine, write_report
from zerocopy_gcn.fetch import make_fetcher

ROW_BYTES = [64, 128, 256, 512, 1024, 2048, 4096]
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
LINE_BYTES = 128


def cupy_available() -> bool:
    try:
        import cupy  # noqa: F401
    except ImportError:
        return False
    return True


def _medians(variants: dict[str, Callable[[], Any]], repeats: int) -> dict[str, float]:
    timings = interleaved(variants, repeats, warmup=1, sync=cuda_sync())
    return {name: timing.median for name, timing in timings.items()}


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
    return {name: table_bytes / s / 1e9 for name, s in _medians(variants, repeats).items()}


def skipped_modes() -> list[str]:
    if not torch.cuda.is_available():
        return ["gather gpu/zerocopy-naive/zerocopy-aligned: no CUDA device"]
    if not cupy_available():
        return ["gather zerocopy-naive/aligned: CuPy not installed"]
    return []


def bench_gather(
    table_bytes: int,
    gather_bytes: int,
    repeats: int,
    row_sizes: list[int],
    dtypes: tuple[str, ...] = tuple(DTYPES),
    orders: tuple[str, ...] = ("random", "sorted"),
    base_offsets: tuple[int, ...] = (0,),
) -> list[dict[str, Any]]:
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
                table = raw[start : start + num_rows * row_bytes].view(dtype).view(num_rows, width)
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
                        variants["index_select-out"] = lambda t=table, i=idx, o=out: (
                            torch.index_select(t, 0, i, out=o)
                        )
                        variants["conventional-new-output"] = lambda t=table, i=idx: t.index_select(
                            0, i
                        )
                    if gpu is not None:
                        variants["gpu"] = lambda f=gpu, i=idx_dev: f.fetch(i)
                    if zc is not None:
                        # sorted: the fetcher sorts the random ids itself (and un-permutes)
                        zc.sort_indices = order == "sorted"
                        ids = random_idx.to(device)
                        for kernel in ("naive", "aligned"):
                            variants[f"zerocopy-{kernel}"] = lambda k=kernel, i=ids, f=zc: (
                                f.set_kernel(k),
                                f.fetch(i),
                            )
                    seconds = _medians(variants, repeats)
                    for label, value in seconds.items():
                        rows.append(
                            {
                                "mode": label,
                                "row_bytes": row_bytes,
                                "dtype": dtype_name,
                                "order": order,
                                "base_offset": offset,
                                "rows": count,
                                "seconds": value,
                                "gbps": nbytes / value / 1e9,
                                "fraction_of_memcpy": seconds["memcpy"] / value,
                                "memcpy": "pinned host-to-device" if cuda else "host",
                            }
                        )
                for fetcher in (conventional, gpu, zc):
                    if fetcher is not None:
                        fetcher.close()
    return rows


def pivot(measurements: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (mode, dtype, order, base offset), memcpy first; cells keyed by row size."""
    table: dict[tuple, dict[str, Any]] = {}
    for m in measurements:
        key = (m["mode"] != "memcpy", m["mode"], m["dtype"], m["order"], m["base_offset"])
        row = table.setdefault(
            key,
            {
                "mode": m["mode"],
                "dtype": m["dtype"],
                "order": m["order"],
                "base_offset": m["base_offset"],
                "cells": {},
            },
        )
        row["cells"][m["row_bytes"]] = (m["gbps"], m["fraction_of_memcpy"])
    return [table[k] for k in sorted(table)]


def columns(row_sizes: list[int]) -> list[Column]:
    def cell(value: tuple[float, float], memcpy: bool) -> str:
        return f"{value[0]:.2f}" if memcpy else f"{value[0]:.2f} ({value[1]:.0%})"

    sized = [
        Column(
            f"{b} B",
            value=lambda r, b=b: (r["cells"].get(b), r["mode"] == "memcpy"),
            fmt=lambda v: "-" if v[0] is None else cell(*v),
        )
        for b in row_sizes
    ]
    return [
        Column("mode", "mode"),
        Column("dtype", "dtype"),
        Column("order", "order"),
        Column("base offset", "base_offset"),
        *sized,
    ]


def plot(out: Path, measurements: list[dict[str, Any]], ceiling: dict[str, float]) -> Path | None:
    """GB/s against row size (matplotlib is optional: a GPU machine may lack it)."""
    try:
        import matplotlib
    except ImportError:
        return None
    aligned = [r for r in measurements if r["base_offset"] == 0]
    if not aligned:
        return None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for ax, order in zip(axes, ("random", "sorted"), strict=True):
        for mode in sorted({r["mode"] for r in aligned}):
            for dtype, style in (("float32", "o-"), ("float16", "s--"), ("bfloat16", "^:")):
                pts = [
                    r
                    for r in aligned
                    if r["mode"] == mode and r["order"] == order and r["dtype"] == dtype
                ]
                if pts:
                    ax.plot(
                        [p["row_bytes"] for p in pts],
                        [p["gbps"] for p in pts],
                        style,
                        label=f"{mode} {dtype}",
                    )
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
    path = out / "gather_bandwidth.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().with_suffix(""))
    parser.add_argument("--table-mb", type=int, default=256)
    parser.add_argument("--gather-mb", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--row-bytes", type=int, nargs="+", default=None)
    parser.add_argument("--dtypes", nargs="+", choices=list(DTYPES), default=list(DTYPES))
    parser.add_argument(
        "--orders", nargs="+", choices=["random", "sorted"], default=["random", "sorted"]
    )
    parser.add_argument(
        "--base-offsets",
        type=int,
        nargs="+",
        default=[0],
        help="table start in bytes after a 128-B line (e.g. 0 16)",
    )
    parser.add_argument("--quick", action="store_true", help="tiny sizes (for tests)")
    args = parser.parse_args(argv)
    row_sizes = args.row_bytes or ([128, 512] if args.quick else list(ROW_BYTES))
    if args.quick:
        args.table_mb, args.gather_mb, args.repeats = 4, 1, 1
    info = machine()
    ceiling = ceiling_gbps(args.table_mb << 20, args.repeats)
    measurements = bench_gather(
        args.table_mb << 20,
        args.gather_mb << 20,
        args.repeats,
        row_sizes,
        tuple(args.dtypes),
        tuple(args.orders),
        tuple(args.base_offsets),
    )
    skipped = skipped_modes()
    memcpy = "pinned host-to-device" if torch.cuda.is_available() else "host"
    notes = [
        f"GB/s of useful bytes; in brackets: fraction of a {memcpy} memcpy of the same "
        "bytes, measured interleaved (median of "
        f"{args.repeats}). Ceiling (one large contiguous copy): "
        + ", ".join(f"{k} {v:.2f} GB/s" for k, v in ceiling.items())
        + "."
    ]
    if skipped:
        notes.append("**Not runnable on this machine:** " + "; ".join(skipped) + ".")
    args.out.mkdir(parents=True, exist_ok=True)
    _, md_path = write_report(
        args.out / "gather_bandwidth",
        pivot(measurements),
        columns(row_sizes),
        "zerocopy-gcn gather bandwidth",
        command_line(argv, __file__),
        info,
        notes,
        {"ceiling": ceiling, "skipped": skipped, "measurements": measurements},
    )
    figure = plot(args.out, measurements, ceiling)
    print(md_path.read_text())
    print(f"written: {md_path}, {md_path.with_suffix('.json')}" + (f", {figure}" if figure else ""))
    return {"ceiling": ceiling, "measurements": measurements, "skipped": skipped}


if __name__ == "__main__":
    main()
